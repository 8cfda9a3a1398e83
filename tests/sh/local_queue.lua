-- Helper of tests/sh/test_concurrent.sh and tests/sh/test_crash.sh: builds a
-- queue of incomplete executions in a local store, bulk-retries it, and
-- checks the store's invariants.
--
--   redrive local_queue.lua setup DB SERVER N PREFIX   N items; module 2 is
--                                                      /flaky?fail=1&key=PREFIX-i, module 3
--                                                      /delay/20?key=PREFIX-done (reached
--                                                      by retries only: the server counts them)
--   redrive local_queue.lua retry DB CONCURRENCY [TTL] bulk retry of all items
--   redrive local_queue.lua check DB SERVER N PREFIX [final] [exact]
--       prints "check: ..." lines and "problems: K"; exits 1 if K > 0.
--       Always: N items, none lost; no item resolved twice (at most one
--       success log and one successful retry execution per item); attempts
--       equal the number of logs; a resolved item's execution points at its
--       successful retry. With `final`: every item resolved, no lease
--       left. With `exact`: every item's flaky key was hit exactly twice
--       (the failed run, then one retry).
local rd = require "redrive"
local cmd, db = arg[1], arg[2]

local function src_of(path)
  return assert(rd.connect { kind = "local", db = path })
end

if cmd == "setup" then
  local server, n, prefix = arg[3], tonumber(arg[4]), arg[5]
  local src = src_of(db)
  local flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = server .. "/ok", method = "get" } },
    { id = 2, module = "http:ActionSendData",
      mapper = { url = server .. "/flaky?fail=1&key=" .. prefix .. "-{{0.n}}", method = "get" } },
    { id = 3, module = "http:ActionSendData", mapper = { url = server .. "/delay/20?key=" .. prefix .. "-done", method = "get" } },
  }
  local sc = assert(src:scenario_create { name = "queue", blueprint = { name = "queue", flow = flow } })
  local inputs = {}
  for i = 1, n do inputs[i] = i end
  local s = rd.each(inputs, function(i)
    local e = assert(src:run(sc.id, { input = { n = i } }))
    assert(e.dlq_id, "run " .. i .. " did not land in the queue")
  end, { concurrency = 16 })
  assert(s.failed == 0, s.errors[1] and s.errors[1].error)
  print("setup: " .. n .. " items")
elseif cmd == "retry" then
  local src = src_of(db)
  local s = assert(src:retry { all = true, concurrency = tonumber(arg[3]) or 8,
                               lease_ttl = tonumber(arg[4]), progress = false })
  print(string.format("retry: total %d succeeded %d failed %d skipped %d", s.total, s.succeeded,
    s.failed, s.skipped))
  for i = 1, math.min(5, #s.errors) do print("  error: " .. tostring(s.errors[i].message)) end
elseif cmd == "check" then
  local server, n, prefix = arg[3], tonumber(arg[4]), arg[5]
  local final, exact = false, false
  for i = 6, #arg do
    if arg[i] == "final" then final = true elseif arg[i] == "exact" then exact = true end
  end
  local src = src_of(db)
  local problems, items, resolved, leased, logs_total = 0, 0, 0, 0, 0
  local function bad(fmt, ...)
    problems = problems + 1
    if problems <= 10 then print("check: " .. string.format(fmt, ...)) end
  end
  -- successful retry executions per item
  local success_execs = {}
  for e in src:executions { mode = "retry", status = "success" } do
    if e.dlq_id then success_execs[e.dlq_id] = (success_execs[e.dlq_id] or 0) + 1 end
  end
  for it in src:incomplete { resolved = "any" } do
    items = items + 1
    local nlogs, nsuccess = 0, 0
    for l in it:logs {} do
      nlogs = nlogs + 1
      if l.status == 1 then nsuccess = nsuccess + 1 end
    end
    logs_total = logs_total + nlogs
    if it.resolved then resolved = resolved + 1 end
    if it.lease_owner then leased = leased + 1 end
    if nsuccess > 1 then bad("item %s resolved %d times", it.id, nsuccess) end
    if (success_execs[it.id] or 0) > 1 then bad("item %s has %d successful retries", it.id, success_execs[it.id]) end
    if it.resolved ~= (nsuccess == 1) then bad("item %s resolved=%s with %d success logs", it.id, tostring(it.resolved), nsuccess) end
    if it.attempts ~= nlogs then bad("item %s: attempts %d but %d logs", it.id, it.attempts, nlogs) end
    -- the link from the execution retried is part of the retry's transaction
    if it.resolved then
      local orig = it.execution_id and src:execution(it.execution_id)
      local link = orig and orig.retry_success_id and src:execution(orig.retry_success_id)
      if not link or link.status ~= "success" or link.dlq_id ~= it.id then
        bad("item %s resolved but its execution %s does not point at its successful retry", it.id,
          tostring(it.execution_id))
      end
    end
    if final and not it.resolved then bad("item %s still pending", it.id) end
    if final and it.lease_owner then bad("item %s still leased by %s", it.id, it.lease_owner) end
  end
  if items ~= n then bad("%d items, want %d (lost %d)", items, n, n - items) end
  if exact then
    for i = 1, n do
      local c = assert(rd.http.request { url = server .. "/count?key=" .. prefix .. "-" .. i }):json().count
      if c ~= 2 then bad("item %d: flaky endpoint hit %d times, want 2 (one run, one retry)", i, c) end
    end
  end
  print(string.format("check: items %d resolved %d leased %d logs %d", items, resolved, leased, logs_total))
  print("problems: " .. problems)
  os.exit(problems == 0 and 0 or 1)
else
  io.stderr:write("usage: local_queue.lua setup|retry|check ...\n")
  os.exit(2)
end

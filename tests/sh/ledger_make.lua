-- Helper of tests/sh/test_ledger.sh and the ledger rows of
-- tests/sh/test_reliability.sh: Make items on the loopback server's Make-like
-- API (tests/server/server.c, /make), retried by several processes that
-- share one ledger.
--
--   redrive ledger_make.lua seed SERVER PREFIX N         N items listed in scenario Q
--                                                        (ids PREFIX..i.."q<Q>"; Q printed)
--   redrive --ledger L ledger_make.lua retry SERVER PREFIX N Q   one bulk retry of them all
--       prints "retry: queued X skipped Y failed Z"
--   redrive --ledger L ledger_make.lua check SERVER PREFIX N Q
--       prints "check: ..." and "problems: K" (exit 1 if K > 0): every item
--       retried exactly once at the server (its makeretry/ID count), and the
--       ledger has exactly one done retry per item
--   redrive ledger_make.lua wait SERVER PREFIX N Q  until every item was retried
--       at the server at least once (server hit counts)
--   redrive --ledger L ledger_make.lua settled|reconcile SERVER PREFIX N Q  (see below)
local rd = require "redrive"
local cmd, server, prefix, n = arg[1], arg[2], arg[3], tonumber(arg[4])
local q = tonumber(arg[5])

local function id(i) return string.format("%s%dq%d", prefix, i, q) end

local function src()
  return assert(rd.connect { kind = "make", base_url = server .. "/make", token = "mk-ledger-token",
    backoff = { base = 0.01, max = 0.05 } })
end

local function count(key)
  return assert(rd.http.request { url = server .. "/count", query = { key = key } }):json().count
end

if cmd == "seed" then
  q = math.random(100000, 999999)
  local s = src()
  for i = 1, n do assert(s:incomplete_item(id(i))) end -- the server lists what it has seen
  print(q)
elseif cmd == "retry" then
  local ids = {}
  for i = 1, n do ids[i] = id(i) end
  local r = assert(src():retry { ids = ids, scenario = q, safe = false, progress = false })
  print(string.format("retry: queued %d skipped %d failed %d", r.queued or 0, r.skipped or 0, r.failed or 0))
  for _, e in ipairs(r.errors or {}) do
    if not e.skipped then print("error: " .. tostring(e.id) .. ": " .. tostring(e.message)) end
  end
elseif cmd == "wait" then
  for i = 1, n do
    while count("makeretry/" .. id(i)) < 1 do rd.sleep(0.05) end -- a poll of the server's count: an event
  end
elseif cmd == "settled" or cmd == "reconcile" then
  -- settled: exit 0 once every item is done or in doubt in the ledger (a
  -- host died holding it: seen once its lease expired and a host met it). reconcile: what an
  -- operator does after such a crash -- ask the platform (the server's
  -- count) and settle each item in doubt as done or failed.
  local ledger = require("redrive.ledger").open(rd, assert(rd._ledger_target(), "no ledger"))
  local doubt, done, after = {}, {}, 0
  repeat
    local page = assert(ledger:events { after = after, limit = 1000 })
    for _, ev in ipairs(page) do
      after = ev.id
      if ev.code == "in_doubt" then doubt[ev.item] = ev.source end
      if ev.outcome == "done" then done[ev.item] = true end
    end
  until #page < 1000
  local ok, nd, nf = true, 0, 0
  for i = 1, n do
    local x = id(i)
    local c = count("makeretry/" .. x)
    if cmd == "settled" and not done[x] and not doubt[x] then ok = false; break end
    if cmd == "reconcile" and doubt[x] and not done[x] then
      local outcome = c >= 1 and "done" or "failed"
      if assert(ledger:reconcile(doubt[x], x, "retry", outcome)) == 1 then
        if outcome == "done" then nd = nd + 1 else nf = nf + 1 end
      end
    end
  end
  if cmd == "reconcile" then print(string.format("reconciled: done %d failed %d", nd, nf)) end
  os.exit(ok and 0 or 1)
elseif cmd == "check" then
  local problems, once = 0, 0
  for i = 1, n do
    local c = count("makeretry/" .. id(i))
    if c == 1 then once = once + 1
    else problems = problems + 1; print(string.format("check: %s retried %d times at the server", id(i), c)) end
  end
  print(string.format("check: server: %d of %d items retried exactly once", once, n))
  local ledger = require("redrive.ledger").open(rd, assert(rd._ledger_target(), "no ledger"))
  local done, after = {}, 0
  repeat
    local page = assert(ledger:events { after = after, limit = 1000 })
    for _, ev in ipairs(page) do
      after = ev.id
      if ev.outcome == "done" and ev.action == "retry" and ev.item:sub(1, #prefix) == prefix then
        done[ev.item] = (done[ev.item] or 0) + 1
      end
    end
  until #page < 1000
  local good = 0
  for i = 1, n do
    if done[id(i)] == 1 then good = good + 1
    else problems = problems + 1; print(string.format("check: %s has %d done retries in the ledger", id(i), done[id(i)] or 0)) end
  end
  print(string.format("check: ledger: %d of %d items with exactly one done retry", good, n))
  print("problems: " .. problems)
  os.exit(problems == 0 and 0 or 1)
end

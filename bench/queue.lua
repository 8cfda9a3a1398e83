-- bench/queue.lua: the bulk-retry, store and start-up benchmarks' queue.
--
--   redrive bench/queue.lua setup DB SERVER N CONC KEY [DISTINCT]
--       one real run whose HTTP module fails (/flaky?fail=1&key=KEY answers
--       500 once, then 200), stored as an incomplete execution; then N - 1
--       copies of that execution and item inserted through the store (the
--       same transaction rd_store_record makes for a failed run) from CONC
--       tasks. With DISTINCT, the copies carry DISTINCT different blueprints
--       (the variable module 3 sets is named ok1, ok2, ...), so a retry
--       cannot decode one blueprint for all. Prints {items, distinct,
--       insert_seconds, inserts_per_second}.
--   redrive bench/queue.lua claims DB
--       lease every pending item in batches of 500, then release them all.
--       Prints {claimed, seconds, claims_per_second}.
--   redrive bench/queue.lua retry DB CONC
--       src:retry{all = true, concurrency = CONC}: the endpoint now succeeds.
--       Prints {total, succeeded, failed, seconds, per_second, peak_rss_kb, base_rss_kb}.
--   redrive bench/queue.lua list DB      prints the first 10 items (start-up bench)
local rd = require "redrive"
local core = require "redrive.core"
local cmd, db = arg[1], arg[2]

local function rss(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+)")
    if v then return tonumber(v) end
  end
end

if cmd == "setup" then
  local server, n, conc, key, distinct = arg[3], tonumber(arg[4]), tonumber(arg[5]), arg[6],
    tonumber(arg[7]) or 1
  local src = assert(rd.connect { kind = "local", db = db })
  local sc = assert(src:scenario_create { name = "bench-retry", blueprint = { name = "bench-retry", flow = {
    { id = 1, module = "http:ActionSendData",
      mapper = { url = server .. "/flaky?fail=1&key=" .. key, method = "get" } },
    { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.data}}" } },
    { id = 3, module = "util:SetVariable", mapper = { name = "ok", value = "{{2.ok}}" } },
  } } })
  local e = assert(src:run(sc.id, { input = { n = 1 } }))
  assert(e.dlq_id, "the first run did not fail into the queue: " .. tostring(e.status))
  local st = assert(core.store_open(db))
  local item = assert(st:dlq_get(e.dlq_id))
  local exec = assert(st:exec_get(e.id))
  exec.id, exec.dlq_id = nil, nil
  item.id, item.execution_id, item.lease_owner, item.lease_expiry = nil, nil, nil, nil
  local blueprints = { item.blueprint }
  for d = 2, distinct do
    local bp = rd.json.decode(item.blueprint)
    bp.flow[3].mapper.name = "ok" .. d
    blueprints[d] = rd.json.encode(bp)
  end
  local items = {}
  for d = 1, distinct do
    items[d] = {}
    for k, v in pairs(item) do items[d][k] = v end
    items[d].blueprint = blueprints[d]
  end
  local idx = {}
  for i = 1, n - 1 do idx[i] = i end
  local t0 = rd.now()
  local s = rd.each(idx, function(i)
    local x, err = st:record { exec = exec, dlq = items[i % distinct + 1] }
    if not x then error(err) end
  end, { concurrency = conc })
  local secs = rd.now() - t0
  assert(s.failed == 0, s.errors[1] and tostring(s.errors[1].error))
  print(rd.json.encode { items = st:dlq_count { resolved = false }, distinct = distinct, insert_seconds = secs,
    inserts_per_second = (n - 1) / secs })
elseif cmd == "claims" then
  local st = assert(core.store_open(db))
  local owner, after, claimed = "bench-claims", nil, 0
  local t0 = rd.now()
  while true do
    local got = assert(st:claim { all = true, after = after, limit = 500, owner = owner, ttl = 600 })
    if #got == 0 then break end
    claimed = claimed + #got
    after = got[#got].id
  end
  local secs = rd.now() - t0
  local released = st:release(owner)
  print(rd.json.encode { claimed = claimed, released = released, seconds = secs,
    claims_per_second = claimed / secs })
elseif cmd == "retry" then
  local conc = tonumber(arg[3])
  local src = assert(rd.connect { kind = "local", db = db })
  local base = rss("VmRSS")
  local t0 = rd.now()
  local s = assert(src:retry { all = true, concurrency = conc, progress = false })
  local secs = rd.now() - t0
  print(rd.json.encode { total = s.total, succeeded = s.succeeded, failed = s.failed,
    skipped = s.skipped, seconds = secs, per_second = s.total / secs,
    peak_rss_kb = rss("VmHWM"), base_rss_kb = base,
    first_error = s.errors[1] and tostring(s.errors[1].message) or nil })
elseif cmd == "list" then
  local src = assert(rd.connect { kind = "local", db = db })
  local n = 0
  -- resolved or not: after the retry steps every item is resolved
  for it in src:incomplete { limit = 10, resolved = "any" } do
    n = n + 1
    print(it.id, it.reason)
  end
  assert(n == 10, "listed " .. n .. " items")
else
  io.stderr:write("usage: queue.lua setup|claims|retry|list DB ...\n")
  os.exit(2)
end

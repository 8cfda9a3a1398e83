-- bench/ratelimit.lua: bulk retry against an endpoint limited to RATE req/s.
--
--   redrive bench/ratelimit.lua DB SERVER N RATE KEY CONC
--
-- N incomplete executions (one real failed run against /status/503, then
-- copies) are patched to call SERVER/ratelimit?key=KEY&rate=RATE, which
-- answers 429 with Retry-After beyond RATE requests per second, then
-- src:retry{all = true, concurrency = CONC}. Prints {items, succeeded,
-- failed, seconds, achieved_per_second, rate, ratio, first_error}:
-- ratio = achieved / RATE, meaningful only when every item succeeded.
local rd = require "redrive"
local core = require "redrive.core"
local db, server, n, rate, key, conc = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5],
  tonumber(arg[6])

local src = assert(rd.connect { kind = "local", db = db })
local function flow(url)
  return { name = "bench-ratelimit", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = url, method = "get" } },
    { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.data}}" } },
    { id = 3, module = "util:SetVariable", mapper = { name = "ok", value = "{{2.ok}}" } },
  } }
end
local sc = assert(src:scenario_create { name = "bench-ratelimit", blueprint = flow(server .. "/status/503") })
local e = assert(src:run(sc.id, { input = { n = 1 } }))
assert(e.dlq_id, "the first run did not fail into the queue")
local st = assert(core.store_open(db))
local item = assert(st:dlq_get(e.dlq_id))
local exec = assert(st:exec_get(e.id))
exec.id, exec.dlq_id = nil, nil
item.id, item.execution_id, item.lease_owner, item.lease_expiry = nil, nil, nil, nil
local idx = {}
for i = 1, n - 1 do idx[i] = i end
assert(rd.each(idx, function() assert(st:record { exec = exec, dlq = item }) end, { concurrency = 64 }).failed == 0)
-- fix: point every item's blueprint at the rate-limited endpoint
local fixed = rd.blueprint(item.blueprint)
fixed:module(1).mapper.url = server .. "/ratelimit?key=" .. key .. "&rate=" .. rate
local text = fixed:json()
for it in src:incomplete { resolved = false } do assert(st:dlq_patch(it.id, { blueprint = text })) end

local t0 = rd.now()
local s = assert(src:retry { all = true, concurrency = conc, progress = false })
local secs = rd.now() - t0
local achieved = s.succeeded / secs
print(rd.json.encode { items = s.total, succeeded = s.succeeded, failed = s.failed, seconds = secs,
  achieved_per_second = achieved, rate = rate,
  ratio = (s.failed == 0 and s.succeeded == n) and achieved / rate or rd.json.null,
  first_error = s.errors[1] and tostring(s.errors[1].message) or nil })

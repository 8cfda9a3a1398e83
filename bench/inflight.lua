-- bench/inflight.lua: memory per in-flight execution.
--
--   redrive bench/inflight.lua DB SERVER N
--
-- N executions of a 3-module scenario (HTTP GET SERVER/delay/4000 first)
-- are started at once (concurrency N) on the local source; once every one of
-- them is waiting on its HTTP module, VmRSS is sampled. Prints
-- {inflight, base_rss_kb, peak_rss_kb, per_exec_bytes}. Requests beyond the
-- HTTP layer's per-host connection cap are queued inside curl: they are in
-- flight for the engine (a task, its run state, a curl handle) all the same.
local rd = require "redrive"
local db, server, n = arg[1], arg[2], tonumber(arg[3])

local function rss()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local src = assert(rd.connect { kind = "local", db = db })
local sc = assert(src:scenario_create { name = "bench-inflight", blueprint = { name = "bench-inflight", flow = {
  { id = 1, module = "http:ActionSendData", mapper = { url = server .. "/delay/4000", method = "get" } },
  { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.data}}" } },
  { id = 3, module = "util:SetVariable", mapper = { name = "ok", value = "{{2.ok}}" } },
} } })
-- warm up: the engine, its modules and one connection exist before the baseline
local warm = assert(src:scenario_create { name = "warm", blueprint = { name = "warm", flow = {
  { id = 1, module = "http:ActionSendData", mapper = { url = server .. "/ok", method = "get" } },
  { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.data}}" } },
  { id = 3, module = "util:SetVariable", mapper = { name = "ok", value = "{{2.ok}}" } },
} } })
for _ = 1, 20 do assert(src:run(warm.id, {})) end
collectgarbage()
local base = rss()
local started = 0
for i = 1, n do
  rd.spawn(function()
    started = started + 1
    src:run(sc.id, { input = { n = i } })
  end)
end
local peak = 0
local sampler = rd.spawn(function()
  for _ = 1, 10 do
    rd.sleep(0.15)
    local r = rss()
    if r > peak then peak = r end
  end
end)
sampler:wait()
print(rd.json.encode { inflight = started, base_rss_kb = base, peak_rss_kb = peak,
  per_exec_bytes = (peak - base) * 1024 / n })
os.exit(0) -- the executions are still waiting on /delay; they are not needed

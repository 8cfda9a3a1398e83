-- bench/engine.lua: the engine benchmark (3-module scenario, local source).
--
--   redrive bench/engine.lua DB SINK_URL RUNS CONCURRENCY
--
-- Scenario: http:ActionSendData GET SINK_URL -> json:ParseJSON of the body
-- -> util:SetVariable; each run goes through src:run, so every execution is
-- recorded in the store (durably: synchronous=FULL, group commit) before it
-- is acknowledged. Prints one JSON line: {runs, seconds, per_second, failed,
-- recorded}.
local rd = require "redrive"
local db, sink, runs, conc = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])

local src = assert(rd.connect { kind = "local", db = db })
local sc = assert(src:scenario_create { name = "bench-engine", blueprint = { name = "bench-engine", flow = {
  { id = 1, module = "http:ActionSendData", mapper = { url = sink, method = "get" } },
  { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.data}}" } },
  { id = 3, module = "util:SetVariable", mapper = { name = "ok", value = "{{2.ok}}" } },
} } })

-- one warm-up run (loads the engine, opens the connection)
local e = assert(src:run(sc.id, { input = { n = 0 } }))
assert(e.status == "success", "warm-up run: " .. tostring(e.status) .. " " .. rd.json.encode(e.error or {}))

local inputs = {}
for i = 1, runs do inputs[i] = i end
local t0 = rd.now()
local s = rd.each(inputs, function(i)
  local x, err = src:run(sc.id, { input = { n = i } })
  if not x then error(err) end
  if x.status ~= "success" then error("run " .. i .. ": " .. x.status) end
end, { concurrency = conc })
local secs = rd.now() - t0
local recorded = 0
for _ in src:executions { scenario = sc.id, status = "success" } do recorded = recorded + 1 end
print(rd.json.encode { runs = runs, seconds = secs, per_second = runs / secs, failed = s.failed,
  recorded = recorded - 1, first_error = s.errors[1] and tostring(s.errors[1].error) or nil })

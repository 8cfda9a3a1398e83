-- bench/scale.lua: work that must grow linearly with the input (issue 13,
-- finding 5), each measured at n and 2n: time per unit and the ratio
-- t(2n) / t(n) (about 2 when linear, about 4 when quadratic).
--
--   redrive bench/scale.lua DB SPACES MODULES
--
-- mapper: `{{if(1.v = 5; ...)}}` where 1.v is "a", SPACES spaces, "b" (the
--   webhook value that blocked the loop for 28 s), evaluated repeatedly.
-- engine: one src:run of a scenario of MODULES util:SetVariable modules,
--   each mapping the previous one's output; validated, run and recorded.
-- Prints one JSON line: {mapper = {n, ns_per_byte, ratio}, engine = {...}}.
local rd = require "redrive"
local M = require "redrive.engine.mapper"
local db, spaces, modules = arg[1], tonumber(arg[2]), tonumber(arg[3])

-- seconds for fn(n), repeated until at least 0.2 s have passed
local function timed(fn, n)
  local reps, t0 = 0, rd.now()
  repeat
    fn(n)
    reps = reps + 1
  until rd.now() - t0 >= 0.2
  return (rd.now() - t0) / reps
end

local function mapper(n)
  local scope = { outputs = { ["1"] = { v = "a" .. (" "):rep(n) .. "b" } } }
  assert(M.eval('{{if(1.v = 5; "y"; "n")}}', scope) == "n")
end

local src = assert(rd.connect { kind = "local", db = db })
local scenarios = {}
local function scenario(n)
  local flow = {}
  for i = 1, n do
    flow[i] = { id = i, module = "util:SetVariable",
                mapper = { name = "v", value = i == 1 and "x" or ("{{" .. (i - 1) .. ".v}}") } }
  end
  return assert(src:scenario_create { name = "scale-" .. n, blueprint = { name = "scale", flow = flow } }).id
end
local function engine(n)
  local e = assert(src:run(scenarios[n], { input = { n = n } }))
  assert(e.status == "success", "run of " .. n .. " modules: " .. tostring(e.status))
end

-- the best of three, against noise from other processes
local function best(fn, n) return math.min(timed(fn, n), timed(fn, n), timed(fn, n)) end

local function measure(fn, n, unit)
  fn(n) -- warm-up (the template cache, the blueprint cache)
  local t1, t2 = best(fn, n), best(fn, 2 * n)
  return { n = n, [unit] = t1 / n * 1e9, ratio = t2 / t1, seconds_n = t1, seconds_2n = t2 }
end

local out = { mapper = measure(mapper, spaces, "ns_per_byte") }
scenarios[modules], scenarios[2 * modules] = scenario(modules), scenario(2 * modules)
out.engine = measure(engine, modules, "ns_per_module")
print(rd.json.encode(out))

-- Hostile code in the sandbox (issue 13, findings 1, 2 and 6): lua:Run
-- modules and rules that never end, match catastrophically, grow their
-- memory, hide in pcall or spread their work over a feeder. Each is stopped
-- by its limit with its code, and a second task keeps ticking while it
-- trips: the loop is never blocked. Nothing here measures time; limits are
-- sized so that each trip lasts long enough for the ticker to tick.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local test, eq, ok, match = H.test, H.eq, H.ok, H.match
local rd = require "redrive"
local engine = require "redrive.engine"
local S = require "redrive.sandbox"
local R = require "redrive.rules"

local MiB = 1024 * 1024
local SAN = (os.getenv("SAN") or "") ~= "" or (os.getenv("VALGRIND") or "") ~= ""

-- Small global limits, so that every trip here is quick and deterministic
-- (an instruction budget, not a clock, stops the loops).
local LIMITS = { timeout = 600, memory = 64 * MiB, instructions = 30000000 }
S.global = LIMITS

-- ticking(fn, ...) -> ticks seen while fn ran, fn's results. A ticker task
-- sleeps 1 ms per tick; it can only tick while fn's task is parked or has
-- yielded, never while fn holds the loop.
local function ticking(fn, ...)
  local ticks, stop = 0, false
  local seen_methods = true
  local ticker = rd.spawn(function()
    while not stop do
      rd.sleep(0.001)
      ticks = ticks + 1
      -- another task always sees the stock string methods, whatever a
      -- sandboxed run does with them while it runs
      if getmetatable("").__index ~= string then seen_methods = false end
    end
  end)
  rd.sleep(0.001)
  local before = ticks
  local r = table.pack(fn(...))
  local during = ticks - before
  stop = true
  ticker:wait()
  ok(seen_methods, "another task saw the sandbox's string methods")
  return during, table.unpack(r, 1, r.n)
end

local function bp(flow) return { name = "hostile", flow = flow } end

-- run_code(code, mapper) -> ticks, engine result of a one-module lua:Run flow
local function run_code(code, mapper)
  local m = { code = code }
  for k, v in pairs(mapper or {}) do m[k] = v end
  return ticking(engine.run, bp { { id = 1, module = "lua:Run", mapper = m } })
end

local function tripped(out, code, pat, what)
  eq(out.status, "error", what)
  eq(out.error.code, code, (what or "") .. " (" .. tostring(out.error.message) .. ")")
  if pat then match(out.error.message, pat, what) end
end

local function status_kb(pid, field)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

-- ---------------------------------------------------------------------------
-- 1. lua:Run

test("sandbox-1.1 a catastrophic pattern stops with 'limit', function and method form, the loop free", function()
  for _, code in ipairs {
    "return string.find(string.rep('a', 3000), '.-.-.-.-b')",
    "return ('a'):rep(3000):find('.-.-.-.-b')",
    "local s = ('a'):rep(3000) return s:match('.-.-.-.-b')",
    "return (('a'):rep(3000):gsub('.-.-.-.-b', 'x'))",
  } do
    local ticks, out = run_code(code)
    tripped(out, "limit", "^lua:Run %(module 1%): pattern '%.%-%.%-%.%-%.%-b': step budget of %d+ exceeded$", code)
    ok(ticks > 0, "the ticker ticked while the pattern ran: " .. code)
  end
end)

test("sandbox-1.2 while true do end stops at the run's instruction budget, even inside pcall", function()
  for _, code in ipairs {
    "while true do end",
    "while true do pcall(function() while true do end end) end",
    "local ok = pcall(function() while true do end end) return 'swallowed'",
    "for i = 1, 3 do xpcall(function() while true do end end, function() return 'caught' end) end return 'swallowed'",
  } do
    local ticks, out = run_code(code)
    tripped(out, "limit", "^lua:Run %(module 1%): stopped after 30000000 instructions %(shared by the run's lua:Run " ..
      "modules%), at lua:Run %(module 1%):1$", code)
    ok(ticks > 0, "ticks during " .. code)
  end
end)

test("sandbox-1.3 work inside one C call is stopped at the time limit: the worker is killed", function()
  -- table.move over 10^12 nil slots allocates nothing and never returns to
  -- Lua: only the worker's death stops it
  local before = #S.workers()
  local ticks, out = run_code("table.move({}, 1, 1e12, 1, {}) return 'done'", { timeout = 0.2 })
  tripped(out, "limit", "^lua:Run %(module 1%): stopped at its time limit of 0%.2 s %(its worker process was killed%)$")
  ok(ticks > 0, "ticks while the worker spun")
  ok(#S.workers() <= before, "the killed worker is not reused")
  -- the next module gets a working worker
  local _, again = run_code("return 41 + 1")
  eq(again.status, "success"); eq(again.run_data["1"].output, 42)
end)

test("sandbox-1.4 s = s .. s fails with 'nomem' at the cap; the worker stays under cap + a constant", function()
  local parent0 = status_kb("self", "VmHWM")
  local _, out = run_code("local s = ('x'):rep(1024) while true do s = s .. s end", { maxMemory = 16 * MiB })
  tripped(out, "nomem", "^lua:Run %(module 1%): stopped: it needs more than 16 MiB of memory$")
  if SAN then return H.skip("sandbox-1.4b process memory", "sanitizer or valgrind memory in the way") end
  local parent1 = status_kb("self", "VmHWM")
  ok(parent1 - parent0 < 32 * 1024, "this process grew by " .. (parent1 - parent0) .. " kB")
  -- a forked worker starts with this process's pages: its peak is ours
  -- plus what the code took, which the cap bounds
  local pids = S.workers()
  ok(#pids > 0, "a worker is idle after a nomem")
  for _, pid in ipairs(pids) do
    local hwm = status_kb(pid, "VmHWM")
    ok(hwm and hwm < parent1 + (16 + 32) * 1024, "worker " .. pid .. " peak " .. tostring(hwm) .. " kB, parent " .. parent1)
  end
end)

test("sandbox-1.5 table.concat and gsub growth fail with 'nomem'; pcall cannot swallow it", function()
  for _, c in ipairs {
    { "local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(100) .. i end return #table.concat(t)", 32 },
    { "local s = ('x'):rep(1 << 16) for i = 1, 40 do s = s:gsub('x+', '%0%0') end return #s", 8 },
    { "local s = 'x' for i = 1, 40 do pcall(function() s = s .. s end) end return #s", 32 },
    { "local t = {} local ok = pcall(function() while true do t[#t + 1] = {} end end) return 'swallowed'", 32 },
  } do
    local _, out = run_code(c[1], { maxMemory = c[2] * MiB })
    tripped(out, "nomem", "^lua:Run %(module 1%): stopped: it needs more than " .. c[2] .. " MiB of memory$", c[1])
  end
end)

test("sandbox-1.6 a feeder over 200 elements into a heavy lua:Run hits the run's budget", function()
  local items = {}
  for i = 1, 200 do items[i] = i end
  local ticks, out = ticking(engine.run, bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.items}}" } },
    { id = 2, module = "lua:Run", mapper = { code = "local x = 0 for i = 1, 100000 do x = x + i end return x" } },
  }, { input = { items = items } })
  tripped(out, "limit", "^lua:Run %(module 2%): stopped after 30000000 instructions %(shared by the run's lua:Run modules%)")
  ok(out.operations > 10 and out.operations < 201, "some elements ran before the budget was spent: " .. out.operations)
  ok(ticks > 0, "ticks during the feeder")
  -- the budget is the run's: a new run starts with a full one
  local _, fresh = run_code("local x = 0 for i = 1, 100000 do x = x + i end return x")
  eq(fresh.status, "success")
end)

test("sandbox-1.7 a limit is a module error: an incomplete execution, never a success", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = assert(src:scenario_create { name = "spin", blueprint = bp {
    { id = 1, module = "lua:Run", mapper = { code = "while true do end" } } } })
  local e = assert(src:run(sc.id))
  eq(e.status, "error"); eq(e.error.code, "limit")
  local n = 0
  for item in src:incomplete { scenario = sc.id } do
    n = n + 1
    match(item.reason, "stopped after 30000000 instructions")
  end
  eq(n, 1)
  src:close()
end)

test("sandbox-1.8 a worker serves many runs: nothing one leaves reaches the next", function()
  local _, a = run_code("leak = 'left'; string.upper = nil; rd.json.encode = nil; return 1")
  eq(a.status, "success")
  local _, b = run_code("return { leak = leak == nil, upper = ('x'):upper(), json = rd.json.encode({1}) }")
  eq(b.status, "success", b.error and b.error.message)
  eq(b.run_data["1"].output, { leak = true, upper = "X", json = "[1]" })
  -- an input larger than the cap fails the module before its code runs
  local big = {}
  for i = 1, 20000 do big[i] = ("v"):rep(100) .. i end
  local out = engine.run(bp { { id = 1, module = "lua:Run", mapper = { maxMemory = 1024 * 1024, code = "return 1" } } },
    { input = { big = big } })
  tripped(out, "nomem", "^lua:Run %(module 1%): stopped: it needs more than 1 MiB of memory")
  local _, c = run_code("return 2")
  eq(c.status, "success")
end)

-- ---------------------------------------------------------------------------
-- 2. rules: the same sandbox, in this process

local function rule_file(body) return assert(R.load_file(H.tmpfile(body, ".lua"))) end

test("sandbox-2.1 a runaway match or action trips 'limit', yielding to the loop, even inside pcall", function()
  local rule = rule_file [[
return { name = "spin", instructions = 20000000,
  match = function(item) while true do pcall(function() while true do end end) end end,
  action = function(item, ctx) local ok = pcall(function() while true do end end) return ok end }]]
  for _, f in ipairs { rule.match, rule.action } do
    local ticks, okr, msg, code = ticking(R.guard, rule, f, {}, {})
    eq(okr, false); eq(code, "limit")
    match(msg, "^rule 'spin': stopped after 20000000 instructions, at .*%.lua:%d+$")
    ok(ticks > 0, "the rule yielded to the loop while it spun")
  end
end)

test("sandbox-2.2 a long rule yields: another task runs while it is busy", function()
  local ticks = 0
  local ticker = rd.spawn(function() while ticks < 3 do rd.sleep(0.001); ticks = ticks + 1 end end)
  -- busy until the ticker has ticked: only possible if the rule yields
  local okr, n = R.guard({ name = "wait", chunk = "=(test)", limits = assert(S.limits()) }, function()
    local spins = 0
    while ticks < 3 do spins = spins + 1 end
    return spins
  end)
  ticker:wait()
  eq(okr, true, n); ok(n > 0)
end)

test("sandbox-2.3 a catastrophic pattern in a rule stops with 'limit', function and method form", function()
  local rule = rule_file [[
return { name = "pat", timeout = 2,
  match = function(item) return ("a"):rep(200):find(".-.-.-.-b") end,
  action = function(item, ctx)
    if ctx.again then while true do pcall(string.find, ("a"):rep(40), ".-.-.-.-b") end end
    return string.match(string.rep("a", 200), ".-.-.-.-b")
  end }]]
  for _, f in ipairs { rule.match, rule.action } do
    local okr, msg, code = R.guard(rule, f, {}, {})
    eq(okr, false); eq(code, "limit")
    match(msg, "pattern '%.%-%.%-%.%-%.%-b': step budget of 1000000 exceeded")
  end
  -- a short bounded match called again and again: each call is seen when it
  -- returns, the loop keeps turning, and the rule's time limit ends it
  -- (each call is short on any machine, also under valgrind: a call of the
  -- full step budget may outlast the 2 s there, and end the rule before the
  -- loop had a turn)
  local ticks, okr, msg, code = ticking(R.guard, rule, rule.action, {}, { again = true })
  eq(okr, false); eq(code, "limit"); match(msg, "^rule 'pat': stopped at its time limit of 2 s, at .*%.lua:4$")
  ok(ticks > 0, "ticks while the rule matched again and again")
  -- the stock library is untouched for everyone else
  eq(getmetatable("").__index, string)
  eq(("abc"):find("b"), 2)
end)

test("sandbox-2.3b a C call without a bound of its own is refused in a rule", function()
  local rule = rule_file [[
return { name = "move", match = function(item) table.move({}, 1, 1e12, 1, {}) return true end,
  action = function(item, ctx) local t = {} for i = 1, 1100000 do t[i] = -i end table.sort(t) end }]]
  local okr, msg, code = R.guard(rule, rule.match, {})
  eq(okr, false); eq(code, "script"); match(msg, "%.lua:1: table%.move: more than 1000000 elements in the sandbox")
  okr, msg, code = R.guard(rule, rule.action, {}, {})
  eq(okr, false); eq(code, "script"); match(msg, "%.lua:2: table%.sort: more than 1000000 elements in the sandbox")
end)

test("sandbox-2.4 a rule's memory is capped in the allocator: 'nomem', not swallowed by pcall", function()
  local rule = rule_file [[
return { name = "grow", memory = 16 * 1024 * 1024,
  match = function(item) local s = ("x"):rep(1024) while true do s = s .. s end end,
  action = function(item, ctx)
    local t = {}
    for i = 1, 50 do pcall(function() t[#t + 1] = ("x"):rep(1 << 20) .. i end) end
    return "swallowed"
  end }]]
  local hwm0 = status_kb("self", "VmHWM")
  for _, f in ipairs { rule.match, rule.action } do
    local _, okr, msg, code = ticking(R.guard, rule, f, {}, {})
    eq(okr, false, msg); eq(code, "nomem")
    eq(msg, "rule 'grow': stopped: it needs more than 16 MiB of memory")
  end
  collectgarbage()
  if not SAN then
    local hwm1 = status_kb("self", "VmHWM")
    ok(hwm1 - hwm0 < 48 * 1024, "this process grew by " .. (hwm1 - hwm0) .. " kB")
  end
  -- allocation is free again once the rule is done
  local big = ("y"):rep(32 * MiB)
  eq(#big, 32 * MiB)
end)

test("sandbox-2.5 a rule's limits: a rule may lower them, never raise them", function()
  local rule = rule_file [[return { name = "lim", timeout = 1e6, memory = 1e15, instructions = 1000000,
    match = function() return true end, action = function() end }]]
  eq(rule.limits.timeout, LIMITS.timeout); eq(rule.limits.memory, LIMITS.memory)
  eq(rule.limits.instructions, 1000000)
  local r, err = R.load_file(H.tmpfile("return { name = 'bad', timeout = -1, match = function() end, " ..
    "action = function() end }", ".lua"))
  eq(r, nil); match(err, "option 'timeout' must be")
end)

H.done()

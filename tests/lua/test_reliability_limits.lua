-- Reliability of the limits: a run that hits every input limit at once
-- (response body and headers, JSON strictness and depth, numbers in
-- options, the http module's maxBody, pattern step budgets, the sandbox's
-- instructions, time and memory for lua:Run and rules) while a second task
-- keeps ticking.
-- Each limit must trip with its code and the ticker must advance while
-- they trip. `make test` runs one round; `make reliability` (RD_FULL=1) 20.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = assert(H.server, "RD_TEST_SERVER not set")
local engine = require "redrive.engine"
local SB = require "redrive.sandbox"
local R = require "redrive.rules"
local ROUNDS = os.getenv("RD_FULL") and 20 or 1

-- the sandbox's global limits: an instruction budget small enough that
-- the loops trip quickly, a time limit that only the rows asking for less
-- reach (the machine's speed, valgrind included, decides nothing)
SB.global = { timeout = 60, memory = 64 * 1024 * 1024, instructions = 30000000 }

-- lua_run(code, mapper) -> nil, message, code of a one-module lua:Run flow
local function lua_run(code, mapper)
  local m = { code = code }
  for k, v in pairs(mapper or {}) do m[k] = v end
  local out = engine.run { name = "r", flow = { { id = 1, module = "lua:Run", mapper = m } } }
  return out.status == "success" or nil, out.error and out.error.message, out.error and out.error.code
end

-- rule(body) -> a function calling the loaded rule's match in its sandbox
local function rule(body)
  local r = assert(R.load_file(H.tmpfile(body, ".lua")))
  return function()
    local ok, msg, code = R.guard(r, r.match, {})
    return ok or nil, msg, code
  end
end

-- Each hostile call and the code its limit must give.
local HOSTILE = {
  { "body: gzip bomb", "too_large", function() return rd.http.request { url = S .. "/gzip-bomb" } end },
  { "body: endless", "too_large", function() return rd.http.request { url = S .. "/endless" } end },
  { "headers: 1 MiB", "too_large", function() return rd.http.request { url = S .. "/many-headers" } end },
  { "http module maxBody", "too_large", function()
    local out = engine.run({ name = "r", flow = { { id = 1, module = "http:ActionSendData",
      mapper = { url = S .. "/endless", maxBody = 4096 } } } }, {})
    return nil, out.error and out.error.message, out.error and out.error.code
  end },
  { "json: 100 000 levels", "invalid", function()
    return rd.json.decode(string.rep("[", 100000) .. string.rep("]", 100000))
  end },
  { "json: not RFC 8259", "invalid", function() return rd.json.decode('[012, "a\tb"]') end },
  { "option: timeout = inf", "invalid", function()
    return rd.http.request { url = S .. "/ok", timeout = math.huge }
  end },
  { "option: max_body = nan", "invalid", function()
    return rd.http.request { url = S .. "/ok", max_body = 0 / 0 }
  end },
  { "pattern: .-.-.-.-b on 3000 bytes", "limit", function()
    local ok, e = pcall(rd.pattern.find, string.rep("a", 3000), ".-.-.-.-b")
    return ok and true or nil, tostring(e), type(e) == "table" and e.code or nil
  end },
  { "engine text:pattern filter", "limit", function()
    local out = engine.run({ name = "r", flow = { { id = 1, module = "util:SetVariable",
      mapper = { name = "x", value = "1" }, filter = { name = "f", conditions = {
        { { a = "{{0.s}}", o = "text:pattern", b = ".-.-.-.-b" } } } } } } }, { input = { s = string.rep("a", 3000) } })
    return nil, out.error and out.error.message, out.error and out.error.code
  end },
  { "lua:Run catastrophic pattern (method form)", "limit", function()
    return lua_run("return ('a'):rep(3000):find('.-.-.-.-b')")
  end },
  { "lua:Run while true do end", "limit", function() return lua_run("while true do end") end },
  { "lua:Run spinning inside one C call: killed at its time limit", "limit", function()
    return lua_run("table.move({}, 1, 1e12, 1, {})", { timeout = 0.3 })
  end },
  { "lua:Run s = s .. s", "nomem", function()
    return lua_run("local s = 'x' while true do s = s .. s end", { maxMemory = 16 * 1024 * 1024 })
  end },
  { "lua:Run feeder x 200: the run's budget", "limit", function()
    local items = {}
    for i = 1, 200 do items[i] = i end
    local out = engine.run({ name = "r", flow = {
      { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.items}}" } },
      { id = 2, module = "lua:Run", mapper = { code = "local x = 0 for i = 1, 100000 do x = x + i end return x" } },
    } }, { input = { items = items } })
    return nil, out.error and out.error.message, out.error and out.error.code
  end },
  { "rule match runaway (through pcall)", "limit", rule [[return { name = "spin",
    match = function() while true do pcall(function() while true do end end) end end, action = function() end }]] },
  { "rule pattern runaway (method form, again and again)", "limit", rule [[return { name = "pat", timeout = 0.3,
    match = function() while true do pcall(function() return ("a"):rep(200):find(".-.-.-.-b") end) end end,
    action = function() end }]] },
  { "rule s = s .. s", "nomem", rule [[return { name = "grow", memory = 16 * 1024 * 1024,
    match = function() local s = "x" while true do s = s .. s end end, action = function() end }]] },
}

test("reliability-limits every limit trips with its code while a ticker keeps ticking (" .. ROUNDS .. " rounds)", function()
  local ticks, stop = 0, false
  local ticker = rd.spawn(function()
    while not stop do rd.sleep(0.005); ticks = ticks + 1 end
  end)
  for round = 1, ROUNDS do
    local before = ticks
    local got = {}
    local fns = {}
    for i, h in ipairs(HOSTILE) do
      fns[i] = function()
        local r, msg, code = h[3]()
        got[i] = { ok = r ~= nil, code = code, msg = msg }
      end
    end
    -- the ticker must move while the hostile calls are in flight: one more
    -- task waits for its next tick before the round may end
    fns[#fns + 1] = function()
      local seen = ticks
      while ticks == seen do rd.sleep(0.001) end
    end
    assert(rd.all(fns))
    for i, h in ipairs(HOSTILE) do
      eq(got[i].ok, false, "round " .. round .. ": " .. h[1] .. " gave a result")
      eq(got[i].code, h[2], "round " .. round .. ": " .. h[1] .. " (" .. tostring(got[i].msg) .. ")")
    end
    ok(ticks > before, "round " .. round .. ": the ticker did not advance")
  end
  stop = true
  ticker:wait()
end)

H.done()

-- Reliability of the limits: a run that hits every input limit at once
-- (response body and headers, JSON strictness and depth, numbers in
-- options, the http module's maxBody, pattern step budgets) while a second
-- task keeps ticking.
-- Each limit must trip with its code and the ticker must advance while
-- they trip. `make test` runs one round; `make reliability` (RD_FULL=1) 20.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = assert(H.server, "RD_TEST_SERVER not set")
local engine = require "redrive.engine"
local ROUNDS = os.getenv("RD_FULL") and 20 or 1

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

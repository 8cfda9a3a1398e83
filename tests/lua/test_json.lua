-- JSON bridge: rd.json.decode / encode / null / array / object
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local json = rd.json

test("json-1.1 scalars and integers", function()
  eq(json.decode("42"), 42)
  eq(math.type(json.decode("42")), "integer")
  eq(math.type(json.decode("9007199254740992")), "integer")
  eq(json.decode("9007199254740992"), 9007199254740992)
  eq(math.type(json.decode("2.5")), "float")
  eq(json.decode("-0.5e1"), -5)
  eq(json.decode("true"), true)
  eq(json.decode('"x"'), "x")
  ok(json.decode("null") == json.null, "null sentinel")
  eq(tostring(json.null), "null")
end)

test("json-1.2 [] and {} round-trip; decode marks kinds", function()
  eq(json.encode(json.decode("[]")), "[]")
  eq(json.encode(json.decode("{}")), "{}")
  eq(json.kind(json.decode("[]")), "array")
  eq(json.kind(json.decode("{}")), "object")
  eq(json.encode(json.array {}), "[]")
  eq(json.encode(json.object {}), "{}")
  eq(json.encode({}), "{}")
  eq(json.encode({ 1, 2, 3 }), "[1,2,3]")
  eq(json.decode('{"a":{"b":[1,{"c":[]}]}}').a.b[2].c, json.array {})
  eq(json.encode(json.decode('{"a":{"b":[1,{"c":[]}]}}')), '{"a":{"b":[1,{"c":[]}]}}')
end)

test("json-1.3 nulls keep array positions", function()
  local a = json.decode("[1,null,3]")
  eq(#a, 3); ok(a[2] == json.null)
  eq(json.encode(a), "[1,null,3]")
end)

test("json-1.4 unicode escapes and UTF-8", function()
  eq(json.decode('"\\u00e9\\u4e2d"'), "é中")
  eq(json.decode('"\\ud83d\\ude00"'), "😀")
  eq(json.decode(json.encode("tab\tquote\"nl\n")), "tab\tquote\"nl\n")
  eq(json.encode("é"), '"é"')
end)

test("json-1.5 invalid UTF-8 is refused with a position", function()
  check_err("invalid", "invalid UTF%-8 at line 1, column 3", json.decode, '"a\xff"')
  check_err("invalid", "invalid UTF%-8", json.encode, "bad \xc3\x28")
end)

test("json-1.6 syntax errors say where", function()
  local msg = check_err("invalid", "line 2, column", json.decode, '{\n "a": tru }')
  match(msg, "^json: syntax error")
  check_err("invalid", "unexpected end of input", json.decode, '{"a": [1,')
  check_err("invalid", "syntax error", json.decode, '{"a": 1} trailing')
  check_err("invalid", nil, json.decode, "")
end)

test("json-1.7 depth is bounded both ways", function()
  local deep = string.rep("[", 100000) .. string.rep("]", 100000)
  check_err("invalid", nil, json.decode, deep)
  local t = {}
  local cur = t
  for _ = 1, 2000 do cur.x = {}; cur = cur.x end
  check_err("invalid", "nesting deeper", json.encode, t)
  local cyc = {}; cyc.self = cyc
  check_err("invalid", "cycle", json.encode, cyc)
end)

test("json-1.8 values that cannot be encoded", function()
  check_err("invalid", "NaN", json.encode, 0/0)
  check_err("invalid", "infinity", json.encode, math.huge)
  check_err("invalid", "function", json.encode, { f = print })
  check_err("invalid", "key of type", json.encode, { [true] = 1 })
  eq(json.decode(json.encode({ [1] = "a", [2] = "b" })), { "a", "b" })
end)

test("json-1.9 pretty printing parses back to the same value", function()
  local v = { name = "x", flow = { { id = 1, module = "m" } }, n = 1.5 }
  local s = json.encode(v, { pretty = true })
  match(s, "\n")
  eq(json.decode(s), v)
end)

test("json-1.10 misuse raises", function()
  raises("string expected", json.decode, nil)
  raises("table expected", json.array, 5)
end)

test("json-1.11 hostile inputs never crash", function()
  math.randomseed(7)
  local pieces = { "{", "}", "[", "]", '"', ":", ",", "1", "-", "e", ".", "tru", "null", "\\u", "\\", " ", "\xff", "\0" }
  for _ = 1, 3000 do
    local t = {}
    for j = 1, math.random(1, 30) do t[j] = pieces[math.random(#pieces)] end
    local s = table.concat(t)
    local v, err, code = json.decode(s)
    if v == nil then eq(code, "invalid"); ok(type(err) == "string", "message") end
  end
end)

test("json-1.12 numbers encode exactly", function()
  eq(json.encode(0.1 + 0.2), "0.30000000000000004")
  eq(json.encode(9007199254740991), "9007199254740991")
  eq(json.encode(math.maxinteger), "9223372036854775807")
  eq(json.decode(json.encode(1 / 3)), 1 / 3)
  eq(json.encode({ 1.5, -2, 1e300 }), "[1.5,-2,1e+300]")
  -- an HTTP json body uses the same printer
  local e = assert(rd.http.request { url = H.server .. "/echo", json = { n = 0.1 + 0.2 } }):json()
  eq(e.body, '{"n":0.30000000000000004}')
end)

test("json-1.13 numbers out of range are refused", function()
  check_err("invalid", "out of range", json.decode, "1e400")
  check_err("invalid", "out of range", json.decode, "[-1e999]")
end)

test("json-1.14 a key never appears twice; lists of results are arrays even when empty", function()
  check_err("invalid", 'json: the key "1" twice %(the integer 1 and the string "1"%)', json.encode,
    { [1] = "a", ["1"] = "b" })
  check_err("invalid", '"2" twice .* at %.x', json.encode, { x = { [2] = 1, ["2"] = 3 } })
  eq(json.encode { [1] = "a", b = 2 } ~= nil, true) -- mixed, no collision: an object
  -- results of the sources: empty lists print as []
  local C = require "redrive.source.common"
  eq(json.encode(C.list()), "[]")
  local s = C.summary()
  eq(json.decode(json.encode(s)).errors, json.array {})
  match(json.encode(s), '"errors":%[%]'); match(json.encode(s), '"results":%[%]')
  -- a top reason: one field each in JSON, [1] and [2] still read them
  local r = C.reason_entry { "HTTP 500", 3, reason = "HTTP 500", count = 3 }
  eq(r[1], "HTTP 500"); eq(r[2], 3); eq(r.reason, "HTTP 500"); eq(r.count, 3)
  eq(json.decode(json.encode(r)), { reason = "HTTP 500", count = 3 })
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  match(json.encode(assert(src:health {})), '"top_reasons":%[%]')
  match(json.encode(assert(src:delete_incomplete { all = true, confirmed = true })), '"errors":%[%]')
  match(json.encode(rd.each({}, function() end)), '"errors":%[%]')
end)

test("json-1.15 escapes, keys and where a refusal happened", function()
  -- every control byte is escaped (the short forms, else \u00xx in lower case)
  eq(json.encode("\1\b\f\n\r\t\31\"\\/\127"), '"\\u0001\\b\\f\\n\\r\\t\\u001f\\"\\\\/\127"')
  eq(json.decode(json.encode("\31x")), "\31x")
  -- keys are escaped as values are; integer keys of an object are text
  eq(json.encode { ["a\nb"] = 1 }, '{"a\\nb":1}')
  eq(json.encode(json.object { [2] = "x" }), '{"2":"x"}')
  -- a NUL inside a value is refused like invalid UTF-8, naming its byte
  check_err("invalid", "invalid UTF%-8 %(byte 2%)", json.encode, "a\0b")
  -- the innermost place is named, once
  local msg = check_err("invalid", "cannot encode a function", json.encode, { a = { 1, { b = print } } })
  match(msg, " at %.b$")
  msg = check_err("invalid", "invalid UTF%-8", json.encode, { "ok", "\xff" })
  match(msg, " at %[2%]$")
  check_err("invalid", "key of type boolean", json.encode, { x = { [true] = 1 } })
end)

test("json-1.16 a value's __tojson is encoded, and its error raised as is", function()
  local bp = rd.blueprint { name = "x", flow = { { id = 1, module = "util:SetVariable", mapper = { name = "a" } } } }
  eq(json.decode(json.encode { bp = bp }).bp.flow[1].module, "util:SetVariable")
  -- a big document grows the buffer: the text is still whole
  local big = {}
  for i = 1, 5000 do big[i] = { i = i, s = ("x"):rep(i % 50) } end
  local s = json.encode(big)
  eq(json.decode(s), big)
end)

H.done()

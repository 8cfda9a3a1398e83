-- rd.blueprint: pointers, patches, merge, diff, module views, validate.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"

if type(rd.blueprint) ~= "table" then
  skip("blueprint", "rd.blueprint is not built in")
  H.done()
end

local function sample()
  return rd.blueprint [[{
    "name": "Orders",
    "flow": [
      {"id": 1, "module": "http:ActionSendData",
       "mapper": {"url": "https://x.test/a", "method": "get", "headers": []},
       "onerror": [{"id": 9, "module": "builtin:Break", "mapper": {"retry": true}}]},
      {"id": 2, "module": "builtin:BasicRouter", "routes": [
        {"flow": [{"id": 3, "module": "json:ParseJSON", "mapper": {"json": "{{1.data}}"}}]},
        {"filter": {"name": "f"},
         "flow": [{"id": 4, "module": "http:ActionSendData", "mapper": {"url": "{{3.u}}"}}]}]}
    ],
    "metadata": {"scenario": {"maxErrors": 3, "autoCommit": true}}
  }]]
end

rd.blueprint.register_module("http:ActionSendData", {
  fields = {url = "string", method = "string", headers = "array", timeout = "integer"},
  required = {"url"},
})
rd.blueprint.register_module("json:ParseJSON", {fields = {json = "string"}, required = {"json"}})

test("blueprint-1.1 construct from string, table, blueprint", function()
  local a = sample()
  eq(a.name, "Orders")
  local b = rd.blueprint(a:totable())
  ok(a == b, "table round trip equal")
  ok(rd.blueprint(a) == a, "copy constructor")
  check_err("invalid", "^json: ", rd.blueprint, "{nope")
  -- the user's argument is named, not the rd.blueprint table behind __call
  raises("^bad argument #1 to 'blueprint' %(table or JSON string expected, got number%)$", rd.blueprint, 42)
  raises("got boolean%)$", rd.blueprint, true)
  raises("got no value%)$", rd.blueprint)
  check_err("invalid", "nesting", rd.blueprint, string.rep("[", 600) .. string.rep("]", 600))
end)

test("blueprint-1.2 get", function()
  local bp = sample()
  eq(bp:get("/flow/0/mapper/url"), "https://x.test/a")
  eq(bp:get("/flow/1/routes/0/flow/0/id"), 3)
  eq(bp:get("#/flow/0/id"), 1)
  eq(#bp:get("/flow"), 2)
  check_err("not_found", "^pointer '/flow/7': path not found$", bp.get, bp, "/flow/7")
  check_err("invalid", "must start with '/'", bp.get, bp, "flow")
  check_err("invalid", "'~' must be followed by 0 or 1", bp.get, bp, "/a~x")
end)

test("blueprint-1.3 set and remove", function()
  local bp = sample()
  ok(bp:set("/flow/0/mapper/timeout", 30))
  ok(bp:set("/flow/-", {id = 5, module = "util:Noop"}))
  eq(bp:get("/flow/2/id"), 5)
  ok(bp:set("/a~1b", {x = rd.json.null}))
  eq(bp:get("/a~1b/x"), rd.json.null)
  check_err("not_found", "path not found", bp.set, bp, "/nope/x", 1)
  check_err("not_found", "index 9, array length 3", bp.set, bp, "/flow/9", 1)
  check_err("invalid", "must start with '/'", bp.set, bp, "x", 1)
  ok(bp:remove("/flow/2"))
  check_err("not_found", "path not found", bp.remove, bp, "/flow/2")
  check_err("invalid", "cannot remove the document root", bp.remove, bp, "")
end)

test("blueprint-1.4 merge", function()
  local bp = sample()
  ok(bp:merge{name = "New", metadata = {scenario = {maxErrors = rd.json.null, dlq = true}}})
  eq(bp.name, "New")
  eq(bp:get("/metadata/scenario"), {autoCommit = true, dlq = true})
  ok(bp:merge('{"flow": null}'))
  check_err("not_found", nil, bp.get, bp, "/flow")
end)

test("blueprint-1.5 apply is all or nothing", function()
  local bp = sample()
  local before = bp:copy()
  check_err("invalid", "^op 2 %(replace /flow/3/mapper/url%): path not found$", bp.apply, bp, {
    {op = "replace", path = "/name", value = "changed"},
    {op = "add", path = "/flow/-", value = {id = 7, module = "x:Y"}},
    {op = "replace", path = "/flow/3/mapper/url", value = "x"},
  })
  ok(bp == before, "unchanged after a failing op")
  check_err("invalid", "^op 0 %(test /name%): test failed", bp.apply, bp,
            {{op = "test", path = "/name", value = "Other"}})
  check_err("invalid", "unknown op 'spam'", bp.apply, bp, {{op = "spam", path = "/"}})
  check_err("invalid", "expected an array", bp.apply, bp, '{"op": "add"}')
  ok(bp:apply{})
  ok(bp:apply{{op = "test", path = "/flow/0/id", value = 1.0},
              {op = "move", from = "/flow/1", path = "/flow/0"},
              {op = "copy", from = "/name", path = "/title"}})
  eq(bp:get("/flow/0/id"), 2)
  eq(bp:get("/title"), "Orders")
  ok(bp:apply('[{"op": "remove", "path": "/title"}]'))
end)

test("blueprint-1.6 diff turns a into b", function()
  local a, b = sample(), sample()
  b:set("/flow/0/mapper/url", "changed")
  b:remove("/flow/1/routes/1")
  b:set("/flow/-", {id = 10, module = "x:Y", mapper = {list = {1, 2, {3}}}})
  local ops = a:diff(b)
  ok(#ops >= 3, "some ops")
  local c = a:copy()
  ok(c:apply(ops))
  ok(c == b, "a:copy():apply(a:diff(b)) == b")
  eq(a:diff(a:copy()), {})
  local ops2 = a:diff(b:json())
  eq(ops2, ops)
end)

test("blueprint-1.7 module views write through", function()
  local bp = sample()
  local m = bp:module(4)
  eq(m.id, 4)
  eq(m.module, "http:ActionSendData")
  eq(m.pointer, "/flow/1/routes/1/flow/0")
  eq(m.mapper.url, "{{3.u}}")
  m.mapper.url = "x"
  eq(bp:get("/flow/1/routes/1/flow/0/mapper/url"), "x")
  m.mapper.qs = {{name = "a", value = "1"}}
  eq(m.mapper.qs[1].name, "a")
  m.mapper.qs[1].value = "2"
  eq(bp:get("/flow/1/routes/1/flow/0/mapper/qs/0/value"), "2")
  m.mapper.qs[2] = {name = "b"} -- append at #+1
  eq(#m.mapper.qs, 2)
  m.mapper.qs = nil
  eq(m.mapper.qs, nil)
  -- the view follows its module when the flow around it changes
  bp:remove("/flow/1/routes/0")
  eq(m.pointer, "/flow/1/routes/0/flow/0")
  eq(m.mapper.url, "x")
  m.id = 40
  eq(m.pointer, "/flow/1/routes/0/flow/0")
  eq(bp:get(m.pointer .. "/id"), 40)
  local keys = {}
  for k in pairs(m.mapper) do keys[#keys + 1] = k end
  eq(keys, {"url"})
  raises("cannot set x here", function() bp:module(1).mapper.headers.x = 1 end)
  raises("cannot encode a function", function() bp:module(1).mapper.f = print end)
  check_err("not_found", "no module with id 77", bp.module, bp, 77)
  bp:remove("/flow/1")
  eq(m.mapper, nil)
end)

test("blueprint-1.8 modules{module = glob}", function()
  local bp = sample()
  local ids = {}
  for _, m in ipairs(bp:modules{module = "http:*"}) do ids[#ids + 1] = m.id end
  eq(ids, {1, 4})
  eq(#bp:modules(), 4)
  eq(#bp:modules{module = "*JSON"}, 1)
  eq(#bp:modules{module = "nope:*"}, 0)
  for _, m in ipairs(bp:modules{module = "http:*"}) do m.mapper.method = "post" end
  eq(bp:get("/flow/1/routes/1/flow/0/mapper/method"), "post")
end)

test("blueprint-1.9 validate lists every problem", function()
  local bp = sample()
  ok(bp:validate())
  bp:set("/flow/0/mapper/url", 5)
  bp:remove("/flow/1/routes/0/flow/0/mapper/json")
  bp:set("/flow/1/routes/1/flow/0/id", 1)
  bp:set("/metadata/scenario/maxErrors", "3")
  bp:set("/flow/-", {id = 8, module = "unknown:Thing"})
  local r, errs, code = bp:validate()
  eq(r, nil)
  eq(code, "invalid")
  eq(errs, {
    {module = 1, field = "mapper.url", pointer = "/flow/0/mapper/url",
     message = "expected string, got number"},
    {module = 3, field = "mapper.json", pointer = "/flow/1/routes/0/flow/0/mapper/json",
     message = "required field missing"},
    {module = 1, field = "id", pointer = "/flow/1/routes/1/flow/0/id",
     message = "duplicate id 1 (also at /flow/0)"},
    -- appended after the router: the one validator (C) says it would never run
    {module = 8, field = "module", pointer = "/flow/2",
     message = "module 8 follows router 2: a router must be the last module of its flow"},
    {module = 8, field = "module", pointer = "/flow/2/module",
     message = "unknown module type 'unknown:Thing'"},
    {field = "metadata.scenario.maxErrors", pointer = "/metadata/scenario/maxErrors",
     message = "expected integer, got string"},
  })
  check_err("invalid", "type must be", rd.blueprint.register_module, "a:B", {fields = {x = "str"}})
  eq(rd.blueprint.registered("json:ParseJSON").required, {"json"})
  eq(rd.blueprint.registered("nope"), nil)
end)

test("blueprint-1.10 json, tostring, copy, equality", function()
  local bp = sample()
  local s = bp:json()
  ok(not s:find("\n"), "compact by default")
  ok(bp:json{pretty = true}:find("\n"), "pretty")
  ok(tostring(bp):find("\n"), "tostring is pretty")
  eq(rd.blueprint(s), bp)
  local c = bp:copy()
  c:set("/name", "other")
  ok(c ~= bp and bp.name == "Orders", "copy is independent")
  -- key order and 1 vs 1.0 do not matter
  ok(rd.blueprint('{"a": 1, "b": [1.0]}') == rd.blueprint('{"b": [1], "a": 1.0}'))
  ok(rd.blueprint('{"a": [1, 2]}') ~= rd.blueprint('{"a": [2, 1]}'))
  local closed
  do
    local t <close> = bp:copy()
    closed = t
  end
  raises("freed blueprint", closed.get, closed, "")
end)

H.done()

-- The local engine: modules, routers, feeders, error handlers, incomplete
-- executions and resume, lua:Run sandbox, validation. HTTP goes to the
-- loopback test server (RD_TEST_SERVER).
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local engine = require "redrive.engine"

local S = H.server
math.randomseed(os.time() + math.floor(rd.now() * 1000))
local RUN = tostring(math.random(1 << 30))
local function key(name) return "eng-" .. RUN .. "-" .. name end

-- how many requests the test server saw with ?key=k
local function count(k)
  local res = assert(rd.http.request { url = S .. "/count", query = { key = k } })
  return res:json().count
end
local function records(k)
  local res = assert(rd.http.request { url = S .. "/records", query = { key = k } })
  local out = {}
  for i, b in ipairs(res:json().bodies) do out[i] = b end
  return out
end

local A = rd.json.array
local function hook(id) return { id = id or 1, module = "gateway:CustomWebHook", version = 1, mapper = {} } end
local function http(id, mapper, extra)
  local m = { id = id, module = "http:ActionSendData", version = 3, mapper = mapper }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end
local function setvar(id, name, value, extra)
  local m = { id = id, module = "util:SetVariable", mapper = { name = name, value = value } }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end
local function bp(flow, scenario) return { name = "test", flow = flow, metadata = { version = 1, scenario = scenario or {} } } end
local function json_roundtrip(v) return rd.json.decode(rd.json.encode(v)) end

local function need_server()
  if not S then error("RD_TEST_SERVER is not set (run with make test)", 2) end
end

-- ---------------------------------------------------------------------------
-- 1. modules

test("engine-1.0 module durations: seconds on the clock's millisecond, printed short", function()
  need_server()
  -- an answer 3 ms late: a duration that is not 0, whatever the machine
  local out = engine.run(bp { http(1, { url = S .. "/delay/3" }), http(2, { url = S .. "/delay/3" }) })
  eq(out.status, "success")
  for id, m in pairs(out.run_data) do
    ok(m.duration >= 0.003, "module " .. id .. " took its 3 ms: " .. m.duration)
    local ms = m.duration * 1000
    ok(math.abs(ms - math.floor(ms + 0.5)) < 1e-6, "whole milliseconds: " .. m.duration)
    ok(#rd.json.encode(m.duration) <= 6, "prints short: " .. rd.json.encode(m.duration))
  end
end)

test("engine-1.1 webhook trigger output is the input; variables; run_data per module", function()
  local out = engine.run(bp {
    hook(1),
    setvar(2, "greeting", "hello {{1.name}}"),
    { id = 3, module = "util:SetVariables", mapper = { variables = A {
      { name = "n", value = "{{1.n}}" }, { name = "twice", value = "{{2.greeting}}!" } } } },
  }, { input = { name = "Ada", n = 5 } })
  eq(out.status, "success")
  eq(out.error, nil); eq(out.incomplete, nil)
  eq(out.operations, 3)
  eq(out.run_data["1"].output, { name = "Ada", n = 5 })
  eq(out.run_data["2"].output, { greeting = "hello Ada" })
  eq(out.run_data["3"].output, { n = 5, twice = "hello Ada!" })
  eq(math.type(out.run_data["3"].output.n), "integer", "a single {{}} keeps its type")
  eq(out.run_data["2"].input, { name = "greeting", value = "hello Ada" })
  eq(out.run_data["2"].operations, 1)
  ok(type(out.run_data["2"].duration) == "number" and out.run_data["2"].duration >= 0, "duration")
  ok(type(out.duration) == "number", "run duration")
  eq(#out.warnings, 0)
  ok(rd.json.encode(out), "the result encodes as JSON")
  -- Make's current export name for "Set variable"
  out = engine.run(bp { { id = 1, module = "util:SetVariable2", mapper = { name = "v", value = "{{0.a}}", scope = "roundtrip" } } },
                   { input = { a = 1 } })
  eq(out.status, "success"); eq(out.run_data["1"].output, { v = 1 })
end)

test("engine-1.2 without a trigger the input is {{0.x}}", function()
  local out = engine.run(bp { setvar(1, "x", "{{0.x}}-{{0.y.z}}") }, { input = { x = "a", y = { z = 2 } } })
  eq(out.status, "success")
  eq(out.run_data["1"].output.x, "a-2")
end)

test("engine-1.3 http GET: parsed JSON, status, headers, transfer", function()
  need_server()
  local out = engine.run(bp {
    hook(1),
    http(2, { url = S .. "/json", qs = A { { name = "body", value = '{"id":{{1.id}},"items":[{"sku":"a"},{"sku":"b"}]}' } },
              method = "get", parseResponse = true }),
    setvar(3, "sku", "{{2.data.items[2].sku}}/{{2.headers.content-type}}/{{2.statusCode}}"),
  }, { input = { id = 9 } })
  eq(out.status, "success", out.error and out.error.message)
  local o = out.run_data["2"].output
  eq(o.statusCode, 200)
  eq(o.data.id, 9)
  match(o.headers["content-type"], "json")
  match(out.run_data["3"].output.sku, "^b/.*json.*/200$")
  ok(out.transfer > 0, "transfer counted", out.transfer)
end)

test("engine-1.4 http: method, headers, qs, raw body with content type, form, json body, basic auth", function()
  need_server()
  local out = engine.run(bp {
    hook(1),
    http(2, { url = S .. "/echo", method = "put",
              headers = A { { name = "X-Order", value = "{{1.id}}" }, { name = "", value = "skipped" } },
              qs = A { { name = "a", value = "1 2" }, { name = "a", value = "3" } },
              bodyType = "raw", contentType = "text/plain", data = "order {{1.id}}", parseResponse = true }),
    http(3, { url = S .. "/echo", method = "POST", bodyType = "x-www-form-urlencoded",
              data = A { { name = "name", value = "{{1.name}}" }, { name = "q", value = "a&b" } }, parseResponse = true }),
    http(4, { url = S .. "/echo", method = "POST", bodyType = "json", data = { id = "{{1.id}}", tags = A { "x" } },
              authUser = "user", authPass = "secret", parseResponse = true }),
  }, { input = { id = 7, name = "Ada Lovelace" } })
  eq(out.status, "success", out.error and out.error.message)
  local e2 = out.run_data["2"].output.data
  eq(e2.method, "PUT")
  eq(e2.headers["x-order"], "7")
  eq(e2.headers["content-type"], "text/plain")
  eq(e2.body, "order 7")
  match(e2.query, "a=1%%202&a=3")
  local e3 = out.run_data["3"].output.data
  eq(e3.body, "name=Ada%20Lovelace&q=a%26b")
  eq(e3.headers["content-type"], "application/x-www-form-urlencoded")
  local e4 = out.run_data["4"].output.data
  eq(rd.json.decode(e4.body), { id = 7, tags = { "x" } })
  eq(e4.headers["content-type"], "application/json")
  match(e4.headers.authorization, "^Basic ")
end)

test("engine-1.4b run data records the http input without credentials", function()
  need_server()
  local out = engine.run(bp {
    http(1, { url = S .. "/echo?access_token=tok1&page=2", authUser = "u", authPass = "pw-secret",
              headers = A { { name = "Authorization", value = "Bearer tok2" }, { name = "X-Api-Key", value = "tok3" },
                            { name = "Accept", value = "application/json" } },
              qs = A { { name = "apikey", value = "tok4" }, { name = "q", value = "shoes" } }, parseResponse = true }),
  })
  eq(out.status, "success", out.error and out.error.message)
  local echoed = out.run_data["1"].output.data
  eq(echoed.headers["x-api-key"], "tok3", "the request itself carried the real values")
  local text = rd.json.encode(out.run_data["1"].input)
  for _, secret in ipairs { "tok1", "tok2", "tok3", "tok4", "pw-secret" } do
    ok(not text:find(secret, 1, true), "no " .. secret .. " in the recorded input", text)
  end
  local input = out.run_data["1"].input
  match(input.url, "page=2"); eq(input.headers[3].value, "application/json"); eq(input.qs[2].value, "shoes")
  eq(input.authUser, "u")
end)

test("engine-1.5 http status >= 400 is a module error naming status and redacted URL", function()
  need_server()
  local out = engine.run(bp {
    hook(1),
    http(2, { url = S .. "/orders/{{1.id}}?token=s3cret", parseResponse = true }),
  }, { input = { id = 7 } })
  eq(out.status, "error")
  eq(out.error.module, 2)
  eq(out.error.code, "http")
  match(out.error.message, "^HTTP 500 from http://127%.0%.0%.1:%d+/orders/7: ")
  match(out.error.message, "order service failed")
  ok(not out.error.message:find("s3cret"), "no query string in the message", out.error.message)
  eq(out.run_data["2"].error.code, "http")
  -- a long body is truncated
  local out2 = engine.run(bp { http(1, { url = S .. "/json?body=" .. ("x"):rep(1000) .. "&status=500" }) })
  if out2.status == "error" then ok(#out2.error.message < 400, "truncated", #out2.error.message) end
end)

test("engine-1.6 http transport errors keep their code (timeout, connect)", function()
  need_server()
  local out = engine.run(bp { http(1, { url = S .. "/stall", timeout = 0.2 }) })
  eq(out.status, "error"); eq(out.error.code, "timeout")
  out = engine.run(bp { http(1, { url = "http://127.0.0.1:1/nothing", timeout = 2 }) })
  eq(out.status, "error"); eq(out.error.code, "connect")
  out = engine.run(bp { http(1, { url = "ftp://example.test/x" }) })
  eq(out.status, "error"); eq(out.error.code, "invalid"); match(out.error.message, "http:// or https://")
end)

test("engine-1.7 json:ParseJSON parses text; errors name the module and the position", function()
  local out = engine.run(bp {
    setvar(1, "raw", '{"a": {"b": [10, 20]}}'),
    { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.raw}}" } },
    setvar(3, "v", "{{2.a.b[2]}}"),
  })
  eq(out.status, "success")
  eq(out.run_data["3"].output.v, 20)
  out = engine.run(bp {
    setvar(1, "raw", '{"a": \n  [1, 2,, 3]}'),
    { id = 2, module = "json:ParseJSON", mapper = { json = "{{1.raw}}" } },
  })
  eq(out.status, "error"); eq(out.error.module, 2); eq(out.error.code, "invalid")
  match(out.error.message, "json:ParseJSON %(module 2%)")
  match(out.error.message, "line 2")
  -- already-parsed data passes through
  out = engine.run(bp { { id = 1, module = "json:ParseJSON", mapper = { json = "{{0.obj}}" } }, setvar(2, "v", "{{1.k}}") },
                   { input = { obj = { k = "v" } } })
  eq(out.status, "success"); eq(out.run_data["2"].output.v, "v")
end)

test("engine-1.8 router: every route whose filter passes runs, in order, with the router's bundle", function()
  local order = {}
  engine.register { type = "test:Mark", fields = { tag = "string" }, run = function(ctx, m)
    order[#order + 1] = m.tag
    return { tag = m.tag }
  end }
  local function mark(id, tag, extra)
    local m = { id = id, module = "test:Mark", mapper = { tag = tag } }
    for k, v in pairs(extra or {}) do m[k] = v end
    return m
  end
  local function route(filter, flow) return { filter = filter, flow = flow } end
  local out = engine.run(bp {
    hook(1),
    { id = 2, module = "builtin:BasicRouter", mapper = rd.json.null, routes = A {
      route({ name = "paid", conditions = { { { a = "{{1.status}}", o = "text:equal", b = "paid" } } } },
            { mark(3, "paid"), mark(4, "paid-{{3.tag}}") }),
      route({ name = "big", conditions = { { { a = "{{1.amount}}", o = "number:greater", b = "100" } } } },
            { mark(5, "big:{{ifempty(3.tag; none)}}") }),
      route(nil, { mark(6, "always") }),
      route({ name = "never", conditions = { { { a = "{{1.status}}", o = "text:equal", b = "refunded" } } } },
            { mark(7, "never") }),
      -- a Make-style filter on the first module of the route
      route(nil, { mark(8, "moduleFilter", { filter = { name = "vip", conditions = {
        { { a = "{{1.vip}}", o = "boolean:equal", b = "true" } } } } }), mark(9, "after-8") }),
    } },
  }, { input = { status = "paid", amount = 250, vip = false } })
  eq(out.status, "success", out.error and out.error.message)
  eq(order, { "paid", "paid-paid", "big:none", "always" })
  eq(out.operations, 5, "trigger + 4 module runs; router and filters are free")
  eq(out.run_data["7"], nil); eq(out.run_data["8"], nil)
end)

test("engine-1.9 filter operators (OR of ANDs)", function()
  local scope = { outputs = { ["1"] = { s = "Hello World", n = 42, t = true, list = { "a", "b" }, e = "" } } }
  local function pass(o, a, b) return engine.filter_pass({ conditions = { { { a = a, o = o, b = b } } } }, scope) end
  local cases = {
    { "text:equal", "{{1.s}}", "Hello World", true }, { "text:equal", "{{1.s}}", "hello world", false },
    { "text:equal:ci", "{{1.s}}", "hello world", true },
    { "text:notequal", "{{1.s}}", "x", true }, { "text:contain", "{{1.s}}", "World", true },
    { "text:contain:ci", "{{1.s}}", "world", true }, { "text:notcontain", "{{1.s}}", "World", false },
    { "text:startwith", "{{1.s}}", "Hell", true }, { "text:endwith", "{{1.s}}", "xx", false },
    { "text:pattern", "{{1.s}}", "^H%a+ W", true }, { "text:notpattern", "{{1.s}}", "%d", true },
    { "number:equal", "{{1.n}}", "42", true }, { "number:notequal", "{{1.n}}", "42", false },
    { "number:greater", "{{1.n}}", "41.5", true }, { "number:less", "{{1.n}}", "42", false },
    { "number:greaterorequal", "{{1.n}}", "42", true }, { "number:lessorequal", "{{1.n}}", "41", false },
    { "number:greater", "{{1.s}}", "1", false },
    { "exist", "{{1.s}}", nil, true }, { "exist", "{{1.e}}", nil, false }, { "exist", "{{1.none}}", nil, false },
    { "notexist", "{{1.none}}", nil, true },
    { "boolean:equal", "{{1.t}}", "true", true }, { "boolean:equal", "{{1.none}}", "false", true },
    { "boolean:notequal", "{{1.t}}", "true", false },
    { "array:contain", "{{1.list}}", "b", true }, { "array:notcontain", "{{1.list}}", "b", false },
  }
  for _, c in ipairs(cases) do
    eq(pass(c[1], c[2], c[3]), c[4], c[1] .. " " .. c[2] .. " " .. tostring(c[3]))
  end
  -- OR of ANDs
  local f = { conditions = {
    { { a = "{{1.n}}", o = "number:less", b = "10" }, { a = "{{1.t}}", o = "boolean:equal", b = "true" } },
    { { a = "{{1.s}}", o = "text:contain", b = "World" }, { a = "{{1.n}}", o = "number:equal", b = "42" } },
  } }
  eq(engine.filter_pass(f, scope), true)
  f.conditions[2][2].b = "43"
  eq(engine.filter_pass(f, scope), false)
  eq(engine.filter_pass({ name = "empty" }, scope), true)
  local r, err = engine.filter_pass({ name = "typo", conditions = { { { a = "x", o = "text:equals", b = "x" } } } }, scope)
  eq(r, nil); match(err, "filter 'typo': unknown filter operator 'text:equals'")
end)

test("engine-1.10 feeder: the rest of the route runs per element, each bundle an operation", function()
  local seen = {}
  engine.register { type = "test:Collect", fields = {}, run = function(ctx, m)
    seen[#seen + 1] = m.v
    return { v = m.v }
  end }
  local out = engine.run(bp {
    hook(1),
    { id = 2, module = "builtin:BasicFeeder", mapper = { array = "{{1.items}}" } },
    { id = 3, module = "test:Collect", mapper = { v = "{{2.value.sku}}#{{2.__IMTINDEX__}}/{{2.__IMTLENGTH__}} {{2.sku}}" } },
    { id = 4, module = "test:Collect", mapper = { v = "after {{3.v}}" } },
  }, { input = { items = { { sku = "a" }, { sku = "b" }, { sku = "c" } } } })
  eq(out.status, "success", out.error and out.error.message)
  eq(seen, { "a#1/3 a", "after a#1/3 a", "b#2/3 b", "after b#2/3 b", "c#3/3 c", "after c#3/3 c" })
  eq(out.operations, 1 + 1 + 3 + 3)
  eq(out.run_data["3"].operations, 3)
  eq(out.run_data["2"].operations, 1)
  -- an empty array: nothing after the feeder runs
  seen = {}
  out = engine.run(bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.items}}" } },
    { id = 2, module = "test:Collect", mapper = { v = "{{1.value}}" } },
  }, { input = { items = A {} } })
  eq(out.status, "success"); eq(#seen, 0); eq(out.operations, 1)
  -- scalars: {{N.value}}
  out = engine.run(bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.items}}" } },
    { id = 2, module = "test:Collect", mapper = { v = "{{1.value}}" } },
  }, { input = { items = { 10, 20 } } })
  eq(seen, { 10, 20 })
  out = engine.run(bp { { id = 1, module = "builtin:BasicFeeder", mapper = { array = "not an array" } } })
  eq(out.status, "error"); match(out.error.message, "array must be an array")
end)

test("engine-1.11 lua:Run: function body and returned function, bundle by module id, output mapped", function()
  local out = engine.run(bp {
    hook(1),
    { id = 2, module = "lua:Run", mapper = { code = [[
      local total = 0
      for _, it in ipairs(bundle[1].items) do total = total + it.qty * it.price end
      return { total = total, n = #bundle[1].items, label = string.format("%s:%d", ctx.mapper.prefix, total), t = {{1}} }
    ]], prefix = "{{1.customer}}" } },
    { id = 3, module = "lua:Run", mapper = { code = [[
      return function(bundle, ctx)
        return { double = bundle[2].total * 2, input = bundle[0].customer, module = ctx.module,
                 json = rd.json.encode({ a = 1 }) }
      end
    ]] } },
    setvar(4, "label", "{{2.label}} {{3.double}}"),
  }, { input = { customer = "acme", items = { { qty = 2, price = 5 }, { qty = 1, price = 7 } } } })
  eq(out.status, "success", out.error and out.error.message)
  eq(out.run_data["2"].output.total, 17)
  eq(out.run_data["2"].output.t, { { 1 } }, "Lua code is not treated as a template")
  eq(out.run_data["3"].output.double, 34)
  eq(out.run_data["3"].output.input, "acme")
  eq(out.run_data["3"].output.module, 3)
  eq(out.run_data["3"].output.json, '{"a":1}')
  eq(out.run_data["4"].output.label, "acme:17 34")
end)

test("engine-1.12 lua:Run errors are module errors naming the module id", function()
  local out = engine.run(bp { { id = 5, module = "lua:Run", mapper = { code = "error('bad data')" } } })
  eq(out.status, "error"); eq(out.error.module, 5); eq(out.error.code, "script")
  match(out.error.message, "lua:Run %(module 5%)"); match(out.error.message, "bad data")
  out = engine.run(bp { { id = 6, module = "lua:Run", mapper = { code = "return (" } } })
  eq(out.error.code, "invalid"); match(out.error.message, "lua:Run %(module 6%): syntax error")
  out = engine.run(bp { { id = 7, module = "lua:Run", mapper = { code = "return function() end" } } })
  eq(out.status, "success")
  out = engine.run(bp { { id = 8, module = "lua:Run", mapper = { code = "return { f = print }" } } })
  eq(out.status, "error"); match(out.error.message, "module 8")
  out = engine.run(bp { { id = 9, module = "lua:Run", mapper = { code = "return { f = tostring }" } } })
  eq(out.status, "error"); match(out.error.message, "cannot be stored as JSON")
  -- the sandbox gets copies: changing them does not leak out
  out = engine.run(bp { { id = 10, module = "lua:Run", mapper = { code = "string.upper = nil; table.concat = nil; bundle[0].x = 1; return 1" } } },
                   { input = { x = 0 } })
  eq(out.status, "success"); eq(string.upper("a"), "A"); ok(table.concat, "host table.concat intact")
end)

test("engine-1.13 lua:Run sandbox escapes fail clearly", function()
  local attempts = {
    { "os.execute('touch /tmp/rd-pwned')", "os%.execute is not available in the sandbox" },
    { "return io.open('/etc/passwd'):read('a')", "'io' is not available in the sandbox" },
    { "return require('os').execute('id')", "'require' is not available in the sandbox" },
    { "return load('return 1')()", "'load' is not available in the sandbox" },
    { "return debug.getregistry()", "'debug' is not available in the sandbox" },
    { "return dofile('/etc/passwd')", "'dofile' is not available" },
    { "return getmetatable('').__index.rep", "'getmetatable' is not available" },
    { "return _G.os", "'_G' is not available" },
    { "return package.loaded", "'package' is not available" },
    { "return collectgarbage('count')", "'collectgarbage' is not available" },
    { "return coroutine.create(print)", "'coroutine' is not available" },
    { "return os.getenv('HOME')", "os%.getenv is not available" },
    { "return os.exit(1)", "os%.exit is not available" },
    { "return string.rep('x', 1 << 30)", "stopped: it needs more than 128 MiB of memory" },
    { "return ('x'):rep(1 << 30)", "stopped: it needs more than 128 MiB of memory" },
    { "return rd.http", nil },
  }
  for _, a in ipairs(attempts) do
    local out = engine.run(bp { { id = 4, module = "lua:Run", mapper = { code = a[1] } } })
    if a[2] then
      eq(out.status, "error", a[1])
      match(out.error.message, "lua:Run %(module 4%)", a[1])
      match(out.error.message, a[2], a[1])
    else
      eq(out.status, "success", a[1]); eq(out.run_data["4"].output, nil, a[1])
    end
  end
  local f = io.open("/tmp/rd-pwned")
  ok(f == nil, "nothing executed"); if f then f:close() end
  -- allowed: os.time / os.date / os.clock, string methods on values
  local out = engine.run(bp { { id = 1, module = "lua:Run", mapper = {
    code = "return { t = os.time() > 0, d = os.date('!%Y') , up = ('abc'):upper(), c = os.clock() >= 0 }" } } })
  eq(out.status, "success", out.error and out.error.message)
  eq(out.run_data["1"].output.up, "ABC"); eq(out.run_data["1"].output.t, true)
  eq(("ab"):rep(2), "abab", "the host's string methods are back")
  eq(getmetatable("").__index, string)
end)

test("engine-1.14 lua:Run runaway code is stopped, even inside pcall", function()
  -- a budget small enough to trip first, whatever the machine's speed
  local S = require "redrive.sandbox"
  S.global = { timeout = 600, memory = 128 * 1024 * 1024, instructions = 20000000 }
  local _ <close> = setmetatable({}, { __close = function() S.global = nil end })
  local out = engine.run(bp { { id = 3, module = "lua:Run", mapper = { code = "while true do end" } } })
  eq(out.status, "error"); eq(out.error.code, "limit")
  match(out.error.message, "^lua:Run %(module 3%): stopped after 20000000 instructions %(shared by the run's " ..
    "lua:Run modules%), at lua:Run %(module 3%):1$")
  for _, code in ipairs {
    "while true do pcall(function() while true do end end) end",
    "while true do xpcall(function() while true do end end, function(e) return e end) end",
    "local function f() return f() end; return f()",
  } do
    out = engine.run(bp { { id = 3, module = "lua:Run", mapper = { code = code } } })
    eq(out.status, "error", code); eq(out.error.code, "limit", code)
  end
  -- memory: the cap of the worker's state, in its allocator
  out = engine.run(bp { { id = 3, module = "lua:Run", mapper = { maxMemory = 32 * 1024 * 1024,
    code = "local t = {} while true do t[#t + 1] = string.rep('x', 1000000) .. #t end" } } })
  eq(out.status, "error"); eq(out.error.code, "nomem")
  match(out.error.message, "^lua:Run %(module 3%): stopped: it needs more than 32 MiB of memory$")
  -- a module may ask for less than the global limits, never more
  out = engine.run(bp { { id = 3, module = "lua:Run", mapper = { maxMemory = 1e12, code = "return 1" } } })
  eq(out.status, "success")
  out = engine.run(bp { { id = 3, module = "lua:Run", mapper = { timeout = -1, code = "return 1" } } })
  eq(out.error.code, "invalid"); match(out.error.message, "option 'timeout' must be")
  -- nothing of it stays on this task
  eq(debug.gethook(), nil)
  eq(getmetatable("").__index, string)
end)

-- ---------------------------------------------------------------------------
-- 2. error handlers

local function failing(id, onerror)
  return { id = id, module = "lua:Run", mapper = { code = "error('boom ' .. tostring(bundle[0].n), 0)" }, onerror = onerror }
end

test("engine-2.1 no handler: status error and an incomplete execution (reason, failer, state)", function()
  local out = engine.run(bp { hook(1), setvar(2, "a", "{{1.n}}"), failing(3), setvar(4, "b", "never") }, { input = { n = 1 } })
  eq(out.status, "error")
  eq(out.error, { module = 3, message = "lua:Run (module 3): boom 1", code = "script" })
  eq(out.run_data["4"], nil)
  local inc = out.incomplete
  ok(inc, "incomplete set")
  eq(inc.failer, 3)
  eq(inc.reason, out.error.message)
  eq(inc.auto_retry, nil)
  eq(inc.state.input, { n = 1 })
  eq(inc.state.outputs["1"], { n = 1 })
  eq(inc.state.outputs["2"], { a = 1 })
  eq(inc.state.outputs["3"], nil)
  ok(rd.json.encode(inc.state), "state is JSON-encodable")
  -- incomplete executions disabled: by option, by metadata
  out = engine.run(bp { failing(1) }, { dlq = false })
  eq(out.status, "error"); eq(out.incomplete, nil)
  out = engine.run(bp({ failing(1) }, { dlq = false }))
  eq(out.status, "error"); eq(out.incomplete, nil)
end)

test("engine-2.2 Break: status warning, incomplete execution, auto retry", function()
  local out = engine.run(bp { hook(1), failing(2, A { { id = 9, module = "builtin:Break", mapper = {} } }), setvar(3, "x", "never") },
                         { input = { n = 2 } })
  eq(out.status, "warning")
  eq(out.incomplete.failer, 2)
  match(out.incomplete.reason, "boom 2")
  eq(out.incomplete.auto_retry, nil)
  eq(out.run_data["3"], nil)
  out = engine.run(bp { failing(2, A { { id = 9, module = "builtin:Break", mapper = { retry = true, count = "3", interval = "15" } } }) })
  eq(out.status, "warning")
  eq(out.incomplete.auto_retry, { count = 3, interval = 900 })
  out = engine.run(bp { failing(2, A { { id = 9, module = "builtin:Break", mapper = { retry = true, count = 2, intervalSeconds = "1" } } }) })
  eq(out.incomplete.auto_retry, { count = 2, interval = 1 })
  -- Break with incomplete executions disabled: an error, and a warning saying why
  out = engine.run(bp { failing(2, A { { id = 9, module = "builtin:Break" } }) }, { dlq = false })
  eq(out.status, "error"); eq(out.incomplete, nil)
  match(out.warnings[1], "Break handler ignored")
end)

test("engine-2.3 Resume: the handler's mapper is the failed module's output", function()
  local out = engine.run(bp {
    hook(1),
    failing(2, A { { id = 9, module = "builtin:Resume", mapper = { total = "{{1.n}}", source = "fallback" } } }),
    setvar(3, "x", "{{2.source}}:{{2.total}}"),
  }, { input = { n = 4 } })
  eq(out.status, "success")
  eq(out.run_data["3"].output.x, "fallback:4")
  eq(out.run_data["2"].output, { total = 4, source = "fallback" })
  eq(out.run_data["2"].error.code, "script")
  eq(#out.warnings, 1); match(out.warnings[1], "module 2: .*boom 4.*resumed")
  eq(out.incomplete, nil)
end)

test("engine-2.4 Ignore: ends this branch; other bundles go on; success with a warning", function()
  local out = engine.run(bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.items}}" } },
    { id = 2, module = "lua:Run", mapper = { code = "if bundle[1].value == 2 then error('two', 0) end return { v = bundle[1].value }" },
      onerror = A { { id = 9, module = "builtin:Ignore" } } },
    setvar(3, "v", "{{2.v}}"),
  }, { input = { items = { 1, 2, 3 } } })
  eq(out.status, "success")
  eq(out.error, nil); eq(out.incomplete, nil)
  eq(out.run_data["3"].operations, 2, "element 2 ended at the failing module")
  eq(out.run_data["3"].output.v, 3)
  eq(#out.warnings, 1); match(out.warnings[1], "two %(ignored%)")
end)

test("engine-2.5 Commit: stops the execution with success", function()
  local out = engine.run(bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.items}}" } },
    { id = 2, module = "lua:Run", mapper = { code = "if bundle[1].value == 2 then error('two', 0) end return 1" },
      onerror = A { { id = 9, module = "builtin:Commit" } } },
    setvar(3, "v", "{{1.value}}"),
  }, { input = { items = { 1, 2, 3 } } })
  eq(out.status, "success")
  eq(out.incomplete, nil)
  eq(out.run_data["3"].operations, 1, "element 3 never ran")
  eq(out.run_data["3"].output.v, 1)
end)

test("engine-2.6 Rollback: stops with error, no incomplete execution", function()
  local out = engine.run(bp { hook(1), failing(2, A { { id = 9, module = "builtin:Rollback" } }), setvar(3, "x", "never") },
                         { input = { n = 6 } })
  eq(out.status, "error")
  eq(out.incomplete, nil)
  eq(out.error.module, 2); match(out.error.message, "boom 6")
  eq(out.run_data["3"], nil)
end)

test("engine-2.7 a mapper syntax error is a module error naming the expression (handlers apply)", function()
  local out = engine.run(bp { setvar(1, "x", "{{upper(0.name}}") }, { input = { name = "a" } })
  eq(out.status, "error"); eq(out.error.module, 1); eq(out.error.code, "invalid")
  match(out.error.message, "{{upper%(0%.name}}"); match(out.error.message, "unclosed parenthesis")
  eq(out.incomplete.failer, 1)
  out = engine.run(bp { setvar(1, "x", "{{nope(1)}}", { onerror = A { { id = 2, module = "builtin:Ignore" } } }) })
  eq(out.status, "success"); match(out.warnings[1], "unknown function 'nope'")
end)

test("engine-2.8 a module that raises becomes a module error (code engine)", function()
  engine.register { type = "test:Buggy", fields = {}, run = function() local t = nil; return t.x end }
  local out = engine.run(bp { { id = 1, module = "test:Buggy", mapper = {} } })
  eq(out.status, "error"); eq(out.error.code, "engine")
  match(out.error.message, "module 1 %(test:Buggy%) raised an error")
end)

-- ---------------------------------------------------------------------------
-- 3. resume

test("engine-3.1 resume starts at the failer; earlier modules are not run again", function()
  need_server()
  local ka, kb = key("3.1-a"), key("3.1-b")
  local blueprint = bp {
    hook(1),
    http(2, { url = S .. "/ok?key=" .. ka .. "&order={{1.id}}", parseResponse = true }),
    http(3, { url = S .. "/flaky?fail=1&key=" .. kb, parseResponse = true }),
    setvar(4, "summary", "{{1.id}} {{2.data.ok}} {{3.data.hit}}"),
  }
  local out = engine.run(blueprint, { input = { id = 11 } })
  eq(out.status, "error"); eq(out.incomplete.failer, 3)
  match(out.incomplete.reason, "^HTTP 500 from ")
  eq(count(ka), 1); eq(count(kb), 1)
  local state = json_roundtrip(out.incomplete.state) -- as the store keeps it
  local again = engine.run(blueprint, { resume = { failer = out.incomplete.failer, state = state } })
  eq(again.status, "success", again.error and again.error.message)
  eq(count(ka), 1, "module 2 was not run again")
  eq(count(kb), 2)
  eq(again.run_data["2"], nil); eq(again.run_data["1"], nil)
  eq(again.run_data["4"].output.summary, "11 true 2")
  eq(again.operations, 2)
end)

test("engine-3.2 resume after a patched blueprint (corrected URL)", function()
  need_server()
  local kc = key("3.2")
  local function blueprint(path)
    return bp {
      hook(1),
      http(2, { url = S .. "/ok?key=" .. kc }),
      http(3, { url = S .. path, method = "POST", bodyType = "json", data = { order = "{{1.id}}", run = RUN } }),
    }
  end
  local out = engine.run(blueprint("/v1/webhook"), { input = { id = 12 } })
  eq(out.status, "error"); eq(out.incomplete.failer, 3)
  match(out.error.message, "HTTP 410 from http://127%.0%.0%.1:%d+/v1/webhook")
  local before = #records("webhook2")
  local again = engine.run(blueprint("/v2/webhook"), { resume = { failer = 3, state = json_roundtrip(out.incomplete.state) } })
  eq(again.status, "success", again.error and again.error.message)
  eq(count(kc), 1)
  local recs = records("webhook2")
  eq(#recs, before + 1)
  eq(rd.json.decode(recs[#recs]), { order = 12, run = RUN })
end)

test("engine-3.3 a failer that is not in the (patched) blueprint is an error", function()
  local out = engine.run(bp { setvar(1, "x", "1"), setvar(2, "y", "2") }, { resume = { failer = 7, state = {} } })
  eq(out.status, "error"); eq(out.error.code, "not_found")
  eq(out.error.message, "failer module 7 not found in the blueprint")
  eq(out.incomplete, nil)
end)

test("engine-3.4 resume inside a feeder: the failed element, then the remaining ones", function()
  need_server()
  local kr, kf = key("3.4-rec"), key("3.4-flaky")
  local blueprint = bp {
    hook(1),
    { id = 2, module = "builtin:BasicFeeder", mapper = { array = "{{1.ids}}" } },
    http(3, { url = S .. "/record?key=" .. kr, method = "POST", bodyType = "raw", data = "{{2.value}}" }),
    http(4, { url = S .. "/flaky?key=" .. kf .. "-{{2.value}}&fail={{if(2.value = 3; 1; 0)}}" }),
  }
  local out = engine.run(blueprint, { input = { ids = { 1, 2, 3, 4, 5 } } })
  eq(out.status, "error"); eq(out.incomplete.failer, 4)
  eq(records(kr), { "1", "2", "3" })
  eq(out.incomplete.state.feeders["2"].index, 3)
  local again = engine.run(blueprint, { resume = { failer = 4, state = json_roundtrip(out.incomplete.state) } })
  eq(again.status, "success", again.error and again.error.message)
  eq(records(kr), { "1", "2", "3", "4", "5" }, "element 3's record is not repeated")
  eq(count(kf .. "-3"), 2)
  eq(count(kf .. "-1"), 1)
  eq(again.operations, 1 + 2 * 2)
end)

test("engine-3.5 resume inside a router route: the rest of that route, then the next routes", function()
  need_server()
  local kr, kf = key("3.5-rec"), key("3.5-flaky")
  local function rec(id, tag) return http(id, { url = S .. "/record?key=" .. kr, method = "POST", bodyType = "raw", data = tag }) end
  local blueprint = bp {
    hook(1),
    rec(2, "start"),
    { id = 3, module = "builtin:BasicRouter", routes = A {
      { flow = A { rec(4, "r1-a"), http(5, { url = S .. "/flaky?fail=1&key=" .. kf }), rec(6, "r1-b") } },
      { filter = { name = "no", conditions = { { { a = "{{1.x}}", o = "exist" } } } }, flow = A { rec(7, "r2") } },
      { flow = A { rec(8, "r3") } },
    } },
  }
  local out = engine.run(blueprint, { input = {} })
  eq(out.status, "error"); eq(out.incomplete.failer, 5)
  eq(records(kr), { "start", "r1-a" })
  local again = engine.run(blueprint, { resume = { failer = 5, state = json_roundtrip(out.incomplete.state) } })
  eq(again.status, "success", again.error and again.error.message)
  eq(records(kr), { "start", "r1-a", "r1-b", "r3" })
end)

test("engine-3.6 resume with nested feeders continues every level", function()
  local seen = {}
  local fail_once = true
  engine.register { type = "test:Pair", fields = {}, run = function(ctx, m)
    if m.pair == "b2" and fail_once then fail_once = false; return nil, "b2 failed", "test" end
    seen[#seen + 1] = m.pair
    return { pair = m.pair }
  end }
  local blueprint = bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.outer}}" } },
    { id = 2, module = "builtin:BasicFeeder", mapper = { array = "{{0.inner}}" } },
    { id = 3, module = "test:Pair", mapper = { pair = "{{1.value}}{{2.value}}" } },
  }
  local input = { outer = { "a", "b", "c" }, inner = { 1, 2, 3 } }
  local out = engine.run(blueprint, { input = input })
  eq(out.status, "error"); eq(out.incomplete.failer, 3)
  eq(seen, { "a1", "a2", "a3", "b1" })
  local again = engine.run(blueprint, { resume = { failer = 3, state = json_roundtrip(out.incomplete.state) } })
  eq(again.status, "success", again.error and again.error.message)
  eq(seen, { "a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3" })
end)

test("engine-3.7 a resumed run that fails again stores a fresh incomplete state", function()
  need_server()
  local kf = key("3.7")
  local blueprint = bp { hook(1), setvar(2, "v", "{{1.v}}"), http(3, { url = S .. "/flaky?fail=2&key=" .. kf }) }
  local out = engine.run(blueprint, { input = { v = "x" } })
  eq(out.incomplete.failer, 3)
  local again = engine.run(blueprint, { resume = { failer = 3, state = json_roundtrip(out.incomplete.state) } })
  eq(again.status, "error"); eq(again.incomplete.failer, 3)
  eq(again.incomplete.state.outputs["2"], { v = "x" })
  eq(again.incomplete.state.input, { v = "x" })
  local third = engine.run(blueprint, { resume = { failer = 3, state = json_roundtrip(again.incomplete.state) } })
  eq(third.status, "success")
  eq(count(kf), 3)
end)

-- ---------------------------------------------------------------------------
-- 4. validation

test("engine-4.1 an invalid blueprint is refused with errors naming module id and field", function()
  local out = engine.run(bp { hook(1), http(2, { method = "GET" }) })
  eq(out.status, "error"); eq(out.error.code, "invalid")
  match(out.error.message, "^invalid blueprint: ")
  match(out.error.message, "module 2")
  match(out.error.message, "mapper%.url")
  match(out.error.message, "required field missing")
  eq(out.operations, 0); eq(out.incomplete, nil)
  out = engine.run(bp { hook(1), { id = 2, module = "nope:Unknown", mapper = {} } })
  match(out.error.message, "module 2"); match(out.error.message, "unknown module type 'nope:Unknown'")
  out = engine.run(bp { hook(1), setvar(1, "x", "y") })
  match(out.error.message, "duplicate id 1")
  out = engine.run(bp { hook(1), http(2, { url = "http://x", parseResponse = "yes" }) })
  match(out.error.message, "module 2"); match(out.error.message, "mapper%.parseResponse"); match(out.error.message, "boolean")
  out = engine.run(bp { hook(1), setvar(2, "x", "y", { onerror = A { { id = 3, module = "builtin:Explode" } } }) })
  match(out.error.message, "module 2"); match(out.error.message, "onerror%[0%]%.module")
  out = engine.run(bp { { id = 1, module = "builtin:Break" } })
  match(out.error.message, "only valid in onerror")
end)

test("engine-4.1b an http url whose literal port is not a number is refused before anything runs", function()
  local function problems(url)
    local okv, errs = rd.blueprint(bp { hook(1), http(2, { url = url }) }):validate()
    if okv then return nil end
    return errs
  end
  -- the shipped example scenarios' placeholder
  local errs = problems("http://127.0.0.1:PORT/orders/{{1.order_id}}")
  eq(#errs, 1); eq(errs[1].module, 2); eq(errs[1].field, "mapper.url"); eq(errs[1].pointer, "/flow/1/mapper/url")
  eq(errs[1].message, 'port "PORT" of 127.0.0.1:PORT is not a number: a placeholder to fill in ' ..
    "(examples/demo.sh fills PORT)")
  match(problems("https://h:99999/x")[1].message, '^port "99999" of h:99999 is not a number$')
  -- userinfo is never judged nor printed
  local m = problems("http://user:s3cret@h:8x/a")[1].message
  ok(not m:find("s3cret"), m); match(m, 'port "8x" of h:8x')
  -- fine: numbers, no port, an empty port, IPv6, templates in the authority
  for _, url in ipairs { "http://h:8080/x", "http://h/x", "http://h:/x", "http://[::1]:80/x", "http://[::1]/x",
                         "http://{{1.host}}:PORT/x", "{{1.url}}", "http://h:{{1.port}}/x", "ftp://h:21" } do
    eq(problems(url), nil, url)
  end
  -- engine.run refuses it up front: no operation, no incomplete execution
  local out = engine.run(bp { hook(1), http(2, { url = "http://127.0.0.1:PORT/x" }) })
  eq(out.status, "error"); eq(out.error.code, "invalid"); eq(out.operations, 0); eq(out.incomplete, nil)
end)

test("engine-4.2 a router must be the last module of its flow", function()
  local out = engine.run(bp {
    { id = 1, module = "builtin:BasicRouter", routes = A { { flow = A { setvar(2, "a", "b") } } } },
    setvar(3, "x", "y"),
  })
  eq(out.status, "error")
  match(out.error.message, "module 3 follows router 1")
  out = engine.run(bp { { id = 1, module = "builtin:BasicRouter" } })
  eq(out.status, "error"); match(out.error.message, "module 1"); match(out.error.message, "routes")
end)

test("engine-4.3 modules are registered in the blueprint registry", function()
  local reg = rd.blueprint and rd.blueprint.registered
  if not reg then return end
  for _, t in ipairs { "http:ActionSendData", "json:ParseJSON", "util:SetVariable", "util:SetVariables",
                       "builtin:BasicRouter", "builtin:BasicFeeder", "gateway:CustomWebHook", "lua:Run" } do
    ok(reg(t), t .. " registered")
    ok(engine.modules[t], t .. " known to the engine")
  end
  eq(reg("http:ActionSendData").required, { "url" })
  local okv = rd.blueprint(bp { hook(1), http(2, { url = "{{1.url}}", timeout = "{{1.t}}" }) }):validate()
  eq(okv, true)
end)

test("engine-4.4 an empty flow built in Lua is an empty array, not an object", function()
  local out = engine.run { name = "empty", flow = {} }
  eq(out.status, "success", out.error and out.error.message); eq(out.operations, 0)
end)

test("engine-4.5 misuse raises", function()
  raises("blueprint table expected", engine.run, "nope")
  raises("table expected", engine.run, bp {}, 5)
  raises("run must be a function", engine.register, { type = "x:Y" })
end)

-- ---------------------------------------------------------------------------
-- 5. fixtures and the rest

local function fixture(name)
  local fh = assert(io.open(H.root .. "/tests/fixtures/blueprints/" .. name))
  local text = fh:read("a"):gsub("http://127%.0%.0%.1:PORT", S)
  fh:close()
  return assert(rd.json.decode(text))
end

test("engine-5.1 fixture order-enrichment.json: lookup, variables, router by amount", function()
  need_server()
  local b = fixture("order-enrichment.json")
  eq(engine.validate(b), true)
  local before = #records("standard-orders")
  local out = engine.run(b, { input = { order_id = 5 } })
  eq(out.status, "success", out.error and out.error.message)
  eq(out.operations, 4)
  eq(out.run_data["3"].output, { customer = "Customer 5", email = "c5@example.test", amount = 50, tier = "standard" })
  eq(out.run_data["5"], nil)
  local recs = records("standard-orders")
  eq(#recs, before + 1)
  eq(rd.json.decode(recs[#recs]), { order = 5, customer = "Customer 5", amount = 50 })
  out = engine.run(b, { input = { order_id = 41 } })
  eq(out.status, "success"); eq(out.run_data["3"].output.tier, "priority"); eq(out.run_data["5"].output.statusCode, 200)
  out = engine.run(b, { input = { order_id = 14 } })
  eq(out.status, "error"); eq(out.incomplete.failer, 2); match(out.incomplete.reason, "HTTP 500 from .*/orders/14")
end)

test("engine-5.2 fixture batch-orders-feeder.json: a Break with auto retry inside a feeder, then resume", function()
  need_server()
  local b = fixture("batch-orders-feeder.json")
  eq(engine.validate(b), true)
  local before = #records("order-archive")
  local out = engine.run(b, { input = { order_ids = { 5, 6, 7, 8 } } })
  eq(out.status, "warning")
  eq(out.incomplete.failer, 3)
  eq(out.incomplete.auto_retry, { count = 3, interval = 900 })
  eq(out.incomplete.state.feeders["2"].index, 3)
  eq(#records("order-archive"), before + 2)
  -- order 7 always fails: resume with the failing order patched out of the state
  local state = json_roundtrip(out.incomplete.state)
  state.feeders["2"].array[3].value = 9
  state.outputs["2"] = state.feeders["2"].array[3]
  local again = engine.run(b, { resume = { failer = 3, state = state } })
  eq(again.status, "success", again.error and again.error.message)
  local recs = records("order-archive")
  eq(#recs, before + 4)
  eq(rd.json.decode(recs[#recs - 1]), { order = 9, position = "3/4", email = "c9@example.test" })
  eq(rd.json.decode(recs[#recs]).order, 8)
end)

test("engine-5.3 fixture invoice-transform.json: parse, lua:Run, post", function()
  need_server()
  local b = fixture("invoice-transform.json")
  eq(engine.validate(b), true)
  local payload = rd.json.encode { invoice = "INV-1", lines = { { sku = "a", qty = 2, unit_price = 10 }, { sku = "b", qty = 1, unit_price = 5.5 } } }
  local out = engine.run(b, { input = { payload = payload } })
  eq(out.status, "success", out.error and out.error.message)
  eq(out.run_data["3"].output.net, 25.5)
  eq(out.run_data["3"].output.tax, 5.1)
  eq(out.run_data["4"].output.data.headers["x-invoice"], "INV-1")
  eq(rd.json.decode(out.run_data["4"].output.data.body), { invoice = "INV-1", gross = 30.6, lines = 2 })
  eq(out.run_data["5"].output.summary, "invoice INV-1: 30.6 (200)")
  out = engine.run(b, { input = { payload = "{broken" } })
  eq(out.status, "error"); eq(out.incomplete.failer, 2); match(out.error.message, "json:ParseJSON %(module 2%)")
end)

test("engine-5.4 fixture resilient-notify.json: Resume, Ignore and Rollback", function()
  need_server()
  local b = fixture("resilient-notify.json")
  eq(engine.validate(b), true)
  local out = engine.run(b, { input = { order_id = 21 } })
  eq(out.status, "success", out.error and out.error.message)
  eq(#out.warnings, 2)
  match(out.warnings[1], "module 2: HTTP 500 .* %(resumed")
  match(out.warnings[2], "module 5: HTTP 410 .* %(ignored%)")
  local recs = records("webhook2")
  eq(rd.json.decode(recs[#recs]), { order = 21, status = "unknown" })
  -- route 2 failing: Rollback, no incomplete execution
  b.flow[3].routes[2].flow[1].mapper.url = S .. "/status/503"
  out = engine.run(b, { input = { order_id = 22 } })
  eq(out.status, "error"); eq(out.incomplete, nil); eq(out.error.module, 7)
end)

test("engine-5.5 cancelling the task interrupts a running HTTP module", function()
  need_server()
  local k = key("cancel55")
  local t = rd.spawn(function() return engine.run(bp { http(1, { url = S .. "/stall?key=" .. k }) }) end)
  H.wait_hits(k, 1) -- the module's request is in flight
  t:cancel()
  local r, err = t:wait()
  eq(r, nil); ok(rd.is_canceled(err), "cancelled: rd.canceled", err)
end)

test("engine-5.6 transfer sums HTTP bytes over the run", function()
  need_server()
  local out = engine.run(bp {
    { id = 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.ids}}" } },
    http(2, { url = S .. "/orders/{{1.value}}", parseResponse = true }),
  }, { input = { ids = { 1, 2, 3 } } })
  eq(out.status, "success")
  ok(out.transfer > 300, "3 responses of ~100 bytes plus headers", out.transfer)
  eq(out.run_data["2"].output.data.customer.email, "c3@example.test")
end)

-- ---------------------------------------------------------------------------
-- 6. hostile input (issue 13): work linear in the module count, run data
-- always storable, element shapes validated. Work is counted, never timed:
-- Lua instructions for n and 4n (linear grows 4x, quadratic 16x), and
-- callgrind's count for C work where valgrind is installed.

local grows = H.grows

local function chain(n, first)
  local flow = {}
  for i = 1, n do
    flow[i] = setvar(first + i - 1, "v", i == 1 and "x" or ("{{" .. (first + i - 2) .. ".v}}"))
  end
  return flow
end

test("engine-6.1 a run's work grows linearly with its module count (src:run, recorded)", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local function work(n)
    local sc = assert(src:scenario_create { name = "chain " .. n, blueprint = bp(chain(n, 1)) })
    local w, e = H.work(src.run, src, sc.id, { input = { n = n } })
    assert(e, "run failed")
    eq(e.status, "success")
    eq(e:run_data()[tostring(n)].output.v, "x")
    return w
  end
  work(10)
  grows("a chain of SetVariable modules", 500, work(500), work(2000))
  src:close()
end)

test("engine-6.2 a feeder over n elements after n modules: linear (no copy of the outputs per element)", function()
  local function work(n)
    local flow = chain(n, 1)
    flow[n + 1] = { id = n + 1, module = "builtin:BasicFeeder", mapper = { array = "{{0.arr}}" } }
    flow[n + 2] = setvar(n + 2, "w", "{{" .. (n + 1) .. ".value}}-{{" .. n .. ".v}}")
    local arr = {}
    for i = 1, n do arr[i] = i end
    local w, out = H.work(engine.run, bp(flow), { input = { arr = arr } })
    eq(out.status, "success", out.error and out.error.message)
    eq(out.run_data[tostring(n + 2)].output.w, n .. "-x")
    eq(out.operations, 2 * n + 1)
    return w
  end
  grows("n modules, then a feeder of n elements", 300, work(300), work(1200))
end)

test("engine-6.3 routes get the outputs before the router, and only those", function()
  local out = engine.run(bp {
    setvar(1, "v", "a"),
    { id = 2, module = "builtin:BasicRouter", routes = A {
      { flow = A { setvar(3, "v", "{{1.v}}b"), setvar(4, "v", "{{3.v}}c") } },
      { flow = A { setvar(5, "v", "{{1.v}}-{{3.v}}-{{4.v}}") } },
    } },
  })
  eq(out.status, "success")
  eq(out.run_data["4"].output.v, "abc")
  eq(out.run_data["5"].output.v, "a--", "a route does not see another route's outputs")
end)

test("engine-6.4 lua:Run's bundle: every output so far by id, [0] the input, pairs() walks it", function()
  local out = engine.run(bp {
    setvar(1, "v", "a"),
    { id = 2, module = "builtin:BasicFeeder", mapper = { array = "{{0.arr}}" } },
    { id = 3, module = "lua:Run", mapper = { code = [[
      local keys = {}
      for k in pairs(bundle) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      return { keys = table.concat(keys, ","), v = bundle[1].v, el = bundle[2].value, x = bundle[0].x,
               none = bundle[9] == nil }
    ]] } },
  }, { input = { x = 7, arr = { 10 } } })
  eq(out.status, "success", out.error and out.error.message)
  eq(out.run_data["3"].output, { keys = "0,1,2", v = "a", el = 10, x = 7, none = true })
end)

H.c_growth("engine-6.5 validation's C work grows linearly with the module count (callgrind)", [[
local n = tonumber(arg[1])
local parts = {}
for i = 1, n do parts[i] = string.format('{"id":%d,"module":"probe:Set","mapper":{"name":"v"}}', i) end
assert(rd.blueprint.register_module("probe:Set", { fields = { name = "string" }, required = { "name" } }))
assert(assert(rd.blueprint('{"name":"many","flow":[' .. table.concat(parts, ",") .. ']}')):validate())
]], 4000)

H.c_growth("engine-6.9 a text:contain filter's C work grows linearly with its text (callgrind)", [[
local engine = require "redrive.engine"
local n = tonumber(arg[1]) * 100
if n > 0 then -- a needle that almost matches everywhere: quadratic for string.find's plain search
  local scope = { outputs = { ["1"] = { v = ("a"):rep(n), w = ("a"):rep(n // 2) .. "b" } } }
  for _, o in ipairs { "text:contain", "text:notcontain:ci" } do
    local pass = engine.filter_pass({ conditions = { { { a = "{{1.v}}", b = "{{1.w}}", o = o } } } }, scope)
    assert(pass == (o ~= "text:contain"), o)
  end
end
]], 500)

test("engine-6.6 a value JSON cannot carry fails its module; the run data of the others is kept", function()
  -- toNumber("1e400") is refused by the mapper
  local out = engine.run(bp { setvar(1, "a", "ok"), setvar(2, "n", "{{toNumber(1.a)}}") }, { dlq = false })
  eq(out.status, "error"); eq(out.error.module, 2); eq(out.error.code, "invalid")
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = assert(src:scenario_create { name = "inf", blueprint = bp {
    setvar(1, "a", "kept"), setvar(2, "n", "{{toNumber(0.v)}}") } })
  local e = assert(src:run(sc.id, { input = { v = "1e400" } }))
  eq(e.status, "error"); eq(e.error.module, 2); eq(e.error.code, "invalid")
  match(e.error.message, 'toNumber%(%): "1e400" is out of range')
  local data = e:run_data()
  eq(data["1"].output, { a = "kept" }, "the module before keeps its run data")
  eq(data["2"].error.code, "invalid")
  -- any module's output that JSON cannot carry: the module fails, naming why
  for i, code in ipairs { "return { x = math.huge }", "return { x = 0/0 }", "return { f = tostring }" } do
    out = engine.run(bp { setvar(1, "a", "kept"), { id = 2, module = "lua:Run", mapper = { code = code } } })
    eq(out.status, "error", code); eq(out.error.module, 2); eq(out.error.code, "invalid")
    match(out.error.message, "^module 2 %(lua:Run%): the output cannot be stored as JSON: json: cannot encode")
    eq(out.run_data["1"].output, { a = "kept" }, code)
    ok(rd.json.encode(out.run_data), "run data " .. i .. " encodes")
  end
  -- a run's input that JSON cannot carry: the run fails before any module
  out = engine.run(bp { setvar(1, "a", "{{0.v}}") }, { input = { v = math.huge } })
  eq(out.status, "error"); eq(out.error.code, "invalid"); eq(out.operations, 0)
  match(out.error.message, "^the run's input cannot be stored as JSON: json: cannot encode infinity at %.v$")
  src:close()
end)

test("engine-6.7 util:SetVariables and http headers: each element a {name, value}, checked at validation", function()
  local cases = {
    { { id = 1, module = "util:SetVariables", mapper = { variables = A { 5 } } },
      "module 1, mapper.variables%[0%]: expected object, got number" },
    { { id = 1, module = "util:SetVariables", mapper = { variables = A { { name = 5, value = 1 } } } },
      "module 1, mapper.variables%[0%].name: expected string, got number" },
    { { id = 1, module = "util:SetVariables", mapper = { variables = A { { value = 1 } } } },
      "module 1, mapper.variables%[0%].name: required field missing" },
    { http(1, { url = "http://127.0.0.1:1/", headers = A { { name = "a", value = "b" }, "x" } }),
      "module 1, mapper.headers%[1%]: expected object, got string" },
    { http(1, { url = "http://127.0.0.1:1/", qs = A { { name = A { 1 }, value = "b" } } }),
      "module 1, mapper.qs%[0%].name: expected string, got array" },
  }
  for _, c in ipairs(cases) do
    local okv, err = engine.validate(bp { c[1] })
    eq(okv, nil); match(err, c[2])
    local out = engine.run(bp { c[1] })
    eq(out.status, "error"); eq(out.error.code, "invalid"); eq(out.operations, 0)
  end
  -- templates are resolved at run time and pass validation
  ok(engine.validate(bp { { id = 1, module = "util:SetVariables", mapper = { variables = "{{0.vars}}" } } }))
end)

test("engine-6.8 ... and again at run time, when a template made them: a clear module error", function()
  local vars = bp { { id = 1, module = "util:SetVariables", mapper = { variables = "{{0.vars}}" } } }
  for _, c in ipairs {
    { 5, "variables must be a list of {name, value}, got number" },
    { true, "variables must be a list of {name, value}, got boolean" },
    { "abc", "variables must be a list of {name, value}, got string" },
    { A { 1, 2 }, "variables%[0%] must be {name, value}, got number" },
    { A { { name = { "x" }, value = 1 } }, "variables%[0%].name must be a string, got array" },
  } do
    local out = engine.run(vars, { input = { vars = c[1] } })
    eq(out.status, "error"); eq(out.error.code, "invalid")
    match(out.error.message, "^util:SetVariables %(module 1%): " .. c[2] .. "$")
  end
  local out = engine.run(vars, { input = { vars = A { { name = "a", value = 1 }, { name = "", value = "blank row" } } } })
  eq(out.status, "success"); eq(out.run_data["1"].output, { a = 1 })
  local h = bp { http(1, { url = "http://127.0.0.1:1/", headers = "{{0.h}}" }) }
  for _, c in ipairs {
    { "x", "^http: headers must be a list of {name, value}, got string$" },
    { A { A { "a", "b" } }, "^http: headers%[0%] must be {name, value}, got array$" },
    { A { { name = "X-A", value = "1\r\nInjected: yes" } }, "^http: header 'X%-A' contains a line break$" },
    { A { { name = "X\nA", value = "1" } }, "^http: header 'X%?A' contains a line break$" },
  } do
    out = engine.run(h, { input = { h = c[1] } })
    eq(out.status, "error"); eq(out.error.code, "invalid", out.error.message)
    match(out.error.message, c[2])
  end
end)

H.done()

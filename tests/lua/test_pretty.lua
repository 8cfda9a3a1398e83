-- redrive.pretty: layout, limits, cycles, object summaries, redaction.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local pretty = require "redrive.pretty"
local fmt = pretty.format

test("pretty-1.1 scalars", function()
  eq(fmt(1), "1"); eq(fmt(true), "true"); eq(fmt(nil), "nil"); eq(fmt("a\nb"), '"a\\nb"')
  eq(fmt(rd.json.null), "null")
end)

test("pretty-1.2 short tables stay on one line, keys sorted, arrays first", function()
  eq(fmt({ 1, 2, b = 2, a = "x" }), '{ 1, 2, a = "x", b = 2 }')
  eq(fmt({ ["not ident"] = 1, [true] = 2 }), '{ ["not ident"] = 1, [true] = 2 }')
  eq(fmt({}), "{}")
  eq(fmt(rd.json.decode("[]")), "[]")
end)

test("pretty-1.3 long tables are indented", function()
  local t = { name = string.rep("n", 50), nested = { list = { 1, 2, 3 }, other = string.rep("o", 60) } }
  local s = fmt(t)
  match(s, '^{\n  name = "n+",\n  nested = {\n    list = { 1, 2, 3 },\n    other = "o+",\n  },\n}$')
end)

test("pretty-1.4 depth, length and string limits", function()
  eq(fmt({ a = { b = { c = { d = 1 } } } }, { depth = 2 }), "{ a = { b = {…} } }")
  local big = {}
  for i = 1, 50 do big[i] = i end
  match(fmt(big, { items = 10 }), "… %(40 more%) }$")
  match(fmt(string.rep("x", 1000)), '…%(1000 bytes%)$')
end)

test("pretty-1.5 cycles are marked", function()
  local t = { 1 }
  t.self = t
  eq(fmt(t), "{ 1, self = <cycle> }")
  local shared = { 1 }
  eq(fmt({ a = shared, b = shared }), "{ a = { 1 }, b = { 1 } }") -- shared is not a cycle
end)

test("pretty-1.6 secrets are never printed", function()
  local s = fmt({ token = "T0K", api_key = "K3Y", headers = { Authorization = "Bearer abc.def" },
                  url = "https://u:p@h/x?token=T0K&page=2", note = "Bearer abc.def" })
  ok(not s:find("T0K") and not s:find("K3Y") and not s:find("abc.def") and not s:find("u:p@"), "leaked", s)
  match(s, "page=2")
  eq(pretty.redact_url("https://h/x?access_token=a&b=1"), "https://h/x?access_token=<redacted>&b=1")
end)

test("pretty-1.7 executions and items print as summaries", function()
  local mt = { __name = "redrive.Execution", __index = { retry = function() end } }
  local e = setmetatable({ id = "e1", status = "error", scenario = 3, started_at = 0, stopped_at = 1.5,
                           error = { module = 2, message = "HTTP 503" }, raw = { big = true } }, mt)
  eq(pretty.summary(e), "<execution e1 [error] scenario 3 1970-01-01 00:00:00Z 1.50s module 2: HTTP 503>")
  local top = fmt(e)
  match(top, "^<execution e1")
  match(top, "raw = {…}")
  match(top, "%-%- methods: :retry")
  local it = setmetatable({ id = "i1", scenario = 3, scenario_name = "orders", reason = "timeout",
                            created = 0, attempts = 2, failer = 4 }, { __name = "redrive.Item" })
  eq(fmt({ it }), '{ <incomplete i1 scenario 3 "orders" 1970-01-01 00:00:00Z attempts 2 failer 4 "timeout"> }')
end)

test("pretty-1.8 blueprints and sources", function()
  local bp = assert(rd.blueprint { name = "x", flow = { { id = 1, module = "json:ParseJSON", mapper = {} } } })
  eq(fmt(bp), '<blueprint "x", 1 modules>')
  local src = setmetatable({ kind = "n8n", name = "prod", _token = "SECRET" }, { __name = "redrive.Source" })
  local s = fmt(src)
  match(s, '^<source n8n "prod">')
  ok(not s:find("SECRET"), "private field shown", s)
end)

test("pretty-1.9 functions", function()
  match(fmt(print), "<function: builtin>")
  match(fmt(function() end), "<function .*test_pretty.lua:%d+>")
end)

test("pretty-2.1 the first rows of an iterator, then '… more'", function()
  eq(fmt(pretty.rows({ 1, "a" }, true)), '{\n  1,\n  "a",\n  … more (the iterator has more rows)\n}')
  eq(fmt(pretty.rows({ 1 }, false)), "{\n  1\n}")
  eq(fmt(pretty.rows({}, false)), "{} (no rows)")
end)

test("pretty-2.2 the REPL: statements then an expression; a listing shows its rows", function()
  local repl = require "redrive.cli.repl"
  -- the one-liner .help shows
  local one = assert(repl.compile("xs = {} for i = 1, 3 do xs[#xs+1] = i * 2 end; xs"))
  eq(one(), { 2, 4, 6 })
  eq(assert(repl.compile('s = "a;b"; s'))(), "a;b")
  eq(assert(repl.compile("1 + 2"))(), 3)
  local c, err, more = repl.compile("for i = 1, 2 do")
  eq(c, nil); eq(more, true, err)
  c, err, more = repl.compile("x = = 1")
  eq(c, nil); eq(more, false, err)
  -- a source's listing typed at the prompt: its first rows, then "… more"
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = assert(src:scenario_create { name = "down", blueprint = { name = "down", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = "http://127.0.0.1:1/x", method = "get" } } } } })
  for _ = 1, repl.PREVIEW_ROWS + 2 do src:run(sc.id) end
  _G.src = src
  local ok, r = repl.eval(assert(repl.compile("src:incomplete{}")))
  _G.src = nil
  eq(ok, true, r)
  eq(getmetatable(r[1]).__name, "redrive.Rows")
  eq(#r[1].list, repl.PREVIEW_ROWS); eq(r[1].more, true)
  match(fmt(r[1]), "^{\n  <incomplete %x+ scenario %d+ \"down\"")
  match(fmt(r[1]), "… more")
  -- any other function is not called
  local called = false
  _G.f = function() called = true end
  ok, r = repl.eval(assert(repl.compile("f")))
  _G.f = nil
  eq(ok, true); eq(type(r[1]), "function"); eq(called, false)
end)

H.done()

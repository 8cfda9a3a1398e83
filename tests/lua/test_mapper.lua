-- Engine mapper: {{id.path}} references, types, functions, errors.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local M = require "redrive.engine.mapper"

local scope = {
  input = { n = 5, name = "Ada", tags = { "x", "y" } },
  scenario = { id = 42, name = "orders sync" },
  outputs = {
    ["1"] = { statusCode = 200, headers = { ["content-type"] = "application/json", ["x-req"] = "abc" },
              data = { id = 17, items = { { id = "a1", qty = 2 }, { id = "b2", qty = 3 } }, empty = "", none = rd.json.null,
                       flag = false, ratio = 0.5, text = "  Hello World  " } },
    ["2"] = { ["odd key"] = { v = 1 }, list = rd.json.array {}, obj = rd.json.object {} },
    ["12"] = "scalar output",
  },
}

local function ev(s) return M.eval(s, scope) end

test("mapper-1.1 plain text and a text without templates pass through", function()
  eq(ev("hello"), "hello")
  eq(ev(""), "")
  eq(ev("{ not a template }"), "{ not a template }")
end)

test("mapper-1.2 references: nested paths, '-' in keys, module id and input", function()
  eq(ev("{{1.data.id}}"), 17)
  eq(ev("{{1.statusCode}}"), 200)
  eq(ev("{{1.headers.content-type}}"), "application/json")
  eq(ev("{{1.headers.x-req}}"), "abc")
  eq(ev("{{0.n}}"), 5)
  eq(ev("{{0.tags[2]}}"), "y")
  eq(ev("{{scenario.id}}"), 42)
  eq(ev("{{scenario.name}}"), "orders sync")
  eq(ev("{{2.`odd key`.v}}"), 1)
  eq(ev("{{12}}"), "scalar output")
end)

test("mapper-1.3 array indices are 1-based", function()
  eq(ev("{{1.data.items[1].id}}"), "a1")
  eq(ev("{{1.data.items[2].qty}}"), 3)
  eq(ev("{{1.data.items[3].id}}"), nil)
  eq(ev("{{1.data.items[0].id}}"), nil)
end)

test("mapper-1.4 a single {{...}} keeps its type; mixed text is text", function()
  eq(math.type(ev("{{1.data.id}}")), "integer")
  eq(ev("{{1.data.flag}}"), false)
  eq(ev("{{1.data.ratio}}"), 0.5)
  eq(type(ev("{{1.data.items}}")), "table")
  eq(ev("id={{1.data.id}}"), "id=17")
  eq(ev("{{1.data.id}}{{1.data.id}}"), "1717")
  eq(ev("flag: {{1.data.flag}}, ratio: {{1.data.ratio}}"), "flag: false, ratio: 0.5")
  eq(ev("first: {{0.tags}}"), 'first: ["x","y"]')
  eq(ev("items: {{1.data.items[1]}}"):sub(1, 8), "items: {")
end)

test("mapper-1.5 unknown references resolve to empty", function()
  eq(ev("{{9.nothing}}"), nil)
  eq(ev("{{1.data.nothing.deeper}}"), nil)
  eq(ev("[{{9.x}}]"), "[]")
  eq(ev("{{1.data.none}}"), nil)
  eq(ev("<{{1.data.none}}>"), "<>")
  eq(ev("{{1.data.id.more}}"), nil)
end)

test("mapper-1.6 resolve walks tables, keeps JSON kinds, names the field on errors", function()
  local m = M.resolve({ url = "http://x/{{1.data.id}}", headers = rd.json.array { { name = "X", value = "{{1.headers.x-req}}" } },
                        nested = { deep = { v = "{{0.name}}" } }, n = 3, b = true, e = rd.json.array {} }, scope)
  eq(m.url, "http://x/17")
  eq(m.headers[1].value, "abc")
  eq(m.nested.deep.v, "Ada")
  eq(m.n, 3); eq(m.b, true)
  eq(rd.json.kind(m.e), "array")
  eq(rd.json.encode(m.e), "[]")
  local r, err, code = M.resolve({ a = { b = "{{nope(1)}}" } }, scope)
  eq(r, nil); eq(code, "invalid")
  match(err, "unknown function 'nope'"); match(err, "{{nope%(1%)}}", "names the expression"); match(err, "field a%.b")
  -- the path of a deeper field, and the same template again (parsed once,
  -- cached): the same error each time
  for _ = 1, 2 do
    r, err, code = M.resolve({ x = { y = rd.json.array { "ok", { z = "{{nope(1)}}" } } } }, scope)
    eq(r, nil); eq(code, "invalid"); match(err, "unknown function 'nope'"); match(err, "%(field x%.y%.2%.z%)")
  end
  eq(rd.json.encode(M.resolve(nil, scope)), "{}")
end)

test("mapper-2.1 ifempty", function()
  eq(ev("{{ifempty(1.data.empty; fallback)}}"), "fallback")
  eq(ev("{{ifempty(1.data.none; fallback)}}"), "fallback")
  eq(ev("{{ifempty(9.x; 1.data.id)}}"), 17)
  eq(ev("{{ifempty(0.name; fallback)}}"), "Ada")
  eq(ev("{{ifempty(2.list; \"none\")}}"), "none")
  eq(ev("{{ifempty(2.obj; \"none\")}}"), "none")
end)

test("mapper-2.2 toString / toNumber", function()
  eq(ev("{{toString(1.data.id)}}"), "17")
  eq(rd.json.decode(ev("{{toString(1.data.items[1])}}")), { id = "a1", qty = 2 })
  eq(ev("{{toNumber(\"42\")}}"), 42)
  eq(math.type(ev("{{toNumber(\"42\")}}")), "integer")
  eq(ev("{{toNumber(\" 2.5 \")}}"), 2.5)
  eq(ev("{{toNumber(9.nothing)}}"), nil)
  local r, err, code = ev("{{toNumber(0.name)}}")
  eq(r, nil); eq(code, "invalid"); match(err, "toNumber%(%): \"Ada\" is not a number"); match(err, "{{toNumber%(0%.name%)}}")
end)

test("mapper-2.3 now and timestamp", function()
  local s = ev("{{now}}")
  match(s, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$")
  eq(s:sub(1, 4), os.date("!%Y"))
  -- (rd.time's clock: os.time() is time(2), a coarser clock that can lag a
  -- second boundary by a tick)
  local before = math.floor(rd.time())
  local t = ev("{{timestamp}}")
  local after = math.floor(rd.time())
  eq(math.type(t), "integer")
  ok(t >= before and t <= after, "timestamp is now: between the clock read before and after", t)
  eq(ev("{{now()}}"):sub(1, 4), os.date("!%Y"))
  match(ev("at {{timestamp}}"), "^at %d+$")
end)

test("mapper-2.4 length", function()
  eq(ev("{{length(1.data.items)}}"), 2)
  eq(ev("{{length(0.name)}}"), 3)
  eq(ev("{{length(\"héllo\")}}"), 5)
  eq(ev("{{length(9.x)}}"), 0)
  eq(ev("{{length(1.headers)}}"), 2)
  eq(ev("{{length(2.list)}}"), 0)
end)

test("mapper-2.5 lower, upper, trim", function()
  eq(ev("{{lower(\"MiXeD\")}}"), "mixed")
  eq(ev("{{upper(0.name)}}"), "ADA")
  eq(ev("[{{trim(1.data.text)}}]"), "[Hello World]")
end)

test("mapper-2.6 replace is plain text, every occurrence", function()
  eq(ev("{{replace(\"a.b.c\"; .; -)}}"), "a-b-c")
  eq(ev("{{replace(0.name; a; \"%\")}}"), "Ad%")
  eq(ev("{{replace(\"x\"; \"\"; y)}}"), "x")
  eq(ev("{{replace(\"a b\"; \" \"; \"\")}}"), "ab")
end)

test("mapper-2.7 substring is 0-based, end exclusive, UTF-8 aware", function()
  eq(ev("{{substring(\"Hello\"; 0; 3)}}"), "Hel")
  eq(ev("{{substring(\"Hello\"; 1)}}"), "ello")
  eq(ev("{{substring(\"héllo\"; 1; 3)}}"), "él")
  eq(ev("{{substring(\"Hi\"; 5; 9)}}"), "")
  local r, err = ev("{{substring(\"Hi\"; x)}}")
  eq(r, nil); match(err, "start must be a number")
end)

test("mapper-2.8 if with values and comparisons", function()
  eq(ev("{{if(1.data.flag; yes; no)}}"), "no")
  eq(ev("{{if(0.name; yes; no)}}"), "yes")
  eq(ev("{{if(1.statusCode = 200; ok; bad)}}"), "ok")
  eq(ev("{{if(1.statusCode != 200; bad; ok)}}"), "ok")
  eq(ev("{{if(0.n >= 5; big; small)}}"), "big")
  eq(ev("{{if(0.n < 5; small; big)}}"), "big")
  eq(ev("{{if(0.name = \"Ada\"; 1.data.id; 0)}}"), 17)
  eq(ev("{{if(9.x; yes)}}"), nil)
end)

test("mapper-2.9 get with dotted and indexed paths", function()
  eq(ev("{{get(1.data; \"items[2].id\")}}"), "b2")
  eq(ev("{{get(1.data; items.1.qty)}}"), 2)
  eq(ev("{{get(1.data.items; 2)}}").id, "b2")
  eq(ev("{{get(1.data; nothing.here)}}"), nil)
end)

test("mapper-2.10 join, first, last", function()
  eq(ev("{{join(0.tags; \", \")}}"), "x, y")
  eq(ev("{{join(0.tags; -)}}"), "x-y")
  eq(ev("{{join(0.tags)}}"), "x,y")
  eq(ev("{{join(0.tags; )}}"), "x y")
  eq(ev("{{first(1.data.items)}}").id, "a1")
  eq(ev("{{last(1.data.items)}}").qty, 3)
  local r, err = ev("{{last(1.data.items).qty}}") -- calls are not followed by paths (use get)
  eq(r, nil); match(err, "unexpected '%.qty' after last")
  eq(ev("{{last(0.tags)}}"), "y")
  eq(ev("{{first(2.list)}}"), nil)
end)

test("mapper-2.11 encodeURL", function()
  eq(ev("{{encodeURL(\"a b&c=d/é\")}}"), "a%20b%26c%3Dd%2F%C3%A9")
  eq(ev("q={{encodeURL(0.name)}}"), "q=Ada")
end)

test("mapper-2.12 nested calls", function()
  eq(ev("{{upper(trim(1.data.text))}}"), "HELLO WORLD")
  eq(ev("{{length(replace(0.name; a; \"\"))}}"), 2)
  eq(ev("{{ifempty(get(1.data; missing); lower(0.name))}}"), "ada")
end)

test("mapper-3.1 syntax errors and unknown functions name the expression, code invalid", function()
  local cases = {
    { "{{1.data.id", "unclosed '{{'" },
    { "x {{upper(0.name}}", "unclosed parenthesis" },
    { "{{ }}", "empty expression" },
    { "{{frobnicate(0.name)}}", "unknown function 'frobnicate'" },
    { "{{upper(\"abc)}}", "unclosed quote" },
    { "{{2.odd key}}", "bad reference '2%.odd key'" },
    { "{{1.data[x]}}", "bad reference" },
    { "{{upper(a; b)}}", "upper%(%) takes 1 argument, got 2" },
    { "{{replace(a)}}", "replace%(%) takes 3 arguments, got 1" },
  }
  for _, c in ipairs(cases) do
    local r, err, code = ev(c[1])
    eq(r, nil, c[1]); eq(code, "invalid", c[1])
    match(err, c[2], c[1])
    match(err, "^mapper: ", c[1])
    ok(err:find(c[1]:match("{{.*"):sub(1, 8), 1, true), "message names the expression " .. c[1], err)
  end
end)

test("mapper-3.2 a bare word that is not a function call is text", function()
  eq(ev("{{hello}}"), "hello")
  eq(ev("{{ifempty(9.x; some words)}}"), "some words")
end)

H.done()

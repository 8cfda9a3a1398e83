-- rd.pattern, the bounded Lua-pattern matcher (src/core/pattern.c): the same
-- results and errors as Lua 5.4's string library on thousands of generated
-- (pattern, subject) pairs; catastrophic patterns trip the step budget with
-- code "limit" while another task keeps running; the static check.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local P = rd.pattern

-- ---- differential: stock string library vs rd.pattern --------------------

local D = dofile(H.root .. "/tests/lua/pattern_diff.lua")
local outcome, desc = D.outcome, D.desc

local ATOMS = {
  "a", "b", "c", "x", " ", "1", "\0", "\255", "-", "]", "^", "$", ".", "%a", "%d", "%s", "%w",
  "%p", "%x", "%l", "%u", "%c", "%g", "%z", "%A", "%D", "%S", "%W", "%P", "%X", "%L", "%U",
  "%C", "%G", "%Z", "%.", "%%", "%]", "%(", "%-", "%)", "[ab]", "[^a]", "[a-c]", "[%d_]", "[]]",
  "[^]]", "[a-]", "[-a]", "[%a-z]", "[a%-z]", "[\0-\31]", "[%]]", "[^%s]", "[.]", "[b-a]",
  "(", ")", "()", "(", ")", "%1", "%2", "%0", "%3", "%b()", "%bab", "%b\"\"", "%f[%w]",
  "%f[^a]", "%f[%z]", "%f[a-c]", "%f[%W]", "%f[%c]", "\1",
}
-- pieces that are malformed somewhere, or only at the end
local BROKEN = { "%", "[a", "[", "[^", "%b", "%ba", "%f", "%fa", ")", "[%", "%b(" }
local SUFFIX = { "*", "+", "-", "?" }
local SUBJECT = { "a", "a", "b", "b", "c", "x", "1", " ", "(", ")", "\"", "-", "]", "\0", "\255",
                  "%", ".", "A", "_", "\n", "\1" }

local function pick(t) return t[math.random(#t)] end

local function gen_pattern()
  local parts = {}
  if math.random(6) == 1 then parts[#parts + 1] = "^" end
  for _ = 1, math.random(0, 7) do
    local a = pick(ATOMS)
    if math.random(3) == 1 and not a:find("^[%(%)]") then a = a .. pick(SUFFIX) end
    parts[#parts + 1] = a
  end
  if math.random(12) == 1 then parts[#parts + 1] = pick(BROKEN) end
  if math.random(6) == 1 then parts[#parts + 1] = "$" end
  return table.concat(parts)
end

local function gen_subject()
  local t = {}
  for i = 1, math.random(0, 14) do t[i] = pick(SUBJECT) end
  return table.concat(t)
end

local INITS = { false, 1, 0, -1, -3, 2, 3, 5, 100, -100, 1.0, "2" }
local REPLS = { "", "x", "%0", "<%1>", "%2%1", "%%", "%", "%a", "[%0%0]", "%3", 7, 2.5, "function",
                "function", "table", "table" }
local NS = { false, false, 0, 1, 2, -1, 3.0 }

local function gen_case()
  local s, p = gen_subject(), gen_pattern()
  local init = pick(INITS)
  if init == false then init = nil elseif init == 100 then init = #s + math.random(0, 2) end
  local repl = pick(REPLS)
  if repl == "table" then repl = { a = "A", b = false, x = 9, ["1"] = "one", [1] = "pos1", [""] = "E", c = {} } end
  local n = pick(NS)
  if n == false then n = nil end
  local plain = ({ nil, false, true })[math.random(3)]
  return { s = s, p = p, init = init, plain = plain, repl = repl, n = n }
end

-- fewer under valgrind, which checks memory, not the breadth of semantics
local CASES = tonumber(os.getenv("RD_PATTERN_CASES")) or (os.getenv("VALGRIND") and 800 or 6000)

test("pattern-1.1 rd.pattern agrees with string.* on generated cases", function()
  math.randomseed(13)
  local ops, compared, errors = { "find", "match", "gmatch", "gsub" }, 0, 0
  for _ = 1, CASES do
    local a = gen_case()
    for _, op in ipairs(ops) do
      local want, got = outcome(string, op, a), outcome(P, op, a)
      if want ~= got then
        error(string.format("%s\n  string: %s\n  rd.pattern: %s", desc(op, a), want, got))
      end
      if want:find("^error") then errors = errors + 1 end
      compared = compared + 1
    end
  end
  ok(compared == CASES * 4, "all compared")
  -- the generator must reach the error paths, or the comparison proves little
  ok(errors > CASES / 20, "enough error cases", errors)
end)

test("pattern-1.2 corner cases agree with string.*", function()
  local cases = {
    { s = "", p = "" }, { s = "abc", p = "" }, { s = "", p = "^" }, { s = "", p = "$" },
    { s = "a", p = "^$" }, { s = "$", p = "$$" }, { s = "^a", p = "^^a" },
    { s = "a(b)c", p = "%b()" }, { s = "((x)", p = "%b()" }, { s = "aaa", p = "%baa" },
    { s = "THE (quick) fox", p = "%f[%a]%a+" }, { s = "\0a", p = "%f[%z]" }, { s = "\1x", p = "%f[\1]" },
    { s = "ab", p = "%f[%Z]" }, { s = "ab", p = "b%f[%z]" }, { s = "ab", p = "%f[^%z]" }, { s = "x\0y", p = "%z" }, { s = "x\0y", p = "[\0]" },
    { s = "hello world", p = "(o)(.-)%1" }, { s = "abcabc", p = "(abc)%1" }, { s = "aa", p = "()%1" },
    { s = "abc", p = "()a()b()" }, { s = "abc", p = "(a)(b)(c)" }, { s = "k=v, a=b", p = "(%w+)=(%w+)" },
    { s = "a.b", p = ".", plain = true }, { s = "a+b", p = "+", init = -1 }, { s = "aaa", p = "a-", n = 2 },
    { s = "abc", p = "%w", repl = "%1%1" }, { s = "abc", p = "(%w)", repl = "%2" },
    { s = "abc", p = "(b)", repl = "%%%1%0" }, { s = "abc", p = "", repl = "-" },
    { s = "abc", p = "x*", repl = "-" }, { s = "hello", p = "l*", repl = "L" },
    { s = ("a"):rep(300), p = ("a?"):rep(250) }, { s = "", p = ("a?"):rep(250) },
    { s = ("a"):rep(199), p = ("a?"):rep(199) }, { s = ("a"):rep(200), p = ("a?"):rep(200) },
    { s = ("a"):rep(40), p = ("(a)"):rep(32) }, { s = ("a"):rep(40), p = ("(a)"):rep(33) },
    { s = ("a"):rep(300), p = ("(a)"):rep(40) }, { s = "x", p = ("("):rep(10000) },
    { s = "a", p = ("%b()"):rep(300) }, { s = ("("):rep(500) .. (")"):rep(500), p = "%b()" },
    { s = "abc", p = "[a-" }, { s = "abc", p = "[]" }, { s = "abc", p = "[^]" }, { s = "a]", p = "[]]" },
    { s = "abc", p = "%f" }, { s = "abc", p = "a%f" }, { s = "b", p = "a%f" }, { s = "abc", p = "(()" },
    { s = "abc", p = "b(" }, { s = "a", p = "a)" }, { s = "a", p = "%g%G%1" }, { s = "ab", p = "(a)%2" },
    { s = "x", p = "\0", plain = false }, { s = "x\0", p = "\0" }, { s = "a\0b", p = "%z+" },
    { s = "abc", p = "abc", init = 4 }, { s = "abc", p = "", init = 4 }, { s = "abc", p = "", init = 5 },
    { s = "abc", p = "c", init = math.mininteger }, { s = "abc", p = "a", init = math.maxinteger },
    { s = 12345, p = 3 }, { s = "a1", p = 1, repl = 2 }, { s = "abc", p = "%w", n = math.maxinteger },
  }
  for i, a in ipairs(cases) do
    a.repl = a.repl or "<%0>"
    for _, op in ipairs { "find", "match", "gmatch", "gsub" } do
      local want, got = outcome(string, op, a), outcome(P, op, a)
      if want ~= got then
        error(string.format("case %d %s\n  string: %s\n  rd.pattern: %s", i, desc(op, a), want, got))
      end
    end
  end
end)

test("pattern-1.3 bad arguments raise the messages of string.*", function()
  local bad = {
    { op = "find", s = nil, p = "a" }, { op = "find", s = "a", p = {} }, { op = "find", s = "a", p = "a", init = "x" },
    { op = "find", s = "a", p = "a", init = 1.5 }, { op = "match", s = {}, p = "a" },
    { op = "gmatch", s = "a", p = nil }, { op = "gmatch", s = "a", p = "a", init = {} },
    { op = "gsub", s = "a", p = "a", repl = nil }, { op = "gsub", s = "a", p = "a", repl = true },
    { op = "gsub", s = "a", p = "a", repl = "x", n = "many" }, { op = "gsub", s = "a", p = "a", repl = nil, n = {} },
    { op = "gsub", s = "a", p = "(a)", repl = { a = {} } }, { op = "gsub", s = "a", p = "a", repl = "%" },
    { op = "gsub", s = "a", p = "a", repl = "%x" }, { op = "gsub", s = "a", p = "a", repl = "%2" },
    { op = "find", s = "a", p = "(" }, { op = "match", s = "b", p = "%1" }, { op = "gmatch", s = "a", p = "[" },
  }
  for i, a in ipairs(bad) do
    local want, got = outcome(string, a.op, a), outcome(P, a.op, a)
    if want ~= got or not want:find("^error") then
      error(string.format("case %d %s\n  string: %s\n  rd.pattern: %s", i, desc(a.op, a), want, got))
    end
  end
  -- and the exact text once
  local _, e = pcall(function() local r = P.find(nil, "a") return r end)
  match(e, "bad argument #1 to 'find' %(string expected, got nil%)$")
end)

test("pattern-1.4 check(p) accepts exactly what string.find can never refuse", function()
  math.randomseed(14)
  for _ = 1, CASES do
    local p = gen_pattern()
    local good, msg, code = P.check(p)
    if good then
      for _ = 1, 3 do
        local s = gen_subject()
        local fine, err = pcall(string.find, s, p)
        if not fine then error(string.format("check passed %q but string.find(%q) raised %s", p, s, err)) end
      end
    else
      eq(code, "invalid")
      ok(type(msg) == "string" and #msg > 0)
    end
  end
  -- lazily reported by Lua, refused up front here
  check_err("invalid", "^unfinished capture$", P.check, "a(")
  check_err("invalid", "^invalid pattern capture$", P.check, "x)")
  check_err("invalid", "^malformed pattern %(missing '%]'%)$", P.check, "zz[a")
  check_err("invalid", "^malformed pattern %(ends with '%%'%)$", P.check, "zz%")
  check_err("invalid", "^invalid capture index %%2$", P.check, "(a)%2")
  check_err("invalid", "^invalid capture index %%1$", P.check, "(a%1)")
  check_err("invalid", "^too many captures$", P.check, ("()"):rep(33))
  check_err("invalid", "^pattern too complex$", P.check, ("a?"):rep(200))
  check_err("invalid", "^missing '%[' after '%%f' in pattern$", P.check, "%fa")
  check_err("invalid", "^malformed pattern %(missing arguments to '%%b'%)$", P.check, "%b(")
  eq(P.check(("a?"):rep(199)), true)
  eq(P.check(("()"):rep(32)), true)
  eq(P.check("^(%w+)=(%d*)%1$"), true)
  raises("bad argument #1 to '.-' %(string expected, got nil%)", P.check, nil)
end)

-- ---- the budget ------------------------------------------------------------

local function limit_of(f, ...)
  local ok_, e = pcall(f, ...)
  ok(not ok_, "expected the budget to trip")
  ok(type(e) == "table", "an error object", e)
  return e
end

test("pattern-2.1 catastrophic patterns trip the budget with code 'limit'", function()
  local a3000 = ("a"):rep(3000)
  local e = limit_of(P.find, a3000, ".-.-.-.-b")
  eq(e.code, "limit")
  eq(tostring(e), "pattern '.-.-.-.-b': step budget of " .. P.steps .. " exceeded")
  eq(e.message, tostring(e))
  eq("failed: " .. e, "failed: " .. e.message) -- reads as text where a string error was expected
  eq(e .. "!", e.message .. "!")
  raises("attempt to concatenate a table value", function() return e .. {} end)
  eq(limit_of(P.match, a3000, "(.-)(.-)(.-)(.-)b").code, "limit")
  eq(limit_of(P.gsub, a3000, ".-.-.-.-b", "").code, "limit")
  eq(limit_of(function() for _ in P.gmatch(a3000, "a*a*a*a*b") do end end).code, "limit")
  -- nested %b and deep captures
  local nested = ("("):rep(10000) -- every start scans to the end: n^2 / 2 steps
  eq(limit_of(P.find, nested, "%b()").code, "limit")
  eq(limit_of(P.find, a3000, ("(a*)"):rep(30) .. "b").code, "limit")
  -- a long pattern is shortened in the message
  local long = ("a*"):rep(40) .. "b"
  local m = tostring(limit_of(P.find, a3000, long))
  ok(#m < 120, "shortened", m)
  match(m, "^pattern 'a%*a%*.-%.%.%.': step budget")
  -- plain searches are linear and charged by the bytes they scan
  local small = P.bounded(20)
  eq(limit_of(small.find, a3000, "b", 1, true).code, "limit")
  eq(small.find(("a"):rep(100), "b", 1, true), nil)
end)

test("pattern-2.2 the budget is per call and set by bounded()", function()
  local tiny = P.bounded(50)
  eq(tiny.steps, 50)
  eq(tiny.find("abc", "b"), 2)
  eq(limit_of(tiny.find, ("a"):rep(60), "a-b").code, "limit")
  eq(tiny.find("xyz", "y"), 2) -- a later call has its own budget
  -- the boundary: a match that needs exactly n steps passes with n, not n - 1
  local need
  for n = 1, 200 do
    if pcall(P.bounded(n).match, "aaaa", "a*b?$") then need = n; break end
  end
  ok(need and need > 4, "some steps needed", need)
  eq(limit_of(P.bounded(need - 1).match, "aaaa", "a*b?$").code, "limit")
  raises("steps must be >= 1", P.bounded, 0)
  raises("number expected", P.bounded, "x")
end)

test("pattern-2.3 a tripped match does not stall the loop: another task keeps ticking", function()
  local ticks, stop = 0, false
  local ticker = rd.spawn(function()
    while not stop do ticks = ticks + 1; rd.sleep(0) end
  end)
  local a3000 = ("a"):rep(3000)
  for round = 1, 3 do
    local before = ticks
    local e = limit_of(P.find, a3000, ".-.-.-.-b")
    eq(e.code, "limit")
    rd.sleep(0) -- give the loop a turn: the ticker must run now
    ok(ticks > before, "the ticker ran after trip " .. round, ticks)
  end
  stop = true
  ticker:wait()
end)

-- ---- user-supplied filter patterns ------------------------------------------

local core = require "redrive.core"
local A = rd.json.array
local LONG = ("a"):rep(3000)
local SLOW = ".-.-.-.-b"

-- A local source whose DLQ holds one item with a 3000-byte reason and one
-- with a short one, recorded into a real SQLite store.
local function local_source()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = assert(src:scenario_create { name = "p", blueprint = {
    name = "p", flow = { { id = 1, module = "util:SetVariable", mapper = { name = "x", value = "1" } } },
    metadata = { version = 1, scenario = {} } } })
  local st = assert(core.store_open(src:path()))
  for i, reason in ipairs { "timeout", LONG } do
    assert(st:record { exec = { scenario_id = sc.id, status = "error", mode = "manual", started_at = 1700000000 + i },
      dlq = { scenario_id = sc.id, scenario_name = "p", reason = reason, size = 1, failer = 1,
              blueprint = src:scenario(sc.id).raw.blueprint, state = "{}" } })
  end
  st:close()
  return src
end

test("pattern-3.1 src:incomplete{reason}: validated up front, bounded, a trip raises code 'limit'", function()
  local src = local_source()
  local n = 0
  for _ in src:incomplete { reason = "^time" } do n = n + 1 end
  eq(n, 1)
  -- a pattern Lua would only refuse on a matching subject is refused at once
  raises("bad argument #1 to 'incomplete' %(reason: unfinished capture%)", src.incomplete, src, { reason = "a(" })
  raises("reason: a Lua pattern string expected, got number", src.incomplete, src, { reason = 5 })
  -- the catastrophic one: the listing raises the limit, another task ticks on
  local ticks, stop = 0, false
  local ticker = rd.spawn(function() while not stop do ticks = ticks + 1; rd.sleep(0) end end)
  local before = ticks
  local it = src:incomplete { reason = SLOW }
  local e = limit_of(function() for _ in it do end end)
  eq(e.code, "limit")
  match(tostring(e), "^pattern '%.%-%.%-%.%-%.%-b': step budget of %d+ exceeded$")
  rd.sleep(0)
  ok(ticks > before, "the ticker ran after the trip", ticks)
  stop = true
  ticker:wait()
end)

test("pattern-3.2 remote sources share the same filter (C.pattern)", function()
  local C = require "redrive.source.common"
  eq(C.pattern(nil, "incomplete"), nil)
  local test = C.pattern("^HTTP 4%d%d", "incomplete")
  eq(test("HTTP 410 gone"), true)
  eq(test("HTTP 500"), false)
  eq(limit_of(C.pattern(SLOW, "incomplete"), LONG).code, "limit")
  raises("bad argument #1 to 'incomplete' %(reason: malformed pattern %(missing '%]'%)%)", C.pattern, "[x", "incomplete")
end)

test("pattern-3.5 a script that replaces rd.pattern's functions does not reach the filters", function()
  local saved_find, saved_check = P.find, P.check
  P.find = function() error("a filter called the replaced rd.pattern.find") end
  P.check = function() return true end
  local okc, e = pcall(function()
    local C = require "redrive.source.common"
    raises("unfinished capture", C.pattern, "a(", "incomplete")
    return limit_of(C.pattern(SLOW, "incomplete"), LONG)
  end)
  P.find, P.check = saved_find, saved_check
  ok(okc, "filters stay bounded", e)
  eq(e.code, "limit")
end)

test("pattern-3.3 engine text:pattern filters: a trip fails the execution with code 'limit'", function()
  local engine = require "redrive.engine"
  local function flt(o, b) return { name = "f", conditions = { { { a = "{{1.s}}", o = o, b = b } } } } end
  local function run(filter, router)
    local flow = { { id = 1, module = "gateway:CustomWebHook", version = 1, mapper = {} } }
    local set = { id = 2, module = "util:SetVariable", mapper = { name = "x", value = "1" } }
    if router then
      flow[2] = { id = 3, module = "builtin:BasicRouter", routes = A { { filter = filter, flow = A { set } } } }
    else
      set.filter = filter
      flow[2] = set
    end
    return engine.run({ name = "t", flow = flow, metadata = { version = 1, scenario = {} } }, { input = { s = LONG } })
  end
  for _, router in ipairs { false, true } do
    for _, o in ipairs { "text:pattern", "text:notpattern" } do
      local out = run(flt(o, SLOW), router)
      eq(out.status, "error", o)
      eq(out.error.code, "limit", o)
      match(out.error.message, "filter 'f': pattern '%.%-%.%-%.%-%.%-b': step budget")
    end
    eq(run(flt("text:pattern", "^a+$"), router).status, "success")
    local out = run(flt("text:pattern", "a("), router)
    eq(out.error.code, "invalid")
    match(out.error.message, "bad pattern \"a%(\": unfinished capture")
  end
end)

test("pattern-3.4 rules: a bad reason is refused at load, a trip surfaces code 'limit'", function()
  local R = require "redrive.rules"
  local dir = H.tmpname("-rules")
  os.execute("mkdir -p " .. dir)
  local function rule_file(name, reason)
    local path = dir .. "/" .. name .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(string.format("return { name = %q, reason = %q, match = function() return true end,\n" ..
      "  action = function() end }\n", name, reason))
    f:close()
    return path
  end
  local r, err = R.load_file(rule_file("bad", "x)"))
  eq(r, nil)
  match(err, "bad%.lua: field 'reason': invalid pattern capture$")
  local rule = assert(R.load_file(rule_file("slow", SLOW)))
  local src = local_source()
  local audit_path = H.tmpname(".jsonl")
  local audit = assert(R.audit(audit_path))
  local s = R.pass(rule, { audit = audit, quiet = true, dry_run = true, connect = function() return src end })
  eq(s.error_code, "limit")
  eq(s.errors, 1)
  eq(s.matched, 0)
  eq(s.source_failed, nil, "a tripped pattern is not an unreachable source")
  audit:close()
  local listed
  for line in io.lines(audit_path) do
    local rec = rd.json.decode(line)
    if rec.action == "list" then listed = rec end
  end
  ok(listed, "the listing failure is audited")
  eq(listed.code, "limit")
  match(listed.error, "^pattern '%.%-%.%-%.%-%.%-b': step budget")
end)

H.done()

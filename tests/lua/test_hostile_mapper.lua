-- Hostile input to the mapper (issue 13, findings 5 and 9): its work stays
-- linear in the size of the data and of the template, and toNumber never
-- wraps or lets infinity into run data.
--
-- Work is measured, never time: Lua VM instructions with a count hook (per
-- case, n against 4n: linear grows 4x, quadratic 16x) and, where valgrind
-- is installed, every instruction the process executes, C included
-- (callgrind), because string matching runs inside C where a hook never
-- fires: the old trim, gsub("%s+$", ""), was quadratic there.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local M = require "redrive.engine.mapper"

local N = 2000

-- Every case: a template, the data of module 1 at size n, the result (or a
-- pattern of the error). The same list feeds the C-level measure (a child process).
local CASES = [==[
local sp = function(n) return (" "):rep(n) end
return {
  { "if(1.v = 5) over a value with spaces inside", function(n)
      return '{{if(1.v = 5; "y"; "n")}}', { v = "a" .. sp(n) .. "b" }, "n" end },
  { "if() comparing numbers padded with spaces", function(n)
      return '{{if(1.v = 12; "y"; "n")}}', { v = sp(n) .. "12" .. sp(n) }, "y" end },
  { "trim()", function(n)
      return "{{trim(1.v)}}", { v = sp(n) .. "x" .. sp(n) .. "y" .. sp(n) }, "x" .. sp(n) .. "y" end },
  { "toNumber() of a padded number", function(n)
      return "{{toNumber(1.v)}}", { v = sp(n) .. "-12.5" .. sp(n) }, -12.5 end },
  { "toNumber() of spaces between digits", function(n)
      return "{{toNumber(1.v)}}", { v = "1" .. sp(n) .. "2" }, nil, "is not a number" end },
  { "length() and substring() of UTF-8 text", function(n)
      return "{{substring(1.v; 1; length(1.v))}}", { v = ("é"):rep(n) }, ("é"):rep(n - 1) end },
  { "replace() with a long needle that almost matches everywhere", function(n)
      local m = 100 * n -- string.find's plain search is quadratic here, with a small constant
      return '{{length(replace(1.v; 1.w; "x"))}}', { v = ("a"):rep(m), w = ("a"):rep(m // 2) .. "b" }, m end },
  { "replace() of many occurrences", function(n)
      return '{{replace(1.v; "ab"; "x")}}', { v = ("ab"):rep(n) }, ("x"):rep(n) end },
  { "get() with a long path", function(n)
      return "{{get(1.o; 1.p)}}", { o = { a = 1 }, p = ("a."):rep(n) .. "b" }, nil end },
  { "encodeURL(), lower(), upper()", function(n)
      return "{{upper(lower(encodeURL(1.v)))}}", { v = (" a"):rep(n) }, ("%20A"):rep(n) end },
  { "join() of many elements", function(n)
      local arr = {}
      for i = 1, n do arr[i] = "x" end
      return '{{join(1.arr; "")}}', { arr = arr }, ("x"):rep(n) end },
  { "a text template of many references", function(n)
      return ("{{1.v}}-"):rep(n), { v = "x" }, ("x-"):rep(n) end },
  { "a long number literal (the parser)", function(n)
      return "{{if(" .. ("1"):rep(n) .. "x = 1; 1; 2)}}", {}, 2 end },
  { "a long quoted literal (the parser)", function(n)
      return '{{if(1.v = "' .. ("a"):rep(n) .. '"; 1; 2)}}', { v = ("a"):rep(n) }, 1 end },
  { "a long reference path (the parser)", function(n)
      return "{{1" .. (".k"):rep(n) .. "}}", { k = "x" }, nil end },
}
]==]

local cases = load(CASES)()

local function run_case(case, n)
  local tpl, data = case[2](n)
  return M.eval(tpl, { outputs = { ["1"] = data } })
end

for i, case in ipairs(cases) do
  test(string.format("mapper-h1.%d work linear in the size: %s", i, case[1]), function()
    local _, _, want, errpat = case[2](N)
    local w1, r1, err = H.work(run_case, case, N)
    eq(r1, want, "result")
    if errpat then match(err, errpat) else eq(err, nil) end
    H.grows(case[1], N, w1, (H.work(run_case, case, 4 * N)))
  end)
end

-- The same cases in a child process under callgrind: C work included.
H.c_growth("mapper-h2.1 C work linear in the size (callgrind)",
  "local cases = (function() " .. CASES .. [[ end)()
local M = require "redrive.engine.mapper"
local n = tonumber(arg[1])
if n > 0 then
  for _, case in ipairs(cases) do
    local tpl, data = case[2](n)
    M.eval(tpl, { outputs = { ["1"] = data } })
  end
end
]], 500)

test("mapper-h3.1 calls nest at most 64 deep: a clear syntax error past that", function()
  local function nest(d) return "{{" .. ("lower("):rep(d) .. '"A"' .. (")"):rep(d) .. "}}" end
  eq(M.eval(nest(64), {}), "a")
  local r, err, code = M.eval(nest(65), {})
  eq(r, nil); eq(code, "invalid")
  match(err, "^mapper: syntax error in .*: calls nested more than 64 deep$")
  r, err = M.eval(nest(1000), {})
  eq(r, nil); match(err, "calls nested more than 64 deep")
end)

test("mapper-h3.2 nesting does not multiply the work: 60 calls deep around a long argument", function()
  -- each level used to rescan its arguments: 60 levels, 60 times the work
  local X = ("[]"):rep(20000)
  local function nest(d) return "{{" .. ("upper("):rep(d) .. X .. (")"):rep(d) .. "}}" end
  local w1, r1 = H.work(M.eval, nest(1), {})
  local w60, r60 = H.work(M.eval, nest(60), {})
  eq(r1, X); eq(r60, X)
  ok(w60 <= 2 * w1, string.format("%d instructions 1 deep, %d 60 deep", w1, w60))
end)

test("mapper-h3.3 parentheses, brackets and ';' inside quoted text are text", function()
  local scope = { outputs = { ["1"] = { v = "a(b" } } }
  eq(M.eval('{{length("(")}}', scope), 1)
  eq(M.eval('{{replace(1.v; "("; ")[;")}}', scope), "a)[;b")
  eq(M.eval('{{if(1.v = "a(b"; "(yes"; "no)")}}', scope), "(yes")
  eq(M.eval('{{join(1.w; ";")}}', { outputs = { ["1"] = { w = { "x", "y" } } } }), "x;y")
end)

-- ---------------------------------------------------------------------------
-- toNumber (finding 9)

local function num(s) return M.eval('{{toNumber("' .. s .. '")}}', {}) end

test("mapper-h4.1 toNumber: a hex integer past 63 bits is a float, never a wrapped -1", function()
  local v = num("0x7fffffffffffffffff")
  eq(math.type(v), "float"); eq(v, 2.3611832414348226e21)
  eq(num("0xffffffffffffffff"), 18446744073709551615.0)
  eq(num("0x7fffffffffffffff"), math.maxinteger)
  eq(num("0x0000000000000000007fffffffffffffff"), math.maxinteger)
  eq(num("-0x10"), -16)
  eq(num(" 0x1F "), 31)
end)

test("mapper-h4.2 toNumber: a value out of range fails the module, naming the value", function()
  for _, s in ipairs { "1e400", "-1e400", "0x1p99999", "1" .. ("0"):rep(400) } do
    local r, err, code = num(s)
    eq(r, nil, s); eq(code, "invalid")
    match(err, 'toNumber%(%): "' .. s:sub(1, 20):gsub("%p", "%%%0") .. '.*" is out of range')
  end
  eq(num("1e300"), 1e300)
  local r, err = num("nan")
  eq(r, nil); match(err, "is not a number")
end)

test("mapper-h4.3 a number literal out of range is a syntax error", function()
  local r, err, code = M.eval("{{if(1" .. ("0"):rep(400) .. " = 1; 1; 2)}}", {})
  eq(r, nil); eq(code, "invalid"); match(err, "number out of range")
end)

H.done()

-- Mapping: resolves `{{...}}` expressions in a module's mapper against the
-- outputs of the modules that ran before it (Make style).
--
--   local M = require "redrive.engine.mapper"
--   local value, err = M.resolve(mapper, scope)
--     scope = { outputs = { ["1"] = out1, ["2"] = out2, ... },  -- by module id (string keys)
--               input = bundle,                                   -- {{0.x}}
--               scenario = { id =, name = } }                     -- {{scenario.id}}
--   -> the mapper with every string resolved | nil, message, "invalid"
--   M.eval(string, scope) -> value | nil, message, "invalid"   (one template)
--   M.truthy(v), M.empty(v), M.text(v), M.find_plain(s, sub, init) (helpers the engine shares)
--
-- References
--   {{1.data.id}}               output of module 1, then keys
--   {{2.headers.content-type}}  keys may contain '-' (and letters, digits, _ $ @ :)
--   {{1.`odd key`.x}}           backquotes for any other key
--   {{3.data.items[1].id}}      array indices are 1-based (Make style)
--   {{0.x}}                     the run's input bundle (also the trigger's output)
--   {{scenario.id}}, {{scenario.name}}
-- An unknown reference resolves to empty (nil). A mapper value that is
-- exactly one {{...}} keeps its type (table, number, boolean); otherwise the
-- pieces are joined as text (tables as JSON, empty as "").
--
-- Functions (Make style, arguments separated by ';'; an argument is a
-- reference, a call, a number, true/false/null, "quoted text" or bare text,
-- trimmed; use quotes to keep spaces):
--   ifempty(a; b)            a unless it is empty (nil, null, "", {}), else b
--   if(cond; a; b)           cond is a value (empty, false, "false", 0 are false)
--                            or a comparison: x = y, x != y, x < y, x > y, x <= y, x >= y
--   toString(x)              text (tables as JSON)
--   toNumber(x)              number; an error when x is not numeric
--   now                      current time, ISO-8601 UTC with milliseconds
--   timestamp                current Unix time, seconds (integer)
--   length(x)                characters of a text (UTF-8), elements of an array, keys of an object
--   lower(s), upper(s), trim(s)
--   replace(s; a; b)         every occurrence of the text a replaced by b (plain text, no patterns)
--   substring(s; start; end) characters start..end-1, 0-based, like Make
--   get(obj; path)           path like "a.b[1].c" or "a.b.1.c" (1-based indices)
--   join(arr; sep)           array elements as text, separated by sep
--   encodeURL(s)             percent-encoding (RFC 3986 unreserved kept)
--   first(arr), last(arr)
-- A syntax error or an unknown function is an error naming the expression,
-- code "invalid".
local M = {}

local rd = require("redrive.core").rd
local json = rd.json
-- core.pattern, not rd.pattern: a script may replace rd.pattern.find
local pfind = require("redrive.core").pattern.find
local function plain_find(s, a, i) return pfind(s, a, i, true) end
local null = json.null

-- ---------------------------------------------------------------------------
-- values

local function empty(v)
  if v == nil or v == null or v == "" then return true end
  if type(v) == "table" and next(v) == nil then return true end
  return false
end
M.empty = empty

local function truthy(v)
  if v == nil or v == null or v == false or v == "" or v == "false" or v == 0 then return false end
  return true
end
M.truthy = truthy

local function text(v)
  local t = type(v)
  if v == nil or v == null then return "" end
  if t == "string" then return v end
  if t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    if v == math.floor(v) and v > -2^53 and v < 2^53 then return string.format("%d", v) end
    return string.format("%.14g", v)
  end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    local ok, s = pcall(json.encode, v)
    if ok and s then return s end
  end
  return tostring(v)
end
M.text = text

-- Every helper here runs on data (webhook values, HTTP bodies) and must stay
-- linear in its size: a pattern that backtracks over a run of spaces
-- (gsub("%s+$", "") on "a" .. 60 000 spaces .. "b") is quadratic, inside C,
-- where nothing can interrupt it (issue 13, finding 5). So: no pattern that
-- rescans what it already passed -- an anchored single class, or a loop.

local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true } -- %s

-- s without leading and trailing white space (linear).
local function trim(s)
  local i = s:find("%S") -- one class at each position: linear
  if not i then return "" end
  local j = #s
  while SPACE[s:byte(j)] do j = j - 1 end
  return s:sub(i, j)
end

-- Is s a hexadecimal integer text ("0x1F", "-0xff") too big for 63 bits?
local function is_big_hex(s)
  local digits = s:match("^[+-]?0[xX]0*(%x*)$")
  if not digits then return false end
  return #digits > 16 or (#digits == 16 and digits:byte(1) >= 56) -- '8'
end

-- Text to number as Lua reads it, except that a hexadecimal integer past
-- 63 bits is a float (2.36e21 for "0x7fffffffffffffffff", as JavaScript
-- reads it) instead of wrapping around to -1. Infinity is possible
-- ("1e400"): callers that store the result refuse it (toNumber).
local function str2num(s)
  s = trim(s)
  local n = tonumber(s)
  if n and math.type(n) == "integer" and is_big_hex(s) then return tonumber(s .. "p0") end
  return n
end

local function tonum(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return str2num(v) end
  if type(v) == "boolean" then return v and 1 or 0 end
  return nil
end
M.tonum = tonum

-- ---------------------------------------------------------------------------
-- parsing: template -> list of pieces (strings and expression nodes)

local Syntax = {} -- marker for parse errors raised inside the parser

local function perr(msg) error(setmetatable({ msg = msg }, Syntax), 0) end

-- Find the "}}" closing the expression that starts at i (after "{{"),
-- skipping quoted text. Returns the index of the first '}' or nil, and
-- whether a quote is left open. Jumps from one special byte to the next.
local function find_close(s, i)
  while true do
    i = s:find('["}]', i)
    if not i then return nil, false end
    if s:byte(i) == 34 then -- '"': skip the quoted text
      repeat
        i = s:find('["\\]', i + 1)
        if not i then return nil, true end
        local esc = s:byte(i) == 92
        if esc then i = i + 1 end
      until not esc
    elseif s:byte(i + 1) == 125 then
      return i
    end
    i = i + 1
  end
end

-- Comparison operators, tried longest first (only in if()'s condition).
local OPS = { "!=", "<=", ">=", "=", "<", ">" }

-- The structure of an expression, found in one pass (so that parsing takes
-- time linear in its size, whatever the nesting: splitting each call's
-- arguments by rescanning them was quadratic). Groups are the brackets,
-- named by the index of the opening one, 0 for the whole expression:
--   close[g]  index of the bracket closing g (nil: unclosed)
--   seps[g]   indices of the ';' at g's top level
--   op[g]     {index, op} of the first comparison operator at g's top level
--   qend[i]   index of the quote closing the quoted text opened at i
-- Brackets ( and [ nest alike; text in quotes (with \ escapes) is skipped.
local function structure(s)
  local close, seps, op, qend = {}, {}, {}, {}
  local outer, g, i = {}, 0, 1
  while true do
    i = s:find('[%(%)%[%]";=<>!]', i)
    if not i then break end
    local c = s:byte(i)
    if c == 34 then -- '"'
      local j = i
      repeat
        j = s:find('["\\]', j + 1)
        if not j then return nil end -- unclosed: find_close has reported it
        local esc = s:byte(j) == 92
        if esc then j = j + 1 end
      until not esc
      qend[i] = j
      i = j
    elseif c == 40 or c == 91 then -- ( [
      outer[#outer + 1] = g
      g = i
    elseif c == 41 or c == 93 then -- ) ]
      if g ~= 0 then
        close[g] = i
        g = table.remove(outer)
      end
    elseif c == 59 then -- ;
      local l = seps[g]
      if not l then l = {}; seps[g] = l end
      l[#l + 1] = i
    elseif not op[g] then
      for _, o in ipairs(OPS) do
        if s:sub(i, i + #o - 1) == o then op[g] = { i, o }; break end
      end
    end
    i = i + 1
  end
  return { s = s, close = close, seps = seps, op = op, qend = qend }
end

-- The first and last non-space index of s[a..b], or nil when it is blank.
local function trim_range(s, a, b)
  local i = s:find("%S", a)
  if not i or i > b then return nil end
  while SPACE[s:byte(b)] do b = b - 1 end
  return i, b
end

local KEYCH = "[%w_%-%$@:]"

-- A reference path: "1.a.b[2].c", "0.x", "scenario.id", "2[1]" ->
-- {root = "1", keys = {"a", "b", 2, "c"}} or nil when s is not a reference.
local function parse_ref(s)
  local root, rest = s:match("^(%d+)(.*)$")
  if not root then
    root, rest = s:match("^(scenario)(.*)$")
    if not root or (rest ~= "" and not rest:find("^[%.%[]")) then return nil end
  end
  local keys, i, n = {}, 1, #rest
  while i <= n do
    local c = rest:sub(i, i)
    if c == "." then
      if rest:sub(i + 1, i + 1) == "`" then
        local j = rest:find("`", i + 2, true)
        if not j then perr("unclosed '`' in reference") end
        keys[#keys + 1] = rest:sub(i + 2, j - 1)
        i = j + 1
      else
        local k = rest:match("^" .. KEYCH .. "+", i + 1)
        if not k then return nil end
        keys[#keys + 1] = k
        i = i + 1 + #k
      end
    elseif c == "[" then
      local num = rest:match("^%[%s*(%d+)%s*%]", i)
      if not num then return nil end
      keys[#keys + 1] = tonumber(num)
      i = rest:find("]", i, true) + 1
    else
      return nil
    end
  end
  return { root = root, keys = keys }
end

-- Calls nest at most this deep (a bound on the recursion of parsing and
-- evaluation; real expressions nest a few levels).
local MAX_DEPTH = 64

-- "-12", "1.5", "1.", ".5": digits with at most one dot (linear; a pattern
-- such as "^%-?%d+%.?%d*$" backtracks quadratically over "111...1x").
local function is_decimal(s)
  local body = s:match("^%-?([%d%.]+)$")
  if not body then return false end
  local dot = body:find(".", 1, true)
  if dot and body:find(".", dot + 1, true) then return false end
  return body:find("%d") ~= nil
end

local parse_args

-- The term in P.s[a0..b0] (an argument, an operand, a whole expression),
-- `depth` calls deep. Only a call looks inside itself; other terms are
-- read whole, once.
local function parse_term(P, a0, b0, depth)
  local s = P.s
  local a, b = trim_range(s, a0, b0)
  if not a then
    return { k = "lit", v = s:sub(a0, b0) } -- keeps spaces: join(arr; ) joins with " "
  end
  if P.qend[a] == b then -- one quoted text
    return { k = "lit", v = (s:sub(a + 1, b - 1):gsub('\\(.)', "%1")) }
  end
  local _, e = s:find("^[%a_][%w_]*", a)
  if e and e < b then -- a name, then maybe a call
    local p = s:find("%S", e + 1)
    if s:byte(p) == 40 then -- '('
      local name = s:sub(a, e)
      local q = P.close[p]
      if not q or s:byte(q) ~= 41 then perr("unclosed parenthesis") end -- none, or a ']
      if q < b then perr("unexpected '" .. s:sub(q + 1, math.min(b, q + 40)) .. "' after " .. name:sub(1, 40) .. "(...)") end
      if depth >= MAX_DEPTH then perr("calls nested more than " .. MAX_DEPTH .. " deep") end
      return { k = "call", name = name, args = parse_args(P, p, name == "if", depth + 1) }
    end
  end
  local t = s:sub(a, b) -- not a call: a leaf, read once
  -- "1.a" is a reference, "1.5" a number, "1" a number (not module 1's output)
  if is_decimal(t) then
    local n = tonumber(t)
    if not n or n == math.huge or n == -math.huge then perr("number out of range: " .. t:sub(1, 40)) end
    return { k = "lit", v = math.tointeger(n) or n }
  end
  if t == "true" then return { k = "lit", v = true } end
  if t == "false" then return { k = "lit", v = false } end
  if t == "null" then return { k = "lit", v = nil } end
  if t == "now" or t == "timestamp" then return { k = "call", name = t, args = {} } end
  local ref = parse_ref(t)
  if ref then ref.k = "ref"; return ref end
  if t:find("^%d+[%.%[]") then
    perr("bad reference '" .. t:sub(1, 60) .. "' (use backquotes for keys with other characters: 1.`my key`)")
  end
  return { k = "lit", v = t }
end

-- The arguments of the call whose '(' is at p, split at its ';'. The first
-- one of if() may be a comparison: a = b, a != b, a < b...
function parse_args(P, p, cond, depth)
  local q = P.close[p]
  if not trim_range(P.s, p + 1, q - 1) then return {} end
  local seps, list, from = P.seps[p] or {}, {}, p + 1
  for i = 1, #seps + 1 do
    local to = (seps[i] or q) - 1
    local op = i == 1 and cond and P.op[p]
    if op and op[1] <= to then
      list[i] = { k = "cmp", op = op[2], a = parse_term(P, from, op[1] - 1, depth),
                  b = parse_term(P, op[1] + #op[2], to, depth) }
    else
      list[i] = parse_term(P, from, to, depth)
    end
    from = to + 2
  end
  return list
end

-- template -> {pieces}, single (true when the template is one {{...}})
local cache_n, cache_s = 0, {}

local function parse_template(s)
  local hit = cache_s[s]
  if hit then return hit end
  local pieces, i, n = {}, 1, #s
  while i <= n do
    local a = s:find("{{", i, true)
    if not a then pieces[#pieces + 1] = s:sub(i); break end
    if a > i then pieces[#pieces + 1] = s:sub(i, a - 1) end
    local b, inq = find_close(s, a + 2)
    if not b then perr(inq and "unclosed quote" or "unclosed '{{'") end
    local body = s:sub(a + 2, b - 1)
    local t = trim(body)
    if t == "" then perr("empty expression") end
    local node
    if t:match("^%d+$") then node = { k = "ref", root = t, keys = {} }
    else
      local P = structure(body)
      if not P then perr("unclosed quote") end -- find_close sees to it; never trust it blindly
      node = parse_term(P, 1, #body, 0)
    end
    node.src = s:sub(a, b + 1)
    pieces[#pieces + 1] = node
    i = b + 2
  end
  local t = { pieces = pieces, single = #pieces == 1 and type(pieces[1]) == "table" }
  if cache_n > 2000 then cache_s, cache_n = {}, 0 end
  cache_s[s], cache_n = t, cache_n + 1
  return t
end

-- ---------------------------------------------------------------------------
-- evaluation

local Fail = {} -- marker for evaluation errors

local function ferr(msg) error(setmetatable({ msg = msg }, Fail), 0) end

local function index(v, k)
  if v == nil or v == null then return nil end
  if type(v) ~= "table" then return nil end
  local r = v[k]
  if r == nil and type(k) == "string" then
    local n = math.tointeger(tonumber(k))
    if n then r = v[n] end
  elseif r == nil and type(k) == "number" then
    r = v[tostring(k)]
  end
  if r == null then return nil end
  return r
end

-- get(obj; "a.b[1].c")
local function get_path(obj, path)
  if type(path) == "number" then return index(obj, path) end
  path = text(path)
  local v = obj
  for part in path:gmatch("[^%.]+") do
    local key, rest = part:match("^([^%[]*)(.*)$")
    if key ~= "" then v = index(v, key) end
    for n in rest:gmatch("%[(%d+)%]") do v = index(v, tonumber(n)) end
  end
  return v
end

local function ulen(s)
  local n = utf8.len(s)
  return n or #s
end

local function usub(s, i, j) -- 0-based start, exclusive end, in characters
  if not utf8.len(s) then return s:sub(i + 1, j) end
  local n = utf8.len(s)
  if i < 0 then i = 0 end
  if j == nil or j > n then j = n end
  if j <= i then return "" end
  local a = utf8.offset(s, i + 1)
  local b = utf8.offset(s, j + 1)
  return s:sub(a, b and b - 1 or #s)
end

local function encode_url(s)
  return (text(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function iso_now()
  local t = rd.time()
  local sec = math.floor(t)
  local ms = math.floor((t - sec) * 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%03dZ", ms)
end

local function nargs(name, args, lo, hi)
  if #args < lo or #args > hi then
    if lo == hi then ferr(string.format("%s() takes %d argument%s, got %d", name, lo, lo == 1 and "" or "s", #args)) end
    ferr(string.format("%s() takes %d to %d arguments, got %d", name, lo, hi, #args))
  end
end

local eval

local function compare(op, a, b)
  local na, nb = tonum(a), tonum(b)
  if op == "=" then
    if na and nb then return na == nb end
    return text(a) == text(b)
  elseif op == "!=" then
    if na and nb then return na ~= nb end
    return text(a) ~= text(b)
  end
  if na and nb then a, b = na, nb else a, b = text(a), text(b) end
  if op == "<" then return a < b elseif op == ">" then return a > b
  elseif op == "<=" then return a <= b else return a >= b end
end

local F = {}
M.functions = F -- name -> function(scope, args (nodes)) : lazily evaluated

local function strict(fn, lo, hi)
  return function(scope, args, name)
    nargs(name, args, lo, hi)
    local v = {}
    for i = 1, #args do v[i] = eval(args[i], scope) end
    return fn(table.unpack(v, 1, #args))
  end
end

F["ifempty"] = function(scope, args, name)
  nargs(name, args, 2, 2)
  local a = eval(args[1], scope)
  if empty(a) then return eval(args[2], scope) end
  return a
end
F["if"] = function(scope, args, name)
  nargs(name, args, 2, 3)
  if truthy(eval(args[1], scope)) then return eval(args[2], scope) end
  if args[3] then return eval(args[3], scope) end
  return nil
end
F["toString"] = strict(function(x) return text(x) end, 1, 1)
F["toNumber"] = strict(function(x)
  if x == nil or x == null or x == "" then return nil end
  local n = tonum(x)
  if not n then ferr(string.format("toNumber(): %q is not a number", text(x):sub(1, 60))) end
  -- JSON has no infinity: a value such as "1e400" would make the run's
  -- data unstorable, so the module fails here, naming the value
  if n ~= n or n == math.huge or n == -math.huge then
    ferr(string.format("toNumber(): %q is out of range", text(x):sub(1, 60)))
  end
  return math.tointeger(n) or n
end, 1, 1)
F["now"] = strict(iso_now, 0, 0)
F["timestamp"] = strict(function() return math.floor(rd.time()) end, 0, 0)
F["length"] = strict(function(x)
  if x == nil or x == null then return 0 end
  if type(x) == "table" then
    if json.kind(x) == "object" or (#x == 0 and next(x) ~= nil) then
      local n = 0
      for _ in pairs(x) do n = n + 1 end
      return n
    end
    return #x
  end
  return ulen(text(x))
end, 1, 1)
F["lower"] = strict(function(s) return text(s):lower() end, 1, 1)
F["upper"] = strict(function(s) return text(s):upper() end, 1, 1)
F["trim"] = strict(function(s) return trim(text(s)) end, 1, 1)
F["replace"] = strict(function(s, a, b)
  s, a, b = text(s), text(a), text(b)
  if a == "" then return s end
  local out, i = {}, 1
  while true do
    -- rd.pattern's plain search is memmem, linear; string.find's compares
    -- the whole needle at each place its first byte occurs: quadratic for
    -- a long needle that almost matches everywhere
    local x, y = plain_find(s, a, i)
    if not x then break end
    out[#out + 1] = s:sub(i, x - 1)
    out[#out + 1] = b
    i = y + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end, 3, 3)
F["substring"] = strict(function(s, i, j)
  local a = tonum(i)
  local b = j ~= nil and tonum(j) or nil
  if not a then ferr("substring(): start must be a number") end
  if j ~= nil and not b then ferr("substring(): end must be a number") end
  return usub(text(s), math.floor(a), b and math.floor(b) or nil)
end, 2, 3)
F["get"] = strict(function(obj, path) return get_path(obj, path) end, 2, 2)
F["join"] = strict(function(arr, sep)
  if arr == nil or arr == null then return "" end
  if type(arr) ~= "table" then return text(arr) end
  local parts = {}
  for i = 1, #arr do parts[i] = text(arr[i]) end
  return table.concat(parts, sep == nil and "," or text(sep))
end, 1, 2)
F["encodeURL"] = strict(encode_url, 1, 1)
F["first"] = strict(function(arr)
  if type(arr) ~= "table" then return nil end
  local v = arr[1]
  if v == null then return nil end
  return v
end, 1, 1)
F["last"] = strict(function(arr)
  if type(arr) ~= "table" then return nil end
  local v = arr[#arr]
  if v == null then return nil end
  return v
end, 1, 1)

local function ref_value(node, scope)
  local v
  if node.root == "scenario" then v = scope.scenario
  elseif node.root == "0" then v = scope.input
  else v = scope.outputs and scope.outputs[node.root] end
  if v == null then v = nil end
  for _, k in ipairs(node.keys) do
    v = index(v, k)
    if v == nil then return nil end
  end
  return v
end

function eval(node, scope)
  local k = node.k
  if k == "lit" then return node.v end
  if k == "ref" then return ref_value(node, scope) end
  if k == "cmp" then return compare(node.op, eval(node.a, scope), eval(node.b, scope)) end
  local fn = F[node.name]
  if not fn then ferr("unknown function '" .. node.name .. "'") end
  return fn(scope, node.args, node.name)
end

-- ---------------------------------------------------------------------------
-- entry points

local function catch(ok, err, what)
  if ok then return nil end
  local mt = getmetatable(err)
  if mt == Syntax then return "syntax error in " .. what .. ": " .. err.msg end
  if mt == Fail then return "cannot evaluate " .. what .. ": " .. err.msg end
  error(err, 0)
end

local function show(s)
  if #s > 120 then s = s:sub(1, 117) .. "..." end
  return string.format("%q", s)
end

-- eval(template, scope) -> value | nil, msg, "invalid"
function M.eval(s, scope)
  -- a parsed template is cached by its text: a hit needs no protected call
  local tpl = cache_s[s]
  if not tpl then
    if not s:find("{{", 1, true) then return s end
    local ok, err = pcall(function() tpl = parse_template(s) end)
    local msg = catch(ok, err, show(s))
    if msg then return nil, "mapper: " .. msg, "invalid" end
  end
  local ok, err, result
  local cur = tpl.pieces[1]
  if tpl.single then -- one {{...}}: its value, kept as it is (no closure)
    ok, err = pcall(eval, cur, scope)
    result = err
  else
    ok, err = pcall(function()
      local out = {}
      for i, p in ipairs(tpl.pieces) do
        cur = p
        if type(p) == "string" then out[i] = p else out[i] = text(eval(p, scope)) end
      end
      result = table.concat(out)
    end)
  end
  local msg = catch(ok, err, type(cur) == "table" and cur.src or show(s))
  if msg then return nil, "mapper: " .. msg, "invalid" end
  if result == null then result = nil end
  return result
end

-- Walk a mapper (any value) and resolve every template string. Tables are
-- copied (JSON kinds kept); `where` names the field in messages.
-- JSON kinds are marks (metatables) that a copy keeps
local ARRAY_MT, OBJECT_MT = getmetatable(json.array {}), getmetatable(json.object {})

-- The field's name is made only for a message: walk returns the path below
-- v of a failing field in its 4th result, and each level prepends its key.
local function walk(v, scope)
  local t = type(v)
  if t == "string" then
    local r, err, code = M.eval(v, scope)
    if err then return nil, err, code, "" end
    return r
  end
  if t ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    local r, err, code, where = walk(x, scope)
    if err then return nil, err, code, where == "" and tostring(k) or (tostring(k) .. "." .. where) end
    out[k] = r
  end
  local mt = getmetatable(v)
  if mt == ARRAY_MT or mt == OBJECT_MT then setmetatable(out, mt) end
  return out
end

-- resolve(mapper, scope) -> resolved | nil, msg, "invalid"
function M.resolve(mapper, scope)
  if mapper == nil or mapper == null then return json.object {} end
  local r, err, code, where = walk(mapper, scope or {})
  if err then return nil, err .. (where ~= "" and (" (field " .. where .. ")") or ""), code end
  return r
end

M.get_path = get_path
M.find_plain = plain_find
M.compare = compare
return M

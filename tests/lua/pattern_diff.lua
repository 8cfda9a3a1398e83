-- The differential harness shared by tests/lua/test_pattern.lua and
-- fuzz/fuzz_pattern.c: one string-library operation (find, match, gmatch,
-- gsub) through a library -- the stock `string` or rd.pattern -- with its
-- outcome as text, so two libraries can be compared byte for byte. Every
-- call sits on the same line for both libraries, so error positions and
-- function names agree.
--   D.outcome(L, op, a) -> "ok <results>" | "error <message>" |
--       "error object <code> <message>"; a = {s, p, init, plain, repl, n},
--       repl = "function" for a recording replacement function
--   D.desc(op, a) -> the call as text, for failure messages
local D = {}

-- A value as text that tells types apart ("s:\"ab\"", "i:3", "f:3.0").
local function show(v)
  local t = type(v)
  if t == "string" then return string.format("s:%q", v) end
  if t == "number" then return (math.type(v) == "integer" and "i:" or "f:") .. tostring(v) end
  return t .. ":" .. tostring(v)
end

local function showall(t)
  local parts = {}
  for i = 1, t.n do parts[i] = show(t[i]) end
  return table.concat(parts, ",")
end

-- One operation through library L.
local function run(L, op, a)
  if op == "find" then
    local r = table.pack(L.find(a.s, a.p, a.init, a.plain))
    return showall(r)
  elseif op == "match" then
    local r = table.pack(L.match(a.s, a.p, a.init))
    return showall(r)
  elseif op == "gmatch" then
    local out, n = {}, 0
    for x, y, z in L.gmatch(a.s, a.p, a.init) do
      n = n + 1
      out[n] = show(x) .. "|" .. show(y) .. "|" .. show(z)
      if n > 60 then break end
    end
    return table.concat(out, ";")
  else
    local calls = {}
    local repl = a.repl
    if repl == "function" then
      repl = function(...)
        local args = table.pack(...)
        calls[#calls + 1] = showall(args)
        local k = #calls % 4
        if k == 0 then return nil elseif k == 1 then return (...) .. "!" elseif k == 2 then return false end
        return #calls
      end
    end
    local r = table.pack(L.gsub(a.s, a.p, repl, a.n))
    return showall(r) .. " calls " .. table.concat(calls, ";")
  end
end

function D.outcome(L, op, a)
  local ok, res = pcall(run, L, op, a)
  if ok then return "ok " .. res end
  if type(res) == "table" then return "error object " .. tostring(res.code) .. " " .. tostring(res) end
  return "error " .. tostring(res)
end

function D.desc(op, a)
  return string.format("%s(%q, %q, init=%s, plain=%s, repl=%s, n=%s)", op, a.s, a.p, tostring(a.init),
    tostring(a.plain), type(a.repl) == "string" and string.format("%q", a.repl) or tostring(a.repl), tostring(a.n))
end

return D

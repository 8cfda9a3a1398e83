-- lua:Run — run a piece of Lua in a sandbox.
-- mapper.code: the body of a function (`bundle` and `ctx` are in scope), or
--   `return function(bundle, ctx) ... end`. Other mapper fields are resolved
--   as usual and passed as ctx.mapper.
--   bundle: a copy of the outputs so far, by module id (bundle[0] = input)
--   ctx: {module = id, mapper = {...}, scenario = {id, name}}
-- The code sees only: string, table, math, utf8, pairs, ipairs, tostring,
-- tonumber, type, select, error, pcall, assert, next, os.time, os.date,
-- os.clock and rd.json. Its return value (JSON-encodable) is the output.
-- A count hook stops it after `limit` VM instructions (default 10 million).
local rd = require("redrive.core").rd

-- limit: VM instructions; max_memory: bytes the Lua heap may grow by while
-- the code runs (checked by the same hook: a soft limit, see README).
local M = { limit = 10000000, max_string = 16 * 1024 * 1024, max_memory = 256 * 1024 * 1024 }

local function copy(t)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  return o
end

local function deepcopy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local o = {}
  seen[v] = o
  for k, x in pairs(v) do o[deepcopy(k, seen)] = deepcopy(x, seen) end
  local kind = rd.json.kind(v)
  if kind == "array" then rd.json.array(o) elseif kind == "object" then rd.json.object(o) end
  return o
end
M.deepcopy = deepcopy

local BLOCKED = {
  io = true, require = true, load = true, loadstring = true, dofile = true, loadfile = true,
  debug = true, package = true, collectgarbage = true, coroutine = true, setmetatable = true,
  getmetatable = true, rawset = true, rawget = true, rawequal = true, rawlen = true,
  xpcall = true, _G = true, rd = false, print = true,
}

local function sandbox(id, killed)
  local where = string.format("lua:Run (module %s)", tostring(id))
  local S = copy(string)
  local rep = string.rep
  S.rep = function(s, n, sep)
    local total = #tostring(s) * (tonumber(n) or 0) + (sep and #tostring(sep) * math.max(0, (tonumber(n) or 0) - 1) or 0)
    if total > M.max_string then error("string.rep: result larger than " .. M.max_string .. " bytes", 2) end
    return rep(s, n, sep)
  end
  local os_ = setmetatable({ time = os.time, date = os.date, clock = os.clock }, {
    __index = function(_, k) error(where .. ": os." .. tostring(k) .. " is not available in the sandbox", 2) end,
  })
  local J = rd.json
  local env = {
    string = S, table = copy(table), math = copy(math), utf8 = copy(utf8),
    pairs = pairs, ipairs = ipairs, tostring = tostring, tonumber = tonumber, type = type,
    select = select, error = error, assert = assert, next = next, os = os_,
    rd = { json = { encode = J.encode, decode = J.decode, null = J.null, array = J.array, object = J.object, kind = J.kind } },
  }
  -- a pcall that cannot swallow the instruction limit or a cancellation
  env.pcall = function(f, ...)
    local r = table.pack(pcall(f, ...))
    if killed.yes then error(killed.msg, 0) end
    if not r[1] and rd.is_canceled(r[2]) then error(r[2], 0) end
    return table.unpack(r, 1, r.n)
  end
  return setmetatable(env, {
    __index = function(_, k)
      if BLOCKED[k] then error(where .. ": '" .. tostring(k) .. "' is not available in the sandbox", 2) end
      return nil
    end,
  })
end

local function run(ctx, m, bundle)
  local id = ctx.module.id
  local where = string.format("lua:Run (module %s)", tostring(id))
  local code = m.code
  if type(code) ~= "string" or code:find("^%s*$") then return nil, where .. ": code is empty", "invalid" end
  local killed = { yes = false }
  local env = sandbox(id, killed)
  local chunkname = "=" .. where
  local fn, err
  if code:find("^%s*return%s+function") then
    fn, err = load(code, chunkname, "t", env)
  else
    fn, err = load("local bundle, ctx = ...; " .. code, chunkname, "t", env)
  end
  if not fn then return nil, where .. ": syntax error: " .. err, "invalid" end
  local mapper = copy(m)
  mapper.code = nil
  local sctx = { module = id, mapper = deepcopy(mapper), scenario = deepcopy(ctx.run.scenario) }
  local b = deepcopy(bundle or {})
  local limit = ctx.limit or M.limit
  local count = 0
  local step = 100
  local mem0, maxmem = collectgarbage("count"), (ctx.max_memory or M.max_memory) / 1024
  killed.msg = string.format("%s: stopped after %d instructions (runaway code?)", where, limit)
  local oldhook, oldmask, oldcount = debug.gethook()
  debug.sethook(function()
    if killed.yes then error(killed.msg, 0) end
    count = count + step
    if count > limit then
      killed.yes = true
      error(killed.msg, 0)
    end
    if collectgarbage("count") - mem0 > maxmem then
      collectgarbage()
      if collectgarbage("count") - mem0 > maxmem then
        killed.yes = true
        killed.msg = string.format("%s: stopped: the code uses more than %d MB of memory", where, maxmem // 1024)
        error(killed.msg, 0)
      end
    end
  end, "", step)
  -- ("x"):rep(n) goes through the string metatable, not env.string: point
  -- it at the sandbox's copy while the code runs (it cannot yield, so no
  -- other task sees the swap)
  local smt = getmetatable("")
  local sindex = smt.__index
  smt.__index = env.string
  local ok, res = pcall(function()
    local r = fn(b, sctx)
    if code:find("^%s*return%s+function") then
      if type(r) ~= "function" then error(where .. ": code must return a function, got " .. type(r), 0) end
      r = r(b, sctx)
    end
    return r
  end)
  debug.sethook(oldhook, oldmask or "", oldcount or 0)
  smt.__index = sindex
  if killed.yes then return nil, killed.msg, "limit" end
  if not ok and rd.is_canceled(res) then error(res, 0) end -- the run is cancelled
  if not ok then
    local msg = tostring(res)
    if not msg:find(where, 1, true) then msg = where .. ": " .. msg end
    return nil, msg, "script"
  end
  return res -- the engine checks that it can be stored as JSON
end

M.type = "lua:Run"
M.fields = { code = "string", input = "any" }
M.required = { "code" }
M.raw = { code = true } -- not resolved as a template: Lua code may contain "{{"
M.run = run
return M

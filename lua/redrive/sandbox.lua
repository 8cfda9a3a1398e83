-- The sandbox: one home for what the Lua code redrive runs for users sees,
-- may spend and how its failures read -- a `lua:Run` module and a rule
-- (docs/internals.md "Sandboxed code").
--
--   * environment: S.env(profile) builds the globals from one allow list
--     (plus a profile's extras: "rule" or "lua:Run"); string functions are
--     the bounded ones (find, match, gmatch, gsub on the step-budgeted
--     matcher), also for ("x"):method() calls while the code runs;
--   * limits: S.limits(spec, where) -> instructions, timeout (seconds of the
--     code's own time), memory (bytes): the global setting
--     (REDRIVE_SANDBOX_* or S.global) is the ceiling, a module or rule may
--     ask for less; enforced by core.sandbox_run (src/lua/lsandbox.c);
--   * errors: S.failure(err, where) -> message, code: "limit" (budget or
--     time), "nomem" (memory), "script" (the code raised); rd.canceled is
--     never mapped, callers let it through;
--   * lua:Run runs in a worker process (src/lua/lworker.c): S.execute on
--     this side (a pool of workers, a budget shared by the run's lua:Run
--     modules), S.serve in the worker's own fresh state.
--
-- This file is loaded in two kinds of state: redrive's (require
-- "redrive.sandbox") and a worker's, where it gets the worker's C half as
-- its argument and has neither redrive.core nor a loop.
local arg = ...
local in_worker = type(arg) == "table"
local core = in_worker and arg or require "redrive.core"
local json = in_worker and core.json or core.rd.json

local S = {}

-- ---- limits ----------------------------------------------------------------------

S.DEFAULTS = { timeout = 5, memory = 128 * 1024 * 1024, instructions = 500000000 }
local LIMITS = {
  { key = "timeout", env = "REDRIVE_SANDBOX_TIMEOUT", kind = "timeout" },
  { key = "memory", env = "REDRIVE_SANDBOX_MEMORY", kind = "bytes", min = 65536 },
  { key = "instructions", env = "REDRIVE_SANDBOX_INSTRUCTIONS", kind = "count", min = 1000, max = 2 ^ 53 },
}

-- check(v, name, l) -> n | nil, msg, "invalid": the one rule of numeric
-- options (redrive.opts), with the limit's kind and range
local function check(v, name, l)
  return require("redrive.opts").number(v, name, l.kind, nil, l.min, l.max)
end

-- The global limits: S.global when a script set it, else the defaults with
-- REDRIVE_SANDBOX_* over them. -> limits | nil, msg, "invalid"
function S.global_limits()
  if S.global then return S.global end
  local g = {}
  for _, l in ipairs(LIMITS) do
    local v, err = check(os.getenv(l.env), l.env, l)
    if err then return nil, err, "invalid" end
    g[l.key] = v or S.DEFAULTS[l.key]
  end
  return g
end

-- S.limits(spec, names) -> {instructions, timeout, memory} | nil, msg, "invalid"
-- spec: what a module or rule asks for (nil fields: the global value);
-- names: how the fields are called where they were written (messages).
-- Each limit is the smaller of the two: the global one is the ceiling.
function S.limits(spec, names)
  local g, gerr = S.global_limits()
  if not g then return nil, gerr, "invalid" end
  local out = {}
  for _, l in ipairs(LIMITS) do
    local v, err = check(spec and spec[l.key], names and names[l.key] or l.key, l)
    if err then return nil, err, "invalid" end
    out[l.key] = v and math.min(v, g[l.key]) or g[l.key]
  end
  return out
end

-- ---- environment -------------------------------------------------------------------

-- Names that are never there, and say so.
local BLOCKED = {
  io = true, require = true, load = true, loadstring = true, dofile = true, loadfile = true,
  debug = true, package = true, collectgarbage = true, coroutine = true, setmetatable = true,
  getmetatable = true, rawset = true, rawget = true, rawequal = true, rawlen = true, _G = true,
  print = true,
}

local function copy(t)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  return o
end

local function os_view(extra)
  local o = { time = os.time, date = os.date, clock = os.clock }
  for _, k in ipairs(extra or {}) do o[k] = os[k] end
  return setmetatable(o, {
    __index = function(_, k) error("os." .. tostring(k) .. " is not available in the sandbox", 2) end,
    __metatable = false,
  })
end

-- A string's metatable is the state's: code in a sandbox does not get it
-- (it could unbound every script's methods, or change them).
local function safe_getmetatable(v)
  if type(v) == "string" then return nil end
  return getmetatable(v)
end

-- In redrive's own state a C call holds the loop until it returns, and no
-- hook runs inside it: the two table functions whose work is not bounded
-- by the memory they take get a bound on the elements they touch
-- (table.move({}, 1, 1e12, 1, {}) allocates nothing and never returns). A
-- worker's C calls end with the worker when its time is up.
S.MAX_ELEMENTS = 1000000
local function table_view()
  local t = copy(table)
  if in_worker then return t end
  local move, sort = table.move, table.sort
  t.move = function(a1, f, e, tp, a2)
    if type(f) == "number" and type(e) == "number" and e - f >= S.MAX_ELEMENTS then
      error(string.format("table.move: more than %d elements in the sandbox", S.MAX_ELEMENTS), 2)
    end
    return move(a1, f, e, tp, a2)
  end
  t.sort = function(list, comp)
    if type(list) == "table" and #list > S.MAX_ELEMENTS then
      error(string.format("table.sort: more than %d elements in the sandbox", S.MAX_ELEMENTS), 2)
    end
    return sort(list, comp)
  end
  return t
end

local function json_view()
  return { encode = json.encode, decode = json.decode, null = json.null, array = json.array,
           object = json.object, kind = json.kind }
end

-- What each profile adds to the common allow list, and how its globals
-- behave: a rule's are read-only and an undefined one raises; lua:Run code
-- may set its own and reads nil for an unknown name.
local PROFILES = {
  rule = {
    strict = true, os = { "difftime", "getenv" },
    globals = function()
      return { rawequal = rawequal, rawget = rawget, rawlen = rawlen, setmetatable = setmetatable,
               getmetatable = safe_getmetatable, unpack = table.unpack }
    end,
  },
  ["lua:Run"] = {
    globals = function() return { rd = { json = json_view() } } end,
  },
}

-- S.env(profile, extra) -> env: the globals of sandboxed code. extra: more
-- globals for this one (a rule's rd view, print, log).
function S.env(profile, extra)
  local p = assert(PROFILES[profile], "unknown sandbox profile")
  local allowed = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, select = select,
    tonumber = tonumber, tostring = tostring, type = type,
    pcall = core.sandbox_pcall, xpcall = core.sandbox_xpcall, -- cannot swallow a limit
    string = core.sandbox_strings(), table = table_view(), math = copy(math), utf8 = copy(utf8),
    os = os_view(p.os), _VERSION = _VERSION,
  }
  for k, v in pairs(p.globals()) do allowed[k] = v end
  for k, v in pairs(extra or {}) do allowed[k] = v end
  local function missing(k, level)
    if BLOCKED[k] then error("'" .. tostring(k) .. "' is not available in the sandbox", level + 1) end
    if p.strict then error(string.format("undefined global '%s'", tostring(k)), level + 1) end
  end
  if not p.strict then
    return setmetatable(allowed, { __index = function(_, k) return missing(k, 2) end, __metatable = false })
  end
  return setmetatable({}, {
    __index = function(_, k)
      local v = allowed[k]
      if v == nil then missing(k, 2) end
      return v
    end,
    __newindex = function(_, k)
      error(string.format("assignment to global '%s' (rules cannot set globals: use local)", tostring(k)), 2)
    end,
    __metatable = false,
  })
end

-- ---- running and errors ---------------------------------------------------------------

-- S.run(spec, fn, ...) -> true, results... | false, err
-- Runs fn(...) on this coroutine under spec.limits ({instructions, timeout,
-- memory}); spec.name names it in messages, spec.chunk (a chunk name) puts
-- file:line on its errors, spec.scope / spec.time_scope / spec.shown say
-- what a limit message calls the limit. spec.used = {instructions,
-- seconds, memory} afterwards. err: see core.sandbox_run.
function S.run(spec, fn, ...)
  local l = spec.limits
  local shown = spec.shown or {}
  local opts = {
    name = spec.name, chunk = spec.chunk, scope = spec.scope, time_scope = spec.time_scope,
    instructions = l.instructions, timeout = l.timeout,
    memory = not in_worker and l.memory or nil, -- a worker's whole state is capped instead
    shown_instructions = shown.instructions, shown_timeout = shown.timeout,
    methods = not in_worker, yield = not in_worker,
  }
  local r = table.pack(core.sandbox_run(opts, fn, ...))
  spec.used = opts.used
  return table.unpack(r, 1, r.n)
end

-- S.failure(err, where) -> message, code: a failed run's error as a module
-- or rule reports it. Not for rd.canceled (let it through).
function S.failure(err, where)
  if type(err) == "table" and type(err.code) == "string" and err.message ~= nil then
    return tostring(err.message), err.code -- a limit, or a bounded pattern's limit
  end
  local msg = type(err) == "string" and err or tostring(err)
  if where and not msg:find(where, 1, true) then msg = where .. ": " .. msg end
  return msg, "script"
end

-- ---- lua:Run in a worker: its side ----------------------------------------------------

local function reply(t) return (assert(json.encode(t))) end

-- S.serve(text) -> reply text, in a worker's fresh state. The request:
-- {where, code, wrap (code returns the function), bundle = [[id, value]...],
-- ctx, limits, scope, time_scope, shown}. The reply: {ok = true, value,
-- used} | {ok = false, message, code, used}.
function S.serve(text)
  local req = assert(json.decode(text))
  core.sandbox_methods(true) -- every method call in this state is sandboxed code's
  local where = req.where
  local env = S.env("lua:Run")
  local src = req.wrap and req.code or ("local bundle, ctx = ...; " .. req.code)
  local fn, err = load(src, "=" .. where, "t", env)
  if not fn then return reply { ok = false, code = "invalid", message = where .. ": syntax error: " .. err } end
  local bundle = {}
  for _, p in ipairs(req.bundle) do bundle[p[1]] = p[2] end
  local ctx = req.ctx
  local spec = { name = where, limits = req.limits, scope = req.scope, time_scope = req.time_scope,
                 shown = req.shown }
  local ok, res = S.run(spec, function()
    local r = fn(bundle, ctx)
    if req.wrap then
      if type(r) ~= "function" then error(where .. ": code must return a function, got " .. type(r), 0) end
      r = r(bundle, ctx)
    end
    return r
  end)
  if not ok then
    local msg, code = S.failure(res, where)
    return reply { ok = false, message = msg, code = code, used = spec.used }
  end
  local out, why = json.encode { ok = true, value = res, used = spec.used }
  -- the engine's own check names it (its message); the value cannot travel
  return out or reply { ok = false, code = "invalid", unstorable = tostring(why), used = spec.used }
end

if in_worker then return S end

-- ---- lua:Run in a worker: this side ---------------------------------------------------

local rd = core.rd

-- Idle workers, and how many exist; a call waits for one when S.MAX_WORKERS
-- are busy. A worker that was killed (a time limit) or died is dropped.
S.MAX_WORKERS = 8
local pool = { idle = {}, n = 0 }

local function acquire()
  while true do
    local w = table.remove(pool.idle)
    if w and w:alive() then return w end
    if w then pool.n = pool.n - 1; w:close()
    elseif pool.n < S.MAX_WORKERS then
      local nw, err, code = core.sandbox_worker()
      if not nw then return nil, err, code end
      pool.n = pool.n + 1
      return nw
    else
      pool.cv = pool.cv or rd.cond()
      pool.cv:wait()
    end
  end
end

local function release(w)
  if w:alive() then pool.idle[#pool.idle + 1] = w
  else pool.n = pool.n - 1; w:close() end
  if pool.cv then pool.cv:signal() end
end

-- S.workers() -> pids of the idle workers (tests look at their memory)
function S.workers()
  local out = {}
  for i, w in ipairs(pool.idle) do out[i] = w:pid() end
  return out
end

-- What the lua:Run code of one run may still spend, shared by all its
-- lua:Run modules (a feeder running one 200 times included): keyed by the
-- engine's run state.
local budgets = setmetatable({}, { __mode = "k" })

-- S.budget(run) -> {instructions, seconds, total = the global limits}
-- | nil, msg, "invalid"
function S.budget(run)
  local b = budgets[run]
  if not b then
    local g, err = S.global_limits()
    if not g then return nil, err, "invalid" end
    b = { instructions = g.instructions, seconds = g.timeout, total = g }
    budgets[run] = b
  end
  return b
end

local SCOPE = "shared by the run's lua:Run modules"

-- S.execute(req, limits, budget) -> output | nil, msg, code
-- Runs a lua:Run request ({where, code, wrap, bundle, ctx}) in a worker
-- under this module's limits and what is left of the run's budget, and
-- charges what it spent to the budget.
function S.execute(req, limits, budget)
  local where = req.where
  req.limits = {
    instructions = math.max(budget.instructions, 1),
    timeout = math.max(math.min(limits.timeout, budget.seconds), 0.001),
  }
  req.scope = SCOPE
  req.shown = { instructions = budget.total.instructions }
  if budget.seconds <= limits.timeout then
    req.time_scope = SCOPE
    req.shown.timeout = budget.total.timeout
  end
  local text, terr = json.encode(req)
  if not text then return nil, where .. ": its input cannot be sent to the sandbox: " .. tostring(terr), "invalid" end
  local w, werr, wcode = acquire()
  if not w then return nil, where .. ": " .. tostring(werr), wcode end
  local ok, res, err, code = pcall(w.call, w, text, req.limits.timeout, limits.memory)
  release(w)
  if not ok then error(res, 0) end -- rd.canceled (the worker was killed), or a bug
  if not res then
    if code == "limit" then budget.seconds = 0 end -- killed at the time limit
    return nil, where .. ": " .. tostring(err), code
  end
  local rep, derr = json.decode(res)
  if type(rep) ~= "table" then return nil, where .. ": bad reply from the sandbox: " .. tostring(derr), "engine" end
  local used = rep.used or {}
  budget.instructions = budget.instructions - (tonumber(used.instructions) or 0)
  budget.seconds = budget.seconds - (tonumber(used.seconds) or 0)
  if rep.unstorable then
    return nil, string.format("module %s (lua:Run): the output cannot be stored as JSON: %s", tostring(req.ctx.module),
      rep.unstorable), "invalid"
  end
  if not rep.ok then
    local msg = tostring(rep.message)
    if not msg:find(where, 1, true) then msg = where .. ": " .. msg end
    return nil, msg, rep.code or "script"
  end
  return rep.value
end

return S

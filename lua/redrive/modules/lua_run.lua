-- lua:Run — run a piece of Lua in the sandbox (lua/redrive/sandbox.lua),
-- in a worker process of its own.
-- mapper.code: the body of a function (`bundle` and `ctx` are in scope), or
--   `return function(bundle, ctx) ... end`. Other mapper fields are resolved
--   as usual and passed as ctx.mapper.
--   bundle: a copy (through JSON) of the outputs so far, by module id
--     (bundle[0] = input)
--   ctx: {module = id, mapper = {...}, scenario = {id, name}}
--   timeout (seconds), maxMemory (bytes): this module's limits, at most the
--     global ones (REDRIVE_SANDBOX_TIMEOUT / _MEMORY)
-- The code sees the sandbox's "lua:Run" allow list: string, table, math,
-- utf8, pairs, ipairs, tostring, tonumber, type, select, error, pcall,
-- xpcall, assert, next, os.time / date / clock and rd.json. Its return value
-- (JSON-encodable) is the output. Instructions and time are a budget of the
-- run, shared by all its lua:Run modules; memory caps the worker's state.
local S = require "redrive.sandbox"

local M = {}

local function run(ctx, m, bundle)
  local id = ctx.module.id
  local where = string.format("lua:Run (module %s)", tostring(id))
  local code = m.code
  if type(code) ~= "string" or code:find("^%s*$") then return nil, where .. ": code is empty", "invalid" end
  local limits, lerr = S.limits({ timeout = m.timeout, memory = m.maxMemory },
    { timeout = "timeout", memory = "maxMemory" })
  if not limits then return nil, where .. ": " .. lerr, "invalid" end
  local budget, berr = S.budget(ctx.run)
  if not budget then return nil, where .. ": " .. berr, "invalid" end
  local mapper = {}
  for k, v in pairs(m) do if k ~= "code" then mapper[k] = v end end
  local pairs_ = {}
  for k, v in pairs(bundle or {}) do pairs_[#pairs_ + 1] = { k, v } end
  return S.execute({
    where = where, code = code, wrap = code:find("^%s*return%s+function") ~= nil,
    bundle = pairs_, ctx = { module = id, mapper = mapper, scenario = ctx.run.scenario },
  }, limits, budget)
end

M.type = "lua:Run"
M.fields = { code = "string", input = "any", timeout = "number", maxMemory = "number" }
M.required = { "code" }
M.raw = { code = true } -- not resolved as a template: Lua code may contain "{{"
M.run = run
return M

-- The local engine: runs a Make-format blueprint (docs/internals.md "Engine").
--
--   local engine = require "redrive.engine"
--   local out = engine.run(bp, {input =, resume = {failer =, state =}, dlq =, scenario =})
--
-- Flow semantics
--   * Modules run in order; each sees the outputs of the modules before it in
--     its branch ({{id.path}}, see redrive.engine.mapper).
--   * builtin:BasicRouter (last module of its flow) runs each route whose
--     filter passes, in order, each with a copy of the bundle it received.
--   * builtin:BasicFeeder runs the rest of its flow once per element.
--   * A module may carry a Make filter ({name, conditions}); when it does not
--     pass, that branch ends there (not an error).
--   * Operations: every module run counts 1 (a trigger too; a feeder counts 1
--     and the modules after it once per element); routers, filters and error
--     handlers count 0.
--   * Errors: the first handler in a module's `onerror` decides:
--       builtin:Resume   its mapper is the failed module's output; go on (warning)
--       builtin:Ignore   end this branch; execution "success" (warning)
--       builtin:Commit   stop; execution "success"
--       builtin:Rollback stop; execution "error", no incomplete execution
--       builtin:Break    stop; execution "warning", incomplete execution
--                        (mapper {retry, count, interval (minutes) | intervalSeconds}
--                        -> incomplete.auto_retry = {count, interval (seconds)})
--     Without a handler the execution stops with "error", and an incomplete
--     execution when incomplete executions are enabled (opts.dlq ~= false
--     and metadata.scenario.dlq ~= false).
--   * Resume (opts.resume): runs from the failer with the stored outputs of
--     the modules before it (they are not run again), then the rest of the
--     execution: remaining feeder elements and remaining router routes.
local core = require "redrive.core"
local rd = core.rd
local M = require "redrive.engine.mapper"
local PF = require "redrive.pattern_filter"
local json = rd.json
local null = json.null

local E = { modules = {}, handlers = {} }

local HANDLERS = {
  ["builtin:Break"] = true, ["builtin:Resume"] = true, ["builtin:Ignore"] = true,
  ["builtin:Commit"] = true, ["builtin:Rollback"] = true,
}
E.HANDLERS = HANDLERS

-- ---------------------------------------------------------------------------
-- module registry

local function spec_of(def)
  local spec = { fields = json.object {} }
  for k, v in pairs(def.fields or {}) do spec.fields[k] = v end
  if def.required and #def.required > 0 then spec.required = json.array { table.unpack(def.required) } end
  return spec
end

-- engine.register(def): add a module type ({type, fields, required, run}).
function E.register(def)
  if type(def) ~= "table" or type(def.type) ~= "string" then
    error("bad argument #1 to 'register' (module definition with a type expected)", 2)
  end
  if not def.router and type(def.run) ~= "function" then
    error("bad argument #1 to 'register' (" .. def.type .. ": run must be a function)", 2)
  end
  E.modules[def.type] = def
  if core.register_module then
    local ok, err = core.register_module(def.type, spec_of(def))
    if not ok then error("cannot register module " .. def.type .. ": " .. tostring(err), 2) end
  end
  return def
end

local function load_modules()
  local names = core.luafiles and core.luafiles() or {}
  table.sort(names)
  for _, name in ipairs(names) do
    if name:find("^redrive%.modules%.") then
      local def = require(name)
      if type(def) == "table" then
        if def.type then E.register(def) end
        for _, h in ipairs(def.handlers or {}) do
          E.handlers[h.type] = h
          if core.register_module then core.register_module(h.type, spec_of(h)) end
        end
      end
    end
  end
end
load_modules()

-- ---------------------------------------------------------------------------
-- helpers

local function copy(t)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  return o
end

-- ---------------------------------------------------------------------------
-- validation

local function fmt_problem(p)
  local s = p.module and ("module " .. tostring(p.module)) or nil
  if p.field and p.field ~= "" then s = s and (s .. ", " .. p.field) or p.field end
  return (s and (s .. ": ") or "") .. tostring(p.message)
end

-- A blueprint built in Lua may hold `flow = {}`: an empty table is a JSON
-- object unless marked, so mark the empty lists of the structure as arrays.
local function mark_lists(flow)
  if type(flow) ~= "table" then return end
  if next(flow) == nil and getmetatable(flow) == nil then json.array(flow) end
  for _, m in ipairs(flow) do
    if type(m) == "table" then
      for _, k in ipairs { "onerror", "routes" } do
        local v = m[k]
        if type(v) == "table" and next(v) == nil and getmetatable(v) == nil then json.array(v) end
      end
      if type(m.routes) == "table" then
        for _, r in ipairs(m.routes) do if type(r) == "table" then mark_lists(r.flow) end end
      end
    end
  end
end

-- validate(bp) -> true | nil, message, problems
-- The one blueprint validator is the C one (src/engine/blueprint.c, through
-- rd.blueprint(bp):validate()), against the module types registered here;
-- this only shapes its problems into one message.
function E.validate(bp)
  if type(bp) == "table" then mark_lists(bp.flow) end
  local b, err = rd.blueprint(bp)
  if not b then return nil, "invalid blueprint: " .. tostring(err) end
  local ok, problems = b:validate()
  if ok then return true end
  local parts = {}
  for i, p in ipairs(problems) do
    if i > 10 then parts[#parts + 1] = string.format("(%d more)", #problems - 10); break end
    parts[i] = fmt_problem(p)
  end
  return nil, "invalid blueprint: " .. table.concat(parts, "; "), problems
end

-- ---------------------------------------------------------------------------
-- filters (Make format: {name, conditions = [[{a, b, o}, ...AND], ...OR]})

local function lowerif(s, ci) if ci then return s:lower() end return s end

local function cond_ok(o, a, b)
  local base, ci = o:match("^(.-)(:ci)$")
  if not base then base = o end
  ci = ci ~= nil
  if base == "exist" then return not M.empty(a) end
  if base == "notexist" then return M.empty(a) end
  local kind, op = base:match("^(%a+):(%a+)$")
  if kind == "text" then
    local x, y = lowerif(M.text(a), ci), lowerif(M.text(b), ci)
    if op == "equal" then return x == y
    elseif op == "notequal" then return x ~= y
    elseif op == "contain" then return M.find_plain(x, y, 1) ~= nil -- linear (memmem)
    elseif op == "notcontain" then return M.find_plain(x, y, 1) == nil
    elseif op == "startwith" then return x:sub(1, #y) == y
    elseif op == "endwith" then return y == "" or x:sub(-#y) == y
    elseif op == "pattern" or op == "notpattern" then
      local test, perr = PF.compile(y)
      if not test then error("bad pattern " .. string.format("%q", y) .. ": " .. tostring(perr), 0) end
      return test(x) == (op == "pattern") -- a tripped budget raises {code = "limit"}
    end
  elseif kind == "number" then
    local x, y = M.tonum(a), M.tonum(b)
    if x == nil or y == nil then return op == "notequal" and not (x == nil and y == nil) end
    if op == "equal" then return x == y
    elseif op == "notequal" then return x ~= y
    elseif op == "greater" then return x > y
    elseif op == "less" then return x < y
    elseif op == "greaterorequal" then return x >= y
    elseif op == "lessorequal" then return x <= y end
  elseif kind == "boolean" then
    local x, y = M.truthy(a), M.truthy(b)
    if op == "equal" then return x == y elseif op == "notequal" then return x ~= y end
  elseif kind == "array" then
    local found = false
    if type(a) == "table" then
      for _, v in ipairs(a) do if lowerif(M.text(v), ci) == lowerif(M.text(b), ci) then found = true; break end end
    end
    if op == "contain" then return found elseif op == "notcontain" then return not found end
  end
  error("unknown filter operator '" .. tostring(o) .. "'", 0)
end

-- filter_pass(filter, scope) -> bool | nil, msg[, code] (code "limit" when a
-- pattern's step budget tripped; "invalid" is the caller's default)
function E.filter_pass(filter, scope)
  if filter == nil or filter == null then return true end
  if type(filter) ~= "table" then return nil, "filter must be an object" end
  local conds = filter.conditions
  if conds == nil or conds == null or (type(conds) == "table" and #conds == 0) then return true end
  if type(conds) ~= "table" then return nil, "filter conditions must be an array of arrays" end
  local name = filter.name and filter.name ~= "" and (" '" .. tostring(filter.name) .. "'") or ""
  for _, group in ipairs(conds) do
    if type(group) ~= "table" then return nil, "filter" .. name .. ": conditions must be an array of arrays" end
    local all = true
    for _, c in ipairs(group) do
      if type(c) ~= "table" then return nil, "filter" .. name .. ": a condition must be an object {a, b, o}" end
      local a, err = M.resolve(c.a, scope)
      if err then return nil, "filter" .. name .. ": " .. err end
      local b
      b, err = M.resolve(c.b, scope)
      if err then return nil, "filter" .. name .. ": " .. err end
      local ok, r = pcall(cond_ok, tostring(c.o or "text:equal"), a, b)
      if not ok then return nil, "filter" .. name .. ": " .. tostring(r), type(r) == "table" and r.code or nil end
      if not r then all = false; break end
    end
    if all then return true end
  end
  return false
end

-- ---------------------------------------------------------------------------
-- running

-- The outputs a branch sees, by module id (string keys): a route of a
-- router and an element of a feeder each get a layer of their own over the
-- outputs before them (writes stay in the layer), made in constant time.
-- Copying every output for every element or route made a run quadratic (n
-- modules before a feeder of n elements). Lookups walk the layers, as
-- deep as routers and feeders nest.
local function layer(parent) return setmetatable({}, { __index = parent }) end

-- Every output a layered table sees, as one plain table.
local function flatten(outputs)
  local chain, t = {}, outputs
  while t do
    chain[#chain + 1] = t
    local mt = getmetatable(t)
    t = mt and mt.__index
  end
  local o = {}
  for i = #chain, 1, -1 do for k, v in next, chain[i] do o[k] = v end end
  return o
end

local function scope_of(R, outputs)
  return { outputs = outputs, input = R.input, scenario = R.scenario }
end

-- The bundle a module's run gets: the outputs so far by module id (number
-- keys) and [0] = the run's input. A read-only view made in constant time,
-- read during the module's run: building a table of every output for every
-- module made a run quadratic in its module count (issue 13, finding 5).
-- pairs() walks it (__pairs); writes raise. A view, so the modules of one
-- flow that share their outputs table share one bundle.
local make_bundle
local function bundle_of(R, outputs)
  if R.bundle_outputs ~= outputs then
    R.bundle, R.bundle_outputs = make_bundle(R, outputs), outputs
  end
  return R.bundle
end

function make_bundle(R, outputs)
  local function get(_, k)
    if k == 0 then return R.input end
    if math.type(k) == "integer" then return outputs[tostring(k)] end
    return nil
  end
  return setmetatable({}, {
    __index = get,
    __newindex = function() error("the bundle is read-only", 2) end,
    __pairs = function()
      local all, k = flatten(outputs), nil
      return function()
        local v
        if k == nil and R.input ~= nil then k = 0; return 0, R.input end
        k, v = next(all, k ~= nil and k ~= 0 and tostring(k) or nil)
        if k == nil then return nil end
        k = math.tointeger(tonumber(k)) or k
        return k, v
      end
    end,
  })
end

local function warn(R, s) R.warnings[#R.warnings + 1] = s end

local function record(R, id)
  local key = tostring(id)
  local rec = R.run_data[key]
  if not rec then
    rec = { operations = 0, duration = 0 }
    R.run_data[key] = rec
  end
  return rec
end

local function capture(R, m, outputs, rec)
  local feeders = {}
  for _, f in ipairs(R.stack) do feeders[f.id] = { array = f.array, index = f.index } end
  return {
    version = 1, input = R.input, outputs = json.object(flatten(outputs)),
    feeders = json.object(feeders), failer = m.id, failer_input = rec and rec.input,
  }
end

local function fail(R, m, outputs, err, code, rec, no_dlq)
  R.status = "error"
  R.error = { module = m.id, message = err, code = code }
  if R.dlq and not no_dlq then
    R.incomplete = { reason = err, failer = m.id, state = capture(R, m, outputs, rec) }
  end
  return nil, "stop"
end

-- The failed module m: apply its first error handler.
-- -> output, "resumed" | nil, "ignore" | nil, "stop"
local function handle_error(R, m, outputs, err, code, rec)
  local h = type(m.onerror) == "table" and m.onerror[1] or nil
  local t = type(h) == "table" and h.module or nil
  local what = string.format("module %s: %s", tostring(m.id), err)
  if t == "builtin:Resume" then
    local sub, e2 = M.resolve(h.mapper, scope_of(R, outputs))
    if e2 then return fail(R, m, outputs, err .. " (and the Resume handler failed: " .. e2 .. ")", code, rec) end
    warn(R, what .. " (resumed with a substitute output)")
    rec.output = sub
    return sub, "resumed"
  elseif t == "builtin:Ignore" then
    warn(R, what .. " (ignored)")
    return nil, "ignore"
  elseif t == "builtin:Commit" then
    warn(R, what .. " (committed)")
    R.error = { module = m.id, message = err, code = code }
    return nil, "stop"
  elseif t == "builtin:Rollback" then
    return fail(R, m, outputs, err, code, rec, true)
  elseif t == "builtin:Break" then
    if not R.dlq then
      warn(R, "module " .. tostring(m.id) .. ": Break handler ignored: incomplete executions are disabled")
      return fail(R, m, outputs, err, code, rec)
    end
    local hm = M.resolve(h.mapper, scope_of(R, outputs)) or {}
    R.status = "warning"
    R.error = { module = m.id, message = err, code = code }
    R.incomplete = { reason = err, failer = m.id, state = capture(R, m, outputs, rec) }
    if M.truthy(hm.retry) then
      local count = math.tointeger(M.tonum(hm.count)) or 3
      local interval = M.tonum(hm.intervalSeconds)
      if not interval then interval = (M.tonum(hm.interval) or 15) * 60 end
      R.incomplete.auto_retry = { count = count, interval = interval }
    end
    return nil, "stop"
  end
  return fail(R, m, outputs, err, code, rec)
end

-- Run one module. -> output, "ok" | output, "resumed" | nil, "ignore" | nil, "stop"
local function exec_module(R, m, def, outputs)
  local rec = record(R, m.id)
  local t0 = rd.now()
  local scope = scope_of(R, outputs)
  local mapper, err, code
  if def.raw and type(m.mapper) == "table" then
    local rest = {}
    for k, v in pairs(m.mapper) do if not def.raw[k] then rest[k] = v end end
    mapper, err, code = M.resolve(rest, scope)
    if mapper then for k in pairs(def.raw) do mapper[k] = m.mapper[k] end end
  else
    mapper, err, code = M.resolve(m.mapper, scope)
  end
  local out
  if mapper ~= nil then
    rec.input = mapper
    if def.redact_input then rec.input = def.redact_input(mapper) end
    local ctx = { rd = rd, run = R, module = m, log = R.log }
    local ok, a, b, c = pcall(def.run, ctx, mapper, bundle_of(R, outputs))
    if not ok then
      if rd.is_canceled(a) then error(a, 0) end -- the run is cancelled, not the module
      err, code = string.format("module %s (%s) raised an error: %s", tostring(m.id), m.module, tostring(a)), "engine"
    elseif a == nil and b ~= nil then
      err, code = tostring(b), c or "error"
    else
      out = a
    end
  end
  if not err and out ~= nil then
    -- the one check that run data stays storable, whatever the module
    -- (infinity, NaN, a function, a cycle): the module fails, naming why,
    -- instead of the run's data being lost when it is recorded
    local s, why = json.encode(out)
    if not s then
      err, code = string.format("module %s (%s): the output cannot be stored as JSON: %s",
        tostring(m.id), m.module, tostring(why)), "invalid"
    end
  end
  -- rd.now() ticks in milliseconds: the sum kept to that, so that it prints
  -- as the short number it is (0.001, not 0.0010000000002037268)
  rec.duration = math.floor((rec.duration + (rd.now() - t0)) * 1000 + 0.5) / 1000
  rec.operations = rec.operations + 1
  R.operations = R.operations + 1
  if not err then
    rec.output, rec.error = out, nil
    return out, "ok"
  end
  -- a module's message may quote what a server echoed: the error, the
  -- reason and the run data keep only its redacted form
  err = core.redact(tostring(err))
  rec.error = { message = err, code = code }
  rec.output = nil
  return handle_error(R, m, outputs, err, code, rec)
end

local run_flow

local function run_routes(R, router, first, outputs)
  for r = first, #router.routes do
    local route = router.routes[r]
    local pass, err, code = E.filter_pass(route.filter, scope_of(R, outputs))
    if pass == nil then
      local _, how = fail(R, router, outputs, "route " .. r .. " of router " .. tostring(router.id) .. ": " .. err,
        code or "invalid")
      return how == "stop"
    end
    if pass and run_flow(R, route.flow, 1, layer(outputs)) then return true end
  end
  return false
end

-- Iterate a feeder's elements from `from`; frame is on R.stack.
local function iterate(R, flow, i, outputs, frame, from)
  for k = from, #frame.array do
    frame.index = k
    local o = layer(outputs)
    o[frame.id] = frame.array[k]
    if run_flow(R, flow, i + 1, o) then return true end
  end
  return false
end

-- Run flow[i..] for one bundle. Returns true when the execution stops.
function run_flow(R, flow, i, outputs)
  while i <= #flow do
    local m = flow[i]
    local def = E.modules[m.module]
    if m.filter ~= nil and m.filter ~= null then
      local pass, err, code = E.filter_pass(m.filter, scope_of(R, outputs))
      if pass == nil then
        local _, how = fail(R, m, outputs, "module " .. tostring(m.id) .. ": " .. err, code or "invalid")
        return how == "stop"
      end
      if not pass then return false end
    end
    if def.router then return run_routes(R, m, 1, outputs) end
    local out, how = exec_module(R, m, def, outputs)
    if how == "stop" then return true end
    if how == "ignore" then return false end
    local key = tostring(m.id)
    if def.iterator and how == "ok" then
      local frame = { id = key, array = out or {}, index = 0 }
      R.stack[#R.stack + 1] = frame
      local stopped = iterate(R, flow, i, outputs, frame, 1)
      table.remove(R.stack)
      return stopped
    end
    if out == nil then out = json.object {} end
    outputs[key] = out
    i = i + 1
  end
  return false
end

-- Where module `id` is: a chain of steps {flow, i[, route]} from the top flow.
local function locate(flow, id, chain)
  for i, m in ipairs(flow) do
    if type(m) == "table" then
      if m.id == id then
        chain[#chain + 1] = { flow = flow, i = i }
        return chain
      end
      if type(m.routes) == "table" then
        for r, route in ipairs(m.routes) do
          if type(route) == "table" and type(route.flow) == "table" then
            local n = #chain
            chain[n + 1] = { flow = flow, i = i }
            chain[n + 2] = { route = r }
            if locate(route.flow, id, chain) then return chain end
            chain[n + 2], chain[n + 1] = nil, nil
          end
        end
      end
    end
  end
  return nil
end

-- Resume at chain[d] (a {flow, i} step): the failed bundle first, then the
-- remaining routes of enclosing routers and elements of enclosing feeders.
local function resume_at(R, chain, d, outputs, fstate)
  local step = chain[d]
  local flow = step.flow
  local frames = {}
  for j = 1, step.i - 1 do
    local m = flow[j]
    local def = type(m) == "table" and E.modules[m.module]
    local fs = def and def.iterator and fstate[tostring(m.id)]
    if fs and type(fs.array) == "table" then
      local frame = { id = tostring(m.id), array = fs.array, index = math.tointeger(fs.index) or 1, j = j }
      R.stack[#R.stack + 1] = frame
      frames[#frames + 1] = frame
    end
  end
  local stopped
  if d + 2 <= #chain then -- flow[step.i] is a router and the failer is inside route chain[d+1].route
    local router, r = flow[step.i], chain[d + 1].route
    stopped = resume_at(R, chain, d + 2, layer(outputs), fstate)
    if not stopped then stopped = run_routes(R, router, r + 1, outputs) end
  else
    stopped = run_flow(R, flow, step.i, outputs)
  end
  for k = #frames, 1, -1 do
    local frame = frames[k]
    if not stopped then stopped = iterate(R, flow, frame.j, outputs, frame, frame.index + 1) end
    table.remove(R.stack)
  end
  return stopped
end

-- ---------------------------------------------------------------------------
-- entry point

local function result(R)
  return {
    status = R.status, operations = R.operations, transfer = R.transfer,
    duration = rd.now() - R.t0, run_data = R.run_data, error = R.error,
    warnings = R.warnings, incomplete = R.incomplete,
  }
end

function E.run(bp, opts)
  if type(bp) ~= "table" then error("bad argument #1 to 'run' (blueprint table expected, got " .. type(bp) .. ")", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'run' (table expected, got " .. type(opts) .. ")", 2) end
  local md = type(bp.metadata) == "table" and bp.metadata or {}
  local sc = type(md.scenario) == "table" and md.scenario or {}
  local R = {
    t0 = rd.now(), input = opts.input, scenario = opts.scenario or {},
    status = "success", operations = 0, transfer = 0, run_data = {}, warnings = json.array {},
    stack = {}, dlq = opts.dlq ~= false and sc.dlq ~= false,
    log = opts.log or function() end,
  }
  -- opts.validated: the caller has run this very table through validate
  -- before (the local source caches decoded blueprints per stored text)
  local ok, msg = true, nil
  if not opts.validated then ok, msg = E.validate(bp) end
  if not ok then
    R.status, R.error = "error", { message = msg, code = "invalid" }
    return result(R)
  end
  if R.input ~= nil then
    local s, why = json.encode(R.input)
    if not s then
      R.status, R.error = "error", { message = "the run's input cannot be stored as JSON: " .. tostring(why), code = "invalid" }
      return result(R)
    end
  end
  if opts.resume then
    local res = opts.resume
    if type(res) ~= "table" then error("bad argument #2 to 'run' (resume must be a table)", 2) end
    local failer = math.tointeger(tonumber(res.failer))
    local state = type(res.state) == "table" and res.state or {}
    if state.input ~= nil and R.input == nil then R.input = state.input end
    if R.input == null then R.input = nil end
    local chain = failer and locate(bp.flow, failer, {})
    if not chain then
      R.status = "error"
      R.error = { module = failer, message = string.format("failer module %s not found in the blueprint", tostring(res.failer)), code = "not_found" }
      return result(R)
    end
    local outputs = type(state.outputs) == "table" and copy(state.outputs) or {}
    local fstate = type(state.feeders) == "table" and state.feeders or {}
    resume_at(R, chain, 1, outputs, fstate)
  else
    run_flow(R, bp.flow, 1, {})
  end
  return result(R)
end

return E

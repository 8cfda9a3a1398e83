-- Helpers shared by the parts of the local source (local.lua, local_dlq.lua,
-- local_retry.lua): argument checks, blueprint validation, engine calls and
-- the store records built from an engine result, lease renewal. (Iterators,
-- error lists and bulk summaries: common.lua; dry-run results: the mutation
-- gate, lua/redrive/mutation.lua.)
local U = {}

-- run_data key under which an execution keeps its input bundle, so that
-- exec:retry() can run it again; exec:run_data() hides it.
U.INPUT_KEY = "_input"

function U.check_table(v, n, fname)
  if type(v) ~= "table" then
    error(string.format("bad argument #%d to '%s' (table expected, got %s)", n, fname, type(v)), 3)
  end
end

-- Scenario ids are integers; "12" is accepted too.
function U.scenario_id(v, fname)
  local n = math.tointeger(tonumber(v))
  if not n then
    error(string.format("bad argument #1 to '%s' (scenario id expected, got %s)", fname, tostring(v)), 3)
  end
  return n
end

function U.when(t)
  if type(t) ~= "number" then return "?" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

function U.log(rd, fmt, ...)
  io.stderr:write("redrive: ", string.format(fmt, ...), "\n")
end

-- progress_bar(rd, total, verb) -> {update(s), finish(s)}: a bar on stderr,
-- "retrying [#####-----] 120/400  ok 100  failed 15  skipped 5", redrawn at
-- most ten times a second; shared by every source's bulk calls.
function U.progress_bar(rd, total, verb)
  local last, width = -1, 30
  local function draw(s, force)
    local now = rd.now()
    if not force and now - last < 0.1 then return end
    last = now
    local done = s.succeeded + s.failed + s.skipped
    local frac = total and total > 0 and math.min(1, done / total) or 0
    local fill = math.floor(frac * width + 0.5)
    io.stderr:write(string.format("\r%s [%s%s] %d/%s  ok %d  failed %d  skipped %d ", verb or "retrying",
      string.rep("#", fill), string.rep("-", width - fill), done, total and tostring(total) or "?",
      s.succeeded, s.failed, s.skipped))
    io.stderr:flush()
  end
  return { update = draw, finish = function(s) draw(s, true); io.stderr:write("\n") end }
end

-- to_blueprint(rd, table | json string | bp) -> bp | nil, msg, "invalid"
function U.to_blueprint(rd, v)
  if type(v) == "userdata" then return v end
  if type(v) ~= "table" and type(v) ~= "string" then
    error("blueprint must be a table, a JSON string or an rd.blueprint object, got " .. type(v), 3)
  end
  local bp, err = rd.blueprint(v)
  if not bp then return nil, "invalid blueprint: " .. tostring(err), "invalid" end
  return bp
end

-- validated(rd, v) -> bp, json_text | nil, msg, "invalid"
-- The validation of a blueprint being stored (scenario_create /
-- scenario_update / item:patch): the one validator, engine.validate (C),
-- which names module and field. What is stored is never validated again.
function U.validated(rd, v)
  local engine = require "redrive.engine"
  local bp, err, code = U.to_blueprint(rd, v)
  if not bp then return nil, err, code end
  local ok, msg = engine.validate(bp)
  if not ok then return nil, msg, "invalid" end
  return bp, bp:json()
end

function U.blueprint_of(rd, text)
  if text == nil then return nil, "no blueprint stored", "not_found" end
  return rd.blueprint(text)
end

-- blueprint(rd, text) -> bp_table | nil, err
-- Stored blueprint texts decoded once and kept (at most 64 texts): a bulk
-- retry of many items of one scenario, or many runs of it, decode the same
-- text once instead of once per run. The tables are the engine's alone
-- (never handed to scripts), so sharing them is safe.
local bp_cache, bp_count = {}, 0
function U.blueprint(rd, text)
  local hit = bp_cache[text]
  if hit then return hit end
  local bp, err = rd.json.decode(text)
  if type(bp) ~= "table" then return nil, err or "not a JSON object" end
  if bp_count >= 64 then bp_cache, bp_count = {}, 0 end
  bp_cache[text], bp_count = bp, bp_count + 1
  return bp
end

-- failed_run(message, code, duration) -> an engine result for a run that
-- could not happen (so that the attempt is still recorded).
function U.failed_run(message, code, duration)
  return {
    status = "error", operations = 0, transfer = 0, duration = duration or 0, run_data = {},
    error = { message = message, code = code },
  }
end

-- run_engine(bp_table, opts) -> out. A stored blueprint was validated when
-- it was stored (scenario_create / scenario_update / item:patch), so the
-- engine does not validate it again. An engine that raises (a bug in a
-- module, a bad state) becomes a failed run, so that the attempt is still
-- recorded; cancellation of the calling task is passed on.
function U.run_engine(bp, opts)
  local engine = require "redrive.engine"
  local now = require("redrive.core").rd.now
  local t0 = now()
  opts.validated = true
  local ok, out = pcall(engine.run, bp, opts)
  if ok and type(out) == "table" then return out end
  if require("redrive.core").rd.is_canceled(out) then error(out, 0) end
  local msg = tostring(out)
  if ok then msg = "engine returned " .. type(out) .. " instead of a result table" end
  return U.failed_run("engine failure: " .. msg, "engine", now() - t0)
end

-- Errors and reasons are stored redacted (src/core/redact.c), whoever made them.
local redact = require("redrive.core").redact

-- ---------------------------------------------------------------------------
-- fingerprints (src/core/fingerprint.c): of the module (type and id), the
-- error's code and the message as stored, so that an execution and its
-- item share one, and the store's migration (src/store/store.c) computes the
-- same for rows written before fingerprints existed.

-- a module id as the store's SQL writes it (CAST(3 AS TEXT) = "3")
local function id_text(v)
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  return n and string.format("%d", n) or tostring(v)
end

-- module type of each module id of a decoded blueprint (flow and routes, as
-- rd_blueprint_find_module walks them), built once per blueprint table
local module_types = setmetatable({}, { __mode = "k" })
local function module_type(bp, id)
  if type(bp) ~= "table" or id == nil then return nil end
  local map = module_types[bp]
  if not map then
    map = {}
    local function walk(flow, depth)
      if type(flow) ~= "table" or depth > 64 then return end
      for _, m in ipairs(flow) do
        if type(m) == "table" then
          local k = m.id ~= nil and id_text(m.id)
          if k and map[k] == nil and type(m.module) == "string" then map[k] = m.module end
          for _, r in ipairs(type(m.routes) == "table" and m.routes or {}) do
            if type(r) == "table" then walk(r.flow, depth + 1) end
          end
        end
      end
    end
    walk(bp.flow, 0)
    module_types[bp] = map
  end
  return map[id]
end

-- fingerprint(bp, module_id, class, message) -> fingerprint, cause
function U.fingerprint(bp, module_id, class, message)
  local id = id_text(module_id)
  return require("redrive.core").fingerprint(message, {
    module = module_type(bp, id), module_id = id, class = type(class) == "string" and class or nil,
  })
end

local function encode(rd, v, what)
  local ok, s = pcall(rd.json.encode, v)
  if ok then return s end
  return rd.json.encode { message = "cannot encode " .. what .. ": " .. tostring(s) }
end

-- The store record of an execution from an engine result.
-- o: scenario_id, mode, started_at, input, retry_of, parent_id, attempts,
-- blueprint (the decoded blueprint that ran: module types for fingerprints)
function U.exec_record(rd, out, o)
  local stopped = rd.time()
  -- the engine's run data (module ids as text) is encoded as it is, the
  -- input lent to it for the encoding; other keys are made text in a copy
  local rdata = out.run_data or {}
  for k in pairs(rdata) do
    if type(k) ~= "string" then
      local c = {}
      for k2, v in pairs(rdata) do c[tostring(k2)] = v end
      rdata = c
      break
    end
  end
  local had = rdata[U.INPUT_KEY]
  if o.input ~= nil then rdata[U.INPUT_KEY] = o.input end
  local rtext = encode(rd, rd.json.object(rdata), "run data")
  rdata[U.INPUT_KEY] = had
  local duration = out.duration
  if type(duration) ~= "number" then duration = stopped - (o.started_at or stopped) end
  local err = out.error and redact(encode(rd, out.error, "error")) or nil
  local fp, cause
  if err then -- of the error as stored (redacted), as the migration reads it
    local e = rd.json.decode(err)
    if type(e) == "table" then
      fp, cause = U.fingerprint(o.blueprint, e.module, e.code, type(e.message) == "string" and e.message or nil)
    end
  end
  return {
    scenario_id = o.scenario_id, status = out.status or "error", mode = o.mode,
    started_at = o.started_at, stopped_at = stopped,
    duration = math.floor(duration * 1000 + 0.5), -- milliseconds, as the store keeps them
    operations = out.operations or 0, transfer = out.transfer or 0,
    error = err, run_data = rtext,
    retry_of = o.retry_of, parent_id = o.parent_id, attempts = o.attempts,
    fingerprint = fp, cause = cause,
  }
end

-- The DLQ item of an incomplete run (scenario record sc, blueprint snapshot).
function U.dlq_record(rd, sc, blueprint_text, out)
  local inc = out.incomplete
  local state = encode(rd, inc.state or rd.json.object {}, "state")
  local reason = redact(tostring(inc.reason or (out.error and out.error.message) or "error"))
  local fp, cause = U.fingerprint(U.blueprint(rd, blueprint_text), inc.failer, out.error and out.error.code, reason)
  return {
    scenario_id = sc.id, scenario_name = sc.name, reason = reason,
    size = #state, failer = inc.failer, blueprint = blueprint_text, state = state,
    fingerprint = fp, cause = cause,
  }
end

-- Did a run succeed? "warning" counts (an ignored error, say) unless the
-- run stopped again with an incomplete execution (a Break handler).
function U.succeeded(out)
  return (out.status == "success" or out.status == "warning") and not out.incomplete
end

-- The retry log of an attempt: status 1 success / 2 warning / 3 error.
function U.log_record(rd, out, rec, forced)
  local s = not U.succeeded(out) and 3 or out.status == "success" and 1 or 2
  return {
    status = s, duration = rec.duration, operations = rec.operations,
    transfer = rec.transfer, timestamp = rd.time(), forced = forced and true or false,
  }
end

-- renewer(rd, st, owner, ttl) -> stop(): keeps owner's leases alive (renewed
-- every ttl/3 seconds) until stop() is called.
function U.renewer(rd, st, owner, ttl)
  local stopped = false
  local t = rd.spawn(function()
    while not stopped do
      rd.sleep(ttl / 3)
      if stopped then break end
      st:renew(owner, ttl)
    end
  end)
  return function()
    if stopped then return end
    stopped = true
    t:cancel()
    pcall(t.wait, t)
  end
end

-- host:pid:random, the lease owner prefix of this process.
function U.process_id()
  local pid = "?"
  local f = io.open("/proc/self/stat", "r")
  if f then pid = f:read("l"):match("^(%d+)") or pid; f:close() end
  local host = "localhost"
  f = io.open("/proc/sys/kernel/hostname", "r") or io.open("/etc/hostname", "r")
  if f then host = (f:read("l") or host):gsub("%s", ""); f:close() end
  return string.format("%s:%s:%06x", host, pid, math.random(0, 0xffffff))
end

-- Is stderr a terminal? (asked once per bulk retry without `progress`)
function U.stderr_is_tty()
  local ok = os.execute("[ -t 2 ]")
  return ok == true
end

return U

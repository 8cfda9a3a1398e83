-- The `local` source: redrive's own embedded engine and store.
--
--   local src = rd.connect()                        -- default store
--   local src = rd.connect{kind = "local", db = path}
--
-- Scenarios hold Make-format blueprints; src:run executes one with the engine
-- (lua/redrive/engine) inside the calling task and records the execution --
-- and, when the run must be kept as an incomplete execution, its DLQ item
-- with the blueprint snapshot and the state needed to resume -- in one store
-- transaction. The DLQ half (items, patch, retry one / many, delete) lives
-- in local_dlq.lua; the helpers shared by both halves in local_util.lua.
local U = require "redrive.source.local_util"
local C = require "redrive.source.common"
local DLQ = require "redrive.source.local_dlq"
local Retry = require "redrive.source.local_retry"
local G = require "redrive.mutation" -- every mutating call goes through G.mutate
local run_scenario -- below: src:run past its checks

local M = {}

local Source = { __name = "redrive.Source" }
Source.__index = Source

-- ---------------------------------------------------------------------------
-- scenarios

local function scenario_obj(src, rec)
  local sc = {
    id = rec.id, name = rec.name, dlq = rec.dlq, created = rec.created,
    updated = rec.updated, raw = rec,
  }
  return setmetatable(sc, src._mt.scenario)
end

local Scenario = {}

-- scenario:blueprint() -> bp (rd.blueprint object of the current blueprint)
function Scenario:blueprint()
  return U.blueprint_of(getmetatable(self).__src._rd, self.raw.blueprint)
end

-- scenario:run{input = ...} -> exec
function Scenario:run(opts)
  return getmetatable(self).__src:run(self.id, opts)
end

-- src:scenario_create{name, blueprint, dlq = true} -> scenario | nil, msg, code
function Source:scenario_create(opts)
  U.check_table(opts, 1, "scenario_create")
  if type(opts.name) ~= "string" or opts.name == "" then
    error("bad argument #1 to 'scenario_create' (name must be a non-empty string)", 2)
  end
  if opts.blueprint == nil then error("bad argument #1 to 'scenario_create' (blueprint required)", 2) end
  local bp, text, code = U.validated(self._rd, opts.blueprint)
  if not bp then return nil, text, code end
  local dlq = opts.dlq ~= false
  return G.mutate(self, {
    action = "scenario_create", dry = { name = opts.name, dlq = dlq, modules = #bp:modules() },
    line = string.format("would create scenario %q (%d modules, dlq %s)", opts.name, #bp:modules(), tostring(dlq)),
  }, function()
    local id, err, ecode = self._st:scenario_create { name = opts.name, blueprint = text, dlq = dlq }
    if not id then return nil, err, ecode end
    return self:scenario(id)
  end)
end

-- src:scenario(id) -> scenario | nil, msg, "not_found"
function Source:scenario(id)
  id = U.scenario_id(id, "scenario")
  local rec, err, code = self._st:scenario_get(id)
  if not rec then return nil, err, code end
  return scenario_obj(self, rec)
end

-- src:scenarios() -> {scenario...}
function Source:scenarios()
  local list, err, code = self._st:scenario_list()
  if not list then return nil, err, code end
  local out = {}
  for i, rec in ipairs(list) do out[i] = scenario_obj(self, rec) end
  return out
end

-- src:scenario_update(id, {blueprint = bp, name = s, dlq = bool}) -> scenario
function Source:scenario_update(id, opts)
  id = U.scenario_id(id, "scenario_update")
  U.check_table(opts, 2, "scenario_update")
  local cur, err, code = self._st:scenario_get(id)
  if not cur then return nil, err, code end
  local fields, bp = {}, nil
  if opts.blueprint ~= nil then
    local text
    bp, text, code = U.validated(self._rd, opts.blueprint)
    if not bp then return nil, text, code end
    fields.blueprint = text
  end
  if opts.name ~= nil then
    if type(opts.name) ~= "string" or opts.name == "" then
      error("bad argument #2 to 'scenario_update' (name must be a non-empty string)", 2)
    end
    fields.name = opts.name
  end
  if opts.dlq ~= nil then fields.dlq = not not opts.dlq end
  if next(fields) == nil then return scenario_obj(self, cur) end
  return G.mutate(self, {
    action = "scenario_update", id = id,
    dry = function()
      local details = { id = id, fields = {} }
      for k in pairs(fields) do details.fields[#details.fields + 1] = k end
      table.sort(details.fields)
      if bp then
        local old = U.blueprint_of(self._rd, cur.blueprint)
        details.diff = old and old:diff(bp) or nil
      end
      return details, string.format("would update scenario %d (%s)%s", id, table.concat(details.fields, ", "),
        details.diff and string.format(": %d blueprint change(s)", #details.diff) or "")
    end,
  }, function()
    local ok, uerr, ucode = self._st:scenario_update(id, fields)
    if not ok then return nil, uerr, ucode end
    return self:scenario(id)
  end)
end

-- ---------------------------------------------------------------------------
-- running

-- src:run(scenario_id, {input = bundle, mode = "manual"}) -> exec | nil, msg, code
-- Runs the scenario now, in the calling task, and waits for it to finish.
function Source:run(scenario_id, opts)
  scenario_id = U.scenario_id(scenario_id, "run")
  opts = opts or {}
  U.check_table(opts, 2, "run")
  local sc, err, code = self._st:scenario_get(scenario_id)
  if not sc then return nil, err, code end
  local mode = opts.mode or "manual"
  if type(mode) ~= "string" then error("bad argument #2 to 'run' (mode must be a string)", 2) end
  -- (the dry-run details and line are made only in a dry run)
  return G.mutate(self, {
    action = "run", id = sc.id,
    dry = function()
      return { scenario = sc.id, scenario_name = sc.name, mode = mode, input = opts.input },
        string.format("would run scenario %d %q (mode %s)", sc.id, sc.name, mode)
    end,
  }, run_scenario, self, sc, mode, opts.input)
end

-- the run itself (src:run past its checks, through the gate)
function run_scenario(self, sc, mode, input)
  local bp, perr = U.blueprint(self._rd, sc.blueprint)
  if bp == nil then return nil, "scenario " .. sc.id .. ": stored blueprint is not JSON: " .. tostring(perr), "invalid" end
  local started = self._rd.time()
  local out = U.run_engine(bp, {
    input = input, dlq = sc.dlq, scenario = { id = sc.id, name = sc.name },
  })
  local rec = U.exec_record(self._rd, out, {
    scenario_id = sc.id, mode = mode, started_at = started, input = input, attempts = 1, blueprint = bp,
  })
  local item
  if out.incomplete and sc.dlq then item = U.dlq_record(self._rd, sc, sc.blueprint, out) end
  local eid, did_or_err, rcode = self._st:record { exec = rec, dlq = item }
  if not eid then return nil, did_or_err, rcode end
  rec.id = eid
  if item then rec.dlq_id = did_or_err end
  local exec = self:_exec(rec)
  if item and out.incomplete.auto_retry then
    DLQ.auto_retry(self, did_or_err, out.incomplete.auto_retry)
  end
  return exec
end

-- ---------------------------------------------------------------------------
-- executions

local Exec = {}

-- src:_exec(rec) -> exec: the execution object of a store record, which it
-- takes over (rec becomes exec.raw; the caller no longer uses it).
function Source:_exec(rec)
  local e = {
    id = rec.id, scenario = rec.scenario_id, status = rec.status, mode = rec.mode,
    started_at = rec.started_at, stopped_at = rec.stopped_at, duration = rec.duration,
    retry_of = rec.retry_of, retry_success_id = rec.retry_success_id,
    parent_id = rec.parent_id, attempts = rec.attempts, operations = rec.operations,
    transfer = rec.transfer, dlq_id = rec.dlq_id, fingerprint = rec.fingerprint, cause = rec.cause,
  }
  if type(rec.error) == "string" then
    e.error = self._rd.json.decode(rec.error) or { message = rec.error }
  elseif type(rec.error) == "table" then
    e.error = rec.error
  end
  -- rec is the caller's to give away (a store row or the record just
  -- written): it becomes raw as it is, less its run data (read on demand by
  -- exec:run_data), instead of a copy per execution
  rec.run_data = nil
  e.raw = rec
  return setmetatable(e, self._mt.exec)
end

local function exec_src(e) return getmetatable(e).__src end

-- src:execution(id) -> exec | nil, msg, "not_found"
function Source:execution(id)
  if type(id) ~= "string" then error("bad argument #1 to 'execution' (string id expected, got " .. type(id) .. ")", 2) end
  local rec, err, code = self._st:exec_get(id)
  if not rec then return nil, err, code end
  return self:_exec(rec)
end

-- src:executions{scenario, status, mode, fingerprint, since, until, limit} -> iterator
function Source:executions(opts)
  opts = opts or {}
  U.check_table(opts, 1, "executions")
  local st = self._st
  local filter = {
    scenario = opts.scenario and U.scenario_id(opts.scenario, "executions") or nil,
    status = opts.status, mode = opts.mode, since = opts.since, ["until"] = opts["until"],
    fingerprint = C.fingerprint_arg(opts.fingerprint, "executions"),
  }
  return C.keyset_iter {
    fetch = function(after, limit)
      filter.after, filter.limit = after, limit
      return st:exec_list(filter)
    end,
    limit = opts.limit, map = function(rec) return self:_exec(rec) end,
  }
end

-- exec:run_data() -> {[module_id] = {input, output, error, duration, operations}}
-- Durations are milliseconds, as every duration on every source. The engine
-- measures a module in seconds and the store keeps its run data as the
-- engine gave it (stores written before keep seconds too), so the one
-- conversion is here, where run data leaves the source.
function Exec:run_data()
  local src = exec_src(self)
  local rec, err, code = src._st:exec_get(self.id)
  if not rec then return nil, err, code end
  local rdata = rec.run_data and src._rd.json.decode(rec.run_data) or {}
  rdata[U.INPUT_KEY] = nil
  for _, m in pairs(rdata) do
    if type(m) == "table" and type(m.duration) == "number" then m.duration = math.floor(m.duration * 1000 + 0.5) end
  end
  return rdata
end

-- exec:input() -> the input bundle the execution was run with (nil for a
-- resumed retry of an incomplete execution, which started mid-flow).
function Exec:input()
  local src = exec_src(self)
  local rec = src._st:exec_get(self.id)
  local rdata = rec and rec.run_data and src._rd.json.decode(rec.run_data)
  return rdata and rdata[U.INPUT_KEY]
end

-- exec:refresh() -> exec (fresh copy from the store)
function Exec:refresh()
  return exec_src(self):execution(self.id)
end

-- exec:delete() -> true | nil, msg, code
function Exec:delete()
  local src = exec_src(self)
  return G.mutate(src, {
    action = "delete_execution", id = self.id,
    dry = function()
      local rec, err, code = src._st:exec_get(self.id)
      if not rec then return nil, err, code end
      return { id = self.id, scenario = rec.scenario_id }, "would delete execution " .. self.id
    end,
  }, src._st.exec_delete, src._st, self.id)
end

-- exec:wait{timeout} -> exec | nil, msg, "timeout"
-- Local runs are recorded when they end, so a recorded execution is usually
-- finished; one still "running" (another process) is polled with backoff.
function Exec:wait(opts)
  opts = opts or {}
  local src = exec_src(self)
  local cur, err, code = src:execution(self.id)
  if not cur then return nil, err, code end
  -- the store is local: poll it briskly (20 ms, doubling up to 1 s)
  return C.wait(src._rd, cur, { timeout = opts.timeout, interval = opts.interval or 0.02,
                                max_interval = opts.max_interval or 1 },
    function(id) return src:execution(id) end)
end

-- The root of an execution's retry chain (following parent_id up).
local function chain_root(st, rec)
  local hops = 0
  while rec.parent_id and hops < 100 do
    local up = st:exec_get(rec.parent_id)
    if not up then break end
    rec, hops = up, hops + 1
  end
  return rec
end

-- The input of an execution: its own, else its root's (a resumed retry of an
-- incomplete execution has none of its own).
local function exec_input(src, rec)
  local seen = 0
  while rec and seen < 100 do
    local rdata = rec.run_data and src._rd.json.decode(rec.run_data)
    if rdata and rdata[U.INPUT_KEY] ~= nil then return rdata[U.INPUT_KEY], true end
    local up = rec.parent_id or rec.retry_of
    if not up then break end
    rec = src._st:exec_get(up)
    seen = seen + 1
  end
  return nil, false
end

-- One retry of an execution record: a new execution of its scenario with the
-- same input (local_retry.lua). A safe retry judges the whole chain: refused
-- when the execution, or any execution of its chain, was retried successfully
-- (the root points at the chain's successful retry).
-- Returns exec, success | nil, msg, code.
local function retry_once(src, rec, opts)
  local rd, st = src._rd, src._st
  local safe = opts.safe ~= false
  local root = chain_root(st, rec)
  local refusal = C.refusal(rec)
  if not refusal and root.retry_success_id then
    -- every successful retry links the chain's root to itself (local_retry)
    refusal = C.chain_refusal({ root, st:exec_get(root.retry_success_id) }, rec)
  end
  if refusal and safe then return nil, refusal, "conflict" end
  local sc, err, code = st:scenario_get(rec.scenario_id)
  if not sc then return nil, "execution " .. rec.id .. ": " .. tostring(err), code end
  local input = exec_input(src, rec)
  local attempt = (rec.attempts or 1) + 1
  return G.mutate(src, {
    action = "retry_execution", id = rec.id,
    dry = { id = rec.id, scenario = sc.id, forced = refusal ~= nil, attempt = attempt },
    line = string.format("would retry execution %s (scenario %d %q, attempt %d)%s", rec.id, sc.id, sc.name,
      attempt, refusal and " (forced: " .. refusal .. ")" or ""),
  }, function()
    if refusal then
      U.log(rd, "forced retry (safe = false) of execution %s: %s", rec.id,
        (refusal:gsub("[;:] [^;:]*safe = false.*$", "")))
    end
    local res, rerr, rcode = Retry.retry_exec(src, rec, sc, {
      input = input, root = root.id, attempt = attempt, forced = refusal ~= nil,
    })
    if not res then return nil, rerr, rcode end
    return res.execution, res.success
  end)
end

-- exec:retry{safe = true, attempts = n, backoff = {base, factor, max}} -> exec
-- Without attempts: one retry. With attempts: retry, wait, and retry again
-- while it fails, until the chain counts `attempts` attempts in all (the
-- execution being retried is attempt 1), sleeping base * factor^(i-1)
-- seconds (capped at max, with jitter) between attempts. Every attempt is
-- its own recorded execution, linked by retry_of / parent_id. Returns the
-- last execution.
function Exec:retry(opts)
  opts = opts or {}
  U.check_table(opts, 1, "retry")
  local src = exec_src(self)
  local rd, st = src._rd, src._st
  local rec, err, code = st:exec_get(self.id)
  if not rec then return nil, err, code end
  if opts.attempts == nil then
    local e, err2, code2 = retry_once(src, rec, opts)
    if not e then return nil, err2, code2 end
    return e
  end
  -- later attempts retry the last one, safely (they follow the chain)
  return C.retry_attempts(rd, self, opts, function(cur, o)
    local r, rerr, rcode = st:exec_get(cur.id)
    if not r then return nil, rerr, rcode end
    return retry_once(src, r, o)
  end, function(new, w) return new:wait(w) end)
end

-- exec:chain() -> {exec...}: the original execution, then each retry in order
function Exec:chain()
  local src = exec_src(self)
  local st = src._st
  local rec, err, code = st:exec_get(self.id)
  if not rec then return nil, err, code end
  local hops = 0
  while (rec.parent_id or rec.retry_of) and hops < 1000 do
    local up = st:exec_get(rec.parent_id or rec.retry_of)
    if not up then break end
    rec = up
    hops = hops + 1
  end
  local root = rec
  local chain, members = { src:_exec(root) }, { [root.id] = true }
  -- Retries are created after the root: scan the root's scenario from it on.
  local after = root.id
  while true do
    local page = st:exec_list { scenario = root.scenario_id, after = after, limit = 1000 }
    if not page or #page == 0 then break end
    for _, r in ipairs(page) do
      if r.parent_id == root.id or (r.retry_of and members[r.retry_of]) then
        members[r.id] = true
        chain[#chain + 1] = src:_exec(r)
      end
    end
    if #page < 1000 then break end
    after = page[#page].id
  end
  return chain
end

-- ---------------------------------------------------------------------------
-- health

-- src:health{scenario, since, limit} -> {total, finished, succeeded, failed,
-- running, success_rate, avg_duration, p95_duration, top_reasons}
-- Computed by the store in SQL over every matching execution (durations in
-- milliseconds); `limit` is how many top reasons to return (default 5, at
-- most 20): nothing is sampled.
function Source:health(opts)
  opts = opts or {}
  U.check_table(opts, 1, "health")
  local h, err, code = self._st:health {
    scenario = opts.scenario and U.scenario_id(opts.scenario, "health") or nil,
    since = opts.since, limit = opts.limit or opts.top,
  }
  if not h then return nil, err, code end
  local top = C.list()
  for i, e in ipairs(h.top_reasons or {}) do top[i] = C.reason_entry(e) end
  h.top_reasons = top
  return h
end

-- ---------------------------------------------------------------------------

function Source:close()
  if self._st then self._st:close() end
end

function Source:path() return self._st:path() end

-- A fresh lease owner for one retry operation: the per-process id plus a
-- sequence number, so two bulk retries in one process never share a claim.
function Source:_owner()
  self._seq = self._seq + 1
  return self._pid .. "/" .. self._seq
end

Source.__close = Source.close
-- the store as shown: a file, or a URL without its password (redact.c)
Source.__tostring = function(s)
  local ok, p = pcall(s.path, s)
  return "redrive source local (" .. (ok and p or "closed") .. ")"
end

function M.new(rd, opts)
  local core = require "redrive.core"
  if not core.store_open then
    return nil, "this build of redrive has no local store (built without SQLite support)", "unsupported"
  end
  local path = opts.db or opts.path -- rd.connect chose it (lua/redrive/sources.lua)
  if path ~= nil and type(path) ~= "string" then
    error("bad argument #1 to 'connect' (db must be a path or postgresql:// URL string)", 3)
  end
  -- a PostgreSQL password: named by password_env (never written in a
  -- config), or libpq's own ways (the URL, PGPASSFILE, a service file)
  local password
  if opts.password_env ~= nil then
    if type(opts.password_env) ~= "string" then
      error("bad argument #1 to 'connect' (password_env must name an environment variable)", 3)
    end
    password = os.getenv(opts.password_env)
    if not password or password == "" then
      return nil, "local: password_env names " .. opts.password_env .. ", which is not set", "invalid"
    end
  end
  local ttl, terr = require("redrive.opts").number(opts.lease_ttl or os.getenv("REDRIVE_LEASE_TTL"),
    "lease_ttl", "timeout", 120)
  if not ttl then return nil, "local: " .. terr, "invalid" end
  local st, err, code = core.store_open(path, password and { password = password } or nil)
  if not st then return nil, err, code end
  local src = setmetatable({
    kind = "local", name = opts.profile or "local",
    _rd = rd, _st = st, _pid = U.process_id(), _seq = 0,
    _ttl = ttl,
  }, Source)
  src._mt = {
    exec = { __index = Exec, __src = src, __name = "redrive.Execution" },
    scenario = { __index = Scenario, __src = src, __name = "redrive.Scenario" },
  }
  DLQ.install(src, Source)
  return src
end

M.Source, M.Exec, M.Scenario = Source, Exec, Scenario
return M

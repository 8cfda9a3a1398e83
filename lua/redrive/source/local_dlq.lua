-- The DLQ half of the local source: incomplete executions (items), their
-- blueprint snapshot, bundle and logs, patch, retry one / many, delete.
--
-- Every retry goes through local_retry.lua: a lease (st:claim) held by a
-- per-operation owner, then st:retry_done, which records the new execution
-- and its log, resolves the item on success, links the executions retried
-- and releases the lease, all in one transaction: an item is never retried
-- by two processes at once, and a crash leaves it pending (the lease expires).
local U = require "redrive.source.local_util"
local C = require "redrive.source.common"
local Retry = require "redrive.source.local_retry"
local G = require "redrive.mutation" -- every mutating call goes through G.mutate
local Job = require "redrive.source.local_job"

local D = {}
local Item = {}

local function item_src(it) return getmetatable(it).__src end

-- The store's `retry` flag stays under .raw: as a field it would hide the
-- item:retry() method.
local function item_obj(src, rec)
  local it = {
    id = rec.id, scenario = rec.scenario_id, scenario_name = rec.scenario_name,
    reason = rec.reason, created = rec.created, size = rec.size,
    resolved = rec.resolved, attempts = rec.attempts,
    execution_id = rec.execution_id, index = rec.failer, failer = rec.failer,
    lease_owner = rec.lease_owner, lease_expiry = rec.lease_expiry,
    fingerprint = rec.fingerprint, cause = rec.cause,
  }
  local raw = {}
  for k, v in pairs(rec) do if k ~= "blueprint" and k ~= "state" then raw[k] = v end end
  it.raw = raw
  return setmetatable(it, src._mt.item)
end

local leased, lease_msg, resolved_msg = Retry.leased, Retry.lease_msg, Retry.resolved_msg

-- ---------------------------------------------------------------------------
-- listing

-- src:incomplete{scenario, resolved = false, reason, fingerprint, since, until, limit} -> iterator
-- `reason` is a Lua pattern matched against the item's reason; `resolved`
-- as on every source (common.resolved_opt): pending items unless asked;
-- `fingerprint` selects one failure group (in SQL, on its index).
local function incomplete(src, opts)
  opts = opts or {}
  U.check_table(opts, 1, "incomplete")
  local st = src._st
  local pat = C.pattern(opts.reason, "incomplete")
  local fp = C.fingerprint_arg(opts.fingerprint, "incomplete")
  local resolved = C.resolved_opt(opts.resolved, "incomplete")
  local filter = {
    scenario = opts.scenario and U.scenario_id(opts.scenario, "incomplete") or nil,
    resolved = resolved, since = opts.since, ["until"] = opts["until"], fingerprint = fp,
  }
  return C.keyset_iter {
    fetch = function(after, n)
      filter.after, filter.limit = after, n
      return st:dlq_list(filter)
    end,
    limit = opts.limit, map = function(rec) return item_obj(src, rec) end,
    filter = pat and function(rec) return rec.reason ~= nil and pat(rec.reason) end or nil,
  }
end

local function incomplete_item(src, id)
  if type(id) ~= "string" then error("bad argument #1 to 'incomplete_item' (string id expected, got " .. type(id) .. ")", 2) end
  local rec, err, code = src._st:dlq_get(id)
  if not rec then return nil, err, code end
  return item_obj(src, rec)
end

-- ---------------------------------------------------------------------------
-- item reads

function Item:refresh()
  return incomplete_item(item_src(self), self.id)
end

-- item:blueprint() -> bp: the blueprint snapshot stored with the item (as
-- patched, if it was)
function Item:blueprint()
  local src = item_src(self)
  local rec, err, code = src._st:dlq_get(self.id)
  if not rec then return nil, err, code end
  return U.blueprint_of(src._rd, rec.blueprint)
end

-- item:state() -> the resume state stored with the item (decoded)
function Item:state()
  local src = item_src(self)
  local rec, err, code = src._st:dlq_get(self.id)
  if not rec then return nil, err, code end
  return rec.state and src._rd.json.decode(rec.state) or nil
end

-- item:bundle() -> the input bundle of the failed module
function Item:bundle()
  local src = item_src(self)
  local rd, st = src._rd, src._st
  local rec, err, code = st:dlq_get(self.id)
  if not rec then return nil, err, code end
  local state = rec.state and rd.json.decode(rec.state)
  -- The engine's state keeps the failer's input (unless the failer was
  -- patched to another module since).
  if type(state) == "table" and (state.failer == nil or state.failer == rec.failer) then
    local b = state.failer_input
    if b == nil then b = state.bundle end
    if b ~= nil then return b end
  end
  -- Else from the failed execution's run data.
  if rec.execution_id then
    local e = st:exec_get(rec.execution_id)
    local rdata = e and e.run_data and rd.json.decode(e.run_data)
    local m = rdata and rdata[tostring(rec.failer)]
    if type(m) == "table" and m.input ~= nil then return m.input end
  end
  return nil, "incomplete execution " .. self.id .. " has no stored bundle for module " .. tostring(rec.failer), "not_found"
end

-- item:execution() -> the execution that failed
function Item:execution()
  local src = item_src(self)
  if not self.execution_id then return nil, "incomplete execution " .. self.id .. " has no execution", "not_found" end
  return src:execution(self.execution_id)
end

-- item:logs{status, from, to, limit} -> iterator of retry logs
function Item:logs(opts)
  opts = opts or {}
  U.check_table(opts, 1, "logs")
  local st = item_src(self)._st
  local id = self.id
  if opts.status ~= nil and opts.status ~= 1 and opts.status ~= 2 and opts.status ~= 3 then
    error("bad argument #1 to 'logs' (status must be 1 success, 2 warning or 3 error)", 2)
  end
  local filter = { status = opts.status, from = opts.from, to = opts.to }
  local function map(l)
    return {
      id = l.id, dlq_id = l.dlq_id, status = l.status, duration = l.duration,
      operations = l.operations, transfer = l.transfer, timestamp = l.timestamp,
      execution_id = l.execution_id, forced = l.forced, raw = l,
    }
  end
  return C.keyset_iter {
    fetch = function(after, n)
      filter.after, filter.limit = after, n
      return st:dlq_logs(id, filter)
    end,
    limit = opts.limit, map = map,
  }
end

-- ---------------------------------------------------------------------------
-- patch

-- item:patch{blueprint = bp, failer = module_id} -> item | nil, msg, code
-- The blueprint is validated; failer must name a module of the (new)
-- blueprint. Refused ("conflict") while the item is being retried.
function Item:patch(opts)
  U.check_table(opts, 1, "patch")
  local src = item_src(self)
  local rd, st = src._rd, src._st
  if opts.blueprint == nil and opts.failer == nil then
    error("bad argument #1 to 'patch' (blueprint and/or failer expected)", 2)
  end
  local failer = opts.failer
  if failer ~= nil then
    failer = math.tointeger(tonumber(failer))
    if not failer or failer < 1 then error("bad argument #1 to 'patch' (failer must be a module id)", 2) end
  end
  local cur, err, code = st:dlq_get(self.id)
  if not cur then return nil, err, code end
  local bp, text
  if opts.blueprint ~= nil then
    bp, text, code = U.validated(rd, opts.blueprint)
    if not bp then return nil, text, code end
  end
  if failer then
    local check = bp or U.blueprint_of(rd, cur.blueprint)
    if check and check:module(failer) == nil then
      return nil, string.format("failer: module %d is not in the blueprint", failer), "invalid"
    end
  end
  if leased(rd, cur) then return nil, lease_msg(cur) .. ": patch it when the retry is over", "conflict" end
  return G.mutate(src, {
    action = "patch", id = self.id,
    dry = function()
      local details = { id = self.id, failer = failer }
      if bp then
        local old = U.blueprint_of(rd, cur.blueprint)
        details.diff = old and old:diff(bp) or nil
      end
      return details, string.format("would patch incomplete execution %s%s%s", self.id,
        details.diff and string.format(" (%d blueprint change(s))", #details.diff) or "",
        failer and string.format(" (failer %d)", failer) or "")
    end,
  }, function()
    local ok, perr, pcode = st:dlq_patch(self.id, { blueprint = text, failer = failer })
    if not ok then return nil, perr, pcode end
    return incomplete_item(src, self.id)
  end)
end

-- ---------------------------------------------------------------------------
-- retry

-- item:retry{safe = true} -> {status, execution} | nil, msg, code
-- Resumes from the failed (or patched) module with the stored blueprint and
-- state: modules before it are not run again.
function Item:retry(opts)
  opts = opts or {}
  U.check_table(opts, 1, "retry")
  local src = item_src(self)
  local rd, st = src._rd, src._st
  local safe = opts.safe ~= false
  local cur, err, code = st:dlq_get(self.id)
  if not cur then return nil, err, code end
  if leased(rd, cur) then return nil, lease_msg(cur), "conflict" end
  if cur.resolved and safe then return nil, resolved_msg(cur) .. "; pass safe = false to retry anyway", "conflict" end
  return G.mutate(src, {
    action = "retry", id = cur.id,
    dry = { id = cur.id, scenario = cur.scenario_id, failer = cur.failer, forced = cur.resolved or nil,
            status = "dry_run" },
    line = string.format("would retry incomplete execution %s (scenario %d %q) from module %s%s", cur.id,
      cur.scenario_id, tostring(cur.scenario_name), tostring(cur.failer), cur.resolved and " (forced)" or ""),
  }, Retry.retry_item, src, cur)
end

-- item:delete() -> true | nil, msg, code
function Item:delete()
  local src = item_src(self)
  local rd, st = src._rd, src._st
  return G.mutate(src, {
    action = "delete", id = self.id,
    dry = function()
      local cur, err, code = st:dlq_get(self.id)
      if not cur then return nil, err, code end
      if leased(rd, cur) then return nil, lease_msg(cur), "conflict" end
      return { id = self.id, deleted = 0, would_delete = 1, errors = C.list() }, "would delete incomplete execution " .. self.id
    end,
  }, function()
    local r, err, code = st:dlq_delete { ids = { self.id } }
    if not r then return nil, err, code end
    if r.deleted == 1 then return true end
    local e = r.errors and r.errors[1]
    return nil, "incomplete execution " .. self.id .. ": " .. (e and e.message or "not deleted"),
      e and e.code or "conflict"
  end)
end

-- ---------------------------------------------------------------------------
-- bulk delete (bulk retry: local_retry.lua)

-- src:delete_incomplete{ids | all = true, confirmed = true, except, scenario, fingerprint, job}
--   -> {deleted, errors} (job = true: a durable job, returned at once: local_job.lua)
local function delete_incomplete(src, opts)
  U.check_table(opts, 1, "delete_incomplete")
  local rd, st = src._rd, src._st
  if opts.ids == nil and not opts.all then
    return nil, "delete_incomplete needs ids = {...} or all = true", "invalid"
  end
  if opts.all and opts.confirmed ~= true then
    return nil, "refusing to delete all incomplete executions without confirmed = true", "invalid"
  end
  local except = C.set_of(opts.except, "except", "delete_incomplete")
  local scenario = opts.scenario and U.scenario_id(opts.scenario, "delete_incomplete") or nil
  local fp = C.fingerprint_arg(opts.fingerprint, "delete_incomplete")
  if opts.job ~= nil and opts.job ~= true and opts.job ~= false then
    error("bad argument #1 to 'delete_incomplete' (job must be true or false)", 2)
  end
  if opts.job and not G.dry_run(rd) then -- durable, in pages: local_job.lua
    return Job.start(src, "delete", { scenario = scenario, fingerprint = fp },
      { ids = opts.ids, all = opts.all and true or nil, except = opts.except, scenario = scenario, fingerprint = fp })
  end
  -- one store call (one transaction) deletes them all: one gate event, its
  -- count known beforehand for ids, from the answer for all = true
  local op = { action = "delete", ids = opts.ids, dry = function(o)
    local r = { deleted = 0, would_delete = 0, errors = C.list() }
    local function consider(rec)
      if except[rec.id] or (scenario and rec.scenario_id ~= scenario) or (fp and rec.fingerprint ~= fp) then return end
      if leased(rd, rec) then C.add_error(r, { id = rec.id, message = "being retried", code = "conflict" })
      else r.would_delete = r.would_delete + 1 end
    end
    if opts.ids then
      for _, id in ipairs(opts.ids) do
        local rec = st:dlq_get(id)
        if rec then consider(rec)
        elseif not except[id] then C.add_error(r, { id = id, message = "not found", code = "not_found" }) end
      end
    else
      for rec in C.keyset_iter { fetch = function(after, n)
        return st:dlq_list { scenario = scenario, fingerprint = fp, after = after, limit = n }
      end } do consider(rec) end
    end
    o.n = r.would_delete
    return r, string.format("would delete %d incomplete execution(s)%s", r.would_delete,
      #r.errors > 0 and string.format(" (%d kept: being retried or not found)", #r.errors) or "")
  end }
  return G.mutate(src, op, function()
    local r, err, code = st:dlq_delete { ids = opts.ids, all = opts.all and true or nil, except = opts.except,
                                         scenario = scenario, fingerprint = fp }
    if r then op.n = r.deleted end
    return r, err, code
  end)
end

-- ---------------------------------------------------------------------------
-- resolve: handled by hand, without a retry

-- src:resolve{ids = {...}} -> {resolved = n, errors = {{id, message, code}}}
-- Marks the items resolved (one store transaction, through the mutation
-- gate): a safe retry skips them from then on. Items being retried right
-- now and ids that do not exist are kept and listed in errors.
local function resolve(src, opts)
  U.check_table(opts, 1, "resolve")
  if type(opts.ids) ~= "table" then error("bad argument #1 to 'resolve' (ids = {...} expected)", 2) end
  C.set_of(opts.ids, "ids", "resolve")
  local rd, st = src._rd, src._st
  local op = { action = "resolve", ids = opts.ids, dry = function(o)
    local r = { resolved = 0, would_resolve = 0, errors = {} }
    for _, id in ipairs(opts.ids) do
      local rec = st:dlq_get(id)
      if not rec then C.add_error(r, { id = id, message = "not found", code = "not_found" })
      elseif leased(rd, rec) then C.add_error(r, { id = id, message = "being retried", code = "conflict" })
      elseif not rec.resolved then r.would_resolve = r.would_resolve + 1 end
    end
    o.n = r.would_resolve
    return r, string.format("would resolve %d incomplete execution(s)", r.would_resolve)
  end }
  return G.mutate(src, op, function()
    local r, err, code = st:dlq_resolve { ids = opts.ids }
    if r then op.n = r.resolved end
    return r, err, code
  end)
end

-- item:resolve() -> true | nil, msg, code
function Item:resolve()
  local src = item_src(self)
  local r, err, code = resolve(src, { ids = { self.id } })
  if not r then return nil, err, code end
  if r.dry_run then return r end
  local e = r.errors[1]
  if e then return nil, "incomplete execution " .. self.id .. ": " .. tostring(e.message), e.code end
  return true
end

-- src:groups{scenario, since, until, resolved = false, limit} -> {{fingerprint,
-- cause, count, first, last, scenarios, scenario_names, example_ids}, ...}
-- The pending items (resolved = true: the resolved ones, "any": both)
-- grouped by fingerprint, biggest first: computed by the store in SQL (GROUP
-- BY on the fingerprint index), at most `limit` groups (default 100).
local function groups(src, opts)
  opts = opts or {}
  U.check_table(opts, 1, "groups")
  local list, err, code = src._st:dlq_groups {
    scenario = opts.scenario and U.scenario_id(opts.scenario, "groups") or nil,
    resolved = C.resolved_opt(opts.resolved, "groups"), since = opts.since, ["until"] = opts["until"],
    limit = opts.limit,
  }
  if not list then return nil, err, code end
  local names = {}
  C.list(list) -- JSON arrays, even when empty
  for _, g in ipairs(list) do
    C.list(g.scenarios); C.list(g.example_ids)
    g.scenario_names = C.list()
    for i, id in ipairs(g.scenarios) do
      if names[id] == nil then
        local sc = src._st:scenario_get(id)
        names[id] = sc and sc.name or false
      end
      g.scenario_names[i] = names[id] or tostring(id)
    end
  end
  return list
end

-- ---------------------------------------------------------------------------
-- auto retry (Break handler): count attempts, interval seconds apart, on the
-- loop; the item stays in the queue if they all fail.

function D.auto_retry(src, dlq_id, spec)
  local rd = src._rd
  local count = math.tointeger(tonumber(spec.count)) or 0
  local interval = tonumber(spec.interval) or 0
  if count < 1 then return end
  local t = rd.spawn(function()
    for _ = 1, count do
      rd.sleep(interval)
      local it = incomplete_item(src, dlq_id)
      if not it or it.resolved then return end
      local ok, res = pcall(it.retry, it)
      if ok and res and res.success then return end
    end
  end)
  src._auto[#src._auto + 1] = t
end

-- src:wait_auto_retries() waits for the automatic retries started by Break
-- handlers in this process (a script that exits early would cut them short).
local function wait_auto_retries(src)
  local list = src._auto
  src._auto = {}
  for _, t in ipairs(list) do t:wait() end
  return #list
end

function D.install(src, Source)
  src._mt.item = { __index = Item, __src = src, __name = "redrive.Item" }
  src._auto = {}
  if Source.incomplete then return end
  Source.incomplete = incomplete
  Source.incomplete_item = incomplete_item
  Source.retry = Retry.bulk
  Source.delete_incomplete = delete_incomplete
  Source.resolve = resolve
  Source.groups = groups
  Source.wait_auto_retries = wait_auto_retries
  Source.jobs = Job.list
  Source.job = Job.get
  Source._work_jobs = Job.worker
end

D.Item = Item
return D

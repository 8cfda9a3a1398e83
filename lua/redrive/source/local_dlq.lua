-- The DLQ half of the local source: incomplete executions (items), their
-- blueprint snapshot, bundle and logs, patch, retry one / many, delete.
--
-- Every retry goes through a lease (st:claim) held by a per-operation owner
-- (this process's id plus a sequence number) and ends with st:retry_done,
-- which records the new execution and its log, resolves the item on success
-- and releases the lease, all in one transaction: an item is never retried by
-- two processes at once, and a crash leaves it pending (the lease expires).
local U = require "redrive.source.local_util"
local opts_num = require("redrive.opts").number

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
  }
  local raw = {}
  for k, v in pairs(rec) do if k ~= "blueprint" and k ~= "state" then raw[k] = v end end
  it.raw = raw
  return setmetatable(it, src._mt.item)
end

-- Is the item leased by someone right now?
local function leased(rd, rec)
  return rec.lease_owner ~= nil and (rec.lease_expiry == nil or rec.lease_expiry > rd.time())
end

local function lease_msg(rec)
  return string.format("incomplete execution %s is being retried (leased by %s until %s)",
    rec.id, tostring(rec.lease_owner), U.when(rec.lease_expiry))
end

local function resolved_msg(rec)
  return string.format("incomplete execution %s is resolved already (retried successfully)%s",
    rec.id, rec.execution_id and "; its execution is " .. rec.execution_id or "")
end

-- ---------------------------------------------------------------------------
-- listing

-- src:incomplete{scenario, resolved, reason, since, until, limit} -> iterator
-- `reason` is a Lua pattern matched against the item's reason.
local function incomplete(src, opts)
  opts = opts or {}
  U.check_table(opts, 1, "incomplete")
  local st = src._st
  local pat = opts.reason
  if pat ~= nil then
    if type(pat) ~= "string" then error("bad argument #1 to 'incomplete' (reason must be a Lua pattern string)", 2) end
    local ok, err = pcall(string.find, "", pat)
    if not ok then error("bad argument #1 to 'incomplete' (reason: " .. tostring(err) .. ")", 2) end
  end
  local resolved = opts.resolved
  if resolved ~= nil and type(resolved) ~= "boolean" then
    error("bad argument #1 to 'incomplete' (resolved must be a boolean)", 2)
  end
  local filter = {
    scenario = opts.scenario and U.scenario_id(opts.scenario, "incomplete") or nil,
    resolved = resolved, since = opts.since, ["until"] = opts["until"],
  }
  return U.keyset(function(after, n)
    filter.after, filter.limit = after, n
    return st:dlq_list(filter)
  end, opts.limit, function(rec) return item_obj(src, rec) end,
  pat and function(rec) return rec.reason ~= nil and rec.reason:find(pat) ~= nil end or nil)
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
  return U.keyset(function(after, n)
    filter.after, filter.limit = after, n
    return st:dlq_logs(id, filter)
  end, opts.limit, map)
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
  if rd.is_dry_run() then
    local details = { id = self.id, failer = failer }
    if bp then
      local old = U.blueprint_of(rd, cur.blueprint)
      details.diff = old and old:diff(bp) or nil
    end
    return U.dry(rd, "patch", details, string.format("would patch incomplete execution %s%s%s", self.id,
      details.diff and string.format(" (%d blueprint change(s))", #details.diff) or "",
      failer and string.format(" (failer %d)", failer) or ""))
  end
  local ok, perr, pcode = st:dlq_patch(self.id, { blueprint = text, failer = failer })
  if not ok then return nil, perr, pcode end
  return incomplete_item(src, self.id)
end

-- ---------------------------------------------------------------------------
-- retry

-- Run one claimed item (a store record with blueprint and state, leased by
-- owner) from its failer and record the outcome with st:retry_done.
-- -> {status, execution, id, success} | nil, msg, code
local function retry_claimed(src, rec, owner, forced)
  local rd, st = src._rd, src._st
  local bp, perr = rec.blueprint and U.blueprint(rd, rec.blueprint)
  local state = rec.state and rd.json.decode(rec.state) or {}
  local started = rd.time()
  local out
  if type(bp) ~= "table" then
    out = { status = "error", operations = 0, transfer = 0, duration = 0, run_data = {},
            error = { message = "stored blueprint is not JSON: " .. tostring(perr), code = "invalid" } }
  else
    out = U.run_engine(bp, {
      resume = { failer = rec.failer, state = state }, dlq = true,
      scenario = { id = rec.scenario_id, name = rec.scenario_name },
    })
  end
  local success = U.succeeded(out)
  local new = U.exec_record(rd, out, {
    scenario_id = rec.scenario_id, mode = "retry", started_at = started,
    parent_id = rec.execution_id, attempts = (rec.attempts or 0) + 2,
  })
  local eid, err, code = st:retry_done {
    dlq_id = rec.id, owner = owner, exec = new, success = success,
    log = U.log_record(rd, out, new, forced),
  }
  if not eid then return nil, err, code end
  new.id, new.retry_of, new.dlq_id = eid, rec.execution_id, rec.id
  return {
    id = rec.id, status = out.status, success = success, execution = src:_exec(new),
    error = out.error,
  }
end

-- A forced retry of a resolved item (safe = false): no lease can be taken on
-- a resolved item, so the run is recorded as an execution linked to the item
-- (retry_of, parent_id, dlq_id) without touching the item itself.
local function retry_forced_resolved(src, rec)
  local rd, st = src._rd, src._st
  U.log(rd, "forced retry of resolved incomplete execution %s", rec.id)
  local bp = U.blueprint(rd, rec.blueprint)
  local started = rd.time()
  local out = U.run_engine(bp, {
    resume = { failer = rec.failer, state = rec.state and rd.json.decode(rec.state) or {} }, dlq = true,
    scenario = { id = rec.scenario_id, name = rec.scenario_name },
  })
  local new = U.exec_record(rd, out, {
    scenario_id = rec.scenario_id, mode = "retry", started_at = started,
    retry_of = rec.execution_id, parent_id = rec.execution_id, attempts = (rec.attempts or 0) + 2,
  })
  new.dlq_id = rec.id
  local eid, err, code = st:record { exec = new }
  if not eid then return nil, err, code end
  new.id = eid
  local success = U.succeeded(out)
  return { id = rec.id, status = out.status, success = success, execution = src:_exec(new), forced = true, error = out.error }
end

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
  if rd.is_dry_run() then
    return U.dry(rd, "retry", {
      id = cur.id, scenario = cur.scenario_id, failer = cur.failer, forced = cur.resolved or nil,
      status = "dry_run",
    }, string.format("would retry incomplete execution %s (scenario %d %q) from module %s%s", cur.id,
      cur.scenario_id, tostring(cur.scenario_name), tostring(cur.failer), cur.resolved and " (forced)" or ""))
  end
  if cur.resolved then return retry_forced_resolved(src, cur) end
  local owner = src:_owner()
  local got, cerr, ccode = st:claim { ids = { self.id }, owner = owner, ttl = src._ttl }
  if not got then return nil, cerr, ccode end
  if not got[1] then
    local now = st:dlq_get(self.id)
    if not now then return nil, "incomplete execution " .. self.id .. " was deleted", "not_found" end
    if now.resolved then return nil, resolved_msg(now), "conflict" end
    return nil, lease_msg(now), "conflict"
  end
  local stop = U.renewer(rd, st, owner, src._ttl)
  local ok, res, rerr, rcode = pcall(retry_claimed, src, got[1], owner, false)
  stop()
  if not ok then st:release(owner, self.id); error(res, 0) end
  if not res then st:release(owner, self.id); return nil, rerr, rcode end
  return res
end

-- item:delete() -> true | nil, msg, code
function Item:delete()
  local src = item_src(self)
  local rd, st = src._rd, src._st
  if rd.is_dry_run() then
    local cur, err, code = st:dlq_get(self.id)
    if not cur then return nil, err, code end
    if leased(rd, cur) then return nil, lease_msg(cur), "conflict" end
    return U.dry(rd, "delete", { id = self.id, deleted = 0, would_delete = 1, errors = {} },
      "would delete incomplete execution " .. self.id)
  end
  local r, err, code = st:dlq_delete { ids = { self.id } }
  if not r then return nil, err, code end
  if r.deleted == 1 then return true end
  local e = r.errors and r.errors[1]
  local msg = e and e.message or "not deleted"
  if msg:find("not found") then return nil, "incomplete execution " .. self.id .. ": " .. msg, "not_found" end
  return nil, "incomplete execution " .. self.id .. ": " .. msg, "conflict"
end

-- ---------------------------------------------------------------------------
-- bulk

local MAX_ERRORS = 1000

local function add_error(s, e)
  if #s.errors < MAX_ERRORS then s.errors[#s.errors + 1] = e
  else s.errors_truncated = (s.errors_truncated or 0) + 1 end
end

local function set_of(list, what)
  local set = {}
  if list == nil then return set end
  if type(list) ~= "table" then error("bad argument #1 to 'retry' (" .. what .. " must be a list of ids)", 3) end
  for _, id in ipairs(list) do set[id] = true end
  return set
end

-- Dry run of a bulk retry: read what would be retried, change nothing.
local function dry_bulk(src, opts, except, safe)
  local rd, st = src._rd, src._st
  local s = { dry_run = true, action = "retry", total = 0, would_retry = 0, succeeded = 0, failed = 0, skipped = 0, errors = {} }
  local sample = {}
  local function consider(rec)
    if except[rec.id] then return end
    if opts.scenario and rec.scenario_id ~= opts.scenario then return end
    s.total = s.total + 1
    if leased(rd, rec) then
      s.skipped = s.skipped + 1
      add_error(s, { id = rec.id, message = lease_msg(rec), skipped = true })
    elseif rec.resolved and safe then
      s.skipped = s.skipped + 1
      add_error(s, { id = rec.id, message = resolved_msg(rec), skipped = true })
    else
      s.would_retry = s.would_retry + 1
      if #sample < 3 then sample[#sample + 1] = rec.id end
    end
  end
  if opts.ids then
    for _, id in ipairs(opts.ids) do
      local rec, err = st:dlq_get(id)
      if rec then consider(rec)
      elseif not except[id] then
        s.total = s.total + 1
        add_error(s, { id = id, message = tostring(err) })
      end
    end
  else
    local it = U.keyset(function(after, n)
      return st:dlq_list { scenario = opts.scenario, resolved = false, after = after, limit = n }
    end, nil, function(rec) return rec end)
    for rec in it do consider(rec) end
  end
  io.stderr:write(string.format("dry-run: would retry %d incomplete execution(s)%s%s\n", s.would_retry,
    s.skipped > 0 and string.format(", skipping %d", s.skipped) or "",
    #sample > 0 and (": " .. table.concat(sample, ", ") .. (s.would_retry > #sample and ", ..." or "")) or ""))
  return s
end

-- src:retry{ids = {...} | all = true, except = {...}, scenario, concurrency = 16,
--           progress, safe = true, lease_ttl} -> {total, succeeded, failed, skipped, errors}
local function bulk_retry(src, opts)
  U.check_table(opts, 1, "retry")
  local rd, st = src._rd, src._st
  if opts.ids == nil and not opts.all then
    return nil, "retry needs ids = {...} or all = true", "invalid"
  end
  if opts.ids ~= nil and opts.all then
    return nil, "retry takes ids or all = true, not both", "invalid"
  end
  local concurrency, ttl, nerr
  concurrency, nerr = opts_num(opts.concurrency, "concurrency", "concurrency", 16)
  if concurrency then ttl, nerr = opts_num(opts.lease_ttl, "lease_ttl", "timeout", src._ttl) end
  if not ttl then return nil, "retry: " .. nerr, "invalid" end
  local ids = opts.ids
  if ids ~= nil then set_of(ids, "ids") end
  local except = set_of(opts.except, "except")
  local scenario = opts.scenario and U.scenario_id(opts.scenario, "retry") or nil
  local safe = opts.safe ~= false
  if rd.is_dry_run() then
    return dry_bulk(src, { ids = ids, scenario = scenario }, except, safe)
  end
  local owner = src:_owner()
  local s = { total = 0, succeeded = 0, failed = 0, skipped = 0, errors = {} }

  -- progress: true / false / a function(summary) / nil = when stderr is a TTY
  local bar, on_progress
  local want = opts.progress
  if type(want) == "function" then on_progress = want
  elseif want == true or (want == nil and U.stderr_is_tty()) then
    local total
    if ids then
      total = 0
      for _, id in ipairs(ids) do if not except[id] then total = total + 1 end end
    else
      total = st:dlq_count { scenario = scenario, resolved = false }
      if total then total = math.max(0, total - (opts.except and #opts.except or 0)) end
    end
    bar = U.progress_bar(rd, total)
  end
  local function tick()
    if bar then bar.update(s) end
    if on_progress then on_progress(s) end
  end

  -- Claim in keyset batches as the workers need items: never more than one
  -- batch (plus the items in flight) is held in memory or under lease.
  local batch = math.max(8, math.min(500, concurrency * 2))
  local sel_except = opts.except
  local after, exhausted = nil, false
  local buf, bi = {}, 0
  local seen = ids and {} or nil
  local function next_item()
    bi = bi + 1
    local it = buf[bi]
    if it == nil then
      if exhausted then return nil end
      local got, err = st:claim {
        ids = ids, all = (ids == nil) or nil, except = sel_except, scenario = scenario,
        after = after, limit = batch, owner = owner, ttl = ttl,
      }
      if not got then error("claiming incomplete executions failed: " .. tostring(err), 0) end
      if #got < batch then exhausted = true end
      if #got == 0 then return nil end
      after = got[#got].id
      buf, bi = got, 1
      it = got[1]
    end
    buf[bi] = nil
    return it
  end

  local function work(rec)
    if seen then seen[rec.id] = true end
    s.total = s.total + 1
    local ok, res, err = pcall(retry_claimed, src, rec, owner, false)
    if not ok then
      st:release(owner, rec.id)
      s.failed = s.failed + 1
      add_error(s, { id = rec.id, message = tostring(res) })
    elseif not res then
      s.failed = s.failed + 1
      add_error(s, { id = rec.id, message = tostring(err) })
    elseif res.success then
      s.succeeded = s.succeeded + 1
    else
      s.failed = s.failed + 1
      add_error(s, { id = rec.id, execution_id = res.execution.id,
        message = res.error and res.error.message or ("status " .. tostring(res.status)) })
    end
    tick()
  end

  -- A pool of `concurrency` workers pulling from the claim stream. If this
  -- task is cancelled (SIGINT, task:cancel) the workers are cancelled too,
  -- what they hold is released, and the cancellation goes on to the caller.
  -- (Store calls never yield, so two workers never claim at the same time.)
  local stopped, claim_err = false, nil
  local function pull()
    if stopped then return nil end
    local ok, it = pcall(next_item)
    if not ok then claim_err = claim_err or tostring(it); stopped = true; return nil end
    return it
  end
  local function worker()
    while not stopped do
      local rec = pull()
      if rec == nil then return end
      work(rec)
    end
  end
  local stop = U.renewer(rd, st, owner, ttl)
  local workers = {}
  for w = 1, concurrency do workers[w] = rd.spawn(worker) end
  -- (no <close> here: a __close handler cannot wait for the workers)
  local ok, perr = pcall(function()
    for _, t in ipairs(workers) do
      local r, werr = t:wait()
      if r == nil and werr then add_error(s, { message = tostring(werr) }) end
    end
  end)
  stopped = true
  if not ok then
    for _, t in ipairs(workers) do t:cancel() end
    for _, t in ipairs(workers) do pcall(t.wait, t) end
  end
  pcall(stop)
  st:release(owner) -- whatever is still claimed (cancel, error) is free again
  if bar then bar.finish(s) end
  if not ok then
    io.stderr:write(string.format("redrive: bulk retry stopped (%s): %d succeeded, %d failed, %d skipped; the rest is released\n",
      tostring(perr):match("^[^\n]*"), s.succeeded, s.failed, s.skipped))
    error(perr, 0)
  end
  if claim_err then
    add_error(s, { message = claim_err })
    s.error = claim_err
  end

  -- Requested ids that were not claimed: say why.
  if ids then
    for _, id in ipairs(ids) do
      if not except[id] and not seen[id] then
        seen[id] = true
        local rec = st:dlq_get(id)
        if not rec then
          s.total = s.total + 1
          add_error(s, { id = id, message = "incomplete execution " .. id .. " not found" })
          s.failed = s.failed + 1
        elseif scenario and rec.scenario_id ~= scenario then
          -- not in the selected scenario: not part of this retry
        elseif rec.resolved and not safe then
          s.total = s.total + 1
          local r, ferr = retry_forced_resolved(src, rec)
          if r and r.success then s.succeeded = s.succeeded + 1
          else
            s.failed = s.failed + 1
            add_error(s, { id = id, message = r and (r.error and r.error.message) or tostring(ferr) })
          end
        else
          s.total = s.total + 1
          s.skipped = s.skipped + 1
          add_error(s, { id = id, skipped = true,
            message = rec.resolved and resolved_msg(rec) or leased(rd, rec) and lease_msg(rec)
              or ("incomplete execution " .. id .. " was not claimed") })
        end
        tick()
      end
    end
  end
  return s
end

-- src:delete_incomplete{ids | all = true, confirmed = true, except, scenario} -> {deleted, errors}
local function delete_incomplete(src, opts)
  U.check_table(opts, 1, "delete_incomplete")
  local rd, st = src._rd, src._st
  if opts.ids == nil and not opts.all then
    return nil, "delete_incomplete needs ids = {...} or all = true", "invalid"
  end
  if opts.all and opts.confirmed ~= true then
    return nil, "refusing to delete all incomplete executions without confirmed = true", "invalid"
  end
  local except = set_of(opts.except, "except")
  local scenario = opts.scenario and U.scenario_id(opts.scenario, "delete_incomplete") or nil
  if rd.is_dry_run() then
    local r = { dry_run = true, action = "delete", deleted = 0, would_delete = 0, errors = {} }
    local function consider(rec)
      if except[rec.id] or (scenario and rec.scenario_id ~= scenario) then return end
      if leased(rd, rec) then add_error(r, { id = rec.id, message = "being retried" })
      else r.would_delete = r.would_delete + 1 end
    end
    if opts.ids then
      for _, id in ipairs(opts.ids) do
        local rec = st:dlq_get(id)
        if rec then consider(rec) elseif not except[id] then add_error(r, { id = id, message = "not found" }) end
      end
    else
      for rec in U.keyset(function(after, n)
        return st:dlq_list { scenario = scenario, after = after, limit = n }
      end, nil, function(rec) return rec end) do consider(rec) end
    end
    io.stderr:write(string.format("dry-run: would delete %d incomplete execution(s)%s\n", r.would_delete,
      #r.errors > 0 and string.format(" (%d kept: being retried or not found)", #r.errors) or ""))
    return r
  end
  return st:dlq_delete { ids = opts.ids, all = opts.all and true or nil, except = opts.except, scenario = scenario }
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
  Source.retry = bulk_retry
  Source.delete_incomplete = delete_incomplete
  Source.wait_auto_retries = wait_auto_retries
end

D.Item = Item
return D

-- The one retry path of the local source. Every retry -- an item of a bulk
-- retry, item:retry (forced on a resolved item too), exec:retry (with its
-- pending item or without one) -- is one call of R.attempt, under one lease
-- protocol:
--
--   claim    st:claim leases the item(s) to a per-operation owner (this
--            process's id plus a sequence number, src:_owner()); a resolved
--            item only when the retry is forced (safe = false);
--   renew    a task extends the owner's leases every ttl/3 seconds while the
--            operation runs;
--   settle   st:retry_done records the retry's execution, its log, the item's
--            resolution and the links from the executions retried to it, and
--            drops the lease: one transaction, so a crash never leaves a
--            resolved item whose execution does not point at its retry;
--   release  what the owner still holds when the operation ends (an error, a
--            cancellation) is released; after a crash the lease expires.
local U = require "redrive.source.local_util"
local C = require "redrive.source.common"
local G = require "redrive.mutation" -- each item's retry goes through G.mutate
local opts_num = require("redrive.opts").number

local R = {}

-- Is the item leased by someone right now?
function R.leased(rd, rec)
  return rec.lease_owner ~= nil and (rec.lease_expiry == nil or rec.lease_expiry > rd.time())
end

function R.lease_msg(rec)
  return string.format("incomplete execution %s is being retried (leased by %s until %s)",
    rec.id, tostring(rec.lease_owner), U.when(rec.lease_expiry))
end

function R.resolved_msg(rec)
  return string.format("incomplete execution %s is resolved already (retried successfully)%s",
    rec.id, rec.execution_id and "; its execution is " .. rec.execution_id or "")
end

-- session(src, ttl, owner) -> {owner, claim(sel) -> items | nil, msg, code, close(), abandon()}
-- One owner (a new one unless given) whose leases are renewed until
-- close(), which releases what the owner still holds.
function R.session(src, ttl, owner)
  local rd, st = src._rd, src._st
  ttl = ttl or src._ttl
  owner = owner or src:_owner()
  local stop = U.renewer(rd, st, owner, ttl)
  return {
    owner = owner,
    claim = function(sel)
      sel.owner, sel.ttl = owner, ttl
      return st:claim(sel)
    end,
    close = function()
      stop()
      st:release(owner)
    end,
    -- stop renewing, release nothing (the owner's leases are another's now)
    abandon = stop,
  }
end

-- attempt(src, plan) -> {id, status, success, execution, error, forced} | nil, msg, code
-- plan = {
--   blueprint = stored JSON text, run = engine options (resume or input),
--   fields = the execution record's fields (scenario_id, mode, input,
--            retry_of, parent_id, attempts; see U.exec_record),
--   item = the claimed item record, lease = the session holding it (or nil),
--   forced = a refusal was overridden (safe = false),
--   keep = scenario record: keep a failed run without an item as a new item,
-- }
-- Runs the engine and records the outcome with one st:retry_done. A raise
-- (cancellation) goes on to the caller, whose session releases the lease.
function R.attempt(src, plan)
  local rd, st = src._rd, src._st
  local started = rd.time()
  local out
  local bp, perr = U.blueprint(rd, plan.blueprint)
  if bp == nil then
    out = U.failed_run("stored blueprint is not JSON: " .. tostring(perr), "invalid", 0)
  else
    out = U.run_engine(bp, plan.run)
  end
  local success = U.succeeded(out)
  plan.fields.started_at = started
  plan.fields.blueprint = bp
  local new = U.exec_record(rd, out, plan.fields)
  local req = { exec = new, success = success }
  if plan.item then
    req.dlq_id, req.owner = plan.item.id, plan.lease.owner
    -- a job's retry: its ledger row settles in the same transaction
    req.job_id = plan.job
    if plan.job and not success then
      req.job_error = out.error and out.error.message or ("status " .. tostring(out.status))
    end
    req.log = U.log_record(rd, out, new, plan.forced)
    new.dlq_id = plan.item.id
  elseif out.incomplete and plan.keep then
    req.dlq = U.dlq_record(rd, plan.keep, plan.keep.blueprint, out)
  end
  local eid, did, code = st:retry_done(req)
  if not eid then return nil, did, code end
  new.id = eid
  if req.dlq then new.dlq_id = did end
  return {
    id = plan.item and plan.item.id, status = out.status, success = success,
    execution = src:_exec(new), error = out.error, forced = plan.forced or nil,
  }
end

-- How to retry a claimed item: resume from its failer with its blueprint
-- snapshot and state.
function R.item_plan(src, rec, lease, forced)
  local rd = src._rd
  return {
    item = rec, lease = lease, forced = forced, blueprint = rec.blueprint,
    run = {
      resume = { failer = rec.failer, state = rec.state and rd.json.decode(rec.state) or {} },
      dlq = true, scenario = { id = rec.scenario_id, name = rec.scenario_name },
    },
    fields = {
      scenario_id = rec.scenario_id, mode = "retry", retry_of = rec.execution_id,
      parent_id = rec.execution_id, attempts = (rec.attempts or 0) + 2,
    },
  }
end

-- Why item `id` could not be claimed: nil, msg, code.
function R.unclaimed(st, id)
  local now = st:dlq_get(id)
  if not now then return nil, "incomplete execution " .. id .. " was deleted", "not_found" end
  if now.resolved then return nil, R.resolved_msg(now), "conflict" end
  return nil, R.lease_msg(now), "conflict"
end

-- with_item(src, id, forced, fn) -> fn(rec, lease) | nil, msg, code
-- Claims item `id` (a resolved one too when forced) in a session of its
-- own, calls fn with the claimed record, and closes the session whatever
-- happens.
function R.with_item(src, id, forced, fn)
  local lease = R.session(src)
  local got, err, code = lease.claim { ids = { id }, limit = 1, resolved = forced or nil }
  if not got or not got[1] then
    lease.close()
    if not got then return nil, err, code end
    return R.unclaimed(src._st, id)
  end
  local ok, res, rerr, rcode = pcall(fn, got[1], lease)
  lease.close()
  if not ok then error(res, 0) end
  return res, rerr, rcode
end

-- retry_item(src, rec) -> result | nil, msg, code: item:retry{safe} once
-- the safety checks passed (rec: the item as read; resolved = forced).
function R.retry_item(src, rec)
  if rec.resolved then U.log(src._rd, "forced retry of resolved incomplete execution %s", rec.id) end
  return R.with_item(src, rec.id, rec.resolved, function(item, lease)
    return R.attempt(src, R.item_plan(src, item, lease, item.resolved))
  end)
end

-- retry_exec(src, rec, sc, o) -> result | nil, msg, code: exec:retry once,
-- a new run of the execution's scenario with its input. The execution's
-- incomplete item, when it has one, is taken along under a lease (a forced
-- retry takes a resolved one too): a successful re-run resolves it, a failed
-- one counts as an attempt. Without an item, a failed re-run that must be
-- kept becomes a new item. o = {input, root, attempt, forced}.
function R.retry_exec(src, rec, sc, o)
  local plan = {
    blueprint = sc.blueprint, forced = o.forced,
    run = { input = o.input, dlq = sc.dlq, scenario = { id = sc.id, name = sc.name } },
    fields = {
      scenario_id = sc.id, mode = "retry", input = o.input, retry_of = rec.id,
      parent_id = o.root, attempts = o.attempt,
    },
  }
  local item = rec.dlq_id and src._st:dlq_get(rec.dlq_id)
  if item and (not item.resolved or o.forced) then
    return R.with_item(src, item.id, o.forced, function(claimed, lease)
      plan.item, plan.lease = claimed, lease
      return R.attempt(src, plan)
    end)
  end
  if not rec.dlq_id and sc.dlq then plan.keep = sc end
  return R.attempt(src, plan)
end

-- ---------------------------------------------------------------------------
-- bulk: src:retry{...}

-- Dry run of a bulk retry: read what would be retried, change nothing.
local function dry_bulk(src, opts, except, safe)
  local rd, st = src._rd, src._st
  local s = C.summary(opts)
  s.dry_run, s.action, s.would = true, "retry", 0
  local sample = {}
  local function consider(rec)
    if except[rec.id] then return end
    if opts.scenario and rec.scenario_id ~= opts.scenario then return end
    if opts.fingerprint and rec.fingerprint ~= opts.fingerprint then return end
    if R.leased(rd, rec) then
      C.outcome(s, rec.id, "skipped", { message = R.lease_msg(rec) })
    elseif rec.resolved and safe then
      C.outcome(s, rec.id, "skipped", { message = R.resolved_msg(rec) })
    else -- through the gate item by item, as a real bulk retry (observers, limits)
      local r, err, code = G.mutate(src, { action = "retry", id = rec.id, quiet = true }, function() end)
      if r then
        C.outcome(s, rec.id, "would")
        if #sample < 3 then sample[#sample + 1] = rec.id end
      else
        C.outcome(s, rec.id, "failed", { message = err, code = code })
      end
    end
  end
  if opts.ids then
    for _, id in ipairs(opts.ids) do
      local rec, err, code = st:dlq_get(id)
      if rec then consider(rec)
      elseif not except[id] then C.outcome(s, id, "failed", { message = err, code = code }) end
    end
  else
    for rec in C.keyset_iter { fetch = function(after, n)
      return st:dlq_list { scenario = opts.scenario, fingerprint = opts.fingerprint, resolved = false,
                           after = after, limit = n }
    end } do consider(rec) end
  end
  s.would_retry = s.would
  io.stderr:write(string.format("dry-run: would retry %d incomplete execution(s)%s%s\n", s.would_retry,
    s.skipped > 0 and string.format(", skipping %d", s.skipped) or "",
    #sample > 0 and (": " .. table.concat(sample, ", ") .. (s.would_retry > #sample and ", ..." or "")) or ""))
  return s
end

-- src:retry{ids = {...} | all = true, except = {...}, scenario, fingerprint,
--           concurrency = 16, progress, safe = true, lease_ttl, job} -> summary (common.summary):
-- (job = true: a durable job instead, returned at once: local_job.lua)
-- {total, succeeded, failed, skipped, not_attempted, errors, results}
-- One lease session for the whole operation; items are claimed in keyset
-- batches as the workers need them (explicit ids that are resolved too, when
-- safe = false) and each goes through R.attempt. Interrupted (SIGINT,
-- task:cancel), it returns its summary with interrupted = true: what was
-- recorded counts as such, the rest as not_attempted, pending and unleased.
function R.bulk(src, opts)
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
  if ids ~= nil then C.set_of(ids, "ids", "retry") end
  local except = C.set_of(opts.except, "except", "retry")
  local scenario = opts.scenario and U.scenario_id(opts.scenario, "retry") or nil
  local fp = C.fingerprint_arg(opts.fingerprint, "retry")
  local safe = opts.safe ~= false
  if opts.job ~= nil and opts.job ~= true and opts.job ~= false then
    error("bad argument #1 to 'retry' (job must be true or false)", 2)
  end
  if G.dry_run(rd) then
    return dry_bulk(src, { ids = ids, scenario = scenario, fingerprint = fp, on_result = opts.on_result }, except,
      safe)
  end
  if opts.job then -- durable: returns at once with the job (local_job.lua)
    return require("redrive.source.local_job").start(src, "retry",
      { concurrency = concurrency, lease_ttl = ttl, safe = safe, scenario = scenario, fingerprint = fp },
      { ids = ids, all = (ids == nil) or nil, except = opts.except, scenario = scenario, fingerprint = fp })
  end
  local s = C.summary(opts)

  -- progress: true / false / a function(summary) / nil = when stderr is a TTY
  local total
  if opts.progress == true or (opts.progress == nil and U.stderr_is_tty()) then
    if ids then
      total = 0
      for _, id in ipairs(ids) do if not except[id] then total = total + 1 end end
    else
      total = st:dlq_count { scenario = scenario, fingerprint = fp, resolved = false }
      if total then total = math.max(0, total - (opts.except and #opts.except or 0)) end
    end
  end
  local bar = C.progress(rd, opts.progress, total, "retrying")

  local lease = R.session(src, ttl)
  -- Claim in keyset batches as the workers need items: never more than one
  -- batch (plus the items in flight) is held in memory or under lease.
  local batch = math.max(8, math.min(500, concurrency * 2))
  local after, exhausted = nil, false
  local buf, bi, bn = {}, 0, 0
  local seen = ids and {} or nil
  local function next_item()
    bi = bi + 1
    local it = buf[bi]
    if it == nil then
      if exhausted or s.error then return nil end
      local got, err = lease.claim {
        ids = ids, all = (ids == nil) or nil, except = opts.except, scenario = scenario, fingerprint = fp,
        after = after, limit = batch, resolved = (ids ~= nil and not safe) or nil,
      }
      if not got then -- the retry stops here; what was claimed so far is done
        s.error = "claiming incomplete executions failed: " .. tostring(err)
        C.add_error(s, { message = s.error })
        return nil
      end
      if #got < batch then exhausted = true end
      if #got == 0 then return nil end
      after = got[#got].id
      buf, bi, bn = got, 1, #got
      it = got[1]
    end
    buf[bi] = nil
    if seen then seen[it.id] = true end
    return it
  end

  local function act(rec, id)
    local res, err, code = G.mutate(src, { action = "retry", id = id, quiet = true },
      R.attempt, src, R.item_plan(src, rec, lease, rec.resolved))
    if not res then
      C.outcome(s, id, "failed", { message = err, code = code })
    elseif res.success then
      C.outcome(s, id, "succeeded", { execution = res.execution.id })
    else
      C.outcome(s, id, "failed", { execution = res.execution.id,
        message = res.error and res.error.message or ("status " .. tostring(res.status)) })
    end
    if bar then bar.update(s) end
  end

  -- An item in flight when the retry was interrupted: its attempt counts if
  -- it reached the store (its log is there), else it is not_attempted.
  local function settle(rec, id)
    local now = st:dlq_get(id)
    if not now or (now.attempts or 0) <= (rec.attempts or 0) then return false end
    local last
    for l in C.keyset_iter { fetch = function(a, n) return st:dlq_logs(id, { after = a, limit = n }) end } do
      last = l
    end
    C.outcome(s, id, last and last.status ~= 3 and "succeeded" or "failed",
      { execution = last and last.execution_id })
    return true
  end

  local interrupted = C.drive(rd, s, { targets = next_item, id = function(rec) return rec.id end,
    act = act, settle = settle, concurrency = concurrency, counts_rest = true })
  lease.close() -- whatever is still claimed (interrupted, failed) is free again
  if bar then bar.finish(s) end

  if interrupted then
    -- claimed but never handed out, then what was never claimed
    for k = bi + 1, bn do
      if seen then seen[buf[k].id] = true end
      C.outcome(s, buf[k].id, "not_attempted")
    end
    if ids then
      for _, id in ipairs(ids) do
        if not except[id] and not seen[id] then seen[id] = true; C.not_attempted(s, 1) end
      end
    elseif not exhausted then
      local n = st:dlq_count { scenario = scenario, fingerprint = fp, resolved = false, after = after } or 0
      for id in pairs(except) do
        local rec = (after == nil or id > after) and st:dlq_get(id)
        if rec and not rec.resolved and (not scenario or rec.scenario_id == scenario)
          and (not fp or rec.fingerprint == fp) then n = n - 1 end
      end
      C.not_attempted(s, math.max(0, n))
    end
    return s
  end

  -- Requested ids that were not claimed: say why.
  if ids then
    for _, id in ipairs(ids) do
      if not except[id] and not seen[id] then
        seen[id] = true
        local rec = st:dlq_get(id)
        if not rec then
          C.outcome(s, id, "failed", { message = "incomplete execution " .. id .. " not found", code = "not_found" })
        elseif (scenario and rec.scenario_id ~= scenario) or (fp and rec.fingerprint ~= fp) then
          -- not in the selected scenario / group: not part of this retry
        else
          C.outcome(s, id, "skipped", {
            message = rec.resolved and R.resolved_msg(rec) or R.leased(rd, rec) and R.lease_msg(rec)
              or ("incomplete execution " .. id .. " was not claimed") })
        end
        if bar then bar.update(s) end
      end
    end
  end
  return s
end

return R

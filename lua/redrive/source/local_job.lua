-- Durable bulk jobs of the local source: src:retry{..., job = true} and
-- src:delete_incomplete{..., job = true} return at once with a job whose
-- ledger (one row per item) lives in the store, so the job outlives the
-- process that started it: another process (`redrive jobs resume ID`,
-- `redrive worker`) takes it over where the ledger says.
--
-- The protocol (the store's side: include/redrive.h, "bulk jobs"):
--   create   the job and its ledger in one transaction: the ids asked for,
--            or the pending items of the selection as they are then;
--   take     the runner holds a lease on the job (renewed every ttl/3 with
--            its item leases); a take-over of a job whose runner died
--            settles the rows it left started as failed, code "in_doubt";
--   each     item: claimed under the one lease protocol of local_retry.lua
--            (the lease owner is the job's: "job:ID", whichever process runs
--            it), marked started (durable) before it is acted on -- only a
--            pending row can be, so one runner acts on an item --, then retried
--            through R.attempt, whose st:retry_done settles the ledger row
--            in the transaction that records the retry -- so an item is
--            never retried twice, by this job or any other process;
--   end      done when no row is left pending; job:cancel() settles the
--            pending rows as not_attempted and the runner stops.
local U = require "redrive.source.local_util"
local C = require "redrive.source.common"
local G = require "redrive.mutation"
local R = require "redrive.source.local_retry"

local J = {}

local Job = {}
Job.__index = Job
Job.__name = "redrive.Job"

-- job object for id (a task of this process may be running it)
function J.object(src, id, task)
  return setmetatable({ id = id, _src = src, _task = task }, Job)
end

Job.__tostring = function(j) return "redrive job " .. j.id end

local function status_of(j)
  return {
    id = j.id, kind = j.kind, state = j.state, total = j.total,
    done = j.total - j.pending - j.started, pending = j.pending, running = j.started,
    succeeded = j.succeeded, failed = j.failed, skipped = j.skipped, not_attempted = j.not_attempted,
    created = j.created, started_at = j.started_at, updated_at = j.updated_at,
    finished_at = j.finished_at, owner = j.owner,
  }
end

-- job:status() -> {state, total, done, succeeded, failed, skipped,
-- not_attempted, started_at, updated_at, ...} | nil, msg, code
function Job:status()
  local j, err, code = self._src._st:job_get(self.id)
  if not j then return nil, err, code end
  return status_of(j)
end

-- job:results{outcome, after, limit} -> {{id, outcome, execution, error,
-- code}...}: the ledger in item id order; without limit, all of it.
function Job:results(o)
  o = o or {}
  U.check_table(o, 1, "results")
  local st = self._src._st
  local function row(r)
    return { id = r.item_id, outcome = r.outcome, execution = r.execution_id, error = r.error, code = r.code }
  end
  local out = C.list()
  if o.limit then
    local rows, err, code = st:job_items(self.id, { outcome = o.outcome, after = o.after, limit = o.limit })
    if not rows then return nil, err, code end
    for _, r in ipairs(rows) do out[#out + 1] = row(r) end
    return out
  end
  local after, err, code = o.after, nil, nil
  repeat
    local rows
    rows, err, code = st:job_items(self.id, { outcome = o.outcome, after = after, limit = 1000 })
    if not rows then return nil, err, code end
    for _, r in ipairs(rows) do out[#out + 1] = row(r) end
    after = rows[#rows] and rows[#rows].item_id
  until #rows < 1000
  return out
end

-- job:cancel() -> true | nil, msg, code ("conflict": not running)
function Job:cancel()
  local ok, err, code = self._src._st:job_own(self.id, "cancel")
  if ok == nil then return nil, err, code end
  if not ok then return nil, "job " .. self.id .. " is not running", "conflict" end
  return true
end

-- job:wait{timeout} -> status once the job has ended (done or canceled), or
-- once this process's runner stopped (interrupted: the job stays running
-- for another); nil, msg, "timeout". A job run elsewhere is followed by
-- reading its status every `poll` seconds (default 0.5).
function Job:wait(o)
  o = o or {}
  U.check_table(o, 1, "wait")
  local rd = self._src._rd
  if self._task then
    local ok, err = pcall(self._task.wait, self._task)
    if not ok and rd.is_canceled(err) then error(err, 0) end
    return self:status()
  end
  local deadline = o.timeout and rd.time() + o.timeout
  while true do
    local s, err, code = self:status()
    if not s then return nil, err, code end
    if s.state ~= "running" then return s end
    if deadline and rd.time() >= deadline then
      return nil, "job " .. self.id .. " still running after " .. o.timeout .. " s", "timeout"
    end
    rd.sleep(o.poll or 0.5)
  end
end

-- job:resume{on_wait} -> status: run it in this task from where its ledger
-- says. A runner that holds it (alive, or dead: nobody can tell) is waited
-- for until its lease expires; on_wait(job record) is told first.
function Job:resume(o)
  o = o or {}
  U.check_table(o, 1, "resume")
  return J.run(self._src, self.id, { wait = true, on_wait = o.on_wait })
end

-- ---------------------------------------------------------------------------
-- running

-- The ledger's word for a failure to act on an item.
local function settle(st, id, item, outcome, msg, code)
  local n, err = st:job_mark(id, { item }, { outcome = outcome, error = msg and tostring(msg), code = code })
  if not n then error("job " .. id .. ": cannot record in its ledger: " .. tostring(err), 0) end
end

-- Pending ledger rows in pages (keyset, this run's order), until none is
-- left or the job is no longer running (canceled).
local function pages(st, id, batch)
  local after
  return function()
    local j, err = st:job_get(id)
    if not j then error("job " .. id .. ": " .. tostring(err), 0) end
    if j.state ~= "running" then return nil end
    local rows
    rows, err = st:job_items(id, { outcome = "pending", after = after, limit = batch })
    if not rows then error("job " .. id .. ": " .. tostring(err), 0) end
    if #rows == 0 then return nil end
    after = rows[#rows].item_id
    local ids = {}
    for i, r in ipairs(rows) do ids[i] = r.item_id end
    return ids
  end
end

-- How many more passes over the pending rows a runner makes for items
-- leased under its job's name that it could not claim yet (another runner
-- of the job held them a moment: one presumed dead, still running).
local RETRY_PASSES = 20

local function run_retry(src, id, p, lease, lost)
  local rd, st = src._rd, src._st
  local concurrency = p.concurrency or 16
  local batch = math.max(8, math.min(500, concurrency * 2))
  local next_page = pages(st, id, batch)
  local buf, bi = {}, 0
  local deferred, passes = 0, 0
  -- the next claimed item; rows that cannot be claimed are settled here,
  -- except ours for a moment, which a later pass takes
  local function next_item()
    while true do
      if lost() then return nil end -- another runner has the job now
      bi = bi + 1
      if buf[bi] then
        local it = buf[bi]
        buf[bi] = nil
        return it
      end
      local ids = next_page()
      if not ids and deferred > 0 and passes < RETRY_PASSES then
        deferred, passes = 0, passes + 1
        rd.sleep(0.05 * passes)
        next_page = pages(st, id, batch)
        ids = next_page()
      end
      if not ids then return nil end
      local got, err = lease.claim { ids = ids, limit = #ids, resolved = (p.safe == false) or nil }
      if not got then error("job " .. id .. ": claiming failed: " .. tostring(err), 0) end
      local claimed = {}
      for _, rec in ipairs(got) do claimed[rec.id] = rec end
      buf, bi = {}, 0
      for _, item in ipairs(ids) do
        local now = not claimed[item] and st:dlq_get(item)
        if claimed[item] then
          buf[#buf + 1] = claimed[item]
        elseif now and not now.resolved and now.lease_owner == lease.owner and passes < RETRY_PASSES then
          deferred = deferred + 1 -- held by another runner of this job right now: later
        else -- gone, resolved already, or being retried by someone else
          local _, msg, code = R.unclaimed(st, item)
          settle(st, id, item, code == "not_found" and "failed" or "skipped", msg, code)
        end
      end
    end
  end
  local function act(rec)
    if lost() then return end -- not ours to start any more
    -- durable before the item is acted on: a take-over finds it started
    local n, err = st:job_mark(id, { rec.id }, { outcome = "started" })
    if not n then error("job " .. id .. ": cannot record in its ledger: " .. tostring(err), 0) end
    if n == 0 then return end -- canceled meanwhile: not acted on
    local plan = R.item_plan(src, rec, lease, rec.resolved)
    plan.job = id
    local ok, res, rerr, code = pcall(G.mutate, src, { action = "retry", id = rec.id, quiet = true },
      R.attempt, src, plan)
    if not ok then
      if rd.is_canceled(res) then error(res, 0) end -- stays started: in doubt
      res, rerr, code = nil, res, "script"
    end
    -- a recorded retry settled its row (retry_done); anything else did not run
    if not res then settle(st, id, rec.id, "failed", rerr, code) end
  end
  local s = C.summary({})
  return C.drive(rd, s, { targets = next_item, id = function(rec) return rec.id end, act = act,
    concurrency = concurrency, counts_rest = true })
end

local function run_delete(src, id)
  local st = src._st
  local next_page = pages(st, id, 500)
  for ids in next_page do
    local r, err, code = G.mutate(src, { action = "delete", ids = ids, quiet = true }, function()
      return st:dlq_delete { ids = ids }
    end)
    if not r then
      for _, item in ipairs(ids) do settle(st, id, item, "failed", err, code) end
    else
      local kept, done = {}, {}
      for _, e in ipairs(r.errors or {}) do
        kept[e.id] = true
        -- not found: gone already (deleted by this job before it was
        -- interrupted, or by someone else)
        settle(st, id, e.id, "skipped",
          e.code == "not_found" and "not found (deleted already)" or e.message, e.code)
      end
      for _, item in ipairs(ids) do if not kept[item] then done[#done + 1] = item end end
      if #done > 0 then
        local n, merr = st:job_mark(id, done, { outcome = "succeeded" })
        if not n then error("job " .. id .. ": cannot record in its ledger: " .. tostring(merr), 0) end
      end
    end
  end
  return false
end

-- run(src, id, o) -> status | nil, msg, code: take job id and run it to its
-- end in this task. Interrupted (SIGINT, task:cancel), it lets the job go
-- (still running, for another process) and returns its status with
-- interrupted = true. o.wait: wait for another runner's lease to expire.
function J.run(src, id, o)
  local rd, st = src._rd, src._st
  local j, err, code = st:job_get(id)
  if not j then return nil, err, code end
  if j.state ~= "running" then return nil, "job " .. id .. " is " .. j.state, "conflict" end
  local p = j.params and rd.json.decode(j.params) or {}
  local ttl = p.lease_ttl or src._ttl
  local owner = src:_owner()
  local ok
  ok, err, code = st:job_own(id, "take", owner, ttl)
  while ok == false and o and o.wait do
    local cur = st:job_get(id)
    if not cur or cur.state ~= "running" then break end
    local left = (cur.owner_expiry or 0) - rd.time()
    if cur.owner and left > 0 then
      if o.on_wait then o.on_wait(cur) end
      rd.sleep(left + 0.01)
    end
    j = cur
    ok, err, code = st:job_own(id, "take", owner, ttl)
  end
  if ok == nil then return nil, err, code end
  if not ok then
    return nil, "job " .. id .. " is being run by " .. tostring(j.owner) .. " (its lease has not expired)", "conflict"
  end
  -- the item leases, renewed: one owner per job, whichever process runs it,
  -- so a take-over claims at once what a dead runner had claimed and not
  -- started (the started mark, not the lease, says who acts on an item)
  local lease = R.session(src, ttl, "job:" .. id)
  -- the job's lease, renewed beside them (a flag as well as cancel: a task
  -- that has not started yet is not parked on anything to cancel)
  -- A runner that finds its lease taken (it stalled past it, and another
  -- took the job over) stops starting items and leaves the job's leases to
  -- the new runner.
  local stopped, lost = false, false
  local keep = rd.spawn(function()
    while not stopped do
      rd.sleep(ttl / 3)
      if not stopped and st:job_own(id, "take", owner, ttl) == false then lost = true end
    end
  end)
  local rok, interrupted = pcall(j.kind == "retry" and run_retry or run_delete, src, id, p, lease,
    function() return lost end)
  stopped = true
  keep:cancel()
  pcall(keep.wait, keep)
  if lost then
    lease.abandon()
    return nil, "job " .. id .. " was taken over by another runner (this one stalled past its lease)", "conflict"
  end
  lease.close()
  if not rok then
    if not rd.is_canceled(interrupted) then
      st:job_own(id, "release", owner)
      error(interrupted, 0)
    end
    interrupted = true
  end
  if not interrupted then st:job_own(id, "done", owner) end
  st:job_own(id, "release", owner) -- an interrupted or canceled job: free for another
  local s
  s, err, code = J.object(src, id):status()
  if not s then return nil, err, code end
  s.interrupted = interrupted or nil
  return s
end

-- start(src, kind, params, sel) -> job: create it (sel: the store's
-- selection; params: what the runner needs, kept with the job) and
-- run it in a task of this process; returns at once.
function J.start(src, kind, params, sel)
  local rd, st = src._rd, src._st
  sel.kind, sel.params = kind, rd.json.encode(rd.json.object(params))
  local id, total, code = st:job_create(sel)
  if not id then return nil, total, code end
  local task = rd.spawn(function() return J.run(src, id) end)
  local job = J.object(src, id, task)
  job.total = total
  return job
end

-- src:jobs{state} -> {job...}: the store's jobs (of every process), each
-- with its status fields
function J.list(src, opts)
  opts = opts or {}
  U.check_table(opts, 1, "jobs")
  if opts.state ~= nil and type(opts.state) ~= "string" then
    error("bad argument #1 to 'jobs' (state must be a string)", 2)
  end
  local st = src._st
  local out, after = C.list(), nil
  repeat
    local page, err, code = st:job_list { state = opts.state, after = after, limit = 1000 }
    if not page then return nil, err, code end
    for _, rec in ipairs(page) do
      local j = st:job_get(rec.id)
      if j then
        local job = J.object(src, rec.id)
        for k, v in pairs(status_of(j)) do job[k] = v end
        out[#out + 1] = job
      end
    end
    after = page[#page] and page[#page].id
  until #page < 1000
  return out
end

-- src:job(id) -> job | nil, msg, "not_found"
function J.get(src, id)
  if type(id) ~= "string" then error("bad argument #1 to 'job' (id must be a string)", 2) end
  local j, err, code = src._st:job_get(id)
  if not j then return nil, err, code end
  return J.object(src, id)
end

-- worker(src, o) -> number of jobs run: take over every running job whose
-- runner is gone (its lease expired), one after the other, and keep
-- looking every o.poll seconds (default 2); with o.once, return when no job
-- is left running (a job a live runner holds is waited for). o.on_job(s)
-- gets each job's status when it is run.
function J.worker(src, o)
  o = o or {}
  local rd, st = src._rd, src._st
  local ran = 0
  while true do
    local page, err, code = st:job_list { state = "running" }
    if not page then return nil, err, code end
    local next_expiry
    for _, rec in ipairs(page) do
      if rec.owner and (rec.owner_expiry or 0) > rd.time() then
        next_expiry = math.min(next_expiry or math.huge, rec.owner_expiry)
      else
        local s = J.run(src, rec.id)
        if s then
          ran = ran + 1
          if o.on_job then o.on_job(s) end
          if s.interrupted then return ran end
        else -- taken by another worker meanwhile, or it cannot run: look later
          next_expiry = math.min(next_expiry or math.huge, rd.time() + (o.poll or 2))
        end
      end
    end
    if #page == 0 and o.once then return ran end
    local wait = o.poll or 2
    if next_expiry then wait = math.min(wait, math.max(0.01, next_expiry - rd.time() + 0.01)) end
    if #page > 0 and not next_expiry then wait = 0 end -- look again at once
    if wait > 0 then rd.sleep(wait) end
  end
end

return J

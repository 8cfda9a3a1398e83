-- Durable bulk jobs of the local source: src:retry{..., job = true} and
-- src:delete_incomplete{..., job = true} return at once with a job whose
-- ledger (one row per item) lives in the store, so the job outlives the
-- process that started it, and several processes can drain it at once
-- (`redrive worker` on each, `redrive jobs resume ID`).
--
-- The protocol (the store's side: include/redrive.h, "bulk jobs"):
--   create   the job and its ledger in one transaction: the ids asked for,
--            or the pending items of the selection as they are then;
--   join     each runner holds a lease of its own on the job (st:job_own
--            "take", renewed every ttl/3 with its item leases: "renew");
--            joining or renewing settles the rows a dead runner (its lease
--            expired) left started as failed, code "in_doubt";
--   each     item: claimed under the one lease protocol of local_retry.lua
--            (the item-lease owner is the runner's own: "job:ID:" and its
--            name, so one runner's lease close never releases what another
--            acts on), marked started with the runner's name (durable)
--            before it is acted on -- only a pending row can be, so one
--            runner acts on an item --, then retried through R.attempt,
--            whose st:retry_done settles the ledger row in the transaction
--            that records the retry -- so an item is never retried twice, by
--            this job or any other process. An item another runner of the
--            job holds is left pending for it (or, once its lease expired,
--            for whoever looks next);
--   end      done when no row is left pending or started (the last runner
--            marks it); the others just leave. job:cancel() settles the
--            pending rows as not_attempted and every runner stops.
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
    finished_at = j.finished_at, runners = j.runners, owner = j.owner, owner_expiry = j.owner_expiry,
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
-- code, runner}...}: the ledger in item id order (runner: who started the
-- item); without limit, all of it.
function Job:results(o)
  o = o or {}
  U.check_table(o, 1, "results")
  local st = self._src._st
  local function row(r)
    return { id = r.item_id, outcome = r.outcome, execution = r.execution_id, error = r.error, code = r.code,
      runner = r.runner }
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
-- for another); nil, msg, "timeout". This process's runner follows the job
-- to its end (it joins again while other runners finish their part); a job
-- run elsewhere is followed by reading its status every `poll` seconds
-- (default 0.5).
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

-- job:resume{on_wait, poll} -> status: join its runners in this task and
-- follow it to its end (J.follow); on_wait(status) is told each time this
-- runner waits for the others (at work, or dead and their leases not yet
-- expired).
function Job:resume(o)
  o = o or {}
  U.check_table(o, 1, "resume")
  return J.follow(self._src, self.id, { on_wait = o.on_wait, poll = o.poll })
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

-- How many more passes over the pending rows a runner makes for items it
-- could claim and did not (another claim held them a moment: SKIP LOCKED).
local RETRY_PASSES = 20

-- Is item lease `owner` another runner's of job id (or the one name all
-- runners of a job used before each had its own)?
local function sibling(id, owner, mine)
  if not owner or owner == mine then return false end
  local name = "job:" .. id
  return owner == name or owner:sub(1, #name + 1) == name .. ":"
end

-- run = {owner, lease, lost(), acted, wake}: the runner; acted counts the
-- items it marked started, wake is when an item another runner of the job
-- holds may be free (its lease's end).
local function run_retry(src, id, p, run)
  local rd, st, lease = src._rd, src._st, run.lease
  local concurrency = p.concurrency or 16
  local batch = math.max(8, math.min(500, concurrency * 2))
  local next_page = pages(st, id, batch)
  local buf, bi = {}, 0
  local deferred, passes = 0, 0
  -- an item of the page that was not claimed: in the first pass most are
  -- another runner's, claimed a moment before, so they are looked at only
  -- in a later pass, when the ones still pending are few
  local function unclaimed(item)
    if passes == 0 then deferred = deferred + 1; return end
    local now = st:dlq_get(item)
    local free = now and not (now.resolved and p.safe ~= false)
    if free and R.leased(rd, now) and sibling(id, now.lease_owner, lease.owner) then
      -- left pending for that runner, or for whoever looks once its lease ended
      if now.lease_expiry then run.wake = math.min(run.wake or math.huge, now.lease_expiry) end
    elseif free and not R.leased(rd, now) and passes < RETRY_PASSES then
      deferred = deferred + 1 -- a claim held it a moment: a later pass
    else -- gone, resolved already, or being retried by someone else
      local _, msg, code = R.unclaimed(st, item)
      settle(st, id, item, code == "not_found" and "failed" or "skipped", msg, code)
    end
  end
  -- the next claimed item
  local function next_item()
    while true do
      if run.lost() then return nil end -- its place is gone: not ours to start any more
      bi = bi + 1
      if buf[bi] then
        local it = buf[bi]
        buf[bi] = nil
        return it
      end
      local ids = next_page()
      if not ids and deferred > 0 and passes < RETRY_PASSES then
        if passes > 0 then rd.sleep(0.05 * passes) end
        deferred, passes = 0, passes + 1
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
        if claimed[item] then buf[#buf + 1] = claimed[item] else unclaimed(item) end
      end
    end
  end
  local function act(rec)
    if run.lost() then return end -- not ours to start any more
    -- durable before the item is acted on: whoever finds this runner dead
    -- finds it started
    local n, err = st:job_mark(id, { rec.id }, { outcome = "started", runner = run.owner })
    if not n then error("job " .. id .. ": cannot record in its ledger: " .. tostring(err), 0) end
    if n == 0 then return end -- canceled meanwhile, or this runner's place is gone: not acted on
    run.acted = run.acted + 1
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

-- A delete job's page: each item marked started by this runner first (the
-- ones it won: another runner may be at the same page), then those deleted.
local function run_delete(src, id, _, run)
  local st = src._st
  for ids in pages(st, id, 500) do
    local mine = {}
    for _, item in ipairs(ids) do
      if run.lost() then return false end
      local n, err = st:job_mark(id, { item }, { outcome = "started", runner = run.owner })
      if not n then error("job " .. id .. ": cannot record in its ledger: " .. tostring(err), 0) end
      if n == 1 then mine[#mine + 1] = item end
    end
    run.acted = run.acted + #mine
    local r, err, code
    if #mine > 0 then
      r, err, code = G.mutate(src, { action = "delete", ids = mine, quiet = true }, function()
        return st:dlq_delete { ids = mine }
      end)
    end
    if #mine == 0 then -- nothing of this page is ours
    elseif not r then
      for _, item in ipairs(mine) do settle(st, id, item, "failed", err, code) end
    else
      local kept, done = {}, {}
      for _, e in ipairs(r.errors or {}) do
        kept[e.id] = true
        -- not found: gone already (deleted by someone else)
        settle(st, id, e.id, "skipped",
          e.code == "not_found" and "not found (deleted already)" or e.message, e.code)
      end
      for _, item in ipairs(mine) do if not kept[item] then done[#done + 1] = item end end
      if #done > 0 then
        local n, merr = st:job_mark(id, done, { outcome = "succeeded" })
        if not n then error("job " .. id .. ": cannot record in its ledger: " .. tostring(merr), 0) end
      end
    end
  end
  return false
end

-- run(src, id) -> status | nil, msg, code: join job id's runners and run it
-- in this task until nothing is left that this runner can take; the last
-- runner marks it done. Interrupted (SIGINT, task:cancel), it leaves the
-- job (still running, for another process) and returns its status with
-- interrupted = true. The status says what this runner did: acted (items
-- it marked started), wake (when an item another runner holds may be free).
function J.run(src, id)
  local rd, st = src._rd, src._st
  local j, err, code = st:job_get(id)
  if not j then return nil, err, code end
  if j.state ~= "running" then return nil, "job " .. id .. " is " .. j.state, "conflict" end
  local p = j.params and rd.json.decode(j.params) or {}
  local ttl = p.lease_ttl or src._ttl
  local owner = src:_owner()
  local ok
  ok, err, code = st:job_own(id, "take", owner, ttl)
  if ok == nil then return nil, err, code end
  if not ok then return nil, "job " .. id .. " ended meanwhile", "conflict" end
  -- the item leases, renewed, under this runner's own name (the started
  -- mark, not the lease, says who acts on an item)
  local lease = R.session(src, ttl, "job:" .. id .. ":" .. owner)
  local run = { owner = owner, lease = lease, acted = 0 }
  -- the runner's lease, renewed beside them (a flag as well as cancel: a
  -- task that has not started yet is not parked on anything to cancel). A
  -- runner whose lease is gone while the job runs (it stalled past it, and
  -- another runner settled its started rows in doubt) stops starting items
  -- and leaves its item leases to expire.
  local stopped, lost = false, false
  run.lost = function() return lost end
  local function renew()
    if st:job_own(id, "renew", owner, ttl) == false then
      local cur = st:job_get(id)
      lost = cur ~= nil and cur.state == "running"
    end
  end
  local keep = rd.spawn(function()
    while not stopped do
      rd.sleep(ttl / 3)
      if not stopped then renew() end
    end
  end)
  local rok, interrupted = pcall(j.kind == "retry" and run_retry or run_delete, src, id, p, run)
  stopped = true
  keep:cancel()
  pcall(keep.wait, keep)
  -- still one of its runners? (its place may have gone since the last renewal)
  if rok and not lost then renew() end
  if lost then
    lease.abandon()
    return nil, "job " .. id .. ": this runner lost its lease (it stalled past it; its started items are"
      .. " in doubt) and stopped; the other runners go on", "conflict"
  end
  lease.close()
  if not rok then
    if not rd.is_canceled(interrupted) then
      st:job_own(id, "release", owner)
      error(interrupted, 0)
    end
    interrupted = true
  end
  if not interrupted then st:job_own(id, "done", owner) end -- refused while others are at work
  st:job_own(id, "release", owner) -- an interrupted or canceled job: free for another
  local s
  s, err, code = J.object(src, id):status()
  if not s then return nil, err, code end
  s.interrupted = interrupted or nil
  s.acted, s.wake = run.acted, run.wake
  return s
end

-- When to look at a running job again after a run of it (status s): once
-- an item another runner held may be free, once a runner's lease may have
-- expired, or after poll seconds, whichever comes first.
local function next_look(rd, s, poll)
  local now = rd.time()
  local t = math.min(now + poll, s.wake or math.huge)
  if s.owner_expiry and s.owner_expiry > now then t = math.min(t, s.owner_expiry + 0.01) end
  return math.max(t, now + 0.01)
end

-- follow(src, id, o) -> status | nil, msg, code: run job id (J.run) and
-- join it again, while it runs and this runner found nothing left it could
-- take, until it ends or this runner is interrupted. o.on_wait(status)
-- before each wait; o.poll (default 2 s) bounds one. acted: the items this
-- task marked started, over all its runs.
function J.follow(src, id, o)
  o = o or {}
  local rd = src._rd
  local acted, first = 0, true
  while true do
    local s, err, code = J.run(src, id)
    if not s then
      if first or code ~= "conflict" then return nil, err, code end
      -- ended by another runner, or this one lost its place
      local now = J.object(src, id):status()
      if not now or now.state == "running" then return nil, err, code end
      now.acted = acted
      return now
    end
    first = false
    acted = acted + s.acted
    s.acted = acted
    if s.state ~= "running" or s.interrupted then return s end
    if o.on_wait then o.on_wait(s) end
    rd.sleep(math.max(0, next_look(rd, s, o.poll or 2) - rd.time()))
  end
end

-- start(src, kind, params, sel) -> job: create it (sel: the store's
-- selection; params: what the runner needs, kept with the job) and
-- run it in a task of this process; returns at once.
function J.start(src, kind, params, sel)
  local rd, st = src._rd, src._st
  sel.kind, sel.params = kind, rd.json.encode(rd.json.object(params))
  local id, total, code = st:job_create(sel)
  if not id then return nil, total, code end
  local task = rd.spawn(function() return J.follow(src, id) end)
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

-- worker(src, o) -> number of runs: join every running job (J.run), one
-- after the other, and each again while it runs once there may be
-- something to take (an item another runner held, a runner's lease
-- expired: at the latest after o.poll seconds, default 2); with o.once,
-- return when no job is left running. o.on_job(s) gets the status after
-- each run in which this worker acted on items or that ended the job.
function J.worker(src, o)
  o = o or {}
  local rd, st = src._rd, src._st
  local poll = o.poll or 2
  local ran, later = 0, {}
  while true do
    local page, err, code = st:job_list { state = "running" }
    if not page then return nil, err, code end
    if #page == 0 and o.once then return ran end
    local look = rd.time() + poll
    for _, rec in ipairs(page) do
      if (later[rec.id] or 0) <= rd.time() then
        local s = J.run(src, rec.id)
        later[rec.id] = nil
        if s then
          ran = ran + 1
          if o.on_job and (s.acted > 0 or s.state ~= "running") then o.on_job(s) end
          if s.interrupted then return ran end
          if s.state == "running" then later[rec.id] = next_look(rd, s, poll) end
        else -- it ended meanwhile, or this runner lost its place: look later
          later[rec.id] = rd.time() + poll
        end
      end
      if later[rec.id] then look = math.min(look, later[rec.id]) end
    end
    local wait = look - rd.time()
    if wait > 0 then rd.sleep(wait) end
  end
end

return J

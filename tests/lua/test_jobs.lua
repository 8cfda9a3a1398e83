-- Durable bulk jobs of the local source (lua/redrive/source/local_job.lua):
-- src:retry{job = true} and src:delete_incomplete{job = true} return at
-- once; status, wait, cancel, results, src:jobs; a take-over from a runner
-- that died (its in-flight items in doubt, never retried twice); several
-- runners of one job at once (each item acted on by one of them; one dead
-- beside a live one; delete; cancel). Against
-- the loopback server's hit counts, on SQLite and (run again by tests/run)
-- PostgreSQL. The kill -9 of a real process: tests/sh/test_jobs.sh.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = H.server

local function connect()
  local path = H.new_db()
  return assert(rd.connect { kind = "local", db = path }), path
end

local count = H.hits -- the test server's requests with ?key=key

local key = H.key

local function blueprint(name, url)
  return { name = name, flow = {
    { id = 1, module = "http:ActionSendData", version = 3, mapper = { url = S .. "/ok", method = "get" } },
    { id = 2, module = "http:ActionSendData", version = 3, mapper = { url = url, method = "get" } },
  }, metadata = { version = 1, scenario = { maxErrors = 3 } } }
end

-- n items whose module 2 fails once (a /flaky key each), then succeeds
local function flaky_items(src, n, p)
  local sc = assert(src:scenario_create { name = p, blueprint = blueprint(p, S .. "/flaky?fail=1&key=" .. p .. "-{{0.n}}") })
  local ids = {}
  for i = 1, n do ids[i] = assert(assert(src:run(sc.id, { input = { n = i } })).dlq_id) end
  return sc, ids
end

local function by_id(rows)
  local t = {}
  for _, r in ipairs(rows) do t[r.id] = r end
  return t
end

test("job-1.1 retry{job = true}: returns at once, runs to done, each item retried once, a ledger row each", function()
  local src = connect()
  local p = key("j11")
  local _, ids = flaky_items(src, 12, p)
  local job = assert(src:retry { all = true, job = true, concurrency = 4 })
  match(job.id, "^%x+$"); eq(#job.id, 32)
  local s = assert(job:status())
  eq(s.state, "running"); eq(s.total, 12); eq(s.done, 0) -- nothing ran yet: it returned at once
  s = assert(job:wait())
  eq(s.state, "done"); eq(s.total, 12); eq(s.done, 12)
  eq(s.succeeded, 12); eq(s.failed, 0); eq(s.skipped, 0); eq(s.not_attempted, 0)
  ok(s.started_at and s.updated_at and s.finished_at, "times")
  for i = 1, 12 do eq(count(p .. "-" .. i), 2, "item " .. i .. " retried exactly once") end
  local rows = by_id(assert(job:results()))
  for _, id in ipairs(ids) do
    local r = rows[id]
    eq(r.outcome, "succeeded")
    local e = assert(src:execution(r.execution))
    eq(e.status, "success"); eq(e.dlq_id, id) -- the new execution, recorded with the row
    eq(assert(src:incomplete_item(id)).resolved, true)
  end
  eq(#assert(job:results { limit = 5 }), 5)
  eq(#assert(job:results { outcome = "failed" }), 0)
  -- a second job finds nothing pending
  local again = assert(src:retry { all = true, job = true })
  eq(assert(again:wait()).total, 0)
end)

test("job-1.2 failures, ids, except, unknown and resolved ids: each row says why", function()
  local src = connect()
  local p = key("j12")
  local sc = assert(src:scenario_create { name = "down", blueprint = blueprint("down", S .. "/status/500?key=" .. p) })
  local fails = {}
  for i = 1, 3 do fails[i] = assert(assert(src:run(sc.id)).dlq_id) end
  local _, good = flaky_items(src, 3, key("j12b"))
  assert(src:retry { ids = { good[1] } }) -- resolved now: a safe retry skips it
  local unknown = "ffffffffffffffffffffffffffffffff"
  local job = assert(src:retry { ids = { fails[1], fails[2], fails[3], good[1], good[2], unknown, fails[1] },
    except = { fails[3] }, job = true })
  local s = assert(job:wait())
  eq(s.total, 5) -- distinct, minus except
  eq(s.failed, 3); eq(s.succeeded, 1); eq(s.skipped, 1)
  local rows = by_id(assert(job:results()))
  eq(rows[fails[3]], nil)
  eq(rows[fails[1]].outcome, "failed"); match(rows[fails[1]].error, "500")
  ok(rows[fails[1]].execution, "the failed retry's execution")
  eq(rows[good[1]].outcome, "skipped"); match(rows[good[1]].error, "resolved")
  eq(rows[good[2]].outcome, "succeeded")
  eq(rows[unknown].outcome, "failed"); eq(rows[unknown].code, "not_found")
  eq(assert(src:incomplete_item(fails[1])).attempts, 1)
  eq(assert(src:incomplete_item(fails[3])).attempts, 0)
end)

test("job-1.3 several jobs at once; src:jobs lists them by state", function()
  local src = connect()
  local pa, pb = key("j13a"), key("j13b")
  local sa = flaky_items(src, 5, pa)
  local sb = flaky_items(src, 7, pb)
  local ja = assert(src:retry { all = true, scenario = sa.id, job = true, concurrency = 2 })
  local jb = assert(src:retry { all = true, scenario = sb.id, job = true, concurrency = 3 })
  local running = assert(src:jobs { state = "running" })
  eq(#running, 2)
  eq(running[1].id < running[2].id, true) -- creation order
  eq(assert(jb:wait()).succeeded, 7)
  eq(assert(ja:wait()).succeeded, 5)
  eq(#assert(src:jobs { state = "running" }), 0)
  local done = assert(src:jobs { state = "done" })
  eq(#done, 2); eq(done[1].total + done[2].total, 12)
  eq(#assert(src:jobs {}), 2)
  for i = 1, 5 do eq(count(pa .. "-" .. i), 2) end
  for i = 1, 7 do eq(count(pb .. "-" .. i), 2) end
  raises("state must be a string", src.jobs, src, { state = 1 })
end)

test("job-1.4 cancel: pending rows not attempted, nothing retried; a job that ended cannot be canceled", function()
  local src = connect()
  local p = key("j14")
  flaky_items(src, 6, p)
  local job = assert(src:retry { all = true, job = true })
  eq(job:cancel(), true) -- before its runner took a single item
  local s = assert(job:wait())
  eq(s.state, "canceled"); eq(s.not_attempted, 6); eq(s.succeeded, 0); eq(s.done, 6)
  for i = 1, 6 do eq(count(p .. "-" .. i), 1, "not retried") end
  eq(assert(job:results())[1].code, "canceled")
  check_err("conflict", "not running", job.cancel, job)
end)

test("job-1.5 a take-over resumes where the ledger says: what was in flight is in doubt, never done twice", function()
  local src = connect()
  local st = src._st
  local p = key("j15")
  local _, ids = flaky_items(src, 6, p)
  -- a runner that died: it took the job, marked two items started (their
  -- retry may have happened) and settled none; its lease expires soon
  local id = assert(st:job_create { kind = "retry", all = true, params = '{"concurrency":2}' })
  eq(st:job_own(id, "take", "dead-runner", 1), true)
  eq(st:job_own(id, "take", "someone-else", 60), true) -- several runners at once
  eq(st:job_own(id, "release", "someone-else"), true)
  eq(st:job_own(id, "renew", "someone-else", 60), false) -- gone: it cannot come back silently
  eq(st:job_mark(id, { ids[1], ids[2] }, { outcome = "started", runner = "dead-runner" }), 2)
  local job = assert(src:job(id))
  local waited
  local s = assert(job:resume { on_wait = function(j) waited = waited or j.owner end })
  -- it joined at once and did the rest, then waited for the dead runner's
  -- lease to expire to settle what it had started
  eq(waited, "dead-runner")
  eq(s.state, "done"); eq(s.total, 6); eq(s.succeeded, 4); eq(s.failed, 2)
  local rows = by_id(assert(job:results()))
  for i = 1, 2 do
    eq(rows[ids[i]].outcome, "failed"); eq(rows[ids[i]].code, "in_doubt")
    eq(count(p .. "-" .. i), 1, "an item in doubt is not retried again")
    eq(assert(src:incomplete_item(ids[i])).resolved, false) -- still there, to decide by hand
  end
  for i = 3, 6 do eq(rows[ids[i]].outcome, "succeeded"); eq(count(p .. "-" .. i), 2) end
  check_err("conflict", "is done", job.resume, job)
  check_err("not_found", "no job", src.job, src, "0123456789abcdef0123456789abcdef")
end)

test("job-1.6 delete_incomplete{job = true}: in pages, each row settled; leased and unknown ids kept", function()
  local src = connect()
  local st = src._st
  local _, ids = flaky_items(src, 5, key("j16"))
  -- another process is retrying ids[2] right now
  eq(#assert(st:claim { ids = { ids[2] }, owner = "other", ttl = 60 }), 1)
  local unknown = "ffffffffffffffffffffffffffffffff"
  local job = assert(src:delete_incomplete { ids = { ids[1], ids[2], ids[3], unknown }, job = true })
  local s = assert(job:wait())
  eq(s.state, "done"); eq(s.total, 4); eq(s.succeeded, 2); eq(s.skipped, 2)
  local rows = by_id(assert(job:results()))
  eq(rows[ids[2]].code, "conflict"); eq(rows[unknown].code, "not_found")
  eq(src:incomplete_item(ids[1]), nil)
  ok(src:incomplete_item(ids[2]), "the leased one is kept")
  check_err("invalid", "confirmed", src.delete_incomplete, src, { all = true, job = true })
  local all = assert(src:delete_incomplete { all = true, confirmed = true, job = true })
  s = assert(all:wait())
  eq(s.total, 3); eq(s.succeeded, 2); eq(s.skipped, 1) -- ids[2] is still leased
end)

test("job-1.7 job = true is checked; a dry run plans without a job", function()
  local src = connect()
  flaky_items(src, 2, key("j17"))
  raises("job must be true or false", src.retry, src, { all = true, job = "yes" })
  raises("job must be true or false", src.delete_incomplete, src, { all = true, confirmed = true, job = 1 })
  rd.dry_run(true)
  local plan = assert(src:retry { all = true, job = true })
  rd.dry_run(false)
  eq(plan.dry_run, true); eq(plan.would_retry, 2)
  eq(#assert(src:jobs {}), 0)
end)

-- n items whose retry takes a while (module 3 waits 50 ms at the server);
-- module 2 fails once (a /flaky key each), then succeeds
local function slow_items(src, n, p)
  local sc = assert(src:scenario_create { name = p, blueprint = { name = p, flow = {
    { id = 1, module = "http:ActionSendData", version = 3, mapper = { url = S .. "/ok", method = "get" } },
    { id = 2, module = "http:ActionSendData", version = 3,
      mapper = { url = S .. "/flaky?fail=1&key=" .. p .. "-{{0.n}}", method = "get" } },
    { id = 3, module = "http:ActionSendData", version = 3, mapper = { url = S .. "/delay/50", method = "get" } },
  }, metadata = { version = 1, scenario = { maxErrors = 3 } } } })
  local ids = {}
  for i = 1, n do ids[i] = assert(assert(src:run(sc.id, { input = { n = i } })).dlq_id) end
  return sc, ids
end

-- a job nobody runs yet, then `runners` tasks of this process running it
-- at once (each a runner of its own: job:resume)
local function runners(src, id, n)
  local tasks = {}
  for i = 1, n do tasks[i] = rd.spawn(function() return assert(src:job(id)):resume() end) end
  local out = {}
  for i = 1, n do out[i] = assert(tasks[i]:wait()) end
  return out
end

test("job-2.1 two runners drain one job at once: each item acted on by one of them, all settled", function()
  local src = connect()
  local st = src._st
  local p = key("j21")
  local _, ids = slow_items(src, 30, p)
  local id = assert(st:job_create { kind = "retry", all = true, params = '{"concurrency":2}' })
  local r = runners(src, id, 2)
  ok(r[1].acted > 0 and r[2].acted > 0, "both acted: " .. r[1].acted .. " + " .. r[2].acted)
  eq(r[1].acted + r[2].acted, 30) -- disjoint: together, every item once
  local s = assert(assert(src:job(id)):status())
  eq(s.state, "done"); eq(s.succeeded, 30); eq(s.runners, 0); eq(s.owner, nil)
  for i = 1, 30 do eq(count(p .. "-" .. i), 2, "item " .. i .. " retried exactly once") end
  local by = {}
  for _, row in ipairs(assert(assert(src:job(id)):results())) do by[row.runner] = (by[row.runner] or 0) + 1 end
  local names = 0
  for _, c in pairs(by) do names = names + 1; ok(c > 0) end
  eq(names, 2) -- the ledger says who started each item
  eq(#ids, 30)
end)

test("job-2.2 a runner that dies beside a live one: its started items in doubt, its claimed ones done by the other once its leases expire", function()
  local src = connect()
  local st = src._st
  local p = key("j22")
  local _, ids = slow_items(src, 12, p)
  local id = assert(st:job_create { kind = "retry", all = true, params = '{"concurrency":2,"lease_ttl":0.3}' })
  -- the dead runner: joined, claimed four items under its own item-lease
  -- name, started two of them (their retry may have happened), then died
  local dead = "host:1:dead/1"
  eq(st:job_own(id, "take", dead, 0.3), true)
  eq(#assert(st:claim { ids = { ids[1], ids[2], ids[3], ids[4] }, owner = "job:" .. id .. ":" .. dead, ttl = 0.3 }), 4)
  eq(st:job_mark(id, { ids[1], ids[2] }, { outcome = "started", runner = dead }), 2)
  local r = runners(src, id, 1)[1]
  eq(r.state, "done"); eq(r.acted, 10) -- the 8 free ones, then the 2 it claimed, once its leases expired
  local rows = by_id(assert(assert(src:job(id)):results()))
  for i = 1, 2 do
    eq(rows[ids[i]].outcome, "failed"); eq(rows[ids[i]].code, "in_doubt"); eq(rows[ids[i]].runner, dead)
    eq(count(p .. "-" .. i), 1, "in doubt: not retried")
  end
  for i = 3, 12 do eq(rows[ids[i]].outcome, "succeeded"); eq(count(p .. "-" .. i), 2, "item " .. i) end
end)

test("job-2.3 a delete job with two runners: each item deleted by one of them", function()
  local src = connect()
  local st = src._st
  local _, ids = flaky_items(src, 40, key("j23"))
  local id = assert(st:job_create { kind = "delete", all = true })
  local r = runners(src, id, 2)
  eq(r[1].acted + r[2].acted, 40)
  local s = assert(assert(src:job(id)):status())
  eq(s.state, "done"); eq(s.succeeded, 40); eq(s.skipped, 0) -- none "deleted already": one acted on each
  for i = 1, 40 do eq(src:incomplete_item(ids[i]), nil) end
end)

test("job-2.4 cancel with two runners at work: both stop, what they started settles, the rest not attempted", function()
  local src = connect()
  local st = src._st
  local p = key("j24")
  slow_items(src, 60, p)
  local id = assert(st:job_create { kind = "retry", all = true, params = '{"concurrency":2}' })
  local tasks = {}
  for i = 1, 2 do tasks[i] = rd.spawn(function() return assert(src:job(id)):resume() end) end
  local job = assert(src:job(id))
  H.wait_until(function() return assert(job:status()).done >= 4 end, "4 items done: both at work")
  eq(job:cancel(), true)
  local acted = 0
  for i = 1, 2 do
    local s = assert(tasks[i]:wait())
    eq(s.state, "canceled")
    acted = acted + s.acted
  end
  local s = assert(job:status())
  eq(s.running, 0) -- what was in flight settled by its runner
  eq(s.succeeded, acted); eq(s.not_attempted, 60 - acted); ok(acted < 60, "canceled before the end")
  local hits = 0
  for i = 1, 60 do
    local c = count(p .. "-" .. i)
    ok(c <= 2, "item " .. i); hits = hits + c - 1
  end
  eq(hits, acted) -- each retried at most once, only the ones started
end)

test("job-1.8 a runner whose job was taken over (it stalled past its lease) stops and leaves the leases to the new one", function()
  local src = connect()
  local st = src._st
  local p = key("j18")
  slow_items(src, 40, p)
  local job = assert(src:retry { all = true, job = true, concurrency = 2, lease_ttl = 0.3 })
  -- the event: a few items done; then another runner takes the job over
  H.wait_until(function() return assert(job:status()).done >= 4 end, "4 items done")
  local owner = assert(job:status()).owner
  eq(st:job_own(job.id, "release", owner), true) -- as if its lease had run out
  eq(st:job_own(job.id, "take", "new-runner", 60), true)
  local r, msg, code = job._task:wait() -- the old runner's answer
  eq(r, nil); eq(code, "conflict"); match(msg, "lost its lease")
  local s = assert(job:status())
  eq(s.state, "running"); eq(s.owner, "new-runner"); eq(s.runners, 1) -- the old runner stopped and let it be
  ok(s.done < 40, "the old runner did not finish the job")
  eq(s.running, 0) -- what it had started is in doubt (the new runner's join settled it)
  -- nothing is acted on twice: each key hit at most twice (the failed run, one retry)
  for i = 1, 40 do ok(count(p .. "-" .. i) <= 2, "item " .. i) end
  -- what the old runner had claimed and not started stays leased under its
  -- own name in the job's (not released: it expires)
  local leased = 0
  for it in src:incomplete { resolved = false } do
    if (it.lease_owner or ""):find("job:" .. job.id .. ":", 1, true) == 1 then leased = leased + 1 end
  end
  ok(leased > 0, "the old runner's item leases were not released")
end)

H.done()

-- The store binding: core.store_open and redrive.Store (docs/internals.md),
-- on both backends: tests/run runs this file again on PostgreSQL.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"

local function new_store()
  local path = H.new_db()
  return assert(core.store_open(path)), path
end

-- What a value that is not JSON is called: SQLite's CHECK constraint, or
-- PostgreSQL's json type naming the parameter.
local function bad_json(col)
  return H.pg and ("invalid input syntax for type json %(in " .. col .. "%)") or (col .. "_json")
end

local function item(scenario, reason)
  return { scenario_id = scenario, scenario_name = "S" .. scenario,
           reason = reason or "DataError: x", size = 3, failer = 2,
           blueprint = '{"flow":[]}', state = '{"bundle":{"n":1}}' }
end

local function failed_exec(scenario, duration)
  return { scenario_id = scenario, status = "error", mode = "manual", started_at = 1700000000,
           duration = duration or 5, error = '{"message":"boom"}' }
end

-- a new store holding n incomplete executions (reasons r1..rn) of one
-- scenario: the store and their ids, in order
local function store_with_items(n)
  local st = new_store()
  local sid = assert(st:scenario_create { name = "s", blueprint = '{"flow":[]}' })
  local ids = {}
  for i = 1, n do
    local _, d = assert(st:record { exec = failed_exec(sid), dlq = item(sid, "r" .. i) })
    ids[i] = d
  end
  return st, ids
end

test("store-1.1 open, path, tostring, close is idempotent, closed store raises", function()
  local path = H.pg and H.new_db() or H.tmpname("/a/b/s.db") -- parent dirs are made
  local st = assert(core.store_open(path))
  eq(st:path(), path)
  eq(st:backend(), H.backend)
  eq(tostring(st), "redrive.Store (" .. path .. ")")
  st:close()
  st:close()
  eq(tostring(st), "redrive.Store (closed)")
  raises("attempt to use a closed store", st.scenario_list, st)
  raises("attempt to use a closed store", st.path, st)
  -- reopen: the data is there
  local st2 <close> = assert(core.store_open(path))
  eq(#st2:scenario_list(), 0)
end)

test("store-1.2 <close> closes", function()
  local path = H.new_db()
  local keep
  do
    local st <close> = assert(core.store_open(path))
    keep = st
  end
  eq(tostring(keep), "redrive.Store (closed)")
end)

H.sqlite_only("store-1.3 corrupt and foreign files: nil, msg, 'corrupt'", function()
  local path = H.tmpname(".db")
  local f = assert(io.open(path, "w"))
  f:write(string.rep("not a database\n", 100))
  f:close()
  local msg = check_err("corrupt", "is not a redrive store", core.store_open, path)
  ok(msg:find(path, 1, true), "message names the path", msg)
  check_err("io", "cannot", core.store_open, "/proc/nope/x.db")
end)

test("store-1.4 default path follows REDRIVE_DB", function()
  eq(core.store_default_path(), os.getenv("REDRIVE_DB"))
end)

test("store-2.1 scenarios", function()
  local st <close> = new_store()
  local id = st:scenario_create { name = "A", blueprint = '{"flow":[]}', dlq = true }
  eq(math.type(id), "integer")
  local sc = assert(st:scenario_get(id))
  eq(sc.name, "A")
  eq(sc.blueprint, '{"flow":[]}')
  eq(sc.dlq, true)
  ok(sc.created > 1.6e9)
  eq(st:scenario_update(id, { name = "B", dlq = false }), true)
  sc = st:scenario_get(id)
  eq(sc.name, "B")
  eq(sc.dlq, false)
  check_err("not_found", "^store: no scenario 99$", st.scenario_get, st, 99)
  check_err("not_found", nil, st.scenario_update, st, 99, { name = "x" })
  check_err("invalid", bad_json("blueprint"), st.scenario_create, st, { name = "C", blueprint = "{" })
  eq(#st:scenario_list(), 1)
end)

test("store-2.2 misuse raises with the field named", function()
  local st <close> = new_store()
  raises("bad argument #1 to 'scenario_create' %(table expected, got no value%)",
    function() return st:scenario_create() end)
  raises("bad argument #1 to 'scenario_create' %(field 'name': string expected, got nil%)",
    function() return st:scenario_create { blueprint = "{}" } end)
  raises("field 'exec.status': string expected, got number", st.record, st,
    { exec = { status = 1 } })
  raises("field 'exec': table expected, got nil", st.record, st, {})
  raises("option 'limit' must be a whole number >= 0 and <= 10000, got %-1", st.exec_list, st, { limit = -1 })
  raises("got nan", st.exec_list, st, { limit = 0 / 0 })
  raises("option 'ttl' must be a number of seconds > 0 and <= 1000000000, got inf", st.claim, st,
    { all = true, owner = "w", ttl = math.huge })
  raises("option 'ttl' .* got 1e%+300", st.renew, st, "w", 1e300)
  raises("option 'limit' must be a whole number >= 1 and <= 20, got 0", st.health, st, { limit = 0 })
  raises("'ids' or 'all = true' expected", st.claim, st, { owner = "w", ttl = 1 })
  raises("field 'ids%[2%]': string expected, got number", st.dlq_delete, st, { ids = { "a", 2 } })
  raises("ttl", st.claim, st, { all = true, owner = "w" })
  raises("bad argument #1 to 'exec_get' %(string expected, got no value%)",
    function() return st:exec_get() end)
end)

test("store-3.1 record, exec_get, exec_update (null clears), exec_delete", function()
  local st <close> = new_store()
  local id = assert(st:record { exec = { scenario_id = 1, status = "running", mode = "manual",
                                         started_at = 1700000000.25, run_data = '{"1":{}}' } })
  eq(#id, 32)
  local e = assert(st:exec_get(id))
  eq(e.status, "running")
  eq(e.started_at, 1700000000.25)
  eq(e.run_data, '{"1":{}}')
  eq(e.stopped_at, nil)
  eq(e.operations, 0)
  eq(st:exec_update(id, { status = "success", stopped_at = 1700000001, duration = 750,
                           run_data = rd.json.null }), true)
  e = st:exec_get(id)
  eq(e.status, "success")
  eq(e.stopped_at, 1700000001)
  eq(math.type(e.stopped_at), "integer")
  eq(e.duration, 750)
  eq(e.run_data, nil)
  check_err("invalid", "invalid execution status 'done'", st.exec_update, st, id,
    { status = "done" })
  eq(st:exec_delete(id), true)
  check_err("not_found", "no execution", st.exec_get, st, id)
  check_err("not_found", nil, st.exec_delete, st, id)
end)

test("store-3.2 record with dlq is one transaction", function()
  local st <close> = new_store()
  local eid, did = st:record { exec = failed_exec(1), dlq = item(1) }
  local e = st:exec_get(eid)
  eq(e.dlq_id, did)
  local d = assert(st:dlq_get(did))
  eq(d.execution_id, eid)
  eq(d.resolved, false)
  eq(d.retry, false)
  eq(d.state, '{"bundle":{"n":1}}')
  eq(d.failer, 2)
  eq(d.lease_owner, nil)
  -- a bad item: neither row is written
  local bad = item(1)
  bad.blueprint = "{nope"
  check_err("invalid", bad_json("blueprint"), st.record, st, { exec = failed_exec(1), dlq = bad })
  eq(#st:exec_list(), 1)
  eq(st:dlq_count(), 1)
end)

test("store-3.4 text that is not UTF-8 is stored, never refused (PostgreSQL replaces the bad bytes)", function()
  local st <close> = new_store()
  local _, did = assert(st:record { exec = failed_exec(1), dlq = item(1, "HTTP 500: \xff\xfe body") })
  eq(st:dlq_get(did).reason, H.pg and "HTTP 500: \u{FFFD}\u{FFFD} body" or "HTTP 500: \xff\xfe body")
end)

test("store-3.3 exec_list: filters and keyset pages", function()
  local st <close> = new_store()
  local all = {}
  for i = 1, 25 do
    local e = { scenario_id = i % 2 + 1, status = i % 3 == 0 and "error" or "success",
                mode = "manual", started_at = 1000 + i }
    all[i] = st:record { exec = e }
  end
  local seen, after = {}, nil
  repeat
    local page = st:exec_list { after = after, limit = 10 }
    for _, e in ipairs(page) do
      seen[#seen + 1] = e.id
      eq(e.run_data, nil)
    end
    after = page[#page] and page[#page].id
  until #page < 10
  eq(seen, all)
  eq(#st:exec_list { scenario = 1, status = "error" }, 4) -- i = 3, 9, 15, 21 are odd
  eq(#st:exec_list { since = 1010, ["until"] = 1020 }, 10)
end)

test("store-4.1 claim: two stores on one file never share an item; expiry frees", function()
  local a, path = new_store()
  local b <close> = assert(core.store_open(path))
  for i = 1, 12 do a:record { exec = failed_exec(1), dlq = item(1) } end
  local ca = a:claim { all = true, limit = 5, owner = "A", ttl = 60 }
  local cb = b:claim { all = true, owner = "B", ttl = 1 }
  eq(#ca, 5)
  eq(#cb, 7)
  ok(ca[1].blueprint and ca[1].state, "claimed items carry blueprint and state")
  eq(ca[1].lease_owner, "A")
  local ids = {}
  for _, d in ipairs(ca) do ids[d.id] = true end
  for _, d in ipairs(cb) do ok(not ids[d.id], "claimed twice", d.id) end
  eq(#a:claim { all = true, owner = "C", ttl = 60 }, 0)
  -- B's 1 s leases expire (the store's clock): then C gets all seven at once
  local got = H.wait_until(function()
    local c = a:claim { all = true, owner = "C", ttl = 60 }
    return #c > 0 and c
  end, "B's leases to expire")
  eq(#got, 7)
  eq(a:renew("A", 120), 5)
  eq(a:release("C", cb[1].id), 1)
  eq(a:release("C"), 6)
  a:close()
end)

test("store-4.2 retry_done: conflict, failure, success", function()
  local st <close> = new_store()
  local orig, did = st:record { exec = failed_exec(1), dlq = item(1) }
  local retry = { status = "error", mode = "retry", started_at = 1700000100, duration = 9 }
  local log = { status = 3, duration = 9, operations = 2, timestamp = 1700000100 }
  check_err("conflict", "not held by 'w'", st.retry_done, st,
    { dlq_id = did, owner = "w", exec = retry, success = false, log = log })
  eq(#st:claim { ids = { did }, owner = "w", ttl = 60 }, 1)
  local r1 = assert(st:retry_done { dlq_id = did, owner = "w", exec = retry, success = false,
                                    log = log })
  eq(st:exec_get(r1).retry_of, orig)
  local d = st:dlq_get(did)
  eq(d.attempts, 1)
  eq(d.resolved, false)
  eq(d.lease_owner, nil)
  eq(#st:claim { ids = { did }, owner = "w", ttl = 60 }, 1)
  retry.status = "success"
  local r2 = assert(st:retry_done { dlq_id = did, owner = "w", exec = retry, success = true,
                                    log = { status = 1, duration = 3, forced = true } })
  d = st:dlq_get(did)
  eq(d.resolved, true)
  eq(d.attempts, 2)
  eq(st:exec_get(orig).retry_success_id, r2)
  -- resolved: released, and a claim without resolved = true leaves it
  check_err("conflict", "not held by 'w'", st.retry_done, st,
    { dlq_id = did, owner = "w", exec = retry, success = true, log = log })
  eq(#st:claim { ids = { did }, owner = "w", ttl = 60 }, 0)
  -- a forced retry leases it (resolved = true); a failure keeps it resolved
  eq(#st:claim { ids = { did }, owner = "w", ttl = 60, resolved = true }, 1)
  retry.status = "error"
  assert(st:retry_done { dlq_id = did, owner = "w", exec = retry, success = false,
                         log = { status = 3, forced = true } })
  d = st:dlq_get(did)
  eq(d.resolved, true); eq(d.attempts, 3); eq(d.lease_owner, nil)
  -- logs with filters
  local logs = st:dlq_logs(did)
  eq(#logs, 3)
  eq(logs[1].status, 3)
  eq(logs[1].execution_id, r1)
  eq(logs[2].forced, true)
  eq(#st:dlq_logs(did, { status = 1 }), 1)
  eq(#st:dlq_logs(did, { from = 1700000000, to = 1700000200 }), 1)
  check_err("not_found", nil, st.dlq_logs, st, "nope")
end)

test("store-4.3 dlq_patch refuses a leased item", function()
  local st <close> = new_store()
  local _, did = st:record { exec = failed_exec(1), dlq = item(1) }
  eq(st:dlq_patch(did, { blueprint = '{"flow":[{"id":1}]}', failer = 1 }), true)
  eq(st:dlq_get(did).failer, 1)
  st:claim { ids = { did }, owner = "w", ttl = 60 }
  check_err("conflict", "is being retried %(by w%)", st.dlq_patch, st, did, { failer = 3 })
  check_err("not_found", nil, st.dlq_patch, st, "nope", { failer = 3 })
end)

test("store-4.4 dlq_delete: ids, all, except; leased items reported", function()
  local st <close> = new_store()
  local ids = {}
  for i = 1, 6 do
    local _, did = st:record { exec = failed_exec(1), dlq = item(1) }
    ids[i] = did
  end
  st:claim { ids = { ids[1] }, owner = "w", ttl = 60 }
  local res = st:dlq_delete { ids = { ids[1], ids[2], "missing" } }
  eq(res.deleted, 1)
  eq(res.errors, { { id = ids[1], message = "being retried", code = "conflict" },
                   { id = "missing", message = "not found", code = "not_found" } })
  res = st:dlq_delete { all = true, except = { ids[3] } }
  eq(res.deleted, 3)
  eq(res.errors, { { id = ids[1], message = "being retried", code = "conflict" } })
  eq(st:dlq_count(), 2)
  eq(st:dlq_count { resolved = false, scenario = 1 }, 2)
  eq(#st:dlq_list { resolved = true }, 0)
  local page = st:dlq_list { limit = 1 }
  eq(#page, 1)
  eq(page[1].blueprint, nil)
  eq(#st:dlq_list { after = page[1].id }, 1)
end)

test("store-5.1 health figures", function()
  local st <close> = new_store()
  for i = 1, 70 do
    st:record { exec = { scenario_id = 1, status = "success", started_at = 1000 + i,
                         duration = i } }
  end
  -- grouped by the fingerprint the writer gives, shown by its cause
  local fp = require("redrive.core").fingerprint
  for i = 1, 30 do
    local e = failed_exec(1, 100 + i)
    local msg = i <= 20 and ("DataError: missing " .. i) or ("Timeout after " .. i .. "s")
    e.error = rd.json.encode { message = msg }
    e.fingerprint, e.cause = fp(msg)
    if i <= 20 then
      local d = item(1, msg)
      d.fingerprint, d.cause = e.fingerprint, e.cause
      st:record { exec = e, dlq = d }
    else st:record { exec = e } end
  end
  local h = st:health { scenario = 1 }
  eq(h.total, 100)
  eq(h.finished, 100)
  eq(h.succeeded, 70)
  eq(h.failed, 30)
  eq(h.running, 0)
  eq(h.success_rate, 0.7)
  eq(h.avg_duration, 59.5)
  eq(h.p95_duration, 125)
  eq(h.top_reasons[1].reason, "DataError: missing <n>")
  eq(h.top_reasons[1].count, 20)
  eq(h.top_reasons[1].fingerprint, (fp("DataError: missing 1")))
  eq(h.top_reasons[2][1], "Timeout after <n>s")
  eq(h.top_reasons[2][2], 10)
  local empty = st:health { scenario = 9 }
  eq(empty.total, 0)
  eq(empty.success_rate, nil)
  eq(#empty.top_reasons, 0)
end)

test("store-6.1 wait_work: a new item and a dropped lease wake it; a claim does not; timeout", function()
  local st <close> = new_store()
  eq(st:wait_work { timeout = 0.01 }, false, "nothing happened: the timeout")
  local woke = {}
  local function waiter() woke[#woke + 1] = st:wait_work { timeout = 600 } end
  local t = rd.spawn(waiter)
  coroutine.yield() -- the waiter runs first and parks
  local _, did = st:record { exec = failed_exec(1), dlq = item(1) }
  t:wait()
  eq(woke, { true }, "a new item wakes")
  t = rd.spawn(waiter)
  coroutine.yield()
  eq(#st:claim { ids = { did }, owner = "w", ttl = 60 }, 1)
  st:record { exec = failed_exec(1) } -- no item: no work
  eq(t:status(), "waiting", "a claim is no new work")
  eq(st:release("w"), 1)
  t:wait()
  eq(woke, { true, true }, "a dropped lease wakes")
  raises("option 'timeout' must be", st.wait_work, st, { timeout = -1 })
end)

test("store-9.2 a job's retry is recorded by the runner that started it, even once its item lease moved to another runner of the job; not once it moved outside the job", function()
  local st, ids = store_with_items(2)
  local id = assert(st:job_create { kind = "retry", ids = ids })
  eq(st:job_own(id, "take", "a", 60), true); eq(st:job_own(id, "take", "b", 60), true)
  local retry = { status = "success", mode = "retry", started_at = 1700000100, duration = 9 }
  local log = { status = 1, duration = 9, operations = 2, timestamp = 1700000100 }
  for i = 1, 2 do
    eq(#st:claim { ids = { ids[i] }, owner = "job:" .. id .. ":a", ttl = 60 }, 1)
    eq(st:job_mark(id, { ids[i] }, { outcome = "started", runner = "a" }), 1)
    eq(st:release("job:" .. id .. ":a", ids[i]), 1) -- as if its lease had expired, a stalled runner's
  end
  -- another runner of the job claimed the first (its started mark then kept it from acting)
  eq(#st:claim { ids = { ids[1] }, owner = "job:" .. id .. ":b", ttl = 60 }, 1)
  assert(st:retry_done { dlq_id = ids[1], owner = "job:" .. id .. ":a", job_id = id, exec = retry,
                         success = true, log = log })
  local rows = {}
  for _, r in ipairs(assert(st:job_items(id, {}))) do rows[r.item_id] = r end
  eq(rows[ids[1]].outcome, "succeeded"); ok(rows[ids[1]].execution_id, "the retry's execution")
  eq(assert(st:dlq_get(ids[1])).resolved, true)
  -- not a runner of it: b never started it
  check_err("conflict", "not held by", st.retry_done, st, { dlq_id = ids[2], owner = "job:" .. id .. ":b",
    job_id = id, exec = retry, success = true, log = log })
  -- someone outside the job leases the second now: a's record is refused
  eq(#st:claim { ids = { ids[2] }, owner = "outsider", ttl = 60 }, 1)
  check_err("conflict", "not held by", st.retry_done, st, { dlq_id = ids[2], owner = "job:" .. id .. ":a",
    job_id = id, exec = retry, success = true, log = log })
  eq(assert(st:dlq_get(ids[2])).resolved, false)
end)

test("store-9.1 jobs: create (ids / all), get with counts, list, ledger pages, mark, take, release, cancel", function()
  local st, ids = store_with_items(5)
  local id, total = assert(st:job_create { kind = "retry", all = true, except = { ids[5] }, params = '{"a":1}' })
  eq(total, 4)
  local j = assert(st:job_get(id))
  eq(j.state, "running"); eq(j.kind, "retry"); eq(j.params, '{"a":1}'); eq(j.total, 4); eq(j.pending, 4)
  eq(j.started, 0); eq(j.owner, nil)
  -- ids: distinct, minus except, unknown ones kept (the job reports them)
  local id2, t2 = assert(st:job_create { kind = "delete", ids = { ids[1], ids[1], "nope", ids[2] }, except = { ids[2] } })
  eq(t2, 2)
  eq(#assert(st:job_list {}), 2); eq(#assert(st:job_list { state = "done" }), 0)
  eq(assert(st:job_list { after = id, limit = 5 })[1].id, id2)
  -- the runners of a job, each with a lease of its own
  eq(st:job_own(id, "take", "a", 60), true); eq(st:job_own(id, "take", "a", 60), true) -- renewed
  eq(st:job_own(id, "renew", "a", 60), true)
  eq(st:job_own(id, "take", "b", 60), true) -- a second runner
  j = assert(st:job_get(id))
  eq(j.runners, 2); eq(j.owner, "a") -- the one whose lease ends first
  eq(st:job_own(id, "release", "b"), true); eq(st:job_own(id, "release", "b"), false)
  eq(st:job_own(id, "renew", "b", 60), false) -- it left: renewing does not bring it back
  eq(assert(st:job_get(id)).runners, 1)
  -- marks: started only from pending, by a runner of the job; an outcome
  -- from pending or started; settled rows stay
  local rows = assert(st:job_items(id, { outcome = "pending", limit = 3 }))
  eq(#rows, 3); eq(rows[1].item_id < rows[2].item_id, true)
  eq(st:job_mark(id, { rows[3].item_id }, { outcome = "started", runner = "b" }), 0) -- not a runner now
  eq(st:job_mark(id, { rows[1].item_id, rows[2].item_id }, { outcome = "started", runner = "a" }), 2)
  eq(assert(st:job_items(id, { outcome = "started" }))[1].runner, "a")
  eq(st:job_mark(id, { rows[1].item_id }, { outcome = "started" }), 0)
  eq(st:job_mark(id, { rows[1].item_id }, { outcome = "skipped", error = "why", code = "conflict" }), 1)
  eq(st:job_mark(id, { rows[1].item_id }, { outcome = "succeeded" }), 0)
  j = assert(st:job_get(id))
  eq(j.pending, 2); eq(j.started, 1); eq(j.skipped, 1)
  -- a take-over of a released job: what the last owner left started is in doubt
  eq(st:job_own(id, "release", "a"), true)
  eq(st:job_own(id, "take", "b", 60), true)
  local doubt = assert(st:job_items(id, { outcome = "failed" }))
  eq(#doubt, 1); eq(doubt[1].item_id, rows[2].item_id); eq(doubt[1].code, "in_doubt")
  -- cancel: pending rows not attempted; then neither take nor done changes it
  eq(st:job_own(id, "cancel"), true); eq(st:job_own(id, "cancel"), false)
  j = assert(st:job_get(id))
  eq(j.state, "canceled"); eq(j.pending, 0); eq(j.not_attempted, 2); ok(j.finished_at, "finished")
  eq(st:job_own(id, "take", "c", 60), false); eq(st:job_own(id, "done"), false)
  -- done only once no row is pending or started; what a runner whose lease
  -- expired left started is settled in doubt first
  eq(st:job_own(id2, "done"), false); eq(assert(st:job_get(id2)).state, "running")
  local rows2 = assert(st:job_items(id2, {}))
  eq(st:job_own(id2, "take", "short", 0.05), true)
  eq(st:job_mark(id2, { rows2[1].item_id }, { outcome = "started", runner = "short" }), 1)
  eq(st:job_mark(id2, { rows2[2].item_id }, { outcome = "skipped" }), 1)
  eq(st:job_own(id2, "done", "other"), false) -- "short" is alive: its row may still be settled
  H.wait_until(function() return assert(st:job_get(id2)).runners == 0 end, "the lease of \"short\" expired")
  eq(st:job_own(id2, "done", "other"), true); eq(assert(st:job_get(id2)).state, "done")
  eq(assert(st:job_items(id2, { outcome = "failed" }))[1].code, "in_doubt")
  j = assert(st:job_get(id2))
  eq(j.owner, nil); eq(j.runners, 0)
  -- errors
  check_err("not_found", "no job", st.job_get, st, "x")
  check_err("not_found", "no job", st.job_items, st, "x")
  check_err("not_found", "no job", st.job_own, st, "x", "cancel")
  check_err("invalid", "kind", st.job_create, st, { kind = "frobnicate", all = true })
  check_err("invalid", "outcome", st.job_mark, st, id, { ids[1] }, { outcome = "pending" })
  check_err("invalid", "outcome", st.job_items, st, id, { outcome = "maybe" })
  check_err("invalid", "owner", st.job_own, st, id, "take", nil, 5)
  check_err("invalid", "ttl", st.job_own, st, id, "take", "a", 0)
  raises("'ids' or 'all = true'", st.job_create, st, { kind = "retry" })
  raises("invalid option", st.job_own, st, id, "steal")
end)

H.done()

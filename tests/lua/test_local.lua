-- The local source: scenarios, runs, executions, the DLQ (items, bundle,
-- blueprint snapshot, logs, patch, retry one / many), delete rules, safe
-- retries, retry chains and health -- against real SQLite files and, run
-- again by tests/run, a real PostgreSQL server; and the loopback test server.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"
local S = H.server

local function connect()
  local path, schema = H.new_db()
  return assert(rd.connect { kind = "local", db = path }), path, schema
end

-- A flow of http:ActionSendData modules, ids 1..n; each spec is a URL or a
-- table of mapper fields.
local function blueprint(name, specs)
  local flow = {}
  for i, m in ipairs(specs) do
    if type(m) == "string" then m = { url = m } end
    local mapper = { url = m.url, method = m.method or "get", parseResponse = true }
    if m.data then mapper.bodyType, mapper.contentType, mapper.data = "raw", "application/json", m.data end
    flow[i] = { id = i, module = "http:ActionSendData", version = 3, mapper = mapper,
                metadata = { designer = { x = i * 300, y = 0 } } }
  end
  return { name = name, flow = flow, metadata = { version = 1, scenario = { maxErrors = 3 } } }
end

local count = H.hits -- the test server's requests with ?key=key

local key = H.key

local function collect(it)
  local out = {}
  for v in it do out[#out + 1] = v end
  return out
end

-- a scenario whose module 2 fails with HTTP 500
local function failing_scenario(src, name)
  return assert(src:scenario_create { name = name or "fails",
    blueprint = blueprint(name or "fails", { S .. "/ok", S .. "/status/500" }) })
end

test("local-1.1 connect: kind, name, default store from REDRIVE_DB", function()
  local src = connect()
  eq(src.kind, "local")
  eq(src.name, "local")
  local def = assert(rd.connect())
  eq(def.kind, "local")
  eq(def:path(), os.getenv("REDRIVE_DB"))
  def:close()
  raises("db must be a path", rd.connect, { kind = "local", db = 42 })
end)

test("local-1.2 scenario_create validates: the message names module and field; nothing stored", function()
  local src = connect()
  local bad = blueprint("bad", { S .. "/ok", S .. "/ok" })
  bad.flow[2].mapper.url = nil            -- required field missing
  local msg = check_err("invalid", "module 2", src.scenario_create, src, { name = "bad", blueprint = bad })
  match(msg, "url")
  bad.flow[2].mapper.url = 42              -- wrong type
  msg = check_err("invalid", "module 2", src.scenario_create, src, { name = "bad", blueprint = bad })
  match(msg, "url")
  check_err("invalid", "[Jj][Ss][Oo][Nn]", src.scenario_create, src, { name = "bad", blueprint = "{not json" })
  eq(#src:scenarios(), 0)
  raises("name", src.scenario_create, src, { blueprint = blueprint("x", { S .. "/ok" }) })
end)

test("local-1.3 scenario_create / scenario / scenarios / scenario_update", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "one", blueprint = blueprint("one", { S .. "/ok" }) })
  ok(math.type(sc.id) == "integer", "integer id", sc.id)
  eq(sc.name, "one"); eq(sc.dlq, true)
  -- a JSON string works as well as a table
  local sc2 = assert(src:scenario_create { name = "two", dlq = false,
    blueprint = rd.json.encode(blueprint("two", { S .. "/ok" })) })
  eq(sc2.dlq, false)
  eq(#src:scenarios(), 2)
  eq(src:scenario(sc.id).name, "one")
  eq(src:scenario(sc.id):blueprint():get("/flow/0/mapper/url"), S .. "/ok")
  check_err("not_found", nil, src.scenario, src, 9999)
  -- update: validated
  local bad = blueprint("one", { S .. "/ok" }); bad.flow[1].mapper.url = false
  check_err("invalid", "module 1", src.scenario_update, src, sc.id, { blueprint = bad })
  local up = assert(src:scenario_update(sc.id, { blueprint = blueprint("one", { S .. "/ok?v=2" }) }))
  eq(up:blueprint():get("/flow/0/mapper/url"), S .. "/ok?v=2")
end)

test("local-1.4 a stored blueprint is validated once, when it is stored; never on a run or a retry", function()
  local engine = require "redrive.engine"
  local real, calls = engine.validate, 0
  engine.validate = function(...) calls = calls + 1; return real(...) end
  local ok_, err = pcall(function()
    local src = connect()
    local sc = assert(src:scenario_create { name = "once",
      blueprint = blueprint("once", { S .. "/ok", S .. "/status/500" }) })
    eq(calls, 1)
    for _ = 1, 3 do assert(src:run(sc.id)) end
    local e = assert(src:run(sc.id))
    local it = assert(src:incomplete_item(e.dlq_id))
    assert(it:retry())
    assert(src:retry { all = true, progress = false })
    eq(calls, 1, "validations after runs and retries")
    assert(it:patch { blueprint = blueprint("once", { S .. "/ok", S .. "/ok" }) })
    eq(calls, 2)
    -- a bad blueprint is refused when it is stored, by the same validator
    check_err("invalid", "module 1, mapper.url", src.scenario_create, src, { name = "bad",
      blueprint = { name = "bad", flow = { { id = 1, module = "http:ActionSendData", mapper = {} } } } })
    eq(calls, 3)
  end)
  engine.validate = real
  assert(ok_, err)
end)

test("local-2.1 run success: exec fields, run_data per module, input", function()
  local src = connect()
  local k = key("run")
  local sc = assert(src:scenario_create { name = "ok", blueprint = blueprint("ok", {
    S .. "/ok?key=" .. k, S .. "/json?body={\"n\":{{0.n}}}" }) })
  local e = assert(src:run(sc.id, { input = { n = 5 } }))
  eq(e.status, "success")
  eq(e.mode, "manual")
  eq(e.scenario, sc.id)
  ok(type(e.id) == "string" and #e.id == 32, "32-hex id", e.id)
  ok(e.started_at and e.stopped_at and e.stopped_at >= e.started_at, "times", e)
  eq(e.operations >= 2, true)
  eq(e.error, nil)
  eq(e.dlq_id, nil)
  eq(count(k), 1)
  local rdata = assert(e:run_data())
  ok(rdata["1"] and rdata["2"], "run_data has both modules", rdata)
  eq(rdata["_input"], nil)
  eq(e:input(), { n = 5 })
  -- durations in milliseconds, a module's as the run's (every source's unit):
  -- a module answered after 30 ms took at least 30
  local slow = assert(src:scenario_create { name = "slow", blueprint = blueprint("slow", { S .. "/delay/30" }) })
  local se = assert(src:run(slow.id))
  local sm = assert(se:run_data())["1"]
  ok(math.type(sm.duration) == "integer" and sm.duration >= 30 and sm.duration <= se.duration,
    "module duration in ms, within the run's", sm.duration, se.duration)
  -- stored: the same through execution(id)
  local again = assert(src:execution(e.id))
  eq(again.status, "success"); eq(again.attempts, 1)
  check_err("not_found", nil, src.execution, src, string.rep("0", 32))
end)

test("local-2.2 run failure: error, incomplete item with fields, snapshot and bundle", function()
  local src = connect()
  local sc = failing_scenario(src, "fails")
  local e = assert(src:run(sc.id, { input = { order = 7 } }))
  eq(e.status, "error")
  ok(e.error and e.error.module == 2, "error names module 2", e.error)
  match(e.error.message, "500")
  ok(e.dlq_id, "the execution links its item")
  local it = assert(src:incomplete_item(e.dlq_id))
  eq(it.id, e.dlq_id)
  eq(it.scenario, sc.id)
  eq(it.scenario_name, "fails")
  match(it.reason, "500")
  eq(it.resolved, false)
  eq(it.attempts, 0)
  eq(it.execution_id, e.id)
  eq(it.failer, 2); eq(it.index, 2)
  ok(it.size > 0, "size", it.size)
  ok(it.created, "created")
  ok(it.raw and it.raw.id == it.id, "raw")
  -- the blueprint snapshot survives a later scenario update
  assert(src:scenario_update(sc.id, { blueprint = blueprint("fails", { S .. "/ok", S .. "/ok?fixed=1" }) }))
  local bp = assert(it:blueprint())
  eq(bp:get("/flow/1/mapper/url"), S .. "/status/500")
  -- bundle: the failed module's input
  local b = assert(it:bundle())
  eq(type(b), "table")
  match(rd.json.encode(b), "status/500")
  eq(it:execution().id, e.id)
end)

test("local-2.3 a scenario without dlq stores no item", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "nodlq", dlq = false,
    blueprint = blueprint("nodlq", { S .. "/status/500" }) })
  local e = assert(src:run(sc.id))
  eq(e.status, "error")
  eq(e.dlq_id, nil)
  eq(#collect(src:incomplete {}), 0)
end)

test("local-3.1 executions: lazy iterator with scenario, status, mode, since, until, limit", function()
  local src = connect()
  local a = failing_scenario(src, "a")
  local b = assert(src:scenario_create { name = "b", blueprint = blueprint("b", { S .. "/ok" }) })
  local t0 = rd.time()
  for _ = 1, 3 do assert(src:run(a.id)) end
  for _ = 1, 4 do assert(src:run(b.id, { mode = "scheduled" })) end
  local t1 = rd.time()
  assert(src:run(b.id))
  eq(#collect(src:executions {}), 8)
  eq(#collect(src:executions { scenario = a.id }), 3)
  eq(#collect(src:executions { status = "success" }), 5)
  eq(#collect(src:executions { status = "error", scenario = b.id }), 0)
  eq(#collect(src:executions { mode = "scheduled" }), 4)
  eq(#collect(src:executions { limit = 2 }), 2)
  eq(#collect(src:executions { since = t0, ["until"] = t1 }), 7)
  eq(#collect(src:executions { since = t1 }), 1)
  -- creation order, and every element is an exec with methods
  local prev = ""
  for e in src:executions {} do
    ok(e.id > prev, "ordered"); prev = e.id
    eq(type(e.run_data), "function")
  end
end)

test("local-3.2 executions page through many records", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "many", blueprint = blueprint("many", { S .. "/ok" }) })
  -- write 450 executions straight into the store (faster than running them)
  local st = assert(core.store_open(src:path()))
  for i = 1, 450 do
    assert(st:record { exec = { scenario_id = sc.id, status = i % 3 == 0 and "error" or "success",
      mode = "manual", started_at = 1700000000 + i, stopped_at = 1700000001 + i, duration = 1000 } })
  end
  st:close()
  eq(#collect(src:executions { scenario = sc.id }), 450)
  eq(#collect(src:executions { status = "error" }), 150)
  eq(#collect(src:executions { limit = 301 }), 301)
end)

test("local-4.1 incomplete: filters (scenario, resolved, reason pattern, limit)", function()
  local src = connect()
  local a = failing_scenario(src, "a")
  local b = assert(src:scenario_create { name = "b", blueprint = blueprint("b", { S .. "/v1/webhook" }) })
  for _ = 1, 3 do assert(src:run(a.id)) end
  for _ = 1, 2 do assert(src:run(b.id)) end
  eq(#collect(src:incomplete {}), 5)
  eq(#collect(src:incomplete { scenario = b.id }), 2)
  -- (patterns that cannot match the loopback server's port: it is random,
  -- and "410" or "500" in it made this case fail now and then)
  eq(#collect(src:incomplete { reason = "HTTP 410" }), 2)
  eq(#collect(src:incomplete { reason = "^HTTP 500 from .*/status/500" }), 3)
  eq(#collect(src:incomplete { resolved = true }), 0)
  eq(#collect(src:incomplete { resolved = false, limit = 4 }), 4)
  raises("reason", src.incomplete, src, { reason = "[" })
  for it in src:incomplete { scenario = a.id } do eq(getmetatable(it).__name, "redrive.Item") end
  -- resolved: pending ones unless asked (the same rule on every source)
  local one = collect(src:incomplete { scenario = b.id })[1]
  assert(one:patch { blueprint = blueprint("b", { S .. "/ok" }) })
  assert(one:retry())
  eq(#collect(src:incomplete {}), 4)
  eq(#collect(src:incomplete { resolved = true }), 1)
  eq(#collect(src:incomplete { resolved = "any" }), 5)
  raises("resolved must be true, false or \"any\"", src.incomplete, src, { resolved = 1 })
end)

test("local-5.1 patch the blueprint (410 -> v2) and retry: resolved, linked, logged", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "hook", blueprint = blueprint("hook", {
    S .. "/ok", { url = S .. "/v1/webhook", method = "post", data = "{\"order\":1}" } }) })
  local e = assert(src:run(sc.id))
  eq(e.status, "error")
  local it = assert(src:incomplete_item(e.dlq_id))
  match(it.reason, "410")
  -- a retry with the stored blueprint fails again: attempts + 1, log status 3
  local r = assert(it:retry())
  eq(r.status, "error")
  it = it:refresh()
  eq(it.attempts, 1); eq(it.resolved, false)
  local logs = collect(it:logs {})
  eq(#logs, 1); eq(logs[1].status, 3)
  eq(logs[1].execution_id, r.execution.id)
  -- patch: a broken blueprint is refused, a failer not in the blueprint too
  local bp = assert(it:blueprint())
  local broken = bp:copy(); broken:set("/flow/1/mapper/url", 12)
  check_err("invalid", "module 2", it.patch, it, { blueprint = broken })
  check_err("invalid", "module 9", it.patch, it, { failer = 9 })
  bp:set("/flow/1/mapper/url", S .. "/v2/webhook")
  assert(it:patch { blueprint = bp })
  eq(it:blueprint():get("/flow/1/mapper/url"), S .. "/v2/webhook")
  r = assert(it:retry())
  eq(r.status, "success")
  eq(r.execution.mode, "retry")
  eq(r.execution.retry_of, e.id)
  it = it:refresh()
  eq(it.resolved, true); eq(it.attempts, 2)
  eq(#collect(it:logs {}), 2)
  eq(#collect(it:logs { status = 1 }), 1)
  eq(#collect(it:logs { status = 3 }), 1)
  eq(src:execution(e.id).retry_success_id, r.execution.id)
  -- the webhook got the body
  local rec = assert(rd.http.request { url = S .. "/records?key=webhook2" }):json()
  ok(#rd.json.encode(rec) > 2, "webhook2 recorded something", rec)
end)

test("local-5.2 retry resumes from the failed module: earlier modules are not run again", function()
  local src = connect()
  local ka, kb, kc = key("first"), key("flaky"), key("after")
  local sc = assert(src:scenario_create { name = "resume", blueprint = blueprint("resume", {
    S .. "/ok?key=" .. ka, S .. "/flaky?fail=1&key=" .. kb, S .. "/ok?key=" .. kc }) })
  local e = assert(src:run(sc.id))
  eq(e.status, "error")
  eq(count(ka), 1); eq(count(kb), 1); eq(count(kc), 0)
  local it = assert(src:incomplete_item(e.dlq_id))
  eq(it.failer, 2)
  local r = assert(it:retry())
  eq(r.status, "success")
  eq(count(ka), 1)   -- module 1 was not re-run
  eq(count(kb), 2)
  eq(count(kc), 1)
  -- once resolved, a safe retry is refused
  check_err("conflict", "resolved", it.retry, it)
end)

test("local-5.3 patch failer: resume from another module", function()
  local src = connect()
  local ka, kb = key("pa"), key("pb")
  local sc = assert(src:scenario_create { name = "failer", blueprint = blueprint("failer", {
    S .. "/ok?key=" .. ka, S .. "/ok?key=" .. kb, S .. "/status/500" }) })
  local e = assert(src:run(sc.id))
  local it = assert(src:incomplete_item(e.dlq_id))
  eq(it.failer, 3)
  local bp = it:blueprint()
  bp:set("/flow/2/mapper/url", S .. "/ok")
  assert(it:patch { blueprint = bp, failer = 2 })
  eq(it:refresh().failer, 2)
  local r = assert(it:retry())
  eq(r.status, "success")
  eq(count(ka), 1)
  eq(count(kb), 2)   -- module 2 ran again, module 1 did not
end)

test("local-5.4 retry inside a router route resumes there", function()
  local src = connect()
  local ka, kb, kc = key("ra"), key("rb"), key("rc")
  local bp = blueprint("routed", { S .. "/ok?key=" .. ka })
  bp.flow[2] = { id = 2, module = "builtin:BasicRouter", version = 1, routes = {
    { flow = { { id = 3, module = "http:ActionSendData", mapper = { url = S .. "/ok?key=" .. kb, method = "get" } } } },
    { flow = { { id = 4, module = "http:ActionSendData", mapper = { url = S .. "/flaky?fail=1&key=" .. kc, method = "get" } } } },
  } }
  local sc = assert(src:scenario_create { name = "routed", blueprint = bp })
  local e = assert(src:run(sc.id))
  eq(e.status, "error")
  local it = assert(src:incomplete_item(e.dlq_id))
  eq(it.failer, 4)
  eq(assert(it:retry()).status, "success")
  eq(count(ka), 1); eq(count(kb), 1); eq(count(kc), 2)
end)

test("local-5.5 Break handler: automatic retries on the loop, then the item stays queued", function()
  local src = connect()
  local function break_bp(name, fail, k)
    local bp = blueprint(name, { S .. "/flaky?fail=" .. fail .. "&key=" .. k, S .. "/ok" })
    bp.flow[1].onerror = { { id = 9, module = "builtin:Break", version = 1,
      mapper = { retry = true, count = "2", intervalSeconds = "0.05" } } }
    return assert(src:scenario_create { name = name, blueprint = bp })
  end
  local k1, k2 = key("brk"), key("brk")
  local fixes = break_bp("fixes itself", 2, k1)     -- run and auto attempt 1 fail, attempt 2 succeeds
  local stays = break_bp("stays", 10, k2)           -- every attempt fails
  local e1 = assert(src:run(fixes.id))
  local e2 = assert(src:run(stays.id))
  eq(e1.status, "warning"); ok(e1.dlq_id, "item stored")
  eq(src:incomplete_item(e1.dlq_id).attempts, 0)
  eq(src:wait_auto_retries(), 2)
  local i1, i2 = src:incomplete_item(e1.dlq_id), src:incomplete_item(e2.dlq_id)
  eq(i1.resolved, true); eq(i1.attempts, 2)
  eq(i2.resolved, false); eq(i2.attempts, 2)
  eq(count(k1), 3); eq(count(k2), 3)
  eq(#collect(i2:logs { status = 3 }), 2)
end)

-- n items that fail once (module 2 is /flaky?fail=1 with a key of its own),
-- then succeed on retry
local function flaky_items(src, n, prefix)
  local sc = assert(src:scenario_create { name = prefix, blueprint = blueprint(prefix, {
    S .. "/ok", S .. "/flaky?fail=1&key=" .. prefix .. "-{{0.n}}" }) })
  local ids = {}
  for i = 1, n do
    local e = assert(src:run(sc.id, { input = { n = i } }))
    assert(e.dlq_id, "item stored")
    ids[i] = e.dlq_id
  end
  return sc, ids
end

test("local-6.1 bulk retry: ids, all + except, summary counts", function()
  local src = connect()
  local p = key("bulk")
  local sc, ids = flaky_items(src, 12, p)
  local s = assert(src:retry { ids = { ids[1], ids[2] } })
  eq(s.total, 2); eq(s.succeeded, 2); eq(s.failed, 0); eq(s.skipped, 0)
  eq(src:incomplete_item(ids[1]).resolved, true)
  s = assert(src:retry { all = true, except = { ids[12] }, scenario = sc.id, concurrency = 4 })
  eq(s.total, 9); eq(s.succeeded, 9); eq(s.failed, 0)
  eq(#collect(src:incomplete { resolved = false }), 1)
  eq(src:incomplete_item(ids[12]).resolved, false)
  for i = 1, 11 do eq(count(p .. "-" .. i), 2, "item " .. i .. " retried exactly once") end
  eq(count(p .. "-12"), 1)
  -- ids that are resolved already are skipped, with the reason
  s = assert(src:retry { ids = { ids[1], ids[12] } })
  eq(s.succeeded, 1); eq(s.skipped, 1)
  eq(s.errors[1].id, ids[1]); match(s.errors[1].message, "resolved")
  check_err("invalid", "ids", src.retry, src, {})
end)

test("local-6.2 bulk retry of failures: counted, attempts and logs", function()
  local src = connect()
  local sc = failing_scenario(src, "bulkfail")
  for _ = 1, 5 do assert(src:run(sc.id)) end
  local s = assert(src:retry { all = true, progress = false })
  eq(s.total, 5); eq(s.failed, 5); eq(s.succeeded, 0)
  eq(#s.errors, 5); match(s.errors[1].message, "500")
  for it in src:incomplete {} do
    eq(it.attempts, 1)
    eq(#collect(it:logs { status = 3 }), 1)
    eq(it.lease_owner, nil)   -- released
  end
  -- a progress callback is called per item
  local calls = 0
  s = assert(src:retry { all = true, progress = function() calls = calls + 1 end })
  eq(calls, 5)
end)

test("local-6.3 bulk retry streams: a batch at a time, never the whole queue", function()
  local src = connect()
  local sc = failing_scenario(src, "stream")
  local st = assert(core.store_open(src:path()))
  local bp = src:scenario(sc.id).raw.blueprint
  for i = 1, 600 do
    assert(st:record { exec = { scenario_id = sc.id, status = "error", mode = "manual", started_at = 1700000000 + i },
      dlq = { scenario_id = sc.id, scenario_name = "stream", reason = "x", size = 1, failer = 2,
              blueprint = bp, state = '{}' } })
  end
  -- watch how many items are leased at any moment while the retry runs
  local peak, done = 0, false
  local watcher = rd.spawn(function()
    while not done do
      local n = 0
      for _, it in ipairs(st:dlq_list { resolved = false, limit = 1000 }) do
        if it.lease_owner then n = n + 1 end
      end
      if n > peak then peak = n end
      rd.sleep(0.005)
    end
  end)
  local s = assert(src:retry { all = true, concurrency = 8 })
  done = true; watcher:wait()
  eq(s.total, 600)
  ok(peak <= 8 * 2 + 8, "at most one batch plus the items in flight leased at once", peak)
  st:close()
end)

-- A store summary of the items: resolved, pending, leased.
local function queue_state(src)
  local q = { resolved = 0, pending = 0, leased = 0 }
  for it in src:incomplete { resolved = "any" } do
    if it.resolved then q.resolved = q.resolved + 1 else q.pending = q.pending + 1 end
    if it.lease_owner then q.leased = q.leased + 1 end
  end
  return q
end

-- 40 failed runs whose items now retry against a slow endpoint.
local function slow_queue(src)
  local sc = assert(src:scenario_create { name = "slow", blueprint = blueprint("slow", {
    S .. "/ok", S .. "/status/500?{{0.n}}" }) })
  for i = 1, 40 do assert(src:run(sc.id, { input = { n = i } })) end
  local slow = blueprint("slow", { S .. "/ok", S .. "/delay/20" })
  local ids = {}
  for it in src:incomplete {} do assert(it:patch { blueprint = slow }); ids[#ids + 1] = it.id end
  return ids
end

-- Defect 5: an interrupted bulk retry returns its summary, and the summary
-- tells the truth: what was recorded counts as such, the rest as
-- not_attempted -- pending and unleased, retried by the next run.
test("local-6.4 a cancelled bulk retry returns a true summary: interrupted, not_attempted, the rest pending", function()
  local src = connect()
  slow_queue(src)
  -- cancelled from the progress callback once 5 items are done
  local t
  t = rd.spawn(function()
    return src:retry { all = true, concurrency = 4, progress = function(s)
      if s.succeeded == 5 then t:cancel() end
    end }
  end)
  local s = assert(t:wait())
  eq(s.interrupted, true)
  eq(s.succeeded + s.failed + s.skipped + s.not_attempted, s.total)
  eq(s.total, 40)
  ok(s.succeeded >= 5 and s.not_attempted > 0, "some done, some not attempted", s)
  eq(s.failed, 0)
  -- the store agrees: resolved = succeeded, pending = not attempted, no lease left
  local q = queue_state(src)
  eq(q.resolved, s.succeeded); eq(q.pending, s.not_attempted); eq(q.leased, 0)
  -- results: one per item acted on (and per item claimed but not reached)
  local by = {}
  for _, r in ipairs(s.results) do by[r.status] = (by[r.status] or 0) + 1 end
  eq(by.succeeded, s.succeeded)
  for _, r in ipairs(s.results) do
    if r.status == "succeeded" then ok(src:execution(r.execution), "the result names its execution", r) end
  end
  -- the rest is retried by the next run, each item once
  local s2 = assert(src:retry { all = true, concurrency = 8 })
  eq(s2.succeeded, s.not_attempted); eq(s2.interrupted, nil); eq(s2.not_attempted, 0)
  eq(queue_state(src).resolved, 40)
end)

test("local-6.5 an interrupted bulk retry of ids counts the ids it never reached", function()
  local src = connect()
  local ids = slow_queue(src)
  local t
  t = rd.spawn(function()
    return src:retry { ids = ids, concurrency = 2, progress = function(s)
      if s.succeeded == 3 then t:cancel() end
    end }
  end)
  local s = assert(t:wait())
  eq(s.interrupted, true)
  eq(s.total, 40)
  eq(s.succeeded + s.failed + s.skipped + s.not_attempted, 40)
  local q = queue_state(src)
  eq(q.resolved, s.succeeded); eq(q.pending, s.not_attempted); eq(q.leased, 0)
end)

test("local-6.6 bulk summaries list each item's result, the first 1000 in memory", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "many", blueprint = blueprint("many", {
    S .. "/ok", S .. "/status/500" }) })
  local st = assert(core.store_open(src:path()))
  local bp = src:scenario(sc.id).raw.blueprint
  for i = 1, 1003 do
    assert(st:record { exec = { scenario_id = sc.id, status = "error", mode = "manual", started_at = 1700000000 + i },
      dlq = { scenario_id = sc.id, scenario_name = "many", reason = "x", size = 1, failer = 2,
              blueprint = bp, state = '{}' } })
  end
  st:close()
  local s = assert(src:retry { all = true, concurrency = 16, progress = false })
  eq(s.total, 1003); eq(s.failed, 1003)
  eq(#s.results, 1000); eq(s.results_truncated, 3)
  eq(#s.errors, 1000); eq(s.errors_truncated, 3)
  eq(s.results[1].status, "failed")
  ok(src:execution(s.results[1].execution), "a failed retry's execution is named too")
end)

test("local-7.1 delete rules: all without confirmed refused; leased items reported", function()
  local src = connect()
  local sc = failing_scenario(src, "del")
  for _ = 1, 4 do assert(src:run(sc.id)) end
  local items = collect(src:incomplete {})
  check_err("invalid", "confirmed", src.delete_incomplete, src, { all = true })
  eq(#collect(src:incomplete {}), 4)
  -- another process holds a lease on items[1]
  local other = assert(core.store_open(src:path()))
  eq(#other:claim { ids = { items[1].id }, owner = "other-process", ttl = 60 }, 1)
  check_err("conflict", "being retried", items[1].delete, items[1])
  check_err("conflict", "being retried", items[1].patch, items[1], { failer = 1 })
  check_err("conflict", "being retried", items[1].retry, items[1])
  local r = assert(src:delete_incomplete { all = true, confirmed = true, except = { items[2].id } })
  eq(r.deleted, 2)
  eq(#r.errors, 1); eq(r.errors[1].id, items[1].id); match(r.errors[1].message, "being retried")
  other:release("other-process")
  other:close()
  r = assert(src:delete_incomplete { ids = { items[1].id, "nope" } })
  eq(r.deleted, 1); eq(r.errors[1].id, "nope")
  assert(items[2]:delete())
  eq(#collect(src:incomplete {}), 0)
  check_err("not_found", nil, items[2].delete, items[2])
  -- deleting executions
  local e = assert(src:run(sc.id))
  assert(e:delete())
  check_err("not_found", nil, src.execution, src, e.id)
end)

test("local-8.1 safe retries: running, succeeded, already retried; safe = false forces", function()
  local src = connect()
  local k = key("safe")
  local sc = assert(src:scenario_create { name = "safe", blueprint = blueprint("safe", {
    S .. "/flaky?fail=1&key=" .. k }) })
  local good = assert(src:scenario_create { name = "good", blueprint = blueprint("good", { S .. "/ok" }) })
  -- succeeded
  local ok_e = assert(src:run(good.id))
  check_err("conflict", "succeeded", ok_e.retry, ok_e)
  -- running (recorded by another process)
  local st = assert(core.store_open(src:path()))
  local rid = assert(st:record { exec = { scenario_id = good.id, status = "running", mode = "manual",
    started_at = rd.time() } })
  local running = assert(src:execution(rid))
  check_err("conflict", "still running", running.retry, running)
  check_err("timeout", "still running", running.wait, running, { timeout = 0.05 })
  st:exec_update(rid, { status = "success", stopped_at = rd.time() })
  eq(running:wait { timeout = H.DEADLINE }.status, "success")
  -- failed, then retried successfully: a second retry is refused
  local e = assert(src:run(sc.id))
  eq(e.status, "error")
  local r = assert(e:retry())
  eq(r.status, "success"); eq(r.retry_of, e.id); eq(r.mode, "retry")
  eq(src:execution(e.id).retry_success_id, r.id)
  check_err("conflict", "already retried successfully", e.retry, e)
  -- its incomplete item was resolved by that retry
  local it = src:incomplete_item(e.dlq_id)
  eq(it.resolved, true)
  check_err("conflict", "resolved", it.retry, it)
  local s = assert(src:retry { ids = { it.id } })
  eq(s.skipped, 1); match(s.errors[1].message, "resolved")
  -- forced
  local f = assert(e:retry { safe = false })
  eq(f.status, "success"); eq(f.retry_of, e.id)
  local fi = assert(it:retry { safe = false })
  eq(fi.status, "success")
  eq(fi.forced, true)
  local fo = assert(ok_e:retry { safe = false })
  eq(fo.status, "success")
  -- bulk: a resolved item is skipped unless forced
  s = assert(src:retry { ids = { it.id }, safe = false })
  eq(s.succeeded, 1); eq(s.skipped, 0)
  eq(src:incomplete_item(it.id).resolved, true)
  st:close()
end)

test("local-8.2 exec:retry{attempts}: k < attempts succeeds, k >= attempts returns the last failure", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "flaky", blueprint = blueprint("flaky", {
    S .. "/flaky?key={{0.key}}&fail={{0.fail}}" }) })
  local backoff = { base = 0.005, factor = 2, max = 0.02 }
  for _, case in ipairs { { k = 1, n = 3 }, { k = 2, n = 3 }, { k = 3, n = 3 }, { k = 4, n = 3 } } do
    local kk = key("att")
    local e = assert(src:run(sc.id, { input = { key = kk, fail = case.k } }))
    eq(e.status, "error")
    local last = assert(e:retry { attempts = case.n, backoff = backoff })
    local chain = assert(last:chain())
    if case.k < case.n then
      eq(last.status, "success", "k=" .. case.k)
      eq(#chain, case.k + 1)
      eq(count(kk), case.k + 1)
    else
      eq(last.status, "error", "k=" .. case.k)
      eq(#chain, case.n)
      eq(count(kk), case.n)
    end
    eq(chain[1].id, e.id)
    eq(last.attempts, #chain)
    for i = 2, #chain do
      eq(chain[i].retry_of, chain[i - 1].id)
      eq(chain[i].parent_id, e.id)
    end
  end
end)

test("local-8.3 a chain of 3 retries is walked from any member", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "chain", blueprint = blueprint("chain", {
    S .. "/flaky?key={{0.key}}&fail=3" }) })
  local e = assert(src:run(sc.id, { input = { key = key("chain") } }))
  local r1 = assert(e:retry())
  local r2 = assert(r1:retry())
  local r3 = assert(r2:retry())
  eq(r3.status, "success")
  local want = { e.id, r1.id, r2.id, r3.id }
  for _, member in ipairs { e, r1, r2, r3 } do
    local ids = {}
    for i, x in ipairs(assert(member:chain())) do ids[i] = x.id end
    eq(ids, want)
  end
  eq(src:execution(e.id).retry_success_id, r3.id)
  eq(src:execution(r2.id).retry_success_id, r3.id)
  -- other executions of the scenario are not part of the chain
  assert(src:run(sc.id, { input = { key = key("other") } }))
  eq(#r2:chain(), 4)
end)

-- Raw SQL on a store (test-only triggers): the sqlite3 shell on a file
-- (H.sql), psql in the store's schema.
local have_sqlite3, sql = H.pg or H.have_sqlite3, H.sql
-- A trigger that refuses every link (retry_success_id): on, off.
local function no_link(path, schema, on)
  if H.pg then
    H.psql(on and string.format("CREATE FUNCTION %s.no_link() RETURNS trigger LANGUAGE plpgsql AS" ..
      " $$BEGIN RAISE EXCEPTION 'link refused' USING ERRCODE = '23514'; END$$;" ..
      " CREATE TRIGGER no_link BEFORE UPDATE OF retry_success_id ON %s.execution" ..
      " FOR EACH ROW EXECUTE FUNCTION %s.no_link()", schema, schema, schema)
      or string.format("DROP TRIGGER no_link ON %s.execution", schema))
  else
    sql(path, on and "CREATE TRIGGER no_link BEFORE UPDATE OF retry_success_id ON execution" ..
      " BEGIN SELECT RAISE(ABORT, 'link refused'); END" or "DROP TRIGGER no_link")
  end
end

if not have_sqlite3 then
  skip("local-8.4 a retry and its links are one transaction", "needs the sqlite3 shell for a test trigger")
else
test("local-8.4 a retry and its links are one transaction: a refused link rolls the whole retry back", function()
  local src, path, schema = connect()
  -- exec:retry of an execution without an item (the scenario keeps none)
  local k = key("link")
  local sc = assert(src:scenario_create { name = "link", dlq = false,
    blueprint = blueprint("link", { S .. "/flaky?fail=1&key=" .. k }) })
  local e = assert(src:run(sc.id))
  eq(e.status, "error"); eq(e.dlq_id, nil)
  no_link(path, schema, true)
  check_err("invalid", "link refused", e.retry, e)
  eq(count(k), 2) -- it ran, but nothing of it was recorded:
  eq(#collect(src:executions { scenario = sc.id }), 1)
  eq(src:execution(e.id).retry_success_id, nil)
  -- the item path: the item stays pending, unleased, its attempt unlogged
  local k2 = key("link-item")
  local sc2 = assert(src:scenario_create { name = "link2",
    blueprint = blueprint("link2", { S .. "/flaky?fail=1&key=" .. k2 }) })
  local e2 = assert(src:run(sc2.id))
  local it = assert(src:incomplete_item(e2.dlq_id))
  check_err("invalid", "link refused", it.retry, it)
  it = it:refresh()
  eq(it.resolved, false); eq(it.attempts, 0); eq(it.lease_owner, nil)
  eq(#collect(it:logs {}), 0)
  eq(#collect(src:executions { scenario = sc2.id }), 1)
  -- without the trigger both retries are recorded and linked
  no_link(path, schema, false)
  local r = assert(e:retry())
  eq(r.status, "success")
  eq(src:execution(e.id).retry_success_id, r.id)
  local ri = assert(it:retry())
  eq(ri.status, "success")
  eq(src:execution(e2.id).retry_success_id, ri.execution.id)
  eq(it:refresh().resolved, true)
end)
end

test("local-8.5 a safe retry judges the whole chain: a middle member of a chain that succeeded is refused", function()
  local src = connect()
  local k = key("chainsafe")
  local sc = assert(src:scenario_create { name = "chainsafe", dlq = false,
    blueprint = blueprint("chainsafe", { S .. "/flaky?fail=3&key=" .. k }) })
  local e = assert(src:run(sc.id))
  local r1 = assert(e:retry())
  local r2 = assert(r1:retry())
  local r3 = assert(r2:retry())
  eq({ r1.status, r2.status, r3.status }, { "error", "error", "success" })
  eq(src:execution(r2.id).retry_success_id, r3.id)
  eq(src:execution(e.id).retry_success_id, r3.id)
  eq(src:execution(r1.id).retry_success_id, nil)
  -- r1 itself was never linked, but its chain's root was
  check_err("conflict", "retry chain of execution " .. r1.id .. " already succeeded %(execution " .. r3.id, r1.retry,
    r1)
  eq(count(k), 4)
  local forced = assert(r1:retry { safe = false })
  eq(forced.status, "success"); eq(forced.parent_id, e.id)
  eq(count(k), 5)
end)

test("local-8.6 exec:retry takes its item under the lease: refused while another process retries it", function()
  local src = connect()
  local k = key("held")
  local sc = assert(src:scenario_create { name = "held",
    blueprint = blueprint("held", { S .. "/flaky?fail=1&key=" .. k }) })
  local e = assert(src:run(sc.id))
  local other = assert(core.store_open(src:path()))
  eq(#other:claim { ids = { e.dlq_id }, owner = "other-process", ttl = 60 }, 1)
  check_err("conflict", "being retried", e.retry, e)
  eq(count(k), 1) -- not run
  other:release("other-process")
  other:close()
  local r = assert(e:retry())
  eq(r.status, "success"); eq(r.dlq_id, e.dlq_id)
  local it = src:incomplete_item(e.dlq_id)
  eq(it.resolved, true); eq(it.attempts, 1)
  -- a forced retry of the resolved item is leased and logged like any other
  local f = assert(it:retry { safe = false })
  eq(f.forced, true)
  local logs = collect(it:logs {})
  eq(#logs, 2); eq(logs[2].forced, true)
  it = it:refresh()
  eq(it.resolved, true); eq(it.attempts, 2); eq(it.lease_owner, nil)
end)

test("local-9.1 health: 70 successes, 30 failures with two reasons", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "mixed", blueprint = blueprint("mixed", {
    S .. "/{{0.path}}" }) })
  local other = failing_scenario(src, "other")
  assert(src:run(other.id))
  local t0 = rd.time()
  for i = 1, 100 do
    local path = i <= 70 and "ok" or i <= 90 and "status/500" or "v1/webhook"
    assert(src:run(sc.id, { input = { path = path } }))
  end
  local h = assert(src:health { scenario = sc.id })
  eq(h.total, 100); eq(h.finished, 100); eq(h.running, 0)
  eq(h.succeeded, 70); eq(h.failed, 30)
  ok(math.abs(h.success_rate - 0.7) < 1e-9, "success rate", h.success_rate)
  ok(h.avg_duration >= 0 and h.p95_duration >= 0, "durations", h)
  eq(#h.top_reasons, 2)
  match(h.top_reasons[1][1], "500"); eq(h.top_reasons[1][2], 20)
  match(h.top_reasons[2][1], "410"); eq(h.top_reasons[2][2], 10)
  eq(h.top_reasons[1].count, 20)
  local all = assert(src:health {})
  eq(all.total, 101); eq(all.failed, 31)
  eq(assert(src:health { since = t0 }).total, 100)
  eq(#assert(src:health { scenario = sc.id, limit = 1 }).top_reasons, 1)
end)

test("local-9.1 two sources on one store file write concurrently (group commits do not block each other)", function()
  local db = H.new_db()
  local a = assert(rd.connect { kind = "local", db = db })
  local b = assert(rd.connect { kind = "local", db = db })
  local sc = assert(a:scenario_create { name = "two", blueprint = { name = "two", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = S .. "/ok", method = "get" } } } } })
  local waited = 0
  local r = assert(rd.all {
    function() for _ = 1, 30 do assert(a:run(sc.id)) end end,
    function() for _ = 1, 30 do assert(b:run(sc.id)) end end,
    function() -- the loop keeps turning: a store waiting on the other's lock would block it
      for _ = 1, 5 do rd.sleep(0.001); waited = waited + 1 end
    end,
  })
  eq(#r, 0)
  eq(waited, 5)
  eq(#collect(b:executions { scenario = sc.id, limit = 100 }), 60)
  a:close(); b:close()
end)

H.done()

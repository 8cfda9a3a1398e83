-- Cancellation is one value, rd.canceled, compared by identity from the C
-- wait layer up: a cancelled wait raises it, it passes unchanged through task
-- failure, xpcall, rd.all / rd.each, the engine and the local source, and an
-- error that merely mentions "canceled" or "interrupted" is an ordinary
-- failure that is recorded like any other.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local engine = require "redrive.engine"

-- Park the calling task until `n` tasks have called arrive().
local function barrier(n)
  local cv, count = rd.cond(), 0
  return {
    arrive = function() count = count + 1; cv:broadcast() end,
    wait = function() while count < n do cv:wait() end end,
  }
end

local function flow(...)
  return { name = "cancel", flow = { ... }, metadata = { version = 1, scenario = {} } }
end

engine.register { type = "test:Raise", fields = { msg = "string" }, run = function(_, m)
  error(m.msg, 0)
end }
engine.register { type = "test:RaiseCanceled", fields = {}, run = function()
  error(rd.canceled)
end }

-- ---------------------------------------------------------------------------
-- 1. the value

test("cancel-1.1 rd.canceled is one value: prints 'interrupted', recognised by identity only", function()
  eq(tostring(rd.canceled), "interrupted")
  eq(rd.is_canceled(rd.canceled), true)
  eq(rd.is_canceled("interrupted"), false)
  eq(rd.is_canceled("x: interrupted"), false)
  eq(rd.is_canceled("payment was canceled"), false)
  eq(rd.is_canceled({ code = "canceled" }), false)
  eq(rd.is_canceled(nil), false)
  eq("stopped: " .. rd.canceled, "stopped: interrupted")
  raises("attempt to concatenate", function() return rd.canceled .. {} end)
  eq(getmetatable(rd.canceled), "locked")
end)

test("cancel-1.2 task:cancel: the task's wait raises rd.canceled, t:wait returns it", function()
  local t = rd.spawn(function() rd.sleep(30) end)
  coroutine.yield() -- let it start and park
  eq(t:status(), "waiting")
  eq(t:cancel(), true)
  local r, err = t:wait()
  eq(r, nil)
  ok(rawequal(err, rd.canceled), "the error is rd.canceled itself", err)
  eq(t:status(), "failed")
end)

test("cancel-1.3 the value passes unchanged through xpcall(debug.traceback), pcall and nested tasks", function()
  local ok1, e1 = xpcall(error, debug.traceback, rd.canceled)
  eq(ok1, false); ok(rawequal(e1, rd.canceled), "xpcall with debug.traceback", e1)
  local inner = rd.spawn(function() rd.sleep(30) end)
  local outer = rd.spawn(function()
    local _, err = inner:wait()
    local okp, e = pcall(error, err)
    assert(not okp)
    error(e) -- a task failing with it keeps it (no traceback string)
  end)
  coroutine.yield()
  inner:cancel()
  local r, err = outer:wait()
  eq(r, nil); ok(rd.is_canceled(err), "outer task failed with rd.canceled", err)
  -- a string error still gets its traceback, and is not a cancellation
  local s = rd.spawn(function() error("the job was interrupted") end)
  local _, serr = s:wait()
  match(serr, "the job was interrupted"); match(serr, "stack traceback")
  eq(rd.is_canceled(serr), false)
end)

-- ---------------------------------------------------------------------------
-- 2. combinators

test("cancel-2.1 rd.all returns rd.canceled from a cancelled function", function()
  local b = barrier(1)
  local victim
  local t = rd.spawn(function()
    return rd.all {
      function()
        victim = rd.spawn(function() rd.sleep(30) end)
        b.arrive()
        local _, e = victim:wait()
        error(e)
      end,
      function() return 2 end,
    }
  end)
  b.wait()
  coroutine.yield() -- the victim parks
  victim:cancel()
  local r, err = t:wait()
  eq(r, nil); ok(rd.is_canceled(err), "rd.all's error is rd.canceled", err)
end)

test("cancel-2.2 cancelling rd.all's caller cancels its functions (nothing keeps running)", function()
  local b, never = barrier(2), rd.cond()
  local outcome = {}
  local caller = rd.spawn(function()
    return rd.all {
      function() b.arrive(); local _, e = pcall(never.wait, never); outcome[1] = e end,
      function() b.arrive(); local _, e = pcall(never.wait, never); outcome[2] = e end,
    }
  end)
  b.wait()
  eq(caller:cancel(), true)
  local r, err = caller:wait()
  eq(r, nil); ok(rd.is_canceled(err), "the caller fails with rd.canceled", err)
  ok(rd.is_canceled(outcome[1]) and rd.is_canceled(outcome[2]), "both functions were cancelled and ended", outcome)
end)

test("cancel-2.3 rd.each: a worker's own error mentioning 'interrupted' does not stop the map", function()
  local seen = {}
  local s = rd.each({ 1, 2, 3, 4, 5 }, function(v)
    seen[#seen + 1] = v
    if v == 2 then error("x interrupted", 0) end
    if v == 3 then error("payment was canceled", 0) end
  end, { concurrency = 1 })
  eq(#seen, 5)
  eq(s.ok, 3); eq(s.failed, 2)
  match(s.errors[1].error, "^x interrupted")
end)

test("cancel-2.4 rd.each: a real cancellation stops the map and its workers", function()
  local b, never = barrier(2), rd.cond()
  local started, ended = 0, 0
  local caller = rd.spawn(function()
    return rd.each({ 1, 2, 3, 4, 5, 6 }, function()
      started = started + 1
      b.arrive()
      local okw, e = pcall(never.wait, never)
      ended = ended + 1
      if not okw then error(e, 0) end
    end, { concurrency = 2 })
  end)
  b.wait()
  eq(caller:cancel(), true)
  local r, err = caller:wait()
  eq(r, nil); ok(rd.is_canceled(err), "the caller fails with rd.canceled", err)
  eq(started, 2, "no item started after the cancellation")
  eq(ended, 2, "both workers unwound")
end)

test("cancel-2.5b rd.each: a worker queued to run when its caller is cancelled stops at its next wait", function()
  -- the caller is cancelled first, then worker 1's wait ends: the caller
  -- runs before it and cancels a worker that is not parked. That cancel
  -- must hold for its next wait (it was lost: a make src:retry{wait} kept
  -- following one item until its 600 s deadline)
  local b, go, never = barrier(2), rd.cond(), rd.cond()
  local woke, ended = false, {}
  local caller = rd.spawn(function()
    return rd.each({ 1, 2 }, function(v)
      b.arrive()
      if v == 1 then go:wait(); woke = true end
      local okw, e = pcall(never.wait, never)
      ended[v] = rd.is_canceled(e)
      if not okw then error(e, 0) end
    end, { concurrency = 2 })
  end)
  b.wait() -- worker 1 parks on go, worker 2 on never
  eq(caller:cancel(), true)
  eq(go:signal(), 1)
  local r, err = H.bounded(caller.wait, caller) -- H.DEADLINE only bounds a hang
  eq(r, nil); ok(rd.is_canceled(err), "the caller fails with rd.canceled", err)
  eq(woke, true, "worker 1's wait ended with its own outcome")
  eq(ended, { true, true }, "both workers' next waits raised rd.canceled")
end)

test("cancel-2.5c task:cancel of a task queued to run: that wait keeps its outcome, the next raises", function()
  local go, never = rd.cond(), rd.cond()
  local got
  local t = rd.spawn(function()
    go:wait()
    got = "woke"
    never:wait()
    got = "not cancelled"
  end)
  coroutine.yield() -- it parks on go
  eq(go:signal(), 1)
  eq(t:status(), "ready")
  eq(t:cancel(), true)
  eq(t:cancel(), true) -- not yet delivered: one cancellation, held
  local r, err = H.bounded(t.wait, t)
  eq(r, nil); ok(rd.is_canceled(err), "its next wait raised rd.canceled", err)
  eq(got, "woke")
  -- cancelled twice while parked: the second finds it queued to see the
  -- first, so a clean-up wait after catching it is not cancelled too
  local cleaned
  local u = rd.spawn(function()
    local okw = pcall(never.wait, never)
    assert(not okw)
    rd.sleep(0)
    cleaned = true
  end)
  coroutine.yield()
  eq(u:cancel(), true); eq(u:cancel(), false)
  H.bounded(u.wait, u)
  eq(cleaned, true)
end)

test("cancel-2.5 rd.each: a worker cancelled inside fn stops the map", function()
  local b = barrier(1)
  local worker_task
  local s
  local t = rd.spawn(function()
    s = rd.each({ 1, 2, 3, 4 }, function(v)
      if v == 1 then
        worker_task = rd.spawn(function() rd.sleep(30) end)
        b.arrive()
        local _, e = worker_task:wait()
        error(e)
      end
    end, { concurrency = 1 })
  end)
  b.wait()
  coroutine.yield()
  worker_task:cancel()
  t:wait()
  eq(t:status(), "done")
  eq(s.failed, 1); eq(s.ok, 0)
  ok(rd.is_canceled(s.errors[1].error), "the recorded error is rd.canceled", s.errors[1].error)
end)

-- ---------------------------------------------------------------------------
-- 3. the engine and the local source

test("cancel-3.1 a module's own 'canceled' / 'interrupted' error is a module failure", function()
  for _, msg in ipairs { "payment was canceled", "upstream job interrupted" } do
    local out = engine.run(flow({ id = 1, module = "test:Raise", mapper = { msg = msg } }), { dlq = true })
    eq(out.status, "error", msg)
    eq(out.error.module, 1); eq(out.error.code, "engine")
    match(out.error.message, msg)
    ok(out.incomplete, "an incomplete execution is due", msg)
  end
end)

test("cancel-3.2 a module raising rd.canceled cancels the run (raised, not recorded)", function()
  local okr, err = pcall(engine.run, flow({ id = 1, module = "test:RaiseCanceled", mapper = {} }), { dlq = true })
  eq(okr, false); ok(rawequal(err, rd.canceled), "engine.run raises rd.canceled", err)
end)

test("cancel-3.3 src:run records a module's own 'canceled' error: execution and incomplete execution", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  for i, msg in ipairs { "payment was canceled", "upstream job interrupted" } do
    local sc = assert(src:scenario_create { name = "pay" .. i, dlq = true,
      blueprint = flow({ id = 1, module = "test:Raise", mapper = { msg = msg } }) })
    local e, err = src:run(sc.id)
    ok(e, "src:run returns the execution", err)
    eq(e.status, "error")
    match(e.error.message, msg)
    ok(e.dlq_id, "an incomplete execution is recorded")
    local items = {}
    for it in src:incomplete { scenario = sc.id } do items[#items + 1] = it end
    eq(#items, 1); match(items[1].reason, msg)
    eq(assert(src:execution(e.id)).status, "error")
  end
  src:close()
end)

test("cancel-3.4 a cancelled src:run raises rd.canceled and records nothing", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = assert(src:scenario_create { name = "slow", dlq = true,
    blueprint = flow({ id = 1, module = "test:RaiseCanceled", mapper = {} }) })
  local okr, err = pcall(src.run, src, sc.id)
  eq(okr, false); ok(rd.is_canceled(err), "src:run raises rd.canceled", err)
  local n = 0
  for _ in src:executions { scenario = sc.id } do n = n + 1 end
  eq(n, 0)
  src:close()
end)

H.done()

-- Make retries that are queued and logged later (issue 14): item:retry{wait}
-- and src:retry{wait} follow the item's logs until Make logged the attempt,
-- and a bulk retry interrupted mid-chunk tells the truth. Prism's Make mock
-- is stateless (its logs never change), so these run against the Make-like
-- DLQ API of the loopback test server (tests/server/server.c, /make): an
-- item's id spells what it does -- s<N> the status its retry is logged with
-- (s0: never), k<N> the log polls before the log shows, p<N> logs already
-- there, h1 a bulk request naming it is never answered.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = H.server

local function connect()
  return assert(rd.connect { kind = "make", base_url = S .. "/make", token = "mk-test-token",
    backoff = { base = 0.01, max = 0.05 } })
end

-- a fresh id with these letters (the tag keeps runs apart)
local function id(spec) return "t" .. H.pid .. "x" .. math.random(1 << 30) .. spec end

-- requests the server saw about an item
local function hits(item_id)
  return assert(rd.http.request { url = S .. "/count?key=make/" .. item_id }):json().count
end

local FAST = { interval = 0.01, max_interval = 0.02 }
local function with(t) for k, v in pairs(FAST) do if t[k] == nil then t[k] = v end end return t end

test("make-wait-1.1 item:retry{wait} reports the logged attempt, not an older log", function()
  local src = connect()
  local x = id("s1k3p2") -- two error logs already; its retry is logged (success) on the 4th poll
  local it = assert(src:incomplete_item(x))
  local r = assert(it:retry(with { wait = true, timeout = 30 }))
  eq(r.status, "success"); eq(r.success, true)
  eq(r.execution, x .. "-E3"); eq(r.log.id, x .. "-L3"); eq(r.log.status, 1)
  eq(r.duration, 1003); eq(r.operations, 3); eq(r.transfer, 512)
  -- detail (2: incomplete_item and the safe check), the logs before, the
  -- retry, then exactly k + 1 = 4 polls: it stops at the log
  eq(hits(x), 2 + 1 + 1 + 4)
  -- without wait: queued, not succeeded
  local y = id("s1")
  local q = assert(assert(src:incomplete_item(y)):retry())
  eq(q.status, "queued"); eq(q.success, nil)
end)

test("make-wait-1.2 warning and error outcomes are reported as logged", function()
  local src = connect()
  local w = assert(assert(src:incomplete_item(id("s2k1"))):retry(with { wait = true }))
  eq(w.status, "warning"); eq(w.success, true); eq(w.log.status, 2)
  local e = assert(assert(src:incomplete_item(id("s3"))):retry(with { wait = true }))
  eq(e.status, "error"); eq(e.success, false); eq(e.log.status, 3)
end)

test("make-wait-1.3 an attempt never logged: timeout, it stays queued", function()
  local src = connect()
  local x = id("s0")
  local it = assert(src:incomplete_item(x))
  local msg = check_err("timeout", "the retry of make incomplete execution " .. x .. " still queued after",
    it.retry, it, with { wait = true, timeout = 0.05 })
  match(msg, "Make has not logged its outcome yet")
end)

test("make-wait-1.4 bad wait options are refused before anything is sent", function()
  local src = connect()
  local x = id("s1")
  local it = setmetatable({ id = x }, src._mt.item)
  raises("wait must be a boolean", it.retry, it, { wait = "yes" })
  check_err("invalid", "timeout", it.retry, it, { wait = true, timeout = -1 })
  check_err("invalid", "interval", src.retry, src, { ids = { x }, scenario = 7, safe = false, wait = true,
    interval = 0 })
  eq(hits(x), 0)
end)

test("make-wait-2.1 src:retry{wait}: each outcome as logged, with its execution", function()
  local src = connect()
  local ok1, ok2, warn, bad = id("s1k2"), id("s1"), id("s2k1"), id("s3k1")
  local streamed = {}
  local s = assert(src:retry(with { ids = { ok1, ok2, warn, bad }, wait = true, timeout = 30, progress = false,
    on_result = function(r) streamed[r.id] = r end }))
  eq(s.total, 4); eq(s.succeeded, 3); eq(s.failed, 1); eq(s.queued, 0); eq(s.skipped, 0)
  local by = {}
  for _, r in ipairs(s.results) do by[r.id] = r end
  eq(by[ok1], { id = ok1, status = "succeeded", execution = ok1 .. "-E1" })
  eq(by[warn].status, "succeeded"); eq(by[warn].execution, warn .. "-E1")
  eq(by[bad], { id = bad, status = "failed", execution = bad .. "-E1" })
  match(s.errors[1].message, "Make logged the retry of " .. bad .. " as an error")
  eq(streamed[bad].status, "failed")
  -- without wait: queued
  local q = assert(src:retry { ids = { id("s1") }, progress = false })
  eq(q.queued, 1); eq(q.succeeded, 0); eq(q.results[1].status, "queued")
end)

test("make-wait-2.2 src:retry{wait}: an attempt not logged in time is unknown, never succeeded", function()
  local src = connect()
  local never, done = id("s0"), id("s1")
  local s = assert(src:retry(with { ids = { never, done }, scenario = 7, safe = false, wait = true,
    timeout = 0.05, progress = false }))
  eq(s.total, 2); eq(s.unknown, 1); eq(s.succeeded, 1) -- the logged one is looked at once, deadline or not
  local by = {}
  for _, r in ipairs(s.results) do by[r.id] = r.status end
  eq(by[never], "unknown")
  for _, e in ipairs(s.errors) do
    if e.id == never then eq(e.code, "timeout"); match(e.message, "still queued") end
  end
end)

test("make-wait-3.1 a bulk retry interrupted mid-chunk: sent, unknown, not attempted", function()
  local src = connect()
  local ids, held = {}, nil
  for i = 1, 250 do ids[i] = id("s1") end
  held = id("s1h1"); ids[150] = held -- the second chunk (101..200) is never answered
  local t = rd.spawn(function()
    return src:retry { ids = ids, scenario = 7, safe = false, progress = false }
  end)
  -- the event: the server has seen the held chunk's request
  H.wait_until(function() return hits(held) > 0 end, "the held chunk's request at the server")
  t:cancel()
  local s = assert(t:wait())
  eq(s.interrupted, true)
  eq(s.total, 250)
  eq(s.queued, 100); eq(s.unknown, 100); eq(s.not_attempted, 50); eq(s.failed, 0); eq(s.succeeded, 0)
  local by = {}
  for _, r in ipairs(s.results) do by[r.id] = r.status end
  eq(by[ids[1]], "queued"); eq(by[held], "unknown"); eq(by[ids[250]], "not_attempted")
  eq(hits(ids[250]), 0) -- never sent
end)

test("make-wait-3.2 interrupted while following: what was sent stays queued", function()
  local src = connect()
  local a, b = id("s0"), id("s0")
  local t = rd.spawn(function()
    return src:retry(with { ids = { a, b }, scenario = 7, safe = false, wait = true, timeout = 600,
      progress = false })
  end)
  -- the event: both were sent and polled at least once
  H.wait_until(function() return hits(a) >= 3 and hits(b) >= 3 end, "both items sent and polled")
  t:cancel()
  local s = assert(t:wait())
  local seen = {}
  for _, r in ipairs(s.results or {}) do seen[#seen + 1] = r.id:sub(-6) .. "=" .. r.status end
  for _, e in ipairs(s.errors or {}) do seen[#seen + 1] = tostring(e.code) .. ":" .. tostring(e.message) end
  local why = table.concat(seen, "; ")
  eq(s.interrupted, true, why); eq(s.total, 2, why); eq(s.queued, 2, why); eq(s.succeeded, 0, why)
  eq(s.unknown or 0, 0, why)
end)

H.done()

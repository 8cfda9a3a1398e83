-- Faulty network: the loopback server drops connections, stalls, sends
-- garbage, 5xx and 429 storms. Scripts get a clear error (nil, message, code
-- naming the method and the URL without its query) within the timeout they
-- set, never a hang; retries are bounded (one attempt per item per retry
-- call); nothing acknowledged is lost (every run that returned is in the
-- store, every failed one is an incomplete execution until retried).
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local S = H.server
if not S then
  skip("faults", "RD_TEST_SERVER not set")
  H.done()
end
local RUN = tostring(os.time()) .. "-" .. math.random(1 << 30)

-- Call fn and require it to end: a hang fails the test at the harness's
-- generous deadline. How soon it ends is the machine's business; that the
-- request's own timeout (not a later one) ended it shows in the code and
-- the message ("timed out after 500 ms").
local function within(fn, ...)
  return H.bounded(fn, ...)
end

local function req(path, opts)
  opts = opts or {}
  opts.url = S .. path
  opts.timeout = opts.timeout or 60 -- a bound on a hang: the answers here come at once
  return rd.http.request(opts)
end

test("faults-1.1 a stalled server: 'timeout' after the request's timeout, not later", function()
  local r, msg, code = within(req, "/stall?token=sekrit", { timeout = 0.5 })
  eq(r, nil)
  eq(code, "timeout")
  match(msg, "timed out after 500 ms")
  match(msg, "GET http://127%.0%.0%.1:%d+/stall")
  ok(not msg:find("sekrit"), "query string leaked into: " .. msg)
end)

test("faults-1.2 connection closed without an answer, and in the middle of the body", function()
  local r, msg, code = within(req, "/close")
  eq(r, nil)
  ok(code == "http" or code == "connect", "code " .. tostring(code))
  match(msg, "/close")
  r, msg, code = within(req, "/close-mid-body")
  eq(r, nil, "a truncated body must not be a response")
  eq(code, "http")
  match(msg, "/close%-mid%-body")
end)

test("faults-1.3 garbage, invalid chunking, invalid gzip: errors, not partial results", function()
  for _, p in ipairs { "/garbage", "/bad-chunked", "/bad-gzip" } do
    local r, msg, code = within(req, p)
    eq(r, nil, p .. " gave a response")
    eq(code, "http", p)
    match(msg, p:gsub("%-", "%%-"))
  end
end)

test("faults-1.4 a huge header block: a clear error or the response, within the timeout", function()
  for _, n in ipairs { 60000, 200000, 2000000 } do
    local r, msg, code = within(req, "/huge-header?n=" .. n)
    if r then eq(r.status, 200) else
      eq(code, "http", "n=" .. n)
      ok(type(msg) == "string" and #msg > 0)
    end
  end
end)

test("faults-1.5 connection refused: 'connect' at once", function()
  local r, msg, code = within(rd.http.request, { url = "http://127.0.0.1:1/x?k=v", timeout = 5 })
  eq(r, nil)
  eq(code, "connect")
  ok(not msg:find("k=v"), msg)
end)

test("faults-2.1 a 5xx storm with resets, 300 requests at once: each ends, none hangs", function()
  local key = "storm-" .. RUN
  local statuses, errors, n = {}, 0, 300
  local list = {}
  for i = 1, n do list[i] = i end
  local s = within(rd.each, list, function()
    local r, msg, code = req("/chaos?p=0.6&key=" .. key)
    if r then statuses[r.status] = (statuses[r.status] or 0) + 1
    else
      errors = errors + 1
      ok(code == "http" or code == "connect", tostring(code) .. " " .. tostring(msg))
    end
  end, { concurrency = 64 })
  eq(s.ok, n)
  local total = errors
  for _, c in pairs(statuses) do total = total + c end
  eq(total, n, "every request ended once")
  ok((statuses[200] or 0) > 0 and (statuses[500] or 0) + (statuses[502] or 0) + (statuses[503] or 0) > 0,
    "a mix of answers " .. rd.json.encode(statuses))
end)

test("faults-2.2 a 429 storm: 429 responses with Retry-After, never an error or a hang", function()
  local key = "rl-" .. RUN
  local got = {}
  local list = {}
  for i = 1, 100 do list[i] = i end
  within(rd.each, list, function()
    local r = assert(req("/ratelimit?rate=0.1&key=" .. key))
    got[r.status] = (got[r.status] or 0) + 1
    if r.status == 429 then ok(r.headers["retry-after"], "429 without Retry-After") end
  end, { concurrency = 32 })
  ok((got[429] or 0) >= 50, "429s: " .. rd.json.encode(got))
end)

-- A scenario whose HTTP module hits `url`, with a module timeout.
local function scenario(src, name, url, timeout)
  return assert(src:scenario_create { name = name, blueprint = { name = name, flow = {
    { id = 1, module = "util:SetVariable", mapper = { name = "n", value = "{{0.n}}" } },
    { id = 2, module = "http:ActionSendData", mapper = { url = url, method = "get", timeout = timeout } },
    { id = 3, module = "json:ParseJSON", mapper = { json = "{{2.data}}" } },
  } } })
end

test("faults-3.1 an engine run against a stalled endpoint ends at the module timeout, kept for retry", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = scenario(src, "stall", S .. "/stall", 1)
  local e = within(src.run, src, sc.id, { input = { n = 1 } })
  eq(e.status, "error")
  eq(e.error.code, "timeout")
  ok(e.dlq_id, "no incomplete execution")
  local it = assert(src:incomplete_item(e.dlq_id))
  eq(it.failer, 2)
  local before = it.attempts
  -- a bulk retry of it is bounded too: one attempt, an error, the item stays
  local s = within(src.retry, src, { all = true, concurrency = 4, progress = false })
  eq({ s.total, s.succeeded, s.failed }, { 1, 0, 1 })
  it = assert(src:incomplete_item(e.dlq_id))
  eq(it.resolved, false)
  eq(it.attempts, before + 1, "one more attempt")
end)

test("faults-3.2 chaos (5xx and resets) under load: nothing acknowledged is lost, retries are bounded", function()
  local db = H.tmpname(".db")
  local src = assert(rd.connect { kind = "local", db = db })
  local key = "engine-chaos-" .. RUN
  local sc = scenario(src, "chaos", S .. "/chaos?p=0.4&key=" .. key, 3)
  local n, acked, failed_acked = 200, {}, 0
  local list = {}
  for i = 1, n do list[i] = i end
  local s = within(rd.each, list, function(i)
    local e = assert(src:run(sc.id, { input = { n = i } }))
    acked[#acked + 1] = e
    if e.status == "error" then
      failed_acked = failed_acked + 1
      ok(e.dlq_id, "failed run " .. e.id .. " has no incomplete execution")
      ok(e.error and e.error.message and #e.error.message > 0, "failed run without a message")
    end
  end, { concurrency = 32 })
  eq(s.failed, 0, s.errors[1] and tostring(s.errors[1].error))
  ok(failed_acked > 0, "chaos made no run fail")
  -- every acknowledged execution is in the store, as acknowledged
  for _, e in ipairs(acked) do
    local x = assert(src:execution(e.id))
    eq(x.status, e.status, "execution " .. e.id)
  end
  local pending = 0
  for _ in src:incomplete { resolved = false } do pending = pending + 1 end
  eq(pending, failed_acked, "pending items = failed runs")
  -- retry rounds: each makes one attempt per pending item, the queue shrinks
  local rounds, attempts = 0, 0
  while pending > 0 and rounds < 30 do
    rounds = rounds + 1
    local r = within(src.retry, src, { all = true, concurrency = 32, progress = false })
    eq(r.total, pending, "round " .. rounds .. " attempted each pending item once")
    attempts = attempts + r.total
    pending = pending - r.succeeded
  end
  eq(pending, 0, "still pending after " .. rounds .. " rounds")
  -- every item resolved exactly once, attempts = logs
  for it in src:incomplete {} do
    eq(it.resolved, true)
    local nlogs, nok = 0, 0
    for l in it:logs {} do nlogs = nlogs + 1; if l.status == 1 then nok = nok + 1 end end
    eq(nok, 1, "item " .. it.id .. " success logs")
    eq(it.attempts, nlogs, "item " .. it.id .. " attempts vs logs")
  end
end)

test("faults-3.3 a 429 storm through the engine: failed runs are kept, with the status in the reason", function()
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = scenario(src, "rl", S .. "/ratelimit?rate=0.2&key=eng-" .. RUN, 3)
  local list = {}
  for i = 1, 40 do list[i] = i end
  local ok_runs, kept = 0, 0
  within(rd.each, list, function(i)
    local e = assert(src:run(sc.id, { input = { n = i } }))
    if e.status == "success" then ok_runs = ok_runs + 1
    else
      kept = kept + 1
      local it = assert(src:incomplete_item(e.dlq_id))
      match(it.reason, "429")
    end
  end, { concurrency = 16 })
  eq(ok_runs + kept, 40)
  ok(kept > 0, "no run was rate limited")
end)

H.done()

-- Loopback rate-limit and chaos runs of the remote machinery through the C
-- test server (RD_TEST_SERVER): /ratelimit answers 429 + Retry-After beyond
-- its rate, /chaos answers random 5xx and resets connections. Each run of
-- 2 000 items must end with every item processed exactly once and no error
-- surfaced to the script.
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local R = require "remote_helpers"
local remote, SERVER, TOKEN = R.remote, R.SERVER, R.TOKEN
local client, get_json, key = R.client, R.get_json, R.key

if not SERVER then
  skip("loopback tests", "RD_TEST_SERVER not set (run through tests/run)")
  H.done()
end

test("2000 POSTs through /ratelimit: each once, no error surfaced", function()
  local k = key("rl")
  local c = client { concurrency = 32, rate_limit_retries = 50 }
  local done, seen = 0, {}
  local ids = {}
  for i = 1, 2000 do ids[i] = i end
  local s = rd.each(ids, function(i)
    local res, err, code = c:request { method = "POST", path = "/ratelimit",
      query = { key = k, rate = 1500, burst = 0 }, json = { item = i } }
    assert(res, tostring(err) .. " " .. tostring(code))
    assert(not seen[i], "item processed twice")
    seen[i] = true
    done = done + 1
  end, { concurrency = 64 })
  eq(s.failed, 0); eq(done, 2000)
  ok(c.stats.rate_limited > 0, "the server rate-limited us")
  -- no rate was set: the limiter saw the 429s. A rate is learnt from the
  -- answers between two of them; a slow build (sanitizers, valgrind) may see
  -- only the first burst (the bucket fills during the wall), so only then.
  ok(c.limiter.events >= 1, "the limiter saw the 429s")
  if c.limiter.events >= 2 then ok(c.limiter.rate, "a rate learnt") end
  -- every request the server saw is one success or one 429
  eq(get_json("/count?key=" .. k).count, 2000 + c.stats.rate_limited)
  eq(c.stats.requests, 2000 + c.stats.rate_limited)
end)


test("2000 GETs through /chaos (5xx, resets, 429): each once, no error surfaced", function()
  local k = key("chaos")
  local c = client { concurrency = 16, retries = 12, rate_limit_retries = 50 }
  local seen = {}
  local list = {}
  for i = 1, 2000 do list[i] = i end
  local s = rd.each(list, function(i)
    local res, err, code = c:request { path = "/chaos", query = { key = k, p = 0.2, rate = 3000 } }
    assert(res, tostring(err) .. " " .. tostring(code))
    assert(not seen[i]); seen[i] = true
  end, { concurrency = 32 })
  eq(s.failed, 0)
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  eq(n, 2000)
  ok(c.stats.retries > 100, "chaos caused retries: " .. c.stats.retries)
  -- (libcurl may resend a request on a reused connection the server reset,
  -- and one sent on a connection being reset may never arrive: no exact count)
  local seen_by_server = get_json("/count?key=" .. k).count
  ok(seen_by_server >= 2000, "server count " .. seen_by_server)
end)


test("bulk retry of 2000 n8n executions through a rate-limited server: each retried once", function()
  -- An n8n-kind source whose transport sends every call to /ratelimit (and,
  -- once let through, records the retried id with /record), answering like n8n.
  local k, rk = key("n8nrl"), key("n8nrec")
  local function transport(req)
    local id = req.url:match("/executions/(%d+)/retry$")
    assert(req.method == "POST" and id, "only retries expected")
    local res, err, code = rd.http.request { method = "POST", url = SERVER .. "/ratelimit",
      query = { key = k, rate = 600, burst = 0 }, headers = req.headers, timeout = req.timeout }
    if not res or res.status ~= 200 then return res, err, code end
    assert(rd.http.request { method = "POST", url = SERVER .. "/record", query = { key = rk }, body = id })
    -- n8n answers a retry when it has ended: the outcome is in the answer
    local body = rd.json.encode { id = 100000 + tonumber(id), workflowId = "wf", mode = "retry", status = "success",
      retryOf = tonumber(id), startedAt = "2025-01-15T11:05:00.000Z", stoppedAt = "2025-01-15T11:05:01.000Z" }
    return { status = 200, headers = {}, body = body, json = function() return rd.json.decode(body) end }
  end
  local src = assert(rd.connect { kind = "n8n", base_url = "http://n8n.invalid/api/v1", token = TOKEN,
    transport = transport, concurrency = 32, rate_limit_retries = 50, backoff = { base = 0.005 } })
  local ids = {}
  for i = 1, 2000 do ids[i] = tostring(i) end
  local s = assert(src:retry { ids = ids, safe = false, concurrency = 64, progress = false })
  eq(s.total, 2000); eq(s.succeeded, 2000); eq(s.failed, 0); eq(#s.errors, 0)
  local rec = get_json("/records?key=" .. rk)
  eq(rec.count, 2000)
  local seen = {}
  for _, b in ipairs(rec.bodies) do assert(not seen[b], "retried twice: " .. b); seen[b] = true end
  ok(src._client.stats.rate_limited > 0, "rate limited on the way")
end)



-- A tiny n8n shim in front of the test server: GET /executions/ID goes
-- through /chaos (random 5xx and connection resets, retried because a GET is
-- idempotent), POST /executions/ID/retry through /ratelimit (429 with
-- Retry-After, always retried: the request was refused); a retry the server
-- let through is recorded with /record, then answered like n8n.
local function n8n_shim(o)
  local function reply(v)
    local body = rd.json.encode(v)
    return { status = 200, headers = {}, body = body, json = function() return rd.json.decode(body) end }
  end
  return function(req)
    local id, action = req.url:match("/executions/(%d+)(.*)$")
    assert(id, "unexpected call " .. req.method .. " " .. req.url)
    assert(req.headers["X-N8N-API-KEY"] == TOKEN, "api key sent")
    if req.method == "GET" and action == "" then
      local res, err, code = rd.http.request { url = SERVER .. "/chaos", timeout = req.timeout,
        query = { key = o.chaos_key, p = o.p or 0.2, rate = o.chaos_rate or 100000 } }
      if not res or res.status ~= 200 then return res, err, code end
      return reply { id = id, workflowId = "wf", mode = "trigger", status = "error", finished = false,
        startedAt = "2025-01-15T11:00:00.000Z", stoppedAt = "2025-01-15T11:00:02.000Z",
        retryOf = rd.json.null, retrySuccessId = rd.json.null }
    end
    assert(req.method == "POST" and action == "/retry", "unexpected call " .. req.method .. " " .. req.url)
    local res, err, code = rd.http.request { method = "POST", url = SERVER .. "/ratelimit",
      query = { key = o.rl_key, rate = o.rate or 600, burst = o.burst }, timeout = req.timeout }
    if not res or res.status ~= 200 then return res, err, code end
    assert(rd.http.request { method = "POST", url = SERVER .. "/record", query = { key = o.rec_key }, body = id })
    return reply { id = tostring(100000 + tonumber(id)), workflowId = "wf", mode = "retry", status = "success",
      retryOf = id, startedAt = "2025-01-15T11:05:00.000Z", stoppedAt = "2025-01-15T11:05:01.000Z" }
  end
end

local function each_once(rec_key, n)
  local rec = get_json("/records?key=" .. rec_key)
  eq(rec.count, n)
  local seen = {}
  for _, b in ipairs(rec.bodies) do assert(not seen[b], "retried twice: " .. b); seen[b] = true end
end

test("safe bulk retry of 2000 n8n executions: reads through /chaos, retries through /ratelimit", function()
  local o = { chaos_key = key("n8nchaos"), rl_key = key("n8nrl2"), rec_key = key("n8nrec2"), p = 0.2, rate = 800,
    burst = 0 } -- the bucket starts empty: a 429 comes whatever the speed (valgrind too)
  local src = assert(rd.connect { kind = "n8n", base_url = "http://n8n.invalid/api/v1", token = TOKEN,
    transport = n8n_shim(o), concurrency = 32, retries = 12, rate_limit_retries = 50, backoff = { base = 0.005, max = 0.1 } })
  local ids = {}
  for i = 1, 2000 do ids[i] = tostring(i) end
  local s = assert(src:retry { ids = ids, concurrency = 64, progress = false }) -- safe: each read first
  eq(s.total, 2000); eq(s.succeeded, 2000); eq(s.failed, 0); eq(s.skipped, 0); eq(#s.errors, 0)
  each_once(o.rec_key, 2000)
  local st = src._client.stats
  ok(st.rate_limited > 0, "rate limited on the way")
  ok(st.retries - st.rate_limited > 100, "chaos caused retries of reads: " .. (st.retries - st.rate_limited))
  ok(get_json("/count?key=" .. o.chaos_key).count >= 2000, "every read reached the server")
end)

test("rate cap below the server's limit: 2000 retries, no 429 at all", function()
  local o = { chaos_key = key("n8nc3"), rl_key = key("n8nrl3"), rec_key = key("n8nrec3"), p = 0, rate = 1000 }
  local src = assert(rd.connect { kind = "n8n", base_url = "http://n8n.invalid/api/v1", token = TOKEN,
    transport = n8n_shim(o), rate = 800, concurrency = 16 })
  local ids = {}
  for i = 1, 2000 do ids[i] = tostring(i) end
  local t0 = rd.now()
  local s = assert(src:retry { ids = ids, safe = false, concurrency = 32, progress = false })
  eq(s.succeeded, 2000); eq(s.failed, 0)
  eq(src._client.stats.rate_limited, 0)
  ok(rd.now() - t0 >= 2000 / 800 - 0.2, "paced at the cap: " .. (rd.now() - t0))
  each_once(o.rec_key, 2000)
end)

-- The adaptive limiter itself, on a clock of its own (no waiting, no timing):
-- what it learns from answers and 429s.
local function fake_clock()
  local c = { t = 1000, slept = {} }
  c.rd = { now = function() return c.t end,
           sleep = function(d) c.slept[#c.slept + 1] = d; c.t = c.t + d end }
  return c
end

test("limiter-1 no cap: unlimited until a 429, then the rate the server let through", function()
  local c = fake_clock()
  local L = remote.limiter(c.rd, nil)
  eq(L.rate, nil)
  for _ = 1, 200 do L:pace(); L:answered(); c.t = c.t + 0.0005 end
  eq(#c.slept, 0) -- nothing paced
  L:refused(1)    -- 200 answered in 0.1 s, and the server takes none for 1 s more
  eq(L.events, 1)
  ok(math.abs(L.rate - 200 / 1.1) < 1e-9, "rate " .. tostring(L.rate))
  -- the other 429s of the same burst are the same event
  L:refused(1); L:refused(0.5)
  eq(L.events, 1)
  -- everyone waits for the wall, then goes 1/rate apart
  L:pace()
  ok(math.abs(c.t - 1001.1) < 1e-9, "waited for the wall: " .. c.t)
  local t1 = c.t
  L:pace()
  ok(math.abs(c.t - t1 - 1 / L.rate) < 1e-9, "one slot later")
end)

test("limiter-2 additive increase up to the cap; decrease never above it", function()
  local c = fake_clock()
  local L = remote.limiter(c.rd, 100)
  eq(L.rate, 100)
  L:answered()
  eq(L.rate, 100) -- at the cap already
  for _ = 1, 300 do L:answered() end
  c.t = c.t + 1
  L:refused(1) -- 301 in 1 s + 1 s: 150.5 req/s, above the cap: the cap stays
  eq(L.rate, 100)
  for _ = 1, 100 do L:answered() end
  c.t = c.t + 10
  L:refused(2) -- 100 answers in 10 s (+ 2): about 8.3 req/s
  ok(math.abs(L.rate - 100 / 12) < 1e-9, "rate " .. L.rate)
  for _ = 1, 20 do L:answered() end
  ok(math.abs(L.rate - (100 / 12 + 20 * 0.05)) < 1e-9, "+0.05 an answer: " .. L.rate)
end)

test("limiter-3 too few answers to measure: the rate halves; with none yet, the count spans the walls", function()
  local c = fake_clock()
  local L = remote.limiter(c.rd, nil)
  L:pace(); L:answered()
  L:refused(1)
  eq(L.rate, nil); eq(L.events, 1)
  c.t = c.t + 2
  for _ = 1, 3 do L:answered() end
  L:refused(1) -- 4 answers: still too few, still unlimited
  eq(L.rate, nil); eq(L.events, 2)
  c.t = c.t + 3
  for _ = 1, 6 do L:answered() end
  L:refused(1) -- 10 answers since the first request, 5 s ago, + the 1 s wall
  eq(L.events, 3)
  ok(math.abs(L.rate - 10 / 6) < 1e-9, "rate " .. tostring(L.rate))
  local M = remote.limiter(c.rd, 64)
  M:answered(); M:refused(1)
  eq(M.rate, 32)
end)


H.done()

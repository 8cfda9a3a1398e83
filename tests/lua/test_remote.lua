-- The shared HTTP machinery of the remote sources (lua/redrive/remote.lua)
-- against the loopback test server: 429 + Retry-After (seconds and HTTP
-- date), chaos (5xx and connection resets), budgets, rate and concurrency
-- caps, token redaction. Bulk runs of 2 000 items finish with every item
-- processed exactly once and no error surfaced.
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local remote = require "redrive.remote"
local SERVER = H.server
local TOKEN = "remote-secret-token-abcdef"

local function client(o)
  o = o or {}
  local opts = { kind = "test", base_url = SERVER, token = TOKEN,
    auth = function(t) return { Authorization = "Bearer " .. t } end,
    backoff = { base = 0.005, factor = 2, max = 0.1 } }
  for k, v in pairs(o) do opts[k] = v end
  return remote.client(rd, opts)
end

local function get_json(path)
  local res = assert(rd.http.request { url = SERVER .. path })
  return res:json()
end

local function key(name) return string.format("%s-%d-%d", name, os.time(), math.random(1 << 30)) end

test("parsing: Retry-After, ISO times", function()
  eq(remote.retry_after("7"), 7)
  eq(remote.retry_after("1.5"), 1.5)
  eq(remote.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770), 7)
  eq(remote.retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111770), 7)
  eq(remote.retry_after("Sun Nov  6 08:49:37 1994", 784111770), 7)
  eq(remote.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800), 0)
  eq(remote.retry_after("soon"), nil)
  eq(remote.iso_time("1970-01-01T00:00:00Z"), 0)
  eq(remote.iso_time("2025-01-15T03:12:45.120Z"), 1736910765.12)
  eq(remote.iso_time("2025-01-15T05:12:45+02:00"), 1736910765)
  eq(remote.iso_time("2022-02-07T20:13:29.356648026Z"), 1644264809.356648026)
  eq(remote.iso(1736910765), "2025-01-15T03:12:45Z")
  eq(remote.timegm(2000, 3, 1, 0, 0, 0), 951868800)
end)

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
      query = { key = k, rate = 1500 }, json = { item = i } }
    assert(res, tostring(err) .. " " .. tostring(code))
    assert(not seen[i], "item processed twice")
    seen[i] = true
    done = done + 1
  end, { concurrency = 64 })
  eq(s.failed, 0); eq(done, 2000)
  ok(c.stats.rate_limited > 0, "the server rate-limited us")
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
      query = { key = k, rate = 600 }, headers = req.headers, timeout = req.timeout }
    if not res or res.status ~= 200 then return res, err, code end
    assert(rd.http.request { method = "POST", url = SERVER .. "/record", query = { key = rk }, body = id })
    local body = rd.json.encode { id = 100000 + tonumber(id), workflowId = "wf", mode = "retry", status = "running",
      retryOf = tonumber(id), startedAt = "2025-01-15T11:05:00.000Z" }
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

test("Retry-After as an HTTP date is honoured", function()
  local k = key("date")
  local c = client { backoff = { base = 0.1, max = 1 } }
  assert(c:request { path = "/ratelimit", query = { key = k, rate = 1, retry_after = "date" } })
  local t0 = rd.now()
  assert(c:request { path = "/ratelimit", query = { key = k, rate = 1, retry_after = "date" } })
  ok(c.stats.rate_limited >= 1, "got a 429")
  ok(rd.now() - t0 >= 0.2, "waited for the date")
end)

test("budgets: rate_limited and http final errors; 4xx not retried", function()
  local k = key("budget")
  local c = client { rate_limit_retries = 1, max_wait = 5 }
  assert(c:request { path = "/ratelimit", query = { key = k, rate = 0.01 } })
  local t0 = rd.now()
  local r, msg, code = c:request { path = "/ratelimit", query = { key = k, rate = 0.01 } }
  eq(r, nil); eq(code, "rate_limited")
  match(msg, "^test: GET /ratelimit: rate limited %(HTTP 429%)")
  ok(not msg:find("key=", 1, true), "no query string in messages")
  ok(rd.now() - t0 < 1, "Retry-After above max_wait: no long wait")
  local before = c.stats.requests
  r, msg, code = c:request { path = "/status/503" }
  eq(code, "http"); match(msg, "HTTP 503"); match(msg, "gave up after 5 attempts")
  eq(c.stats.requests - before, 5)
  before = c.stats.requests
  r, msg, code = c:request { method = "POST", path = "/status/503" }
  eq(code, "http"); eq(c.stats.requests - before, 1) -- not idempotent: not retried
  r, msg, code = c:request { path = "/status/404" }
  eq(code, "not_found")
  r, msg, code = c:request { path = "/status/401" }
  eq(code, "auth"); match(msg, "HTTP 401"); eq(require("redrive.cli").classify(msg), "auth")
  r, msg, code = c:request { path = "/status/403" }
  eq(code, "auth")
  -- a POST whose connection is reset is not retried by the client (it may
  -- have been performed; libcurl itself may resend once on a reused connection)
  before = c.stats.requests
  c:request { method = "POST", path = "/flaky", query = { key = key("reset"), code = "reset", fail = 5 } }
  eq(c.stats.requests - before, 1)
  -- a GET is
  r = c:request { path = "/flaky", query = { key = key("reset2"), code = "reset" } }
  ok(r and r.status == 200, "GET retried after a reset")
end)

test("rate cap and concurrency cap", function()
  local c = client { rate = 50 }
  local t0 = rd.now()
  local list = {}
  for i = 1, 26 do list[i] = i end
  rd.each(list, function() assert(c:request { path = "/ok" }) end, { concurrency = 8 })
  ok(rd.now() - t0 >= 0.45, "26 requests at 50/s take >= 0.5 s: " .. (rd.now() - t0))
  local inflight, max = 0, 0
  local cc = client { concurrency = 3, transport = function(req)
    inflight = inflight + 1
    if inflight > max then max = inflight end
    local r, e, code = rd.http.request(req)
    inflight = inflight - 1
    return r, e, code
  end }
  rd.each(list, function() assert(cc:request { path = "/delay/20" }) end, { concurrency = 10 })
  eq(max, 3)
end)

test("tokens: never in fields, messages or logs", function()
  local src = assert(rd.connect { kind = "n8n", base_url = SERVER .. "/status/401?", token = TOKEN, log = true })
  local function scan(t, depth, seen)
    seen = seen or {}
    if seen[t] or depth > 6 then return end
    seen[t] = true
    for k, v in pairs(t) do
      assert(not tostring(k):find(TOKEN, 1, true) and not tostring(v):find(TOKEN, 1, true), "token in a field")
      if type(v) == "table" then scan(v, depth + 1, seen) end
    end
  end
  scan(src, 0)
  ok(not tostring(src):find(TOKEN, 1, true))
  local c = client()
  -- a message that contains the token text (e.g. echoed by a server) is scrubbed
  eq(c.scrub("bad key " .. TOKEN), "bad key <redacted>")
  local _, msg = c:request { path = "/status/401", query = { api_key = TOKEN } }
  ok(not msg:find(TOKEN, 1, true))
end)

H.done()

-- The shared HTTP machinery of the remote sources (lua/redrive/remote.lua)
-- and the iterators of lua/redrive/source/common.lua: Retry-After and time
-- parsing, lazy offset / cursor / keyset pages, budgets and final errors,
-- Retry-After as an HTTP date, rate and concurrency caps, token redaction
-- (loopback test server). The 2 000-item bulk runs are in test_ratelimit.lua.
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local R = require "remote_helpers"
local remote, SERVER, TOKEN = R.remote, R.SERVER, R.TOKEN
local client, get_json, key = R.client, R.get_json, R.key

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


test("iterators: lazy pages (offset, cursor, keyset), limit, filter, errors", function()
  local C = require "redrive.source.common"
  local data = {}
  for i = 1, 23 do data[i] = { id = string.format("%03d", i), n = i } end
  local calls = {}
  local it = C.offset_iter { page = 5, fetch = function(offset, n)
    calls[#calls + 1] = offset
    return table.move(data, offset + 1, math.min(#data, offset + n), 1, {})
  end }
  eq(#calls, 0) -- nothing fetched before the first value is asked for
  eq(it().n, 1); eq(calls, { 0 })
  local n = 1
  for _ in it do n = n + 1 end
  eq(n, 23); eq(calls, { 0, 5, 10, 15, 20 }) -- a short page ends the listing
  calls = {}
  local got = {}
  for x in C.offset_iter { page = 10, limit = 7, fetch = function(offset, k)
    calls[#calls + 1] = k
    return table.move(data, offset + 1, math.min(#data, offset + k), 1, {})
  end } do got[#got + 1] = x.n end
  eq(#got, 7); eq(calls, { 7 }) -- limit shrinks the page
  -- cursor: next cursor from the server; repeated records de-duplicated
  local pages = { [""] = { { id = "a" }, { id = "b" } }, c1 = { { id = "b" }, { id = "c" } }, c2 = { { id = "d" } } }
  local nxt = { [""] = "c1", c1 = "c2", c2 = rd.json.null }
  got = {}
  for x in C.cursor_iter { fetch = function(cur) return pages[cur or ""], nxt[cur or ""] end } do got[#got + 1] = x.id end
  eq(got, { "a", "b", "c", "d" })
  -- a cursor that repeats ends the listing
  local k = 0
  for _ in C.cursor_iter { fetch = function() return { { id = tostring(math.random()) } }, "same" end } do k = k + 1 end
  eq(k, 2)
  -- keyset: after = the last key of the page
  local afters = {}
  got = {}
  for x in C.keyset_iter { page = 10, filter = function(r) return r.n % 2 == 0 end, map = function(r) return r.n end,
    fetch = function(after, m)
      afters[#afters + 1] = after or "-"
      local out = {}
      for _, r in ipairs(data) do if (not after or r.id > after) and #out < m then out[#out + 1] = r end end
      return out
    end } do got[#got + 1] = x end
  eq(#got, 11); eq(afters, { "-", "010", "020" })
  -- an error mid-way raises with its code
  local first = true
  local e = C.offset_iter { page = 1, fetch = function()
    if first then first = false; return { { id = 1 } } end
    return nil, "make: GET /dlqs: HTTP 500", "http"
  end }
  eq(e().id, 1)
  raises("HTTP 500 %(http%)", e)
end)

test("503 with Retry-After: waited for (capped by max_wait), then retried", function()
  local n, times = 0, {}
  local function fake(ra)
    return function()
      n = n + 1
      times[#times + 1] = rd.now()
      if n % 2 == 1 then return { status = 503, headers = { ["retry-after"] = ra }, body = "", json = function() end } end
      return { status = 200, headers = {}, body = "{}", json = function() return {} end }
    end
  end
  local c = remote.client(rd, { kind = "t", base_url = "http://x.invalid", transport = fake("0.3"),
    backoff = { base = 0.001, max = 0.001 } })
  assert(c:request { path = "/a" })
  eq(c.stats.waited, 0.3, "the wait decided is the Retry-After")
  ok(times[2] - times[1] >= 0.28, "waited for Retry-After: " .. (times[2] - times[1]))
  times = {}
  c = remote.client(rd, { kind = "t", base_url = "http://x.invalid", transport = fake("3600"), max_wait = 0.1,
    backoff = { base = 0.001, max = 0.001 } })
  assert(c:request { path = "/b" })
  eq(c.stats.waited, 0.1, "capped by max_wait")
end)

if not SERVER then
  skip("loopback tests", "RD_TEST_SERVER not set (run through tests/run)")
  H.done()
end

test("Retry-After as an HTTP date is honoured", function()
  -- the wait decided is the date's distance from the clock when the 429
  -- came: between the clock read at the 429 and at the retry (the clock,
  -- not how fast the machine is; the date is a whole second ahead)
  local date = math.floor(rd.time()) + 1
  local n, at = 0, {}
  local c = remote.client(rd, { kind = "t", base_url = "http://x.invalid", backoff = { base = 0.001, max = 0.001 },
    transport = function()
      n = n + 1
      at[n] = rd.time()
      if n == 1 then
        return { status = 429, headers = { ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", date) }, body = "",
          json = function() end }
      end
      return { status = 200, headers = {}, body = "{}", json = function() return {} end }
    end })
  assert(c:request { path = "/a" })
  eq(c.stats.rate_limited, 1)
  local w = c.stats.waited
  ok(w >= date - at[2] - 1e-6 and w <= math.max(date - at[1], 0.001) + 1e-6, "waited until the date", w, date, at)
  -- and the real header, from the loopback server: parsed, the call succeeds
  local k = key("date")
  c = client { backoff = { base = 0.1, max = 1 } }
  assert(c:request { path = "/ratelimit", query = { key = k, rate = 1, retry_after = "date" } })
  assert(c:request { path = "/ratelimit", query = { key = k, rate = 1, retry_after = "date" } })
  ok(c.stats.rate_limited >= 1, "got a 429")
end)


test("budgets: rate_limited and http final errors; 4xx not retried", function()
  local k = key("budget")
  local c = client { rate_limit_retries = 1, max_wait = 5 }
  assert(c:request { path = "/ratelimit", query = { key = k, rate = 0.01 } })
  local r, msg, code = c:request { path = "/ratelimit", query = { key = k, rate = 0.01 } }
  eq(r, nil); eq(code, "rate_limited")
  match(msg, "^test: GET /ratelimit: rate limited %(HTTP 429%)")
  ok(not msg:find("key=", 1, true), "no query string in messages")
  eq(c.stats.waited, 0, "Retry-After above max_wait: a final error at once, no wait")
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
  -- credentials inside the base URL are not kept in fields nor shown either
  for _, url in ipairs { "https://bob:" .. TOKEN .. "@n8n.example/api/v1", "https://n8n.example/api/v1?api_key=" .. TOKEN } do
    local u = assert(rd.connect { kind = "n8n", base_url = url, token = "another-token-123" })
    scan(u, 0)
    ok(not tostring(u):find(TOKEN, 1, true), tostring(u))
    match(tostring(u), "^redrive source n8n %(https://")
  end
  local c = client()
  -- a message that contains the token text (e.g. echoed by a server) is scrubbed
  eq(c.scrub("bad key " .. TOKEN), "bad key <redacted>")
  local _, msg = c:request { path = "/status/401", query = { api_key = TOKEN } }
  ok(not msg:find(TOKEN, 1, true))
end)


H.done()

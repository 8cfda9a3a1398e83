-- bench/ratelimit.lua: a remote source's bulk retry against an API limited
-- to RATE requests per second, which the source is not told.
--
--   redrive bench/ratelimit.lua SERVER N RATE KEY CONC [CAP]
--
-- An n8n-kind source (the shared remote machinery: its adaptive limiter,
-- 429 + Retry-After, retries) retries N failed executions. Its transport
-- sends every retry call to SERVER/ratelimit?key=KEY&rate=RATE -- a token
-- bucket of RATE tokens refilled at RATE per second; beyond it 429 with
-- Retry-After -- and answers like n8n once let through; each id that got
-- through is recorded on the server, so "exactly once" is checked there.
-- Without CAP the source has no `rate` set and must find the limit itself;
-- with CAP it is configured with rate = CAP (above RATE: a wrong setting).
-- Prints {items, succeeded, failed, seconds, achieved_per_second, rate, cap,
-- ratio, rate_limited, learned_rate, once, first_error}; ratio = achieved /
-- RATE when every item succeeded; rate_limited = 429s received.
local rd = require "redrive"
local server, n, rate, key, conc, cap = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4],
  tonumber(arg[5]), tonumber(arg[6])

local function transport(req)
  local id = req.url:match("/executions/(%d+)/retry$")
  local res, err, code = rd.http.request { method = "POST", url = server .. "/ratelimit",
    query = { key = key, rate = rate }, headers = req.headers, timeout = req.timeout }
  if not res or res.status ~= 200 then return res, err, code end
  assert(rd.http.request { method = "POST", url = server .. "/record", query = { key = key .. "-rec" },
    body = id })
  -- n8n answers a retry when it has ended: the outcome is in the answer (a
  -- "running" answer is counted running, not succeeded)
  local body = rd.json.encode { id = 1000000 + tonumber(id), workflowId = "wf", mode = "retry",
    status = "success", retryOf = tonumber(id), startedAt = "2025-01-15T11:05:00.000Z",
    stoppedAt = "2025-01-15T11:05:01.000Z" }
  return { status = 200, headers = {}, body = body, json = function() return rd.json.decode(body) end }
end

local src = assert(rd.connect { kind = "n8n", base_url = "http://n8n.invalid/api/v1", token = "bench",
  transport = transport, rate = cap, concurrency = conc })
local ids = {}
for i = 1, n do ids[i] = tostring(i) end
local t0 = rd.now()
local s = assert(src:retry { ids = ids, safe = false, concurrency = conc, progress = false })
local secs = rd.now() - t0
local rec = assert(rd.http.request { url = server .. "/records?key=" .. key .. "-rec" }):json()
local seen, once = {}, rec.count == n
for _, b in ipairs(rec.bodies) do
  if seen[b] then once = false end
  seen[b] = true
end
local achieved = s.succeeded / secs
print(rd.json.encode { items = s.total, succeeded = s.succeeded, failed = s.failed, seconds = secs,
  achieved_per_second = achieved, rate = rate, cap = cap or rd.json.null,
  ratio = (s.failed == 0 and s.succeeded == n) and achieved / rate or rd.json.null,
  rate_limited = src._client.stats.rate_limited, learned_rate = src._client.limiter.rate or rd.json.null,
  once = once, first_error = s.errors[1] and tostring(s.errors[1].message) or nil })

-- Shared HTTP machinery of the remote sources (make, n8n, sailpoint, kaizen):
-- one client per source object, built once by the source's `new`.
--
--   local remote = require "redrive.remote"
--   local client = remote.client(rd, {
--     kind = "n8n", base_url = "https://n8n.example.com/api/v1",
--     token = "...",                       -- kept in an upvalue, never a field
--     auth = function(token) return {["X-N8N-API-KEY"] = token} end,
--     headers = {...},                     -- extra headers (tests: Prefer)
--     rate = 10, concurrency = 8,          -- req/s cap and requests in flight
--     retries = 4, rate_limit_retries = 8, -- budgets per request
--     backoff = {base = 0.5, factor = 2, max = 30}, max_wait = 120,
--     timeout = 30, verify = true, max_body = bytes, -- response limit (decoded)
--     parse_error = function(status, body_table_or_nil, res, req) -> text, extra, code end,
--                                          -- req = {method, path}: what was asked
--   })
--   -> client | nil, msg, "invalid" (a numeric option out of range)
--   client:request{method, path, query, json, body, headers, idempotent,
--                  timeout} -> res (2xx) | nil, msg, code, detail
--
-- Request results: a 2xx response is returned as is (res:json() decodes it);
-- anything else becomes nil, msg, code, detail where code is
--   "auth" (401/403), "not_found" (404), "conflict" (409), "invalid"
--   (400/406/422), "rate_limited" (429 after the budget), "http" (other
--   statuses, 5xx after the budget), or the transport's "timeout" /
--   "connect" / "tls" / "too_large" / "http";
-- detail = {status, body, data (decoded JSON), ...parse_error's extra}.
--
-- Retries: a 429 is always retried (the request was refused, not performed),
-- waiting for Retry-After (seconds or an HTTP date) or else exponential
-- backoff with jitter; while a 429 wait is pending every request of the
-- client waits too. Rate: each client paces its requests with an adaptive
-- limiter (R.limiter: AIMD on the server's answers, under the `rate` cap
-- when one is set), so it settles just under a server's limit it was never
-- told, instead of meeting 429s all the way. A retried 5xx that carries Retry-After waits that long
-- (at most max_wait). 5xx answers, timeouts and broken connections are retried
-- only for idempotent requests (GET, HEAD, PUT, DELETE, or idempotent = true);
-- a refused connection is retried for any request (nothing was sent). A TLS
-- failure (certificate, handshake) and a body over max_body are never
-- retried: the same server gives the same answer. Each request has its own
-- budget; when it is spent the error says so.
--
-- Secrets: the token lives in the closures below only, and is registered
-- with the C redactor (src/core/redact.c) when the client is made. Every
-- message that leaves this file names the method and path (never the query
-- string, never a header) and goes through the redactor, so it holds neither
-- the token's text nor any other credential, whatever its origin.
local R = {}
local num = require("redrive.opts").number

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Unix time of a UTC civil date (no dependency on the local time zone).
function R.timegm(y, m, d, hh, mm, ss)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + (hh or 0) * 3600 + (mm or 0) * 60 + (ss or 0)
end

-- ISO 8601 / RFC 3339 text -> Unix seconds (fractions kept) | nil
function R.iso_time(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local hh, mi, ss, tail = rest:match("^[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  local frac = 0
  if hh then
    local f, t2 = tail:match("^[%.,](%d+)(.*)$")
    if f then frac = tonumber("0." .. f); tail = t2 end
  else
    hh, mi, ss, tail = 0, 0, 0, rest
  end
  local t = R.timegm(tonumber(y), tonumber(mo), tonumber(d), tonumber(hh), tonumber(mi), tonumber(ss)) + frac
  if tail == "" or tail == "Z" or tail == "z" then return t end
  local sign, oh, om = tail:match("^([%+%-])(%d%d):?(%d%d)$")
  if not sign then return t end
  local off = tonumber(oh) * 3600 + tonumber(om) * 60
  return sign == "+" and t - off or t + off
end

-- Unix seconds -> "2025-01-15T03:12:45Z" (or with milliseconds when ms)
function R.iso(t, ms)
  if type(t) ~= "number" then return nil end
  local s = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t))
  if ms then s = s .. string.format(".%03d", math.floor((t % 1) * 1000 + 0.5) % 1000) end
  return s .. "Z"
end

-- Retry-After: delta seconds or an HTTP date -> seconds to wait | nil
function R.retry_after(v, now)
  if v == nil then return nil end
  v = tostring(v):match("^%s*(.-)%s*$")
  local n = tonumber(v)
  if n then return math.max(0, n) end
  -- IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 850 / asctime forms too)
  local d, mon, y, hh, mm, ss = v:match("(%d%d?)[ %-](%a%a%a)[ %-](%d+) (%d%d):(%d%d):(%d%d)")
  if not d then
    mon, d, hh, mm, ss, y = v:match("%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)")
  end
  if not d or not MONTHS[mon] then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y < 70 and 2000 or 1900) end
  local t = R.timegm(y, MONTHS[mon], tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss))
  return math.max(0, t - (now or os.time()))
end

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
-- transport error codes a retry cannot fix
local FINAL = { tls = true, too_large = true }

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable", [409] = "Conflict", [410] = "Gone", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local function code_of(status)
  if status == 401 or status == 403 then return "auth" end
  if status == 404 or status == 410 then return "not_found" end
  if status == 409 then return "conflict" end
  if status == 400 or status == 406 or status == 422 then return "invalid" end
  if status == 429 then return "rate_limited" end
  return "http"
end
R.code_of = code_of

-- A generic error text from a JSON body: message / detail / error fields.
local function generic_text(data, body)
  if type(data) == "table" then
    local parts = {}
    for _, k in ipairs { "detail", "message", "error", "description", "title" } do
      local v = data[k]
      if type(v) == "string" and v:match("%S") then
        v = v:match("^%s*(.-)%s*$")
        local dup = false
        for _, p in ipairs(parts) do if p == v then dup = true end end
        if not dup then parts[#parts + 1] = v end
      elseif type(v) == "table" and type(v.message) == "string" then
        parts[#parts + 1] = v.message
      end
    end
    if #parts > 0 then return table.concat(parts, ": ") end
  end
  if type(body) == "string" and body:match("%S") then
    body = body:gsub("%s+", " ")
    if #body > 200 then body = body:sub(1, 200) .. "..." end
    return body
  end
  return nil
end
R.generic_text = generic_text

-- limiter(rd, cap) -> the adaptive rate limiter of one client: AIMD on the
-- answers the server gives, below the configured cap (requests per second,
-- nil for none). Behind a limiter nobody knows its rate R, so it is learnt:
--   * until the first 429 requests go as fast as the cap (and the client's
--     concurrency) let them;
--   * a 429 (one per burst: those arriving while its wall stands are the
--     same event) sets a wall every request waits behind (Retry-After, else
--     backoff) and the rate to what the server let through since the last
--     such event, counted up to the moment it will take requests again:
--     answered / (now - last event + wall). Behind a token bucket that is R,
--     or a little below it, so the rate sits just under the limit instead of
--     bouncing off it (multiplicative decrease to the measured rate); with
--     fewer than 5 answers to measure, the rate halves instead, or with no
--     rate yet the count goes on across walls until there are 5 (a burst of
--     concurrent requests meeting a bucket may see 429s before 5 answers);
--   * every answer adds 0.05 req/s (additive increase: 5 % a second at any
--     rate), up to the cap, so a limit that rises is found again.
--   limiter:pace()        wait for the wall and this request's slot
--   limiter:answered()    the server took a request (any answer but 429)
--   limiter:refused(wall) a 429; wall = seconds every request must wait
--   limiter.rate          the rate now (nil: not limited yet)
local MIN_RATE, STEP = 0.1, 0.05
function R.limiter(rd, cap)
  local L = { rate = cap, cap = cap, events = 0 }
  local next_slot, blocked_until = 0, 0
  local answers, since = 0, nil -- answers since the last event (or the first request)

  function L:pace()
    local now = rd.now()
    since = since or now
    local at = math.max(now, blocked_until)
    if self.rate then
      at = math.max(at, next_slot)
      next_slot = at + 1 / self.rate
    end
    if at > now then rd.sleep(at - now) end
    -- a 429 seen while we slept moves the wall again
    while true do
      local d = blocked_until - rd.now() -- read the clock once: it moves
      if d <= 0 then break end
      rd.sleep(d)
    end
  end

  function L:answered()
    answers = answers + 1
    if self.rate and (not self.cap or self.rate < self.cap) then
      self.rate = self.cap and math.min(self.cap, self.rate + STEP) or self.rate + STEP
    end
  end

  function L:refused(wall)
    local now = rd.now()
    if now < blocked_until then -- the same burst: its wall stands
      blocked_until = math.max(blocked_until, now + wall)
      return
    end
    self.events = self.events + 1
    local r
    if answers >= 5 then r = answers / (now - (since or now) + wall)
    elseif self.rate then r = self.rate / 2 end
    if r then
      r = math.max(MIN_RATE, r)
      self.rate = self.cap and math.min(self.cap, r) or r
      next_slot = now + wall
      answers, since = 0, now
    else -- nothing to measure yet: keep counting across the walls until there is
      since = since or now
    end
    blocked_until = now + wall
  end

  return L
end

-- client(rd, opts) -> client
function R.client(rd, opts)
  local kind = opts.kind or "remote"
  local base = tostring(opts.base_url or ""):gsub("/+$", "")
  local token = opts.token
  local auth = opts.auth
  local extra = {}
  for k, v in pairs(opts.headers or {}) do extra[k] = v end
  local transport = opts.transport or rd.http.request -- tests may pass a fake
  -- numeric options: one rule (redrive.opts), refused with "invalid"
  local bo = opts.backoff or {}
  local numbers = {
    { "rate", opts.rate, "rate", false }, { "concurrency", opts.concurrency, "concurrency", 16 },
    { "retries", opts.retries, "count", 4, 0, 100 },
    { "rate_limit_retries", opts.rate_limit_retries, "count", 8, 0, 1000 },
    { "backoff.base", bo.base or bo[1], "seconds", 0.5 }, { "backoff.factor", bo.factor or bo[2], "number", 2, 1, 100 },
    { "backoff.max", bo.max or bo[3], "seconds", 30 }, { "max_wait", opts.max_wait, "seconds", 300 },
    { "timeout", opts.timeout, "timeout", 30 }, { "max_body", opts.max_body, "bytes", false },
  }
  local o = {}
  for _, spec in ipairs(numbers) do
    local v, err = num(spec[2], spec[1], spec[3], spec[4], spec[5], spec[6])
    if v == nil then return nil, kind .. ": " .. err, "invalid" end
    o[spec[1]] = v
  end
  local rate, cap, retries, rl_retries = o.rate or nil, o.concurrency, o.retries, o.rate_limit_retries
  local b_base, b_factor, b_max = o["backoff.base"], o["backoff.factor"], o["backoff.max"]
  local max_wait, timeout, max_body = o.max_wait, o.timeout, o.max_body or nil
  local verify = opts.verify
  local parse_error = opts.parse_error
  local core = require "redrive.core"
  if type(token) == "string" then core.redact_add(token) end

  -- scrub(s): the text through the redactor (which knows the token now)
  local function scrub(s) return core.redact(tostring(s)) end

  -- waited: seconds of retry waits decided (back-off, Retry-After), summed as
  -- decided, not measured, so a test can check the policy on any machine
  local stats = { requests = 0, retries = 0, rate_limited = 0, errors = 0, waited = 0 }
  local client = { kind = kind, base_url = scrub(base), stats = stats, scrub = scrub }

  -- concurrency: a counting semaphore on a condition variable
  local inflight, cv = 0, rd.cond()
  local function acquire()
    while inflight >= cap do cv:wait() end
    inflight = inflight + 1
  end
  local function release()
    inflight = inflight - 1
    cv:signal()
  end

  -- rate: the client's adaptive limiter (R.limiter, below)
  local limiter = R.limiter(rd, rate)
  client.limiter = limiter

  -- fail(msg, code, detail) -> nil, msg, code, detail: every failure the
  -- client returns, its message scrubbed and noted with its code
  -- (rd._note_failure, src/lua/redrive.c: how the command line knows an
  -- unreachable source)
  local function fail(msg, code, detail)
    msg = scrub(msg)
    rd._note_failure(msg, code)
    return nil, msg, code, detail
  end

  local function backoff(n)
    local d = math.min(b_max, b_base * b_factor ^ (n - 1))
    return d * (0.5 + math.random() * 0.5)
  end

  local function log(fmt, ...)
    if rd._verbose or opts.log then
      io.stderr:write("redrive: ", kind, ": ", scrub(string.format(fmt, ...)), "\n")
    end
  end

  local function headers_for(h)
    local out = { Accept = "application/json" }
    for k, v in pairs(extra) do out[k] = v end
    if auth and token ~= nil then
      for k, v in pairs(auth(token)) do out[k] = v end
    end
    for k, v in pairs(h or {}) do out[k] = v end
    return out
  end

  -- request{method, path, query, json, body, headers, idempotent, timeout, url}
  function client:request(req)
    local method = (req.method or (req.json ~= nil and "POST") or "GET"):upper()
    local path = req.path or ""
    local what = method .. " " .. path
    local idem = req.idempotent
    if idem == nil then idem = IDEMPOTENT[method] or false end
    local url = req.url or (base .. path)
    local n_err, n_429 = 0, 0
    local t0 = rd.now()
    while true do
      limiter:pace()
      acquire()
      stats.requests = stats.requests + 1
      local ok, res, err, ecode = pcall(transport, {
        method = method, url = url, query = req.query, json = req.json, body = req.body,
        headers = headers_for(req.headers), timeout = req.timeout or timeout, verify = verify,
        max_body = max_body,
      })
      release()
      if not ok then -- cancellation (itself, compared by identity) or a bug (scrubbed)
        error(rd.is_canceled(res) and res or scrub(res), 0)
      end
      local wait, why
      -- the server took the request, whatever it answered: the limiter learns
      if res ~= nil and res.status ~= 429 then limiter:answered() end
      if res == nil then
        -- transport failure: a refused connection sent nothing; others may
        -- have. A TLS failure or an oversized body is not transient.
        local retryable = ecode == "connect" or (idem and not FINAL[ecode])
        if not retryable or n_err >= retries then
          stats.errors = stats.errors + 1
          local msg = string.format("%s: %s: %s", kind, what, tostring(err))
          if retryable and n_err > 0 then msg = msg .. string.format(" (gave up after %d attempts)", n_err + 1) end
          return fail(msg, ecode or "http", { transport = true })
        end
        n_err = n_err + 1
        wait, why = backoff(n_err), tostring(ecode or err)
      elseif res.status >= 200 and res.status < 300 then
        return res
      elseif res.status == 429 then
        stats.rate_limited = stats.rate_limited + 1
        local ra = R.retry_after(res.headers and res.headers["retry-after"], rd.time())
        if n_429 >= rl_retries or (ra and ra > max_wait) then
          stats.errors = stats.errors + 1
          local data = res:json()
          local text = parse_error and select(1, parse_error(429, data, res, { method = method, path = path }))
            or generic_text(data, res.body)
          local msg = string.format("%s: %s: rate limited (HTTP 429)%s; gave up after %d attempt(s) in %.1fs%s",
            kind, what, text and (": " .. text) or "", n_429 + n_err + 1, rd.now() - t0,
            ra and string.format(" (Retry-After %gs)", ra) or "")
          return fail(msg, "rate_limited", { status = 429, body = res.body, data = data, retry_after = ra })
        end
        n_429 = n_429 + 1
        -- (an HTTP date in the past, or 0, still backs off a little)
        wait = math.max(ra or 0, backoff(n_429))
        why = "HTTP 429" .. (ra and string.format(" Retry-After %gs", ra) or "")
        limiter:refused(wait)
      elseif res.status >= 500 and idem and n_err < retries then
        n_err = n_err + 1
        wait, why = backoff(n_err), "HTTP " .. res.status
        -- a 503 may say when to come back: honoured up to max_wait
        local ra = R.retry_after(res.headers and res.headers["retry-after"], rd.time())
        if ra and ra > wait then wait = math.min(ra, max_wait) end
      else
        stats.errors = stats.errors + 1
        local data = res:json()
        local text, det, code
        if parse_error then text, det, code = parse_error(res.status, data, res, { method = method, path = path }) end
        text = text or generic_text(data, res.body)
        code = code or code_of(res.status)
        local msg = string.format("%s: %s: HTTP %d %s%s", kind, what, res.status,
          REASONS[res.status] or "", code == "auth" and " (auth refused)" or "")
        if text then msg = msg .. ": " .. text end
        if res.status >= 500 and n_err > 0 then msg = msg .. string.format(" (gave up after %d attempts)", n_err + 1) end
        local detail = { status = res.status, body = res.body, data = data }
        for k, v in pairs(det or {}) do detail[k] = v end
        return fail(msg, code, detail)
      end
      stats.retries = stats.retries + 1
      stats.waited = stats.waited + wait
      log("%s: %s, retrying in %.2fs", what, why, wait)
      rd.sleep(wait)
    end
  end

  -- json(req) -> decoded body (or {} for an empty 2xx body), res | nil, msg, code, detail
  function client:json(req)
    local res, err, code, detail = self:request(req)
    if not res then return nil, err, code, detail end
    if res.body == nil or not res.body:match("%S") then return {}, res end
    local v, jerr = res:json()
    if v == nil then
      return nil, scrub(string.format("%s: %s %s: response is not JSON: %s", kind,
        (req.method or "GET"):upper(), req.path or "", tostring(jerr))), "invalid"
    end
    return v, res
  end

  return client
end

return R

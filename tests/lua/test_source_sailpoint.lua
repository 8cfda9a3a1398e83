-- Contract tests of the `sailpoint` source against the Prism mock of
-- shared/contracts/sailpoint-workflows.openapi.json (RD_MOCK_SAILPOINT).
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local MOCK, MOCK_WHY = H.mock("sailpoint")
local TOKEN = "sp-bearer-secret-token-xyz"
local WF = "d201c5d9-d37b-4a2f-af14-66414f39d568"

test("connect: tenant, base_url, unsupported calls", function()
  local s = assert(rd.connect { kind = "sailpoint", tenant = "acme", token = TOKEN })
  eq(s.base_url, "https://acme.api.identitynow.com/v3")
  ok(not tostring(s):find(TOKEN, 1, true))
  check_err("invalid", "tenant", rd.connect, { kind = "sailpoint", token = TOKEN })
  check_err("auth", "no token", rd.connect, { kind = "sailpoint", tenant = "acme" })
  match(select(2, s:retry { ids = { "x" } }), "re%-run the workflow")
  check_err("unsupported", nil, s.incomplete, s, {})
  check_err("unsupported", "src:executions", s.execution, s, "x")
  raises("workflow id", s.executions, s, {})
end)

if not MOCK then H.skip_rest(MOCK_WHY) end

local function mock(prefer, extra)
  local o = { kind = "sailpoint", base_url = MOCK, token = TOKEN, backoff = { base = 0.01, max = 0.05 } }
  if prefer then o.headers = { Prefer = prefer } end
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(rd.connect(o))
end

test("list: statuses mapped, limit/offset pages, filters sent", function()
  local seen = {}
  -- the mock ignores limit: the transport cuts its answer to `limit` items, as SailPoint would
  local src = mock(nil, { transport = function(req)
    seen[#seen + 1] = req.query
    local res, err, code = rd.http.request(req)
    if res and res.status == 200 and req.query.limit then
      local list = res:json()
      while #list > req.query.limit do table.remove(list) end
      local body = rd.json.encode(rd.json.array(list))
      res = { status = 200, headers = res.headers, body = body, json = function() return rd.json.decode(body) end }
    end
    return res, err, code
  end })
  local list = {}
  for e in src:executions { scenario = WF } do list[#list + 1] = e end
  eq(#list, 5)
  eq(list[1].status, "success"); eq(list[2].status, "error"); eq(list[4].status, "canceled"); eq(list[5].status, "running")
  eq(list[1].scenario, WF); eq(list[1].started_at, 1644264809.356648)
  eq(list[1].duration, 2326)
  eq(seen[1].limit, 250); eq(seen[1].offset, 0)
  -- pages of 2: offset advances (the mock repeats its page)
  local n = 0
  for _ in src:executions { scenario = WF, page = 2, limit = 5 } do n = n + 1 end
  eq(n, 5)
  eq(seen[#seen].offset, 4); eq(seen[#seen].limit, 1)
  for _ in src:executions { scenario = WF, status = "error", since = 1644192000, ["until"] = 1644278400, limit = 1 } do end
  eq(seen[#seen].filters, 'status eq "Failed" and start_time ge 2022-02-07T00:00:00.000Z and start_time lt 2022-02-08T00:00:00.000Z')
  for _ in src:executions { scenario = WF, started = { gt = 1644192000, le = 1644278400.5, eq = 0 }, limit = 1 } do end
  eq(seen[#seen].filters, 'start_time eq 1970-01-01T00:00:00.000Z and start_time le 2022-02-08T00:00:00.500Z and start_time gt 2022-02-07T00:00:00.000Z')
  raises("use eq, lt, le, gt or ge", src.executions, src, { scenario = WF, started = { before = 1 } })
  raises("Unix seconds", src.executions, src, { scenario = WF, started = { lt = "yesterday" } })
  -- a profile's scenario is the default workflow
  local dflt = mock(nil, { scenario = WF })
  local k = 0
  for _ in dflt:executions { limit = 2 } do k = k + 1 end
  eq(k, 2)
  local failed = mock("example=failedOnly")
  for e in failed:executions { scenario = WF, status = "error" } do eq(e.status, "error") end
  for _ in mock("example=empty"):executions { scenario = WF } do error("expected none") end
  raises("sailpoint status", src.executions, src, { scenario = WF, status = "warning" })
end)

test("count=true -> X-Total-Count; health", function()
  local src = mock()
  eq(src:count_executions { scenario = WF }, 5)
  local h = assert(src:health { scenario = WF })
  eq(h.total, 5); eq(h.succeeded, 1); eq(h.failed, 2); eq(h.running, 1); eq(h.finished, 4)
  eq(h.success_rate, 1 / 3)
end)

test("error bodies: detailCode, messages, causes, trackingId; auth; 429 Retry-After", function()
  local bad = mock("code=400")
  local msg, code
  local it = function() for _ in bad:executions { scenario = WF } do end end
  local e = raises("400%.1 Bad Request Content", it)
  eq(e.code, "invalid") -- the listing raises an error object: its code
  msg = tostring(e)
  match(msg, "semantically invalid"); match(msg, "trackingId e7eab60924f64aa284175b9fa3309599"); match(msg, "%(invalid%)")
  local forb = mock("code=403")
  _, msg, code = forb:count_executions { scenario = WF }
  eq(code, "auth"); match(msg, "403 Forbidden"); match(msg, "trackingId b21b1f7ce4da4d639f2c62a57171b427")
  eq(require("redrive.cli").classify(msg), "auth")
  local expired = mock("code=401")
  _, msg, code = expired:count_executions { scenario = WF }
  eq(code, "auth"); match(msg, "JWT is expired"); ok(not msg:find(TOKEN, 1, true))
  local nf = mock("code=404")
  _, msg, code = nf:count_executions { scenario = WF }
  eq(code, "not_found"); match(msg, "did not find")
  local ise = mock("code=500", { retries = 1 })
  _, msg, code = ise:count_executions { scenario = WF }
  eq(code, "http"); match(msg, "500%.0 Internal Fault"); match(msg, "gave up after 2 attempts")
  -- several locales: the English texts are kept
  local loc = mock(nil, { transport = function()
    local body = rd.json.encode { detailCode = "400.1 Bad Request Content", trackingId = "abc123",
      messages = { { locale = "de-DE", text = "Ungueltig" }, { locale = "en-US", localeOrigin = "DEFAULT", text = "Invalid filter" } } }
    return { status = 400, headers = {}, body = body, json = function() return rd.json.decode(body) end }
  end })
  _, msg, code = loc:count_executions { scenario = WF }
  eq(code, "invalid"); match(msg, "Invalid filter %[trackingId abc123%]"); ok(not msg:find("Ungueltig"), msg)
  -- 429: Retry-After: 10 (seconds) is above max_wait here: a clear final error at once
  local rl = mock("code=429", { max_wait = 5 })
  _, msg, code = rl:count_executions { scenario = WF }
  eq(code, "rate_limited"); match(msg, "Rate Limit Exceeded"); match(msg, "Retry%-After 10s")
  eq(rl._client.stats.waited, 0, "no 10 s wait beyond max_wait")
end)

H.done()

-- Contract tests of the `make` source against the Prism mock of
-- shared/contracts/make-dlq.openapi.json (RD_MOCK_MAKE, started by
-- tests/mocks.sh). Skipped, never passed, without the mock.
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local MOCK, MOCK_WHY = H.mock("make")
local TOKEN = "mk-secret-token-0123456789"
local SID = 112233
local ITEM = "0f4e1c2a9b7d4e6f8a1b2c3d4e5f6a7b"

local function connect(prefer, extra)
  local o = { kind = "make", base_url = MOCK, token = TOKEN, backoff = { base = 0.01, max = 0.05 } }
  if prefer then o.headers = { Prefer = prefer } end
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(rd.connect(o))
end

local function no_token(s)
  if type(s) == "table" then s = rd.json.encode(s) end
  assert(not tostring(s):find(TOKEN, 1, true), "token leaked: " .. tostring(s))
end

-- zones need no network
test("zones and base_url", function()
  local make = require "redrive.source.make"
  for _, z in ipairs { "eu1", "eu2", "us1", "us2", "eu1.make.celonis", "us1.make.celonis", "celonis-eu1" } do
    local s = assert(rd.connect { kind = "make", zone = z, token = TOKEN })
    eq(s.base_url, make.ZONES[z])
    match(s.base_url, "^https://[%w%.]+%.make%.[%w%.]*com/api/v2$")
    match(tostring(s), "^redrive source make %(https://")
    no_token(tostring(s))
    for k, v in pairs(s) do no_token(tostring(k)); no_token(type(v) == "string" and v or "") end
  end
  eq(rd.connect { kind = "make", zone = "eu1", token = TOKEN }.base_url, "https://eu1.make.com/api/v2")
  eq(rd.connect { kind = "make", zone = "us1.make.celonis", token = TOKEN }.base_url, "https://us1.make.celonis.com/api/v2")
  check_err("invalid", "unknown zone", rd.connect, { kind = "make", zone = "mars1", token = TOKEN })
  check_err("auth", "no token", rd.connect, { kind = "make", zone = "eu1" })
  check_err("auth", "MAKE_NOPE_TOKEN", rd.connect, { kind = "make", zone = "eu1", token_env = "MAKE_NOPE_TOKEN" })
  local s = assert(rd.connect { kind = "make", base_url = "https://custom.example/api/v2/", token = TOKEN })
  eq(s.base_url, "https://custom.example/api/v2")
  check_err("unsupported", "src:incomplete", s.executions, s, {})
  -- the scenario calls: unsupported, saying what to do instead (issue 15)
  check_err("unsupported", "make: src:scenarios is not supported by the make API; edit the scenario in Make",
    s.scenarios, s)
  check_err("unsupported", "item:patch{blueprint = bp}", s.scenario_update, s, 1, {})
end)

if not MOCK then H.skip_rest(MOCK_WHY) end

test("list: pagination, mapping, filters", function()
  local src = connect()
  local items = {}
  for it in src:incomplete { scenario = SID, resolved = "any" } do items[#items + 1] = it end
  eq(#items, 3)
  local a = items[1]
  eq(a.id, ITEM); eq(a.scenario, SID); eq(a.resolved, false); eq(a.attempts, 0); eq(a.size, 2048)
  -- Make lists items without the scenario's name: read from an item's record
  eq(a.scenario_name, "Orders -> ERP sync"); eq(items[3].scenario_name, "Orders -> ERP sync")
  match(a.reason, "DataError")
  eq(a.created, 1736910765.12)
  eq(a.raw.retry, false); eq(items[2].raw.retry, true)
  eq(type(a.retry), "function") -- Make's retry flag stays under .raw: item:retry() is the method
  eq(getmetatable(a).__name, "redrive.Item")
  -- page size 2: the mock repeats its page, the iterator pages by offset
  local n = 0
  for _ in src:incomplete { scenario = SID, page = 2, limit = 5, sort_by = "created", sort_dir = "desc" } do n = n + 1 end
  eq(n, 5)
  n = 0
  for it in src:incomplete { scenario = SID, reason = "^ConnectionError" } do n = n + 1; eq(it.attempts, 2) end
  eq(n, 1)
  -- resolved: pending ones only by default (as on every source), true the
  -- resolved ones, "any" both
  n = 0
  for _ in src:incomplete { scenario = SID, resolved = false } do n = n + 1 end
  eq(n, 2)
  n = 0
  for it in src:incomplete { scenario = SID } do n = n + 1; eq(it.resolved, false) end
  eq(n, 2)
  n = 0
  for it in src:incomplete { scenario = SID, resolved = true } do n = n + 1; eq(it.id, "9d2b7f4e6a1c3e5b8f0a2d4c6e8b1a3f") end
  eq(n, 1)
  raises("resolved must be true, false or \"any\"", src.incomplete, src, { scenario = SID, resolved = "yes" })
  n = 0
  for _ in src:incomplete { scenario = SID, since = 1736900000 } do n = n + 1 end
  eq(n, 2)
  local empty = connect("example=empty")
  for _ in empty:incomplete { scenario = SID } do error("expected no items") end
  raises("scenario", src.incomplete, src, {})
end)

test("detail, blueprint, bundle, logs, log detail", function()
  local src = connect()
  local it = assert(src:incomplete_item(ITEM))
  eq(it.scenario, SID); eq(it.scenario_name, "Orders -> ERP sync"); eq(it.index, 1)
  eq(it.execution_id, "c3e1a9f0b5d24c7e9f8a6b4d2e0c1a3f")
  local bp = assert(it:blueprint())
  eq(bp.name, "Orders -> ERP sync")
  eq(bp:module(1).module, "http:ActionSendData")
  local b = assert(it:bundle())
  eq(b.order_id, "12345"); eq(b.customer.id, 778)
  local logs = {}
  for l in it:logs { status = 3, from = 1736900000, to = 1736999999, limit = 2 } do logs[#logs + 1] = l end
  eq(#logs, 2)
  eq(logs[1].status, 1); eq(logs[1].duration, 1840); eq(logs[1].operations, 2)
  eq(logs[1].timestamp, 1736912100)
  eq(logs[2].status, 3)
  local l = assert(it:log("7c1e3a5b9d2f4e6a8b0c1d3e5f7a9b2c"))
  eq(l.status, 3); eq(l.duration, 5123)
  raises("status", it.logs, it, { status = 7 })
end)

test("patch: blueprint string + failer", function()
  local src = connect()
  local it = assert(src:incomplete_item(ITEM))
  local bp = assert(it:blueprint())
  bp:module(1).mapper.url = "https://erp.example.com/api/v2/orders"
  local p = assert(it:patch { blueprint = bp, failer = 1 })
  eq(p.failer, 1); eq(p.id, ITEM)
  check_err("invalid", "module 9", it.patch, it, { blueprint = bp, failer = 9 })
  raises("blueprint and/or failer", it.patch, it, {})
end)

test("retry one, bulk retry ids / all / except, safe", function()
  local src = connect()
  local it = assert(src:incomplete_item(ITEM))
  local r = assert(it:retry())
  eq(r.status, "queued"); eq(r.id, ITEM)
  local s = assert(src:retry { ids = { ITEM, "5a9c3e7b1d2f4a6c8e0b9d7f5a3c1e2b" }, progress = false })
  eq(s.total, 2); eq(s.queued, 2); eq(s.succeeded, 0); eq(s.failed, 0); eq(s.skipped, 0)
  eq(s.results[1].status, "queued") -- queued is not succeeded: Make runs it later
  -- all: the listing's resolved item (9d2b...) is skipped unless safe = false
  s = assert(src:retry { all = true, scenario = SID, except = { "5a9c3e7b1d2f4a6c8e0b9d7f5a3c1e2b" }, progress = false })
  eq(s.total, 2); eq(s.skipped, 1); eq(s.queued, 1)
  match(s.errors[1].message, "resolved already")
  -- forced: Make's own {all = true, exceptIds} form, one request
  local sent = {}
  local rec = connect(nil, { transport = function(req)
    sent[#sent + 1] = { method = req.method, url = req.url, query = req.query, json = req.json }
    return rd.http.request(req)
  end })
  s = assert(rec:retry { all = true, scenario = SID, except = { "9d2b7f4e6a1c3e5b8f0a2d4c6e8b1a3f" }, safe = false, progress = false })
  eq(#sent, 1); eq(sent[1].method, "POST"); match(sent[1].url, "/dlqs/retry$")
  eq(sent[1].query.scenarioId, SID); eq(sent[1].json.all, true)
  eq(sent[1].json.exceptIds, { "9d2b7f4e6a1c3e5b8f0a2d4c6e8b1a3f" })
  eq(s.total, 2); eq(s.queued, 2); eq(s.succeeded, 0); eq(s.skipped, 0) -- the ids Make queued
  -- by ids: {ids} in one chunk, scenario from the items
  sent = {}
  s = assert(rec:retry { ids = { ITEM }, progress = false })
  eq(sent[#sent].json.ids, { ITEM }); eq(sent[#sent].query.scenarioId, tostring(SID))
  check_err("invalid", "ids = ", src.retry, src, {})
  check_err("invalid", "scenario", src.retry, src, { all = true })
end)

test("retry{wait}: the mock's logs never change, so the outcome stays unknown (never succeeded)", function()
  local src = connect()
  local it = assert(src:incomplete_item(ITEM))
  check_err("timeout", "still queued", it.retry, it, { wait = true, timeout = 0.05, interval = 0.01 })
  local s = assert(src:retry { ids = { ITEM }, wait = true, timeout = 0.05, interval = 0.01, progress = false })
  eq(s.total, 1); eq(s.unknown, 1); eq(s.succeeded, 0); eq(s.results[1].status, "unknown")
  eq(s.errors[1].code, "timeout")
end)

test("delete: ids, all + confirmed, except, IM004, being processed", function()
  local src = connect()
  local r = assert(src:delete_incomplete { scenario = SID, ids = { ITEM, "5a9c3e7b1d2f4a6c8e0b9d7f5a3c1e2b" } })
  eq(r.deleted, 2)
  r = assert(src:delete_incomplete { scenario = SID, all = true, confirmed = true, except = { "9d2b7f4e6a1c3e5b8f0a2d4c6e8b1a3f" } })
  eq(r.deleted, 2)
  check_err("invalid", "confirmed = true", src.delete_incomplete, src, { scenario = SID, all = true })
  check_err("invalid", "needs scenario", src.delete_incomplete, src, { all = true, confirmed = true })
  -- ids without a scenario: each item is read for its scenario, then one DELETE per scenario
  local sent = {}
  local spy = connect(nil, { transport = function(req)
    sent[#sent + 1] = req.method .. " " .. req.url:gsub("^https?://[^/]+", "")
    return rd.http.request(req)
  end })
  r = assert(spy:delete_incomplete { ids = { ITEM } })
  eq(r.deleted, 1); eq(r.ids, { ITEM }); eq(#r.errors, 0)
  eq(sent, { "GET /dlqs/" .. ITEM, "DELETE /dlqs" })
  local refusing = connect("code=406")
  local msg = check_err("invalid", "IM004", refusing.delete_incomplete, refusing, { scenario = SID, all = true, confirmed = true })
  match(msg, "confirmed = true")
  local busy = connect("code=400")
  check_err("conflict", "being processed", busy.delete_incomplete, busy, { scenario = SID, ids = { ITEM } })
  local it = assert(src:incomplete_item(ITEM))
  eq(it:delete(), true)
  it.scenario = nil -- unknown scenario: the per-item (deprecated) endpoint
  eq(it:delete(), true)
end)

test("errors: 401 / 403 auth, 404, 429 budget, no token in messages", function()
  local bad = rd.connect { kind = "make", base_url = MOCK, token = TOKEN, headers = { Prefer = "code=401" } }
  local msg = check_err("auth", "HTTP 401", bad.incomplete_item, bad, ITEM)
  match(msg, "Invalid token"); no_token(msg)
  eq(require("redrive.cli").classify(msg), "auth")
  local forbidden = connect("code=403")
  msg = check_err("auth", "HTTP 403", forbidden.incomplete_item, forbidden, ITEM)
  eq(require("redrive.cli").classify(msg), "auth")
  local nf = connect("code=404")
  check_err("not_found", "Incomplete execution not found", nf.incomplete_item, nf, ITEM)
  local limited = connect("code=429", { rate_limit_retries = 2 })
  msg = check_err("rate_limited", "rate limited %(HTTP 429%)", limited.incomplete_item, limited, ITEM)
  match(msg, "gave up after 3 attempt")
  -- no Retry-After from Make: two back-offs, each at most backoff.max
  ok(limited._client.stats.waited <= 2 * 0.05, "backoff is bounded", limited._client.stats.waited)
  eq(limited._client.stats.rate_limited, 3)
  -- an iterator raises an error object with the code
  local err = raises("auth", function() for _ in bad:incomplete { scenario = SID } do end end)
  eq(err.code, "auth")
  no_token(tostring(err))
  -- connection refused -> "connect"
  local dead = rd.connect { kind = "make", base_url = "http://127.0.0.1:9", token = TOKEN, retries = 1, backoff = { base = 0.01 } }
  msg = check_err("connect", nil, dead.incomplete_item, dead, ITEM)
  no_token(msg)
  eq(require("redrive.cli").classify(msg), "connect")
end)

test("every call surfaces Make's error body (403 naming the scope, 404, 429)", function()
  local calls = {
    list = function(src) for _ in src:incomplete { scenario = SID } do end end,
    detail = function(src) return src:incomplete_item(ITEM) end,
    blueprint = function(_, it) return it:blueprint() end,
    bundle = function(_, it) return it:bundle() end,
    logs = function(_, it) for _ in it:logs {} do end end,
    log = function(_, it) return it:log("7c1e3a5b9d2f4e6a8b0c1d3e5f7a9b2c") end,
    patch = function(_, it) return it:patch { failer = 1 } end,
    retry = function(_, it) return it:retry { safe = false } end,
    bulk_retry = function(src) return src:retry { all = true, scenario = SID, safe = false, progress = false } end,
    delete = function(src) return src:delete_incomplete { scenario = SID, ids = { ITEM } } end,
    delete_one = function(_, it) return it:delete() end,
  }
  local WRITES = { patch = true, retry = true, bulk_retry = true, delete = true, delete_one = true }
  local per_status = {
    ["403"] = { code = "auth", text = "HTTP 403 Forbidden %(auth refused%): Access denied%. %[SC403%]" },
    ["404"] = { code = "not_found", text = "HTTP 404" },
    ["429"] = { code = "rate_limited", text = "rate limited %(HTTP 429%)" },
  }
  for status, want in pairs(per_status) do
    local src = connect("code=" .. status, { rate_limit_retries = 0 })
    for name, f in pairs(calls) do
      if not (status == "404" and (name == "list" or name == "bulk_retry" or name == "delete")) then -- no {dlqId}: no 404 declared
        local it = setmetatable({ id = ITEM }, src._mt.item) -- no scenario: item:delete() uses DELETE /dlqs/{id}
        local ok_, r, msg, code = pcall(f, src, it)
        if ok_ then
          eq(r, nil, name .. " " .. status); eq(code, want.code, name .. " " .. status)
        else
          -- an iterator raises an error object: its code, and "message (code)" as text
          eq(type(r) == "table" and r.code, want.code, name .. " " .. status)
          msg = tostring(r)
          match(msg, "%(" .. want.code .. "%)", name .. " " .. status)
        end
        match(msg, want.text, name .. " " .. status)
        match(msg, "^make: [A-Z]+ /dlqs", name)
        if status == "403" then -- the scope the token lacks, by what the call does
          local scope = WRITES[name] and "dlqs:write" or "dlqs:read"
          match(msg, "the token lacks the " .. scope .. " scope this call needs", name)
        end
        no_token(msg)
      end
    end
  end
end)

test("mutation gate: one observer event per mutating request; a limit stops the request", function()
  local G = require "redrive.mutation"
  local sent = 0
  local src = connect(nil, { transport = function(req)
    if req.method ~= "GET" then sent = sent + 1 end
    return rd.http.request(req)
  end })
  local events = {}
  local obs = G.observe(src, { name = "test", after = function(ev) events[#events + 1] = ev end })
  local it = assert(src:incomplete_item(ITEM))
  assert(it:patch { failer = 1 })
  assert(it:retry { safe = false })
  assert(it:delete()) -- through delete_incomplete: part of the same gated call
  local s = assert(src:retry { ids = { ITEM }, scenario = SID, safe = false, progress = false })
  eq(s.queued, 1)
  eq(sent, 4); eq(#events, 4); eq(obs.count, 4)
  local acts = {}
  for i, ev in ipairs(events) do acts[i] = ev.action; ok(not ev.refused and ev.error == nil, ev.action) end
  eq(table.concat(acts, " "), "patch retry delete retry")
  eq(events[1].id, ITEM); eq(#events[4].ids, 1)
  obs.limit = obs.count + 1
  assert(it:retry { safe = false })
  check_err("limit", "limit of 5 action%(s%) reached", it.delete, it)
  eq(sent, 5) -- the refused call sent nothing
  eq(events[#events].refused, true); eq(events[#events].code, "limit")
  obs.limit = nil
  G.unobserve(src, obs)
  assert(it:retry { safe = false })
  eq(#events, 6) -- no longer observed
end)

test("dry run: reads happen, nothing mutating is sent", function()
  local methods = {}
  local src = connect(nil, { transport = function(req)
    methods[req.method] = (methods[req.method] or 0) + 1
    return rd.http.request(req)
  end })
  rd.dry_run(true)
  local ok_, err = pcall(function()
    local it = assert(src:incomplete_item(ITEM))
    local bp = assert(it:blueprint())
    bp:module(1).mapper.url = "https://x.example/"
    local p = assert(it:patch { blueprint = bp })
    eq(p.dry_run, true); eq(#p.diff, 1)
    local r = assert(it:retry()); eq(r.dry_run, true)
    local d = assert(it:delete()); eq(d.dry_run, true)
    local s = assert(src:retry { all = true, scenario = SID, progress = false })
    eq(s.dry_run, true); eq(s.would_retry, 2); eq(s.skipped, 1)
    local x = assert(src:delete_incomplete { scenario = SID, all = true, confirmed = true })
    eq(x.dry_run, true); eq(x.would_delete, 3)
  end)
  rd.dry_run(false)
  assert(ok_, err)
  ok(methods.GET and methods.GET >= 5, "reads were made")
  for m in pairs(methods) do eq(m, "GET", "only reads in a dry run") end
end)

H.done()

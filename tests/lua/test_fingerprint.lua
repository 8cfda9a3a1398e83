-- Failure fingerprints on every source: rd.fingerprint; the local source's
-- fingerprints (recorded, backfilled by the migration, shared by an execution
-- and its item), groups, fingerprint filters, health, resolve; groups and
-- filters computed while paging on Make and n8n (fakes of their APIs, the
-- recorded answers of a real n8n, the Prism mocks); Make's retry{wait}.
package.path = (os.getenv("RD_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local core = require "redrive.core"
local G = require "redrive.mutation"
local S = H.server

local function collect(it)
  local out = {}
  for v in it do out[#out + 1] = v end
  return out
end

-- ---------------------------------------------------------------------------
-- rd.fingerprint

H.no_store("fp-1.1 rd.fingerprint: a 12-digit id and the template; what counts and what does not", function()
  local fp, cause = rd.fingerprint("HTTP 503 from http://10.0.0.7:8080/order/5")
  match(fp, "^%x+$"); eq(#fp, 12)
  eq(cause, "HTTP 503 from http://<host>/order/<n>")
  eq(rd.fingerprint("HTTP 503 from http://127.0.0.1:41047/order/10"), fp)
  eq(core.fingerprint("HTTP 503 from http://10.0.0.7:8080/order/5"), fp)
  ok(rd.fingerprint("HTTP 502 from http://10.0.0.7:8080/order/5") ~= fp, "another status")
  local m = { module = "http:ActionSendData", module_id = 3, class = "http" }
  local fm = rd.fingerprint("HTTP 503 from http://h/order/5", m)
  ok(fm ~= fp, "the module counts")
  eq(rd.fingerprint("HTTP 503 from http://h/order/5", { module = "http:ActionSendData", module_id = "3",
    class = "http" }), fm) -- a numeric id is its text
  eq(rd.fingerprint("HTTP 503 from http://h/order/5", { module = "http:ActionSendData", module_id = 3,
    class = "anything", status = 503 }), fm) -- a status outweighs the class
  ok(rd.fingerprint("x", { class = "timeout" }) ~= rd.fingerprint("x", { class = "connect" }), "the class counts")
  eq(select(2, rd.fingerprint(nil)), "(no message)")
  eq(select(2, rd.fingerprint("")), "(no message)")
  raises("table expected", rd.fingerprint, "x", 5)
  raises("field 'module'", rd.fingerprint, "x", { module = {} })
  raises("field 'status'", rd.fingerprint, "x", { status = "503" })
  raises("field 'status'", rd.fingerprint, "x", { status = 1.5 })
end)

-- ---------------------------------------------------------------------------
-- the local source

-- a new store on the suite's backend (tests/run runs this file on both)
local function connect()
  local path = H.new_db(".db")
  return assert(rd.connect { kind = "local", db = path }), path
end

-- module 1 reads an order (the test server's orders API: ids that are
-- multiples of 7 fail with 500), module `at` (2 by default) posts it on
local function orders_bp(name, url2, at)
  return { name = name, flow = {
    { id = 1, module = "http:ActionSendData", version = 3,
      mapper = { url = S .. "/orders/{{0.n}}", method = "get", parseResponse = true } },
    { id = at or 2, module = "http:ActionSendData", version = 3,
      mapper = { url = url2 or (S .. "/ok"), method = "get" } },
  }, metadata = { version = 1, scenario = { maxErrors = 3 } } }
end

local function run_all(src, sc, ns)
  local out = {}
  for _, n in ipairs(ns) do out[#out + 1] = assert(src:run(sc.id, { input = { n = n } })) end
  return out
end

test("fp-2.1 local: a failed execution and its item carry one fingerprint and cause; a success none", function()
  local src = connect()
  local sc = assert(src:scenario_create { name = "orders", blueprint = orders_bp("orders") })
  local runs = run_all(src, sc, { 7, 14, 3 })
  eq(runs[1].status, "error"); eq(runs[3].status, "success")
  local fp = runs[1].fingerprint
  match(fp, "^%x+$")
  eq(runs[1].cause, 'HTTP 500 from http://<host>/orders/<n>: {"error":"order service failed"}')
  eq(runs[2].fingerprint, fp) -- another order, the same cause
  eq(runs[3].fingerprint, nil); eq(runs[3].cause, nil)
  local it = assert(src:incomplete_item(runs[1].dlq_id))
  eq(it.fingerprint, fp); eq(it.cause, runs[1].cause)
  eq(src:execution(runs[1].id).fingerprint, fp) -- as stored
  -- the module and its type count: the failure of module 1 of the
  -- scenario's blueprint, computed as the store's migration does
  eq(fp, (rd.fingerprint(runs[1].error.message, { module = "http:ActionSendData", module_id = 1, class = "http" })))
  -- a status elsewhere (module 2 answers 503) is another cause
  local sc2 = assert(src:scenario_create { name = "down", blueprint = orders_bp("down", S .. "/status/503") })
  local e2 = assert(src:run(sc2.id, { input = { n = 1 } }))
  eq(e2.status, "error")
  ok(e2.fingerprint and e2.fingerprint ~= fp, "another fingerprint")
  match(e2.cause, "^HTTP 503 from http://<host>/status/<n>")
end)

if H.pg then
  skip("fp-2.2 local: the migration backfills what a run records", "about SQLite files")
elseif not H.have_sqlite3 then
  skip("fp-2.2 local: the migration backfills what a run records", "needs the sqlite3 shell to downgrade a store")
else
test("fp-2.2 local: a store from before fingerprints gets, on opening, the ones a run records now", function()
  local src, path = connect()
  local sc = assert(src:scenario_create { name = "orders", blueprint = orders_bp("orders") })
  local sc2 = assert(src:scenario_create { name = "late", dlq = false,
    blueprint = orders_bp("late", S .. "/status/502", 5) })
  local runs = run_all(src, sc, { 7, 1, 21 })
  local nodlq = assert(src:run(sc2.id, { input = { n = 1 } })) -- no item: the scenario's blueprint
  local it = assert(src:incomplete_item(runs[1].dlq_id))
  local patched = orders_bp("orders") -- a patched snapshot: the item's own blueprint counts
  patched.flow[1].module = "http:ActionSendData"
  assert(it:patch { blueprint = patched })
  local want = {}
  for e in src:executions {} do want[e.id] = { e.fingerprint, e.cause } end
  for x in src:incomplete {} do want[x.id] = { x.fingerprint, x.cause } end
  ok(want[nodlq.id][1], "the failure without an item has one")
  src:close()
  H.sql(path, "DROP TABLE job_runner;" .. -- version 5
    " DROP TABLE ledger_event; DROP TABLE ledger_item;" .. -- version 4
    " DROP TABLE job_item; DROP TABLE job;" .. -- version 3
    " DROP INDEX execution_fingerprint; DROP INDEX dlq_fingerprint;" ..
    " ALTER TABLE execution DROP COLUMN fingerprint; ALTER TABLE execution DROP COLUMN cause;" ..
    " ALTER TABLE dlq_item DROP COLUMN fingerprint; ALTER TABLE dlq_item DROP COLUMN cause;" ..
    " PRAGMA user_version = 1;")
  src = assert(rd.connect { kind = "local", db = path })
  local n = 0
  for e in src:executions {} do n = n + 1; eq({ e.fingerprint, e.cause }, want[e.id], "execution " .. e.id) end
  for x in src:incomplete {} do n = n + 1; eq({ x.fingerprint, x.cause }, want[x.id], "item " .. x.id) end
  eq(n, 6)
end)
end

-- two causes in two scenarios, and a third one resolved
local function three_groups()
  local src, path = connect()
  local a = assert(src:scenario_create { name = "A", blueprint = orders_bp("A") })
  local b = assert(src:scenario_create { name = "B", blueprint = orders_bp("B") })
  local c = assert(src:scenario_create { name = "C", blueprint = orders_bp("C", S .. "/status/503") })
  run_all(src, a, { 7, 14, 21, 1 })
  run_all(src, b, { 28, 35 })
  local down = run_all(src, c, { 1, 2, 3 })
  return src, { a = a, b = b, c = c, down = down }, path
end

test("fp-3.1 local groups: biggest first, with cause, counts, scenarios, examples, first and last seen", function()
  local src, s = three_groups()
  local gs = assert(src:groups {})
  eq(#gs, 2)
  local g = gs[1]
  eq(g.count, 5)
  eq(g.cause, 'HTTP 500 from http://<host>/orders/<n>: {"error":"order service failed"}')
  eq(g.scenarios, { s.a.id, s.b.id }); eq(g.scenario_names, { "A", "B" })
  eq(#g.example_ids, 3)
  ok(g.first <= g.last, "first <= last")
  for _, id in ipairs(g.example_ids) do eq(assert(src:incomplete_item(id)).fingerprint, g.fingerprint) end
  eq(gs[2].count, 3); eq(gs[2].scenarios, { s.c.id })
  match(gs[2].cause, "^HTTP 503 from http://<host>/status/<n>")
  -- filters: scenario, resolved, time, limit
  eq(#assert(src:groups { scenario = s.b.id }), 1)
  eq(assert(src:groups { scenario = s.b.id })[1].count, 2)
  eq(#assert(src:groups { limit = 1 }), 1)
  eq(#assert(src:groups { since = rd.time() + 3600 }), 0)
  eq(#assert(src:groups { ["until"] = 1 }), 0)
  eq(#assert(src:groups { resolved = true }), 0)
  assert(src:resolve { ids = { s.down[1].dlq_id } })
  eq(assert(src:groups { resolved = true })[1].count, 1)
  eq(assert(src:groups {})[2].count, 2)
  raises("resolved must be true, false or \"any\"", src.groups, src, { resolved = "yes" })
  eq(assert(src:groups { resolved = "any" })[2].count, 3)
end)

test("fp-3.2 local fingerprint filters: incomplete, executions, retry, delete_incomplete (dry run too)", function()
  local src, s = three_groups()
  local gs = assert(src:groups {})
  local big, small = gs[1].fingerprint, gs[2].fingerprint
  eq(#collect(src:incomplete { fingerprint = big }), 5)
  eq(#collect(src:executions { fingerprint = small }), 3)
  eq(#collect(src:executions { fingerprint = "000000000000" }), 0)
  raises("fingerprint must be", src.incomplete, src, { fingerprint = 12 })
  -- a dry run counts the group only
  rd.dry_run(true)
  local plan = assert(src:retry { all = true, fingerprint = small })
  rd.dry_run(false)
  eq(plan.would_retry, 3)
  -- the retry takes that group and nothing else (503 still: they fail again)
  local r = assert(src:retry { all = true, fingerprint = small })
  eq(r.total, 3); eq(r.failed, 3)
  for it in src:incomplete { fingerprint = big } do eq(it.attempts, 0) end
  -- ids outside the group are not part of it
  local other = collect(src:incomplete { fingerprint = big })[1]
  local r2 = assert(src:retry { ids = { other.id }, fingerprint = small })
  eq(r2.total, 0)
  -- delete one group
  local d = assert(src:delete_incomplete { all = true, confirmed = true, fingerprint = small })
  eq(d.deleted, 3)
  eq(#collect(src:incomplete {}), 5)
  eq(s.a.name, "A")
end)

test("fp-3.3 local health: top reasons are fingerprint groups, the cause as reason", function()
  local src = three_groups()
  local h = assert(src:health {})
  eq(h.failed, 8)
  eq(#h.top_reasons, 2)
  local t = h.top_reasons[1]
  eq(t.count, 5); eq(t[2], 5)
  eq(t.reason, 'HTTP 500 from http://<host>/orders/<n>: {"error":"order service failed"}')
  eq(t[1], t.reason)
  eq(t.fingerprint, assert(src:groups {})[1].fingerprint)
end)

test("fp-3.4 local resolve: handled without a retry, through the mutation gate; kept: leased, unknown", function()
  local src, s = three_groups()
  local events = {}
  local obs = G.observe(src, { name = "t", after = function(ev) events[#events + 1] = ev end })
  local it = assert(src:incomplete_item(s.down[1].dlq_id))
  eq(it:resolve(), true)
  eq(it:refresh().resolved, true)
  eq(it:refresh().attempts, 0)
  eq(events[1].action, "resolve"); eq(events[1].ids, { it.id }); eq(events[1].n, 1)
  -- a safe retry skips it now
  local r = assert(src:retry { ids = { it.id } })
  eq(r.skipped, 1)
  -- dry run: counted, nothing changed
  rd.dry_run(true)
  local d = assert(src:resolve { ids = { s.down[2].dlq_id, "ffffffffffffffffffffffffffffffff" } })
  rd.dry_run(false)
  eq(d.dry_run, true); eq(d.would_resolve, 1); eq(d.errors[1].code, "not_found")
  eq(assert(src:incomplete_item(s.down[2].dlq_id)).resolved, false)
  -- unknown ids are reported, the rest resolved
  local res = assert(src:resolve { ids = { s.down[2].dlq_id, "ffffffffffffffffffffffffffffffff" } })
  eq(res.resolved, 1); eq(res.errors[1].id, "ffffffffffffffffffffffffffffffff")
  check_err("not_found", "not found", select(2, pcall(function() return src:incomplete_item(s.down[3].dlq_id) end)).resolve,
    setmetatable({ id = "ffffffffffffffffffffffffffffffff" }, getmetatable(it)))
  -- a limit on the observer refuses it
  obs.limit, obs.count = 0, 0
  check_err("limit", "limit", src.resolve, src, { ids = { s.down[3].dlq_id } })
  G.unobserve(src, obs)
  raises("ids", src.resolve, src, {})
end)

test("fp-3.5 rules: a rule's fingerprint field narrows its listing to that group", function()
  local src, _, path = three_groups()
  local small = assert(src:groups {})[2]
  local dir = H.tmpname("-rules")
  assert(os.execute("mkdir -p " .. dir))
  local f = assert(io.open(dir .. "/g.lua", "w"))
  f:write(string.format([[return { name = "group", fingerprint = %q,
    match = function(item) return true end,
    action = function(item, ctx) ctx.retry() end }]], small.fingerprint))
  f:close()
  local saved = rd._db
  rd._db = path -- the rule's source: rd.connect(), this store
  local code = require("redrive.rules").main(dir, { quiet = true })
  rd._db = saved
  eq(code, 0)
  for it in src:incomplete {} do
    eq(it.attempts, it.fingerprint == small.fingerprint and 1 or 0, it.cause)
  end
  -- a fingerprint that is not a string is refused when the file loads
  f = assert(io.open(dir .. "/g.lua", "w"))
  f:write([[return { name = "bad", fingerprint = 12, match = function() return true end,
    action = function() end }]])
  f:close()
  local rules, errs = require("redrive.rules").load_dir(dir, {})
  eq(#rules, 0); match(errs[1].message, "field 'fingerprint' must be a string")
end)

-- ---------------------------------------------------------------------------
-- Make: a fake of its DLQ API (pages, logs that appear after a retry)

local function fake_make(n)
  local F = { items = {}, logs = {}, calls = {}, queued = {} }
  for i = 1, n do
    local reason = i % 3 == 0 and string.format("ConnectionError: [503] Service Unavailable (host api-%d.example.com)", i)
      or string.format("DataError: [400] Invalid value of field 'amount' in row %d", i)
    F.items[i] = { id = string.format("%032x", i), reason = reason, created = "2025-01-15T03:12:45.120Z",
      size = 10, resolved = false, retry = false, attempts = 0 }
    F.logs[F.items[i].id] = {}
  end
  local function reply(status, v)
    return { status = status, headers = {}, body = rd.json.encode(v), json = function(self) return rd.json.decode(self.body) end }
  end
  function F.transport(req)
    local path = req.url:match("^https?://[^/]+(/.*)$"):gsub("^/api/v2", "")
    local q = req.query or {}
    F.calls[#F.calls + 1] = req.method .. " " .. path
    if req.method == "GET" and path == "/dlqs" then
      local off, lim = tonumber(q["pg[offset]"]), tonumber(q["pg[limit]"])
      local out = {}
      for i = off + 1, math.min(#F.items, off + lim) do out[#out + 1] = F.items[i] end
      return reply(200, { dlqs = out })
    end
    local id, rest = path:match("^/dlqs/(%x+)(.*)$")
    if req.method == "GET" and rest == "/logs" then
      -- a queued retry is recorded after two looks at the logs
      local qd = F.queued[id]
      if qd and not F.never then
        qd.looks = qd.looks + 1
        if qd.looks >= 2 then
          F.queued[id] = nil
          table.insert(F.logs[id], { id = #F.logs[id] + 1, status = F.outcome or 1, duration = 5, operations = 1,
            transfer = 0, timestamp = "2025-01-15T04:00:00.000Z", imtId = "exec-" .. id })
        end
      end
      return reply(200, { dlqLogs = F.logs[id] or {} })
    end
    if req.method == "POST" and rest == "/retry" then
      F.queued[id] = { looks = 0 }
      return reply(200, {})
    end
    if req.method == "GET" and rest == "" then
      for _, it in ipairs(F.items) do
        if it.id == id then return reply(200, { dlq = { id = id, scenarioId = 1, resolved = false } }) end
      end
      return reply(404, { message = "not found" })
    end
    if req.method == "POST" and path == "/dlqs/retry" then
      for _, x in ipairs(req.json.ids or {}) do F.queued[x] = { looks = 0 } end
      return reply(200, { dlqs = req.json.ids })
    end
    return reply(400, { message = "unexpected " .. req.method .. " " .. path })
  end
  return F
end

local function make_src(F)
  return assert(rd.connect { kind = "make", base_url = "http://make.test/api/v2", token = "make-token-123456",
    transport = F.transport, scenario = 1, backoff = { base = 0.001, max = 0.01 } })
end

H.no_store("fp-4.1 make: fingerprints of listed items, groups while paging (3 pages), filters", function()
  local F = fake_make(250)
  local src = make_src(F)
  local items = collect(src:incomplete {})
  eq(#items, 250)
  eq(items[1].fingerprint, items[2].fingerprint)
  eq(items[1].cause, "DataError: [400] Invalid value of field <q> in row <n>")
  ok(items[3].fingerprint ~= items[1].fingerprint, "another status, another group")
  eq(items[3].cause, "ConnectionError: [503] Service Unavailable (host <host>)")
  F.calls = {}
  local gs = assert(src:groups {})
  eq(#gs, 2)
  eq(gs[1].count, 167); eq(gs[2].count, 83)
  eq(gs[1].example_ids, { items[1].id, items[2].id, items[4].id })
  eq(gs[1].scenarios, { 1 })
  local pages = 0
  for _, c in ipairs(F.calls) do if c == "GET /dlqs" then pages = pages + 1 end end
  eq(pages, 3)
  eq(#collect(src:incomplete { fingerprint = gs[2].fingerprint }), 83)
  eq(#assert(src:groups { limit = 1 }), 1)
  -- the detail has no reason: no fingerprint rather than a wrong one
  eq(assert(src:incomplete_item(items[1].id)).fingerprint, nil)
  -- an item cannot be resolved on Make: what to do instead
  check_err("unsupported", "delete it", items[1].resolve, items[1])
  check_err("invalid", "all = true", src.retry, src, { ids = { items[1].id }, fingerprint = gs[1].fingerprint })
end)

H.no_store("fp-4.2 make: a retry by fingerprint takes that group only (dry run, then waited to its outcome)", function()
  local F = fake_make(6)
  local src = make_src(F)
  local gs = assert(src:groups {})
  eq(gs[2].count, 2)
  rd.dry_run(true)
  local plan = assert(src:retry { all = true, fingerprint = gs[2].fingerprint })
  rd.dry_run(false)
  eq(plan.would_retry, 2)
  local s = assert(src:retry { all = true, fingerprint = gs[2].fingerprint, wait = true, interval = 0.001 })
  eq(s.total, 2); eq(s.succeeded, 2)
  for _, x in ipairs(s.results) do
    eq(x.status, "succeeded"); eq(x.execution, "exec-" .. x.id)
    eq(collect(src:incomplete { fingerprint = gs[2].fingerprint })[1] ~= nil, true)
  end
  local posted = 0
  for _, c in ipairs(F.calls) do if c == "POST /dlqs/retry" then posted = posted + 1 end end
  eq(posted, 1)
end)

-- ---------------------------------------------------------------------------
-- n8n: the answers a real n8n 2.41.1 gave (tests/fixtures/n8n-2.41.1/)

local fixture, real_n8n = require("n8n_fixtures").fixture, require("n8n_fixtures").real_n8n

H.no_store("fp-5.1 n8n (real 2.41.1 answers): execution and item share a fingerprint; groups; filters; crash", function()
  local src = assert(rd.connect { kind = "n8n", base_url = "http://n8n.test/api/v1", token = "n8n-key-123456",
    transport = real_n8n() })
  local err_fx = fixture("execution-error").body
  local e = assert(src:execution(err_fx.id))
  match(e.fingerprint, "^%x+$")
  match(e.cause, "^HTTP 500: ")
  local it = assert(src:incomplete_item(err_fx.id))
  eq(it.fingerprint, e.fingerprint); eq(it.cause, e.cause)
  -- the failed node, its type and the status are what count
  local node
  for _, n in ipairs(err_fx.workflowData.nodes) do if n.name == e.error.module then node = n end end
  eq(e.fingerprint, (rd.fingerprint(e.error.message, { module = node.type, module_id = node.name,
    status = tonumber(e.error.http_code) })))
  local listed = collect(src:incomplete {})
  eq(#listed, 1); eq(listed[1].fingerprint, e.fingerprint)
  local gs = assert(src:groups {})
  eq(#gs, 1); eq(gs[1].count, 1); eq(gs[1].fingerprint, e.fingerprint); eq(gs[1].example_ids, { e.id })
  eq(gs[1].scenario_names, { err_fx.workflowData.name })
  eq(#collect(src:executions { fingerprint = e.fingerprint }), 1)
  eq(#collect(src:executions { fingerprint = "000000000000" }), 0)
  -- a crash is its own cause
  local crashed = assert(src:execution(fixture("execution-crashed").body.id))
  ok(crashed.fingerprint and crashed.fingerprint ~= e.fingerprint, "crash fingerprint")
  eq(assert(src:incomplete_item(crashed.id)).fingerprint, crashed.fingerprint)
  -- a success has none
  eq(assert(src:execution(fixture("execution-success").body.id)).fingerprint, nil)
  -- health: fingerprint groups
  local h = assert(src:health {})
  eq(h.top_reasons[1].fingerprint, e.fingerprint); eq(h.top_reasons[1].reason, e.cause)
  check_err("unsupported", "delete the execution", it.resolve, it)
end)

-- ---------------------------------------------------------------------------
-- the Prism mocks (skipped without them)

local MAKE, N8N = os.getenv("RD_MOCK_MAKE"), os.getenv("RD_MOCK_N8N")
if not MAKE then
  skip("fp-6.1 make mock groups", "RD_MOCK_MAKE not set (Prism not installed: scripts/prism)")
else
H.no_store("fp-6.1 make mock: the contract's three reasons are three groups, each status its own", function()
  local src = assert(rd.connect { kind = "make", base_url = MAKE, token = "mk-secret-token-0123456789",
    backoff = { base = 0.01, max = 0.05 } })
  local gs = assert(src:groups { scenario = 112233, resolved = false })
  eq(#gs, 2) -- the third is resolved
  local causes = {}
  for _, g in ipairs(gs) do causes[#causes + 1] = g.cause; eq(g.count, 1) end
  table.sort(causes)
  eq(causes, { "ConnectionError: [503] Service Unavailable",
               "DataError: [400] Invalid value of field <q>: expected a number." })
  eq(#assert(src:groups { scenario = 112233, resolved = true }), 1)
end)
end
if not N8N then
  skip("fp-6.2 n8n mock groups", "RD_MOCK_N8N not set (Prism not installed: scripts/prism)")
else
H.no_store("fp-6.2 n8n mock: failed executions have fingerprints; groups count them", function()
  local src = assert(rd.connect { kind = "n8n", base_url = N8N, token = "n8n-api-key-secret-42",
    backoff = { base = 0.01, max = 0.05 } })
  local items, by = collect(src:incomplete {}), {}
  ok(#items >= 1, "the mock's failed execution")
  for _, it in ipairs(items) do
    match(it.fingerprint, "^%x+$"); ok(it.cause, "cause")
    by[it.fingerprint] = (by[it.fingerprint] or 0) + 1
  end
  local gs = assert(src:groups {})
  local n = 0
  for _, g in ipairs(gs) do n = n + g.count; eq(g.count, by[g.fingerprint]) end
  eq(n, #items)
end)
end

H.done()

-- The n8n source against a real n8n (tests/itest/run starts it): the whole
-- suite of calls, a case for each finding of issue 14, and the real answers
-- recorded as fixtures (tests/fixtures/n8n-<version>/, decoded offline by
-- tests/lua/test_source_n8n.lua).
package.path = os.getenv("RD_ROOT") .. "/tests/lua/?.lua;" .. os.getenv("RD_ROOT") .. "/tests/itest/?.lua;" .. package.path
local H = require "harness"
local rd = require "redrive"
local L = require "n8n_live"

local S = L.server
L.setup()
local src = L.src()

local function count(it) local n = 0; for _ in it do n = n + 1 end; return n end
local function ids(it) local t = {}; for x in it do t[x.id] = x end; return t end

test("itest-1: listing, pagination, run data, blueprint, bundle, reasons (findings 4, 5)", function()
  local k = L.key("basic")
  local bad = L.trigger(S .. "/status/500?key=" .. k)
  L.finished(bad)
  local good = L.trigger(S .. "/ok?key=" .. k)
  L.finished(good)
  L.record("list-page", L.raw("GET", "/executions?limit=2&workflowId=" .. L.workflows.main.id))
  L.record("list-page-with-data", L.raw("GET", "/executions?limit=1&includeData=true&status=error&workflowId=" ..
    L.workflows.main.id))
  L.record("execution-error", L.raw("GET", "/executions/" .. bad .. "?includeData=true"))
  L.record("execution-success", L.raw("GET", "/executions/" .. good .. "?includeData=true"))
  -- pages of one: the cursor walks them all
  local n, last = 0, math.huge
  for e in src:executions { scenario = L.workflows.main.id, page = 1 } do
    n = n + 1
    ok(tonumber(e.id) < last, "newest first"); last = tonumber(e.id)
  end
  ok(n >= 2, "both listed")
  local e = assert(src:execution(bad))
  eq(e.status, "error"); eq(e.error.module, "HTTP Request"); eq(e.error.code, "500"); eq(e.error.http_code, "500")
  match(e.error.message, "^HTTP 500: ")
  eq(e.scenario_name, L.workflows.main.name)
  ok(e.duration and e.duration >= 0, "duration in ms")
  local r = assert(e:run_data())
  eq(r["HTTP Request"].error.httpCode, "500")
  local it = assert(src:incomplete_item(bad))
  eq(it.scenario_name, L.workflows.main.name) -- finding 4: workflowData at the top level
  eq(it.failer, "HTTP Request")
  local bp = assert(it:blueprint())
  eq(bp.name, L.workflows.main.name)
  local b = assert(it:bundle())
  eq(b[1].body.url, S .. "/status/500?key=" .. k)
  -- finding 5: the reason carries the status, so a reason filter finds it
  local found = ids(src:incomplete { scenario = L.workflows.main.id, reason = "500" })
  ok(found[bad], "incomplete{reason = '500'} lists " .. bad)
  eq(count(src:incomplete { scenario = L.workflows.main.id, reason = "^HTTP 404" }), 0)
end)

test("itest-2: errors: 401, 403 names the scope, 404 (finding 7: one line)", function()
  local r401 = L.raw("GET", "/executions", nil, "not-a-key")
  L.record("error-401", r401)
  local bad = L.src { token = "not-a-key" }
  local msg = check_err("auth", "HTTP 401", bad.execution, bad, "1")
  ok(not msg:find("not%-a%-key"), "no key in the message")
  local some = L.trigger(S .. "/status/503")
  L.finished(some)
  local ro = L.src { token = L.keys.read }
  local r403 = L.raw("POST", "/executions/" .. some .. "/retry", rd.json.object {}, L.keys.read)
  L.record("error-403", r403)
  local e = assert(ro:execution(some))
  msg = check_err("auth", "HTTP 403", e.retry, e)
  match(msg, "execution:retry")
  L.record("error-404", L.raw("GET", "/executions/99999999"))
  check_err("not_found", "HTTP 404", src.execution, src, "99999999")
  -- the CLI: one line and exit 3 on a refused key, no Lua traceback
  local cfg = H.tmpname(".lua")
  local f = assert(io.open(cfg, "w"))
  f:write(string.format("return {default = 'n', profiles = {n = {kind = 'n8n', base_url = %q, token = 'not-a-key'}}}",
    L.api))
  f:close()
  local p = assert(io.popen(string.format("REDRIVE_CONFIG=%q %q ls 2>&1", cfg, os.getenv("REDRIVE"))))
  local out = p:read("a")
  local _, _, st = p:close()
  eq(st, 3, "exit status")
  ok(not out:find("traceback") and not out:find("nobody waited"), "no trace: " .. out)
  local lines = select(2, out:gsub("\n", "\n"))
  ok(lines <= 2, "one error line (after the header): " .. out)
  -- finding 7: a bulk retry whose listing fails raises once, without a trace per worker
  out = L.process(string.format([[
    local rd = require "redrive"
    local s = assert(rd.connect{kind = "n8n", base_url = os.getenv("N8N_API"), token = "not-a-key"})
    local ok, err = pcall(s.retry, s, {all = true, concurrency = 8, progress = false})
    print(ok, err)
  ]]))
  match(out, "^false\t")
  ok(not out:find("nobody waited"), "no per-worker trace: " .. out)
end)

test("itest-3: a retry longer than its timeout is reconciled, never failed, never run twice (findings 1, 6, 8)", function()
  local k = L.key("slow")
  local wf = L.workflows.chain.id
  local orig = L.trigger(S .. "/flaky?fail=1&delay=4000&key=" .. k, "chain")
  L.finished(orig)
  eq(L.hits(k), 1)
  -- the retry runs 4 s; its call gives up after 1 s
  local slow = L.src { retry_timeout = 1 }
  local s = assert(slow:retry { ids = { orig }, progress = false })
  eq(s.failed, 0, "not failed"); eq(s.running, 1, "running"); eq(s.succeeded, 0)
  local res = s.results[1]
  eq(res.id, orig); eq(res.status, "running")
  local new_id = res.execution
  ok(new_id, "the retry's execution id is known")
  -- finding 6: a running execution shows in unfiltered listings, health and chain
  ok(ids(src:executions { scenario = wf })[new_id], "running retry listed")
  local h = assert(src:health { scenario = wf })
  ok(h.running >= 1, "health counts it running")
  local chain = assert(assert(src:execution(orig)):chain())
  eq(#chain, 2); eq(chain[2].id, new_id); eq(chain[2].status, "running"); eq(chain[2].attempts, 2)
  -- another redrive process, a moment later: the running retry is the marker
  local out = L.process(string.format([[
    local rd = require "redrive"
    local s = assert(rd.connect{kind = "n8n", base_url = os.getenv("N8N_API"), token = os.getenv("N8N_KEY")})
    local r = assert(s:retry{ids = {%q}, progress = false})
    print(r.total, r.skipped, r.failed, r.errors[1] and r.errors[1].message)
  ]], orig))
  match(out, "^1\t1\t0\t.*still running", "the second process skips it")
  check_err("conflict", "still running", assert(src:execution(orig)).retry, assert(src:execution(orig)))
  eq(count(src:incomplete { scenario = wf }), 0, "nothing incomplete while its retry runs")
  -- the retry ends well: one failure, one retry, the endpoint hit twice
  local done = assert(assert(src:execution(new_id)):wait { timeout = 60, interval = 0.2 })
  eq(done.status, "success")
  eq(L.hits(k), 2)
  -- finding 8: a retry's execution has stopped_at and duration
  ok(done.stopped_at and done.duration and done.duration >= 4000, "duration of the slow retry")
  L.record("execution-retry-success", L.raw("GET", "/executions/" .. new_id))
end)

test("itest-3b: wait = true follows a retry that outlived its call until it ends", function()
  local k = L.key("slowwait")
  local orig = L.trigger(S .. "/flaky?fail=1&delay=3000&key=" .. k, "chain")
  L.finished(orig)
  -- the retry runs 3 s, its call gives up after 1 s: found running, then followed
  local slow = L.src { retry_timeout = 1 }
  local s = assert(slow:retry { ids = { orig }, wait = true, timeout = 60, interval = 0.2, progress = false })
  eq(s.succeeded, 1, "the real outcome"); eq(s.running or 0, 0); eq(s.failed, 0)
  local done = assert(src:execution(s.results[1].execution))
  eq(done.status, "success"); eq(done.retry_of, orig)
  eq(L.hits(k), 2, "run once more, not twice")
end)

test("itest-4: safe retry judges the whole chain (finding 2)", function()
  local k = L.key("chain")
  local wf = L.workflows.chain.id
  local root = L.trigger(S .. "/flaky?fail=3&key=" .. k, "chain")
  L.finished(root)
  local e = assert(src:execution(root))
  local rr = L.raw("POST", "/executions/" .. root .. "/retry", rd.json.object {}, L.keys.exec)
  L.record("retry-response", rr)
  eq(rr.status, 200)
  local first = assert(src:execution(tostring(rr:json().id)))
  eq(first.status, "error"); eq(first.retry_of, root)
  ok(first.stopped_at and first.duration, "retry execution has stopped_at and duration")
  local last = assert(first:retry { attempts = 3, backoff = { base = 0.01, max = 0.05 } })
  eq(last.status, "success")
  eq(L.hits(k), 4)
  local chain = assert(last:chain())
  eq(#chain, 4); eq(chain[1].id, root); eq(chain[4].id, last.id); eq(chain[4].attempts, 4)
  -- n8n marks only the execution retried directly; the root is not marked
  e = assert(src:execution(root))
  eq(e.retry_success_id, nil)
  check_err("conflict", "already succeeded", e.retry, e)
  local it = assert(src:incomplete_item(root))
  check_err("conflict", "already succeeded", it.retry, it)
  eq(count(src:incomplete { scenario = wf }), 0, "no member of a succeeded chain is incomplete")
  local s = assert(src:retry { all = true, scenario = wf, load_workflow = true, progress = false })
  eq(s.total, 0)
  s = assert(src:retry { ids = { root, chain[2].id }, progress = false })
  eq(s.skipped, 2); eq(s.succeeded, 0)
  eq(L.hits(k), 4, "nothing ran again")
  local resolved = ids(src:incomplete { scenario = wf, resolved = true })
  ok(resolved[chain[3].id], "the newest failure of the chain stands for it among the resolved")
  ok(ids(src:incomplete { scenario = wf, resolved = "any" })[chain[3].id], "\"any\": resolved ones too")
end)

test("itest-5: bulk retry with except; results carry the new executions; delete", function()
  local k1, k2 = L.key("bulk1"), L.key("bulk2")
  local wf = L.workflows.other.id
  local a = L.trigger(S .. "/flaky?fail=1&key=" .. k1, "other")
  L.finished(a)
  local b = L.trigger(S .. "/flaky?fail=1&key=" .. k2, "other")
  L.finished(b)
  local s = assert(src:retry { all = true, scenario = wf, except = { a }, progress = false })
  eq(s.total, 1); eq(s.succeeded, 1)
  eq(s.results[1].id, b); eq(s.results[1].status, "succeeded")
  local new = assert(src:execution(s.results[1].execution))
  eq(new.retry_of, b); eq(new.status, "success")
  eq(L.hits(k1), 1); eq(L.hits(k2), 2)
  local d = assert(src:delete_incomplete { ids = { a } })
  eq(d.deleted, 1)
  check_err("not_found", nil, src.execution, src, a)
end)

test("itest-6: a crashed execution is in the queue (finding 3)", function()
  if not L.ctl then return skip("crash", "RD_ITEST_CTL not set") end
  local k = L.key("crash")
  local wf = L.workflows.other.id
  local id = L.trigger(S .. "/stall?key=" .. k, "other")
  L.until_true("n8n to call /stall", function() return L.hits(k) >= 1 end)
  assert(os.execute(L.ctl .. " crash"), "crash n8n")
  assert(os.execute(L.ctl .. " start"), "start n8n again")
  local raw = L.finished(id, 120)
  eq(raw.status, "crashed")
  L.record("execution-crashed", L.raw("GET", "/executions/" .. id .. "?includeData=true"))
  local e = assert(src:execution(id))
  eq(e.status, "error"); eq(e.crashed, true)
  ok(ids(src:executions { scenario = wf, status = "error" })[id], "status = error lists it")
  ok(ids(src:executions { scenario = wf, status = "crashed" })[id], "status = crashed lists it")
  eq(count(src:executions { scenario = wf, status = "crashed" }), 1)
  local items = ids(src:incomplete { scenario = wf })
  ok(items[id], "incomplete lists it")
  match(items[id].reason, "crashed")
  local h = assert(src:health { scenario = wf })
  ok(h.failed >= 1, "health counts it failed")
end)

test("itest-7: chain() walks past a page of executions, or says it stopped", function()
  local k = L.key("walk")
  local root = L.trigger(S .. "/flaky?fail=1&key=" .. k, "chain")
  L.finished(root)
  for i = 1, 4 do L.finished(L.trigger(S .. "/ok?key=" .. k .. i, "chain")) end
  local e = assert(src:execution(root))
  local new = assert(e:retry())
  eq(new.status, "success")
  local chain = assert(new:chain())
  eq(#chain, 2); eq(chain[2].id, new.id)
  local cut = assert(new:chain { scan = 2 })
  ok(cut.truncated, "a scan too small says so")
  match(cut.missing[#cut.missing].error, "scan")
end)

test("itest-9: examples/fix-and-retry.lua and examples/triage.lua run unchanged (issue 15)", function()
  local wf = L.workflows.examples.id
  local k410, k500 = L.key("moved"), L.key("orders")
  -- two calls of the webhook that moved (HTTP 410), two failures of the
  -- orders API whose URLs have "410" in them (HTTP 500): two groups of two
  for _, url in ipairs { "/v1/webhook?key=" .. k410, "/v1/webhook?key=" .. k410, "/orders/4102?key=" .. k500,
    "/orders/41041?key=" .. k500 } do
    L.finished(L.trigger(S .. url, "examples"))
  end
  local cfg = H.tmpname(".lua")
  local f = assert(io.open(cfg, "w"))
  f:write(string.format("return {profiles = {n8n = {kind = 'n8n', base_url = %q, token = %q, scenario = %q}}}",
    L.api, L.keys.exec, wf))
  f:close()
  local function example(args)
    local p = assert(io.popen(string.format("REDRIVE_CONFIG=%q %q %s 2>&1", cfg, os.getenv("REDRIVE"), args)))
    local out = p:read("a")
    local _, _, st = p:close()
    eq(st, 0, args .. " exit status; output:\n" .. out)
    ok(not out:find("traceback"), "no traceback in:\n" .. out)
    return out
  end
  local out = example("--profile n8n --dry-run examples/fix-and-retry.lua")
  match(out, "\n +2  HTTP 410[^\n]*\n")
  match(out, "\n +2  HTTP 500[^\n]*\n")
  match(out, "\n +4  pending\n")
  match(out, "would patch 0 incomplete execution%(s%)") -- the workflow has no /v1/webhook URL to fix
  match(out, "%(dry run: nothing retried%)")
  eq(L.hits(k410), 2); eq(L.hits(k500), 2)
  -- triage retries the 410 group only: the moved webhook is called again,
  -- the orders API is not
  out = example("examples/triage.lua n8n '%f[%d]410%f[%D]'")
  match(out, "4 incomplete execution%(s%) in 2 group%(s%)")
  match(out, "retried 2 matching")
  L.until_true("the 410 group's retries", function() return L.hits(k410) == 4 end)
  eq(L.hits(k500), 2)
  out = example("--profile n8n examples/fix-and-retry.lua")
  match(out, "== 5%. The queue, before and after")
end)

test("itest-10: two hosts on one ledger retry the same failed execution: n8n runs one retry (issue 17)", function()
  local k = L.key("ledger")
  local wf = L.workflows.chain.id
  -- fails once; its retry calls the server, then takes 3 s (n8n answers a retry when it has finished)
  local orig = L.trigger(S .. "/flaky?fail=1&delay=3000&key=" .. k, "chain")
  L.finished(orig)
  local lp = H.tmpname(".db")
  local a, b = L.src { ledger = lp }, L.src { ledger = lp } -- two source objects, as two hosts
  local t = rd.spawn(function() return assert(a:incomplete_item(orig)):retry() end)
  L.until_true("the retry to reach the workflow's endpoint", function() return L.hits(k) >= 2 end)
  -- while the first runs, the second is skipped: the first holds the item (safe = false: the
  -- safe check, which sees the running retry in n8n, is not what stops it)
  check_err("leased", orig .. " leased by .* %(pid %d+%) until .* %(ledger%)",
    function() return assert(b:incomplete_item(orig)):retry { safe = false } end)
  local r = assert(t:wait())
  eq(r.status, "success")
  -- afterwards, another process (another host) on the same ledger: done, not retried
  local out = L.process(string.format([[
    local rd = require "redrive"
    local s = assert(rd.connect{kind = "n8n", base_url = os.getenv("N8N_API"), token = os.getenv("N8N_KEY"),
      ledger = %q})
    local r = assert(s:retry{ids = {%q}, safe = false, progress = false})
    print(r.total, r.skipped, r.succeeded, r.errors[1] and r.errors[1].code)
  ]], lp, orig))
  match(out, "^1\t1\t0\tdone\n", "the other process skips it as done")
  -- n8n ran exactly one retry of it
  local retries = 0
  for e in src:executions { scenario = wf } do if e.retry_of == orig then retries = retries + 1 end end
  eq(retries, 1, "retries of " .. orig .. " in n8n")
  eq(L.hits(k), 2, "the workflow's endpoint: the original run and one retry")
end)

test("itest-8: the recorded fixtures match the committed ones", function()
  local problems = L.check_fixtures()
  eq(problems, {})
end)

H.done()

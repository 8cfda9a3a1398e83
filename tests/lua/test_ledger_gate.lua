-- The ledger in the mutation gate (lua/redrive/ledger.lua, mutation.lua):
-- with a ledger, every mutation of a remote item takes a lease on (source,
-- item) and records its outcome; an item another host holds, or whose
-- action is done, is skipped, never acted on twice. Against the loopback
-- server's Make-like API, which counts each item's retries (makeretry/ID),
-- with a SQLite ledger (the store's ledger operations run on both backends
-- in test_ledger.lua).
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local L = require "redrive.ledger"
local S = H.server

local function connect(ledger, extra)
  local o = { kind = "make", base_url = S .. "/make", token = "mk-gate-token", ledger = ledger,
              backoff = { base = 0.01, max = 0.05 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(rd.connect(o))
end

local function id(spec) return "g" .. H.pid .. "x" .. math.random(1 << 30) .. (spec or "s0") end
local function retries(x) return H.hits("makeretry/" .. x) end

local function events(ledger_path, item)
  local out = {}
  for _, ev in ipairs(assert(L.open(rd, ledger_path):events {})) do
    if item == nil or ev.item == item then out[#out + 1] = ev end
  end
  return out
end

test("gate-1.1 an item retried once; again (any source object, any process) it is skipped: done", function()
  local lp = H.tmpname(".db")
  local x = id()
  local src = connect(lp)
  local it = assert(src:incomplete_item(x))
  eq(assert(it:retry()).status, "queued")
  local src2 = connect(lp) -- another source object: as another process would
  check_err("done", "retry of " .. x .. " already done by .* %(pid %d+%) at .* %(ledger%)",
    function() return assert(src2:incomplete_item(x)):retry() end)
  eq(retries(x), 1)
  local evs = events(lp, x)
  eq(#evs, 1) -- a skip of what is done adds nothing (a watch loop meets it every pass)
  eq(evs[1].outcome, "done"); eq(evs[1].action, "retry"); eq(evs[1].source, "make " .. S .. "/make")
  ok(evs[1].pid > 0 and evs[1].host ~= "", "host and pid recorded")
  -- a patch is another action: not done yet
  local bp = { name = "x", flow = { { id = 1, module = "json:ParseJSON", mapper = {} } } }
  local p, perr, pcode = it:patch { blueprint = rd.json.encode(bp) }
  ok(p or pcode ~= "done", "patch not refused as done: " .. tostring(perr))
end)

test("gate-1.2 an item another host holds is skipped: leased, naming the holder; nothing sent", function()
  local lp = H.tmpname(".db")
  local x = id()
  local src = connect(lp)
  local ledger = L.open(rd, lp)
  local st = assert(ledger:store())
  eq(st:ledger_take { source = L.identity(src), item = x, action = "retry", owner = "other:1:1", host = "other-host",
                      pid = 4242, ttl = 600 }, true)
  check_err("leased", x .. " leased by other%-host %(pid 4242%) until .* %(ledger%)",
    function() return assert(src:incomplete_item(x)):retry() end)
  eq(retries(x), 0)
  local evs = events(lp, x)
  eq(#evs, 1); eq(evs[1].outcome, "skipped"); eq(evs[1].code, "leased"); match(evs[1].message, "other%-host")
  -- the other host's lease on retry blocks a delete of the item too (one lease per item)
  check_err("leased", "leased by other%-host", function() return assert(src:incomplete_item(x)):delete() end)
end)

test("gate-1.3 a bulk retry skips what is done or held, reports them skipped with the reason, sends the rest", function()
  local lp = H.tmpname(".db")
  local src = connect(lp)
  local ids = {}
  for i = 1, 5 do ids[i] = id() end
  assert(assert(src:incomplete_item(ids[1])):retry())          -- done
  local st = assert(L.open(rd, lp):store())
  st:ledger_take { source = L.identity(src), item = ids[2], action = "retry", owner = "o:2:2", host = "h2",
                   pid = 2, ttl = 600 }                         -- held
  local s = assert(src:retry { ids = ids, scenario = 7, safe = false, progress = false })
  eq(s.queued, 3); eq(s.skipped, 2); eq(s.failed, 0); eq(s.total, 5)
  local codes = {}
  for _, e in ipairs(s.errors) do codes[e.id] = e.code; eq(e.skipped, true) end
  eq(codes[ids[1]], "done"); eq(codes[ids[2]], "leased")
  for i = 1, 5 do eq(retries(ids[i]), i == 2 and 0 or 1, "item " .. i) end -- item 2: its holder has not yet
end)

test("gate-1.4 a failed call frees the item (another try may act); an interrupted one is in doubt until reconciled", function()
  local lp = H.tmpname(".db")
  -- failed: the platform is unreachable
  local dead = connect(lp, { base_url = "http://127.0.0.1:9/make", retries = 0 })
  local x = id()
  local r, _, code = dead:retry { ids = { x }, scenario = 7, safe = false, progress = false }
  eq(r.failed, 1)
  ok(code == nil)
  eq(events(lp, x)[1].outcome, "failed")
  eq(assert(connect(lp):retry { ids = { x }, scenario = 7, safe = false, progress = false }).queued, 1)
  eq(retries(x), 1)
  -- interrupted in flight: the request was sent, its answer never came
  local held = id("s0h1")
  local src = connect(lp)
  local t = rd.spawn(function() return src:retry { ids = { held }, scenario = 7, safe = false, progress = false } end)
  H.wait_hits("makeretry/" .. held, 1) -- the event: the server has the request
  t:cancel()
  eq(assert(t:wait()).unknown, 1)
  local evs = events(lp, held)
  eq(evs[#evs].outcome, "unknown")
  check_err("in_doubt", held .. " is in doubt: .* took it at .* its outcome was never recorded",
    function() return assert(src:incomplete_item(held)):retry() end)
  eq(retries(held), 1)
  -- reconciled by hand: it did reach Make, so it is done
  eq(L.open(rd, lp):reconcile(L.identity(src), held, "retry", "done"), 1)
  check_err("done", "already done", function() return assert(src:incomplete_item(held)):retry() end)
end)

test("gate-1.5 a long call's lease is renewed while it runs (a live host keeps its items)", function()
  local lp = H.tmpname(".db")
  local src = connect(lp, { ledger_ttl = 0.2 })
  local held = id("s0h1")
  local t = rd.spawn(function() return src:retry { ids = { held }, scenario = 7, safe = false, progress = false } end)
  H.wait_hits("makeretry/" .. held, 1)
  local st = assert(L.open(rd, lp):store())
  local function hold()
    local got, h = st:ledger_take { source = L.identity(src), item = held, action = "retry", owner = "x:1:1",
      host = "x", pid = 1, ttl = 60 }
    eq(got, false)
    return h
  end
  local first = hold()
  eq(first.why, "leased")
  -- the event: its expiry moved on (renewed) -- and it never became in doubt
  H.wait_until(function()
    local h = hold()
    eq(h.why, "leased")
    return h.expiry > first.expiry
  end, "the lease renewed")
  t:cancel()
  t:wait()
end)

test("gate-1.6 which ledger: rd.connect{ledger} > --ledger > $REDRIVE_LEDGER > profile; false / none turn it off", function()
  local a, b, c = H.tmpname(".db"), H.tmpname(".db"), H.tmpname(".db")
  local cfg = H.tmpfile(string.format([[return { profiles = {
    mk = { kind = "make", base_url = %q, token = "t", ledger = %q },
    loc = { kind = "local", db = %q, ledger = %q } } }]], S .. "/make", c, H.tmpname(".db"), c), ".lua")
  local code = string.format([[
    local rd = require "redrive"
    local L = require "redrive.ledger"
    local function where(s) local l = L.of(s); return l and l.target or "none" end
    rd._ledger = %q
    print(where(rd.connect("mk")), where(assert(rd.connect{kind = "make", base_url = %q, token = "t", ledger = %q})))
    rd._ledger = nil
    print(where(rd.connect("mk")), where(rd.connect{kind = "make", base_url = %q, token = "t", ledger = false}))
    print(where(rd.connect("loc")))
  ]], b, S .. "/make", a, S .. "/make")
  local script = H.tmpfile(code, ".lua")
  local function run(extra)
    local p = assert(io.popen(string.format("env REDRIVE_CONFIG=%q %s %q %q 2>&1", cfg, extra or "",
      os.getenv("REDRIVE") or "build/redrive", script)))
    local out = p:read("a"); p:close(); return out
  end
  eq(run(), table.concat({ b .. "\t" .. a, c .. "\tnone", "none" }, "\n") .. "\n")
  eq(run("REDRIVE_LEDGER=" .. a), table.concat({ b .. "\t" .. a, a .. "\tnone", "none" }, "\n") .. "\n")
  eq(run("REDRIVE_LEDGER=none"), table.concat({ b .. "\t" .. a, "none\tnone", "none" }, "\n") .. "\n")
end)

test("gate-1.7 a dry run writes nothing to the ledger", function()
  local lp = H.tmpname(".db")
  local src = connect(lp)
  local x = id()
  rd.dry_run(true)
  local r = assert(assert(src:incomplete_item(x)):retry())
  rd.dry_run(false)
  eq(r.dry_run, true)
  eq(#events(lp, x), 0)
  eq(assert(assert(src:incomplete_item(x)):retry()).status, "queued")
end)

test("gate-1.8 Make retry{all} and delete_incomplete{all} name their items when a ledger is set", function()
  local lp = H.tmpname(".db")
  local src = connect(lp)
  local q = math.random(1000000, 9999999)
  local ids = {}
  for i = 1, 3 do ids[i] = id("s0q" .. q); assert(src:incomplete_item(ids[i])) end
  assert(assert(src:incomplete_item(ids[1])):retry())
  local s = assert(src:retry { all = true, scenario = q, safe = false, progress = false })
  eq(s.queued, 2); eq(s.skipped, 1)
  for i = 1, 3 do eq(retries(ids[i]), 1) end
  -- each item deleted by its id (one lease each), once at the server
  local d = assert(src:delete_incomplete { all = true, confirmed = true, scenario = q })
  eq(d.deleted, 3)
  local named = {}
  for _, ev in ipairs(events(lp)) do
    if ev.action == "delete" then named[#named + 1] = ev.item; eq(ev.outcome, "done") end
  end
  table.sort(named)
  table.sort(ids)
  eq(named, ids)
  for i = 1, 3 do eq(H.hits("makedelete/" .. ids[i]), 1) end
end)

test("gate-1.9 what a call's results mean for the ledger; the names of actions and sources", function()
  local function o(...) return (L.outcome(rd, ...)) end
  eq(o(false, { status = "queued", id = "1" }), "done")
  eq(o(false, true), "done")
  eq(o(false, nil, "HTTP 500", "http"), "failed")
  eq(o(false, nil, "no answer; its outcome is unknown", "timeout", "unknown"), "unknown") -- n8n's post_retry
  eq(o(false, { status = "unknown", message = "interrupted" }), "unknown")                  -- a bulk act
  eq(o(true, rd.canceled), "unknown")    -- interrupted in flight: it may have been sent
  eq(o(true, "attempt to index a nil value"), "failed")
  local _, d = L.outcome(rd, false, { status = "running", execution = { id = "e9" } })
  eq(d.execution, "e9")
  eq(L.action("retry_execution"), "retry"); eq(L.action("delete_execution"), "delete"); eq(L.action("patch"), "patch")
  eq(L.leases("retry_execution"), true); eq(L.leases("notify"), false); eq(L.leases("run"), false)
  eq(L.identity({ kind = "n8n", base_url = "https://u:pw@n8n.example.com/api/v1/?token=x" }),
    "n8n https://n8n.example.com/api/v1")
end)

local KAIZEN, KAIZEN_WHY = H.mock("kaizen")
local ORIG = "3f6b2a9c-8d1e-4f70-b5a4-c2e9d7f10a63"
if not KAIZEN then
  skip("gate-2.1 Kaizen through the ledger", KAIZEN_WHY)
else
  test("gate-2.1 Kaizen (the Prism mock): an execution retried once; its bulk retry (another action name) skips it", function()
    local lp = H.tmpname(".db")
    local src = assert(rd.connect { kind = "kaizen", base_url = KAIZEN, ledger = lp, backoff = { base = 0.01, max = 0.05 } })
    eq(assert(src:retry_execution(ORIG)).status, "running")
    check_err("done", "retry of " .. ORIG:gsub("%-", "%%-") .. " already done", src.retry_execution, src, ORIG)
    local s = assert(src:retry { ids = { ORIG }, progress = false })
    eq(s.skipped, 1); eq(s.errors[1].code, "done")
    local evs = events(lp, ORIG)
    eq(#evs, 1); eq(evs[1].outcome, "done"); eq(evs[1].execution, "a71c4e02-5b9d-4c3f-8e16-0d2f7b9a4c85")
    eq(evs[1].source, "kaizen " .. KAIZEN:gsub("/+$", ""))
  end)
end

H.done()

-- The mutation gate (lua/redrive/mutation.lua) on the local source: every
-- mutating call, and every item of a bulk call, is one event for the
-- observers bound to the source; dry run is decided there; a limit refuses
-- before anything is changed (a refused bulk item stays pending, unleased);
-- a closed observer refuses everything; a gated call inside another is part
-- of it. Real SQLite files and the loopback test server.
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local G = require "redrive.mutation"
local S = H.server

if not S then
  skip("mutation gate on the local source", "no RD_TEST_SERVER")
  H.done()
end

local function source_with_items(n)
  local src = assert(rd.connect { kind = "local", db = H.tmpname(".db") })
  local sc = assert(src:scenario_create { name = "fails", blueprint = { name = "fails", flow = {
    { id = 1, module = "http:ActionSendData", version = 3, mapper = { url = S .. "/status/500", method = "get" } } } } })
  for i = 1, n do assert(src:run(sc.id, { input = { i = i } })) end
  return src, sc
end

local function observer(src, extra)
  local obs = { name = "test", events = {} }
  for k, v in pairs(extra or {}) do obs[k] = v end
  obs.after = function(ev) obs.events[#obs.events + 1] = ev end
  return G.observe(src, obs)
end

local function pending(src)
  local n, leased = 0, 0
  for it in src:incomplete { resolved = false } do
    n = n + 1
    if it.lease_owner then leased = leased + 1 end
  end
  return n, leased
end

local function actions(obs, what)
  local out = {}
  for _, ev in ipairs(obs.events) do
    local r = ev.refused and "refused" or ev.dry_run and "dry" or ev.error ~= nil and "error" or "ok"
    if not what or r == what then out[#out + 1] = ev.action .. ":" .. r end
  end
  return table.concat(out, " ")
end

test("mutation-1.1 each mutating call of the local source is one event", function()
  local src, sc = source_with_items(0)
  local obs = observer(src)
  local exec = assert(src:run(sc.id))
  local item = assert(src:incomplete_item(exec.dlq_id))
  local bp = assert(item:blueprint())
  assert(item:patch { blueprint = bp })
  assert(item:retry())
  assert(exec:retry { safe = false })
  assert(src:scenario_update(sc.id, { name = "renamed" }))
  assert(item:delete())
  eq(actions(obs), "run:ok patch:ok retry:ok retry_execution:ok scenario_update:ok delete:ok")
  eq(obs.count, 6)
  eq(obs.events[3].id, item.id)
  ok(obs.events[3].result.execution, "the event carries the call's result")
end)

test("mutation-1.2 a bulk retry is one event per item; a limit refuses before claiming", function()
  local src = source_with_items(5)
  local obs = observer(src, { limit = 2 })
  local s = assert(src:retry { all = true, concurrency = 1, progress = false })
  eq(#obs.events, 5)
  eq(actions(obs, "refused"), "retry:refused retry:refused retry:refused")
  eq(obs.count, 2)
  eq(s.failed, 5) -- two real attempts (the endpoint still fails), three refused
  local refused = 0
  for _, e in ipairs(s.errors) do
    if tostring(e.message):find("limit of 2 action", 1, true) then refused = refused + 1 end
  end
  eq(refused, 3)
  local n, leased = pending(src)
  eq(n, 5); eq(leased, 0) -- refused items are pending again, their leases released
end)

test("mutation-1.3 dry run: the gate answers, nothing changes, events and limits still apply", function()
  local src = source_with_items(3)
  local obs = observer(src, { limit = 2 })
  rd.dry_run(true)
  local okc, err = pcall(function()
    local s = assert(src:retry { all = true, progress = false })
    eq(s.dry_run, true); eq(s.would_retry, 2); eq(s.failed, 1)
    local it = src:incomplete { resolved = false }()
    check_err("limit", "limit of 2", it.delete, it)
  end)
  rd.dry_run(false)
  assert(okc, err)
  eq(actions(obs), "retry:dry retry:dry retry:refused delete:refused")
  local n = pending(src)
  eq(n, 3)
  for it in src:incomplete {} do eq(it.attempts, 0) end
end)

test("mutation-1.4 a closed observer refuses; unobserved, the source acts again", function()
  local src = source_with_items(1)
  local obs = observer(src, { closed = "not now" })
  local it = src:incomplete { resolved = false }()
  check_err("refused", "not now", it.retry, it)
  check_err("refused", "not now", src.delete_incomplete, src, { all = true, confirmed = true })
  eq(pending(src), 1)
  G.unobserve(src, obs)
  local r = assert(src:delete_incomplete { all = true, confirmed = true })
  eq(r.deleted, 1)
  eq(#obs.events, 2)
end)

H.done()

-- The ledger of remote mutations in the store (src/store/ledger.h): leases
-- on (source, item), outcomes, the audit -- on both backends (tests/run runs
-- this file again on PostgreSQL).
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local core = require "redrive.core"

local SRC = "make https://eu1.make.com/api/v2"

local function new_store()
  local target, schema = H.new_db()
  return assert(core.store_open(target)), target, schema
end

local function take(st, item, owner, o)
  o = o or {}
  return st:ledger_take { source = o.source or SRC, item = item, action = o.action or "retry",
                          owner = owner, host = o.host or ("host-" .. owner), pid = o.pid or 42,
                          rule = o.rule, ttl = o.ttl or 60 }
end

local function settle(st, item, owner, outcome, o)
  o = o or {}
  return st:ledger_settle { source = o.source or SRC, item = item, action = o.action or "retry",
                            owner = owner, outcome = outcome, host = o.host or "h1", pid = o.pid or 42,
                            code = o.code, rule = o.rule, execution = o.execution, message = o.message }
end

-- The tests' own SQL on the store (never the store's): expire every lease.
local function expire_all(target, schema)
  local q = "UPDATE ledger_item SET expiry = 1 WHERE state = 'leased'"
  if H.pg then H.psql("SET search_path = " .. schema .. "; " .. q) else H.sql(target, q) end
end

test("ledger-1.1 a free item is taken; another owner is refused with the holder; the owner again takes it", function()
  local st = new_store()
  eq(take(st, "100", "a"), true)
  local got, why = take(st, "100", "b")
  eq(got, false)
  eq(why.why, "leased")
  eq(why.host, "host-a")
  eq(why.pid, 42)
  ok(why.expiry > why.since, "expiry after since")
  eq(take(st, "100", "a"), true) -- the same call (owner) again
  eq(take(st, "101", "b"), true) -- another item is free
  eq(take(st, "100", "b", { source = "make https://us1.make.com/api/v2" }), true) -- another source
  st:close()
end)

test("ledger-1.2 done: the action is never taken again, by anyone; another action is", function()
  local st = new_store()
  eq(take(st, "7", "a"), true)
  eq(settle(st, "7", "a", "done", { execution = "e1" }), 1)
  local got, why = take(st, "7", "b")
  eq(got, false)
  eq(why.why, "done")
  eq(why.host, "h1")
  eq(select(1, take(st, "7", "a")), false) -- not even the one that did it
  eq(take(st, "7", "b", { action = "patch" }), true)
  eq(settle(st, "7", "b", "done", { action = "patch" }), 1)
  eq(select(2, take(st, "7", "c", { action = "patch" })).why, "done")
  eq(select(2, take(st, "7", "c")).why, "done") -- retry still done
  st:close()
end)

test("ledger-1.3 failed frees the item: another host may try it", function()
  local st = new_store()
  eq(take(st, "8", "a"), true)
  eq(settle(st, "8", "a", "failed", { code = "http", message = "HTTP 500" }), 1)
  eq(take(st, "8", "b"), true)
  st:close()
end)

test("ledger-1.4 an expired lease (its host stopped renewing it mid-call) is in doubt: nobody takes it until reconciled", function()
  local st, target, schema = new_store()
  eq(take(st, "9", "a"), true)
  eq(take(st, "10", "a"), true)
  expire_all(target, schema)
  local got, why = take(st, "9", "b")
  eq(got, false)
  eq(why.why, "unknown")              -- in doubt: its call may have reached the platform
  eq(st:ledger_renew("a", 60), 2)     -- its host is alive after all: renewing keeps them
  eq(select(2, take(st, "9", "b")).why, "leased")
  eq(settle(st, "9", nil, "failed"), 0) -- a live lease is never reconciled away
  expire_all(target, schema)
  eq(settle(st, "9", nil, "failed"), 1) -- in doubt: reconciled (the call never reached it)
  eq(take(st, "9", "b"), true)
  eq(settle(st, "9", "a", "done"), 0) -- a lost it: its outcome ends no lease
  eq(select(2, take(st, "9", "c")).why, "leased")
  eq(st:ledger_renew("a", 60), 1)     -- a keeps only item 10
  eq(st:ledger_renew("nobody", 60), 0)
  st:close()
end)

test("ledger-1.5 unknown: the lease never expires, until a reconciliation settles it", function()
  local st, target, schema = new_store()
  eq(take(st, "11", "a"), true)
  eq(settle(st, "11", "a", "unknown", { code = "timeout" }), 1)
  expire_all(target, schema)
  local got, why = take(st, "11", "b")
  eq(got, false)
  eq(why.why, "unknown")
  eq(st:ledger_renew("a", 60), 0) -- an unknown lease has no expiry to renew
  -- reconciled (owner nil: whoever took it): found done
  eq(settle(st, "11", nil, "done", { execution = "e9" }), 1)
  eq(select(2, take(st, "11", "b")).why, "done")
  -- a reconciliation settles only unknown leases, never a live one
  eq(take(st, "12", "a"), true)
  eq(settle(st, "12", nil, "failed"), 0)
  eq(select(2, take(st, "12", "b")).why, "leased")
  st:close()
end)

test("ledger-1.6 the audit: every outcome in order, filtered by time and source, paged", function()
  local st = new_store()
  local before = rd.time() - 5
  eq(take(st, "1", "a", { rule = "r1" }), true)
  settle(st, "1", "a", "done", { rule = "r1", execution = "x1", host = "h1", pid = 7 })
  settle(st, "1", nil, "skipped", { code = "done", message = "done by h1", host = "h2", pid = 8 })
  settle(st, "5", nil, "skipped", { source = "n8n http://n8n:5678/api/v1", code = "leased" })
  local all = assert(st:ledger_events {})
  eq(#all, 3)
  eq(all[1].outcome, "done")
  eq(all[1].rule, "r1")
  eq(all[1].execution, "x1")
  eq(all[1].host, "h1")
  eq(all[1].pid, 7)
  eq(all[1].item, "1")
  eq(all[1].action, "retry")
  eq(all[1].source, SRC)
  ok(all[1].time >= before, "time is now-ish")
  eq(all[2].outcome, "skipped")
  eq(all[2].code, "done")
  eq(all[2].host, "h2")
  ok(all[2].id > all[1].id, "ids grow")
  eq(#assert(st:ledger_events { source = "make" }), 2)        -- a kind matches its sources
  eq(#assert(st:ledger_events { source = SRC }), 2)
  eq(#assert(st:ledger_events { source = "n8n" }), 1)
  eq(#assert(st:ledger_events { source = "mak" }), 0)         -- not a prefix match
  eq(#assert(st:ledger_events { since = rd.time() + 3600 }), 0)
  local page = assert(st:ledger_events { limit = 2 })
  eq(#page, 2)
  local rest = assert(st:ledger_events { after = page[2].id })
  eq(#rest, 1)
  eq(rest[1].id, all[3].id)
  eq(rd.json.encode(assert(st:ledger_events { since = rd.time() + 3600 })), "[]")
  st:close()
end)

test("ledger-1.7 bad arguments: misuse raises, a bad outcome or empty owner is invalid", function()
  local st = new_store()
  raises("field 'owner': string expected", st.ledger_take, st, { source = SRC, item = "1", action = "retry",
    host = "h", pid = 1, ttl = 1 })
  raises("field 'ttl'", st.ledger_take, st, { source = SRC, item = "1", action = "retry", owner = "o",
    host = "h", pid = 1 })
  raises("field 'pid'", st.ledger_settle, st, { source = SRC, item = "1", action = "retry", owner = "o",
    outcome = "done", host = "h" })
  check_err("invalid", "a ledger outcome is done, failed, unknown or skipped, not 'bogus'", settle, st, "1", "o",
    "bogus")
  check_err("invalid", "a ledger lease needs an owner", take, st, "1", "")
  check_err("invalid", "a ledger action has no spaces", take, st, "1", "o", { action = "re try" })
  st:close()
end)

test("ledger-1.8 two connections race for the same items: each taken exactly once", function()
  local st1, target = new_store()
  local st2 = assert(core.store_open(target))
  local won = { 0, 0 }
  local taken = {}
  local tasks = {}
  for who, st in ipairs { st1, st2 } do
    for k = 1, 2 do
      tasks[#tasks + 1] = rd.spawn(function()
        for i = 1, 40 do
          local id = tostring(i)
          if take(st, id, "o" .. who .. "-" .. k) then
            won[who] = won[who] + 1
            taken[id] = (taken[id] or 0) + 1
          end
        end
      end)
    end
  end
  for _, t in ipairs(tasks) do t:wait() end
  for i = 1, 40 do eq(taken[tostring(i)], 1, "item " .. i) end
  eq(won[1] + won[2], 40)
  st1:close()
  st2:close()
end)

H.done()

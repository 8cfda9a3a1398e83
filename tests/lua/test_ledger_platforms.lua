-- Every remote platform through the ledger (lua/redrive/ledger.lua, the
-- mutation gate lua/redrive/mutation.lua): for each mutation a platform
-- has -- Make: retry, patch, delete; n8n: retry, delete; Kaizen: retry --
-- with a SQLite ledger:
--   .1 an item acted on once is skipped as done on the second try, from
--      another source object (as another host would), alone or in a bulk call;
--   .2 an item another host holds is skipped, naming the holder; nothing is sent;
--   .3 a failed call frees the item: the next try is sent (and then done);
--   .4 an interrupted call leaves the item in doubt: skipped, nothing sent.
-- "Sent" is counted at the loopback server, which has a Make-, n8n- and
-- Kaizen-like API and counts each item's mutations (KIND/ID, e.g.
-- n8nretry/ID; tests/server/server.c): an id spelled f1 fails its first
-- mutation of each kind (HTTP 400), one spelled h1 is never answered.
-- SailPoint's source is read-only: nothing to lease (plat-sailpoint).
local H = dofile((os.getenv("RD_ROOT") or ".") .. "/tests/lua/harness.lua")
local rd = require "redrive"
local L = require "redrive.ledger"
local S = H.server

local function connect(kind, ledger)
  local o = { kind = kind, base_url = S .. "/" .. kind, token = "plat-token-" .. kind, ledger = ledger,
              backoff = { base = 0.01, max = 0.05 } }
  return assert(rd.connect(o))
end

local function id(spec) return "g" .. H.pid .. "x" .. math.random(1 << 30) .. (spec or "") end

local function events(lp, item)
  local out = {}
  for _, ev in ipairs(assert(L.open(rd, lp):events {})) do
    if ev.item == item then out[#out + 1] = ev end
  end
  return out
end

local function item(src, x) return assert(src:incomplete_item(x)) end

-- each platform's mutations: call(src, x) makes it on one item; bulk(src, x)
-- the bulk form naming that one item (-> what it reports for it: code);
-- key: the server's count of that mutation of an item
local function bulk_code(s)
  if s.errors and s.errors[1] then return s.errors[1].code end
  return "none"
end
local PLATFORMS = {
  { kind = "make", actions = {
    retry = { key = "makeretry", call = function(src, x) return item(src, x):retry() end,
      bulk = function(src, x)
        return bulk_code(assert(src:retry { ids = { x }, scenario = 7, safe = false, progress = false }))
      end },
    patch = { key = "makepatch", call = function(src, x) return item(src, x):patch { failer = 1 } end },
    delete = { key = "makedelete", call = function(src, x) return item(src, x):delete() end,
      bulk = function(src, x)
        local r, _, code = src:delete_incomplete { ids = { x }, scenario = 7 }
        return r and bulk_code(r) or code
      end },
  } },
  { kind = "n8n", actions = {
    retry = { key = "n8nretry", call = function(src, x) return item(src, x):retry() end,
      bulk = function(src, x) return bulk_code(assert(src:retry { ids = { x }, progress = false })) end },
    delete = { key = "n8ndelete", call = function(src, x) return item(src, x):delete() end,
      bulk = function(src, x) return bulk_code(assert(src:delete_incomplete { ids = { x } })) end },
  } },
  { kind = "kaizen", actions = {
    retry = { key = "kaizenretry", call = function(src, x) return src:retry_execution(x) end,
      bulk = function(src, x) return bulk_code(assert(src:retry { ids = { x }, progress = false })) end },
  } },
}
local ORDER = { "retry", "patch", "delete" }

for _, p in ipairs(PLATFORMS) do
  for _, action in ipairs(ORDER) do
    local a = p.actions[action]
    if a then
      local name = string.format("plat-%s-%s", p.kind, action)
      local function sent(x) return H.hits(a.key .. "/" .. x) end

      test(name .. ".1 done once; the second try (another source object) is skipped as done, nothing sent", function()
        local lp = H.tmpname(".db")
        local x = id()
        ok(a.call(connect(p.kind, lp), x))
        eq(sent(x), 1)
        local src2 = connect(p.kind, lp)
        check_err("done", action .. " of " .. x .. " already done by .* %(pid %d+%) at .* %(ledger%)",
          a.call, src2, x)
        if a.bulk then eq(a.bulk(src2, x), "done") end
        eq(sent(x), 1)
        local evs = events(lp, x)
        eq(#evs, 1); eq(evs[1].outcome, "done"); eq(evs[1].action, action)
        eq(evs[1].source, p.kind .. " " .. S .. "/" .. p.kind)
      end)

      test(name .. ".2 an item another host holds is skipped, naming the holder; nothing sent", function()
        local lp = H.tmpname(".db")
        local x = id()
        local src = connect(p.kind, lp)
        local st = assert(L.open(rd, lp):store())
        eq(st:ledger_take { source = L.identity(src), item = x, action = action, owner = "other:1:1",
                            host = "other-host", pid = 4242, ttl = 600 }, true)
        check_err("leased", x .. " leased by other%-host %(pid 4242%) until .* %(ledger%)", a.call, src, x)
        if a.bulk then eq(a.bulk(src, x), "leased") end
        eq(sent(x), 0)
        local evs = events(lp, x)
        ok(#evs >= 1)
        for _, ev in ipairs(evs) do eq(ev.outcome, "skipped"); eq(ev.code, "leased"); match(ev.message, "other%-host") end
      end)

      test(name .. ".3 a failed call frees the item: the next try is sent, then it is done", function()
        local lp = H.tmpname(".db")
        local x = id("f1") -- its first " .. action .. " fails at the server (HTTP 400)
        local r, _, code = a.call(connect(p.kind, lp), x)
        eq(r, nil); ok(code ~= nil and not L.SKIP[code], "a failure, not a skip", code)
        eq(sent(x), 1)
        eq(events(lp, x)[1].outcome, "failed")
        local src2 = connect(p.kind, lp)
        ok(a.call(src2, x))
        eq(sent(x), 2)
        check_err("done", "already done", a.call, src2, x)
        eq(sent(x), 2)
      end)

      test(name .. ".4 an interrupted call leaves the item in doubt: skipped, nothing sent again", function()
        local lp = H.tmpname(".db")
        local x = id("h1") -- never answered
        local src = connect(p.kind, lp)
        local t = rd.spawn(function() return a.call(src, x) end)
        H.wait_hits(a.key .. "/" .. x, 1) -- the event: the server has the request
        t:cancel()
        t:wait()
        local evs = events(lp, x)
        eq(evs[#evs].outcome, "unknown")
        check_err("in_doubt", x .. " is in doubt: .* its outcome was never recorded", a.call, connect(p.kind, lp), x)
        if a.bulk then eq(a.bulk(connect(p.kind, lp), x), "in_doubt") end
        eq(sent(x), 1)
      end)
    end
  end
end

test("plat-n8n-patch n8n has no patch: unsupported, nothing leased", function()
  local lp = H.tmpname(".db")
  local x = id()
  check_err("unsupported", "n8n: patching the workflow of a past execution is not supported",
    function() return item(connect("n8n", lp), x):patch() end)
  eq(#events(lp, x), 0)
end)

test("plat-sailpoint SailPoint is read-only: every mutation is unsupported, nothing leased or sent", function()
  local lp = H.tmpname(".db")
  local src = connect("sailpoint", lp)
  ok(L.of(src), "the ledger is attached to a sailpoint source")
  local x = id()
  check_err("unsupported", "sailpoint: retrying executions is not supported", src.retry, src, { ids = { x } })
  check_err("unsupported", "sailpoint: deleting executions", src.delete_incomplete, src, { ids = { x } })
  check_err("unsupported", "sailpoint: resolving executions", src.resolve, src, { ids = { x } })
  check_err("unsupported", "sailpoint: incomplete executions", src.incomplete_item, src, x)
  eq(#assert(L.open(rd, lp):events {}), 0)
end)

H.done()

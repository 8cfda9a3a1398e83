-- `redrive audit`: what every host did to remote items, from the ledger
-- they share (lua/redrive/ledger.lua; docs/several-hosts.md).
--
--   redrive audit [--since T] [--source KIND|PROFILE] [--limit N] [--json]
--   redrive audit --reconcile SOURCE ITEM ACTION done|failed
--
-- The ledger is the one rd.connect() would use (--ledger, $REDRIVE_LEDGER,
-- the selected profile's `ledger`). Events come oldest first, paged from
-- the store; --json prints one object per line. Nothing secret is in the
-- ledger: sources are named by kind and URL without userinfo or query, and
-- messages went through the redactor before they were stored.
local rd = require "redrive"
local cli = require "redrive.cli"
local U = require "redrive.cli.util"
local L = require "redrive.ledger"

local M = {}

-- a profile's source, named as the ledger names it; else the text itself
-- (a kind, or a whole identity)
local function source_filter(s)
  if s == nil then return nil end
  local cfg = rd.config()
  if cfg.profiles and cfg.profiles[s] then
    local src, err, code = rd.connect(s)
    if not src then U.fail("audit: profile '" .. s .. "': " .. tostring(err), code) end
    if src.kind == "local" then U.usage("--source: profile '" .. s .. "' is a local store, which has no ledger") end
    return L.identity(src)
  end
  return s
end

local function show(ev)
  local line = string.format("%s  %-9s %-10s %-7s %-8s %s %s (pid %s)%s", U.when(ev.time), ev.outcome,
    ev.code or "-", ev.action, tostring(ev.item), ev.source, ev.host, tostring(ev.pid),
    ev.rule and ("  rule " .. ev.rule) or "")
  if ev.execution then line = line .. "  execution " .. ev.execution end
  if ev.message and ev.outcome ~= "done" then line = line .. "\n    " .. ev.message end
  return line
end

local function reconcile(a, ledger)
  local source, item, action, outcome = table.unpack(a.pos, 1, 4)
  if not outcome or a.pos[5] or (outcome ~= "done" and outcome ~= "failed") then
    U.usage("audit --reconcile takes SOURCE ITEM ACTION done|failed")
  end
  local n = U.check(ledger:reconcile(source_filter(source), item, action, outcome))
  if n == 0 then
    io.stderr:write("redrive audit: no unknown outcome of ", action, " ", item, " on ", source, " to settle\n")
    return 1
  end
  U.out("settled ", action, " of ", item, " as ", outcome)
  return 0
end

function M.audit(a)
  local target = rd._ledger_target()
  if not target then
    U.usage("no ledger: pass --ledger PATH|URL, set REDRIVE_LEDGER or a profile's ledger")
  end
  local ledger = L.open(rd, target)
  if a.flags["--reconcile"] then return reconcile(a, ledger) end
  if a.pos[1] then U.usage("audit takes no arguments (did you mean --source?)") end
  local since = U.time(a, "--since")
  local limit = a.flags["--limit"] and U.count(a, "--limit", nil)
  local source = source_filter(a.flags["--source"])
  local after, shown = 0, 0
  while true do
    local want = limit and math.min(1000, limit - shown) or 1000
    if want <= 0 then break end
    local page = U.check(ledger:events { since = since, source = source, after = after, limit = want })
    for _, ev in ipairs(page) do
      if U.json_mode() then cli.emit(ev) else U.out(show(ev)) end
      after, shown = ev.id, shown + 1
    end
    if #page < want then break end
  end
  if shown == 0 and not U.json_mode() then io.stderr:write("redrive audit: no events\n") end
  return 0
end

return M

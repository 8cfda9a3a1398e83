-- `redrive triage`: the failures grouped by cause (src:groups, fingerprints:
-- docs/fingerprints.md), biggest first, each with the commands that act on
-- exactly that group -- the first screen of an on-call engineer.
local cli = require "redrive.cli"
local U = require "redrive.cli.util"

local M = {}
local out, json_mode, usage = U.out, U.json_mode, U.usage

-- commands(src, g, o) -> {retry = "...", delete = "...", resolve = "..."}:
-- the exact commands for group g. They carry this run's --profile / --db,
-- the scenario and the window (as absolute ISO times: "1h" would mean
-- another hour tomorrow), so they select what this screen counted. A
-- read-only source (SailPoint) gets none.
local function commands(src, g, o)
  if src.kind == "sailpoint" then return nil end
  local sel = { "--fingerprint", g.fingerprint }
  if o.scenario ~= nil then sel[#sel + 1] = "--scenario"; sel[#sel + 1] = tostring(o.scenario) end
  local iso = require("redrive.source.common").iso
  if o.since then sel[#sel + 1] = "--since"; sel[#sel + 1] = iso(o.since) end
  if o["until"] then sel[#sel + 1] = "--until"; sel[#sel + 1] = iso(o["until"]) end
  local function cmd(verb, ...)
    local words = { verb }
    for _, w in ipairs(sel) do words[#words + 1] = w end
    for _, w in ipairs({ ... }) do words[#words + 1] = w end
    return U.command(table.unpack(words))
  end
  local c = { retry = cmd("retry"), delete = cmd("delete", "--yes") }
  -- only the local source keeps a "handled" flag (src:resolve)
  if src.kind == "local" then c.resolve = cmd("resolve", "--yes") end
  return c
end

local function scenarios(g)
  local t = {}
  for i, id in ipairs(g.scenarios or {}) do
    local name = g.scenario_names and g.scenario_names[i]
    t[#t + 1] = (name and name ~= tostring(id)) and string.format("%s (%s)", name, tostring(id)) or tostring(id)
  end
  return table.concat(t, ", ")
end

function M.triage(a)
  if a.pos[1] then usage("triage takes no arguments (options only)") end
  local limit = U.count(a, "--limit", 20)
  if limit == 0 then usage("--limit needs a whole number >= 1") end
  local since, till = U.window(a)
  local src = U.connect()
  local o = { scenario = U.scenario(a, src, "incomplete"), since = since, ["until"] = till }
  -- one group more than shown: a cut list says so
  local groups = U.check(src:groups { scenario = o.scenario, since = since, ["until"] = till,
                                      resolved = a.flags["--resolved"] or false, limit = limit + 1 })
  local more = #groups > limit
  if more then groups[#groups] = nil end
  local total = 0
  for _, g in ipairs(groups) do total = total + (g.count or 0) end
  local what = a.flags["--resolved"] and "resolved" or "pending"
  if json_mode() then
    for _, g in ipairs(groups) do
      local t = {}
      for k, v in pairs(g) do t[k] = v end
      t.commands = commands(src, g, o)
      cli.emit(t)
    end
  elseif #groups == 0 then
    out("no ", what, " failures", since and (" since " .. U.when(since)) or "")
  else
    out(string.format("%d cause(s), %s %s failure(s)%s%s", #groups, U.thousands(total), what,
      since and (" since " .. U.when(since)) or "", till and (" until " .. U.when(till)) or ""))
    out(string.format("%7s  %-12s  %-20s  %-20s  %s", "COUNT", "FINGERPRINT", "FIRST SEEN", "LAST SEEN", "SCENARIOS"))
    for _, g in ipairs(groups) do
      out(string.format("%7s  %-12s  %-20s  %-20s  %s", U.thousands(g.count or 0), tostring(g.fingerprint or "-"),
        U.when(g.first), U.when(g.last), scenarios(g)))
      out("         cause    ", tostring(g.cause))
      local c = g.fingerprint and commands(src, g, o)
      if c then
        out("         retry    ", c.retry)
        if c.resolve then out("         resolve  ", c.resolve) end
        out("         delete   ", c.delete)
      end
    end
    if src.kind == "sailpoint" then
      out("(SailPoint's API is read-only: re-run a workflow in SailPoint)")
    end
  end
  if more then
    U.note(string.format("showing the %d biggest cause(s); --limit N shows more", limit))
  end
  if groups.dropped then
    U.note(string.format("%s failure(s) past the %s distinct causes kept are not shown",
      U.thousands(groups.dropped), U.thousands(require("redrive.source.common").MAX_GROUPS)))
  end
  return 0
end

return M

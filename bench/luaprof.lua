-- bench/luaprof.lua: a sampling profiler for the Lua side of a bench step.
--
--   redrive bench/luaprof.lua SCRIPT [ARGS...]
--
-- A count hook (every 1000 VM instructions, inherited by every task the
-- script spawns) records the running function; at the end the top functions
-- and lines are printed to stderr with their share of the samples. C time
-- (SQLite, curl, JSON) is not seen here: use perf for that.
local script = table.remove(arg, 1)
local by_fn, by_line, total = {}, {}, 0
local getinfo = debug.getinfo
local function hook()
  local info = getinfo(2, "Sln")
  if not info then return end
  total = total + 1
  local fn = string.format("%s:%d (%s)", info.short_src, info.linedefined, info.name or "?")
  by_fn[fn] = (by_fn[fn] or 0) + 1
  local ln = info.short_src .. ":" .. (info.currentline or 0)
  by_line[ln] = (by_line[ln] or 0) + 1
end
-- A new thread inherits the C side of a hook but not the Lua function
-- (ldblib keeps those per thread), so every task sets it itself: wrap
-- rd.spawn, and the copies of it that rd.each / rd.all keep as upvalues.
local rd = require "redrive"
local spawn = rd.spawn
local function hooked_spawn(fn, ...)
  return spawn(function(...) debug.sethook(hook, "", 1000); return fn(...) end, ...)
end
for _, f in pairs(rd) do
  if type(f) == "function" and f ~= spawn then
    for i = 1, 255 do
      local name = debug.getupvalue(f, i)
      if name == nil then break end
      if name == "spawn" then debug.setupvalue(f, i, hooked_spawn) end
    end
  end
end
rd.spawn = hooked_spawn
debug.sethook(hook, "", 1000)
local function report()
  debug.sethook()
  local function top(t, n, title)
    local list = {}
    for k, v in pairs(t) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[2] > b[2] end)
    io.stderr:write(title, " (", total, " samples)\n")
    for i = 1, math.min(n, #list) do
      io.stderr:write(string.format("  %5.1f%%  %s\n", 100 * list[i][2] / total, list[i][1]))
    end
  end
  top(by_fn, 25, "luaprof: functions")
  top(by_line, 15, "luaprof: lines")
end
local ok, err = xpcall(dofile, debug.traceback, script)
report()
if not ok then error(err, 0) end

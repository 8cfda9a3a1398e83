-- bench/report.lua: the table of bench/run from its step results.
--
--   redrive bench/report.lua RESULTS_DIR OUT_JSON
--
-- Prints the table (markdown, ready for docs/bench.md) with the machine it
-- was taken on, and writes every figure, ratio and goal to OUT_JSON.
local rd = require "redrive"
local dir, out = arg[1], arg[2]

local function load(name)
  local f = io.open(dir .. "/" .. name .. ".json")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return rd.json.decode(s)
end

local function sh(cmd)
  local p = io.popen(cmd)
  local s = p:read("a") or ""
  p:close()
  return (s:gsub("%s+$", ""))
end

local machine = {
  cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"),
  cores = tonumber(sh("nproc")),
  memory_gb = math.floor((tonumber(sh("awk '/MemTotal/ {print $2}' /proc/meminfo")) or 0) / 1048576 + 0.5),
  kernel = sh("uname -sr"),
  os = sh(". /etc/os-release 2>/dev/null && echo \"$PRETTY_NAME\""),
  curl = sh("curl-config --version 2>/dev/null || echo ?"),
  date = os.date("!%Y-%m-%d %H:%M UTC"),
}

local wrk, curl = load("wrk"), load("curl")
local L = wrk and wrk.rps or curl.rps
local L_client = wrk and wrk.client or "bench/curlmulti"
local engine, insert, claims, retry = load("engine"), load("insert"), load("claims"), load("retry")
local s_rd, s_lua, s_list = load("start_redrive"), load("start_lua"), load("start_list")
local s_lua2 = load("start_lua2") or s_lua
local rl, mem, scale = load("ratelimit"), load("inflight"), load("scale")

local rows, res = {}, { machine = machine, L = L, L_client = L_client, L_curl = curl.rps }
local function row(n, what, value, ratio, goal, ok, key)
  rows[#rows + 1] = { n, what, value, ratio or "", goal or "", ok == nil and "" or (ok and "yes" or "**no**") }
  if key then res[key] = { value = value, ratio = ratio, goal = goal, ok = ok } end
end
local function f0(x) return string.format("%.0f", x) end
local function r2(x) return string.format("%.3f", x) end

row(1, "raw limit L: " .. L_client .. " → testserver /ok", f0(L) .. " req/s", "1", nil, nil, "raw_limit")
row(1, "raw libcurl multi, 64 in flight (L_curl)", f0(curl.rps) .. " req/s", r2(curl.rps / L) .. " L", nil, nil, "raw_curl")
local e_ok = engine.failed == 0 and engine.recorded == engine.runs
row(2, string.format("engine: %d runs http→ParseJSON→SetVariable, c64, recorded", engine.runs),
  f0(engine.per_second) .. " exec/s", r2(engine.per_second / L) .. " L (" .. r2(engine.per_second / curl.rps) .. " L_curl)",
  "≥ 0.5 L", e_ok and engine.per_second >= 0.5 * L, "engine")
local rt_ok = retry.failed == 0 and retry.succeeded == retry.total
row(3, string.format("bulk retry: %d incomplete executions, c64", retry.total),
  f0(retry.per_second) .. " items/s", r2(retry.per_second / L) .. " L (" .. r2(retry.per_second / curl.rps) .. " L_curl)",
  "≥ 0.4 L", rt_ok and retry.per_second >= 0.4 * L, "bulk_retry")
row(3, "bulk retry: peak RSS", string.format("%.1f MB", retry.peak_rss_kb / 1024), nil, "≤ 100 MB",
  retry.peak_rss_kb / 1024 <= 100, "bulk_retry_rss")
row(4, "store: incomplete-execution inserts (record, 256 tasks)", f0(insert.inserts_per_second) .. " /s",
  r2(insert.inserts_per_second / L) .. " L", nil, nil, "store_inserts")
row(4, "store: claims (batches of 500)", f0(claims.claims_per_second) .. " /s",
  r2(claims.claims_per_second / L) .. " L", nil, nil, "store_claims")
row(5, "start-up: `redrive -e ''` vs `lua5.4 -e ''` (median)",
  string.format("%.1f ms vs %.1f ms", s_rd.median_us / 1000, s_lua.median_us / 1000),
  string.format("%.2f×", s_rd.median_us / s_lua.median_us), "≤ 3×", s_rd.median_us <= 3 * s_lua.median_us, "startup")
row(5, "start-up: `redrive script.lua` listing 10 items", string.format("%.1f ms", s_list.median_us / 1000),
  string.format("%.2f× lua5.4", s_list.median_us / s_lua2.median_us), nil, nil, "startup_list")
local rl_ratio = rl.ratio ~= rd.json.null and rl.ratio or nil
row(6, string.format("429-limited endpoint at %d req/s: %d items retried", rl.rate, rl.items),
  string.format("%d ok, %d failed in %.2f s", rl.succeeded, rl.failed, rl.seconds),
  rl_ratio and (r2(rl_ratio) .. " R") or "n/a (items failed)", "≥ 0.9 R", rl_ratio ~= nil and rl_ratio >= 0.9, "ratelimit")
row(6, "429-limited endpoint: errors surfaced", tostring(rl.failed), nil, "0", rl.failed == 0, "ratelimit_errors")
row(7, string.format("memory per in-flight execution (%d in flight)", mem.inflight),
  string.format("%.1f KB", mem.per_exec_bytes / 1024), nil, nil, nil, "inflight_memory")
if scale then -- linear: t(2n) / t(n) about 2 (quadratic: 4)
  local m, e = scale.mapper, scale.engine
  row(8, string.format("mapper: %d-space value vs %d in `if(1.v = 5; …)`", 2 * m.n, m.n),
    string.format("%.1f ns/byte", m.ns_per_byte), string.format("%.2f× for 2n", m.ratio), "≤ 2.5×",
    m.ratio <= 2.5, "scale_mapper")
  row(8, string.format("engine: %d-module run vs %d (validated, run, recorded)", 2 * e.n, e.n),
    string.format("%.1f µs/module", e.ns_per_module / 1000), string.format("%.2f× for 2n", e.ratio), "≤ 2.5×",
    e.ratio <= 2.5, "scale_engine")
end
res.raw = { wrk = wrk, curl = curl, engine = engine, insert = insert, claims = claims, retry = retry,
  start_redrive = s_rd, start_lua = s_lua, start_list = s_list, start_lua2 = s_lua2, ratelimit = rl, inflight = mem, scale = scale }

print(string.format("\nMachine: %s, %d cores, %d GB, %s, %s; %s; %s\n", machine.cpu, machine.cores,
  machine.memory_gb, machine.os, machine.kernel, machine.curl, machine.date))
print("| # | measure | value | ratio | goal | met |")
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do print("| " .. table.concat(r, " | ") .. " |") end
if rl.first_error then print("\n6: first error: " .. rl.first_error) end
local f = assert(io.open(out, "w"))
f:write(rd.json.encode(res, { pretty = true }), "\n")
f:close()
print("\nwritten: " .. out)

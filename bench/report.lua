-- bench/report.lua: the table of bench/run from its step results.
--
--   redrive bench/report.lua RESULTS_DIR OUT_JSON
--
-- Prints the table (markdown, ready for docs/bench.md) with the machine it
-- was taken on, and writes every figure, ratio and goal to OUT_JSON: the raw
-- step results under `raw`, each row under its key.
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
  load = sh("cut -d' ' -f1-3 /proc/loadavg"),
  date = os.date("!%Y-%m-%d %H:%M UTC"),
}

local cfg = load("config")
local conc = cfg.concurrency
local wrk, curl, fresh = load("wrk"), load("curl"), load("curl_fresh")
local L = wrk and wrk.rps or curl.rps
local Lc = curl.rps
local L_client = wrk and wrk.client or "bench/curlmulti"
local http, engine, insert, claims = load("http"), load("engine"), load("insert"), load("claims")
local retry, retry_d, insert_d = load("retry"), load("retry_distinct"), load("insert_distinct")
local s_rd, s_lua, s_list = load("start_redrive"), load("start_lua"), load("start_list")
local s_lua2 = load("start_lua2") or s_lua
local rl, rl2, mem, scale = load("ratelimit"), load("ratelimit_2r"), load("inflight"), load("scale")
local n8n, n8n_v, dur = load("n8n"), load("n8n_version"), load("duration")

local rows, res = {}, { machine = machine, config = cfg, L = L, L_client = L_client, L_curl = Lc,
  seconds = dur and dur.seconds }
local function row(n, what, value, ratio, goal, ok, key, figure)
  rows[#rows + 1] = { n, what, value, ratio or "", goal or "", ok == nil and "" or (ok and "yes" or "**no**") }
  if key then res[key] = { label = what, value = value, figure = figure, ratio = ratio, goal = goal, ok = ok } end
end
local function f0(x) return string.format("%.0f", x) end
local function r3(x) return string.format("%.3f", x) end
local function vs_curl(x) return r3(x / Lc) .. " L_curl (" .. r3(x / L) .. " L)" end

row(1, "raw limit L: " .. L_client .. " → testserver /ok", f0(L) .. " req/s", "1", nil, nil, "raw_limit", L)
row(1, string.format("raw libcurl multi, %d in flight, handles reused (L_curl)", conc), f0(Lc) .. " req/s",
  r3(Lc / L) .. " L", nil, nil, "raw_curl", Lc)
row(1, string.format("raw libcurl multi, %d in flight, a fresh easy handle per request", conc),
  f0(fresh.rps) .. " req/s", r3(fresh.rps / Lc) .. " L_curl", nil, nil, "raw_curl_fresh", fresh.rps)

local h_ok = http.errors == 0
row(2, string.format("`rd.http.request` from Lua, %d tasks", http.concurrency), f0(http.rps) .. " req/s",
  vs_curl(http.rps), "≥ 0.8 L_curl", h_ok and http.rps >= 0.8 * Lc, "http", http.rps)

local e_ok = engine.failed == 0 and engine.recorded == engine.runs
row(3, string.format("engine: %d runs http→ParseJSON→SetVariable, c%d, each recorded", engine.runs, conc),
  f0(engine.per_second) .. " exec/s", vs_curl(engine.per_second), "≥ 0.5 L_curl",
  e_ok and engine.per_second >= 0.5 * Lc, "engine", engine.per_second)

local function bulk(r, what, key)
  local ok = r.failed == 0 and r.succeeded == r.total
  row(4, string.format("bulk retry: %d incomplete executions, %s, c%d", r.total, what, conc),
    f0(r.per_second) .. " items/s", vs_curl(r.per_second), "≥ 0.4 L_curl", ok and r.per_second >= 0.4 * Lc,
    key, r.per_second)
end
bulk(retry, "one blueprint", "bulk_retry")
bulk(retry_d, string.format("%d distinct blueprints", insert_d.distinct), "bulk_retry_distinct")
local rss = math.max(retry.peak_rss_kb, retry_d.peak_rss_kb) / 1024
row(4, "bulk retry: peak RSS of the retrying process (the larger of the two)", string.format("%.1f MB", rss), nil,
  "≤ 100 MB", rss <= 100, "bulk_retry_rss", rss)

row(5, "store: incomplete-execution inserts (st:record, 256 tasks, group commit)",
  f0(insert.inserts_per_second) .. " inserts/s", nil, nil, nil, "store_inserts", insert.inserts_per_second)
row(5, "store: claims (st:claim, batches of 500)", f0(claims.claims_per_second) .. " claims/s", nil, nil, nil,
  "store_claims", claims.claims_per_second)

row(6, "start-up: `redrive -e ''` vs `lua5.4 -e ''` (median)",
  string.format("%.1f ms vs %.1f ms", s_rd.median_us / 1000, s_lua.median_us / 1000),
  string.format("%.2f×", s_rd.median_us / s_lua.median_us), "≤ 3×", s_rd.median_us <= 3 * s_lua.median_us,
  "startup", s_rd.median_us / s_lua.median_us)
row(6, "start-up: `redrive script.lua` listing 10 items", string.format("%.1f ms", s_list.median_us / 1000),
  string.format("%.2f× lua5.4", s_list.median_us / s_lua2.median_us), nil, nil, "startup_list",
  s_list.median_us / 1000)

local function limited(r, key)
  local ratio = r.ratio ~= rd.json.null and r.ratio or nil
  local ok = ratio ~= nil and ratio >= 0.9 and r.failed == 0 and r.rate_limited > 0
  local told = r.cap ~= rd.json.null and string.format("rate = %d (2R)", r.cap) or "no rate set"
  row(7, string.format("429-limited endpoint, R = %d req/s, %s: %d items retried", r.rate, told, r.items),
    string.format("%d ok, %d errors, %d × 429 in %.2f s", r.succeeded, r.failed, r.rate_limited, r.seconds),
    ratio and (r3(ratio) .. " R") or "n/a (items failed)", "≥ 0.9 R, 0 errors, 429s > 0", ok, key, ratio)
end
limited(rl, "ratelimit")
limited(rl2, "ratelimit_2r")

row(8, string.format("memory per in-flight execution (%d in flight)", mem.inflight),
  string.format("%.1f KB", mem.per_exec_bytes / 1024), nil, nil, nil, "inflight_memory", mem.per_exec_bytes)
if scale then -- linear: t(2n) / t(n) about 2 (quadratic: 4)
  local m, e = scale.mapper, scale.engine
  row(9, string.format("mapper: %d-space value vs %d in `if(1.v = 5; …)`", 2 * m.n, m.n),
    string.format("%.1f ns/byte", m.ns_per_byte), string.format("%.2f× for 2n", m.ratio), "≤ 2.5×",
    m.ratio <= 2.5, "scale_mapper", m.ratio)
  row(9, string.format("engine: %d-module run vs %d (validated, run, recorded)", 2 * e.n, e.n),
    string.format("%.1f µs/module", e.ns_per_module / 1000), string.format("%.2f× for 2n", e.ratio), "≤ 2.5×",
    e.ratio <= 2.5, "scale_engine", e.ratio)
end
if n8n and n8n.rps then
  local v = n8n_v and n8n_v.version or "?"
  local n8n_ok = n8n.rps > 0 and (n8n.non_2xx or 0) == 0
  row(10, string.format("peer: n8n %s webhook → HTTP Request → respond, same sink, c%d (saves every execution)", v,
    cfg.n8n_concurrency), string.format("%.1f exec/s%s", n8n.rps,
      n8n_ok and "" or string.format(" (%d non-2xx)", n8n.non_2xx or 0)),
    n8n.rps > 0 and string.format("redrive's engine (row 3): %.0f× n8n", engine.per_second / n8n.rps) or "n/a",
    nil, nil, "peer_n8n", n8n.rps)
else
  row(10, "peer: n8n webhook → HTTP Request → respond on the same sink", "skipped: " ..
    tostring(n8n and n8n.skipped or "no result"), nil, nil, nil, "peer_n8n")
end
local pg_skip = load("pg")
local pg = { load("pg_w1"), load("pg_w2"), load("pg_w4") }
local pg_claims = load("pg_claims")
if pg[1] then
  for _, r in ipairs(pg) do
    row(11, string.format("PostgreSQL: bulk retry of %d items, %d worker process(es) on one store, c%d each",
      r.items, r.workers, conc), string.format("%s items/s%s", f0(r.per_second),
        r.exactly_once and ", each exactly once" or string.format(" (%d succeeded, %d failed)", r.succeeded, r.failed)),
      string.format("%.2f × SQLite (row 4)", r.per_second / retry.per_second), nil, nil,
      "pg_bulk_retry_w" .. r.workers, r.per_second)
  end
  row(11, "PostgreSQL: claims (st:claim, batches of 500)", f0(pg_claims.claims_per_second) .. " claims/s",
    string.format("%.2f × SQLite (row 5)", pg_claims.claims_per_second / claims.claims_per_second), nil, nil,
    "pg_claims", pg_claims.claims_per_second)
else
  row(11, "PostgreSQL: bulk retry with 1, 2 and 4 worker processes", "skipped: " ..
    tostring(pg_skip and pg_skip.skipped or "no result"), nil, nil, nil, "pg_bulk_retry")
end
res.raw = { config = cfg, wrk = wrk, curl = curl, curl_fresh = fresh, http = http, engine = engine, insert = insert,
  insert_distinct = insert_d, claims = claims, retry = retry, retry_distinct = retry_d, start_redrive = s_rd,
  start_lua = s_lua, start_list = s_list, start_lua2 = s_lua2, ratelimit = rl, ratelimit_2r = rl2,
  inflight = mem, scale = scale, n8n = n8n, n8n_version = n8n_v, duration = dur, pg_w1 = pg[1], pg_w2 = pg[2],
  pg_w4 = pg[3], pg_claims = pg_claims, pg = pg_skip }

print(string.format("\nMachine: %s, %d cores, %d GB, %s, %s; %s; load %s at the end; %s%s\n", machine.cpu,
  machine.cores, machine.memory_gb, machine.os, machine.kernel, machine.curl, machine.load, machine.date,
  dur and string.format("; the run took %d s", dur.seconds) or ""))
print("| # | measure | value | ratio | goal | met |")
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do print("| " .. table.concat(r, " | ") .. " |") end
for _, r in ipairs { rl, rl2 } do
  if r.first_error then print("\n7: first error: " .. r.first_error) end
end
local f = assert(io.open(out, "w"))
f:write(rd.json.encode(res, { pretty = true }), "\n")
f:close()
print("\nwritten: " .. out)

#!/usr/bin/env bash
# The whole mission in one command (`make demo`): a loopback "orders" API,
# a temporary store, scenarios that fail for real, and the script that
# finds the failures, fixes the blueprint and retries them.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
REDRIVE=$PWD/$B/redrive
for f in "$REDRIVE" "$B/testserver"; do
  [ -x "$f" ] || { echo "demo: $f is missing: run 'make demo' (it builds it first)" >&2; exit 1; }
done

T=$(mktemp -d /tmp/redrive-demo.XXXXXX)
SP=
cleanup() { [ -n "$SP" ] && kill "$SP" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

# 1. the services the scenarios talk to: an orders API (orders whose id is a
#    multiple of 7 fail with 500), a webhook that moved (/v1/webhook: 410),
#    its new address (/v2/webhook), and a flaky endpoint
"$B/testserver" --port 0 --port-file "$T/port" >/dev/null &
SP=$!
for _ in $(seq 600); do [ -s "$T/port" ] && break; sleep 0.05; done # up to 30 s on a loaded machine
BASE="http://127.0.0.1:$(cat "$T/port")"
export REDRIVE_DB="$T/demo.db"
unset REDRIVE_PROFILE REDRIVE_CONFIG || true
export XDG_CONFIG_HOME="$T/config"   # no profile from your own config

cat <<EOF
redrive demo
  test services  $BASE  (orders API, webhooks, a flaky endpoint)
  store          $REDRIVE_DB  (temporary)
  scenarios      examples/scenarios/*.json

== 0. Overnight: the scenarios run over today's orders
EOF

# 2. load the scenarios and run them over many inputs
cat >"$T/overnight.lua" <<'EOF'
local rd = require "redrive"
local base, dir = arg[1], arg[2]
local src = assert(rd.connect())
local function load(file)
  local f = assert(io.open(dir .. "/" .. file))
  local text = f:read("a"):gsub("http://127%.0%.0%.1:PORT", base)
  f:close()
  return assert(src:scenario_create { name = rd.json.decode(text).name, blueprint = text, dlq = true })
end
local function run_all(sc, n)
  local ids = {}
  for i = 1, n do ids[i] = i end
  local status = {}
  rd.each(ids, function(i)
    local e = assert(src:run(sc.id, { input = { order_id = i }, mode = "scheduled" }))
    status[e.status] = (status[e.status] or 0) + 1
  end, { concurrency = 8 })
  local parts = {}
  for k, v in pairs(status) do parts[#parts + 1] = v .. " " .. k end
  table.sort(parts)
  print(string.format("  %-34s %3d runs: %s", sc.name, n, table.concat(parts, ", ")))
end
local fulfil = load("orders-to-fulfilment.json")
local receipts = load("order-receipts.json")
local inventory = load("inventory-sync.json")
run_all(fulfil, 60)
run_all(receipts, 30)
run_all(inventory, 10)
-- the Break handler of "Inventory sync" retries its failures by itself
local t0 = rd.now()
src:wait_auto_retries()
local left = 0
for _ in src:incomplete { scenario = inventory.id, resolved = false } do left = left + 1 end
local fixed = 0
for _ in src:incomplete { scenario = inventory.id, resolved = true } do fixed = fixed + 1 end
print(string.format("  %-34s -> its Break handler retried those %d by itself (%.1fs): %d resolved, %d left",
  "", fixed + left, rd.now() - t0, fixed, left))
local h = src:health {}
print(string.format("  health: %d executions, success rate %.0f%%, p95 %.0f ms",
  h.total, (h.success_rate or 0) * 100, h.p95_duration or 0))
EOF
"$REDRIVE" "$T/overnight.lua" "$BASE" "$PWD/examples/scenarios"

# 3. the morning after: the first screen, then the script that fixes it
echo
echo "== The morning after: redrive triage (the failures grouped by cause)"
"$REDRIVE" triage
echo
echo "== redrive examples/fix-and-retry.lua"
"$REDRIVE" examples/fix-and-retry.lua

echo
echo "Done: every request above really went to $BASE, every run is in the store."
echo "Next: REDRIVE_DB=your.db $B/redrive --dry-run examples/fix-and-retry.lua"

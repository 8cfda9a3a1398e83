#!/usr/bin/env bash
# The shipped examples as a user meets them (issue 15).
#   examples/scenarios/*.json are the demo's scenarios: their URLs say
#   http://127.0.0.1:PORT, which `make demo` (examples/demo.sh) fills with its
#   loopback server's port. `redrive run` refuses them as they are, naming the
#   placeholder, before it opens any store; with PORT filled they run.
set -u
. "$(dirname "$0")/lib.sh" rd-examples
. tests/sh/cli_lib.sh
R=$REDRIVE
unset REDRIVE_DB REDRIVE_PROFILE REDRIVE_CONFIG
export XDG_CONFIG_HOME=$T/config XDG_DATA_HOME=$T/data
DEFAULT_DB=$T/data/redrive/redrive.db

# ---- redrive run examples/scenarios/*.json, as they are
for f in examples/scenarios/*.json; do
  n=$(basename "$f" .json)
  check "ex-1.1 run $n as shipped: refused" 1 "$R" run "$f"
  has "ex-1.2 $n: names the file" "$ERR" "$f: invalid blueprint"
  has "ex-1.3 $n: names module and field" "$ERR" "mapper.url: port \"PORT\" of 127.0.0.1:PORT is not a number"
  has "ex-1.4 $n: says what to do" "$ERR" "a placeholder to fill in (examples/demo.sh fills PORT)"
done
[ ! -e "$DEFAULT_DB" ] && ok "ex-1.5 nothing written to the default store" || no "ex-1.5 default store" "$(ls -l "$DEFAULT_DB")"
check "ex-1.6 run several files at once: a usage error" 2 "$R" run examples/scenarios/*.json
[ ! -e "$DEFAULT_DB" ] && ok "ex-1.7 still nothing in the default store" || no "ex-1.7 default store" "$(ls -l "$DEFAULT_DB")"

# ---- with PORT filled (as examples/demo.sh does) they run, on the store named
port=${RD_TEST_SERVER##*:}
mkdir -p "$T/sc"
for f in examples/scenarios/*.json; do sed "s/127\.0\.0\.1:PORT/127.0.0.1:$port/g" "$f" >"$T/sc/$(basename "$f")"; done
check "ex-2.1 a filled scenario runs" 0 "$R" --db "$T/filled.db" --json run "$T/sc/order-receipts.json" --input '{"order_id": 3}'
has "ex-2.2 ... and succeeds" "$(jq -r .status <<<"$OUT" 2>&1)" "success"
check "ex-2.3 order 7 fails (the demo's orders API fails multiples of 7)" 1 "$R" --db "$T/filled.db" --json \
  run "$T/sc/order-receipts.json" --input '{"order_id": 7}'
has "ex-2.4 ... kept as an incomplete execution" "$(jq -r '.dlq_id | length' <<<"$OUT" 2>&1)" "32"
[ ! -e "$DEFAULT_DB" ] && ok "ex-2.5 the default store untouched" || no "ex-2.5 default store" "$(ls -l "$DEFAULT_DB")"


# ---- the examples on the local source
# Order ids >= 40 that are not multiples of 7 reach the fulfilment webhook that
# moved (/v1/webhook: HTTP 410); multiples of 7 fail at the orders API (HTTP
# 500), two of them with "410" in their URL (4102, 41041): the old
# `reason = "410"` match took those for the moved webhook.
"$R" --db "$T/ex.db" - "$T/sc/orders-to-fulfilment.json" >"$T/fill.out" 2>&1 <<'LUA'
local src = assert(rd.connect())
local f = assert(io.open(arg[1])); local text = f:read("a"); f:close()
local sc = assert(src:scenario_create { name = "Orders to fulfilment", blueprint = text, dlq = true })
for _, id in ipairs { 5, 9, 100, 41040, 41042, 14, 4102, 41041 } do
  local e = assert(src:run(sc.id, { input = { order_id = id } }))
  print(id, e.status)
end
local n = 0 for _ in src:incomplete { reason = "410" } do n = n + 1 end
print("reason 410:", n)
LUA
# 5 (6 when the server's random port has 410 in it)
n410=$(sed -n 's/^reason 410:\t//p' "$T/fill.out")
[ "${n410:-0}" -ge 5 ] && ok "ex-3.0 the store filled: 6 failures, $n410 with \"410\" in their message" \
  || no "ex-3.0 the store filled" "$(cat "$T/fill.out")"
cp "$T/ex.db" "$T/ex-triage.db"

# what the examples left in a store: pending per group, and which blueprints
# (of the items, and of the scenario) still call the moved webhook
state() {
  "$R" --db "$1" - <<'LUA' 2>&1
local src = assert(rd.connect())
local function old(bp) return bp:json():find("/v1/webhook", 1, true) and "v1" or "v2" end
for _, g in ipairs(assert(src:groups {})) do
  local bps = {}
  for it in src:incomplete { fingerprint = g.fingerprint } do bps[#bps + 1] = old(assert(it:blueprint())) end
  table.sort(bps)
  print(g.cause:match("^HTTP %d+"), g.count, table.concat(bps, " "))
end
print("scenario", old(assert(src:scenario(1)):blueprint()))
LUA
}
before=$(state "$T/ex.db")
check "ex-3.1 fix-and-retry --dry-run on local" 0 "$R" --db "$T/ex.db" --dry-run examples/fix-and-retry.lua
has "ex-3.2 ... groups by cause, not by message" "$OUT" "     3  HTTP 410 from http://<host>/v1/webhook"
has "ex-3.3 ... would patch the 410 group only" "$OUT" "would patch 3 incomplete execution(s)"
has "ex-3.4 ... retries nothing" "$OUT" "(dry run: nothing retried)"
has "ex-3.5 ... says what it would retry" "$ERR" "dry-run: would retry 5 incomplete execution(s)"
after=$(state "$T/ex.db")
[ "$before" = "$after" ] && ok "ex-3.6 ... and the store is as it was" || no "ex-3.6 store changed by a dry run" "$before" "$after"

check "ex-3.7 fix-and-retry on local" 0 "$R" --db "$T/ex.db" examples/fix-and-retry.lua
has "ex-3.8 ... patched exactly the 410 group (3 items, not the 5 whose message has 410)" "$OUT" \
  "patched 3 incomplete execution(s)"
has "ex-3.9 ... and the scenario" "$OUT" "scenario 1 \"Orders to fulfilment\" updated (1 module(s))"
has "ex-3.10 ... retried all but the one kept" "$OUT" "retried 5: 2 succeeded, 3 failed, 0 skipped"
has "ex-3.11 ... the orders API's failures, by cause" "$OUT" \
  "still failing (3): HTTP 500 from http://<host>/orders/<n>: {\"error\":\"order service failed\"}"
has "ex-3.12 ... before and after" "$OUT" "before: 6 pending   after: 4 pending   resolved by this run: 2"
st=$(state "$T/ex.db")
# the 500s keep the blueprint they failed with (/v1: never patched); the kept
# 410 item was patched (v2) and waits; new runs of the scenario use /v2
want=$'HTTP 500\t3\tv1 v1 v1\nHTTP 410\t1\tv2\nscenario\tv2'
[ "$st" = "$want" ] && ok "ex-3.13 ... the 500s untouched, the kept 410 patched, the scenario fixed" \
  || no "ex-3.13 store after fix-and-retry" "got:" "$st" "want:" "$want"
lacks "ex-3.14 ... no traceback" "$ERR" "traceback"

check "ex-4.1 triage on local lists the groups" 0 "$R" --db "$T/ex-triage.db" examples/triage.lua
has "ex-4.2 ... two groups" "$OUT" "6 incomplete execution(s) in 2 group(s)"
has "ex-4.3 ... retries nothing without a pattern" "$OUT" 'nothing matches "$^": nothing retried'
check "ex-4.4 triage --dry-run with a pattern" 0 "$R" --db "$T/ex-triage.db" --dry-run examples/triage.lua '^HTTP 5%d%d '
has "ex-4.5 ... would retry the 500 group" "$OUT" 'dry run: would retry 3 of 3 matching "^HTTP 5%d%d "'
printf 'return { profiles = { ["local"] = { kind = "local", db = "%s" } } }\n' "$T/ex-triage.db" >"$T/local.lua"
check "ex-4.6 triage PROFILE PATTERN retries the 500 group" 0 env REDRIVE_CONFIG="$T/local.lua" \
  "$R" examples/triage.lua local '^HTTP 500 '
has "ex-4.7 ... that group only" "$OUT" 'retried 3 matching "^HTTP 500 ": 0 succeeded, 3 failed, 0 skipped'
has "ex-4.8 ... why they still fail" "$OUT" "HTTP 500 from http://127.0.0.1:$port/orders/"
[ ! -e "$DEFAULT_DB" ] && ok "ex-4.9 the default store untouched" || no "ex-4.9 default store" "$(ls -l "$DEFAULT_DB")"

# ---- the example rules match a status, never a port or an id with it in
out=$("$R" - <<'LUA' 2>&1
local moved = dofile("examples/rules/moved-endpoint.lua")
local noise = dofile("examples/rules/delete-noise.lua")
local old = rd.time() - 30 * 86400
print(moved.match { reason = "HTTP 410 from http://127.0.0.1:8080/v1/webhook: gone",
  cause = "HTTP 410 from http://<host>/v1/webhook: gone" },
  moved.match { reason = "HTTP 500 from http://127.0.0.1:41047/v1/webhook: oops",
  cause = "HTTP 500 from http://<host>/v1/webhook: oops" },
  noise.match { created = old, reason = "HTTP 404 from http://h:1/products/9: product not found",
  cause = "HTTP 404 from http://<host>/products/<n>: product not found" },
  noise.match { created = old, reason = "HTTP 500 from http://h:4040/products/404: product not found",
  cause = "HTTP 500 from http://<host>/products/<n>: product not found" })
LUA
)
[ "$out" = $'true\tfalse\ttrue\tfalse' ] && ok "ex-7.1 the example rules take a 410 / 404 status, not a port or id with it" \
  || no "ex-7.1 example rules' match" "$out"

# ---- the examples on Make and n8n (the contract mocks)
printf 'return { profiles = {
  make = { kind = "make", base_url = "%s", token = "mk-example-token", scenario = 925 },
  n8n = { kind = "n8n", base_url = "%s", token = "n8n-example-token" },
} }\n' "${RD_MOCK_MAKE:-}" "${RD_MOCK_N8N:-}" >"$T/remote.lua"
remote() { # remote SOURCE N: both examples against the source's mock, cases ex-N.*
  local p=$1 n=$2 pending
  export REDRIVE_CONFIG=$T/remote.lua
  pending=$("$R" --json --profile "$p" ls 2>/dev/null | jq -s length)
  check "ex-$n.1 fix-and-retry on $p" 0 "$R" --profile "$p" examples/fix-and-retry.lua
  has "ex-$n.2 ... reads the queue by cause (as many as ls lists)" "$OUT" "$(printf '  %4d  pending' "$pending")"
  has "ex-$n.3 ... patches no group: none answered 410" "$OUT" "no failure answered HTTP 410: nothing to patch"
  has "ex-$n.4 ... says the scenarios are edited on $p" "$OUT" "(scenarios: $p: src:scenarios is not supported"
  has "ex-$n.5 ... retries, outcomes not guessed" "$OUT" "$([ "$p" = make ] && echo queued || echo running)"
  has "ex-$n.6 ... gets to the end" "$OUT" "before: $pending pending"
  lacks "ex-$n.7 ... no traceback" "$ERR" "traceback"
  check "ex-$n.8 fix-and-retry --dry-run on $p" 0 "$R" --profile "$p" --dry-run examples/fix-and-retry.lua
  has "ex-$n.9 ... retries nothing" "$OUT" "(dry run: nothing retried)"
  check "ex-$n.10 triage on $p (its profile as the first argument)" 0 "$R" examples/triage.lua "$p"
  has "ex-$n.11 ... lists the groups" "$OUT" "$pending incomplete execution(s) in"
  has "ex-$n.12 ... retries nothing without a pattern" "$OUT" 'nothing matches "$^": nothing retried'
  check "ex-$n.13 triage --dry-run --profile $p with a pattern" 0 "$R" --dry-run --profile "$p" examples/triage.lua '.'
  has "ex-$n.14 ... would retry each group" "$OUT" 'dry run: would retry'
  check "ex-$n.15 triage on $p with a pattern retries" 0 "$R" --profile "$p" examples/triage.lua '.'
  has "ex-$n.16 ... the groups that match" "$OUT" 'retried '
  unset REDRIVE_CONFIG
}
for src in make:5 n8n:6; do
  p=${src%:*} n=${src#*:} var=RD_MOCK_${src%:*}
  var=${var^^}
  if [ -n "${!var:-}" ]; then remote "$p" "$n"; else
    w=${var}_WHY why=${!w:-${RD_MOCKS_WHY:-Prism not installed: run scripts/prism}}
    for i in $(seq 16); do skip=$((skip + 1)); echo "skip ex-$n.$i the examples on $p ($why)"; done
  fi
done

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

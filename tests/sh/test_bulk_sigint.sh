#!/usr/bin/env bash
# SIGINT in the middle of `redrive --json retry --all` (issue 12, defect 5):
# the command prints its summary as JSON and exits 130; the summary tells the
# truth -- interrupted, succeeded + failed + skipped + not_attempted = total,
# and the store agrees: as many items resolved as succeeded, the others
# pending and unleased. The signal is sent once the loopback server has
# counted K retry requests (an event, not a delay).
set -u
. "$(dirname "$0")/lib.sh" rd-sigint
if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
  for i in 1 2 3 4 5 6 7; do echo "skip bulk-sigint-$i (needs jq and curl: apt-get install jq curl)"; done
  echo "0 passed, 0 failed, 7 skipped"
  exit 0
fi
N=40
K=4
KEY=sigint-$$-$RANDOM
DB=$T/q.db
cat >"$T/setup.lua" <<EOF
local rd = require "redrive"
local S, key = "$RD_TEST_SERVER", "$KEY"
local src = assert(rd.connect { kind = "local", db = "$DB" })
local function bp(url2)
  return { name = "q", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = S .. "/ok", method = "get" } },
    { id = 2, module = "http:ActionSendData", mapper = { url = url2, method = "get" } } } }
end
local sc = assert(src:scenario_create { name = "q", blueprint = bp(S .. "/status/500") })
for _ = 1, $N do assert(src:run(sc.id)) end
-- each retry now takes 300 ms, and the server counts it under the key
for it in src:incomplete {} do assert(it:patch { blueprint = bp(S .. "/delay/300?key=" .. key) }) end
EOF
cat >"$T/state.lua" <<EOF
local rd = require "redrive"
local src = assert(rd.connect { kind = "local", db = "$DB" })
local q = { resolved = 0, pending = 0, leased = 0 }
for it in src:incomplete { resolved = "any" } do
  if it.resolved then q.resolved = q.resolved + 1 else q.pending = q.pending + 1 end
  if it.lease_owner then q.leased = q.leased + 1 end
end
print(rd.json.encode(q))
EOF
if "$REDRIVE" "$T/setup.lua" >"$T/setup.out" 2>&1; then ok "bulk-sigint-1 setup: $N items"
else bad "bulk-sigint-1 setup" "$T/setup.out"; echo "$pass passed, $fail failed"; exit 1; fi

hits() { curl -s "$RD_TEST_SERVER/count?key=$KEY" | jq -r .count; }
"$REDRIVE" --db "$DB" --json retry --all --concurrency 2 >"$T/out" 2>"$T/err" &
pid=$!
end=$((SECONDS + ${RD_TEST_DEADLINE:-120})) # a bound on a hang, not a synchronisation
until [ "$(hits)" -ge $K ]; do # wait for K retry requests
  { [ $SECONDS -ge $end ] || ! kill -0 $pid 2>/dev/null; } && break
  sleep 0.02
done
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] && ok "bulk-sigint-2 exit 130" || bad "bulk-sigint-2 exit $rc" "$T/err"
S=$(tail -1 "$T/out")
if [ "$(jq -r .interrupted <<<"$S")" = true ]; then ok "bulk-sigint-3 the JSON summary says interrupted"
else bad "bulk-sigint-3 interrupted" "$T/out"; fi
sum=$(jq '.succeeded + .failed + .skipped + .not_attempted' <<<"$S")
total=$(jq .total <<<"$S")
[ "$sum" = "$total" ] && [ "$total" = $N ] \
  && ok "bulk-sigint-4 succeeded + failed + skipped + not_attempted = total = $N" \
  || bad "bulk-sigint-4 sum $sum, total $total" "$T/out"
done_n=$(jq .succeeded <<<"$S"); left_n=$(jq .not_attempted <<<"$S")
[ "$done_n" -ge 1 ] && [ "$left_n" -ge 1 ] && [ "$(jq .failed <<<"$S")" = 0 ] \
  && ok "bulk-sigint-5 $done_n succeeded, $left_n not attempted, none counted failed" \
  || bad "bulk-sigint-5 counts" "$T/out"
[ "$(jq '.results | length' <<<"$S")" -ge "$done_n" ] \
  && ok "bulk-sigint-6 results list the items acted on" || bad "bulk-sigint-6 results" "$T/out"
state=$("$REDRIVE" "$T/state.lua" 2>&1)
[ "$(jq .resolved <<<"$state")" = "$done_n" ] && [ "$(jq .pending <<<"$state")" = "$left_n" ] \
  && [ "$(jq .leased <<<"$state")" = 0 ] \
  && ok "bulk-sigint-7 the store agrees: $state" || bad "bulk-sigint-7 store $state vs summary $S"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

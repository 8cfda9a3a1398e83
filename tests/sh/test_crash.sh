#!/usr/bin/env bash
# kill -9 a redrive process at random moments of a bulk retry, a few rounds,
# then reopen the store: no item lost, none resolved twice, every attempt
# logged (attempts = logs); a last, uninterrupted retry resolves the rest.
# The moment is an event, not a clock: once the test server has seen a random
# number of further retries reach their last module (key PREFIX-done), so a
# round kills a retry in progress however fast or slow the machine is.
# Leases last 1 s here, so the next round takes over what a killed process
# held. Takes about 10 s.
set -u
. "$(dirname "$0")/lib.sh" rd-crash
H=tests/sh/local_queue.lua

N=300
P=crash-$$-$RANDOM
DB=$T/queue.db
TTL=1
if "$REDRIVE" $H setup "$DB" "$RD_TEST_SERVER" $N $P >"$T/setup" 2>&1; then ok "setup: $N items in the queue"
else bad "setup" "$T/setup"; echo "$pass passed, $fail failed"; exit 1; fi

hits() { curl -s "$RD_TEST_SERVER/count?key=$P-done" | jq -r .count; }
# A pass retries 300 items, 4 at a time: kill it after 1 to 40 more retries.
for round in 1 2 3 4; do
  want=$(( $(hits) + 1 + RANDOM % 40 ))
  "$REDRIVE" $H retry "$DB" 4 $TTL >"$T/retry$round" 2>&1 &
  pid=$!
  end=$((SECONDS + ${RD_TEST_DEADLINE:-120})) # a bound on a hang, not a synchronisation
  until [ "$(hits)" -ge $want ]; do
    { [ $SECONDS -ge $end ] || ! kill -0 $pid 2>/dev/null; } && break
    sleep 0.02
  done
  ms="at ~$(hits) retries" # what the server had seen when the kill went
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  if "$REDRIVE" $H check "$DB" "$RD_TEST_SERVER" $N $P >"$T/check$round" 2>&1; then
    ok "round $round: killed $ms; $(grep '^check: items' "$T/check$round" | sed 's/^check: //')"
  else bad "round $round: killed $ms: invariants" "$T/check$round"; fi
  sleep $TTL.1 # let the dead process's leases expire
done

if "$REDRIVE" $H retry "$DB" 8 $TTL >"$T/final" 2>&1; then ok "final retry: $(head -1 "$T/final")"
else bad "final retry" "$T/final"; fi
if "$REDRIVE" $H check "$DB" "$RD_TEST_SERVER" $N $P final >"$T/checkf" 2>&1; then
  ok "after the crashes: 0 lost, 0 resolved twice, all resolved, attempts logged ($(grep '^check: items' "$T/checkf" | sed 's/^check: //'))"
else bad "final invariants" "$T/checkf"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

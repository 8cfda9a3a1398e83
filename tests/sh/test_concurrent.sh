#!/usr/bin/env bash
# Three redrive processes bulk-retry the same queue of incomplete executions
# at once: every item is retried exactly once (the test server counts the
# requests each item makes), and the store agrees.
set -u
. "$(dirname "$0")/lib.sh" rd-conc
H=tests/sh/local_queue.lua

N=300
P=conc-$$-$RANDOM
DB=$T/queue.db
if "$REDRIVE" $H setup "$DB" "$RD_TEST_SERVER" $N $P >"$T/setup" 2>&1; then ok "setup: $N items in the queue"
else bad "setup" "$T/setup"; echo "$pass passed, $fail failed"; exit 1; fi

for i in 1 2 3; do
  "$REDRIVE" $H retry "$DB" 8 >"$T/retry$i" 2>&1 &
  pids[$i]=$!
done
all_ok=1
for i in 1 2 3; do wait "${pids[$i]}" || all_ok=0; done
if [ $all_ok = 1 ]; then ok "three concurrent bulk retries finished"
else bad "a bulk retry process failed" "$T/retry1"; cat "$T/retry2" "$T/retry3"; fi

sum=0
for i in 1 2 3; do
  s=$(sed -nE 's/^retry: total [0-9]+ succeeded ([0-9]+).*/\1/p' "$T/retry$i")
  echo "    process $i: $(head -1 "$T/retry$i")"
  sum=$((sum + ${s:-0}))
done
if [ "$sum" -eq $N ]; then ok "the processes' successes add up to $N"
else bad "successes add up to $sum, want $N"; fi

if "$REDRIVE" $H check "$DB" "$RD_TEST_SERVER" $N $P final exact >"$T/check" 2>&1; then
  ok "every item retried exactly once, resolved once, no lease left ($(grep '^check: items' "$T/check"))"
else bad "store / server invariants" "$T/check"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

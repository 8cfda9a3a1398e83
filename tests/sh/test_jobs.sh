#!/usr/bin/env bash
# A durable bulk job survives kill -9 of the process running it: a retry job
# over N items (each retry takes ~20 ms at the server, 4 in flight), the
# process killed once the ledger says K items are done (an event: the
# ledger's count, read by another process), then `redrive jobs resume ID`
# (it waits for the dead runner's 1 s lease) finishes it; then the same with
# `redrive worker --once` taking the job over. Checked against the loopback
# server's hit counts: 0 items lost, 0 retried twice; what was in flight
# when the process died is failed "in_doubt", never retried again. Then
# three `redrive worker --once` processes draining one job at once, a random
# one killed -9 mid-job: the others finish it (what the dead one had only
# claimed, once its leases expired), every item in doubt was started by the
# dead one, more than one process acted. On SQLite and, when tests/run
# started one, PostgreSQL.
set -u
. "$(dirname "$0")/lib.sh" rd-jobs
Q=tests/sh/jobs_queue.lua
N=40
K=8

# wait_done DB ID MIN PID: until the ledger has MIN rows done, while the
# runner is alive (at most 120 s of looks: a hang bound, not a timing)
wait_done() {
  local d
  for _ in $(seq 6000); do
    d=$("$REDRIVE" $Q done "$1" "$2" 2>/dev/null) || d=0
    [ "${d:-0}" -ge "$3" ] && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# round NAME DB HOW: setup, start, kill -9 mid-job, take over with HOW
# ("resume" or "worker"), check
round() {
  local name=$1 db=$2 how=$3 p="jobs-$$-$RANDOM-$3" pid id
  if ! "$REDRIVE" tests/sh/local_queue.lua setup "$db" "$RD_TEST_SERVER" $N "$p" >"$T/setup" 2>&1; then
    bad "$name: setup" "$T/setup"; return
  fi
  "$REDRIVE" $Q start "$db" >"$T/start" 2>&1 &
  pid=$!
  wait_for "the job's id" grep -q '^job ' "$T/start" # the starter prints it (an event)
  id=$(sed -n 's/^job //p' "$T/start")
  if [ -z "$id" ]; then bad "$name: the job started" "$T/start"; kill -9 $pid; return; fi
  if wait_done "$db" "$id" $K $pid; then
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    local d
    d=$("$REDRIVE" $Q done "$db" "$id")
    if [ "$d" -lt $N ]; then ok "$name: killed -9 mid-job ($d of $N done)"
    else bad "$name: the job ended before the kill ($d of $N)" "$T/start"; fi
  else
    bad "$name: $K items done before the kill" "$T/start"; kill -9 $pid 2>/dev/null; return
  fi
  if [ "$how" = resume ]; then
    "$REDRIVE" --db "$db" jobs resume "$id" >"$T/take" 2>&1
  else
    "$REDRIVE" --db "$db" worker --once >"$T/take" 2>&1
  fi
  local rc=$?
  # exit 1: items failed (the ones in doubt); 0 if none was in flight
  if [ $rc -le 1 ] && grep -q "^$id  retry  done" "$T/take"; then ok "$name: $how took the job over and finished it"
  else bad "$name: $how (exit $rc)" "$T/take"; fi
  if "$REDRIVE" $Q check "$db" "$RD_TEST_SERVER" $N "$p" "$id" >"$T/check" 2>&1; then
    ok "$name: $(grep '^check:' "$T/check" | sed 's/^check: //' | paste -sd';')"
  else bad "$name: 0 lost, 0 twice" "$T/check"; fi
}

# parallel NAME DB: three workers on one job, a random one killed once K
# items are done, the two others finish it; check
parallel() {
  local name=$1 db=$2 p="jobsp-$$-$RANDOM" id i victim
  local -a pids
  if ! "$REDRIVE" tests/sh/local_queue.lua setup "$db" "$RD_TEST_SERVER" $N "$p" >"$T/setup" 2>&1; then
    bad "$name: setup" "$T/setup"; return
  fi
  id=$("$REDRIVE" $Q create "$db" 1 1 2>"$T/create") || { bad "$name: create" "$T/create"; return; }
  for i in 0 1 2; do "$REDRIVE" --db "$db" worker --once >"$T/w$i" 2>&1 & pids[$i]=$!; done
  victim=$((RANDOM % 3))
  if wait_done "$db" "$id" $K "${pids[$victim]}"; then
    kill -9 "${pids[$victim]}" 2>/dev/null
    local d
    d=$("$REDRIVE" $Q done "$db" "$id")
    [ "$d" -lt $N ] || bad "$name: the job ended before the kill ($d of $N)" "$T/w$victim"
  else
    bad "$name: $K items done before the kill" "$T/w$victim"
    kill -9 "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; return
  fi
  local rcs=""
  for i in 0 1 2; do wait "${pids[$i]}"; rcs="$rcs $?"; done
  # the survivors exit 0 or 1 (items in doubt failed); their lines say what each did
  local acted=0
  for i in 0 1 2; do
    [ $i = $victim ] && continue
    acted=$((acted + $(sed -nE 's/.*acted on ([0-9]+) here.*/\1/p' "$T/w$i" | awk '{s += $1} END {print s + 0}')))
  done
  if grep -q "^$id  retry  done" "$T/w$(( (victim + 1) % 3 ))" "$T/w$(( (victim + 2) % 3 ))"; then
    ok "$name: worker $victim killed -9 at $K done, the two others finished the job (exit$rcs; they acted on $acted)"
  else bad "$name: the survivors finished the job (exit$rcs)" "$T/w$(( (victim + 1) % 3 ))"; fi
  if "$REDRIVE" $Q check "$db" "$RD_TEST_SERVER" $N "$p" "$id" "${pids[$victim]}" 2 >"$T/check" 2>&1; then
    ok "$name: $(grep '^check:' "$T/check" | sed 's/^check: //' | paste -sd';')"
  else bad "$name: 0 lost, 0 twice, in doubt = the killed one's" "$T/check"; fi
}

round "sqlite, resume" "$T/jobs.db" resume
round "sqlite, worker" "$T/jobs2.db" worker
parallel "sqlite, three workers" "$T/jobs3.db"
if [ -n "${RD_TEST_PG:-}" ]; then
  s="jobs_$$_$RANDOM"
  $RD_TEST_PG_PSQL -c "CREATE SCHEMA ${s}a; CREATE SCHEMA ${s}b" >/dev/null
  round "postgresql, resume" "$RD_TEST_PG&options=-csearch_path%3D${s}a" resume
  round "postgresql, worker" "$RD_TEST_PG&options=-csearch_path%3D${s}b" worker
  $RD_TEST_PG_PSQL -c "CREATE SCHEMA ${s}c" >/dev/null
  parallel "postgresql, three workers" "$RD_TEST_PG&options=-csearch_path%3D${s}c"
else
  for c in "postgresql, resume" "postgresql, worker" "postgresql, three workers"; do
    echo "skip $c (PostgreSQL not started by tests/run: no initdb, or a filter without a store suite)"
  done
fi
echo "$pass passed, $fail failed, $( [ -n "${RD_TEST_PG:-}" ] && echo 0 || echo 3 ) skipped"
[ $fail -eq 0 ]

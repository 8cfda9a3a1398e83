#!/usr/bin/env bash
# A durable bulk job survives kill -9 of the process running it: a retry job
# over N items (each retry takes ~20 ms at the server, 4 in flight), the
# process killed once the ledger says K items are done (an event: the
# ledger's count, read by another process), then `redrive jobs resume ID`
# (it waits for the dead runner's 1 s lease) finishes it; then the same with
# `redrive worker --once` taking the job over. Checked against the loopback
# server's hit counts: 0 items lost, 0 retried twice; what was in flight
# when the process died is failed "in_doubt", never retried again. On SQLite
# and, when tests/run started one, PostgreSQL.
set -u
. "$(dirname "$0")/lib.sh" rd-jobs
Q=tests/sh/jobs_queue.lua
N=40
K=8

# wait_done DB ID MIN PID: until the ledger has MIN rows done (a bounded
# number of looks; the runner must still be alive)
wait_done() {
  local d
  for _ in $(seq 400); do
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
  for _ in $(seq 400); do grep -q '^job ' "$T/start" && break; sleep 0.02; done
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
    ok "$name: $(grep '^check:' "$T/check" | sed 's/^check: //')"
  else bad "$name: 0 lost, 0 twice" "$T/check"; fi
}

round "sqlite, resume" "$T/jobs.db" resume
round "sqlite, worker" "$T/jobs2.db" worker
if [ -n "${RD_TEST_PG:-}" ]; then
  s="jobs_$$_$RANDOM"
  $RD_TEST_PG_PSQL -c "CREATE SCHEMA ${s}a; CREATE SCHEMA ${s}b" >/dev/null
  round "postgresql, resume" "$RD_TEST_PG&options=-csearch_path%3D${s}a" resume
  round "postgresql, worker" "$RD_TEST_PG&options=-csearch_path%3D${s}b" worker
else
  for c in "postgresql, resume" "postgresql, worker"; do
    echo "skip $c (PostgreSQL not started by tests/run: no initdb, or a filter without a store suite)"
  done
fi
echo "$pass passed, $fail failed, $( [ -n "${RD_TEST_PG:-}" ] && echo 0 || echo 2 ) skipped"
[ $fail -eq 0 ]

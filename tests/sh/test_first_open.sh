#!/usr/bin/env bash
# Several processes opening the same brand-new store at the same moment
# (two hosts starting on one new ledger, two cron jobs on a new --db): each
# round, 8 processes are released at once by one event (the test closes a
# FIFO they all block reading, tests/sh/first_open.lua), open the same
# store file that does not exist yet and write to it once. Every one must
# succeed, every round, as the local store and as a ledger. (Without the
# store's busy handling around the WAL switch, about 1 round in 30 failed
# "cannot set WAL mode ...: database is locked".) PostgreSQL's first
# migration by several processes at once: tests/lua/test_store_pg.lua pg-5.1.
set -u
. "$(dirname "$0")/lib.sh" rd-first-open
H=tests/sh/first_open.lua
N=${RD_FIRST_OPEN_N:-8} ROUNDS=${RD_FIRST_OPEN_ROUNDS:-30}

lines() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ]; }

# round MODE DB HOLD: one round; with HOLD, a python3 process holds the new
# file's write lock (an empty rollback-mode file, BEGIN IMMEDIATE) while the
# processes are released, and lets go right after: the moment another
# process is creating the store, made likely. Prints what failed.
round() {
  local mode=$1 db=$2 hold=$3 fifo="$2.go" ready="$2.ready" out="$2.out" p st=0 pids=() n=$N
  mkfifo "$fifo" "$fifo.hold"
  exec 3<>"$fifo" 4<>"$fifo.hold" # the write ends, held while the processes get ready
  if [ -n "$hold" ]; then
    n=$((N + 1))
    python3 -c '
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "a").write("holder\n")
sys.stdin.read()  # until the test closes its end
con.execute("COMMIT")
' "$db" "$ready" <"$fifo.hold" >>"$out" 2>&1 3>&- 4>&- & pids+=($!)
  fi
  for i in $(seq $N); do
    "$REDRIVE" $H "$fifo" "$ready" "$mode" "$db" "$i" >>"$out" 2>&1 3>&- 4>&- & pids+=($!)
  done
  wait_for "$n processes ready" lines "$ready" $n || st=1
  exec 3>&- 4>&- # the event: every process reads EOF at once (the holder a moment later)
  for p in "${pids[@]}"; do wait "$p" || st=1; done
  if [ $st -ne 0 ] || [ "$(grep -c '^ok ' "$out")" -ne $N ]; then
    echo "$(grep -v '^ok ' "$out" | head -2)"
  fi
}

for mode in store ledger; do
  for hold in "" hold; do
    rounds=$ROUNDS
    [ -n "$hold" ] && rounds=$((ROUNDS / 3))
    if [ -n "$hold" ] && ! python3 -c 'import sqlite3' 2>/dev/null; then
      echo "skip [$mode] new store opened while another process holds its lock (python3 with sqlite3 needed)"
      continue
    fi
    failed=0
    for r in $(seq "$rounds"); do
      why=$(round "$mode" "$T/$mode-$hold$r.db" "$hold")
      [ -n "$why" ] && { failed=$((failed + 1)); echo "    round $r: $why"; }
    done
    what="$rounds rounds of $N processes opening one new store at once${hold:+ while another holds its write lock}"
    if [ $failed -eq 0 ]; then ok "[$mode] $what: all opened and wrote"
    else bad "[$mode] $what: $failed round(s) had a process fail"; fi
  done
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

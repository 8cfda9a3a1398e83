#!/usr/bin/env bash
# bench/pg.sh REDRIVE SERVER N CONC OUTDIR: the PostgreSQL rows of make bench
# (step 11). Starts a PostgreSQL server in a temporary directory (tests/pg.sh),
# then for 1, 2 and 4 worker processes: a fresh database holding N incomplete
# executions (bench/queue.lua setup), and the workers each running
# src:retry{all = true} on it at once; the figure is N / the time from the
# first start to the last end. The workers' summaries must add up to N
# succeeded (leases: no item retried twice, none left). With 1 worker, the
# claim rate is measured first (st:claim in batches of 500, then released).
# Writes OUTDIR/pg_w{1,2,4}.json and OUTDIR/pg_claims.json, or pg.json
# {"skipped": why} when PostgreSQL cannot run here.
set -u
REDRIVE=$1 S=$2 N=$3 CONC=$4 R=$5
EXTRA_CLEANUP=
trap '[ -n "$EXTRA_CLEANUP" ] && eval "$EXTRA_CLEANUP"' EXIT
T=$(mktemp -d /tmp/rd-pgbench.XXXXXX)
EXTRA_CLEANUP="rm -rf '$T'"
. tests/pg.sh 2>"$T/why"
if [ -z "${RD_TEST_PG:-}" ]; then
  printf '{"skipped":"%s"}\n' "$(head -1 "$T/why" | tr -d '"\\')" >"$R/pg.json"
  exit 0
fi
psql_=${RD_TEST_PG_PSQL% -d redrive}
now() { date +%s.%N; }
# sum.lua W N T0 T1 DIR: the workers' summaries as one row
cat >"$T/sum.lua" <<'LUA'
local w, n, secs, dir = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[4]) - tonumber(arg[3]), arg[5]
local out = { workers = w, items = n, seconds = secs, succeeded = 0, failed = 0, skipped = 0, per_worker = {} }
for i = 1, w do
  local f = assert(io.open(dir .. "/w" .. w .. "." .. i .. ".json"))
  local r = assert(rd.json.decode(f:read("a")))
  f:close()
  out.succeeded, out.failed, out.skipped = out.succeeded + r.succeeded, out.failed + r.failed, out.skipped + r.skipped
  out.per_worker[i] = r.succeeded
end
out.per_second = out.succeeded / secs
out.exactly_once = out.succeeded == n and out.failed == 0
print(rd.json.encode(out))
LUA
for w in 1 2 4; do
  db=bench_w$w
  $psql_ -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1 || exit 1
  url=${RD_TEST_PG/\/redrive\?/\/$db?}
  "$REDRIVE" bench/queue.lua setup "$url" "$S" "$N" 256 "pgbench-$$-$w-$RANDOM" >"$R/pg_insert_w$w.json" || exit 1
  if [ $w = 1 ]; then "$REDRIVE" bench/queue.lua claims "$url" >"$R/pg_claims.json" || exit 1; fi
  t0=$(now)
  pids=()
  for i in $(seq $w); do
    "$REDRIVE" bench/queue.lua retry "$url" "$CONC" >"$T/w$w.$i.json" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || exit 1; done
  t1=$(now)
  "$REDRIVE" "$T/sum.lua" "$w" "$N" "$t0" "$t1" "$T" >"$R/pg_w$w.json" || exit 1
done

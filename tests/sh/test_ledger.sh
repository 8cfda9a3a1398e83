#!/usr/bin/env bash
# Several hosts, one ledger (docs/several-hosts.md): two redrive processes
# bulk-retry the same Make items, and two `rules --watch` hosts apply the
# same rule, with one ledger -- each item is retried exactly once, counted
# at the server (the loopback server's Make-like API counts each item's
# retries, tests/server/server.c) and in the ledger. On a SQLite ledger,
# and on PostgreSQL when tests/run started one (RD_TEST_PG).
set -u
. "$(dirname "$0")/lib.sh" rd-ledger
H=tests/sh/ledger_make.lua

ledgers=("$T/ledger.db")
if [ -n "${RD_TEST_PG:-}" ] && [ -n "${RD_TEST_PG_PSQL:-}" ]; then
  schema=ledger_$$_$RANDOM
  $RD_TEST_PG_PSQL -c "CREATE SCHEMA $schema" >/dev/null && ledgers+=("$RD_TEST_PG&options=-csearch_path%3D$schema")
else
  echo "skip ledger on PostgreSQL (no test server: tests/run starts one with the store suites)"
fi

for L in "${ledgers[@]}"; do
  kind=sqlite; [[ $L == postgresql* ]] && kind=postgresql
  # (no open of the ledger beforehand: the two hosts make it, both at once;
  # tests/sh/test_first_open.sh presses on that moment)
  # ---- two processes, one bulk retry ----
  N=150 P=b$$x$RANDOM
  Q=$("$REDRIVE" $H seed "$RD_TEST_SERVER" $P $N)
  "$REDRIVE" --ledger "$L" $H retry "$RD_TEST_SERVER" $P $N "$Q" >"$T/r1" 2>&1 & p1=$!
  "$REDRIVE" --ledger "$L" $H retry "$RD_TEST_SERVER" $P $N "$Q" >"$T/r2" 2>&1 & p2=$!
  if wait $p1 && wait $p2; then ok "[$kind] two bulk retries of the same $N items finished"
  else bad "[$kind] a bulk retry failed" "$T/r1"; cat "$T/r2"; fi
  grep -h "^error" "$T/r1" "$T/r2" | head -3
  q1=$(sed -nE 's/^retry: queued ([0-9]+) skipped ([0-9]+) failed ([0-9]+)/\1/p' "$T/r1")
  q2=$(sed -nE 's/^retry: queued ([0-9]+) skipped ([0-9]+) failed ([0-9]+)/\1/p' "$T/r2")
  s1=$(sed -nE 's/^retry: queued ([0-9]+) skipped ([0-9]+) .*/\2/p' "$T/r1")
  s2=$(sed -nE 's/^retry: queued ([0-9]+) skipped ([0-9]+) .*/\2/p' "$T/r2")
  echo "    process 1: $(head -1 "$T/r1"); process 2: $(head -1 "$T/r2")"
  if [ "$((${q1:-0} + ${q2:-0}))" -eq $N ] && [ "$((${q1:-0} + ${s1:-0}))" -eq $N ] \
     && [ "$((${q2:-0} + ${s2:-0}))" -eq $N ]; then
    ok "[$kind] the queued add up to $N; each process skipped what the other did"
  else bad "[$kind] queued $q1 + $q2, skipped $s1 + $s2, want $N in all"; fi
  if "$REDRIVE" --ledger "$L" $H check "$RD_TEST_SERVER" $P $N "$Q" >"$T/check" 2>&1; then
    ok "[$kind] every item retried exactly once at the server, one done retry each in the ledger"
  else bad "[$kind] exactly once" "$T/check"; fi
  # the audit shows both hosts' work, secrets never
  if "$REDRIVE" --ledger "$L" --json audit --since 1h --source make >"$T/audit" 2>"$T/audit.err" \
     && [ "$(grep "\"item\":\"$P" "$T/audit" | grep -c '"outcome":"done"')" -eq $N ] \
     && ! grep -q mk-ledger-token "$T/audit"; then
    ok "[$kind] redrive audit --json lists the $N done retries, no token"
  else bad "[$kind] audit" "$T/audit.err"; head -3 "$T/audit"; fi

  # the audit as text: who did what; a reconcile of an item not in doubt settles nothing
  if "$REDRIVE" --ledger "$L" audit --source make --limit 3 >"$T/audit3" 2>&1 && [ "$(grep -c "^[0-9]" "$T/audit3")" -eq 3 ] \
     && "$REDRIVE" --ledger "$L" audit --source make >"$T/audit.txt" 2>&1 && grep -qE " done +- +retry +$P[0-9]+q$Q make http.* \(pid [0-9]+\)" "$T/audit.txt"; then
    ok "[$kind] redrive audit: time, outcome, action, item, source, host and pid; --limit"
  else bad "[$kind] audit as text" "$T/audit3"; fi
  "$REDRIVE" --ledger "$L" audit --reconcile "make $RD_TEST_SERVER/make" "${P}1q$Q" retry failed >"$T/rec" 2>&1; rc=$?
  if [ $rc -eq 1 ] && grep -q "no unknown outcome of retry ${P}1q$Q" "$T/rec"; then
    ok "[$kind] audit --reconcile of an item that is not in doubt: exit 1, nothing settled"
  else bad "[$kind] reconcile not in doubt (exit $rc)" "$T/rec"; fi

  # an item in doubt (a host recorded its outcome as unknown), settled by hand
  cat >"$T/doubt.lua" <<'LUA'
local st = assert(require("redrive.core").store_open(arg[1]))
local o = { source = arg[2], item = arg[3], action = "retry", owner = "dead:1:1", host = "dead-host", pid = 1 }
o.ttl = 60
assert(st:ledger_take(o) == true)
o.ttl, o.outcome = nil, "unknown"
assert(st:ledger_settle(o) == 1)
LUA
  "$REDRIVE" "$T/doubt.lua" "$L" "make $RD_TEST_SERVER/make" "doubt$P"
  if "$REDRIVE" --ledger "$L" audit --reconcile "make $RD_TEST_SERVER/make" "doubt$P" retry done >"$T/rec" 2>&1 \
     && grep -q "settled retry of doubt$P as done" "$T/rec" \
     && "$REDRIVE" --ledger "$L" --json audit >"$T/rec.json" 2>&1 \
     && grep "\"item\":\"doubt$P\"" "$T/rec.json" | grep '"outcome":"done"' | grep -q '"code":"reconciled"'; then
    ok "[$kind] audit --reconcile settles an item in doubt; the audit says reconciled"
  else bad "[$kind] reconcile in doubt" "$T/rec"; fi

  # ---- two rules --watch hosts ----
  N=40 P=w$$x$RANDOM
  Q=$("$REDRIVE" $H seed "$RD_TEST_SERVER" $P $N)
  mkdir -p "$T/rules-$kind"
  cat >"$T/rules-$kind/retry.lua" <<LUA
return { name = "retry-all", source = "mk", scenario = $Q, every = 0.05,
         match = function(item) return item.id:find("^$P") ~= nil end,
         action = function(item, ctx) return ctx.retry() end }
LUA
  cat >"$T/config-$kind.lua" <<LUA
return { profiles = { mk = { kind = "make", base_url = "$RD_TEST_SERVER/make", token = "mk-ledger-token",
  ledger = "$L" } } }
LUA
  for h in a b; do
    REDRIVE_CONFIG="$T/config-$kind.lua" "$REDRIVE" rules "$T/rules-$kind" --watch \
      >"$T/w$h" 2>"$T/w$h.err" & eval "w$h=\$!"
  done
  passes() { grep -c '^rule retry-all' "$1" 2>/dev/null || true; }
  if wait_for "every item retried" "$REDRIVE" $H wait "$RD_TEST_SERVER" $P $N "$Q"; then
    ok "[$kind] rules --watch: every matching item retried"
  else bad "[$kind] rules --watch: items not retried" "$T/wa.err"; fi
  # two more passes of each host after that: each lists every item again
  na=$(passes "$T/wa"); nb=$(passes "$T/wb")
  more() { [ "$(passes "$T/wa")" -ge $((na + 2)) ] && [ "$(passes "$T/wb")" -ge $((nb + 2)) ]; }
  wait_for "two more passes of each host" more || bad "[$kind] rules hosts stopped passing" "$T/wb.err"
  kill "$wa" "$wb" 2>/dev/null; wait "$wa" "$wb" 2>/dev/null
  if REDRIVE_CONFIG="$T/config-$kind.lua" "$REDRIVE" --ledger "$L" $H check "$RD_TEST_SERVER" $P $N "$Q" \
       >"$T/check" 2>&1 && grep -q "$N skipped (ledger)" "$T/wa" && grep -q "$N skipped (ledger)" "$T/wb"; then
    ok "[$kind] two rules --watch hosts: each matching item retried exactly once ($(grep -c 'skipped (ledger)' "$T/wa" "$T/wb" | paste -sd' '))"
  else bad "[$kind] rules --watch exactly once" "$T/check"; fi
done

# usage: no ledger, a bad duration
"$REDRIVE" audit >"$T/u1" 2>&1; rc1=$?
"$REDRIVE" --ledger "$T/x.db" audit --since soon >"$T/u2" 2>&1; rc2=$?
if [ $rc1 -eq 2 ] && grep -q "no ledger: pass --ledger" "$T/u1" && [ $rc2 -eq 2 ] \
   && grep -q -- "--since: 'soon' is neither a duration" "$T/u2"; then
  ok "audit without a ledger, or with a bad --since: a usage error (exit 2) saying what to pass"
else bad "audit usage errors ($rc1, $rc2)" "$T/u1"; cat "$T/u2"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

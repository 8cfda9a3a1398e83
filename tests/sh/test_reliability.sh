#!/usr/bin/env bash
# Reliability: kill -9 in the middle of a blueprint patch and of a bulk
# retry, and concurrent bulk retries of one queue.
#
#   bash tests/sh/test_reliability.sh        the quick part (make test, ~10 s):
#                                            crashes during blueprint patches
#   RD_FULL=1 bash tests/sh/test_reliability.sh   make reliability (~20 min
#       with PostgreSQL, ~5 without):
#       20 kill -9 rounds during a 10 000-item bulk retry, 20 during patches,
#       three processes bulk-retrying one 10 000-item queue; on PostgreSQL,
#       10 rounds of three workers draining one 10 000-item job at once, a
#       random one killed -9 (tests/sh/jobs_queue.lua); 5 rounds of two `rules --watch`
#       hosts on one ledger (1000 Make items), one killed
# (tests/sh/test_crash.sh and test_concurrent.sh already run small versions of
# the bulk-retry crash and the concurrent retry in make test.)
#
# After every kill the store is reopened and checked: no item lost, none
# resolved twice, attempts = logs (tests/sh/local_queue.lua check); a patched
# blueprint is exactly the old or the new one, never a mix.
set -u
. "$(dirname "$0")/lib.sh" rd-rel
Q=tests/sh/local_queue.lua
rand_ms() { echo $(( $1 + RANDOM % ($2 - $1) )); }
msleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

if [ -n "${RD_FULL:-}" ]; then PATCH_ROUNDS=20; else PATCH_ROUNDS=4; fi

# ---- crash during blueprint patches -----------------------------------------
# patcher: patches one item's blueprint and the scenario's blueprint in a loop,
# alternating between two versions (each ~200 KB, so a write spans many
# pages); check: both are exactly version A or B and still validate.
cat >"$T/patch.lua" <<'LUA'
local rd = require "redrive"
local cmd, db = arg[1], arg[2]
local function version(tag)
  local flow = {}
  for i = 1, 40 do
    flow[i] = { id = i, module = "util:SetVariable",
                mapper = { name = "v" .. i, value = string.rep(tag, 5000) .. i } }
  end
  return { name = "patch-" .. tag, flow = flow }
end
local A, B = rd.blueprint(version("a")), rd.blueprint(version("b"))
local src = assert(rd.connect { kind = "local", db = db })
if cmd == "setup" then
  local sc = assert(src:scenario_create { name = "patch", blueprint = {
    name = "patch", flow = {
      { id = 1, module = "http:ActionSendData", mapper = { url = arg[3] .. "/status/500", method = "get" } } } } })
  local e = assert(src:run(sc.id, {}))
  assert(e.dlq_id, "no item")
  assert(src:scenario_update(sc.id, { blueprint = A }))
  assert(src:incomplete_item(e.dlq_id):patch { blueprint = A })
  print(sc.id, e.dlq_id)
elseif cmd == "patch" then
  local sid, iid = tonumber(arg[3]), arg[4]
  local n = 0
  while true do
    n = n + 1
    local bp = n % 2 == 0 and A or B
    assert(src:scenario_update(sid, { blueprint = bp }))
    assert(src:incomplete_item(iid):patch { blueprint = bp })
    print(n) -- one line per pair of patches: the test kills after a random number of them
    io.stdout:flush()
  end
elseif cmd == "check" then
  local sid, iid = tonumber(arg[3]), arg[4]
  local function which(bp, what)
    if bp == A then return "A" elseif bp == B then return "B" end
    print("TORN " .. what .. ": neither version (" .. #bp:json() .. " bytes)")
    os.exit(1)
  end
  local sbp = assert(src:scenario(sid)):blueprint()
  local ibp = assert(src:incomplete_item(iid)):blueprint()
  require "redrive.engine" -- fills the module registry validate() checks against
  for what, bp in pairs { scenario = sbp, item = ibp } do
    local okv, errs = bp:validate()
    if not okv then print("INVALID " .. what .. ": " .. rd.json.encode(errs)); os.exit(1) end
  end
  print("check: scenario " .. which(sbp, "scenario") .. " item " .. which(ibp, "item"))
end
LUA
PDB=$T/patch.db
if out=$("$REDRIVE" "$T/patch.lua" setup "$PDB" "$RD_TEST_SERVER" 2>&1); then
  read -r SID IID <<<"$out"
  seen=""
  torn=0
  for round in $(seq $PATCH_ROUNDS); do
    "$REDRIVE" "$T/patch.lua" patch "$PDB" "$SID" "$IID" >"$T/patcher" 2>&1 &
    pid=$!
    # the moment: once it has made 1 to 8 pairs of patches (an event, not a
    # clock); the deadline bounds a hang
    want=$((1 + RANDOM % 8)) end=$((SECONDS + ${RD_TEST_DEADLINE:-120}))
    until [ "$(wc -l <"$T/patcher")" -ge $want ]; do
      { [ $SECONDS -ge $end ] || ! kill -0 $pid 2>/dev/null; } && break
      sleep 0.01
    done
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    if "$REDRIVE" "$T/patch.lua" check "$PDB" "$SID" "$IID" >"$T/pcheck" 2>&1; then
      seen="$seen $(sed 's/check: //; s/ /:/g' "$T/pcheck")"
    else
      torn=$((torn + 1)); bad "patch round $round: blueprint torn or invalid" "$T/pcheck"
    fi
  done
  [ $torn -eq 0 ] && ok "kill -9 during blueprint patches, $PATCH_ROUNDS rounds: always the old or the new blueprint ($seen )"
else
  bad "patch setup" <(echo "$out")
fi

# ---- the full runs ------------------------------------------------------------
if [ -n "${RD_FULL:-}" ]; then
  N=${RD_FULL_N:-10000}
  ROUNDS=20 TTL=1
  DB=$T/queue.db P=rel-$$-$RANDOM
  t0=$SECONDS
  if "$REDRIVE" $Q setup "$DB" "$RD_TEST_SERVER" $N $P >"$T/setup" 2>&1; then
    ok "setup: $N items in the queue ($((SECONDS - t0)) s)"
    # a whole pass takes N x 20 ms / 64 in flight ~ 3 s: killing between 30
    # and 250 ms (start-up included) leaves items for every round
    crashed=0
    for round in $(seq $ROUNDS); do
      "$REDRIVE" $Q retry "$DB" 64 $TTL >"$T/retry$round" 2>&1 &
      pid=$!
      ms=$(rand_ms 30 250)
      msleep $ms
      kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
      if ! "$REDRIVE" $Q check "$DB" "$RD_TEST_SERVER" $N $P >"$T/check$round" 2>&1; then
        crashed=$((crashed + 1)); bad "crash round $round (killed after $ms ms): invariants" "$T/check$round"
      fi
      sleep $TTL.1
    done
    [ $crashed -eq 0 ] && ok "kill -9 during a $N-item bulk retry, $ROUNDS rounds: 0 lost, 0 resolved twice, attempts = logs (resolved after each round: $(for r in $(seq $ROUNDS); do sed -nE 's/^check: items [0-9]+ resolved ([0-9]+).*/\1/p' "$T/check$r"; done | paste -sd' '))"
    if "$REDRIVE" $Q retry "$DB" 64 $TTL >"$T/final" 2>&1 \
       && "$REDRIVE" $Q check "$DB" "$RD_TEST_SERVER" $N $P final >"$T/checkf" 2>&1; then
      ok "after the crashes a last retry resolves everything ($(grep '^check: items' "$T/checkf" | sed 's/^check: //'))"
    else bad "final retry / invariants" "$T/checkf"; fi
  else bad "setup" "$T/setup"; fi

  # three processes, one queue
  DB=$T/conc.db P=relc-$$-$RANDOM
  if "$REDRIVE" $Q setup "$DB" "$RD_TEST_SERVER" $N $P >"$T/csetup" 2>&1; then
    for i in 1 2 3; do "$REDRIVE" $Q retry "$DB" 32 >"$T/cretry$i" 2>&1 & pids[$i]=$!; done
    all=1; for i in 1 2 3; do wait "${pids[$i]}" || all=0; done
    sum=0
    for i in 1 2 3; do
      s=$(sed -nE 's/^retry: total [0-9]+ succeeded ([0-9]+).*/\1/p' "$T/cretry$i"); sum=$((sum + ${s:-0}))
    done
    if [ $all = 1 ] && [ $sum -eq $N ] \
       && "$REDRIVE" $Q check "$DB" "$RD_TEST_SERVER" $N $P final exact >"$T/ccheck" 2>&1; then
      ok "three processes bulk-retrying one $N-item queue: every item retried exactly once ($(for i in 1 2 3; do sed -nE 's/^retry: total [0-9]+ succeeded ([0-9]+).*/\1/p' "$T/cretry$i"; done | paste -sd+))"
    else bad "concurrent retry (sum $sum of $N)" "$T/ccheck"; cat "$T/cretry1"; fi
  else bad "concurrent setup" "$T/csetup"; fi

  # two `rules --watch` hosts on one ledger against the Make-like API of the
  # test server, one killed with -9 at a random moment, each round: every
  # matching item retried exactly once, counted at the server. What the
  # dead host had in flight is in doubt (its lease expired unrecorded): the
  # survivor skips it, the operator reconciles it from the platform (here:
  # the server's count), then the survivor retries what never reached it.
  LM=tests/sh/ledger_make.lua LN=${RD_FULL_LEDGER_N:-1000} LROUNDS=5
  passes() { grep -c '^rule retry-all' "$1" 2>/dev/null || true; }
  lfail=0 summary=
  for round in $(seq $LROUNDS); do
    P=lr$$x${round}x$RANDOM L=$T/ledger$round.db D=$T/lrules$round
    Qs=$("$REDRIVE" $LM seed "$RD_TEST_SERVER" $P $LN)
    mkdir -p "$D"
    printf 'return { name = "retry-all", source = "mk", scenario = %s, every = 0.05, concurrency = 8,\n  match = function(item) return item.id:find("^%s") ~= nil end,\n  action = function(item, ctx) return ctx.retry() end }\n' "$Qs" "$P" >"$D/retry.lua"
    printf 'return { profiles = { mk = { kind = "make", base_url = "%s/make", token = "mk-rel-token", ledger = "%s", ledger_ttl = 1 } } }\n' \
      "$RD_TEST_SERVER" "$L" >"$D.config.lua"
    REDRIVE_CONFIG="$D.config.lua" "$REDRIVE" rules "$D" --watch >"$D.a" 2>&1 & wa=$!
    REDRIVE_CONFIG="$D.config.lua" "$REDRIVE" rules "$D" --watch >"$D.b" 2>&1 & wb=$!
    ms=$(rand_ms 100 2000)
    msleep $ms
    kill -9 $wa 2>/dev/null; wait $wa 2>/dev/null
    export REDRIVE_CONFIG="$D.config.lua"
    if wait_for "every item retried or in doubt" "$REDRIVE" --ledger "$L" $LM settled "$RD_TEST_SERVER" $P $LN "$Qs" \
       && "$REDRIVE" --ledger "$L" $LM reconcile "$RD_TEST_SERVER" $P $LN "$Qs" >"$D.rec" 2>&1 \
       && wait_for "every item retried" "$REDRIVE" $LM wait "$RD_TEST_SERVER" $P $LN "$Qs"; then
      nb=$(passes "$D.b")
      wait_for "two more passes of the survivor" eval '[ "$(passes "$D.b")" -ge $((nb + 2)) ]'
    fi
    kill $wb 2>/dev/null; wait $wb 2>/dev/null
    if "$REDRIVE" --ledger "$L" $LM check "$RD_TEST_SERVER" $P $LN "$Qs" >"$D.check" 2>&1; then
      summary="$summary ${ms}ms:$(sed -nE 's/^reconciled: done ([0-9]+) failed ([0-9]+)/\1+\2/p' "$D.rec")"
    else lfail=$((lfail + 1)); bad "ledger round $round (host killed after $ms ms)" "$D.check"; tail -3 "$D.b"; fi
    unset REDRIVE_CONFIG
  done
  [ $lfail -eq 0 ] && ok "two rules --watch hosts on one ledger, $LN Make items, one killed with -9, $LROUNDS rounds: each item retried exactly once at the server (kill time:in doubt reconciled done+failed:$summary)"
fi

# ---- PostgreSQL: three workers drain one job at once, kill -9 one of them ----
# Each round: a queue of N items in a schema of its own, a retry job over it
# that three `redrive worker --once` processes drain together (each acts on
# different items), a random one of them killed -9 once the ledger says K
# items are done (K random); the two others finish the job: what the dead
# one had only claimed once its 1 s leases expire. Checked against the
# loopback server's hit counts and the store (jobs_queue.lua check): every
# item settled, none retried twice, every item in doubt started by the
# killed process, more than one process acted.
if [ -n "${RD_FULL:-}" ] && [ -n "${RD_TEST_PG:-}" ]; then
  J=tests/sh/jobs_queue.lua
  N=${RD_FULL_N:-10000}
  PG_ROUNDS=${RD_PG_ROUNDS:-10}
  good=0 summary=""
  for round in $(seq $PG_ROUNDS); do
    schema="rel_$$_${round}_$RANDOM"
    $RD_TEST_PG_PSQL -c "CREATE SCHEMA $schema" >/dev/null
    DB="$RD_TEST_PG&options=-csearch_path%3D$schema" P=relpg-$$-$round-$RANDOM
    if ! "$REDRIVE" $Q setup "$DB" "$RD_TEST_SERVER" $N $P >"$T/pgsetup" 2>&1; then
      bad "pg round $round: setup" "$T/pgsetup"; continue
    fi
    id=$("$REDRIVE" $J create "$DB" 32 1 2>"$T/pgcreate") || { bad "pg round $round: create" "$T/pgcreate"; continue; }
    for i in 1 2 3; do "$REDRIVE" --db "$DB" worker --once -q >"$T/pgw$i" 2>&1 & wpids[$i]=$!; done
    K=$(rand_ms 200 $((N * 8 / 10)))
    victim=$((1 + RANDOM % 3)) killed="" d=0
    for _ in $(seq 6000); do # until K done (an event), a bounded number of looks
      d=$("$REDRIVE" $J done "$DB" "$id" 2>/dev/null) || d=0
      if [ "${d:-0}" -ge $K ]; then
        kill -9 "${wpids[$victim]}" 2>/dev/null && killed=$victim
        break
      fi
      kill -0 "${wpids[$victim]}" 2>/dev/null || break
      sleep 0.02
    done
    for i in 1 2 3; do wait "${wpids[$i]}" 2>/dev/null; done
    if [ -z "$killed" ]; then bad "pg round $round: worker $victim killed at $K done (ledger: $d)" "$T/pgw$victim"; continue; fi
    # what each survivor acted on (its lines), the victim's from the ledger
    acted=""
    for i in 1 2 3; do
      [ $i = $victim ] && continue
      acted="$acted+$(sed -nE 's/.*acted on ([0-9]+) here.*/\1/p' "$T/pgw$i" | awk '{s += $1} END {print s + 0}')"
    done
    if "$REDRIVE" $J check "$DB" "$RD_TEST_SERVER" $N $P "$id" "${wpids[$victim]}" 2 >"$T/pgcheck" 2>&1; then
      good=$((good + 1))
      summary="$summary $K:$(sed -nE 's/^check: .* ([0-9]+) in doubt.*/\1/p' "$T/pgcheck"):${acted#+}"
    else
      bad "pg round $round (worker $victim killed at $K done): 0 lost, 0 twice" "$T/pgcheck"
    fi
    $RD_TEST_PG_PSQL -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
  done
  [ $good -eq $PG_ROUNDS ] && ok "PostgreSQL, three workers draining one $N-item job at once, a random one killed -9, $PG_ROUNDS rounds: every item settled, 0 retried twice (hit counts), in doubt = what the killed one had started, the others finished it (done at the kill:in doubt:acted on by the survivors =$summary)"
elif [ -n "${RD_FULL:-}" ]; then
  echo "skip PostgreSQL workers round (PostgreSQL not started: no initdb)"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# The on-call command line (issue 15): triage on the demo store, ls's
# selections and honest cuts, executions / show --run-data / logs / bundle /
# blueprint on every source, retry by selection with --wait and
# --load-workflow, resolve, and the exit status of every command's expected
# failures (2 usage, 3 unreachable or unauthorised, 1 the rest; one line,
# never a traceback). Real store files, the loopback server (its demo API and
# its fake Make that logs retries later), the Prism mocks of Make, n8n,
# SailPoint and Kaizen (their cases skip, counted, without Prism).
set -u
. "$(dirname "$0")/lib.sh" rd-clicmd
. tests/sh/cli_lib.sh
R=$REDRIVE
export REDRIVE_DB=$T/store.db XDG_CONFIG_HOME=$T/config
unset REDRIVE_PROFILE REDRIVE_CONFIG

# ---- 1. the done criterion: `redrive triage` on the demo's store (make demo)
BREL=$(realpath --relative-to=. "${RD_BUILD:-build}")
check "triage-1.1 make demo (examples/demo.sh) runs" 0 env B="$BREL" examples/demo.sh
tri=$(sed -n '/^== The morning after: redrive triage/,/^== redrive examples/p' <<<"$OUT")
has "triage-1.2 two causes, 30 pending failures" "$tri" "2 cause(s), 30 pending failure(s)"
# rows: "COUNT FINGERPRINT FIRST LAST SCENARIOS" then "cause ..." on the next line
pairs=$(awk '/^ +[0-9][0-9 ]*  [0-9a-f]+  / && length($2) == 12 {n=$1; fp=$2; getline; sub(/^ +cause +/, ""); print n "|" fp "|" $0}' <<<"$tri")
first=$(sed -n 1p <<<"$pairs"); second=$(sed -n 2p <<<"$pairs")
has "triage-1.3 the 410 group first: 18 failures" "$first" '18|'
has "triage-1.4 ... its cause" "$first" '|HTTP 410 from http://<host>/v1/webhook: {"error":"endpoint moved to /v2/webhook"}'
has "triage-1.5 the 500 group: 12 failures" "$second" '12|'
has "triage-1.6 ... its cause, orders templated" "$second" '|HTTP 500 from http://<host>/orders/<n>: {"error":"order service failed"}'
[ "$(wc -l <<<"$pairs")" -eq 2 ] && ok "triage-1.7 exactly two groups" || no "triage-1.7 groups" "$pairs"
has "triage-1.8 the 500 group spans both scenarios" "$(grep -E "^ +12  " <<<"$tri")" \
  "Orders to fulfilment (1), Order receipts (2)"
fp410=$(cut -d'|' -f2 <<<"$first")
has "triage-1.9 the command that retries the 410 group" "$tri" "retry    redrive retry --fingerprint $fp410"
has "triage-1.10 ... deletes it" "$tri" "delete   redrive delete --fingerprint $fp410 --yes"

# ---- 2. a store of our own: 3 x 503, 2 x 500, 1 success; two of the 503s are
# three hours old (sqlite3 moves their time), so windows have something to cut
cat >"$T/bp.json" <<EOF
{"name": "fetch", "flow": [
  {"id": 1, "module": "gateway:CustomWebHook", "mapper": {}},
  {"id": 2, "module": "http:ActionSendData",
   "mapper": {"url": "$RD_TEST_SERVER/{{1.path}}", "method": "get"}}]}
EOF
for p in status/503 status/503 status/503 status/500 status/500 ok; do
  "$R" -q run "$T/bp.json" --input "{\"path\": \"$p\"}" >/dev/null 2>&1
done
check "store-1.1 six runs, five items" 0 "$R" ls --json
[ "$(wc -l <<<"$OUT")" -eq 5 ] && ok "store-1.2 five pending" || no "store-1.2" "$OUT"
old2=$(jq -r 'select(.reason | test("503")) | .id' <<<"$OUT" | head -2)
have_sqlite=1; command -v sqlite3 >/dev/null || have_sqlite=
if [ -n "$have_sqlite" ]; then
  for id in $old2; do sqlite3 "$REDRIVE_DB" "UPDATE dlq_item SET created = created - 10800 WHERE id = '$id'"; done
fi
fp503=$("$R" ls --json --reason 'HTTP 503' | jq -r .fingerprint | sort -u)
fp500=$("$R" ls --json --reason 'HTTP 500' | jq -r .fingerprint | sort -u)
[ "$(wc -w <<<"$fp503 $fp500")" -eq 2 ] && [ "$fp503" != "$fp500" ] && ok "store-1.3 one fingerprint per cause" \
  || no "store-1.3" "$fp503 / $fp500"

# ---- 3. triage on it
check "triage-2.1 triage" 0 "$R" triage
has "triage-2.2 two causes, five failures" "$OUT" "2 cause(s), 5 pending failure(s)"
has "triage-2.3 biggest first" "$(grep -E '^ +[0-9]+  [0-9a-f]{12}' <<<"$OUT" | head -1)" "      3  $fp503"
has "triage-2.4 resolve command (local)" "$OUT" "resolve  redrive resolve --fingerprint $fp503 --yes"
check "triage-2.5 --json" 0 "$R" triage --json
has "triage-2.6 a group per line with its commands" "$(jq -c '[.count, .fingerprint, .commands.retry]' <<<"$OUT" | head -1)" \
  "[3,\"$fp503\",\"redrive retry --fingerprint $fp503\"]"
check "triage-2.7 --limit 1 cuts, and says so" 0 "$R" triage --limit 1
has "triage-2.8 ... on stderr" "$ERR" "showing the 1 biggest cause(s); --limit N shows more"
check "triage-2.9 --db goes into the commands" 0 env -u REDRIVE_DB "$R" --db "$REDRIVE_DB" triage --json
has "triage-2.10 ... quoted for the shell" "$(jq -r .commands.retry <<<"$OUT" | head -1)" \
  "redrive --db $REDRIVE_DB retry --fingerprint $fp503"
# the printed command selects exactly the group the screen counted
cmd=$("$R" triage --json | jq -r .commands.retry | head -1)
# (run as printed: `redrive` from PATH)
onpath() { env PATH="$(dirname "$R"):$PATH" bash -c "$1"; }
check "triage-2.11 the printed retry command, dry" 0 onpath "$cmd --dry-run --json"
has "triage-2.12 ... would retry the three of the group" "$(jq -r .would_retry <<<"$OUT")" "3"
if [ -n "$have_sqlite" ]; then
  check "triage-2.13 --since 2h" 0 "$R" triage --since 2h --json
  has "triage-2.14 ... counts the recent 503 only" "$(jq -c "select(.fingerprint == \"$fp503\") | .count" <<<"$OUT")" "1"
  cmd=$(jq -r "select(.fingerprint == \"$fp503\") | .commands.retry" <<<"$OUT")
  has "triage-2.15 ... the command carries the window, as a date" "$cmd" "--since 20"
  check "triage-2.16 ... and selects that one item" 0 onpath "$cmd --dry-run --json"
  has "triage-2.17 ... would retry 1" "$(jq -r .would_retry <<<"$OUT")" "1"
else
  for c in 2.13 2.14 2.15 2.16 2.17; do skip=$((skip + 1)); echo "skip triage-$c (sqlite3 not installed)"; done
fi

# ---- 4. ls: selections, windows, honest cuts
check "ls-1.1 --fingerprint" 0 "$R" ls --fingerprint "$fp500" --json
[ "$(jq -r .fingerprint <<<"$OUT" | sort -u)" = "$fp500" ] && [ "$(wc -l <<<"$OUT")" -eq 2 ] \
  && ok "ls-1.2 ... the two of that group" || no "ls-1.2" "$OUT"
check "ls-1.3 --reason" 0 "$R" ls --reason 'HTTP 50[03]' --json
[ "$(wc -l <<<"$OUT")" -eq 5 ] && ok "ls-1.4 ... a Lua pattern" || no "ls-1.4" "$OUT"
check "ls-1.5 --limit 2 cuts" 0 "$R" ls --limit 2
has "ls-1.6 ... and says so on stderr" "$ERR" "showing 2 of 5 incomplete execution(s); --limit N shows more"
[ "$(grep -c '^[0-9a-f]\{32\} ' <<<"$OUT")" -eq 2 ] && ok "ls-1.7 ... two rows" || no "ls-1.7" "$OUT"
check "ls-1.8 --json cut: the note on stderr, stdout stays JSON" 0 "$R" ls --limit 1 --json
has "ls-1.9 ... note" "$ERR" "showing 1 of 5"
[ "$(jq -c . <<<"$OUT" | wc -l)" -eq 1 ] && ok "ls-1.10 ... one JSON line" || no "ls-1.10" "$OUT"
check "ls-1.11 --since as an ISO date in the future" 0 "$R" ls --since 2999-01-01 --json
[ -z "$OUT" ] && ok "ls-1.12 ... nothing" || no "ls-1.12" "$OUT"
check "ls-1.13 --until an ISO date in the past" 0 "$R" ls --until 2000-01-01T00:00:00Z --json
[ -z "$OUT" ] && ok "ls-1.14 ... nothing" || no "ls-1.14" "$OUT"
check "ls-1.15 --since an hour ago, hh:mm" 0 "$R" ls --since "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M)" --json
if [ -n "$have_sqlite" ]; then
  [ "$(wc -l <<<"$OUT")" -eq 3 ] && ok "ls-1.16 ... the three recent ones" || no "ls-1.16" "$OUT"
  check "ls-1.17 --since 2h" 0 "$R" ls --since 2h --json
  [ "$(wc -l <<<"$OUT")" -eq 3 ] && ok "ls-1.18 ... three" || no "ls-1.18" "$OUT"
  check "ls-1.19 --until 2h" 0 "$R" ls --until 2h --json
  [ "$(jq -r .id <<<"$OUT" | sort)" = "$(sort <<<"$old2")" ] && ok "ls-1.20 ... the two old ones" || no "ls-1.20" "$OUT"
  check "ls-1.21 --since 4h --until 1h30m" 0 "$R" ls --since 4h --until 1h30m --json
  [ "$(wc -l <<<"$OUT")" -eq 2 ] && ok "ls-1.22 ... the two old ones" || no "ls-1.22" "$OUT"
else
  for c in 1.16 1.17 1.18 1.19 1.20 1.21 1.22; do skip=$((skip + 1)); echo "skip ls-$c (sqlite3 not installed)"; done
fi
check "ls-1.23a a leap day is a date" 0 "$R" ls --since 2028-02-29 --until 2999-01-01T00:00:00+02:00 --json
check "ls-1.23 --since after --until" 2 "$R" ls --since 1h --until 2h
has "ls-1.24 ... says so" "$ERR" "--since must be before --until"

# ---- 5. resolve (local), then ls --status / --all see it
id500=$("$R" ls --fingerprint "$fp500" --json | jq -r .id | head -1)
check "resolve-1.1 --dry-run" 0 "$R" --dry-run resolve "$id500" --json
has "resolve-1.2 ... would resolve 1" "$(jq -r .would_resolve <<<"$OUT")" "1"
has "resolve-1.3 ... names the store first" "$ERR" "redrive resolve: acting on local store $REDRIVE_DB"
check "resolve-1.4 resolve ID" 0 "$R" resolve "$id500"
has "resolve-1.5 ... resolved 1" "$OUT" "resolved 1"
check "resolve-1.6 ls --status resolved" 0 "$R" ls --status resolved --json
[ "$(jq -r .id <<<"$OUT")" = "$id500" ] && ok "resolve-1.7 ... that one" || no "resolve-1.7" "$OUT"
check "resolve-1.8 ls: pending only by default" 0 "$R" ls --json
[ "$(wc -l <<<"$OUT")" -eq 4 ] && ok "resolve-1.9 ... four" || no "resolve-1.9" "$OUT"
check "resolve-1.10 ls --all" 0 "$R" ls --all --json
[ "$(wc -l <<<"$OUT")" -eq 5 ] && ok "resolve-1.11 ... five" || no "resolve-1.11" "$OUT"
check "resolve-1.12 ls --status any" 0 "$R" ls --status any --json
[ "$(wc -l <<<"$OUT")" -eq 5 ] && ok "resolve-1.13 ... five" || no "resolve-1.13" "$OUT"
check "resolve-1.14 a group needs --yes" 2 "$R" resolve --fingerprint "$fp500"
check "resolve-1.15 a group with --yes" 0 "$R" resolve --fingerprint "$fp500" --yes --json
has "resolve-1.16 ... the one left" "$(jq -r .resolved <<<"$OUT")" "1"
check "resolve-1.17 unknown id: listed, exit 1" 1 "$R" resolve 0123456789abcdef0123456789abcdef
has "resolve-1.18 ... why" "$ERR" "not found"

# ---- 6. executions, show --run-data, logs, bundle, blueprint (local)
check "exec-1.1 executions" 0 "$R" executions --json
[ "$(wc -l <<<"$OUT")" -eq 6 ] && ok "exec-1.2 six executions" || no "exec-1.2" "$OUT"
check "exec-1.3 --status error" 0 "$R" executions --status error --json
[ "$(wc -l <<<"$OUT")" -eq 5 ] && ok "exec-1.4 five failed" || no "exec-1.4" "$OUT"
check "exec-1.5 --fingerprint" 0 "$R" executions --fingerprint "$fp503" --json
[ "$(wc -l <<<"$OUT")" -eq 3 ] && ok "exec-1.6 three of that cause" || no "exec-1.6" "$OUT"
check "exec-1.7 --limit 2 cuts and says so" 0 "$R" executions --limit 2
has "exec-1.8 ... on stderr" "$ERR" "showing 2 of 6 execution(s)"
check "exec-1.9 bad --status" 2 "$R" executions --status broken
item=$("$R" ls --json --fingerprint "$fp503" | jq -r .id | head -1)
check "show-1.1 show ID --run-data (an item: its failed execution's)" 0 "$R" show "$item" --run-data --json
has "show-1.2 the failed module's error" "$(jq -r '.run_data["2"].error.message // .run_data["2"].error' <<<"$OUT")" "503"
has "show-1.3 the module's input" "$(jq -r '.run_data["2"].input.url' <<<"$OUT")" "/status/503"
eid=$(jq -r .execution_id <<<"$OUT")
check "show-1.4 show EXEC --run-data" 0 "$R" show "$eid" --run-data
has "show-1.5 run data printed" "$OUT" "run data:"
check "show-1.6 fingerprint and cause shown" 0 "$R" show "$item" --json
has "show-1.7 ..." "$(jq -r .fingerprint <<<"$OUT")" "$fp503"
check "logs-1.1 no attempts yet" 0 "$R" logs "$item" --json
[ -z "$OUT" ] && ok "logs-1.2 ... none" || no "logs-1.2" "$OUT"
check "bundle-1.1 bundle" 0 "$R" bundle "$item" --json
has "bundle-1.2 the failed module's input" "$(jq -r .url <<<"$OUT")" "/status/503"
check "bp-1.1 blueprint" 0 "$R" blueprint "$item"
has "bp-1.2 the whole blueprint" "$(jq -r .name <<<"$OUT")" "fetch"
check "bp-1.3 --pointer" 0 "$R" blueprint "$item" --pointer /flow/1/module
has "bp-1.4 one value" "$OUT" '"http:ActionSendData"'
check "bp-1.5 --pointer to nothing" 1 "$R" blueprint "$item" --pointer /flow/9
check "bp-1.6 --pointer without /" 2 "$R" blueprint "$item" --pointer flow

# ---- 7. retry by selection (local): --reason, --fingerprint, --since
check "retry-1.1 --reason, dry" 0 "$R" --dry-run retry --reason 'HTTP 503' --json
has "retry-1.2 ... the three 503s" "$(jq -r .would_retry <<<"$OUT")" "3"
check "retry-1.3 --fingerprint, dry" 0 "$R" --dry-run retry --fingerprint "$fp503" --json
has "retry-1.4 ... the same three" "$(jq -r .would_retry <<<"$OUT")" "3"
check "retry-1.5 --reason that matches nothing" 0 "$R" retry --reason 'HTTP 418' --json
has "retry-1.6 ... an empty summary" "$(jq -c '[.total, .errors]' <<<"$OUT")" "[0,[]]"
check "retry-1.7 IDs and a selection: usage" 2 "$R" retry "$item" --fingerprint "$fp503"
check "retry-1.8 bad --reason pattern: usage" 2 "$R" retry --reason '[unclosed'
check "retry-1.9 --timeout without --wait: usage" 2 "$R" retry "$item" --timeout 5
check "retry-1.10 --load-workflow on local: usage" 2 "$R" retry "$item" --load-workflow
check "retry-1.11 --fingerprint, for real: fails again, exit 1" 1 "$R" retry --fingerprint "$fp503" --json
has "retry-1.12 ... three failed" "$(tail -1 <<<"$OUT" | jq -c '[.total, .failed]')" "[3,3]"
check "retry-1.13 logs now show the attempt" 0 "$R" logs "$item" --json
has "retry-1.14 ... as an error" "$(jq -r .status <<<"$OUT")" "error"
check "retry-1.15 --wait on local: the outcome" 1 "$R" retry "$item" --wait
has "retry-1.16 ... per item" "$OUT" "$item: failed"
check "delete-1.1 a group needs --yes" 2 "$R" delete --fingerprint "$fp503"
check "delete-1.2 a group, dry" 0 "$R" --dry-run delete --fingerprint "$fp503" --json
has "delete-1.3 ... would delete three" "$(jq -r .would_delete <<<"$OUT")" "3"

# ---- 8. help: every command's flags in its help, and every command in --help
check "help-1.1 redrive help" 0 "$R" help
cmds=$(sed -n '/^commands/,/^options/p' <<<"$OUT" | sed -nE 's/^  ([a-z]+)( .*)?$/\1/p' | sort -u)
for c in triage ls executions show logs bundle blueprint retry resolve patch delete health run rules help; do
  grep -qx "$c" <<<"$cmds" || no "help-1.2 --help lists $c" "$cmds"
done
ok "help-1.2 --help lists every command"
bad=
for c in $cmds; do
  h=$("$R" "$c" --help 2>&1) || bad="$bad $c(exit)"
  [ "$h" = "$("$R" help "$c" 2>&1)" ] || bad="$bad $c(differs)"
  for f in $("$R" --json help "$c" | jq -r '.flags[].name'); do
    [[ $h == *"$f"* ]] || bad="$bad $c:$f"
    "$R" "$c" "$f" --bogus-flag >/dev/null 2>&1; [ $? -eq 2 ] || bad="$bad $c:$f(accepted?)"
  done
done
[ -z "$bad" ] && ok "help-1.3 CMD --help = help CMD, and names every flag CMD takes" || no "help-1.3" "$bad"
check "help-1.4 help of no command" 2 "$R" help nothing
# every global option of the one table (lua/redrive/cli/util.lua, `--json help
# CMD`.globals) in each command's help, and taken before the command (the C
# parser, src/cli/opts.c) and after it (the Lua one)
globals=$("$R" --json help ls | jq -r '.globals[] | [.name, .short // "", .value // ""] | join(";")')
[ "$(wc -l <<<"$globals")" -ge 8 ] && grep -q '^--ledger;' <<<"$globals" || no "help-1.5 the global options" "$globals"
bad=
for c in $cmds; do
  h=$("$R" help "$c" 2>&1)
  line=$(sed -n '/^global options/,$p' <<<"$h" | tr '\n' ' ')
  while IFS=';' read -r name short value; do
    [[ $line == *"${short:+$short|}$name${value:+ $value}"* ]] || bad="$bad $c:$name"
  done <<<"$globals"
done
[ -z "$bad" ] && ok "help-1.5 every command's help names every global option (--ledger too)" || no "help-1.5" "$bad"
bad=
while IFS=';' read -r name short value; do
  for o in "$name" $short; do
    args=("$o"); [ -n "$value" ] && args+=("$T/global-$RANDOM.db")
    "$R" "${args[@]}" help ls >/dev/null 2>&1 || bad="$bad $o(before)"
    "$R" help ls "${args[@]}" >/dev/null 2>&1 || bad="$bad $o(after)"
  done
done <<<"$globals"
"$R" help ls --no-such-global >/dev/null 2>&1; [ $? -eq 2 ] || bad="$bad unknown(accepted?)"
[ -z "$bad" ] && ok "help-1.6 each global option is taken before and after a command" || no "help-1.6" "$bad"

# ---- 9. remote sources (Prism mocks; the loopback server's fake Make)
cat >"$T/remote.lua" <<EOF
return { profiles = {
  make = { kind = "make", base_url = "${RD_MOCK_MAKE:-http://127.0.0.1:9}", token = "mk-cli", scenario = 112233 },
  make_any = { kind = "make", base_url = "${RD_MOCK_MAKE:-http://127.0.0.1:9}", token = "mk-cli" },
  make_401 = { kind = "make", base_url = "${RD_MOCK_MAKE:-http://127.0.0.1:9}", token = "mk-cli", scenario = 112233,
               headers = { Prefer = "code=401" } },
  fake = { kind = "make", base_url = "$RD_TEST_SERVER/make", token = "mk-cli", scenario = 7 },
  n8n = { kind = "n8n", base_url = "${RD_MOCK_N8N:-http://127.0.0.1:9}", token = "n8n-cli" },
  n8n_401 = { kind = "n8n", base_url = "${RD_MOCK_N8N:-http://127.0.0.1:9}", token = "n8n-cli",
              headers = { Prefer = "code=401" } },
  sp = { kind = "sailpoint", base_url = "${RD_MOCK_SAILPOINT:-http://127.0.0.1:9}", token = "sp-cli" },
  sp_wf = { kind = "sailpoint", base_url = "${RD_MOCK_SAILPOINT:-http://127.0.0.1:9}", token = "sp-cli", scenario = "wf-1" },
  sp_401 = { kind = "sailpoint", base_url = "${RD_MOCK_SAILPOINT:-http://127.0.0.1:9}", token = "sp-cli",
             scenario = "wf-1", headers = { Prefer = "code=401" } },
  kz = { kind = "kaizen", base_url = "${RD_MOCK_KAIZEN:-http://127.0.0.1:9}", token = "kz-cli" },
  dead_make = { kind = "make", base_url = "http://127.0.0.1:1", token = "mk-cli", scenario = 1, retries = 0 },
  dead_n8n = { kind = "n8n", base_url = "http://127.0.0.1:1", token = "n8n-cli", retries = 0 },
  dead_sp = { kind = "sailpoint", base_url = "http://127.0.0.1:1", token = "sp-cli", scenario = "wf", retries = 0 },
  dead_kz = { kind = "kaizen", base_url = "http://127.0.0.1:1", token = "kz-cli", retries = 0 },
} }
EOF
rs() { env REDRIVE_CONFIG="$T/remote.lua" "$R" "$@"; }
# the fake Make (loopback): a retry Make queues and logs later
check "wait-1.1 Make retry without --wait: queued" 0 rs --profile fake retry "s1q$$"
has "wait-1.2 ... says queued" "$OUT" "1 queued"
check "wait-1.3 Make retry --wait: the logged outcome" 0 rs --profile fake retry "s1w$$" --wait
has "wait-1.4 ... succeeded, with its execution" "$OUT" "s1w$$: succeeded (execution s1w$$-E1)"
check "wait-1.5 Make retry --wait that Make logs as an error: exit 1" 1 rs --profile fake retry "s3e$$" --wait --json
has "wait-1.6 ... failed" "$(tail -1 <<<"$OUT" | jq -c '[.failed, .queued]')" "[1,0]"
if [ -n "${RD_MOCK_MAKE:-}" ] && [ -n "${RD_MOCK_N8N:-}" ] && [ -n "${RD_MOCK_SAILPOINT:-}" ] && [ -n "${RD_MOCK_KAIZEN:-}" ]; then
  check "remote-1.1 n8n executions" 0 rs --profile n8n executions --json
  [ "$(wc -l <<<"$OUT")" -ge 1 ] && ok "remote-1.2 ... listed" || no "remote-1.2" "$OUT"
  check "remote-1.3 SailPoint executions of a workflow" 0 rs --profile sp executions --scenario wf-1 --limit 2 --json
  [ "$(wc -l <<<"$OUT")" -eq 2 ] && ok "remote-1.4 ... two shown" || no "remote-1.4" "$OUT"
  has "remote-1.5 ... the rest counted" "$ERR" "showing 2 of"
  check "remote-1.6 SailPoint triage (read-only: no commands)" 0 rs --profile sp_wf triage
  has "remote-1.7 ... a group" "$OUT" "workflow execution failed"
  lacks "remote-1.8 ... and no retry command" "$OUT" "redrive retry"
  check "remote-1.9 Make executions: unsupported, says what instead" 1 rs --profile make executions
  has "remote-1.10 ..." "$ERR" "work with incomplete executions"
  lacks "remote-1.11 ... one line, no traceback" "$ERR" "traceback"
  check "remote-1.12 Kaizen ls: unsupported" 1 rs --profile kz ls
  check "remote-1.13 Make resolve: unsupported, says delete or retry" 1 rs --profile make resolve 1
  has "remote-1.14 ..." "$ERR" "delete them"
  check "remote-1.15 n8n resolve: unsupported" 1 rs --profile n8n resolve 9877
  item=$(rs --profile make ls --json | jq -r .id | head -1)
  check "remote-1.16 Make logs" 0 rs --profile make logs "$item" --json
  has "remote-1.17 ... statuses named" "$(jq -r .status <<<"$OUT" | sort -u | tr '\n' ' ')" "error"
  check "remote-1.18 Make bundle" 0 rs --profile make bundle "$item" --json
  check "remote-1.19 Make blueprint --pointer /name" 0 rs --profile make blueprint "$item" --pointer /name
  check "remote-1.20 n8n show --run-data" 0 rs --profile n8n show 9877 --run-data --json
  has "remote-1.21 ... run data per node" "$(jq -r '.run_data | type' <<<"$OUT")" "object"
  check "remote-1.22 n8n retry --load-workflow, dry" 0 rs --profile n8n --dry-run retry 9877 --load-workflow --json
  check "remote-1.23 n8n retry --load-workflow --wait" 1 rs --profile n8n retry 9877 --load-workflow --wait --json
  has "remote-1.24 ... the outcome (the mock's retry fails), not queued" "$(tail -1 <<<"$OUT" | jq -c '[.failed, .queued]')" \
    "[1,null]"
  check "remote-1.25 Make triage: commands name the profile" 0 rs --profile make triage --json
  has "remote-1.26 ..." "$(jq -r .commands.retry <<<"$OUT" | head -1)" "redrive --profile make retry --fingerprint"
  check "remote-1.27 Make retry --fingerprint, dry" 0 rs --profile make --dry-run retry \
    --fingerprint "$(rs --profile make ls --json | jq -r .fingerprint | head -1)" --json
else
  for c in 1.1 1.2 1.3 1.4 1.5 1.6 1.7 1.8 1.9 1.10 1.11 1.12 1.13 1.14 1.15 1.16 1.17 1.18 1.19 1.20 1.21 1.22 \
           1.23 1.24 1.25 1.26 1.27; do
    skip=$((skip + 1)); echo "skip remote-$c (${RD_MOCKS_WHY:-a Prism mock did not start})"
  done
fi

# ---- 10. expected failures, every command: one line, the right exit status
# rows: NAME WANT_RC NEEDS(local|mocks) ARGS... (run through rs, one command each)
ID=0123456789abcdef0123456789abcdef
errors_table() {
cat <<EOF
usage-triage 2 local triage --bogus
usage-ls 2 local ls --bogus
usage-executions 2 local executions --bogus
usage-show 2 local show
usage-logs 2 local logs
usage-bundle 2 local bundle a b
usage-blueprint 2 local blueprint
usage-retry 2 local retry
usage-resolve 2 local resolve
usage-patch 2 local patch $ID
usage-delete 2 local delete
usage-health 2 local health a b
usage-run 2 local run
usage-rules 2 local rules
usage-help 2 local help --bogus
duration-triage 2 local triage --since 5x
duration-ls 2 local ls --until yesterday
duration-executions 2 local executions --since 2026-13-01
duration-retry 2 local retry --since 1y
duration-resolve 2 local resolve --since -1h --yes
duration-delete 2 local delete --until 2026-12-01T25:00 --yes
duration-health 2 local health --since 1x
duration-feb30 2 local ls --since 2026-02-30
duration-minute 2 local ls --since 2026-12-01T03:61
limit-ls 2 local ls --limit many
status-ls 2 local ls --status done
noscenario-ls 2 mocks --profile make_any ls
noscenario-triage 2 mocks --profile make_any triage
noscenario-retry 2 mocks --profile make_any retry --all
noscenario-executions 2 mocks --profile sp executions
notfound-show 1 local show $ID
notfound-logs 1 local logs $ID
notfound-bundle 1 local bundle $ID
notfound-blueprint 1 local blueprint $ID
dead-triage 3 local --profile dead_make triage
dead-ls 3 local --profile dead_make ls
dead-executions 3 local --profile dead_n8n executions
dead-show 3 local --profile dead_n8n show 1
dead-logs 3 local --profile dead_make logs 1
dead-bundle 3 local --profile dead_make bundle 1
dead-blueprint 3 local --profile dead_make blueprint 1
dead-retry 3 local --profile dead_make retry 1
dead-retry-all 3 local --profile dead_make retry --all
dead-retry-kaizen 3 local --profile dead_kz retry 1
dead-delete 3 local --profile dead_make delete 1
dead-delete-group 3 local --profile dead_make delete --fingerprint abc --yes
dead-health 3 local --profile dead_n8n health
dead-sp 3 local --profile dead_sp executions
dead-patch 3 local --profile dead_make patch 1 $T/bp.json
auth-ls 3 mocks --profile make_401 ls
auth-triage 3 mocks --profile make_401 triage
auth-retry 3 mocks --profile make_401 retry 1
auth-delete 3 mocks --profile make_401 delete 1
auth-logs 3 mocks --profile make_401 logs 1
auth-n8n-executions 3 mocks --profile n8n_401 executions
auth-n8n-show 3 mocks --profile n8n_401 show 9877
auth-n8n-retry 3 mocks --profile n8n_401 retry 9877
auth-sp-executions 3 mocks --profile sp_401 executions
EOF
}
while read -r name want needs args; do
  if [ "$needs" = mocks ] && [ -z "${RD_MOCK_MAKE:-}" ]; then
    skip=$((skip + 1)); echo "skip err-$name (${RD_MOCKS_WHY:-a Prism mock did not start})"; continue
  fi
  # shellcheck disable=SC2086 # the row's words are the arguments
  check "err-$name exits $want" "$want" rs $args
  n=$(grep -cv '^  ' <<<"$ERR") # lines, not counting a bulk call's indented per-item lines
  if [ "$n" -le 2 ] && [[ $ERR != *traceback* ]] && [[ $ERR != *".lua:"* ]]; then ok "err-$name one line, no traceback"
  else no "err-$name one line, no traceback" "$ERR"; fi
done < <(errors_table)

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

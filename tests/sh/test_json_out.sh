#!/usr/bin/env bash
# --json output is for jq (issue 15): every command `redrive --help` lists
# runs here with --json, on an empty store and on one with executions and
# incomplete executions, and each line it prints must parse (jq), hold no
# key twice, print every list as a JSON array even when empty (errors = [],
# not {}), and never carry a Lua list with fields beside it
# ({"1": r, "reason": r}). tests/sh/jsoncheck.py is the judge.
set -u
. "$(dirname "$0")/lib.sh" rd-json
. tests/sh/cli_lib.sh
R=$REDRIVE
export REDRIVE_DB=$T/store.db XDG_CONFIG_HOME=$T/config
unset REDRIVE_PROFILE REDRIVE_CONFIG
J=$T/json
mkdir -p "$J"
ran=" "
# js NAME WANT_RC CMD ARGS...: `redrive --json CMD ARGS...`, its stdout kept
# in $J/NAME.out for the judge; the command is noted as covered
js() {
  local name=$1 want=$2; shift 2
  ran="$ran$1 "
  check "json-$name exit $want" "$want" "$R" --json "$@"
  printf '%s\n' "$OUT" >"$J/$name.out"
  if [ -n "$OUT" ] && ! jq -e . >/dev/null 2>&1 <<<"$OUT"; then no "json-$name jq parses it" "$OUT"; fi
}

cat >"$T/ok.json" <<EOF
{"name": "fine", "flow": [{"id": 1, "module": "http:ActionSendData",
  "mapper": {"url": "$RD_TEST_SERVER/ok", "method": "get"}}]}
EOF
cat >"$T/bad.json" <<EOF
{"name": "broken", "flow": [{"id": 1, "module": "http:ActionSendData",
  "mapper": {"url": "$RD_TEST_SERVER/status/500", "method": "get"}}]}
EOF
mkdir -p "$T/rules"
cat >"$T/rules/none.lua" <<'EOF'
return { name = "none", match = function() return false end, action = function() end }
EOF
echo '[{"op": "replace", "path": "/name", "value": "renamed"}]' >"$T/fix.json"

# ---- an empty store: the lists are there, and empty
js empty-ls 0 ls
js empty-ls-all 0 ls --all
js empty-health 0 health
js empty-retry-dry 0 --dry-run retry --all
js empty-retry 0 retry --all
js empty-delete-dry 0 --dry-run delete --all --yes
js empty-delete 0 delete --all --yes
js empty-rules 0 rules "$T/rules" --once
js empty-rules-check 0 rules "$T/rules" --check
js empty-show-unknown 1 show 0123456789abcdef0123456789abcdef
for f in empty-retry-dry empty-retry empty-delete-dry empty-delete; do
  has "json-$f errors is a list" "$(jq -c '.errors' <"$J/$f.out" 2>&1 | tail -1)" "[]"
done
has "json-empty-health top_reasons is a list" "$(jq -c .top_reasons <"$J/empty-health.out" 2>&1)" "[]"

# ---- a store with a success and two failures
js run-ok 0 run "$T/ok.json"
js run-bad 1 run "$T/bad.json"
js run-bad2 1 run "$T/bad.json" --input '{"n": 2}'
js run-dry 0 --dry-run run "$T/ok.json"
js ls 0 ls
js ls-all 0 ls --all --limit 1
id=$(jq -r .id <"$J/ls.out" | head -1)
exec_id=$(jq -r .id <"$J/run-ok.out")
js show-item 0 show "$id"
js show-exec 0 show "$exec_id"
js health 0 health
js triage 0 triage
js executions 0 executions
js logs 0 logs "$id"
js bundle 0 bundle "$id"
js blueprint 0 blueprint "$id"
js blueprint-pointer 0 blueprint "$id" --pointer /name
js help 0 help
js help-retry 0 help retry
js health-scenario 0 health 2
has "json-health top_reasons has the failure" "$(jq -c '.top_reasons | length' <"$J/health.out" 2>&1)" "1"
js patch-dry 0 --dry-run patch "$id" "$T/fix.json"
js patch 0 patch "$id" "$T/fix.json"
js retry-dry 0 --dry-run retry --all
js retry-one 1 retry "$id"
js retry-all 1 retry --all
js resolve-dry 0 --dry-run resolve "$id"
js resolve 0 resolve "$id"
js rules 0 rules "$T/rules" --once
js delete-dry 0 --dry-run delete "$id"
js delete 0 delete "$id"
js usage-error 2 ls --bogus
js audit 0 audit --ledger "$T/ledger.db" --since 1h
js audit-no-ledger 2 audit
js script 0 -e 'return {n = 1}, "two", rd.json.array{}'
# durable jobs (docs/jobs.md): one over what is left, listed, shown; a worker with none to take
"$R" -q -e 'assert(rd.connect():retry { all = true, job = true }):wait()' >/dev/null 2>&1
js jobs 0 jobs
job_id=$(jq -r .id <"$J/jobs.out" | head -1)
js jobs-show 0 jobs show "$job_id" --results
js jobs-show-unknown 1 jobs show 0123456789abcdef0123456789abcdef
js worker 0 worker --once
has "json-jobs a job is listed, done" "$(jq -r .state <"$J/jobs.out" 2>&1 | head -1)" "done"

# ---- the remote sources (Prism contract mocks), when there
if [ -n "${RD_MOCK_MAKE:-}" ] && [ -n "${RD_MOCK_N8N:-}" ]; then
  cat >"$T/remote.lua" <<EOF
return { profiles = {
  make = { kind = "make", base_url = "$RD_MOCK_MAKE", token = "mk-json-token", scenario = 112233 },
  n8n = { kind = "n8n", base_url = "$RD_MOCK_N8N", token = "n8n-json-token" },
} }
EOF
  rs() { REDRIVE_CONFIG=$T/remote.lua js "$@"; }
  rs make-ls 0 --profile make ls
  rs make-show 0 --profile make show "$(jq -r .id <"$J/make-ls.out" | head -1)"
  rs make-retry-dry 0 --profile make --dry-run retry --all
  rs n8n-ls 0 --profile n8n ls
  rs n8n-health 0 --profile n8n health
  rs n8n-retry-dry 0 --profile n8n --dry-run retry --all
else
  for c in make-ls make-show make-retry-dry n8n-ls n8n-health n8n-retry-dry; do
    skip=$((skip + 1)); echo "skip json-$c (${RD_MOCK_MAKE_WHY:-${RD_MOCKS_WHY:-Prism not installed: run scripts/prism}})"
  done
fi

# ---- the judge: every line of every command
if python3 tests/sh/jsoncheck.py "$J"/*.out >"$T/judge" 2>&1; then
  ok "json-check every line parses, no key twice, lists are arrays"
else
  no "json-check every line parses, no key twice, lists are arrays" "$(cat "$T/judge")"
fi

# ---- every command of --help was run here
cmds=$("$R" --help | sed -n '/^commands/,/^options/p' | sed -nE 's/^  ([a-z]+) .*/\1/p; s/^  ([a-z]+)$/\1/p' | sort -u)
missing=
for c in $cmds; do [[ $ran == *" $c "* ]] || missing="$missing $c"; done
[ -n "$cmds" ] && [ -z "$missing" ] && ok "json-cover every command of --help ran with --json ($(echo $cmds))" \
  || no "json-cover every command of --help ran with --json" "not run:$missing" "commands: $(echo $cmds)"

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

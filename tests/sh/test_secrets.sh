#!/usr/bin/env bash
# Secrets: a token used by a scenario (Authorization header, query parameter,
# URL userinfo, basic-auth password) must appear in no output: errors,
# --verbose logs, --json results, ls/show/retry, the rules audit log, the REPL,
# an execution's run data and an item's bundle -- and not in the store file.
set -u
cd "$(dirname "$0")/../.."
R=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d /tmp/rd-secrets.XXXXXX)
SP=
SOCK=
cleanup() {
  [ -n "$SP" ] && kill "$SP" 2>/dev/null
  [ -n "$SOCK" ] && tmux -L "$SOCK" kill-server 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
[ -n "${RD_KEEP:-}" ] && trap - EXIT && echo "keeping $T"
if [ -z "${RD_TEST_SERVER:-}" ]; then
  "${RD_BUILD:-build}/testserver" --port-file "$T/port" >/dev/null & SP=$!
  for _ in $(seq 2400); do [ -s "$T/port" ] && break; sleep 0.05; done # <= 120 s: a hang bound
  RD_TEST_SERVER="http://127.0.0.1:$(cat "$T/port")"
fi
S=$RD_TEST_SERVER
HOSTPORT=${S#http://}
export REDRIVE_DB=$T/store.db XDG_CONFIG_HOME=$T/config
pass=0 fail=0 skip=0
. tests/sh/terminal.sh
# DEADLINE: how long a wait for the REPL may last before it counts as a hang
# (a failure bound; the waits end on what the screen shows)
DEADLINE=${RD_TEST_DEADLINE:-120}
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
TOKEN=tok$RANDOM${RANDOM}Zq9secret
OUT=$T/out; mkdir -p "$OUT"
# clean NAME FILE...: the token appears in none of the files
clean() {
  local name=$1; shift
  if grep -l -a -- "$TOKEN" "$@" >"$T/hits" 2>/dev/null; then
    bad "$name: token found in $(tr '\n' ' ' <"$T/hits")"
    grep -a -h -o -- ".\{0,60\}$TOKEN.\{0,20\}" "$@" 2>/dev/null | head -3 | sed 's/^/    /'
  else ok "$name"; fi
}

# The scenario: module 2 calls a failing endpoint with the token four ways.
cat >"$T/bp.json" <<JSON
{"name": "secrets", "flow": [
  {"id": 1, "module": "util:SetVariable", "mapper": {"name": "n", "value": "{{0.n}}"}},
  {"id": 2, "module": "http:ActionSendData", "mapper": {
     "url": "http://user:$TOKEN@$HOSTPORT/status/503?api_key=$TOKEN", "method": "get",
     "headers": [{"name": "Authorization", "value": "Bearer $TOKEN"},
                 {"name": "X-Api-Key", "value": "$TOKEN"}],
     "qs": [{"name": "token", "value": "$TOKEN"}],
     "authUser": "user", "authPass": "$TOKEN", "timeout": 3}}
]}
JSON
# the same with a refused port, for transport errors
sed "s#$HOSTPORT#127.0.0.1:1#" "$T/bp.json" >"$T/bp-refused.json"

cat >"$T/script.lua" <<'LUA'
local rd = require "redrive"
local bp = assert(io.open(arg[1])):read("a")
local src = assert(rd.connect())
local sc = assert(src:scenario_create { name = "secrets", blueprint = rd.json.decode(bp) })
for i = 1, 3 do
  local e = assert(src:run(sc.id, { input = { n = i } }))
  print("run", e.id, e.status, rd.json.encode(e.error or {}))
  print("run_data", rd.json.encode(e:run_data()))
  if e.dlq_id then
    local it = assert(src:incomplete_item(e.dlq_id))
    print("item", rd.json.encode(it.raw or {}), it.reason)
    print("bundle", rd.json.encode(it:bundle() or {}))
    local r, err = it:retry()
    print("retry", r and r.status, err, r and r.execution and rd.json.encode(r.execution.error or {}))
  end
end
-- direct HTTP errors (status and transport)
local hdrs = { Authorization = "Bearer " .. os.getenv("TOKEN") }
print(rd.http.request { url = os.getenv("S") .. "/close?token=" .. os.getenv("TOKEN"), headers = hdrs, timeout = 2 })
print(rd.http.request { url = "http://u:" .. os.getenv("TOKEN") .. "@127.0.0.1:1/x?k=" .. os.getenv("TOKEN"), timeout = 2 })
print(rd.http.request { url = os.getenv("S") .. "/stall?token=" .. os.getenv("TOKEN"), timeout = 0.3 })
print(pcall(error, select(2, rd.http.request { url = os.getenv("S") .. "/garbage?t=" .. os.getenv("TOKEN") })))
print(require("redrive.pretty") and "pretty" or "")
LUA
export TOKEN S
"$R" --verbose "$T/script.lua" "$T/bp.json" >"$OUT/script.out" 2>"$OUT/script.err"
"$R" --verbose "$T/script.lua" "$T/bp-refused.json" >"$OUT/script2.out" 2>"$OUT/script2.err"
grep -q '^run' "$OUT/script.out" || { bad "the script ran"; sed 's/^/    /' "$OUT/script.err" | tail -5; }
clean "secrets-1 script: errors, run data, items, bundles, retries, --verbose" "$OUT"/script*

# the CLI: run, ls, show, retry, --json, --verbose
"$R" --verbose run "$T/bp.json" --input '{"n": 9}' >"$OUT/run.out" 2>"$OUT/run.err"
"$R" --json --verbose run "$T/bp.json" >"$OUT/runj.out" 2>"$OUT/runj.err"
"$R" --json run "$T/bp-refused.json" >"$OUT/runr.out" 2>"$OUT/runr.err"
"$R" ls >"$OUT/ls.out" 2>&1
"$R" --json ls >"$OUT/lsj.out" 2>&1
ID=$("$R" --json ls 2>/dev/null | grep -o '"id": *"[0-9a-f]\{32\}"' | head -1 | grep -o '[0-9a-f]\{32\}')
if [ -n "$ID" ]; then
  "$R" show "$ID" >"$OUT/show.out" 2>&1
  "$R" --json show "$ID" >"$OUT/showj.out" 2>&1
  "$R" --verbose retry "$ID" >"$OUT/retry.out" 2>&1
  "$R" --json --verbose retry --all --force >"$OUT/retryall.out" 2>&1
else bad "ls --json listed no item"; cat "$OUT/lsj.out" | head -5; fi
"$R" --json health 1 >"$OUT/health.out" 2>&1
clean "secrets-2 CLI: run, ls, show, retry, health, with --json and --verbose" "$OUT"/run* "$OUT"/ls* "$OUT"/show* "$OUT"/retry* "$OUT"/health*

# rules with an audit log
mkdir -p "$T/rules"
cat >"$T/rules/retry-all.lua" <<'LUA'
return {
  name = "retry-all", reason = ".", limit = 10, concurrency = 2,
  match = function(item) return true end,
  action = function(item, ctx)
    local res, err = ctx.retry()
    ctx.log("retried", item.id, item.reason, res and res.status, err)
  end,
}
LUA
"$R" --verbose rules "$T/rules" --once --audit "$OUT/audit.log" >"$OUT/rules.out" 2>&1
[ -s "$OUT/audit.log" ] || bad "the rules run wrote no audit log"
clean "secrets-3 rules: output, --verbose, audit log" "$OUT"/rules.out "$OUT"/audit.log

# the REPL (on a pseudo-terminal): print an item and an execution
cat >"$T/repl.in" <<'LUA'
src = rd.connect()
it = src:incomplete{}()
it
src:execution(it.execution_id)
it:bundle()
it:logs{}()
rd.http.request{url = os.getenv("S") .. "/close?token=" .. os.getenv("TOKEN"), timeout = 2}
LUA
if [ -n "$RD_SCRIPT_WHY" ]; then
  skip=$((skip + 1)); echo "skip secrets-4 REPL output ($RD_SCRIPT_WHY)"
else
  # the input goes through a FIFO held open, so the REPL reads it all; a last
  # line prints a marker (built at run time: the echoed input does not match)
  # and Ctrl-D is sent once the marker shows
  mkfifo "$T/repl.fifo"
  timeout "$DEADLINE" script -qfc "$R" /dev/null <"$T/repl.fifo" >"$OUT/repl.out" 2>&1 &
  RPID=$!
  exec 4>"$T/repl.fifo"
  { cat "$T/repl.in"; echo 'print("repl-" .. "done")'; } >&4
  end=$((SECONDS + DEADLINE))
  until grep -q "repl-done" "$OUT/repl.out"; do
    { [ $SECONDS -ge $end ] || ! kill -0 $RPID 2>/dev/null; } && break; sleep 0.05
  done
  grep -q "repl-done" "$OUT/repl.out" || bad "secrets-4 the REPL ran the input: $(tail -3 "$OUT/repl.out")"
  printf '\004' >&4
  exec 4>&-
  wait $RPID
  grep -q "incomplete" "$OUT/repl.out" || bad "secrets-4 the REPL printed the item: $(tail -3 "$OUT/repl.out")"
  clean "secrets-4 REPL output" "$OUT/repl.out"
fi

# at rest: a blueprint that holds a literal token keeps it (it is the
# scenario's configuration, in a 0600 file); everything recorded about runs
# -- run data, incomplete-execution states, errors, reasons -- must not.
if command -v sqlite3 >/dev/null; then
  sqlite3 "$T/store.db" "SELECT name FROM sqlite_master WHERE type = 'table'" >"$OUT/tables"
  : >"$OUT/atrest"
  for tbl in $(cat "$OUT/tables"); do
    for col in $(sqlite3 "$T/store.db" "SELECT name FROM pragma_table_info('$tbl')"); do
      [ "$col" = blueprint ] && continue
      sqlite3 "$T/store.db" "SELECT '$tbl.$col: ' || CAST($col AS TEXT) FROM $tbl" >>"$OUT/atrest" 2>/dev/null
    done
  done
  [ -s "$OUT/atrest" ] || bad "nothing read from the store"
  clean "secrets-5 the store: run data, states, errors, logs (all but blueprints) hold no token" "$OUT/atrest"
fi

# An echoing server: module 1 sends an Authorization header to an endpoint
# that answers 500 with the request as text. The module keeps 200 bytes of
# that answer in its error; the execution's error, the item's reason, ls
# and show (--json and not) must hold no token (a store of its own, so the
# item is the only one).
ECHO_DB=$T/echo.db
cat >"$T/bp-echo.json" <<JSON
{"name": "echo", "flow": [
  {"id": 1, "module": "http:ActionSendData", "mapper": {"url": "$S/echo-raw/500",
   "method": "get", "gzip": false, "headers": [{"name": "Authorization", "value": "Bearer $TOKEN"}]}}
]}
JSON
"$R" --db "$ECHO_DB" --json run "$T/bp-echo.json" >"$OUT/echo-run.out" 2>"$OUT/echo-run.err"
"$R" --db "$ECHO_DB" --json ls >"$OUT/echo-lsj.out" 2>&1
"$R" --db "$ECHO_DB" ls >"$OUT/echo-ls.out" 2>&1
EID=$(grep -o '"id": *"[0-9a-f]\{32\}"' "$OUT/echo-lsj.out" | head -1 | grep -o '[0-9a-f]\{32\}')
if [ -n "$EID" ]; then
  "$R" --db "$ECHO_DB" --json show "$EID" >"$OUT/echo-showj.out" 2>&1
  "$R" --db "$ECHO_DB" show "$EID" >"$OUT/echo-show.out" 2>&1
  if grep -q 'Authorization: <redacted>' "$OUT/echo-showj.out"; then ok "secrets-6.1 the echo reached the stored reason, scrubbed"
  else bad "secrets-6.1 the echo reached the stored reason, scrubbed"; head -c 600 "$OUT/echo-showj.out" | sed 's/^/    /'; fi
else bad "secrets-6.1 ls --json listed the echoed item"; head -5 "$OUT/echo-lsj.out" | sed 's/^/    /'; fi
sqlite3 "$ECHO_DB" "SELECT error FROM execution; SELECT reason FROM dlq_item" >"$OUT/echo-sql.out" 2>&1
grep -q 'echo-raw' "$OUT/echo-sql.out" || bad "secrets-6.2 read the error and the reason from the store"
clean "secrets-6.2 execution.error, dlq reason, ls, show (--json too) hold no token" "$OUT"/echo-*

# A store file (and its -wal, -shm) that others can read is made 0600 when opened.
PERM_DB=$T/perm.db
"$R" --db "$PERM_DB" -e 'assert(require("redrive").connect())' >/dev/null 2>&1
: >"$PERM_DB-wal"; : >"$PERM_DB-shm"
chmod 0644 "$PERM_DB" "$PERM_DB-wal" "$PERM_DB-shm"
"$R" --db "$PERM_DB" ls >/dev/null 2>"$OUT/perm.err" || bad "secrets-7.0 ls on the 0644 store: $(cat "$OUT/perm.err")"
modes=$(stat -c '%a' "$PERM_DB"; for f in "$PERM_DB-wal" "$PERM_DB-shm"; do [ -e "$f" ] && stat -c '%a' "$f"; done)
if [ -z "$(grep -v '^600$' <<<"$modes")" ]; then ok "secrets-7.1 a 0644 store (and -wal, -shm) is 0600 after open"
else bad "secrets-7.1 a 0644 store (and -wal, -shm) is 0600 after open: modes $(tr '\n' ' ' <<<"$modes")"; fi

# The REPL history: a typed token is never written to the history file --
# not a literal in `token = "..."`, not a literal that becomes a credential
# only when it is sent later in the session.
if [ -n "$RD_TMUX_WHY" ]; then
  for c in "8.1 the history was written" "8.2 no typed token in the history"; do
    skip=$((skip + 1)); echo "skip secrets-$c ($RD_TMUX_WHY)"
  done
else
  SOCK=rd-secrets-$$
  tmx() { tmux -L "$SOCK" "$@"; }
  HIST=$T/state/history
  TOK2=lit$RANDOM${RANDOM}Xy7later
  tmx new-session -d -s h -x 200 -y 50 \
    "env REDRIVE_HISTORY='$HIST' REDRIVE_DB='$T/repl.db' XDG_CONFIG_HOME='$T/config' '$R'; echo REPL-EXITED; sleep 30"
  screen() { tmx capture-pane -p -t h -S -200 2>/dev/null; }
  wait_for() { # wait_for FIXED-STRING: until the screen shows it (DEADLINE s at most)
    local end=$((SECONDS + DEADLINE))
    until screen | grep -qF -- "$1"; do [ $SECONDS -ge $end ] && return 1; sleep 0.05; done; }
  send() { tmx send-keys -t h -l -- "$1"; tmx send-keys -t h Enter; }
  wait_for "rd>" || bad "secrets-8.0 the REPL started"
  send "c = {token = \"$TOKEN\"}"
  send "saved = \"$TOK2\""
  send "r = rd.http.request{url = \"$S/ok\", headers = {[\"X-Api-Key\"] = saved}}"
  send 'print("sent-" .. r.status)'
  wait_for "sent-200" || bad "secrets-8.0 the request ran: $(screen | tail -5)"
  send '.quit'
  wait_for "REPL-EXITED" || bad "secrets-8.0 the REPL exited"
  if [ -s "$HIST" ] && grep -q 'sent-' "$HIST"; then ok "secrets-8.1 the history was written"
  else bad "secrets-8.1 the history was written"; fi
  if grep -a -q -e "$TOKEN" -e "$TOK2" "$HIST"; then bad "secrets-8.2 no typed token in the history"; sed 's/^/    /' "$HIST"
  else ok "secrets-8.2 no typed token in the history (a literal and one sent later)"; fi
fi

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

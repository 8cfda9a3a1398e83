#!/usr/bin/env bash
# The REPL, driven as a person would: in a terminal (tmux send-keys /
# capture-pane). Completion, multi-line input, pretty printing, history
# written, Ctrl-C during rd.sleep(3600) returns to the prompt.
#
# Every step waits for what it needs on the screen: the next prompt after an
# input, a line the input printed. DEADLINE only turns a hang into a failure;
# nothing here waits for a time. Without a usable terminal every case is
# skipped, counted, with the reason (tests/sh/terminal.sh probes once).
set -u
cd "$(dirname "$0")/../.."
R=${REDRIVE:-$PWD/build/redrive}
. tests/sh/terminal.sh
DEADLINE=${RD_TEST_DEADLINE:-120}
T=$(mktemp -d /tmp/rd-repl.XXXXXX)
SOCK=rd-repl-$$
tmx() { tmux -L "$SOCK" "$@"; }
trap 'tmx kill-server 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
no() { fail=$((fail + 1)); echo "FAIL $1"; shift; for l in "$@"; do echo "    $l"; done; }
if [ -n "$RD_TMUX_WHY" ]; then # each case below is counted, none is run
  ok() { skip=$((skip + 1)); echo "skip $1 ($RD_TMUX_WHY)"; }
  no() { ok "$1"; }
  tmx() { :; }
  DEADLINE=0
fi
S=r
screen() { tmx capture-pane -p -t "$S" -S - 2>/dev/null; }
# until PREDICATE...: until the command succeeds (DEADLINE s at most)
until_() {
  local end=$((SECONDS + DEADLINE))
  while ! "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.02; done
}
shows() { screen | grep -qF -- "$1"; }          # the screen contains the text
shows_line() { screen | grep -qxF -- "$1"; }    # ... as a whole line
# prompts: how many prompts (rd> and the continuation >>) the screen shows,
# the empty one at the bottom included (capture-pane drops its trailing space)
prompts() { screen | grep -cE '^(rd|>)>( |$)'; }
more_prompts_than() { [ "$(prompts)" -gt "$1" ]; }
expect() { # expect NAME TEXT: until the screen shows TEXT
  if until_ shows "$2"; then ok "$1"; else no "$1" "no '$2' on screen:" "$(screen | grep -v '^$' | tail -15)"; fi
}
# line TEXT: type TEXT and Enter, then wait for the next prompt: what TEXT
# printed is on the screen when line returns
line() {
  local n
  n=$(prompts)
  tmx send-keys -t "$S" -l -- "$1"; tmx send-keys -t "$S" Enter
  until_ more_prompts_than "$n" || echo "    (no prompt after '$1')"
}
# typed TEXT: type TEXT (no Enter) and wait until it shows after the prompt
typed() { tmx send-keys -t "$S" -l -- "$1"; until_ shows "rd> $1"; }

# the REPL's store: 12 incomplete executions (a refused port: no server needed)
"$R" --db "$T/db.db" -e '
  local src = assert(rd.connect())
  local sc = assert(src:scenario_create { name = "down", blueprint = { name = "down", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = "http://127.0.0.1:1/x", method = "get" } } } } })
  for _ = 1, 12 do assert(src:run(sc.id)) end' >/dev/null 2>&1
tmx new-session -d -s r -x 160 -y 50 \
  "env REDRIVE_HISTORY='$T/state/hist' REDRIVE_DB='$T/db.db' XDG_CONFIG_HOME='$T/config' '$R'; sleep 600"
expect "repl-1.1 banner" "redrive 0."
expect "repl-1.2 prompt" "rd>"

line '1 + 2'
shows_line '3' && ok "repl-2.1 expression printed without return" || no "repl-2.1 expression" "$(screen | tail -5)"
line 'local a = 5; return a * 2'
shows_line '10' && ok "repl-2.2 statements with return" || no "repl-2.2" "$(screen | tail -5)"

# completion: globals, nested fields, methods
tmx send-keys -t r -l 'rd.js'; tmx send-keys -t r Tab
expect "repl-3.1 completes a field" "rd> rd.json"
tmx send-keys -t r -l '.enc'; tmx send-keys -t r Tab
expect "repl-3.2 completes a nested field" "rd> rd.json.encode"
line '{x = 1}'
expect "repl-3.3 completed call runs" '"{\"x\":1}"'
tmx send-keys -t r -l 'coll'; tmx send-keys -t r Tab
expect "repl-3.4 completes a global" "rd> collectgarbage"
tmx send-keys -t r C-u
line 'src'
expect "repl-3.5 src is preloaded (lazily connected)" '<source local "local">'
tmx send-keys -t r -l 'src:incomplete_'; tmx send-keys -t r Tab
expect "repl-3.6 completes a method through the metatable" "rd> src:incomplete_item"
tmx send-keys -t r C-u

# multi-line input
line 'function twice(x)'
expect "repl-4.1 continuation prompt" ">>"
line '  return x * 2'
line 'end'
line 'twice(21)'
shows_line '42' && ok "repl-4.2 multi-line function defined and called" || no "repl-4.2" "$(screen | tail -8)"
line 'for i = 1, 2 do'
line '  print("row-" .. i)'
line 'end'
shows_line 'row-2' && ok "repl-4.3 multi-line loop ran" || no "repl-4.3" "$(screen | tail -8)"

# pretty printing
line 'nested = {a = {b = {1, 2, 3}}, s = "x"}'
line 'nested'
expect "repl-5.1 tables printed" '{ a = { b = { 1, 2, 3 } }, s = "x" }'
line 'c = {1}; c.self = c'
line 'c'
expect "repl-5.2 cycles marked" '{ 1, self = <cycle> }'
line '{token = "tok-SECRET", url = "http://h/x?token=tok-SECRET&a=1", auth = "Bearer tok-SECRET"}'
expect "repl-5.3 secrets redacted" 'url = "http://h/x?token=<redacted>&a=1"'
screen | grep -v '^rd>' | grep -q 'tok-SECRET' && no "repl-5.4 no token printed" "$(screen | grep tok-SECRET)" || ok "repl-5.4 no token printed"
line 'big = {}; for i = 1, 100 do big[i] = i end'
line 'big'
expect "repl-5.5 long tables cut" "(60 more)"
line 'error("oops")'
expect "repl-5.6 errors shown with position" "stdin:1: oops"

# Ctrl-C cancels the running call, not the REPL. The input prints a line
# first (built at run time, so the echoed input does not match it): the call
# is running when that line shows.
n=$(prompts)
tmx send-keys -t r -l 'print("sleep" .. "ing"); rd.sleep(3600)'; tmx send-keys -t r Enter
until_ shows_line "sleeping"
tmx send-keys -t r C-c
if until_ more_prompts_than "$n" && shows "interrupted"; then ok "repl-6.1 Ctrl-C interrupts rd.sleep(3600)"
else no "repl-6.1 Ctrl-C interrupts rd.sleep(3600)" "$(screen | tail -5)"; fi
line '6 * 7 + 100'
shows_line '142' && ok "repl-6.3 REPL still works after Ctrl-C" || no "repl-6.3" "$(screen | tail -5)"
n=$(prompts)
tmx send-keys -t r -l 'print("bu" .. "sy"); while true do end'; tmx send-keys -t r Enter
until_ shows_line "busy"
tmx send-keys -t r C-c
until_ more_prompts_than "$n"
line '"alive"'
shows_line '"alive"' && ok "repl-6.4 Ctrl-C stops a busy loop" || no "repl-6.4" "$(screen | tail -5)"
typed 'this line is dropped'
n=$(prompts)
tmx send-keys -t r C-c
until_ more_prompts_than "$n"
line '"after clear"'
shows_line '"after clear"' && ok "repl-6.5 Ctrl-C at the prompt clears the line" || no "repl-6.5" "$(screen | tail -5)"
screen | grep -q 'attempt to call\|this line is dropped.*error' && no "repl-6.6 dropped line not run" || ok "repl-6.6 dropped line not run"

line '.help'
expect "repl-7.1 .help lists commands" ".quit            leave"
expect "repl-7.2 .help lists the API" "src:incomplete{"

# a listing typed at the prompt shows its first rows, not <function>
items() { screen | grep -c '^  <incomplete '; }
n=$(items)
line 'src:incomplete{}'
if shows "… more (the iterator has more rows)" && [ "$(items)" -eq $((n + 10)) ]; then
  ok "repl-10.1 an iterator shows its first 10 rows, then '… more'"
else no "repl-10.1 iterator rows" "$(screen | tail -14)"; fi
# the one-liner of .help, typed as .help showed it (above on the screen)
oneliner=$(screen | sed -n 's/^  \(items = {} for .*\)$/\1/p' | head -1)
n=$(items)
line "$oneliner"
[ -n "$oneliner" ] && [ "$(items)" -eq $((n + 12)) ] && ok "repl-10.2 the .help one-liner runs as shown" \
  || no "repl-10.2 the .help one-liner ($oneliner)" "$(screen | tail -16)"

tmx send-keys -t r -l '.quit'; tmx send-keys -t r Enter
until_ test -s "$T/state/hist"
H=$(printf '%b' "$(sed 's/\\0\([0-7][0-7]\)/\\00\1/g' "$T/state/hist" 2>/dev/null)")
[[ $H == *"1 + 2"* ]] && ok "repl-8.1 history written" || no "repl-8.1 history" "$H"
[[ $H == *"function twice(x)"$'\n'"  return x * 2"* ]] && ok "repl-8.2 multi-line input saved whole" || no "repl-8.2" "$H"
[[ $H != *"this line is dropped"* ]] && ok "repl-8.3 incomplete input not saved" || no "repl-8.3" "$H"

# history is read back by the next session (session r stays until the
# server is killed: killing the server's last session races with starting r2)
S=r2
tmx new-session -d -s r2 -x 160 -y 50 \
  "env REDRIVE_HISTORY='$T/state/hist' REDRIVE_DB='$T/db.db' XDG_CONFIG_HOME='$T/config' '$R'; sleep 600"
expect "repl-9.1 second session" "rd>"
tmx send-keys -t r2 Up
expect "repl-9.2 Up recalls the last input" "rd> .quit"

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

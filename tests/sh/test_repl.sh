#!/usr/bin/env bash
# The REPL, driven as a person would: in a terminal (tmux send-keys /
# capture-pane). Completion, multi-line input, pretty printing, history
# written, Ctrl-C during rd.sleep(30) returns to the prompt.
set -u
cd "$(dirname "$0")/../.."
R=${REDRIVE:-$PWD/build/redrive}
if ! command -v tmux >/dev/null; then echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
T=$(mktemp -d /tmp/rd-repl.XXXXXX)
SOCK=rd-repl-$$
tmx() { tmux -L "$SOCK" "$@"; }
trap 'tmx kill-server 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
no() { fail=$((fail + 1)); echo "FAIL $1"; shift; for l in "$@"; do echo "    $l"; done; }
S=r
screen() { tmx capture-pane -p -t "$S" -S -200 2>/dev/null; }
# wait_for PATTERN [seconds]: until the screen contains the fixed string
wait_for() {
  local i n=$(( ${2:-3} * 20 ))
  for ((i = 0; i < n; i++)); do screen | grep -qF -- "$1" && return 0; sleep 0.05; done
  return 1
}
expect() { # expect NAME PATTERN [seconds]
  if wait_for "$2" "${3:-3}"; then ok "$1"; else no "$1" "no '$2' on screen:" "$(screen | grep -v '^$' | tail -15)"; fi
}
# last_prompt_count: how many prompts are on the screen
prompts() { screen | grep -c '^rd> '; }
line() { tmx send-keys -t r -l -- "$1"; tmx send-keys -t r Enter; }

tmx new-session -d -s r -x 160 -y 50 \
  "env REDRIVE_HISTORY='$T/state/hist' REDRIVE_DB='$T/db.db' XDG_CONFIG_HOME='$T/config' '$R'; sleep 5"
expect "repl-1.1 banner" "redrive 0."
expect "repl-1.2 prompt" "rd>"

line '1 + 2'
screen | grep -qx '3' && ok "repl-2.1 expression printed without return" || no "repl-2.1 expression" "$(screen | tail -5)"
line 'local a = 5; return a * 2'
wait_for "rd> local a" && sleep 0.2
screen | grep -qx '10' && ok "repl-2.2 statements with return" || no "repl-2.2" "$(screen | tail -5)"

# completion: globals, nested fields, methods
tmx send-keys -t r -l 'rd.js'; tmx send-keys -t r Tab
expect "repl-3.1 completes a field" "rd> rd.json"
tmx send-keys -t r -l '.enc'; tmx send-keys -t r Tab
expect "repl-3.2 completes a nested field" "rd> rd.json.encode"
tmx send-keys -t r -l '{x = 1}'; tmx send-keys -t r Enter
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
wait_for "rd> twice(21)" && sleep 0.2
screen | grep -qx '42' && ok "repl-4.2 multi-line function defined and called" || no "repl-4.2" "$(screen | tail -8)"
line 'for i = 1, 2 do'
line '  print("row-" .. i)'
line 'end'
expect "repl-4.3 multi-line loop ran" "row-2"

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

# Ctrl-C cancels the running call, not the REPL
line 'rd.sleep(30)'
sleep 0.4
t0=$(date +%s%N)
tmx send-keys -t r C-c
expect "repl-6.1 Ctrl-C interrupts rd.sleep(30)" "interrupted" 2
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -lt 2000 ] && ok "repl-6.2 back at once" || no "repl-6.2 slow"
line '6 * 7 + 100'
expect "repl-6.3 REPL still works after Ctrl-C" "142"
line 'while true do end'
sleep 0.3
tmx send-keys -t r C-c
sleep 0.3
line '"alive"'
expect "repl-6.4 Ctrl-C stops a busy loop" '"alive"'
tmx send-keys -t r -l 'this line is dropped'
tmx send-keys -t r C-c
sleep 0.2
line '"after clear"'
expect "repl-6.5 Ctrl-C at the prompt clears the line" '"after clear"'
screen | grep -q 'attempt to call\|this line is dropped.*error' && no "repl-6.6 dropped line not run" || ok "repl-6.6 dropped line not run"

line '.help'
expect "repl-7.1 .help lists commands" ".quit            leave"
expect "repl-7.2 .help lists the API" "src:incomplete{"
line '.quit'
for _ in $(seq 40); do [ -s "$T/state/hist" ] && break; sleep 0.05; done
H=$(printf '%b' "$(sed 's/\\0\([0-7][0-7]\)/\\00\1/g' "$T/state/hist" 2>/dev/null)")
[[ $H == *"1 + 2"* ]] && ok "repl-8.1 history written" || no "repl-8.1 history" "$H"
[[ $H == *"function twice(x)"$'\n'"  return x * 2"* ]] && ok "repl-8.2 multi-line input saved whole" || no "repl-8.2" "$H"
[[ $H != *"this line is dropped"* ]] && ok "repl-8.3 incomplete input not saved" || no "repl-8.3" "$H"

# history is read back by the next session (session r stays until its pane's
# sleep ends: killing the server's last session races with starting r2)
S=r2
tmx new-session -d -s r2 -x 160 -y 50 \
  "env REDRIVE_HISTORY='$T/state/hist' REDRIVE_DB='$T/db.db' XDG_CONFIG_HOME='$T/config' '$R'; sleep 5"
expect "repl-9.1 second session" "rd>" 10
tmx send-keys -t r2 Up
expect "repl-9.2 Up recalls the last input" "rd> .quit"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# Cancellation at the command line: exit 130 and "redrive: interrupted" for a
# real cancellation (a signal, rd.canceled), never for a script error that
# merely says "interrupted" or "canceled"; a second SIGINT or SIGTERM forces
# the exit of a process that ignores the first.
set -u
cd "$(dirname "$0")/../.."
R=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d /tmp/rd-sig.XXXXXX)
trap 'rm -rf "$T"' EXIT
export REDRIVE_DB=$T/default.db XDG_CONFIG_HOME=$T/config
unset REDRIVE_PROFILE REDRIVE_CONFIG
. tests/sh/cli_lib.sh

# The scripts print progress lines into a FIFO; the test reads them (a
# blocking read: it waits for the event itself, never for a time).
# start CMD...: run CMD in the background, stdout into fd 3, stderr in $T/err.
start() {
  rm -f "$T/fifo"; mkfifo "$T/fifo"
  "$@" >"$T/fifo" 2>"$T/err" &
  pid=$!
  exec 3<"$T/fifo"
}
# line TEXT: the next line the script prints is TEXT (a bound for a broken
# build, not a synchronisation: RD_TEST_DEADLINE, 120 s by default).
line() {
  local l
  read -r -t "${RD_TEST_DEADLINE:-120}" l <&3 && [ "$l" = "$1" ] && return 0
  echo "    (read '$l', expected '$1')"; return 1
}
# finish: wait for the script's end (end of file on its stdout), then for its
# exit status in rc; after RD_TEST_DEADLINE without it, kill -9 (rc 137): a
# bound for a broken build, not a synchronisation.
finish() {
  local l st
  while :; do read -r -t "${RD_TEST_DEADLINE:-120}" l <&3; st=$?; [ $st -ne 0 ] && break; done
  [ $st -gt 128 ] && kill -9 $pid 2>/dev/null
  wait $pid; rc=$?
  exec 3<&-
}

# ---- what counts as a cancellation
check "sig-1.1 a script's own 'interrupted' error exits 1" 1 "$R" -e 'error("the job was interrupted", 0)'
has "sig-1.2 ... with its message" "$ERR" "redrive: the job was interrupted"
check "sig-1.3 a script's own 'canceled' error exits 1" 1 "$R" --json -e 'error("payment was canceled", 0)'
has "sig-1.4 ... reported as a script error" "$(jq -r '.code + " " + .error' <<<"$OUT" 2>&1)" "script payment was canceled"
check "sig-1.5 error(rd.canceled) exits 130" 130 "$R" -e 'error(rd.canceled)'
has "sig-1.6 ... with 'redrive: interrupted'" "$ERR" "redrive: interrupted"
check "sig-1.7 a task:cancel() passed on exits 130" 130 "$R" -e '
  local t = rd.spawn(function() rd.sleep(30) end)
  coroutine.yield()
  t:cancel()
  local _, err = t:wait()
  error(err)'

# ---- signals
for sig in INT TERM; do
  start "$R" -e 'print("started"); io.stdout:flush(); rd.sleep(30)'
  line started
  kill -$sig $pid; finish
  [ $rc -eq 130 ] && ok "sig-2.1 SIG$sig during a wait exits 130" || no "sig-2.1 SIG$sig" "exit $rc" "$(cat "$T/err")"
  has "sig-2.2 SIG$sig says interrupted" "$(cat "$T/err")" "redrive: interrupted"
done

# A script that swallows every cancellation and spins on: only the forced
# exit of the second signal can end it. (It prints inside the pcall, so a
# signal sent once a line is read always lands there.)
cat >"$T/stubborn.lua" <<'EOF'
local n = 0
while true do
  pcall(function()
    n = n + 1
    print(n == 1 and "started" or "ignored the first"); io.stdout:flush()
    while true do end
  end)
end
EOF
for sig in INT TERM; do
  start "$R" "$T/stubborn.lua"
  line started
  kill -$sig $pid
  if line "ignored the first"; then ok "sig-3.1 SIG$sig: the script caught the first"
  else no "sig-3.1 SIG$sig: the first signal stops the busy loop" "$(cat "$T/err")"; fi
  kill -$sig $pid; finish
  [ $rc -eq 130 ] && ok "sig-3.2 a second SIG$sig forces the exit (130)" ||
    no "sig-3.2 a second SIG$sig forces the exit" "exit $rc (137: still running after 10 s, killed)"
  has "sig-3.3 ... and says so" "$(cat "$T/err")" "twice, exiting"
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

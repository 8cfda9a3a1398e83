#!/usr/bin/env bash
# The sandbox from the outside (issue 13, finding 1): a SIGTERM while a
# lua:Run module spins inside one C call ends redrive through its normal
# exit path (130, "interrupted") and its worker process with it; lua:Run
# works, and is bounded, under stock lua5.4 with redrive.so.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
R=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d /tmp/rd-sandbox.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$T"' EXIT
export REDRIVE_DB=$T/default.db XDG_CONFIG_HOME=$T/config
unset REDRIVE_PROFILE REDRIVE_CONFIG
. tests/sh/cli_lib.sh

# state PID: the process's state letter (R running, S sleeping...), empty
# when it is gone or a zombie
state() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ "$s" = Z ] || echo "$s"; }

# ---- SIGTERM while lua:Run spins in C: only the signal can end it (the time
# limit is 10 minutes), and it must, promptly
cat >"$T/spin.lua" <<'EOF'
local engine = require "redrive.engine"
print("started"); io.stdout:flush()
local out = engine.run { name = "spin", flow = {
  { id = 1, module = "lua:Run", mapper = { code = "table.move({}, 1, 1e12, 1, {}) return 1" } } } }
print("finished", out.status)
EOF
rm -f "$T/fifo"; mkfifo "$T/fifo"
REDRIVE_SANDBOX_TIMEOUT=600 "$R" "$T/spin.lua" >"$T/fifo" 2>"$T/err" &
pid=$!
exec 3<"$T/fifo"
read -r -t "${RD_TEST_DEADLINE:-120}" l <&3 # a bound on a hang
[ "$l" = started ] && ok "sbx-1.1 the script started" || no "sbx-1.1 started" "read '$l'"
# the worker: a child of redrive, running (not waiting for a request). The
# deadline bounds a broken build, it is not a synchronisation.
worker=
end=$((SECONDS + ${RD_TEST_DEADLINE:-120}))
while [ $SECONDS -lt $end ]; do
  for c in $(cat /proc/$pid/task/*/children 2>/dev/null); do [ "$(state "$c")" = R ] && worker=$c; done
  [ -n "$worker" ] && break
  sleep 0.05
done
[ -n "$worker" ] && ok "sbx-1.2 lua:Run spins in a worker process" || no "sbx-1.2 no running worker under $pid"
kill -TERM $pid
# the end of its output, then its status; RD_TEST_DEADLINE without them is a hang
while read -r -t "${RD_TEST_DEADLINE:-120}" l <&3; do :; done; st=$?
[ $st -gt 128 ] && kill -9 $pid 2>/dev/null
wait $pid; rc=$?; pid=
exec 3<&-
[ $rc -eq 130 ] && ok "sbx-1.3 SIGTERM: exit 130" || no "sbx-1.3 SIGTERM" "exit $rc" "$(cat "$T/err")"
has "sbx-1.4 ... reported as an interruption" "$(cat "$T/err")" "redrive: interrupted"
if [ -n "$worker" ]; then
  end=$((SECONDS + ${RD_TEST_DEADLINE:-120}))
  while [ $SECONDS -lt $end ] && [ -n "$(state "$worker")" ]; do sleep 0.05; done
  [ -z "$(state "$worker")" ] && ok "sbx-1.5 the worker ended with it" || no "sbx-1.5 worker $worker still there"
fi

# ---- stock lua5.4 with redrive.so: the worker is a fork of the host
if [ "${SAN:-}" = 1 ]; then
  echo "skip sbx-2 (stock lua5.4 cannot load an ASan module)"
  echo "$pass passed, $fail failed, 1 skipped"; [ $fail -eq 0 ]; exit
fi
OUT=$(cd "$ROOT" && REDRIVE_SANDBOX_INSTRUCTIONS=5000000 lua5.4 -e '
  package.cpath = "'"${RD_BUILD:-$ROOT/build}"'/?.so;" .. package.cpath
  local rd = require "redrive"
  local engine = require "redrive.engine"
  local out = engine.run({ name = "t", flow = { { id = 1, module = "lua:Run",
    mapper = { code = "return bundle[0].n * 2 .. (\"x\"):rep(2)" } } } }, { input = { n = 21 } })
  print(out.status, out.run_data["1"].output)
  out = engine.run { name = "t", flow = { { id = 1, module = "lua:Run", mapper = { code = "while true do end" } } } }
  print(out.status, out.error.code, out.error.message)' 2>&1)
has "sbx-2.1 lua:Run under stock lua5.4" "$OUT" "success	42xx"
has "sbx-2.2 ... bounded there too" "$OUT" "error	limit	lua:Run (module 1): stopped after 5000000 instructions"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

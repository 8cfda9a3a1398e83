# Shared set-up of the shell tests: source it with the temp-dir prefix,
#   . "$(dirname "$0")/lib.sh" rd-crash
# It moves to the repository root and defines REDRIVE, T (a temp dir removed
# on exit), RD_TEST_SERVER (started here when tests/run did not), the
# counters, ok NAME / bad NAME [FILE] and wait_for DESC CMD... (until CMD
# succeeds: a poll of an event, bounded).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REDRIVE=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d "/tmp/${1:-rd-test}.XXXXXX")
SP=
cleanup() { [ -n "$SP" ] && kill "$SP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
if [ -z "${RD_TEST_SERVER:-}" ]; then
  "${RD_BUILD:-build}/testserver" --port-file "$T/port" >/dev/null & SP=$!
  for _ in $(seq 2400); do [ -s "$T/port" ] && break; sleep 0.05; done # <= 120 s: a hang bound
  RD_TEST_SERVER="http://127.0.0.1:$(cat "$T/port")"
fi
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/    /' "$2" | tail -15; }
# wait_for DESC CMD...: until CMD succeeds (it reads a file or asks the
# server: an event), at most 120 s; a hang is a failure, never a pass
wait_for() {
  local desc=$1; shift
  for _ in $(seq 2400); do "$@" && return 0; sleep 0.05; done
  echo "timed out waiting for $desc"; return 1
}

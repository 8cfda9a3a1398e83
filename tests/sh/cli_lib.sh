# Assertions shared by the command-line tests (test_cli.sh, test_rules.sh):
# source it after setting T (a temp dir). Counters pass/fail; each assertion
# prints "ok   NAME" or "FAIL NAME" with details.
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
no() { fail=$((fail + 1)); echo "FAIL $1"; shift; for l in "$@"; do echo "    $l"; done; }
# check NAME WANT_RC CMD... : runs CMD, keeps stdout in $OUT and stderr in $ERR
check() {
  local name=$1 want=$2; shift 2
  OUT=$("$@" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
  if [ "$RC" -eq "$want" ]; then ok "$name"; else no "$name" "exit $RC, want $want" "stdout: $OUT" "stderr: $ERR"; fi
}
# has NAME HAYSTACK NEEDLE / lacks NAME HAYSTACK NEEDLE
has() { if [[ $2 == *"$3"* ]]; then ok "$1"; else no "$1" "no '$3' in:" "$2"; fi; }
lacks() { if [[ $2 != *"$3"* ]]; then ok "$1"; else no "$1" "unexpected '$3' in:" "$2"; fi; }
# skip_all WHY: from here on no case runs; each is counted as skipped, with
# WHY (a tool the file needs is missing)
skip_all() {
  SKIP_WHY=$1
  ok() { skip=$((skip + 1)); echo "skip $1 ($SKIP_WHY)"; }
  no() { ok "$1"; }
  check() { ok "$1"; }
}

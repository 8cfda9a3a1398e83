#!/usr/bin/env bash
# The shipped examples as a user meets them (issue 15).
#   examples/scenarios/*.json are the demo's scenarios: their URLs say
#   http://127.0.0.1:PORT, which `make demo` (examples/demo.sh) fills with its
#   loopback server's port. `redrive run` refuses them as they are, naming the
#   placeholder, before it opens any store; with PORT filled they run.
set -u
. "$(dirname "$0")/lib.sh" rd-examples
. tests/sh/cli_lib.sh
R=$REDRIVE
unset REDRIVE_DB REDRIVE_PROFILE REDRIVE_CONFIG
export XDG_CONFIG_HOME=$T/config XDG_DATA_HOME=$T/data
DEFAULT_DB=$T/data/redrive/redrive.db

# ---- redrive run examples/scenarios/*.json, as they are
for f in examples/scenarios/*.json; do
  n=$(basename "$f" .json)
  check "ex-1.1 run $n as shipped: refused" 1 "$R" run "$f"
  has "ex-1.2 $n: names the file" "$ERR" "$f: invalid blueprint"
  has "ex-1.3 $n: names module and field" "$ERR" "mapper.url: port \"PORT\" of 127.0.0.1:PORT is not a number"
  has "ex-1.4 $n: says what to do" "$ERR" "a placeholder to fill in (examples/demo.sh fills PORT)"
done
[ ! -e "$DEFAULT_DB" ] && ok "ex-1.5 nothing written to the default store" || no "ex-1.5 default store" "$(ls -l "$DEFAULT_DB")"
check "ex-1.6 run several files at once: a usage error" 2 "$R" run examples/scenarios/*.json
[ ! -e "$DEFAULT_DB" ] && ok "ex-1.7 still nothing in the default store" || no "ex-1.7 default store" "$(ls -l "$DEFAULT_DB")"

# ---- with PORT filled (as examples/demo.sh does) they run, on the store named
port=${RD_TEST_SERVER##*:}
mkdir -p "$T/sc"
for f in examples/scenarios/*.json; do sed "s/127\.0\.0\.1:PORT/127.0.0.1:$port/g" "$f" >"$T/sc/$(basename "$f")"; done
check "ex-2.1 a filled scenario runs" 0 "$R" --db "$T/filled.db" --json run "$T/sc/order-receipts.json" --input '{"order_id": 3}'
has "ex-2.2 ... and succeeds" "$(jq -r .status <<<"$OUT" 2>&1)" "success"
check "ex-2.3 order 7 fails (the demo's orders API fails multiples of 7)" 1 "$R" --db "$T/filled.db" --json \
  run "$T/sc/order-receipts.json" --input '{"order_id": 7}'
has "ex-2.4 ... kept as an incomplete execution" "$(jq -r '.dlq_id | length' <<<"$OUT" 2>&1)" "32"
[ ! -e "$DEFAULT_DB" ] && ok "ex-2.5 the default store untouched" || no "ex-2.5 default store" "$(ls -l "$DEFAULT_DB")"

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

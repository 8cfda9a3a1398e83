#!/usr/bin/env bash
# redrive rules: --check, --once (real and dry run), audit log contents, a
# raising rule reported with file:line while the others run, sandbox, budget,
# --watch reloading an edited rule, the example rules.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
R=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d /tmp/rd-rules.XXXXXX)
WPID=
trap '[ -n "$WPID" ] && kill $WPID 2>/dev/null; rm -rf "$T"' EXIT
export REDRIVE_DB=$T/r.db XDG_CONFIG_HOME=$T/config
unset REDRIVE_PROFILE REDRIVE_CONFIG
. tests/sh/cli_lib.sh

# ---- --check needs no source
check "rules-1.1 --check the example rules" 0 "$R" rules examples/rules --check
has "rules-1.2 each file listed" "$OUT" "ok    examples/rules/moved-endpoint.lua (rule moved-endpoint)"
mkdir -p "$T/bad"
cp examples/rules/retry-timeouts.lua "$T/bad/"
printf 'return {\n  name = "broken",\n  match = function(item) return item.reason:find( end,\n}\n' >"$T/bad/broken.lua"
printf 'return { name = "typo", match = function() end, action = function() end, evry = 5 }\n' >"$T/bad/typo.lua"
printf 'return 42\n' >"$T/bad/notable.lua"
check "rules-1.3 --check refuses a syntax error" 1 env REDRIVE_DB=/proc/none/x.db "$R" rules "$T/bad" --check
has "rules-1.4 syntax error named with file:line" "$ERR" "refusing $T/bad/broken.lua: syntax error: $T/bad/broken.lua:3:"
has "rules-1.5 unknown field" "$ERR" "unknown field 'evry'"
has "rules-1.6 not a table" "$ERR" "must return a table"
has "rules-1.7 good file still ok" "$OUT" "ok    $T/bad/retry-timeouts.lua"
check "rules-1.8 missing dir is a usage error" 2 "$R" rules "$T/none" --check
check "rules-1.9 --once and --watch" 2 "$R" rules "$T/bad" --once --watch

if [ -z "${RD_TEST_SERVER:-}" ]; then
  echo "$pass passed, $fail failed, 1 skipped"; exit $((fail > 0))
fi

# ---- a queue with real failures: 2 timeouts, 2 moved webhooks, 1 server error
cat >"$T/fetch.json" <<EOF
{"name": "fetch", "flow": [
  {"id": 1, "module": "gateway:CustomWebHook", "mapper": {}},
  {"id": 2, "module": "http:ActionSendData",
   "mapper": {"url": "$RD_TEST_SERVER/{{1.path}}", "method": "get", "timeout": 0.2}}]}
EOF
cat >"$T/notify.json" <<EOF
{"name": "notify", "flow": [
  {"id": 1, "module": "gateway:CustomWebHook", "mapper": {}},
  {"id": 2, "module": "http:ActionSendData",
   "mapper": {"url": "$RD_TEST_SERVER/v1/webhook", "method": "post", "bodyType": "raw",
              "contentType": "application/json", "data": "{\"n\": {{1.n}}}"}}]}
EOF
for p in delay/1000 delay/1000 status/500; do "$R" run "$T/fetch.json" --input "{\"path\": \"$p\"}" >/dev/null 2>&1; done
for n in 1 2; do "$R" run "$T/notify.json" --input "{\"n\": $n}" >/dev/null 2>&1; done
n=$("$R" ls --json | wc -l)
[ "$n" -eq 5 ] && ok "rules-2.0 five incomplete executions" || no "rules-2.0 queue" "$n items"

mkdir -p "$T/rules"
cat >"$T/rules/timeouts.lua" <<'EOF'
return {
  name = "retry-timeouts", reason = "timed out",
  match = function(item) return item.attempts < 3 end,
  action = function(item, ctx) ctx.log("retrying"); ctx.retry() end,
}
EOF
cp examples/rules/moved-endpoint.lua "$T/rules/"
cat >"$T/rules/raiser.lua" <<'EOF'
return {
  name = "raiser",
  match = function(item) return item.reason:find("500") end,
  action = function(item, ctx)
    local t = nil
    return t.boom          -- line 6
  end,
}
EOF
cat >"$T/rules/notifier.lua" <<EOF
return {
  name = "notifier", reason = "HTTP 500",
  match = function(item) return true end,
  action = function(item, ctx)
    ctx.notify { url = "$RD_TEST_SERVER/record?key=rules-notify-$$&token=SECRET123", json = { id = item.id } }
  end,
}
EOF

# ---- dry run: every action that would be taken is audited, nothing changes
before=$("$R" ls --json | jq -c '[.id, .attempts]' | sort)
check "rules-3.1 --once --dry-run exits 1 (a rule raised)" 1 "$R" rules "$T/rules" --once --dry-run --audit "$T/dry.jsonl"
after=$("$R" ls --json | jq -c '[.id, .attempts]' | sort)
[ "$before" = "$after" ] && ok "rules-3.2 dry run changed nothing" || no "rules-3.2 dry run changed the queue"
has "rules-3.3 dry-run summary" "$OUT" "rule retry-timeouts [local] (dry run): 2 matched, 2 action(s), 0 error(s)"
jq -e . "$T/dry.jsonl" >/dev/null && ok "rules-3.4 audit is JSON lines" || no "rules-3.4 audit JSON" "$(cat "$T/dry.jsonl")"
c=$(jq -r 'select(.action == "retry" and .result == "dry-run" and .dry_run == true) | .item' "$T/dry.jsonl" | wc -l)
[ "$c" -eq 4 ] && ok "rules-3.5 four retries would be taken" || no "rules-3.5 dry retries" "$c" "$(cat "$T/dry.jsonl")"
c=$(jq -c 'select(.action == "patch" and .result == "dry-run")' "$T/dry.jsonl" | grep -c moved-endpoint)
[ "$c" -eq 2 ] && ok "rules-3.6 two patches would be made" || no "rules-3.6 dry patches" "$c"
c=$(jq -r 'select(.action == "notify" and .result == "dry-run") | .url' "$T/dry.jsonl")
[ "$c" = "$RD_TEST_SERVER/record" ] && ok "rules-3.7 notify URL audited without its query" || no "rules-3.7" "$c"
cnt=$(curl -s "$RD_TEST_SERVER/count?key=rules-notify-$$" 2>/dev/null || echo "?")
lacks "rules-3.8 dry run sent no notification" "$cnt" '"count":1'

# ---- the real pass
check "rules-4.1 --once exits 1 when a rule raised" 1 "$R" rules "$T/rules" --once --audit "$T/audit.jsonl" --json
has "rules-4.2 raising rule reported with file:line" "$ERR" "rules: rule 'raiser' ($T/rules/raiser.lua): action on"
has "rules-4.3 ... at the line" "$ERR" "$T/rules/raiser.lua:6: attempt to index a nil value"
has "rules-4.4 the others ran: moved-endpoint" "$(jq -c 'select(.rule == "moved-endpoint") | [.matched, .actions, .errors]' <<<"$OUT")" "[2,4,0]"
has "rules-4.5 the others ran: timeouts" "$(jq -c 'select(.rule == "retry-timeouts") | [.matched, .actions]' <<<"$OUT")" "[2,2]"
has "rules-4.6 raiser summary" "$(jq -c 'select(.rule == "raiser") | [.matched, .errors]' <<<"$OUT")" "[1,1]"
left=$("$R" ls --json | jq -r .reason)
lacks "rules-4.7 moved webhooks fixed and resolved" "$left" "v1/webhook"
c=$(jq -r 'select(.rule == "moved-endpoint" and .action == "retry") | .result' "$T/audit.jsonl" | sort -u)
[ "$c" = "success" ] && ok "rules-4.8 audited retries succeeded" || no "rules-4.8 retry results" "$c"
c=$(jq -r 'select(.rule == "moved-endpoint" and .action == "retry") | .execution' "$T/audit.jsonl" | grep -c .)
[ "$c" -eq 2 ] && ok "rules-4.9 audit names the new executions" || no "rules-4.9" "$c"
c=$(jq -r 'select(.rule == "retry-timeouts" and .action == "retry") | .result' "$T/audit.jsonl" | sort -u)
[ "$c" = "error" ] && ok "rules-4.10 timeouts still failing are audited as such" || no "rules-4.10" "$c"
for k in time rule file source item action result; do
  c=$(jq -r "select(.action == \"retry\") | .$k // empty" "$T/audit.jsonl" | grep -c .)
  [ "$c" -ge 4 ] || no "rules-4.11 audit field $k" "$c"
done
ok "rules-4.11 audit records carry time, rule, file, source, item, action, result"
has "rules-4.12 raiser error audited" "$(jq -r 'select(.rule == "raiser") | .error' "$T/audit.jsonl")" "raiser.lua:6:"
lacks "rules-4.13 no token in the audit log" "$(cat "$T/audit.jsonl")" "SECRET123"
lacks "rules-4.14 no token on stderr" "$ERR" "SECRET123"
has "rules-4.15 notification sent" "$(curl -s "$RD_TEST_SERVER/records?key=rules-notify-$$" | jq -r '.bodies[0]')" '"id"'

# ---- sandbox and budget
mkdir -p "$T/sb"
printf 'return { name = "g", match = function(item) leak = 1 return false end, action = function() end }\n' >"$T/sb/global.lua"
printf 'return { name = "u", match = function(item) return undefined_thing end, action = function() end }\n' >"$T/sb/undef.lua"
printf 'return { name = "loop", match = function(item)\n  while true do pcall(function() while true do end end) end\nend, action = function() end }\n' >"$T/sb/loop.lua"
printf 'return { name = "io", match = function(item) return io.open("/etc/passwd") end, action = function() end }\n' >"$T/sb/io.lua"
printf 'return { name = "fine", match = function(item) return false end, action = function() end }\n' >"$T/sb/z.lua"
check "rules-5.1 sandbox violations are rule errors" 1 env REDRIVE_RULE_BUDGET=200000 "$R" rules "$T/sb" --once
has "rules-5.2 global write refused" "$ERR" "global.lua:1: assignment to global 'leak'"
has "rules-5.3 undefined global refused" "$ERR" "undef.lua:1: undefined global 'undefined_thing'"
has "rules-5.4 runaway rule stopped despite pcall" "$ERR" "rule 'loop' exceeded its budget"
has "rules-5.5 no io in rules" "$ERR" "undefined global 'io'"
has "rules-5.6 the fine rule still ran" "$OUT" "rule fine [local]: 0 matched"

# ---- --watch: runs on an interval and reloads an edited rule
mkdir -p "$T/w"
cat >"$T/w/r.lua" <<'EOF'
return { name = "w1", every = 0.2, match = function(item) return false end, action = function() end }
EOF
"$R" rules "$T/w" --watch --poll 0.1 >"$T/w.out" 2>"$T/w.err" &
WPID=$!
for _ in $(seq 40); do [ "$(grep -c 'rule w1' "$T/w.out")" -ge 2 ] && break; sleep 0.1; done
c=$(grep -c "rule w1" "$T/w.out")
[ "$c" -ge 2 ] && ok "rules-6.1 --watch repeats a rule on its interval" || no "rules-6.1" "$(cat "$T/w.out" "$T/w.err")"
cat >"$T/w/r.lua" <<'EOF'
return { name = "w2", every = 0.2, match = function(item) return true end,
         action = function(item, ctx) ctx.log("seen") end }
EOF
for _ in $(seq 40); do grep -q "rule w2" "$T/w.out" && break; sleep 0.1; done
has "rules-6.2 edited rule reloaded" "$(cat "$T/w.out")" "reloaded $T/w/r.lua (rule w2)"
has "rules-6.3 new version runs" "$(cat "$T/w.out")" "rule w2 [local]"
echo 'return {' >"$T/w/r.lua"
for _ in $(seq 40); do grep -q "refusing" "$T/w.err" && break; sleep 0.1; done
has "rules-6.4 broken edit refused, old version kept" "$(cat "$T/w.err")" "(the previous version keeps running)"
n1=$(grep -c "rule w2" "$T/w.out"); sleep 0.5; n2=$(grep -c "rule w2" "$T/w.out")
[ "$n2" -gt "$n1" ] && ok "rules-6.5 old version still running" || no "rules-6.5" "$n1 -> $n2"
kill -INT $WPID; wait $WPID; rc=$?; WPID=
[ $rc -eq 130 ] && ok "rules-6.6 --watch stops on SIGINT with 130" || no "rules-6.6" "exit $rc"

# ---- the example rules run for real (dry) against this queue
check "rules-7.1 example rules --once --dry-run" 0 "$R" rules examples/rules --once --dry-run
has "rules-7.2 example summaries" "$OUT" "rule delete-noise [local] (dry run)"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

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
# (/stall never answers: the 0.2 s module timeout always fires, however slow the machine)
for p in stall stall status/500; do "$R" run "$T/fetch.json" --input "{\"path\": \"$p\"}" >/dev/null 2>&1; done
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
check "rules-5.1 sandbox violations are rule errors" 1 env REDRIVE_SANDBOX_INSTRUCTIONS=200000 "$R" rules "$T/sb" --once
has "rules-5.2 global write refused" "$ERR" "global.lua:1: assignment to global 'leak'"
has "rules-5.3 undefined global refused" "$ERR" "undef.lua:1: undefined global 'undefined_thing'"
has "rules-5.4 runaway rule stopped despite pcall" "$ERR" "rule 'loop': stopped after 200000 instructions"
has "rules-5.5 no io in rules" "$ERR" "io.lua:1: 'io' is not available in the sandbox"
has "rules-5.6 the fine rule still ran" "$OUT" "rule fine [local]: 0 matched"

# ---- --watch: runs on an interval and reloads an edited rule
mkdir -p "$T/w"
cat >"$T/w/r.lua" <<'EOF'
return { name = "w1", every = 0.2, match = function(item) return false end, action = function() end }
EOF
# until_ CMD...: until CMD succeeds (a failure bound, RD_TEST_DEADLINE, 120 s; the
# waits end on what the watcher printed)
until_() {
  local end=$((SECONDS + ${RD_TEST_DEADLINE:-120}))
  until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.02; done
}
runs_of() { grep -c "rule $1" "$T/w.out"; }
at_least() { [ "$(runs_of "$1")" -ge "$2" ]; }
"$R" rules "$T/w" --watch --poll 0.1 >"$T/w.out" 2>"$T/w.err" &
WPID=$!
until_ at_least w1 2
c=$(runs_of w1)
[ "$c" -ge 2 ] && ok "rules-6.1 --watch repeats a rule on its interval" || no "rules-6.1" "$(cat "$T/w.out" "$T/w.err")"
cat >"$T/w/r.lua" <<'EOF'
return { name = "w2", every = 0.2, match = function(item) return true end,
         action = function(item, ctx) ctx.log("seen") end }
EOF
until_ grep -q "rule w2" "$T/w.out"
has "rules-6.2 edited rule reloaded" "$(cat "$T/w.out")" "reloaded $T/w/r.lua (rule w2)"
has "rules-6.3 new version runs" "$(cat "$T/w.out")" "rule w2 [local]"
echo 'return {' >"$T/w/r.lua"
until_ grep -q "refusing" "$T/w.err"
has "rules-6.4 broken edit refused, old version kept" "$(cat "$T/w.err")" "(the previous version keeps running)"
n1=$(runs_of w2); until_ at_least w2 $((n1 + 1)); n2=$(runs_of w2)
[ "$n2" -gt "$n1" ] && ok "rules-6.5 old version still running" || no "rules-6.5" "$n1 -> $n2"
kill -INT $WPID; wait $WPID; rc=$?; WPID=
[ $rc -eq 130 ] && ok "rules-6.6 --watch stops on SIGINT with 130" || no "rules-6.6" "exit $rc"

# ---- every mutation made while rules run is audited, counted and limited
# (issue 12, defect 4): direct item calls, sources reached through
# rd.connect, load time, a dead host, the audit file's mode.
A=$T/audit
mkdir -p "$A/rules" "$A/load"
cat >"$A/config.lua" <<EOF
return { profiles = {
  a = { kind = "local", db = "$A/a.db" },
  b = { kind = "local", db = "$A/b.db" },
  dead = { kind = "make", base_url = "http://127.0.0.1:9", token = "DEADTOKEN42", scenario = 1, retries = 0 },
} }
EOF
cat >"$A/fail.json" <<EOF
{"name": "fail", "flow": [{"id": 1, "module": "http:ActionSendData",
  "mapper": {"url": "$RD_TEST_SERVER/status/500", "method": "get"}}]}
EOF
ra() { env -u REDRIVE_DB REDRIVE_CONFIG="$A/config.lua" "$R" "$@"; }
for _ in 1 2; do ra --profile a run "$A/fail.json" >/dev/null 2>&1; done
ra --profile b run "$A/fail.json" >/dev/null 2>&1
queue() { ra --profile "$1" ls --all --json | jq -c '[.id, .attempts, .resolved]' | sort; }
[ "$(queue a | wc -l)" -eq 2 ] && [ "$(queue b | wc -l)" -eq 1 ] && ok "rules-8.0 two items in a, one in b" \
  || no "rules-8.0 queues" "$(queue a; queue b)"
# patch + retry per item with direct item calls (not ctx), one at a time,
# limit 2: the first item's two mutations pass, the second item's are refused
cat >"$A/rules/direct.lua" <<'EOF'
return {
  name = "direct", source = "a", limit = 2, concurrency = 1,
  match = function(item) return true end,
  action = function(item, ctx)
    local bp = assert(item:blueprint())
    local p, perr, pcode = item:patch { blueprint = bp }
    if not p then ctx.log("patch refused: " .. tostring(pcode)) end
    local r, rerr, rcode = item:retry()
    if not r then ctx.log("retry refused: " .. tostring(rcode)) end
  end,
}
EOF
# acting through another profile: deletes b's items from a rule on a
cat >"$A/rules/other.lua" <<'EOF'
return {
  name = "other", source = "a", limit = 5,
  match = function(item) return item.attempts == 0 end,
  action = function(item, ctx)
    local b = assert(rd.connect("b"))
    for x in b:incomplete {} do assert(x:delete()) end
  end,
}
EOF
a0=$(queue a); b0=$(queue b)
check "rules-8.1 --once --dry-run" 0 ra rules "$A/rules" --once --dry-run --audit "$A/dry.jsonl"
[ "$(queue a)" = "$a0" ] && [ "$(queue b)" = "$b0" ] && ok "rules-8.2 dry run acted on nothing (a and b)" \
  || no "rules-8.2 dry run changed a queue" "$(queue a; queue b)"
c=$(jq -r 'select(.rule == "direct" and .result == "dry-run") | .action' "$A/dry.jsonl" | sort | tr '\n' ' ')
[ "$c" = "patch retry " ] && ok "rules-8.3 dry run audits the direct calls up to the limit" || no "rules-8.3" "$c" "$(cat "$A/dry.jsonl")"
c=$(jq -r 'select(.rule == "other" and .source == "b" and .action == "delete") | .result' "$A/dry.jsonl" | sort -u)
[ "$c" = "dry-run" ] && ok "rules-8.4 dry run audits what the rule would do on profile b" || no "rules-8.4" "$(cat "$A/dry.jsonl")"
check "rules-8.5 --once" 0 ra rules "$A/rules" --once --json --audit "$A/real.jsonl"
has "rules-8.6 direct calls counted, past-limit ones refused" \
  "$(jq -c 'select(.rule == "direct") | [.matched, .actions, .refused, .errors]' <<<"$OUT")" "[2,2,2,0]"
c=$(jq -r 'select(.rule == "direct" and .result != "refused" and .action != "log") | .action + ":" + .item' "$A/real.jsonl" \
  | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
[ "$c" = "1 1 " ] && ok "rules-8.7 item:patch and item:retry audited once each" || no "rules-8.7" "$c" "$(cat "$A/real.jsonl")"
c=$(jq -r 'select(.rule == "direct" and .result == "refused") | .code' "$A/real.jsonl" | sort -u)
[ "$c" = "limit" ] && ok "rules-8.8 refusals audited with code limit" || no "rules-8.8" "$(cat "$A/real.jsonl")"
c=$(queue a | jq -r '.[1]' | sort | tr '\n' ' ')
[ "$c" = "0 1 " ] && ok "rules-8.9 exactly one item of a retried" || no "rules-8.9" "$(queue a)"
c=$(jq -r 'select(.rule == "other" and .source == "b" and .action == "delete") | .result' "$A/real.jsonl")
[ "$c" = "ok" ] && ok "rules-8.10 a delete on profile b is audited" || no "rules-8.10" "$(cat "$A/real.jsonl")"
[ -z "$(queue b)" ] && ok "rules-8.11 ... and was made" || no "rules-8.11" "$(queue b)"
has "rules-8.12 the source acted on is named" "$ERR" "rules: rule 'direct' acts on local store $A/a.db (profile 'a')"
m=$(stat -c %a "$A/real.jsonl")
[ "$m" = "600" ] && ok "rules-8.13 audit file created 0600" || no "rules-8.13 audit mode" "$m"
# a rule file cannot act while it loads (nor under --check)
ra --profile b run "$A/fail.json" >/dev/null 2>&1
cat >"$A/load/early.lua" <<'EOF'
local b = rd.connect("b")
for x in b:incomplete {} do local ok, err, code = x:delete(); log("load-time delete: " .. tostring(code)) end
return { name = "early", source = "b", match = function() return false end, action = function() end }
EOF
b0=$(queue b)
check "rules-8.14 --check with a rule that mutates at load" 0 ra rules "$A/load" --check
has "rules-8.15 the load-time call is refused" "$ERR" "load-time delete: refused"
[ "$(queue b)" = "$b0" ] && [ -n "$b0" ] && ok "rules-8.16 --check changed nothing" || no "rules-8.16" "$(queue b)"
# a dead host: exit 3 and an audit line
mkdir -p "$A/dead"
printf 'return { name = "dead", source = "dead", match = function() return true end, action = function(i, ctx) ctx.retry() end }\n' \
  >"$A/dead/dead.lua"
check "rules-8.17 --once with an unreachable source exits 3" 3 ra rules "$A/dead" --once --audit "$A/dead.jsonl"
has "rules-8.18 audit line for the dead source" \
  "$(jq -c 'select(.rule == "dead") | [.source, .action, .result, .code]' "$A/dead.jsonl")" '["dead","list","error","connect"]'
lacks "rules-8.19 no token in that line" "$(cat "$A/dead.jsonl")" "DEADTOKEN42"

# ---- the example rules run for real (dry) against this queue
check "rules-7.1 example rules --once --dry-run" 0 "$R" rules examples/rules --once --dry-run
has "rules-7.2 example summaries" "$OUT" "rule delete-noise [local] (dry run)"

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

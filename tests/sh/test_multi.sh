#!/usr/bin/env bash
# Several profiles of the same kind in one script and in one rules directory:
# two local stores (two "instances"), and two n8n profiles on the contract
# mock when Prism is available.
set -u
R=${REDRIVE:-build/redrive}
T=$(mktemp -d /tmp/rd-multi.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
no() { fail=$((fail + 1)); echo "FAIL $1"; printf '%s\n' "$2" | sed 's/^/    /' | head -20; }

cat >"$T/config.lua" <<CFG
return { default = "east", profiles = {
  east = { kind = "local", db = "$T/east.db" },
  west = { kind = "local", db = "$T/west.db" },
  n8n_a = { kind = "n8n", base_url = "${RD_MOCK_N8N:-http://127.0.0.1:9}", token = "tok-a-111" },
  n8n_b = { kind = "n8n", base_url = "${RD_MOCK_N8N:-http://127.0.0.1:9}", token = "tok-b-222" },
} }
CFG
export REDRIVE_CONFIG=$T/config.lua
unset REDRIVE_DB # it would take precedence over the profiles' db

# 1. two local instances in one script, used concurrently
out=$("$R" - <<LUA 2>&1
local S = os.getenv("RD_TEST_SERVER")
local east, west = assert(rd.connect("east")), assert(rd.connect("west"))
local function fill(src, status, n)
  local sc = assert(src:scenario_create { name = "s" .. status, blueprint = { name = "s", flow = {
    { id = 1, module = "http:ActionSendData", mapper = { url = S .. "/status/" .. status, method = "get" } } } } })
  for i = 1, n do src:run(sc.id, { input = { i = i } }) end
end
assert(rd.all { function() fill(east, 500, 3) end, function() fill(west, 503, 2) end })
local function count(src) local n = 0 for _ in src:incomplete {} do n = n + 1 end return n end
print("east", count(east), "west", count(west), east.name, west.name)
LUA
)
[[ $out == *"east	3	west	2	east	west"* ]] && ok "multi-1.1 two local profiles in one script, isolated" || no "multi-1.1" "$out"

# 2. one rules directory whose rules use the two profiles
mkdir -p "$T/rules"
for p in east west; do
  cat >"$T/rules/retry-$p.lua" <<RULE
return { name = "retry-$p", source = "$p", match = function(item) return true end,
  action = function(item, ctx) ctx.retry() end }
RULE
done
"$R" rules "$T/rules" --once --audit "$T/audit.jsonl" >"$T/rules.out" 2>&1
rc=$?
e=$(grep -c '"source":"east"' "$T/audit.jsonl" 2>/dev/null)
w=$(grep -c '"source":"west"' "$T/audit.jsonl" 2>/dev/null)
[ "$e" = 3 ] && [ "$w" = 2 ] && ok "multi-1.2 one rules directory, two profiles of one kind (audit: east 3, west 2)" \
  || no "multi-1.2 audit east=$e west=$w rc=$rc" "$(cat "$T/rules.out" "$T/audit.jsonl" 2>/dev/null)"

# 3. two n8n instances in one script (contract mock)
if [ -n "${RD_MOCK_N8N:-}" ]; then
  out=$("$R" - <<'LUA' 2>&1
local a, b = assert(rd.connect("n8n_a")), assert(rd.connect("n8n_b"))
local r = assert(rd.all {
  function() local n = 0 for _ in a:executions { limit = 2 } do n = n + 1; if n == 2 then break end end return n end,
  function() local n = 0 for _ in b:executions { limit = 2 } do n = n + 1; if n == 2 then break end end return n end,
})
print("counts", r[1], r[2], a.name, b.name, tostring(a) == tostring(b))
LUA
)
  [[ $out == *"counts	2	2	n8n_a	n8n_b"* && $out != *tok-a-111* && $out != *tok-b-222* ]] \
    && ok "multi-1.3 two n8n profiles in one script" || no "multi-1.3" "$out"
else
  skip=$((skip + 1))
  echo "skip multi-1.3 two n8n profiles in one script (${RD_MOCK_N8N_WHY:-${RD_MOCKS_WHY:-Prism not installed: run scripts/prism}})"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

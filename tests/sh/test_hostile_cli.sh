#!/usr/bin/env bash
# Hostile input to the redrive command (issue 13): broken, looping and
# memory-eating config files, garbage store files, broken and hostile
# blueprint files, garbage scripts, errors that are not strings. Each gets a
# clear error naming what and where, on one line, with its exit status;
# never a crash, a hang or a Lua traceback.
set -u
cd "$(dirname "$0")/../.."
R=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d /tmp/rd-hcli.XXXXXX)
trap 'rm -rf "$T"' EXIT
export HOME=$T REDRIVE_DB=$T/s.db XDG_CONFIG_HOME=$T/config XDG_DATA_HOME=$T/data
unset REDRIVE_PROFILE REDRIVE_CONFIG
. tests/sh/cli_lib.sh

# one_line NAME: the last command's stderr is one line without a traceback
one_line() {
  if [[ $ERR != *$'\n'* && $ERR != *"stack traceback"* && -n $ERR ]]; then ok "$1"
  else no "$1" "stderr is not one line:" "$ERR"; fi
}
# not_crashed NAME: the last command exited with a status, not a signal
not_crashed() {
  if [ "$RC" -lt 128 ]; then ok "$1"; else no "$1" "exit $RC (a signal)" "$ERR"; fi
}

# ---- 1. the config file: it runs in the sandbox, its errors are usage errors (2)
cfg() { printf '%s\n' "$1" >"$T/cfg.lua"; }
export REDRIVE_CONFIG=$T/cfg.lua
cfg 'this is not lua (('
check "hcli-1.1 config with a syntax error: exit 2" 2 "$R" ls
has "hcli-1.2 it names the file and the line" "$ERR" "config $T/cfg.lua: line 1: syntax error"
one_line "hcli-1.3 one line"
cfg 'return 42'
check "hcli-1.4 config returning a number: exit 2" 2 "$R" ls
has "hcli-1.5 says what it must return" "$ERR" "must return a table, got number"
cfg 'while true do end'
REDRIVE_SANDBOX_INSTRUCTIONS=200000 check "hcli-1.6 config that loops: stopped, exit 2" 2 "$R" ls
has "hcli-1.7 by the sandbox's instruction limit, naming the file" "$ERR" "config $T/cfg.lua: stopped after 200000 instructions"
one_line "hcli-1.8 one line"
cfg 'local s = ("x"):rep(1024) while true do s = s .. s end'
REDRIVE_SANDBOX_MEMORY=16777216 check "hcli-1.9 config that eats memory: stopped, exit 2" 2 "$R" ls
has "hcli-1.10 by the sandbox's memory cap" "$ERR" "more than 16 MiB of memory"
cfg 'return { default = "x", profiles = { x = { kind = "nope" } } }'
check "hcli-1.11 a profile of an unknown kind: exit 2" 2 "$R" ls
has "hcli-1.12 names the profile and the kinds" "$ERR" "profile 'x': unknown kind 'nope' (expected local"
one_line "hcli-1.13 one line"
cfg 'return { default = "x", profiles = { x = 3 } }'
check "hcli-1.14 a profile that is not a table: exit 2" 2 "$R" ls
has "hcli-1.15 says so" "$ERR" "profile 'x' must be a table"
cfg 'return { profiles = "all" }'
check "hcli-1.16 profiles that are not a table: exit 2" 2 "$R" ls
cfg 'return { default = "x", profiles = { x = { kind = "local", db = "'"$T"'/p.db" } } }'
check "hcli-1.17 a script: a missing profile is nil, msg, not_found" 0 "$R" -e '
  local src, msg, code = rd.connect("nope")
  assert(src == nil and code == "not_found" and msg:find("no profile .nope."), msg)'
cfg 'return 1'
check "hcli-1.18 a script: a broken config raises an error value with code usage" 0 "$R" -e '
  local ok, e = pcall(rd.connect, "x")
  assert(not ok and e.code == "usage" and tostring(e):find("must return a table"), tostring(e))'
unset REDRIVE_CONFIG

# ---- 2. store files that are not stores
head -c 5000 /dev/urandom >"$T/garbage.db"
check "hcli-2.1 --db a file of random bytes: an error, no crash" 1 "$R" --db "$T/garbage.db" ls
has "hcli-2.2 names the file and says corrupt" "$ERR" "'$T/garbage.db' is not a redrive store"
has "hcli-2.3 with its code" "$ERR" "(corrupt)"
one_line "hcli-2.4 one line"
mkdir "$T/dir.db"
check "hcli-2.5 --db a directory: an error" 1 "$R" --db "$T/dir.db" ls
has "hcli-2.6 names it" "$ERR" "'$T/dir.db'"
one_line "hcli-2.7 one line"

# ---- 3. blueprint files
printf '{"name": "x", "flow": [' >"$T/cut.json"
check "hcli-3.1 a cut blueprint file: an error" 1 "$R" run "$T/cut.json"
has "hcli-3.2 names the file and where" "$ERR" "cut.json: json: unexpected end of input at line 1, column 24"
python3 -c "print('[' * 100000 + ']' * 100000)" >"$T/deep.json"
check "hcli-3.3 100 000 nested arrays: an error, no crash" 1 "$R" run "$T/deep.json"
has "hcli-3.4 a nesting error at the documented depth" "$ERR" "nesting deeper than 512 at line 1, column 513"
: >"$T/empty.json"
check "hcli-3.5 an empty file: an error" 1 "$R" run "$T/empty.json"
has "hcli-3.6 says the input ended" "$ERR" "empty.json: json: unexpected end of input"
printf '{"name":"x","flow":[{"id":1,"module":"nope:Nope"}]}' >"$T/mod.json"
check "hcli-3.7 an unknown module: an error" 1 "$R" run "$T/mod.json"
has "hcli-3.8 names the module type" "$ERR" "unknown module type 'nope:Nope'"
printf '\xff\xfe{"name":"x"}' >"$T/bin.json"
check "hcli-3.9 bytes that are not UTF-8: an error" 1 "$R" run "$T/bin.json"
has "hcli-3.10 says so, with the position" "$ERR" "invalid UTF-8 at line 1, column 1"
printf '{"name":"x","flow":[]}' >"$T/ok.json"
check "hcli-3.11 --input that is not JSON: a usage error" 2 "$R" run "$T/ok.json" --input '{bad'
has "hcli-3.12 names the option and the position" "$ERR" "--input: json: syntax error at line 1, column 2"
check "hcli-3.13 nothing was stored by the refused runs" 0 "$R" -e '
  local n = 0 for _ in rd.connect():executions{} do n = n + 1 end
  assert(n == 0, n .. " executions")'

# ---- 4. scripts
printf 'x = = 1\n' >"$T/syn.lua"
check "hcli-4.1 a script with a syntax error: exit 1" 1 "$R" "$T/syn.lua"
has "hcli-4.2 names the file and line" "$ERR" "syn.lua:1: unexpected symbol"
head -c 3000 /dev/urandom | tr -d '\0' >"$T/noise"
OUT=$("$R" - <"$T/noise" 2>"$T/err"); RC=$?; ERR=$(cat "$T/err")
if [ "$RC" -eq 1 ]; then ok "hcli-4.3 random bytes on stdin: exit 1"; else no "hcli-4.3 random bytes on stdin: exit 1" "exit $RC" "$ERR"; fi
has "hcli-4.4 names stdin" "$ERR" "stdin:"
check "hcli-4.5 error(nil): exit 1" 1 "$R" -e 'error(nil)'
has "hcli-4.6 says there was no message" "$ERR" "an error with no message (nil)"
check "hcli-4.7 an error value whose __tostring raises: exit 1" 1 "$R" -e '
  error(setmetatable({}, { __tostring = function() error("inner") end }))'
has "hcli-4.8 says it cannot be shown" "$ERR" "an error value that cannot be shown"
one_line "hcli-4.9 one line"
check "hcli-4.10 --json of a value JSON cannot carry" 0 "$R" --json -e 'return rd.connect()'
has "hcli-4.11 printed as its description" "$OUT" '{"value":"<source local'
check "hcli-4.12 a 100 000-character id: not found" 1 "$R" show "$(head -c 100000 /dev/zero | tr '\0' 9)"
if [ "${#ERR}" -lt 2048 ]; then ok "hcli-4.13 the message stays short (${#ERR} bytes)"
else no "hcli-4.13 the message stays short" "${#ERR} bytes"; fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

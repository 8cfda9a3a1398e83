#!/usr/bin/env bash
# Every snippet of the documentation runs as pasted (issue 15): the ```sh and
# ```lua blocks of README.md, and the blocks docs/*.md mark runnable
# (tests/sh/snippets.py says how). Each runs from a copy of the checkout's
# top directory whose build/ is the build under test, with a fresh HOME (so
# the default store and config are temporary, never the user's), no
# REDRIVE_* variables, and `redrive` on PATH:
#   sh   bash -e: every command must succeed
#   lua  `redrive FILE`: exit 0, and each `print(...) --> text` shows text
#   config / rule  loaded as a config file / checked as a rule file (with
#                  the last config block as its config, as a reader who
#                  followed the pages would have it)
# A block marked skip (a SaaS token, the network) is counted skipped with its
# reason. The deadline bounds a hang; nothing waits on time. What a block
# leaves running (a server it started) ends with it.
set -u
. "$(dirname "$0")/lib.sh" rd-readme
. tests/sh/cli_lib.sh
ROOT=$PWD
BUILD=${RD_BUILD:-$ROOT/build}
DEADLINE=${RD_TEST_DEADLINE:-120}

# the shadow checkout: every top-level entry linked, build/ -> the build under test
mkdir -p "$T/root" "$T/bin" "$T/blocks"
for e in "$ROOT"/* "$ROOT"/.[!.]*; do
  [ -e "$e" ] || continue
  case $(basename "$e") in build|.git) continue ;; esac
  ln -s "$e" "$T/root/$(basename "$e")"
done
ln -s "$BUILD" "$T/root/build"
ln -s "$REDRIVE" "$T/bin/redrive"

docs=(README.md docs/*.md)
if ! python3 tests/sh/snippets.py extract "$T/blocks" "${docs[@]}" >"$T/manifest" 2>"$T/extract.err"; then
  no "readme-0 the snippets can be read" "$(cat "$T/extract.err")"
  echo "$pass passed, $fail failed, $skip skipped"; exit 1
fi
[ "$(grep -c $'\tREADME.md:' "$T/manifest")" -gt 0 ] && ok "readme-0 README.md has snippets ($(grep -c . "$T/manifest") in all)" \
  || no "readme-0 README.md has no snippet" "$(cat "$T/manifest")"

# run NAME HOME CMD...: CMD from the shadow checkout, as a new user would, in
# a session of its own; its output in $OUT / $ERR; then whatever it left
# running (a server started with &) is ended with it. It must exit 0.
run() {
  local name=$1 home=$2; shift 2
  ( cd "$T/root" && exec env -u REDRIVE_DB -u REDRIVE_PROFILE -u REDRIVE_CONFIG -u REDRIVE_DRY_RUN \
      -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u XDG_STATE_HOME -u XDG_CACHE_HOME \
      HOME="$home" PATH="$T/bin:$PATH" \
      setsid bash -c 'echo $$ >"$0"; exec timeout "$1" "${@:2}"' "$T/pgid" "$DEADLINE" "$@" ) \
    >"$T/out" 2>"$T/err" </dev/null
  RC=$?
  kill -- -"$(cat "$T/pgid")" 2>/dev/null
  OUT=$(cat "$T/out") ERR=$(cat "$T/err")
  if [ $RC -eq 0 ]; then ok "$name"; else no "$name" "exit $RC" "stdout: $OUT" "stderr: $ERR"; fi
}

config=
while IFS=$'\t' read -r n where lang action why; do
  name="readme-$n $where ($lang)"
  f=$T/blocks/$n.$lang
  home=$T/home/$n; mkdir -p "$home"
  case $action in
    skip) skip=$((skip + 1)); echo "skip $name ($why)"; continue ;;
    config) run "$name: loads as a config file" "$home" \
              env REDRIVE_CONFIG="$f" redrive -e 'assert(next(rd.config().profiles), "no profile")'
            config=$f ;;
    rule) mkdir -p "$T/rules$n"; cp "$f" "$T/rules$n/rule.lua"
          run "$name: a valid rule file" "$home" env ${config:+REDRIVE_CONFIG="$config"} \
            redrive rules "$T/rules$n" --check ;;
    run) if [ "$lang" = sh ]; then run "$name" "$home" bash -e "$f"
         else run "$name" "$home" redrive "$f"; fi ;;
  esac
  lacks "$name: no traceback" "$ERR" "stack traceback"
  if [ "$lang" = lua ] && grep -q -- '-->' "$f"; then
    printf '%s\n' "$OUT" >"$T/out$n"
    if msg=$(python3 tests/sh/snippets.py expect "$f" "$T/out$n"); then ok "$name: prints what it says"
    else no "$name: prints what it says" "$msg"; fi
  fi
done <"$T/manifest"

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

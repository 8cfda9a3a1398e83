#!/usr/bin/env bash
# Docs that are true: every repository path that README.md, docs/*.md and
# the man page name exists (a renamed or removed file fails here, not in a
# reader's hands). Placeholders (<area>, *, x/y) are not paths.
set -u
cd "$(dirname "$0")/../.."
pass=0 fail=0
for doc in README.md docs/*.md docs/redrive.1; do
  n=0 missing=()
  while read -r p; do
    case $p in *'<'*|*'*'*|*'{'*|*x/y*) continue ;; esac
    n=$((n + 1))
    [ -e "$p" ] || missing+=("$p")
  done < <(grep -oE '(^|[^A-Za-z0-9_./-])(src|lua|tests|include|docs|scripts|bench|fuzz|examples)/[A-Za-z0-9_./<>*{}-]+' "$doc" |
           sed -E 's/^[^a-z]//; s/[.,:;)]+$//' | sort -u)
  if [ ${#missing[@]} -eq 0 ]; then
    pass=$((pass + 1)); echo "ok   docs-1 $doc: the $n paths it names exist"
  else
    fail=$((fail + 1)); echo "FAIL docs-1 $doc names paths that do not exist:"
    printf '    %s\n' "${missing[@]}"
  fi
done
# docs-2: every command `redrive --help` lists, and every flag each takes
# and every global option (`redrive --json help`: .flags, .globals), is in
# docs/cli.md and in the man page
R=${REDRIVE:-build/redrive}
skip=0
if [ -x "$R" ] && command -v jq >/dev/null; then
  cmds=$("$R" --help | sed -n '/^commands/,/^options/p' | sed -nE 's/^  ([a-z]+)( .*)?$/\1/p' | sort -u)
  for doc in docs/cli.md docs/redrive.1; do
    missing=()
    for c in $cmds; do
      if [ "$doc" = docs/cli.md ]; then grep -qE "^#+ $c\$" "$doc" || missing+=("command $c (a '### $c' section)")
      else grep -qE "^\.BI? \"?$c( |\"|\$)" "$doc" || missing+=("command $c (a .B $c entry)"); fi
      for f in $("$R" --json help "$c" | jq -r '.flags[].name, .globals[].name, (.globals[].short // empty)'); do
        if [ "$doc" = docs/cli.md ]; then grep -qF -- "$f" "$doc" || missing+=("$c $f")
        else grep -qF -- "$(sed 's/-/\\-/g' <<<"$f")" "$doc" || missing+=("$c $f"); fi
      done
    done
    if [ -z "$cmds" ]; then fail=$((fail + 1)); echo "FAIL docs-2 $doc: redrive --help lists no command"
    elif [ ${#missing[@]} -eq 0 ]; then
      pass=$((pass + 1)); echo "ok   docs-2 $doc: every command of redrive --help and its flags ($(echo $cmds))"
    else
      fail=$((fail + 1)); echo "FAIL docs-2 $doc lacks:"; printf '    %s\n' "${missing[@]}"
    fi
  done
else
  for doc in docs/cli.md docs/redrive.1; do
    skip=$((skip + 1)); echo "skip docs-2 $doc commands and flags (no $R or no jq)"
  done
fi
# docs-3: every relative link of the Markdown pages leads to a file, and its
# #fragment to a heading of it
if out=$(python3 tests/sh/doclinks.py README.md docs/*.md 2>&1); then
  pass=$((pass + 1)); echo "ok   docs-3 every relative link of README.md and docs/*.md resolves"
else
  fail=$((fail + 1)); echo "FAIL docs-3 broken links:"; sed 's/^/    /' <<<"$out"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

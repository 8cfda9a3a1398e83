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
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

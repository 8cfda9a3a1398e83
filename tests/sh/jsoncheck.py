#!/usr/bin/env python3
"""jsoncheck.py FILE...: each line of each FILE is a JSON value (redrive's
--json output) fit for jq. Prints one line per problem and exits 1 if any:
  - a line JSON does not parse;
  - an object with a key twice (json.loads would keep the last silently);
  - a field that holds a list (errors, results, top_reasons, ...) that is not
    a JSON array: an empty Lua table printed as {} where jq wants [];
  - a Lua list with fields beside it: an object whose keys are "1".."n" and
    names too ({"1": "x", "reason": "x"}), the same data twice.
"""
import json
import sys

# Fields that are lists wherever they appear in redrive's output.
LISTS = {
    "errors", "results", "top_reasons", "warnings", "scenarios", "example_ids", "groups",
    "ids", "logs", "items", "executions", "not_attempted_ids", "matched_ids", "chain",
}


class Duplicate(ValueError):
    pass


def pairs(kv):
    seen = set()
    for k, _ in kv:
        if k in seen:
            raise Duplicate("key %r twice" % k)
        seen.add(k)
    return dict(kv)


def walk(v, path, problems):
    if isinstance(v, dict):
        keys = list(v)
        digits = sorted(int(k) for k in keys if k.isdigit())
        if digits and digits == list(range(1, len(digits) + 1)) and len(digits) < len(keys):
            problems.append("%s: a list with fields beside it (keys %s)" % (path or ".", ", ".join(keys)))
        for k, x in v.items():
            if k in LISTS and isinstance(x, dict):
                problems.append("%s.%s: %s where a list is expected" % (path, k, json.dumps(x)[:60]))
            walk(x, "%s.%s" % (path, k), problems)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk(x, "%s[%d]" % (path, i), problems)


def main():
    bad = 0
    for name in sys.argv[1:]:
        with open(name, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = "%s:%d" % (name, n)
                try:
                    v = json.loads(line, object_pairs_hook=pairs)
                except Duplicate as e:
                    print("%s: %s: %s" % (where, e, line.strip()[:200]))
                    bad += 1
                    continue
                except ValueError as e:
                    print("%s: not JSON (%s): %s" % (where, e, line.strip()[:200]))
                    bad += 1
                    continue
                problems = []
                walk(v, "", problems)
                for p in problems:
                    print("%s: %s" % (where, p))
                bad += len(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

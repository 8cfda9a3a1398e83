#!/usr/bin/env python3
"""docs-3 of tests/sh/test_docs.sh: every relative link of the Markdown
pages (README.md, docs/*.md) leads somewhere: the file exists and a
#fragment names a heading of it (GitHub's anchors: lower case, punctuation
dropped but '-' and '_', spaces to '-'). Prints one line per broken link and
exits 1 if there is one."""
import os
import re
import sys

LINK = re.compile(r'\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```')


def anchors(path):
    out, fenced = set(), False
    for line in open(path, encoding='utf-8'):
        if FENCE.match(line):
            fenced = not fenced
        if fenced or not line.startswith('#'):
            continue
        text = line.lstrip('#').strip().lower()
        text = re.sub(r'[^\w\- ]', '', text)
        out.add(text.replace(' ', '-'))
    return out


bad = 0
for doc in sys.argv[1:]:
    base = os.path.dirname(doc)
    for n, line in enumerate(open(doc, encoding='utf-8'), 1):
        for target in LINK.findall(line):
            if re.match(r'^[a-z]+:', target):
                continue  # http:, https:, mailto:
            path, _, frag = target.partition('#')
            dest = os.path.normpath(os.path.join(base, path)) if path else doc
            if not os.path.exists(dest):
                print('%s:%d: %s: no file %s' % (doc, n, target, dest))
                bad += 1
            elif frag and dest.endswith('.md') and frag not in anchors(dest):
                print('%s:%d: %s: no heading #%s in %s' % (doc, n, target, frag, dest))
                bad += 1
sys.exit(1 if bad else 0)

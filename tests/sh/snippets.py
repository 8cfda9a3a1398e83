#!/usr/bin/env python3
"""The code blocks of the documentation, for tests/sh/test_readme.sh.

  snippets.py extract OUTDIR DOC...   writes each sh / lua block to OUTDIR/N.sh
                                      or N.lua and prints one line per block:
                                      N <TAB> DOC:LINE <TAB> LANG <TAB> ACTION <TAB> WHY
  snippets.py expect BLOCK.lua OUT    checks the `--> text` comments of a Lua
                                      block against its output, in order

Which blocks run: in README.md every ```sh and ```lua block; in the other
pages only the blocks marked runnable. A marker is an HTML comment on the
line before the fence (invisible on GitHub):

  <!-- snippet run -->            run it (sh: bash -e; lua: redrive FILE)
  <!-- snippet run: config -->    a config file: loaded as $REDRIVE_CONFIG
  <!-- snippet run: rule -->      a rule file: `redrive rules DIR --check`
  <!-- snippet skip: WHY -->      counted as skipped, with WHY (a SaaS
                                  token, the network, the suite itself)

ACTION is run, config, rule or skip. Blocks of other languages (```text,
output shown) are never run.
"""
import os
import re
import sys

FENCE = re.compile(r'^```([A-Za-z0-9_-]*)\s*$')
MARK = re.compile(r'^<!--\s*snippet\s+(run|skip)\s*(?::\s*(.*?))?\s*-->\s*$')


def extract(outdir, docs):
    n = 0
    for doc in docs:
        lines = open(doc, encoding='utf-8').read().split('\n')
        readme = os.path.basename(doc) == 'README.md'
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m or not m.group(1):
                i += 1
                continue
            lang, start = m.group(1), i
            j = i + 1
            while j < len(lines) and lines[j].rstrip() != '```':
                j += 1
            body = lines[i + 1:j]
            prev = lines[start - 1] if start > 0 else ''
            mk = MARK.match(prev.strip())
            i = j + 1
            if lang not in ('sh', 'lua'):
                continue
            action, why = None, ''
            if mk and mk.group(1) == 'skip':
                action, why = 'skip', (mk.group(2) or 'marked skip')
            elif mk:
                action = {'': 'run', None: 'run', 'config': 'config', 'rule': 'rule'}.get(mk.group(2))
                if action is None:
                    sys.exit('%s:%d: unknown snippet marker %r' % (doc, start + 1, prev))
            elif readme:
                action = 'run'
            else:
                continue
            n += 1
            path = os.path.join(outdir, '%d.%s' % (n, lang))
            with open(path, 'w', encoding='utf-8') as f:
                f.write('\n'.join(body) + '\n')
            print('\t'.join([str(n), '%s:%d' % (doc, start + 1), lang, action, why]))


def norm(s):
    return ' '.join(s.split())


def expect(block, out):
    """Each `print(...) --> text` line: its text is the next line printed."""
    want = []
    for line in open(block, encoding='utf-8'):
        m = re.search(r'print\(.*--> ?(.*)$', line.rstrip('\n'))
        if m:
            want.append(m.group(1))
    got = open(out, encoding='utf-8', errors='replace').read().split('\n')
    k = 0
    for w in want:
        while k < len(got) and norm(got[k]) != norm(w):
            k += 1
        if k == len(got):
            print('the block says it prints %r; it printed:\n%s' % (w, '\n'.join(got)))
            return 1
        k += 1
    return 0


if __name__ == '__main__':
    if sys.argv[1] == 'extract':
        extract(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == 'expect':
        sys.exit(expect(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)

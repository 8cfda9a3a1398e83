/*
 * Bounded Lua patterns: Lua 5.4.4's pattern matching (string.find, match,
 * gmatch, gsub) with a step budget and a stop flag, so that no pattern a user
 * or a script writes can hold the thread inside C. Lua's own matcher cannot
 * be interrupted: an instruction hook never fires inside C, so
 * ("a"):rep(3000):find(".-.-.-.-b") froze the loop for longer than anyone
 * waited. See docs/internals.md "Bounded patterns".
 *
 * Semantics are Lua 5.4.4's, to the byte: classes in the C locale, sets,
 * quantifiers, anchors, captures, back-references, %b, %f, and the same
 * errors raised at the same moments (a malformed part of a pattern is only
 * reported when the matcher reaches it, as in Lua). Errors carry Lua's exact
 * messages ("malformed pattern (missing ']')") with code RD_EINVALID; a
 * tripped budget or stop flag fails with RD_ELIMIT.
 */
#ifndef RD_CORE_PATTERN_H
#define RD_CORE_PATTERN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "redrive.h"

#define RD_PAT_MAXCAPTURES 32 /* Lua's LUA_MAXCAPTURES */
#define RD_PAT_MAXDEPTH 200   /* Lua's MAXCCALLS: nesting before "pattern too complex" */
#define RD_PAT_CAP_UNFINISHED (-1)
#define RD_PAT_CAP_POSITION (-2)
/* Steps between two looks at the stop flag. */
#define RD_PAT_STOP_EVERY 4096
/* The budget of one call when the caller names none (docs/internals.md says
 * what it costs). */
#define RD_PAT_DEFAULT_STEPS 10000000ULL

/* What a match may spend. Every elementary step counts one: an item of the
 * pattern tried at a subject position, a subject byte taken by a repetition
 * or scanned by %b, 32 bytes compared by a back-reference, 64 bytes scanned
 * by a plain search, a piece of a gsub replacement. Several calls may share
 * one budget (`used` accumulates); a call fails with RD_ELIMIT as soon as
 * `used` would pass `limit`, or when `*stop` is found nonzero (looked at
 * every RD_PAT_STOP_EVERY steps and when a call starts). `stop` may be set
 * by another thread or a signal handler; it is only read. */
typedef struct rd_pat_budget {
  uint64_t limit;
  uint64_t used;
  const atomic_int *stop; /* NULL: no stop flag */
} rd_pat_budget;

/* One subject and pattern being matched. Fields up to `cap` are for the
 * caller to read after a match; the rest is private. */
typedef struct rd_pat {
  const unsigned char *s; /* subject, borrowed; s[ls] need not be readable */
  size_t ls;
  const unsigned char *p; /* pattern without its anchor, borrowed */
  size_t lp;
  int anchor;             /* the pattern began with '^' (and the mode allows it) */
  int level;              /* captures (finished or not) of the last match */
  struct {
    size_t init;          /* offset in s */
    ptrdiff_t len;        /* length, or RD_PAT_CAP_UNFINISHED / _POSITION */
  } cap[RD_PAT_MAXCAPTURES];
  /* private */
  rd_pat_budget *budget;
  uint64_t tick, chunk;   /* steps left in the current chunk of the budget */
  int depth;              /* nested calls left before "pattern too complex" */
  int code;               /* the error once one happened */
  rd_err *err;
} rd_pat;

/* Prepare m to match pattern p (lp bytes) against subject s (ls bytes).
 * With `anchor_mode` (find, match, gsub) a leading '^' anchors the match and
 * is dropped; without it (gmatch) '^' is an ordinary character, as in Lua.
 * Borrows s, p and budget for as long as m is used. Cannot fail. */
void rd__pat_init(rd_pat *m, const char *s, size_t ls, const char *p, size_t lp,
                  int anchor_mode, rd_pat_budget *budget);

/* Match the pattern at subject offset `pos` (<= ls) only. Returns 1 and the
 * end offset in *end (captures in m->cap[0..m->level)), 0 when it does not
 * match there, or a negative RD_E* (RD_EINVALID: Lua's error message for the
 * pattern, RD_ELIMIT: budget or stop flag) with err filled. */
int rd__pat_match_at(rd_pat *m, size_t pos, size_t *end, rd_err *err);

/* string.find / string.match's search: try offsets init, init+1, ... ls
 * (only init when anchored). 1 with *start and *end set, 0, or < 0 as
 * rd__pat_match_at. */
int rd__pat_search(rd_pat *m, size_t init, size_t *start, size_t *end, rd_err *err);

/* Capture i (0-based) of the last match whose whole text is s[start, end).
 * Returns 0 with the text at s + *at, *len bytes; 1 for a position capture
 * with the 1-based position in *at; or RD_EINVALID with Lua's message:
 * "invalid capture index %N" (i beyond the captures; i == 0 without
 * captures means the whole match) or "unfinished capture". */
int rd__pat_capture(const rd_pat *m, int i, size_t start, size_t end, size_t *at, size_t *len,
                    rd_err *err);

/* Spend n steps of m's budget outside the matcher (a gsub replacement).
 * 0 or RD_ELIMIT with err filled. */
int rd__pat_charge(rd_pat *m, uint64_t n, rd_err *err);

/* 1 if p has none of Lua's special characters ^$*+?.([%- (string.find then
 * searches it as plain text), else 0. */
int rd__pat_is_plain(const char *p, size_t lp);

/* Plain search of needle in hay[init, lh), linear time, charged to budget.
 * 1 with the offset in *at, 0 when absent, RD_ELIMIT. `what` names the
 * needle in a limit message. */
int rd__pat_plain_find(const char *hay, size_t lh, size_t init, const char *needle,
                       size_t ln, rd_pat_budget *budget, size_t *at, rd_err *err);

/* Check a user-supplied pattern once, before it is used on data: 0 if no
 * subject can make string.find fail with it except on the budget; else
 * RD_EINVALID with Lua's message for the first problem (malformed pattern,
 * invalid capture index, unfinished capture, too many captures, or "pattern
 * too complex" when it has more nesting items than the matcher's depth). Lua
 * itself reports these only when a subject reaches them. */
int rd__pat_check(const char *p, size_t lp, rd_err *err);

#endif

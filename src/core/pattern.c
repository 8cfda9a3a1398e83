/*
 * Bounded Lua 5.4.4 patterns (contract in pattern.h).
 *
 * A backtracking matcher over offsets (not pointers), so that subjects need
 * no terminating NUL. Where Lua's matcher reads the NUL after the end of the
 * pattern or the subject, pch()/sch() give 0, which keeps every corner case
 * (a '%f' at the end of the subject, '%b' with NUL delimiters) as in Lua.
 *
 * Recursion follows Lua's exactly (one nested call per capture, per '?' that
 * matched, per repetition), bounded by RD_PAT_MAXDEPTH, so "pattern too
 * complex" trips for the same patterns and subjects and the C stack stays
 * small. Errors travel back as ABORT, which every caller returns unchanged
 * like a successful end; only the entry points look at it.
 */
#include "core/pattern.h"

#include <stdio.h>
#include <string.h>

#define NOMATCH ((size_t)-1)
#define ABORT ((size_t)-2)

/* ---- errors and budget ---------------------------------------------------- */

/* Printable short form of a pattern for messages: at most 40 bytes, control
 * and non-ASCII bytes as \xNN. */
static void shorten(char *out, size_t n, const unsigned char *p, size_t lp) {
  size_t o = 0, i = 0;
  for (; i < lp && o + 5 < n; i++) {
    if (o >= 40) break;
    if (p[i] >= 0x20 && p[i] < 0x7f) out[o++] = (char)p[i];
    else o += (size_t)snprintf(out + o, n - o, "\\x%02x", p[i]);
  }
  if (i < lp && o + 4 < n) memcpy(out + o, "...", 3), o += 3;
  out[o] = '\0';
}

static void limit_msg(rd_err *err, const unsigned char *p, size_t lp, const rd_pat_budget *b,
                      int stopped) {
  char shown[64];
  shorten(shown, sizeof shown, p, lp);
  if (stopped)
    rd_err_set(err, RD_ELIMIT, "pattern '%s': matching stopped", shown);
  else
    rd_err_set(err, RD_ELIMIT, "pattern '%s': step budget of %llu exceeded", shown,
               (unsigned long long)b->limit);
}

/* Record the first error of a match (Lua's message, verbatim); returns
 * ABORT for the caller to pass up. */
static size_t malformed(rd_pat *m, const char *msg) {
  if (m->code == 0) {
    m->code = RD_EINVALID;
    rd_err_set(m->err, RD_EINVALID, "%s", msg);
  }
  return ABORT;
}

/* The slow path of step(): account the finished chunk, look at the stop
 * flag, and start a new chunk. 0, or 1 when the match must end. */
static int refill(rd_pat *m, uint64_t n) {
  rd_pat_budget *b = m->budget;
  uint64_t spent = m->chunk - m->tick + n;
  int stopped = b->stop && atomic_load_explicit(b->stop, memory_order_relaxed);
  b->used = b->used + spent < b->used ? UINT64_MAX : b->used + spent;
  m->chunk = m->tick = 0;
  if (stopped || b->used > b->limit) {
    if (m->code == 0) {
      m->code = RD_ELIMIT;
      limit_msg(m->err, m->p - m->anchor, m->lp + (size_t)m->anchor, b, stopped);
    }
    return 1;
  }
  uint64_t left = b->limit - b->used;
  m->chunk = m->tick = left < RD_PAT_STOP_EVERY ? left : RD_PAT_STOP_EVERY;
  return 0;
}

/* Spend n steps; 1 when the budget or the stop flag ends the match. */
static inline int step(rd_pat *m, uint64_t n) {
  if (m->tick > n) {
    m->tick -= n;
    return 0;
  }
  return refill(m, n);
}

/* Account the steps taken in the current chunk. */
static void settle(rd_pat *m) {
  m->budget->used += m->chunk - m->tick;
  m->chunk = m->tick = 0;
}

/* ---- characters ----------------------------------------------------------- */

static int pch(const rd_pat *m, size_t i) { return i < m->lp ? m->p[i] : 0; }
static int sch(const rd_pat *m, size_t i) { return i < m->ls ? m->s[i] : 0; }

/* The C locale's ctype, whatever locale the process runs in: Lua's classes
 * are defined by it, and the results must not change with LANG. */
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return is_lower(c) || is_upper(c); }
static int is_graph(int c) { return c > 0x20 && c < 0x7f; }

/* Does byte c belong to class letter cl (%a ... %z, upper case for the
 * complement)? Any other cl stands for itself (%. is a dot). */
static int in_class(int c, int cl) {
  int yes;
  switch (is_upper(cl) ? cl + ('a' - 'A') : cl) {
  case 'a': yes = is_alpha(c); break;
  case 'c': yes = c < 0x20 || c == 0x7f; break;
  case 'd': yes = is_digit(c); break;
  case 'g': yes = is_graph(c); break;
  case 'l': yes = is_lower(c); break;
  case 'p': yes = is_graph(c) && !is_alpha(c) && !is_digit(c); break;
  case 's': yes = c == ' ' || (c >= '\t' && c <= '\r'); break;
  case 'u': yes = is_upper(c); break;
  case 'w': yes = is_alpha(c) || is_digit(c); break;
  case 'x': yes = is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); break;
  case 'z': yes = c == 0; break; /* deprecated in Lua, still there */
  default: return cl == c;
  }
  return is_upper(cl) ? !yes : yes;
}

/* Does c belong to the set p[at] == '[' ... p[close] == ']'? */
static int in_set(const rd_pat *m, int c, size_t at, size_t close) {
  int want = 1;
  size_t i = at + 1;
  if (m->p[i] == '^') want = 0, i++;
  for (; i < close; i++) {
    int x = m->p[i];
    if (x == '%') {
      i++;
      if (in_class(c, m->p[i])) return want;
    } else if (i + 2 < close && m->p[i + 1] == '-') {
      if (x <= c && c <= m->p[i + 2]) return want;
      i += 2;
    } else if (x == c) {
      return want;
    }
  }
  return !want;
}

/* The offset just past the single-character class at p (a byte, %x, or a
 * set); ABORT for a '%' at the end or a set without ']'. As in Lua, the
 * first byte of a set is a member even when it is ']'. */
static size_t class_end(rd_pat *m, size_t p) {
  int c = m->p[p++];
  if (c == '%') {
    if (p >= m->lp) return malformed(m, "malformed pattern (ends with '%')");
    return p + 1;
  }
  if (c == '[') {
    if (pch(m, p) == '^') p++;
    do {
      if (p >= m->lp) return malformed(m, "malformed pattern (missing ']')");
      c = m->p[p++];
      if (c == '%' && p < m->lp) p++;
    } while (pch(m, p) != ']');
    return p + 1;
  }
  return p;
}

/* Does the class p[p, ep) take the subject byte at s? */
static int single(const rd_pat *m, size_t s, size_t p, size_t ep) {
  if (s >= m->ls) return 0;
  int c = m->s[s];
  switch (m->p[p]) {
  case '.': return 1;
  case '%': return in_class(c, m->p[p + 1]);
  case '[': return in_set(m, c, p, ep - 1);
  default: return m->p[p] == c;
  }
}

/* ---- the matcher ------------------------------------------------------------ */

static size_t match(rd_pat *m, size_t s, size_t p);

/* %bxy at pattern offset p (x at p): the end of a balanced run from s. */
static size_t balanced(rd_pat *m, size_t s, size_t p) {
  if (p + 1 >= m->lp) return malformed(m, "malformed pattern (missing arguments to '%b')");
  int open = m->p[p], close = m->p[p + 1];
  if (s >= m->ls || m->s[s] != open) return NOMATCH;
  size_t depth = 1;
  while (++s < m->ls) {
    if (step(m, 1)) return ABORT;
    int c = m->s[s];
    if (c == close) {
      if (--depth == 0) return s + 1;
    } else if (c == open) {
      depth++;
    }
  }
  return NOMATCH;
}

/* Capture n (the digit at p) again at s: its end, NOMATCH, or ABORT. */
static size_t backref(rd_pat *m, size_t s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= m->level || m->cap[l].len == RD_PAT_CAP_UNFINISHED) {
    char msg[40];
    snprintf(msg, sizeof msg, "invalid capture index %%%d", l + 1);
    return malformed(m, msg);
  }
  ptrdiff_t len = m->cap[l].len;
  /* a position capture never matches text (its length is not one) */
  if (len < 0 || m->ls - s < (size_t)len) return NOMATCH;
  if (step(m, (uint64_t)len / 32)) return ABORT;
  if (memcmp(m->s + m->cap[l].init, m->s + s, (size_t)len) != 0) return NOMATCH;
  return s + (size_t)len;
}

static size_t open_capture(rd_pat *m, size_t s, size_t p, ptrdiff_t what) {
  if (m->level >= RD_PAT_MAXCAPTURES) return malformed(m, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  size_t r = match(m, s, p);
  if (r == NOMATCH) m->level--;
  return r;
}

static size_t close_capture(rd_pat *m, size_t s, size_t p) {
  int l = m->level - 1;
  while (l >= 0 && m->cap[l].len != RD_PAT_CAP_UNFINISHED) l--;
  if (l < 0) return malformed(m, "invalid pattern capture");
  m->cap[l].len = (ptrdiff_t)(s - m->cap[l].init);
  size_t r = match(m, s, p);
  if (r == NOMATCH) m->cap[l].len = RD_PAT_CAP_UNFINISHED;
  return r;
}

/* c* (and c+ after its first byte): take as many as possible, then give
 * back one at a time until the rest of the pattern (from ep + 1) matches. */
static size_t greedy(rd_pat *m, size_t s, size_t p, size_t ep) {
  size_t n = 0;
  while (single(m, s + n, p, ep)) {
    if (step(m, 1)) return ABORT;
    n++;
  }
  for (;;) {
    size_t r = match(m, s + n, ep + 1);
    if (r != NOMATCH) return r;
    if (n-- == 0) return NOMATCH;
  }
}

/* c-: take as few as possible, one more each time the rest fails. */
static size_t lazy(rd_pat *m, size_t s, size_t p, size_t ep) {
  for (;;) {
    size_t r = match(m, s, ep + 1);
    if (r != NOMATCH) return r;
    if (!single(m, s, p, ep)) return NOMATCH;
    s++;
  }
}

/* A class item at *pp with its optional suffix. Returns the end of the
 * match, NOMATCH or ABORT; or, when the match goes on at this same depth,
 * sets *cont, moves *pp to the next item and returns the subject offset to
 * go on from. */
static size_t item(rd_pat *m, size_t s, size_t *pp, int *cont) {
  size_t p = *pp, ep = class_end(m, p);
  if (ep == ABORT) return ABORT;
  int suffix = pch(m, ep);
  if (!single(m, s, p, ep)) {
    if (suffix == '*' || suffix == '?' || suffix == '-') {
      *pp = ep + 1, *cont = 1;
      return s;
    }
    return NOMATCH;
  }
  switch (suffix) {
  case '?': {
    size_t r = match(m, s + 1, ep + 1);
    if (r != NOMATCH) return r;
    *pp = ep + 1, *cont = 1;
    return s;
  }
  case '+': return greedy(m, s + 1, p, ep);
  case '*': return greedy(m, s, p, ep);
  case '-': return lazy(m, s, p, ep);
  default: *pp = ep, *cont = 1; return s + 1;
  }
}

/* Match the pattern from offset p against the subject from offset s. One
 * call is one level of nesting; items that need no backtracking continue in
 * the loop at the same level (Lua's tail calls). */
static size_t match(rd_pat *m, size_t s, size_t p) {
  if (m->depth-- == 0) return malformed(m, "pattern too complex");
  for (;;) {
    if (step(m, 1)) {
      s = ABORT;
      break;
    }
    if (p == m->lp) break;
    int c = m->p[p];
    if (c == '(') {
      if (pch(m, p + 1) == ')') s = open_capture(m, s, p + 2, RD_PAT_CAP_POSITION);
      else s = open_capture(m, s, p + 1, RD_PAT_CAP_UNFINISHED);
      break;
    }
    if (c == ')') {
      s = close_capture(m, s, p + 1);
      break;
    }
    if (c == '$' && p + 1 == m->lp) {
      if (s != m->ls) s = NOMATCH;
      break;
    }
    if (c == '%') {
      int d = pch(m, p + 1);
      if (d == 'b') {
        s = balanced(m, s, p + 2);
        if (s == NOMATCH || s == ABORT) break;
        p += 4;
        continue;
      }
      if (d == 'f') {
        p += 2;
        if (pch(m, p) != '[') {
          s = malformed(m, "missing '[' after '%f' in pattern");
          break;
        }
        size_t ep = class_end(m, p);
        if (ep == ABORT) {
          s = ABORT;
          break;
        }
        int before = s == 0 ? 0 : m->s[s - 1];
        if (!in_set(m, before, p, ep - 1) && in_set(m, sch(m, s), p, ep - 1)) {
          p = ep;
          continue;
        }
        s = NOMATCH;
        break;
      }
      if (is_digit(d)) {
        s = backref(m, s, d);
        if (s == NOMATCH || s == ABORT) break;
        p += 2;
        continue;
      }
    }
    int cont = 0;
    s = item(m, s, &p, &cont);
    if (!cont) break;
  }
  m->depth++;
  return s;
}

/* ---- entry points ------------------------------------------------------------ */

void rd__pat_init(rd_pat *m, const char *s, size_t ls, const char *p, size_t lp,
                  int anchor_mode, rd_pat_budget *budget) {
  memset(m, 0, sizeof *m);
  m->s = (const unsigned char *)s;
  m->ls = ls;
  m->anchor = anchor_mode && lp > 0 && p[0] == '^';
  m->p = (const unsigned char *)p + m->anchor;
  m->lp = lp - (size_t)m->anchor;
  m->budget = budget;
}

/* One attempt at offset pos, the budget settled afterwards. */
static size_t attempt(rd_pat *m, size_t pos, rd_err *err) {
  m->level = 0;
  m->depth = RD_PAT_MAXDEPTH;
  m->code = 0;
  m->err = err;
  return match(m, pos, 0);
}

int rd__pat_match_at(rd_pat *m, size_t pos, size_t *end, rd_err *err) {
  size_t r = attempt(m, pos, err);
  settle(m);
  if (r == ABORT) return m->code;
  if (r == NOMATCH) return 0;
  *end = r;
  return 1;
}

int rd__pat_search(rd_pat *m, size_t init, size_t *start, size_t *end, rd_err *err) {
  size_t r = NOMATCH, pos = init;
  for (;;) {
    r = attempt(m, pos, err);
    if (r != NOMATCH || m->anchor || pos >= m->ls) break;
    pos++;
  }
  settle(m);
  if (r == ABORT) return m->code;
  if (r == NOMATCH) return 0;
  *start = pos;
  *end = r;
  return 1;
}

int rd__pat_capture(const rd_pat *m, int i, size_t start, size_t end, size_t *at, size_t *len,
                    rd_err *err) {
  if (i >= m->level) {
    if (i != 0) return rd_err_set(err, RD_EINVALID, "invalid capture index %%%d", i + 1);
    *at = start;
    *len = end - start;
    return 0;
  }
  ptrdiff_t l = m->cap[i].len;
  if (l == RD_PAT_CAP_UNFINISHED) return rd_err_set(err, RD_EINVALID, "unfinished capture");
  if (l == RD_PAT_CAP_POSITION) {
    *at = m->cap[i].init + 1;
    return 1;
  }
  *at = m->cap[i].init;
  *len = (size_t)l;
  return 0;
}

int rd__pat_charge(rd_pat *m, uint64_t n, rd_err *err) {
  m->code = 0;
  m->err = err;
  int r = step(m, n) ? m->code : 0;
  settle(m);
  return r;
}

int rd__pat_is_plain(const char *p, size_t lp) {
  for (size_t i = 0; i < lp; i++)
    if (p[i] && strchr("^$*+?.([%-", p[i])) return 0;
  return 1;
}

int rd__pat_plain_find(const char *hay, size_t lh, size_t init, const char *needle,
                       size_t ln, rd_pat_budget *budget, size_t *at, rd_err *err) {
  /* memmem is linear (two-way) where a naive search is quadratic */
  rd_pat m;
  rd__pat_init(&m, hay, lh, needle, ln, 0, budget);
  const char *f = ln == 0 ? hay + init : memmem(hay + init, lh - init, needle, ln);
  size_t scanned = (f ? (size_t)(f - hay) + ln : lh) - init;
  int r = rd__pat_charge(&m, 1 + scanned / 64, err);
  if (r < 0) return r;
  if (!f) return 0;
  *at = (size_t)(f - hay);
  return 1;
}

/* ---- static check ------------------------------------------------------------ */

int rd__pat_check(const char *pat, size_t lp, rd_err *err) {
  rd_pat m;
  rd_pat_budget b = {.limit = UINT64_MAX};
  rd__pat_init(&m, "", 0, pat, lp, 1, &b);
  m.err = err;
  int open[RD_PAT_MAXCAPTURES]; /* 1 while capture i is unfinished */
  int level = 0, nesting = 0;
  size_t p = 0;
  const unsigned char *s = m.p;
  while (p < m.lp) {
    int c = s[p], d = pch(&m, p + 1);
    if (c == '(' || c == ')') {
      if (c == '(' && level >= RD_PAT_MAXCAPTURES) return rd_err_set(err, RD_EINVALID, "too many captures");
      if (c == '(') open[level++] = d != ')', p += d == ')' ? 2 : 1;
      else {
        int l = level - 1;
        while (l >= 0 && !open[l]) l--;
        if (l < 0) return rd_err_set(err, RD_EINVALID, "invalid pattern capture");
        open[l] = 0, p++;
      }
      nesting++;
    } else if (c == '$' && p + 1 == m.lp) {
      p++;
    } else if (c == '%' && d == 'b') {
      if (p + 3 >= m.lp)
        return rd_err_set(err, RD_EINVALID, "malformed pattern (missing arguments to '%%b')");
      p += 4;
    } else if (c == '%' && d == 'f') {
      p += 2;
      if (pch(&m, p) != '[') return rd_err_set(err, RD_EINVALID, "missing '[' after '%%f' in pattern");
      if ((p = class_end(&m, p)) == ABORT) return m.code;
    } else if (c == '%' && is_digit(d)) {
      int l = d - '1';
      if (l < 0 || l >= level || open[l])
        return rd_err_set(err, RD_EINVALID, "invalid capture index %%%d", l + 1);
      p += 2;
    } else {
      if ((p = class_end(&m, p)) == ABORT) return m.code;
      int q = pch(&m, p);
      if (p < m.lp && (q == '*' || q == '+' || q == '-' || q == '?')) p++, nesting++;
    }
  }
  for (int l = 0; l < level; l++)
    if (open[l]) return rd_err_set(err, RD_EINVALID, "unfinished capture");
  /* each nesting item may take one level of the matcher's depth */
  if (nesting >= RD_PAT_MAXDEPTH) return rd_err_set(err, RD_EINVALID, "pattern too complex");
  return 0;
}

/* Failure fingerprints: the one normaliser of failure messages (see the
 * contract in include/redrive.h, "failure fingerprints"). A message becomes
 * a template by one left-to-right scan that replaces what varies from one
 * occurrence of a cause to the next -- numbers, ids, hosts, times, quoted
 * values -- with placeholders, and the fingerprint is a hash of the module,
 * the error class (or HTTP status) and that template.
 *
 * Bounded work on any input: at most RD_CAUSE_SCAN bytes of a message are
 * read; each rule is tried only where a word starts and looks ahead a
 * bounded number of bytes (LOOK), so the scan costs O(RD_CAUSE_SCAN * LOOK)
 * at worst and O(n) on ordinary text. No allocation: the template is hashed
 * as it is produced and only its first `cap` bytes are kept. */
#include "redrive.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LOOK 256        /* the farthest a rule looks ahead */
#define MAX_PART 256    /* bytes of module, module id and class hashed */
#define MAX_DEPTH 2     /* quotes and URL paths are normalised inside, once */
#define NPEND 8

enum { PH_NONE, PH_N, PH_HEX, PH_ID, PH_UUID, PH_HOST, PH_EMAIL, PH_TIME, PH_Q, PH_V };
static const char *const PH[] = {"", "<n>", "<hex>", "<id>", "<uuid>", "<host>", "<email>",
                                 "<time>", "<q>", "<v>"};

typedef struct out {
  char *buf;           /* kept template, may be NULL */
  size_t cap, len;
  int full;            /* something did not fit: the rest is hashed, not kept */
  uint64_t h;          /* FNV-1a over every template byte */
  size_t total;        /* template bytes produced */
  int status;          /* first HTTP status kept in the text */
  int ph;              /* placeholder just emitted (separators after it wait) */
  char pend[NPEND];    /* waiting separators / one space */
  int npend;
} out_t;

typedef struct scan {
  const unsigned char *s;
  size_t n;            /* bytes readable (message capped at RD_CAUSE_SCAN) */
  out_t *o;
} scan_t;

/* ---- output ---------------------------------------------------------------- */

static void hash_bytes(out_t *o, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    o->h ^= b[i];
    o->h *= 0x100000001b3ULL;
  }
}

/* Produce n template bytes: hashed always, kept while they fit (whole
 * pieces only, so a UTF-8 sequence or a placeholder is never cut). */
static void put_raw(out_t *o, const char *p, size_t n) {
  hash_bytes(o, p, n);
  o->total += n;
  if (o->full || !o->buf) return;
  /* room for the piece, the "…" (3 bytes) a cut adds, and the NUL */
  if (o->cap < 4 || o->len + n + 4 > o->cap) {
    o->full = 1;
    return;
  }
  memcpy(o->buf + o->len, p, n);
  o->len += n;
}

static void flush(out_t *o) {
  int i = 0;
  if (o->total == 0)
    while (i < o->npend && o->pend[i] == ' ') i++; /* no leading space */
  if (i < o->npend) put_raw(o, o->pend + i, (size_t)(o->npend - i));
  o->npend = 0;
}

static void put(out_t *o, const char *p, size_t n) {
  flush(o);
  o->ph = PH_NONE;
  put_raw(o, p, n);
}

/* A placeholder; the same one again after nothing but separators is
 * dropped, so a list of ids ("1, 2, 3") or a number written with spaces
 * ("4 211") is one <n> whatever its length. */
static void put_ph(out_t *o, int kind) {
  if (o->ph == kind) {
    o->npend = 0;
    return;
  }
  flush(o);
  put_raw(o, PH[kind], strlen(PH[kind]));
  o->ph = kind;
}

/* A run of white space: one pending space. */
static void put_space(out_t *o) {
  if (o->npend > 0 && o->pend[o->npend - 1] == ' ') return;
  if (o->npend == NPEND) flush(o);
  o->pend[o->npend++] = ' ';
}

/* A separator right after a placeholder waits to see what follows. */
static void put_sep(out_t *o, char c) {
  if (o->ph == PH_NONE || o->npend == NPEND) {
    put(o, &c, 1);
    return;
  }
  o->pend[o->npend++] = c;
}

/* ---- character classes ------------------------------------------------------ */

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(int c) { return is_digit(c) || is_alpha(c); }
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_hex(int c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_ctl(int c) { return c < 0x20 || c == 0x7f; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
/* c is one of the characters of set (never the NUL that ends it). */
static int in_set(const char *set, int c) { return c > 0 && strchr(set, c) != NULL; }

static int at(const scan_t *c, size_t i) { return i < c->n ? c->s[i] : -1; }

/* Length of the valid UTF-8 sequence at i (1..4), 0 if invalid or cut. */
static size_t utf8_len(const scan_t *c, size_t i) {
  const unsigned char *s = c->s;
  unsigned char b = s[i];
  size_t need;
  uint32_t cp;
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) need = 2, cp = b & 0x1f;
  else if (b >= 0xe0 && b <= 0xef) need = 3, cp = b & 0x0f;
  else if (b >= 0xf0 && b <= 0xf4) need = 4, cp = b & 0x07;
  else return 0;
  if (i + need > c->n) return 0;
  for (size_t k = 1; k < need; k++) {
    if ((s[i + k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i + k] & 0x3f);
  }
  if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0; /* overlong, surrogate, out of range */
  return need;
}

/* End of the run of [A-Za-z0-9] at i. */
static size_t word_end(const scan_t *c, size_t i, size_t e) {
  while (i < e && is_alnum(c->s[i])) i++;
  return i;
}

/* Does the text at i start with `lit` (ASCII, case-insensitive)? */
static int has_ci(const scan_t *c, size_t i, size_t e, const char *lit) {
  for (; *lit; lit++, i++)
    if (i >= e || lower(c->s[i]) != *lit) return 0;
  return 1;
}

/* n digits at i (exactly); returns the end or 0. */
static size_t digits(const scan_t *c, size_t i, size_t e, int n) {
  for (int k = 0; k < n; k++, i++)
    if (i >= e || !is_digit(c->s[i])) return 0;
  return i;
}

static size_t hexes(const scan_t *c, size_t i, size_t e, int n) {
  for (int k = 0; k < n; k++, i++)
    if (i >= e || !is_hex(c->s[i])) return 0;
  return i;
}

/* A letter, a digit, or a "<n>" (what digits become: a match that a digit
 * after it refuses must refuse <n> too, or a template normalised again
 * would change) at j. */
static int wordish(const scan_t *c, size_t j) {
  if (j >= c->n) return 0;
  return is_alnum(c->s[j]) || (c->s[j] == '<' && j + 2 < c->n && c->s[j + 1] == 'n' &&
                               c->s[j + 2] == '>');
}

/* The match [i, j) ends a word: nothing alphanumeric follows. */
static size_t ends_word(const scan_t *c, size_t j, size_t e) {
  return (j && (j >= e || !wordish(c, j))) ? j : 0;
}

/* ---- rules: each returns the end of its match at i, or 0 ----------------------- */

/* 8-4-4-4-12 hex digits */
static size_t m_uuid(const scan_t *c, size_t i, size_t e) {
  static const int parts[] = {8, 4, 4, 4, 12};
  size_t j = i;
  for (int k = 0; k < 5; k++) {
    if (k && (j >= e || c->s[j++] != '-')) return 0;
    if (!(j = hexes(c, j, e, parts[k]))) return 0;
  }
  return ends_word(c, j, e);
}

/* hh:mm:ss[.frac] */
static size_t m_clock(const scan_t *c, size_t i, size_t e) {
  size_t j = digits(c, i, e, 2);
  if (!j) j = digits(c, i, e, 1);
  if (!j || at(c, j) != ':' || !(j = digits(c, j + 1, e, 2))) return 0;
  if (at(c, j) != ':' || !(j = digits(c, j + 1, e, 2))) return 0;
  if ((at(c, j) == '.' || at(c, j) == ',') && is_digit(at(c, j + 1)))
    for (j++; j < e && j - i < 40 && is_digit(c->s[j]); j++) {}
  return j;
}

/* A zone after a time: Z, +hh[:mm], -hhmm, " UTC", " GMT". */
static size_t zone(const scan_t *c, size_t j, size_t e) {
  int ch = at(c, j);
  if (ch == 'Z') return j + 1;
  if ((ch == '+' || ch == '-') && digits(c, j + 1, e, 2)) {
    size_t k = j + 3;
    if (at(c, k) == ':' && digits(c, k + 1, e, 2)) return k + 3;
    if (digits(c, k, e, 2)) return k + 2;
    return k;
  }
  if (ch == ' ' && (has_ci(c, j + 1, e, "utc") || has_ci(c, j + 1, e, "gmt")) &&
      !is_alnum(at(c, j + 4)))
    return j + 4;
  return j;
}

/* ISO 8601: yyyy-mm-dd[(T| )hh:mm[:ss[.frac]]][zone], or a clock time. */
static size_t m_time(const scan_t *c, size_t i, size_t e) {
  size_t j = digits(c, i, e, 4);
  if (j && at(c, j) == '-' && digits(c, j + 1, e, 2) && at(c, j + 3) == '-' &&
      digits(c, j + 4, e, 2)) {
    j += 6;
    if ((at(c, j) == 'T' || at(c, j) == ' ') && digits(c, j + 1, e, 2) && at(c, j + 3) == ':') {
      size_t k = m_clock(c, j + 1, e);
      if (!k && digits(c, j + 4, e, 2)) k = j + 6; /* hh:mm */
      if (k) j = zone(c, k, e);
    }
    return ends_word(c, j, e);
  }
  j = m_clock(c, i, e);
  return j ? ends_word(c, zone(c, j, e), e) : 0;
}

/* HTTP date: "Sun, 06 Nov 1994 08:49:37 GMT" */
static size_t m_httpdate(const scan_t *c, size_t i, size_t e) {
  static const char days[] = "mon tue wed thu fri sat sun ";
  static const char months[] = "jan feb mar apr may jun jul aug sep oct nov dec ";
  char w[4] = {0};
  if (word_end(c, i, e) != i + 3) return 0;
  for (int k = 0; k < 3; k++) w[k] = (char)lower(c->s[i + k]);
  if (!strstr(days, w) || at(c, i + 3) != ',' || at(c, i + 4) != ' ') return 0;
  size_t j = i + 5, k = digits(c, j, e, 2);
  if (!k && !(k = digits(c, j, e, 1))) return 0;
  if (at(c, k) != ' ' || word_end(c, k + 1, e) != k + 4) return 0;
  for (int m = 0; m < 3; m++) w[m] = (char)lower(c->s[k + 1 + m]);
  if (!strstr(months, w) || at(c, k + 4) != ' ' || !(j = digits(c, k + 5, e, 4))) return 0;
  if (at(c, j) == ' ' && (k = m_clock(c, j + 1, e))) j = zone(c, k, e);
  return ends_word(c, j, e);
}

/* :port (1-5 digits) at j, or j. */
static size_t port(const scan_t *c, size_t j, size_t e) {
  if (at(c, j) != ':' || !is_digit(at(c, j + 1))) return j;
  size_t k = j + 1;
  while (k < e && k - j <= 5 && is_digit(c->s[k])) k++;
  return (k - j <= 6 && !wordish(c, k)) ? k : j;
}

/* a.b.c.d[:port] */
static size_t m_ipv4(const scan_t *c, size_t i, size_t e) {
  size_t j = i;
  for (int k = 0; k < 4; k++) {
    if (k && at(c, j++) != '.') return 0;
    size_t d = j;
    while (j < e && j - d < 3 && is_digit(c->s[j])) j++;
    if (j == d) return 0;
  }
  if (wordish(c, j) || (at(c, j) == '.' && is_digit(at(c, j + 1)))) return 0;
  return port(c, j, e);
}

/* [v6][:port], or a bare v6 address with "::" (fe80::1, ::1) */
static size_t m_ipv6(const scan_t *c, size_t i, size_t e) {
  int bracket = at(c, i) == '[';
  size_t j = i + (size_t)bracket;
  int colons = 0, dbl = 0, hex = 0;
  while (j < e && j - i < 48 && (is_hex(c->s[j]) || c->s[j] == ':' || (bracket && c->s[j] == '.'))) {
    if (c->s[j] == ':') {
      colons++;
      if (at(c, j + 1) == ':') dbl = 1;
    } else {
      hex = 1;
    }
    j++;
  }
  if (colons < 2 || !hex || (!dbl && colons != 7)) return 0;
  if (bracket) return at(c, j) == ']' ? port(c, j + 1, e) : 0;
  return (wordish(c, j) || c->s[j - 1] == ':') ? 0 : j;
}

/* A host name: labels of [A-Za-z0-9-] joined by dots. With a port it may be
 * any such name with a dot, or localhost; without one it must look like a
 * DNS name (three labels or more, lower case, the last 2-24 letters), so
 * file.txt and java.lang.Error stay text. */
static size_t m_host(const scan_t *c, size_t i, size_t e) {
  size_t j = i, last = i;
  int labels = 0, upper = 0;
  while (j < e && j - i < LOOK) {
    size_t k = j;
    while (k < e && k - i < LOOK && (is_alnum(c->s[k]) || c->s[k] == '-')) {
      if (c->s[k] >= 'A' && c->s[k] <= 'Z') upper = 1;
      k++;
    }
    if (k == j) break;
    labels++;
    last = j;
    j = k;
    if (at(c, j) != '.' || !is_alnum(at(c, j + 1))) break;
    j++;
  }
  if (labels == 0 || c->s[j - 1] == '-') return 0;
  size_t p = port(c, j, e);
  if (p > j && (labels >= 2 || (j - i == 9 && has_ci(c, i, e, "localhost")))) return p;
  if (labels < 3 || upper || j - last < 2 || j - last > 24) return 0;
  for (size_t k = last; k < j; k++)
    if (!is_lower(c->s[k])) return 0;
  return j;
}

/* local@domain.tld: labels of [A-Za-z0-9-] that start and end with a
 * letter or digit, the last one letters only (2+); a trailing dot is the
 * sentence's. */
static size_t m_email(const scan_t *c, size_t i, size_t e) {
  size_t j = i;
  while (j < e && j - i < 64 && (is_alnum(c->s[j]) || in_set("._%+-", c->s[j]))) j++;
  if (j == i || at(c, j) != '@') return 0;
  size_t d = ++j, label = j;
  int dots = 0, alpha = 1;
  while (j < e && j - d < LOOK && (is_alnum(c->s[j]) || c->s[j] == '-' || c->s[j] == '.')) {
    if (c->s[j] == '.') {
      if (j == label || c->s[j - 1] == '-' || !is_alnum(at(c, j + 1))) break;
      dots++;
      label = j + 1;
      alpha = 1;
    } else if (!is_alpha(c->s[j])) {
      alpha = 0;
    }
    j++;
  }
  if (dots < 1 || j - label < 2 || !alpha || c->s[j - 1] == '-' || at(c, j) == '-') return 0;
  return j;
}

/* A scheme and "://" at i; returns the end of "://". */
static size_t m_scheme(const scan_t *c, size_t i, size_t e) {
  size_t j = i;
  if (!is_alpha(at(c, j))) return 0;
  while (j < e && j - i < 20 && (is_alnum(c->s[j]) || c->s[j] == '+' || c->s[j] == '.' ||
                                 c->s[j] == '-'))
    j++;
  return (at(c, j) == ':' && at(c, j + 1) == '/' && at(c, j + 2) == '/') ? j + 3 : 0;
}

static int url_stop(int ch) {
  return ch < 0 || is_space(ch) || is_ctl(ch) || ch >= 0x80 || in_set("\"'`<>()[]{}|\\^", ch);
}

/* Is the 3-digit number [i, i+3) an HTTP status the text names as one
 * ("HTTP 503", "HTTP/1.1 503", "status 503", "statusCode: 503",
 * "status code 503", "503 Service Unavailable")? */
static int kept_status(const scan_t *c, size_t i, size_t e) {
  static const char *const before[] = {
    "http", "status", "code", "statuscode", "status_code", "httpcode", "http_code",
    "httpstatus", "http_status", "http/1.0", "http/1.1", "http/2", "http/2.0", "http/3",
  };
  static const char *const after[] = {
    "OK", "Created", "Accepted", "Bad ", "Unauthorized", "Payment", "Forbidden", "Not ",
    "Method", "Request", "Conflict", "Gone", "Precondition", "Payload", "Unsupported",
    "Unprocessable", "Too ", "Internal", "Service", "Gateway",
  };
  size_t j = i, k;
  if (i > 0 && c->s[i - 1] == '[' && at(c, i + 3) == ']') return 1; /* "[503]" (Make) */
  while (j > 0 && i - j < 4 && in_set(" \t:=#(\"'", c->s[j - 1])) j--;
  for (k = j; k > 0 && j - k < 12 && (is_alnum(c->s[k - 1]) || in_set("/._", c->s[k - 1])); k--) {}
  if (k < j && j - k < 12 && (k == 0 || !is_alnum(c->s[k - 1]))) {
    char w[16] = {0};
    for (size_t m = 0; m < j - k; m++) w[m] = (char)lower(c->s[k + m]);
    for (size_t m = 0; m < sizeof before / sizeof *before; m++)
      if (!strcmp(w, before[m])) return 1;
  }
  if (at(c, i + 3) != ' ') return 0;
  for (size_t m = 0; m < sizeof after / sizeof *after; m++) {
    size_t len = strlen(after[m]);
    if (i + 4 + len <= e && !memcmp(c->s + i + 4, after[m], len) &&
        (after[m][len - 1] == ' ' || !is_alnum(at(c, i + 4 + len))))
      return 1;
  }
  return 0;
}

/* ---- the scan ------------------------------------------------------------------ */

static void norm(scan_t *c, size_t b, size_t e, int depth);

/* Copy one character at i (a valid UTF-8 sequence, else U+FFFD; control
 * characters and white space become a space); returns the next index. */
static size_t copy_char(scan_t *c, size_t i) {
  int ch = c->s[i];
  if (is_space(ch) || is_ctl(ch)) {
    put_space(c->o);
    return i + 1;
  }
  size_t n = utf8_len(c, i);
  if (n == 0) {
    put(c->o, "\xef\xbf\xbd", 3);
    return i + 1;
  }
  put(c->o, (const char *)c->s + i, n);
  return i + n;
}

/* The URL at i (scheme already matched, ending at `auth`): scheme kept,
 * userinfo/host/port -> <host>, path normalised, query values -> <v>,
 * fragment -> #<v>. Trailing punctuation is not part of it. */
static size_t url(scan_t *c, size_t i, size_t auth, size_t e, int depth) {
  size_t end = auth;
  while (end < e && end - i < 4 * LOOK && !url_stop(c->s[end])) end++;
  while (end > auth && in_set(".,:;!?", c->s[end - 1])) end--;
  put(c->o, (const char *)c->s + i, auth - i);
  size_t j = auth;
  while (j < end && !in_set("/?#", c->s[j])) j++;
  if (j > auth) put_ph(c->o, PH_HOST);
  size_t q = j;
  while (q < end && c->s[q] != '?' && c->s[q] != '#') q++;
  if (q > j) norm(c, j, q, depth + 1);
  while (q < end) {
    char sep = (char)c->s[q++];
    put(c->o, &sep, 1);
    if (sep == '#') {
      if (q < end) put_ph(c->o, PH_V);
      break;
    }
    size_t k = q;
    while (k < end && c->s[k] != '&' && c->s[k] != ';' && c->s[k] != '=' && c->s[k] != '#') k++;
    norm(c, q, k, depth + 1); /* the name */
    if (k < end && c->s[k] == '=') {
      put(c->o, "=", 1);
      q = ++k;
      while (k < end && c->s[k] != '&' && c->s[k] != ';' && c->s[k] != '#') k++;
      if (k > q) put_ph(c->o, PH_V);
    }
    q = k;
  }
  return end;
}

/* Quotes: ASCII " ` and ' (at a word start, closed before a non-word
 * character), and the typographic pairs. Returns the open quote's length
 * (0 if none at i) and the closing quote in *close. */
static size_t quote_at(const scan_t *c, size_t i, size_t e, size_t *close, size_t *close_len) {
  static const char *const open[] = {"\"", "`", "'", "\xe2\x80\x9c", "\xe2\x80\x98"};
  static const char *const shut[] = {"\"", "`", "'", "\xe2\x80\x9d", "\xe2\x80\x99"};
  for (size_t q = 0; q < sizeof open / sizeof *open; q++) {
    size_t ol = strlen(open[q]), cl = strlen(shut[q]);
    if (i + ol > e || memcmp(c->s + i, open[q], ol)) continue;
    if (q == 2 && i > 0 && is_alnum(c->s[i - 1])) return 0; /* can't */
    for (size_t j = i + ol; j < e && j - i <= LOOK; j++) {
      if (c->s[j] == '\n') return 0;
      if (c->s[j] == '\\' && q < 2) {
        j++;
        continue;
      }
      if (j + cl <= e && !memcmp(c->s + j, shut[q], cl)) {
        if (q == 2 && is_alnum(at(c, j + 1))) continue; /* 'it's' */
        *close = j;
        *close_len = cl;
        return ol;
      }
    }
    return 0;
  }
  return 0;
}

/* A quoted value becomes <q>; kept (and normalised inside) are a label or
 * JSON key (followed by ':'), prose (it holds white space), an empty
 * string, and a JSON string value that is a bare word without digits (a
 * code such as "not_found"). */
static size_t quoted(scan_t *c, size_t i, size_t e, int depth) {
  size_t close, cl;
  size_t ol = quote_at(c, i, e, &close, &cl);
  if (!ol) return 0;
  size_t b = i + ol, end = close + cl, k = end;
  while (k < e && (c->s[k] == ' ' || c->s[k] == '\t')) k++;
  /* a JSON key (or a "label": ...) keeps its name; a single-quoted value
   * before a colon is still a value ("field 'amount': expected ...") */
  int keep = b == close || ((at(c, k) == ':' || at(c, k) == '=') && c->s[i] == '"');
  for (size_t j = b; !keep && j < close; j++)
    if (is_space(c->s[j])) keep = 1;
  if (!keep && close - b <= 40) {
    size_t p = i;
    while (p > 0 && (c->s[p - 1] == ' ' || c->s[p - 1] == '\t')) p--;
    int word = p > 0 && c->s[p - 1] == ':';
    for (size_t j = b; word && j < close; j++)
      if (!is_alpha(c->s[j]) && !in_set("_-.", c->s[j])) word = 0;
    keep = word;
  }
  if (!keep || depth >= MAX_DEPTH) {
    put_ph(c->o, PH_Q);
    return end;
  }
  put(c->o, (const char *)c->s + i, ol);
  norm(c, b, close, depth + 1);
  put(c->o, (const char *)c->s + close, cl);
  return end;
}

/* A word at i (i is a word start): ids, hex, numbers, or the word as is. */
static size_t word(scan_t *c, size_t i, size_t e) {
  size_t j = word_end(c, i, e);
  size_t len = j - i, nd = 0, nhex = 0;
  for (size_t k = i; k < j; k++) {
    nd += is_digit(c->s[k]);
    nhex += is_hex(c->s[k]);
  }
  if (len == 4 && has_ci(c, i, e, "http") && at(c, j) == '/' && is_digit(at(c, j + 1))) {
    j = word_end(c, j + 1, e); /* HTTP/1.1: a protocol, not a number */
    if (at(c, j) == '.' && is_digit(at(c, j + 1))) j = word_end(c, j + 1, e);
    put(c->o, (const char *)c->s + i, j - i);
    return j;
  }
  if (len >= 3 && c->s[i] == '0' && lower(c->s[i + 1]) == 'x' && nhex == len - 1) {
    put_ph(c->o, PH_HEX); /* 0x1f */
    return j;
  }
  if (nd == len) { /* a number: one <n> with its fraction, unless it is a status */
    if (len == 3 && kept_status(c, i, e)) {
      int v = (c->s[i] - '0') * 100 + (c->s[i + 1] - '0') * 10 + (c->s[i + 2] - '0');
      if (v >= 100 && v <= 599) {
        if (!c->o->status) c->o->status = v;
        put(c->o, (const char *)c->s + i, 3);
        return j;
      }
    }
    if (at(c, j) == '.' && is_digit(at(c, j + 1))) j = word_end(c, j + 1, e);
    put_ph(c->o, PH_N);
    return j;
  }
  if (len >= 8 && nhex == len && nd > 0) {
    put_ph(c->o, PH_HEX); /* 01a2318e12c904ac */
    return j;
  }
  if (len >= 10 && nd >= 2 && len - nd >= 2) {
    put_ph(c->o, PH_ID); /* ch3MmlLrLkdIwHu7ix0s */
    return j;
  }
  if (is_digit(c->s[i])) { /* 500ms, 3rd: the number goes, the unit stays */
    size_t k = i;
    while (is_digit(c->s[k])) k++;
    put_ph(c->o, PH_N);
    put(c->o, (const char *)c->s + k, j - k);
    return j;
  }
  put(c->o, (const char *)c->s + i, len);
  return j;
}

/* Try the rules that start at a word start i; 0 when none matched. */
static size_t at_word(scan_t *c, size_t i, size_t e, int depth) {
  size_t j;
  if (depth == 0 && (j = m_scheme(c, i, e))) return url(c, i, j, e, depth);
  if ((j = m_email(c, i, e))) return put_ph(c->o, PH_EMAIL), j;
  if ((j = m_uuid(c, i, e))) return put_ph(c->o, PH_UUID), j;
  if (is_digit(c->s[i])) {
    if ((j = m_time(c, i, e))) return put_ph(c->o, PH_TIME), j;
    if ((j = m_ipv4(c, i, e))) return put_ph(c->o, PH_HOST), j;
  } else if ((j = m_httpdate(c, i, e))) {
    return put_ph(c->o, PH_TIME), j;
  }
  if ((j = m_ipv6(c, i, e))) return put_ph(c->o, PH_HOST), j;
  if ((j = m_host(c, i, e))) return put_ph(c->o, PH_HOST), j;
  return word(c, i, e);
}

static void norm(scan_t *c, size_t b, size_t e, int depth) {
  size_t i = b;
  while (i < e) {
    int ch = c->s[i];
    /* a word starts after a non-word character -- but not right after
     * "<n>": the unit of "500ms" stays part of its number when a template
     * is normalised again */
    int start = (i == 0 || !is_alnum(c->s[i - 1])) && !(i >= 3 && !memcmp(c->s + i - 3, "<n>", 3));
    size_t j = 0;
    if (is_alnum(ch)) {
      j = start ? at_word(c, i, e, depth) : word_end(c, i, e);
      if (!start) put(c->o, (const char *)c->s + i, j - i);
      i = j;
      continue;
    }
    if (ch == '"' || ch == '\'' || ch == '`' || ch == 0xe2)
      j = quoted(c, i, e, depth);
    else if (ch == '[' || (ch == ':' && at(c, i + 1) == ':' && start))
      j = m_ipv6(c, i, e), j = j ? (put_ph(c->o, PH_HOST), j) : 0;
    if (j) {
      i = j;
      continue;
    }
    if (ch == ',' || ch == ';' || ch == '|') {
      put_sep(c->o, (char)ch);
      i++;
    } else {
      i = copy_char(c, i);
    }
  }
}

/* ---- public ---------------------------------------------------------------------- */

static size_t scan_len(const char *msg, size_t n) {
  if (!msg) return 0;
  return n > RD_CAUSE_SCAN ? RD_CAUSE_SCAN : n;
}

/* Normalise msg into o; finish the kept text ("…" after a cut, "(no
 * message)" for an empty one). */
static void template_of(out_t *o, const char *msg, size_t n) {
  scan_t c = {(const unsigned char *)msg, scan_len(msg, n), o};
  norm(&c, 0, c.n, 0);
  o->npend = 0; /* trailing separators and space go */
  if (o->total == 0) put(o, "(no message)", 12);
  if (o->buf && o->cap) {
    if (o->full && o->len + 4 <= o->cap) {
      memcpy(o->buf + o->len, "\xe2\x80\xa6", 3);
      o->len += 3;
    }
    o->buf[o->len] = '\0';
  }
}

size_t rd_cause(const char *msg, size_t n, char *out, size_t cap) {
  out_t o = {.buf = out, .cap = cap, .h = 0xcbf29ce484222325ULL};
  template_of(&o, msg, n);
  return o.len;
}

/* One component of the hashed key, bounded, then a separator byte. */
static void hash_part(out_t *o, const char *s) {
  size_t n = s ? strnlen(s, MAX_PART) : 0;
  hash_bytes(o, s ? s : "", n);
  hash_bytes(o, "\0", 1);
}

/* splitmix64's finaliser: every output bit depends on every input bit. */
static uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void rd_fingerprint(const rd_failure_t *f, char fp[RD_FINGERPRINT_LEN + 1], char *cause,
                    size_t cap) {
  /* the template first (it may name the status), hashed on its own */
  out_t t = {.buf = cause, .cap = cause ? cap : 0, .h = 0xcbf29ce484222325ULL};
  const char *msg = f->message ? f->message : "";
  template_of(&t, msg, f->message_len ? f->message_len : strlen(msg));
  int status = f->status > 0 ? f->status : t.status;
  char cls[16];
  if (status > 0) snprintf(cls, sizeof cls, "HTTP %d", status);
  out_t k = {.h = 0xcbf29ce484222325ULL};
  hash_part(&k, "rdfp" "1"); /* the normaliser's version: bump it when templates change */
  hash_part(&k, f->module);
  hash_part(&k, f->module_id);
  hash_part(&k, status > 0 ? cls : f->error_class);
  unsigned char th[8]; /* the template's hash, in a fixed byte order */
  for (int i = 0; i < 8; i++) th[i] = (unsigned char)(t.h >> (56 - 8 * i));
  hash_bytes(&k, th, sizeof th);
  uint64_t h = mix(k.h);
  for (int i = 0; i < RD_FINGERPRINT_LEN; i++)
    fp[i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 0xf];
  fp[RD_FINGERPRINT_LEN] = '\0';
}

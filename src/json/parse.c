/*
 * JSON text in: the one parse for every JSON document redrive reads
 * (rd.json.decode, res:json(), rd.blueprint(text), ...).
 *
 * cJSON is lenient: it takes `[012]`, `[1.]`, `[-.123]`, raw tabs and line
 * breaks inside strings, a form feed as whitespace, a bad \u escape. So a
 * strict RFC 8259 scan runs first and is the only judge of what is JSON;
 * cJSON then only builds the tree of text that passed. The scan also bounds
 * nesting (RD_JSON_MAX_DEPTH containers, refused with a nesting error at the
 * container that passes it) and refuses numbers that overflow a double, so
 * no document holds an infinity. Every refusal names line, column and byte.
 *
 * Choices where RFC 8259 leaves room (JSONTestSuite's i_ cases): bytes that
 * are not UTF-8 are refused; a \u escape that is an unpaired UTF-16
 * surrogate is refused; a leading UTF-8 byte order mark is ignored (the RFC
 * allows it); a number whose magnitude underflows reads as 0 or a subnormal.
 */
#include "json/parse.h"

#include <cJSON.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long rd__utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned min;
    if ((c & 0xE0) == 0xC0) len = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, min = 0x10000;
    else return (long)i;
    if (i + len > n) return (long)i;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return (long)i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
    i += len;
  }
  return -1;
}

/* ---- the strict scan ----------------------------------------------------- */

enum { OK, E_SYNTAX, E_END, E_CTRL, E_ESCAPE, E_SURROGATE, E_NUMBER, E_RANGE, E_DEEP };

typedef struct {
  const unsigned char *p, *end;
  int depth;
} scan;

static int at_end(const scan *x) { return x->p >= x->end; }

static void ws(scan *x) {
  while (!at_end(x) && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r')) x->p++;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* "uXXXX" at x->p (after the backslash): the code unit, or -1 (p not moved). */
static long u_escape(scan *x) {
  if (x->end - x->p < 5 || x->p[0] != 'u') return -1;
  long v = 0;
  for (int i = 1; i <= 4; i++) {
    int h = hexval(x->p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  x->p += 5;
  return v;
}

static int escape(scan *x) {
  if (at_end(x)) return E_END;
  if (*x->p && strchr("\"\\/bfnrt", *x->p)) {
    x->p++;
    return OK;
  }
  const unsigned char *backslash = x->p - 1;
  long u = u_escape(x);
  if (u < 0) return x->end - x->p < 5 && *x->p == 'u' ? E_END : E_ESCAPE;
  if (u >= 0xDC00 && u <= 0xDFFF) return x->p = backslash, E_SURROGATE;
  if (u < 0xD800 || u > 0xDBFF) return OK;
  /* a high surrogate: a low one must follow at once */
  long lo = x->end - x->p >= 6 && x->p[0] == '\\' ? (x->p++, u_escape(x)) : -1;
  if (lo < 0xDC00 || lo > 0xDFFF) return x->p = backslash, E_SURROGATE;
  return OK;
}

/* A string; bytes are valid UTF-8 already (checked over the whole text). */
static int string(scan *x) {
  x->p++; /* the opening quote */
  for (;;) {
    if (at_end(x)) return E_END;
    unsigned char c = *x->p;
    if (c == '"') {
      x->p++;
      return OK;
    }
    if (c < 0x20) return E_CTRL;
    x->p++;
    if (c == '\\') {
      int r = escape(x);
      if (r) return r;
    }
  }
}

static int digits(scan *x) {
  if (at_end(x)) return E_END;
  if (*x->p < '0' || *x->p > '9') return E_NUMBER;
  while (!at_end(x) && *x->p >= '0' && *x->p <= '9') x->p++;
  return OK;
}

/* Would the number in [b, e) overflow a double? strtod decides, on a copy
 * with '.' as the locale's decimal point (cJSON reads numbers that way). */
static int overflows(const unsigned char *b, const unsigned char *e) {
  size_t n = (size_t)(e - b);
  char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
  if (!buf) return 0; /* cJSON will fail to allocate too */
  char point = localeconv()->decimal_point[0];
  for (size_t i = 0; i < n; i++) buf[i] = b[i] == '.' ? point : (char)b[i];
  buf[n] = 0;
  int inf = isinf(strtod(buf, NULL));
  if (buf != small) free(buf);
  return inf;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int number(scan *x) {
  const unsigned char *start = x->p;
  int r, big = 0;
  if (*x->p == '-') x->p++;
  if (at_end(x)) return E_END;
  if (*x->p == '0') {
    x->p++;
    if (!at_end(x) && *x->p >= '0' && *x->p <= '9') return E_NUMBER; /* leading zero */
  } else if ((r = digits(x))) {
    return r;
  }
  if (!at_end(x) && *x->p == '.') {
    x->p++;
    if ((r = digits(x))) return r;
  }
  if (!at_end(x) && (*x->p == 'e' || *x->p == 'E')) {
    x->p++;
    if (!at_end(x) && (*x->p == '+' || *x->p == '-')) x->p++;
    if ((r = digits(x))) return r;
    big = 1;
  }
  /* only an exponent or more than 308 digits can pass DBL_MAX */
  if ((big || x->p - start > 308) && overflows(start, x->p)) return x->p = start, E_RANGE;
  return OK;
}

static int literal(scan *x, const char *word) {
  size_t n = strlen(word);
  for (size_t i = 0; i < n; i++, x->p++) {
    if (at_end(x)) return E_END;
    if (*x->p != (unsigned char)word[i]) return E_SYNTAX;
  }
  return OK;
}

static int value(scan *x);

/* [ ... ] or { ... }: `close` is ']' or '}'; members of objects are
 * "key": value. */
static int container(scan *x, unsigned char close) {
  if (++x->depth > RD_JSON_MAX_DEPTH) return E_DEEP;
  x->p++;
  ws(x);
  if (!at_end(x) && *x->p == close) {
    x->p++;
    x->depth--;
    return OK;
  }
  for (;;) {
    int r;
    if (close == '}') {
      if (at_end(x)) return E_END;
      if (*x->p != '"') return E_SYNTAX;
      if ((r = string(x))) return r;
      ws(x);
      if (at_end(x)) return E_END;
      if (*x->p != ':') return E_SYNTAX;
      x->p++;
      ws(x);
    }
    if ((r = value(x))) return r;
    ws(x);
    if (at_end(x)) return E_END;
    if (*x->p == close) {
      x->p++;
      x->depth--;
      return OK;
    }
    if (*x->p != ',') return E_SYNTAX;
    x->p++;
    ws(x);
  }
}

static int value(scan *x) {
  if (at_end(x)) return E_END;
  switch (*x->p) {
  case '[': return container(x, ']');
  case '{': return container(x, '}');
  case '"': return string(x);
  case 't': return literal(x, "true");
  case 'f': return literal(x, "false");
  case 'n': return literal(x, "null");
  default:
    if (*x->p == '-' || (*x->p >= '0' && *x->p <= '9')) return number(x);
    return E_SYNTAX;
  }
}

/* ---- the parse ----------------------------------------------------------- */

static int fail(const char *s, size_t off, const char *what, rd_err *err) {
  char deep[40];
  if (!what) snprintf(deep, sizeof deep, "nesting deeper than %d", RD_JSON_MAX_DEPTH), what = deep;
  int line = 1, col = 1;
  for (size_t i = 0; i < off; i++) {
    if (s[i] == '\n') line++, col = 1;
    else col++;
  }
  return rd_err_set(err, RD_EINVALID, "json: %s at line %d, column %d (byte %zu)", what, line, col,
                    off + 1);
}

static const char *problem(int r) {
  switch (r) {
  case E_END: return "unexpected end of input";
  case E_CTRL: return "control character in a string (it must be escaped)";
  case E_ESCAPE: return "invalid escape in a string";
  case E_SURROGATE: return "unpaired UTF-16 surrogate in a \\u escape";
  case E_NUMBER: return "invalid number";
  case E_RANGE: return "number out of range";
  case E_DEEP: return NULL; /* fail() names the depth */
  default: return "syntax error";
  }
}

int rd_json_parse(const char *s, size_t len, cJSON **out, rd_err *err) {
  const unsigned char *u = (const unsigned char *)s;
  long bad = rd__utf8_invalid_at(u, len);
  if (bad >= 0) return fail(s, (size_t)bad, "invalid UTF-8", err);
  size_t skip = len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* a BOM */
  scan x = {u + skip, u + len, 0};
  ws(&x);
  int r = value(&x);
  if (r == OK) {
    ws(&x);
    if (!at_end(&x)) r = E_SYNTAX;
  }
  if (r != OK) return fail(s, (size_t)(x.p - u), problem(r), err);
  /* Valid JSON: cJSON builds the tree (given the length, it reads no further
   * and needs no NUL). It can only fail for want of memory now. */
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(s + skip, len - skip, &end, 0);
  if (!j) return rd_err_set(err, RD_ENOMEM, "json: out of memory");
  *out = j;
  return 0;
}

/*
 * The one redactor (contract in include/redrive.h, "secrets"). Every rule
 * adds spans [a, b) of the input to hide; the spans are merged and the
 * text rebuilt once, so rules never see each other's output and redacting
 * twice changes nothing. Rules:
 *  1. registered literals (what this process sent), found with memmem;
 *  2. URL userinfo: `scheme://user:pass@` hides `user:pass`;
 *  3. `Bearer x` / `Basic x`: hides x when it looks like a credential;
 *  4. a credential's name followed by `:` `=` or `=>` (after an optional
 *     closing quote and `]`): hides the quoted value, the rest of a header
 *     line, or an unquoted value up to a delimiter.
 */
#include "redrive.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names ------------------------------------------------------------- */

/* A name is secret when its last word, its last two words or the whole
 * name (after normalising: lower case, `-` `.` and camelCase humps become
 * `_`) is listed here. Last words catch github_token, clientSecret,
 * db_password; "token_env" (names an env var) and "max_tokens" do not match. */
static const char *const LAST1[] = {
  "token", "secret", "password", "passwd", "pwd", "pass", "passphrase", "apikey",
  "signature", "credential", "credentials", "authorization", "cookie", "sessionid", NULL,
};
static const char *const LAST2[] = {
  "api_key", "private_key", "auth_key", "subscription_key", "secret_key", "access_key",
  "session_id", NULL,
};
/* sslpassword: libpq's passphrase of a client key, in PostgreSQL URLs */
static const char *const WHOLE[] = {"x_auth", "sig", "session", "sslpassword", NULL};

static int listed(const char *const *list, const char *s, size_t n) {
  for (; *list; list++)
    if (strlen(*list) == n && memcmp(*list, s, n) == 0) return 1;
  return 0;
}

/* Normalise name into out (cap bytes): "X-Api-Key", "xApiKey", "x.api_key"
 * all become "x_api_key". Returns the length, 0 if it does not fit. */
static size_t normalise(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int hump = 0;
    if (isupper(c) && i > 0) {
      unsigned char p = (unsigned char)s[i - 1];
      hump = islower(p) || isdigit(p) ||
             (isupper(p) && i + 1 < n && islower((unsigned char)s[i + 1]));
    }
    if (c == '-' || c == '.' || c == ' ' || c == '_' || hump) {
      if (o > 0 && out[o - 1] != '_') {
        if (o + 1 >= cap) return 0;
        out[o++] = '_';
      }
      if (!hump) continue;
    }
    if (o + 1 >= cap) return 0;
    out[o++] = (char)tolower(c);
  }
  while (o > 0 && out[o - 1] == '_') o--;
  return o;
}

int rd_redact_is_secret_name(const char *name, size_t n) {
  char w[96];
  size_t len = normalise(name, n, w, sizeof w);
  if (len == 0) return 0;
  if (listed(WHOLE, w, len)) return 1;
  const char *last = memrchr(w, '_', len);
  size_t l1 = last ? len - (size_t)(last - w) - 1 : len;
  if (listed(LAST1, w + len - l1, l1)) return 1;
  if (!last) return 0;
  const char *prev = memrchr(w, '_', (size_t)(last - w));
  size_t l2 = prev ? len - (size_t)(prev - w) - 1 : len;
  return listed(LAST2, w + len - l2, l2);
}

/* ---- the registry of sent literals -------------------------------------- */

typedef struct {
  char *s;
  size_t n;
} literal;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static literal reg[RD_REDACT_SLOTS];
static size_t reg_count, reg_next; /* ring: reg_next is the oldest once full */

static void wipe(literal *l) {
  if (!l->s) return;
  explicit_bzero(l->s, l->n);
  free(l->s);
  *l = (literal){0};
}

/* Adds one literal: 0, 1 when it is known already, or RD_ENOMEM. The
 * caller holds reg_lock. */
static int add_locked(const char *s, size_t n) {
  if (n < RD_REDACT_MIN || n > RD_REDACT_MAX_LEN) return 0;
  for (size_t i = 0; i < reg_count; i++)
    if (reg[i].n == n && memcmp(reg[i].s, s, n) == 0) return 1;
  char *copy = malloc(n);
  if (!copy) return RD_ENOMEM;
  memcpy(copy, s, n);
  literal *slot = &reg[reg_next];
  wipe(slot);
  *slot = (literal){copy, n};
  reg_next = (reg_next + 1) % RD_REDACT_SLOTS;
  if (reg_count < RD_REDACT_SLOTS) reg_count++;
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int unreserved(unsigned char c) {
  return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* The literal as sent and its percent-decoded and percent-encoded forms
 * (a header token may come back inside an encoded query, and the reverse).
 * The caller holds reg_lock. */
static int add_forms(const char *s, size_t n) {
  int r = add_locked(s, n);
  if (r != 0) return r < 0 ? r : 0; /* known: so are its forms (every request resends it) */
  char *alt = malloc(3 * n + 1);
  if (!alt) return RD_ENOMEM;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      alt[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      alt[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  if (o != n || memcmp(alt, s, n) != 0) r = add_locked(alt, o);
  r = r < 0 ? r : 0;
  static const char hex[] = "0123456789ABCDEF";
  o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      alt[o++] = (char)c;
    } else {
      alt[o++] = '%';
      alt[o++] = hex[c >> 4];
      alt[o++] = hex[c & 15];
    }
  }
  if (r == 0 && o != n) r = add_locked(alt, o);
  r = r < 0 ? r : 0;
  explicit_bzero(alt, 3 * n + 1);
  free(alt);
  return r;
}

static int add_checked(const char *s, size_t n, rd_err *err) {
  if (n < RD_REDACT_MIN || n > RD_REDACT_MAX_LEN) return 0;
  pthread_mutex_lock(&reg_lock);
  int r = add_forms(s, n);
  pthread_mutex_unlock(&reg_lock);
  return r ? rd_err_set(err, RD_ENOMEM, "redact: out of memory") : 0;
}

/* Is the query parameter s[0..n) ("name=value") one whose value is secret? */
static int secret_param(const char *s, size_t n) {
  const char *eq = memchr(s, '=', n);
  size_t nn = eq ? (size_t)(eq - s) : n;
  char name[96];
  size_t k = 0;
  for (size_t i = 0; i < nn && k + 1 < sizeof name; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < nn && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
      name[k++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      name[k++] = s[i];
    }
  }
  return rd_redact_is_secret_name(name, k);
}

int rd_redact_add(const char *secret, size_t n, rd_err *err) {
  return add_checked(secret, n, err);
}

static int is_space(int c) { return c == ' ' || c == '\t'; }

/* An auth scheme word before a credential ("Bearer x", "Digest ..."). */
static int is_scheme(const char *s, size_t n) {
  static const char *const schemes[] = {"bearer", "basic", "digest", "token", "bot",
                                        "negotiate", "ntlm", "oauth", "apikey", NULL};
  char w[16];
  if (n == 0 || n >= sizeof w) return 0;
  for (size_t i = 0; i < n; i++) w[i] = (char)tolower((unsigned char)s[i]);
  return listed(schemes, w, n);
}

int rd_redact_add_header(const char *line, rd_err *err) {
  const char *colon = strchr(line, ':');
  if (!colon) return 0;
  size_t nl = (size_t)(colon - line);
  while (nl > 0 && is_space(line[nl - 1])) nl--;
  if (!rd_redact_is_secret_name(line, nl)) return 0;
  const char *v = colon + 1;
  while (is_space(*v)) v++;
  size_t vl = strcspn(v, "\r\n");
  while (vl > 0 && is_space(v[vl - 1])) vl--;
  size_t w = 0;
  while (w < vl && isalpha((unsigned char)v[w])) w++;
  if (w < vl && is_space(v[w]) && is_scheme(v, w)) {
    v += w;
    vl -= w;
    while (vl > 0 && is_space(*v)) v++, vl--;
  }
  int r = add_checked(v, vl, err);
  /* each value of a cookie list, too: "a=1; session=xyz" */
  for (size_t i = 0; r == 0 && i < vl;) {
    size_t end = i;
    while (end < vl && v[end] != ';') end++;
    const char *eq = memchr(v + i, '=', end - i);
    if (eq) r = add_checked(eq + 1, (size_t)(v + end - eq - 1), err);
    i = end + 1;
    while (i < vl && is_space(v[i])) i++;
  }
  return r;
}

int rd_redact_add_url(const char *url, rd_err *err) {
  const char *p = strstr(url, "://");
  const char *auth = p ? p + 3 : url;
  size_t alen = strcspn(auth, "/?#");
  const char *at = memrchr(auth, '@', alen);
  int r = 0;
  if (at) {
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon) r = add_checked(colon + 1, (size_t)(at - colon - 1), err);
  }
  const char *q = strchr(auth, '?');
  if (!q) return r;
  size_t qlen = strcspn(q + 1, "#");
  for (const char *s = q + 1, *end = q + 1 + qlen; r == 0 && s < end;) {
    const char *amp = memchr(s, '&', (size_t)(end - s));
    if (!amp) amp = end;
    const char *eq = memchr(s, '=', (size_t)(amp - s));
    if (eq && secret_param(s, (size_t)(amp - s)))
      r = add_checked(eq + 1, (size_t)(amp - eq - 1), err);
    s = amp + 1;
  }
  return r;
}

void rd_redact_clear(void) {
  pthread_mutex_lock(&reg_lock);
  for (size_t i = 0; i < RD_REDACT_SLOTS; i++) wipe(&reg[i]);
  reg_count = reg_next = 0;
  pthread_mutex_unlock(&reg_lock);
}

/* ---- finding spans -------------------------------------------------------- */

typedef struct {
  size_t a, b;
  int quote; /* the replacement needs quotes: a bare JSON value */
  int code;  /* a bare identifier after ` = `: Lua code, not a literal */
} span;

typedef struct {
  span *v;
  size_t n, cap;
  int nomem;
} spans;

static void add_span(spans *sp, size_t a, size_t b, int quote, int code) {
  if (a >= b || sp->nomem) return;
  if (sp->n == sp->cap) {
    size_t cap = sp->cap ? sp->cap * 2 : 16;
    span *p = realloc(sp->v, cap * sizeof *p);
    if (!p) {
      sp->nomem = 1;
      return;
    }
    sp->v = p;
    sp->cap = cap;
  }
  sp->v[sp->n++] = (span){a, b, quote, code};
}

static void find_literals(const char *s, size_t n, spans *sp) {
  pthread_mutex_lock(&reg_lock);
  for (size_t i = 0; i < reg_count; i++) {
    const literal *l = &reg[i];
    for (const char *p = s; (p = memmem(p, n - (size_t)(p - s), l->s, l->n)); p += l->n)
      add_span(sp, (size_t)(p - s), (size_t)(p - s) + l->n, 0, 0);
  }
  pthread_mutex_unlock(&reg_lock);
}

static int is_scheme_char(int c) { return isalnum(c) || c == '+' || c == '-' || c == '.'; }

/* scheme://user:pass@host: hides user:pass */
static void find_userinfo(const char *s, size_t n, spans *sp) {
  for (const char *p = s; (p = memmem(p, n - (size_t)(p - s), "://", 3)); p += 3) {
    if (p == s || !is_scheme_char((unsigned char)p[-1])) continue;
    size_t a = (size_t)(p - s) + 3, i = a;
    while (i < n && !strchr("/?#@\"'<> \t\r\n\\", s[i])) i++;
    if (i < n && s[i] == '@') add_span(sp, a, i, 0, 0);
  }
}

static int token68(int c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* Does a word after Bearer / Basic look like a credential rather than
 * English ("Bearer token", "Basic authentication")? A digit, a symbol or an
 * inner capital says so. */
static int opaque(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalpha(c) || (i > 0 && isupper(c))) return 1;
  }
  return 0;
}

static int name_char(int c) { return isalnum(c) || c == '_' || c == '-' || c == '.'; }

/* Bearer x, Basic x (any case, as a word of its own) */
static void find_schemes(const char *s, size_t n, spans *sp) {
  for (size_t i = 0; i + 6 < n; i++) {
    size_t w = 0;
    if (strncasecmp(s + i, "bearer", 6) == 0) w = 6;
    else if (strncasecmp(s + i, "basic", 5) == 0) w = 5;
    if (!w || (i > 0 && name_char((unsigned char)s[i - 1]))) continue;
    size_t a = i + w;
    if (a >= n || !is_space(s[a])) continue;
    while (a < n && is_space(s[a])) a++;
    size_t b = a;
    while (b < n && token68((unsigned char)s[b])) b++;
    while (b > a && s[b - 1] == '.') b--;
    size_t e = b;
    while (e < n && s[e] == '=') e++;
    if (e > b && e < n && s[e] == '"') continue; /* an auth-param: realm="x" */
    if (b > a && opaque(s + a, b - a)) add_span(sp, a, e, 0, 0);
    i = e > i ? e - 1 : i;
  }
}

/* The value after `name:` / `name=` at s[k]; the name began at `start`,
 * `quoted` when it was in quotes, `sep` is ':' or '='. */
static void value_span(const char *s, size_t n, size_t start, size_t k, int quoted, int sep,
                       int ws, spans *sp) {
  if (k >= n) return;
  if (s[k] == '"' || s[k] == '\'') {
    char q = s[k];
    size_t e = k + 1;
    while (e < n && s[e] != q && s[e] != '\n') e += s[e] == '\\' && e + 1 < n ? 2 : 1;
    add_span(sp, k + 1, e > n ? n : e, 0, 0);
    return;
  }
  if (sep == ':' && !quoted && (start == 0 || s[start - 1] == '\n')) { /* a header line */
    size_t e = k;
    while (e < n && s[e] != '\n' && s[e] != '\r') e++;
    while (e > k && is_space(s[e - 1])) e--;
    add_span(sp, k, e, 0, 0);
    return;
  }
  size_t w = k;
  while (w < n && isalpha((unsigned char)s[w])) w++;
  if (w < n && is_space(s[w]) && is_scheme(s + k, w - k)) {
    k = w;
    while (k < n && is_space(s[k])) k++;
  }
  size_t e = k;
  while (e < n && !isspace((unsigned char)s[e]) && !strchr("&,;\"'()[]{}<>#\\", s[e])) e++;
  size_t len = e - k;
  if (len == 0) return;
  static const char *const words[] = {"null", "nil", "true", "false", NULL};
  if (listed(words, s + k, len)) return;
  int code = ws && (isalpha((unsigned char)s[k]) || s[k] == '_');
  for (size_t i = k; code && i < e; i++)
    code = isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.';
  add_span(sp, k, e, quoted == '"' && sep == ':', code);
}

static void find_names(const char *s, size_t n, spans *sp) {
  for (size_t i = 0; i < n;) {
    if (!name_char((unsigned char)s[i]) || (i > 0 && name_char((unsigned char)s[i - 1]))) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && name_char((unsigned char)s[j])) j++;
    size_t k = j;
    int quoted = 0;
    if (k < n && (s[k] == '"' || s[k] == '\'')) quoted = s[k++];
    if (k < n && s[k] == ']') k++;
    while (k < n && is_space(s[k])) k++;
    int sep = k < n && (s[k] == ':' || s[k] == '=') ? s[k] : 0;
    if (sep && k + 1 < n && s[k + 1] == sep) sep = 0; /* `==`, `::` */
    if (sep && rd_redact_is_secret_name(s + i, j - i)) {
      k++;
      if (sep == '=' && k < n && s[k] == '>') k++;
      size_t v = k;
      while (v < n && is_space(s[v])) v++;
      value_span(s, n, i, v, quoted, sep, v > k, sp);
    }
    i = j;
  }
}

static int by_start(const void *a, const void *b) {
  const span *x = a, *y = b;
  return x->a < y->a ? -1 : x->a > y->a;
}

/* All spans of s, sorted and merged; -1 when out of memory. */
static int find_all(const char *s, size_t n, spans *sp) {
  find_literals(s, n, sp);
  find_userinfo(s, n, sp);
  find_schemes(s, n, sp);
  find_names(s, n, sp);
  if (sp->nomem) return -1;
  if (sp->n == 0) return 0;
  qsort(sp->v, sp->n, sizeof *sp->v, by_start);
  size_t m = 0;
  for (size_t i = 1; i < sp->n; i++) {
    span *last = &sp->v[m];
    if (sp->v[i].a <= last->b) {
      if (sp->v[i].b > last->b) last->b = sp->v[i].b;
      last->code = last->code && sp->v[i].code;
    } else {
      sp->v[++m] = sp->v[i];
    }
  }
  sp->n = m + 1;
  return 0;
}

int rd_redact(const char *s, size_t n, char **out, size_t *outlen, rd_err *err) {
  spans sp = {0};
  if (find_all(s, n, &sp) != 0) {
    free(sp.v);
    return rd_err_set(err, RD_ENOMEM, "redact: out of memory");
  }
  if (sp.n == 0) {
    *out = NULL;
    if (outlen) *outlen = 0;
    return 0;
  }
  static const char mark[] = RD_REDACTED;
  size_t cap = n + 1;
  for (size_t i = 0; i < sp.n; i++) cap += sizeof mark + 2;
  char *o = malloc(cap);
  if (!o) {
    free(sp.v);
    return rd_err_set(err, RD_ENOMEM, "redact: out of memory");
  }
  size_t len = 0, at = 0;
  for (size_t i = 0; i < sp.n; i++) {
    memcpy(o + len, s + at, sp.v[i].a - at);
    len += sp.v[i].a - at;
    if (sp.v[i].quote) o[len++] = '"';
    memcpy(o + len, mark, sizeof mark - 1);
    len += sizeof mark - 1;
    if (sp.v[i].quote) o[len++] = '"';
    at = sp.v[i].b;
  }
  memcpy(o + len, s + at, n - at);
  len += n - at;
  o[len] = '\0';
  free(sp.v);
  *out = o;
  if (outlen) *outlen = len;
  return 0;
}

void rd_redact_msg(char *buf, size_t cap) {
  if (cap == 0) return;
  char *o = NULL;
  size_t len = 0;
  if (rd_redact(buf, strnlen(buf, cap - 1), &o, &len, NULL) != 0) {
    snprintf(buf, cap, "(message withheld: out of memory while redacting it)");
    return;
  }
  if (!o) return;
  snprintf(buf, cap, "%s", o);
  free(o);
}

int rd_redact_holds_secret(const char *s, size_t n) {
  spans sp = {0};
  int found = 0;
  if (find_all(s, n, &sp) != 0) found = 1; /* cannot tell: keep it out */
  for (size_t i = 0; i < sp.n && !found; i++)
    found = !sp.v[i].code && !(sp.v[i].b - sp.v[i].a == strlen(RD_REDACTED) &&
                               memcmp(s + sp.v[i].a, RD_REDACTED, sp.v[i].b - sp.v[i].a) == 0);
  free(sp.v);
  return found;
}

/* ---- URLs in messages --------------------------------------------------- */

void rd_redact_url(const char *url, char *out, size_t n) {
  if (!n) return;
  const char *scheme_end = strstr(url, "://");
  const char *host = scheme_end ? scheme_end + 3 : url;
  size_t hostlen = strcspn(host, "/?#");
  const char *at = memrchr(host, '@', hostlen);
  size_t pre = (size_t)(host - url);
  const char *rest = at ? at + 1 : host;
  size_t restlen = strcspn(rest, "?#");
  snprintf(out, n, "%.*s%.*s", (int)pre, url, (int)restlen, rest);
}

/* Append n bytes to out (capacity cap, *len used), truncating. */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n) {
  if (*len + 1 >= cap) return;
  if (n > cap - 1 - *len) n = cap - 1 - *len;
  memcpy(out + *len, s, n);
  *len += n;
  out[*len] = '\0';
}

void rd_redact_url_password(const char *url, char *out, size_t n) {
  if (!n) return;
  out[0] = '\0';
  size_t len = 0;
  const char *scheme_end = strstr(url, "://");
  const char *auth = scheme_end ? scheme_end + 3 : url;
  size_t alen = strcspn(auth, "/?#");
  const char *at = memrchr(auth, '@', alen);
  put(out, n, &len, url, (size_t)(auth - url));
  if (at) {
    /* the user stays, the password goes */
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    put(out, n, &len, auth, (size_t)((colon ? colon : at) - auth));
    put(out, n, &len, "@", 1);
    auth = at + 1;
  }
  size_t rest = strcspn(auth, "?#");
  put(out, n, &len, auth, rest);
  const char *q = auth + rest;
  if (*q == '?') {
    /* query parameters with credential names (password=, sslpassword=) go */
    const char *end = q + 1 + strcspn(q + 1, "#");
    int first = 1;
    for (const char *p = q + 1; p < end;) {
      const char *amp = memchr(p, '&', (size_t)(end - p));
      if (!amp) amp = end;
      if (amp > p && !secret_param(p, (size_t)(amp - p))) {
        put(out, n, &len, first ? "?" : "&", 1);
        put(out, n, &len, p, (size_t)(amp - p));
        first = 0;
      }
      p = amp + 1;
    }
  }
  /* a registered credential typed where no password belongs (as the user
   * name, say): the whole redactor then, userinfo included */
  spans sp = {0};
  find_literals(out, len, &sp);
  if (sp.n || sp.nomem) rd_redact_msg(out, n);
  free(sp.v);
}

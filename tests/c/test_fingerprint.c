/* Failure fingerprints (src/core/fingerprint.c): the template of each kind
 * of message (a numbered table), templates as fixed points, one cause ->
 * one fingerprint across the shapes sources give their messages, another
 * status or module -> another fingerprint, and bounded, UTF-8 safe work on
 * hostile input. Cases are numbered (fp-N.M) so a failure names its row. */
#include "redrive.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>

static const char *cause_of(const char *msg, char *buf, size_t cap) {
  rd_cause(msg, strlen(msg), buf, cap);
  return buf;
}

static void fp_of(const rd_failure_t *f, char fp[RD_FINGERPRINT_LEN + 1]) {
  char cause[RD_CAUSE_MAX];
  rd_fingerprint(f, fp, cause, sizeof cause);
}

static const struct { const char *id, *in, *want; } cases[] = {
  /* the local engine's HTTP errors, as the demo makes them */
  {"fp-1.1", "HTTP 503 from http://10.0.0.7:8080/order/5",
   "HTTP 503 from http://<host>/order/<n>"},
  {"fp-1.2", "HTTP 500 from http://127.0.0.1:41047/orders/14: {\"error\":\"order service failed\"}",
   "HTTP 500 from http://<host>/orders/<n>: {\"error\":\"order service failed\"}"},
  {"fp-1.3", "HTTP 410 from http://127.0.0.1:33783/v1/webhook: {\"error\":\"endpoint moved to /v2/webhook\"}",
   "HTTP 410 from http://<host>/v1/webhook: {\"error\":\"endpoint moved to /v2/webhook\"}"},
  /* URLs: userinfo, host, port go; path normalised; query values, fragment */
  {"fp-1.4", "GET https://user:pw@api.example.com:8443/v2/items/42?page=3&q=abc#top failed",
   "GET https://<host>/v2/items/<n>?page=<v>&q=<v>#<v> failed"},
  {"fp-1.5", "see (http://x.io/a/b).", "see (http://<host>/a/b)."},
  {"fp-1.6", "postgres://app@db:5432/prod refused", "postgres://<host>/prod refused"},
  /* numbers, fractions, units, lists, thousands */
  {"fp-1.7", "timeout after 30000ms (attempt 3 of 5)", "timeout after <n>ms (attempt <n> of <n>)"},
  {"fp-1.8", "ids 1, 2, 3 failed; 4 211 total", "ids <n> failed; <n> total"},
  {"fp-1.9", "took 1.25 s", "took <n> s"},
  {"fp-1.10", "v1 and v2 stay, IM004 stays, utf8mb4 stays", "v1 and v2 stay, IM004 stays, utf8mb4 stays"},
  {"fp-1.11", "order_12345 and ORD-2024-0001", "order_<n> and ORD-<n>-<n>"},
  /* HTTP statuses the text names as such stay */
  {"fp-1.12", "Request failed with status code 503", "Request failed with status code 503"},
  {"fp-1.13", "HTTP/1.1 404 Not Found", "HTTP/1.1 404 Not Found"},
  {"fp-1.14", "{\"statusCode\":429,\"retry\":12}", "{\"statusCode\":429,\"retry\":<n>}"},
  {"fp-1.15", "upstream said 502 Bad Gateway", "upstream said 502 Bad Gateway"},
  {"fp-1.16", "found 404 items", "found <n> items"},
  {"fp-1.17", "HTTP 503: The service was not able to process your request",
   "HTTP 503: The service was not able to process your request"},
  /* ids */
  {"fp-1.18", "item 01a2318e12c904acc79535a919a6915e is locked", "item <hex> is locked"},
  {"fp-1.19", "record 8f14e45f-ceea-467a-9af8-7b3e2c1d0a9e gone", "record <uuid> gone"},
  {"fp-1.20", "addr 0xDEADBEEF", "addr <hex>"},
  {"fp-1.21", "charge ch_3MmlLrLkdIwHu7ix0snN0B15 declined", "charge ch_<id> declined"},
  /* hosts */
  {"fp-1.22", "connect ECONNREFUSED 10.1.2.3:5432", "connect ECONNREFUSED <host>"},
  {"fp-1.23", "getaddrinfo ENOTFOUND api.eu.example.com", "getaddrinfo ENOTFOUND <host>"},
  {"fp-1.24", "waiting for db.internal:5432 and localhost:8080", "waiting for <host> and <host>"},
  {"fp-1.25", "[::1]:8080 or fe80::1 and 2001:db8:0:0:0:0:2:1, ::1", "<host> or <host> and <host>"},
  {"fp-1.26", "java.lang.NullPointerException in file.txt", "java.lang.NullPointerException in file.txt"},
  /* emails, times */
  {"fp-1.27", "no user john.doe+x@example.co.uk", "no user <email>"},
  {"fp-1.28", "at 2024-01-02T03:04:05.123Z and 2024-01-02 03:04 and 2024-01-02",
   "at <time> and <time> and <time>"},
  {"fp-1.29", "Date: Sun, 06 Nov 1994 08:49:37 GMT; then 12:30:45+02:00",
   "Date: <time>; then <time>"},
  /* quoted values */
  {"fp-1.30", "Invalid value 'abc123' for field 'email'", "Invalid value <q> for field <q>"},
  {"fp-1.31", "Workflow \"Sync Acme Corp\" failed", "Workflow \"Sync Acme Corp\" failed"},
  {"fp-1.32", "{\"error\":\"not_found\",\"id\":\"a7\",\"n\":\"\"}",
   "{\"error\":\"not_found\",\"id\":<q>,\"n\":\"\"}"},
  {"fp-1.33", "can't find `x9`, it's ‘y’ in “two words 7”",
   "can't find <q>, it's <q> in “two words <n>”"},
  {"fp-1.34", "say \"a \\\"b\\\" 7\"", "say \"a \\\"b\\\" <n>\""},
  /* white space, control characters, bytes that are not UTF-8 */
  {"fp-1.35", "  spaces \t\n and \x01 control  ", "spaces and control"},
  {"fp-1.36", "bad \xff\xfe utf8, é ok, \xe2\x82 cut", "bad \xef\xbf\xbd\xef\xbf\xbd utf8, é ok, \xef\xbf\xbd\xef\xbf\xbd cut"},
  {"fp-1.37", "", "(no message)"},
  {"fp-1.38", " \t ", "(no message)"},
  /* n8n and Make shapes */
  {"fp-1.39", "HTTP 500: Internal error (Request failed with status code 500)",
   "HTTP 500: Internal error (Request failed with status code 500)"},
  {"fp-1.40", "crashed: n8n stopped while the execution ran", "crashed: n8n stopped while the execution ran"},
  {"fp-1.41", "The operation timed out after 40 seconds. [DataError]",
   "The operation timed out after <n> seconds. [DataError]"},
  {"fp-1.42", "ConnectionError: [503] Service Unavailable", "ConnectionError: [503] Service Unavailable"},
  {"fp-1.43", "DataError: [400] Invalid value of field 'amount': expected a number; rows [12]",
   "DataError: [400] Invalid value of field <q>: expected a number; rows [<n>]"},
};

RD_TEST(fingerprint_templates) {
  char buf[RD_CAUSE_MAX];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *got = cause_of(cases[i].in, buf, sizeof buf);
    if (strcmp(got, cases[i].want) != 0)
      RD__FAIL("%s: rd_cause(\"%s\")\n  got  \"%s\"\n  want \"%s\"", cases[i].id, cases[i].in, got,
               cases[i].want);
  }
}

/* fp-2: a template is its own template (so a cause shown to a user and fed
 * back, or stored and normalised again, stays the same group) */
RD_TEST(fingerprint_fixed_points) {
  char a[RD_CAUSE_MAX], b[RD_CAUSE_MAX];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cause_of(cases[i].in, a, sizeof a);
    cause_of(a, b, sizeof b);
    if (strcmp(a, b) != 0) RD__FAIL("fp-2 %s: \"%s\" -> \"%s\"", cases[i].id, a, b);
  }
}

/* fp-3: one cause, one fingerprint, whatever varies between occurrences and
 * however a source shapes the message */
RD_TEST(fingerprint_stable) {
  static const char *const same[][3] = {
    {"HTTP 503 from http://127.0.0.1:41047/order/5", "HTTP 503 from http://10.9.8.7:80/order/10",
     "HTTP 503 from http://u:p@orders.svc.example.com/order/4211"},
    {"connect ECONNREFUSED 10.0.0.1:5432", "connect ECONNREFUSED 192.168.1.20:6543",
     "connect   ECONNREFUSED\t[::1]:5432"},
    {"user 'ann' (ann@x.io) locked at 2024-01-01T00:00:00Z",
     "user 'bob' (bob.smith@corp.example.com) locked at 2025-12-31T23:59:59.999+01:00",
     "user 'c3po' (c@d.ee) locked at 13:14:15"},
  };
  for (size_t g = 0; g < sizeof same / sizeof *same; g++) {
    char want[RD_FINGERPRINT_LEN + 1], got[RD_FINGERPRINT_LEN + 1];
    rd_failure_t f = {.module = "http:ActionSendData", .module_id = "3", .error_class = "http",
                      .message = same[g][0]};
    fp_of(&f, want);
    ASSERT_INT_EQ(strlen(want), RD_FINGERPRINT_LEN);
    for (int k = 1; k < 3; k++) {
      f.message = same[g][k];
      fp_of(&f, got);
      if (strcmp(got, want) != 0)
        RD__FAIL("fp-3.%zu: \"%s\" and \"%s\" differ (%s, %s)", g + 1, same[g][0], same[g][k],
                 want, got);
    }
  }
  /* the status the message names, or given: the same (a source that knows
   * the status apart from the message, like n8n's httpCode) */
  char a[RD_FINGERPRINT_LEN + 1], b[RD_FINGERPRINT_LEN + 1], c[RD_FINGERPRINT_LEN + 1];
  rd_failure_t f = {.module = "n8n-nodes-base.httpRequest", .module_id = "Fetch order",
                    .error_class = "NodeApiError", .message = "HTTP 503: Service unavailable"};
  fp_of(&f, a);
  f.status = 503;
  fp_of(&f, b);
  f.error_class = "503"; /* the class does not count once a status does */
  fp_of(&f, c);
  ASSERT_STR_EQ(a, b);
  ASSERT_STR_EQ(b, c);
  /* the message's length may be given or not; bytes past it do not count */
  rd_failure_t g = {.module = "m", .message = "HTTP 500 from http://h:1/x"};
  fp_of(&g, a);
  g.message = "HTTP 500 from http://h:1/xGARBAGE";
  g.message_len = strlen("HTTP 500 from http://h:1/x");
  fp_of(&g, b);
  ASSERT_STR_EQ(a, b);
  /* a golden value: fingerprints are stored (local source) and compared
   * across processes and versions; a change of the normaliser that moves
   * it must bump its version in the hash and migrate stored ones */
  rd_failure_t h = {.module = "http:ActionSendData", .module_id = "2", .error_class = "http",
                    .message = "HTTP 500 from http://127.0.0.1:1/orders/7: {\"error\":\"order service failed\"}"};
  fp_of(&h, a);
  ASSERT_STR_EQ(a, "969303c259f4");
}

/* fp-4: another status, module, module id or class: another fingerprint */
RD_TEST(fingerprint_distinct) {
  rd_failure_t base = {.module = "http:ActionSendData", .module_id = "3", .error_class = "http",
                       .message = "HTTP 503 from http://h:1/order/5"};
  char want[RD_FINGERPRINT_LEN + 1], got[RD_FINGERPRINT_LEN + 1];
  fp_of(&base, want);
  rd_failure_t v[] = {base, base, base, base, base, base, base};
  v[0].message = "HTTP 502 from http://h:1/order/5";   /* status in the message */
  v[1].status = 500;                                   /* status given */
  v[2].module = "http:ActionGetFile";                  /* module type */
  v[3].module_id = "4";                                /* module id */
  v[4].message = "HTTP 503 from http://h:1/orders/5";  /* path */
  v[5].module = NULL;
  v[6].module_id = NULL;
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    fp_of(&v[i], got);
    if (strcmp(got, want) == 0) RD__FAIL("fp-4.%zu: same fingerprint %s", i + 1, got);
  }
  /* without a status, the class counts */
  rd_failure_t c1 = {.module = "x", .error_class = "timeout", .message = "no answer"};
  rd_failure_t c2 = c1;
  c2.error_class = "connect";
  fp_of(&c1, want);
  fp_of(&c2, got);
  if (strcmp(got, want) == 0) RD__FAIL("fp-4.8: classes share %s", got);
  /* the parts are not run together: ("ab", "c") is not ("a", "bc") */
  rd_failure_t p1 = {.module = "ab", .module_id = "c", .message = "m"};
  rd_failure_t p2 = {.module = "a", .module_id = "bc", .message = "m"};
  fp_of(&p1, want);
  fp_of(&p2, got);
  if (strcmp(got, want) == 0) RD__FAIL("fp-4.9: parts run together");
}

static int valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char b = s[i];
    size_t need = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3
                 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (!need || i + need > n) return 0;
    for (size_t k = 1; k < need; k++)
      if ((s[i + k] & 0xc0) != 0x80) return 0;
    i += need;
  }
  return 1;
}

/* fp-5: long and hostile messages: only RD_CAUSE_SCAN bytes are read, the
 * kept template is cut whole (UTF-8, "…"), and every shape a rule looks
 * ahead for, repeated, completes with a valid template */
RD_TEST(fingerprint_bounded) {
  size_t big = 1 << 20;
  char *m1 = malloc(big + 1), *m2 = malloc(big + 1);
  ASSERT(m1 && m2);
  for (size_t i = 0; i < big; i++) m1[i] = m2[i] = "é word 12 "[i % 10];
  m1[big] = m2[big] = '\0';
  memset(m2 + RD_CAUSE_SCAN, 'x', big - RD_CAUSE_SCAN); /* differs only past the scan */
  char a[RD_FINGERPRINT_LEN + 1], b[RD_FINGERPRINT_LEN + 1], cause[RD_CAUSE_MAX];
  rd_failure_t f = {.message = m1};
  rd_fingerprint(&f, a, cause, sizeof cause);
  ASSERT(strlen(cause) < sizeof cause);
  ASSERT(valid_utf8((const unsigned char *)cause, strlen(cause)));
  ASSERT_CONTAINS(cause, "\xe2\x80\xa6"); /* cut, and says so */
  f.message = m2;
  rd_fingerprint(&f, b, NULL, 0);
  ASSERT_STR_EQ(a, b);
  /* small buffers: NUL-terminated, never a half character */
  for (size_t cap = 1; cap < 12; cap++) {
    char small[12];
    memset(small, 'Z', sizeof small);
    size_t n = rd_cause("ééé ééé ééé", strlen("ééé ééé ééé"), small, cap);
    ASSERT(n < cap);
    ASSERT_INT_EQ(small[n], '\0');
    ASSERT(valid_utf8((const unsigned char *)small, n));
  }
  ASSERT_INT_EQ(rd_cause("x", 1, NULL, 0), 0);
  /* each rule's shape repeated to the scan limit */
  static const char *const units[] = {
    "\"", "'a", "http://", "a@", "a.", "1.", "1:", "::", "[", "0x", "2024-01-", "Sun, 0",
    "\"a \\\"", "\xe2\x80\x9c", "aaaaaaaaaa", "1,", "\xff", "\\", "a.b.c:", "HTTP/",
  };
  for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
    size_t ul = strlen(units[u]);
    for (size_t i = 0; i < big; i++) m1[i] = units[u][i % ul];
    rd_cause(m1, big, cause, sizeof cause);
    if (!valid_utf8((const unsigned char *)cause, strlen(cause)))
      RD__FAIL("fp-5.%zu: invalid UTF-8 from '%s' repeated", u + 1, units[u]);
  }
  free(m1);
  free(m2);
}

/* fp-6: random bytes: always a NUL-terminated UTF-8 template inside the
 * buffer; without quote characters (which random text pairs up at will),
 * its own template */
RD_TEST(fingerprint_random) {
  uint64_t x = getenv("RD_FP_SEED") ? strtoull(getenv("RD_FP_SEED"), NULL, 0) : 0x9e3779b97f4a7c15ULL;
  char msg[600], out[RD_CAUSE_MAX], again[RD_CAUSE_MAX];
  static const char alphabet[] = "aZ09 .:/-_@[]{}<>,;|x\t\n\xc3\xa9\xff'\"`\xe2\x80\x9c";
  size_t quotes = 7; /* the last characters: ' " ` and the bytes of “ */
  for (int round = 0; round < 40000; round++) {
    size_t na = sizeof alphabet - 1 - (round % 2 ? quotes : 0);
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = (size_t)(x % sizeof msg);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      msg[i] = alphabet[x % na];
    }
    size_t len = rd_cause(msg, n, out, sizeof out);
    ASSERT(len < sizeof out);
    ASSERT_INT_EQ(strlen(out), len);
    if (!valid_utf8((const unsigned char *)out, len)) RD__FAIL("fp-6: round %d invalid UTF-8", round);
    if (round % 2 && len + 4 < sizeof out) { /* not cut: a fixed point */
      rd_cause(out, len, again, sizeof again);
      if (strcmp(out, again) != 0)
        RD__FAIL("fp-6: round %d not a fixed point:\n  \"%s\"\n  \"%s\"", round, out, again);
    }
  }
}

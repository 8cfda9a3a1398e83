/* The one redactor (src/core/redact.c): names in every form, schemes, URL
 * userinfo, registered literals, what is left alone. Cases are numbered
 * (redact-N.M) so a failure names its row. */
#include "redrive.h"
#include "test.h"

#include <stdio.h>

/* out = rd_redact(in), or a copy of in when nothing was replaced */
static char *redacted(const char *in) {
  char *out = NULL;
  size_t len = 0;
  ASSERT_OK(rd_redact(in, strlen(in), &out, &len, NULL));
  if (!out) return strdup(in);
  ASSERT_INT_EQ(strlen(out), len);
  return out;
}

static void check(const char *id, const char *in, const char *want) {
  char *got = redacted(in);
  if (strcmp(got, want) != 0)
    RD__FAIL("%s: redact(\"%s\")\n  got  \"%s\"\n  want \"%s\"", id, in, got, want);
  char *again = redacted(got); /* redacting twice changes nothing */
  if (strcmp(again, got) != 0) RD__FAIL("%s: not idempotent: \"%s\" -> \"%s\"", id, got, again);
  free(again);
  free(got);
}

/* Every listed name, in a header line, a query string, a form body, a JSON
 * member and a Lua table: the value goes, the text around it stays. */
RD_TEST(redact_names_in_every_form) {
  static const char *const names[] = {
    "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "api_key",
    "apikey", "token", "access_token", "refresh_token", "id_token", "client_secret",
    "password", "passwd", "pass", "pwd", "secret", "X-Auth", "X-Auth-Key", "X-Auth-Token",
    "Ocp-Apim-Subscription-Key", "X-N8N-API-KEY", "private_key", "signature", "accessToken",
    "clientSecret", "github_token", "db.password", "sig",
  };
  static const struct { const char *form, *in, *want; } forms[] = {
    {"header", "HTTP/1.1 500\n%s: v4lue-S3cret\nAccept: */*",
     "HTTP/1.1 500\n%s: <redacted>\nAccept: */*"},
    {"query", "GET /x?a=1&%s=v4lue-S3cret&b=2 failed", "GET /x?a=1&%s=<redacted>&b=2 failed"},
    {"form", "%s=v4lue%%2BS3cret&grant_type=client_credentials",
     "%s=<redacted>&grant_type=client_credentials"},
    {"json", "{\"%s\": \"v4lue \\\"S3cret\\\"\", \"n\": 1}", "{\"%s\": \"<redacted>\", \"n\": 1}"},
    {"lua", "{ [\"%s\"] = 'v4lue-S3cret', n = 1 }", "{ [\"%s\"] = '<redacted>', n = 1 }"},
  };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
      char in[256], want[256], id[80];
      snprintf(id, sizeof id, "redact-1.%zu.%zu %s %s", i + 1, f + 1, forms[f].form, names[i]);
      snprintf(in, sizeof in, forms[f].in, names[i]);
      snprintf(want, sizeof want, forms[f].want, names[i]);
      check(id, in, want);
    }
  }
}

RD_TEST(redact_rules) {
  static const struct { const char *id, *in, *want; } cases[] = {
    {"redact-2.1 bearer inline", "401: Bearer eyJhbGci.eyJzdWIi.c2ln rejected",
     "401: Bearer <redacted> rejected"},
    {"redact-2.2 basic inline", "sent basic dXNlcjpwYXNz== to h", "sent basic <redacted> to h"},
    {"redact-2.3 userinfo", "GET https://bob:pw%40x@api.example.test/v1 failed",
     "GET https://<redacted>@api.example.test/v1 failed"},
    {"redact-2.4 inline name keeps the scheme",
     "{\"headers\":{\"authorization\":\"Bearer abcDEF123\"}} then x-api-key: k3y-value, done",
     "{\"headers\":{\"authorization\":\"<redacted>\"}} then x-api-key: <redacted>, done"},
    {"redact-2.5 inline authorization with scheme", "echo: Authorization: Bearer abc123, next",
     "echo: Authorization: Bearer <redacted>, next"},
    {"redact-2.6 a bare JSON value stays valid JSON", "{\"pwd\":123456,\"pin\":7}",
     "{\"pwd\":\"<redacted>\",\"pin\":7}"},
    {"redact-2.7 escaped header lines in a JSON string",
     "{\"body\":\"X-Api-Key: abc123\\nAccept: */*\"}",
     "{\"body\":\"X-Api-Key: <redacted>\\nAccept: */*\"}"},
    {"redact-2.8 cookies on a header line", "Cookie: a=1; session=xyz\nHost: h",
     "Cookie: <redacted>\nHost: h"},
    {"redact-2.9 PHP-style arrow", "'password' => 'hunter22'", "'password' => '<redacted>'"},
    {"redact-2.10 CRLF header lines", "Authorization: Basic Zm9vOmJhcg==\r\nHost: h\r\n",
     "Authorization: <redacted>\r\nHost: h\r\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    check(cases[i].id, cases[i].in, cases[i].want);
}

/* What is not a credential stays as it was (and rd_redact says so with
 * *out == NULL). */
RD_TEST(redact_leaves_ordinary_text) {
  static const char *const cases[] = {
    "redact-3.1 max_tokens=100&token_env=MAKE_TOKEN&tokens: 4",
    "redact-3.2 basic authentication failed: bearer token missing",
    "redact-3.3 {\"token\": null, \"password\": true, \"secret\": \"\"}",
    "redact-3.4 mail bob@example.test about http://h/x?page=2#token",
    "redact-3.5 attempt to index a nil value (field 'token')",
    "redact-3.6 a == b and token:: x and Bearer realm=\"api\"",
    "redact-3.7 {\"token_type\": \"Bearer\", \"expires_in\": 3600}",
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *out = (char *)1;
    ASSERT_OK(rd_redact(cases[i], strlen(cases[i]), &out, NULL, NULL));
    if (out) RD__FAIL("%s: changed to \"%s\"", cases[i], out);
  }
}

/* A yes/no table for a predicate on text. */
typedef struct {
  const char *s;
  int want;
} verdict;

static void check_verdicts(const char *area, int (*fn)(const char *, size_t), const verdict *v,
                           size_t n) {
  for (size_t i = 0; i < n; i++) {
    int got = fn(v[i].s, strlen(v[i].s));
    if (got != v[i].want) RD__FAIL("%s.%zu: \"%s\" gives %d", area, i + 1, v[i].s, got);
  }
}

RD_TEST(redact_secret_names) {
  static const verdict cases[] = {
    {"Authorization", 1}, {"x-api-key", 1}, {"XApiKey", 1}, {"APIKey", 1}, {"authPass", 1},
    {"client-secret", 1}, {"SESSION_ID", 1}, {"token_env", 0}, {"max_tokens", 0},
    {"token_type", 0}, {"key", 0}, {"authUser", 0}, {"password_policy", 0}, {"bypass", 0},
    {"", 0},
  };
  check_verdicts("redact-4 is_secret_name", rd_redact_is_secret_name, cases,
                 sizeof cases / sizeof *cases);
}

/* A credential this process sent is scrubbed wherever it shows up later,
 * in any message, whatever surrounds it. */
RD_TEST(redact_registered_literals) {
  const char *tok = "tK9-Zq.77_opaque";
  check("redact-5.1 before registering", "server says: tK9-Zq.77_opaque is wrong",
        "server says: tK9-Zq.77_opaque is wrong");
  ASSERT_OK(rd_redact_add_header("Authorization: Bearer tK9-Zq.77_opaque", NULL));
  check("redact-5.2 an unrelated message", "server says: tK9-Zq.77_opaque is wrong",
        "server says: <redacted> is wrong");
  ASSERT_INT_EQ(rd_redact_holds_secret(tok, strlen(tok)), 1);
  ASSERT_OK(rd_redact_add("a+b/c=d&e", 9, NULL));
  check("redact-5.3 the percent-encoded form too", "x=a%2Bb%2Fc%3Dd%26e; y=a+b/c=d&e",
        "x=<redacted>; y=<redacted>");
  ASSERT_OK(rd_redact_add("short", 5, NULL));
  check("redact-5.4 a short literal is not registered", "a short reply", "a short reply");
  ASSERT_OK(rd_redact_add_url("https://u:pAss-w0rd@h/x?api_key=k-123456&page=abcdefgh", NULL));
  check("redact-5.5 url password and secret query values",
        "echo pAss-w0rd k-123456 abcdefgh", "echo <redacted> <redacted> abcdefgh");
  ASSERT_OK(rd_redact_add_header("Cookie: theme=darkmode; sid=S1D-0123456", NULL));
  check("redact-5.6 each cookie value", "sid was S1D-0123456", "sid was <redacted>");
  ASSERT_OK(rd_redact_add_header("X-Request-Id: rq-0123456789", NULL));
  check("redact-5.7 other headers are not credentials", "id rq-0123456789", "id rq-0123456789");
  rd_redact_clear();
  check("redact-5.8 cleared", "tK9-Zq.77_opaque", "tK9-Zq.77_opaque");
}

/* The registry keeps RD_REDACT_SLOTS literals: the newest push out the oldest. */
RD_TEST(redact_registry_is_bounded) {
  char lit[32];
  for (int i = 0; i < RD_REDACT_SLOTS + 1; i++) {
    snprintf(lit, sizeof lit, "literal-%06d", i);
    ASSERT_OK(rd_redact_add(lit, strlen(lit), NULL));
  }
  check("redact-6.1 the newest is kept", "literal-001024", "<redacted>");
  check("redact-6.2 the oldest went", "literal-000000", "literal-000000");
  rd_redact_clear();
}

RD_TEST(redact_holds_secret) {
  static const verdict cases[] = {
    {"src = rd.connect{token = os.getenv(\"T\")}", 0},
    {"rd.connect{kind = \"make\", token = \"abc123\"}", 1},
    {"h = {Authorization = \"Bearer xYz1\"}", 1},
    {"rd.http.request{url = \"https://h/x?api_key=k1\"}", 1},
    {"x = {token = \"<redacted>\"}", 0},
    {"1 + 2", 0},
  };
  check_verdicts("redact-7 holds_secret", rd_redact_holds_secret, cases,
                 sizeof cases / sizeof *cases);
}

RD_TEST(redact_msg_in_place) {
  char buf[64] = "http: GET https://u:p@h/x: refused";
  rd_redact_msg(buf, sizeof buf);
  ASSERT_STR_EQ(buf, "http: GET https://<redacted>@h/x: refused");
  char small[24] = "token=abcdef and more";
  rd_redact_msg(small, sizeof small); /* truncated to fit, still redacted */
  ASSERT_STR_EQ(small, "token=<redacted> and mo");
}

RD_TEST(redact_url_drops_userinfo_and_query) {
  char out[128];
  rd_redact_url("https://u:pw@api.example.test:8443/a/b?token=x#f", out, sizeof out);
  ASSERT_STR_EQ(out, "https://api.example.test:8443/a/b");
  rd_redact_url("http://h/p", out, sizeof out);
  ASSERT_STR_EQ(out, "http://h/p");
}

/* A store URL is shown with its user, host, database and options, never
 * its password (userinfo or a credential-named query parameter). */
RD_TEST(redact_url_password_keeps_all_but_the_password) {
  char out[256];
  rd_redact_url_password("postgresql://ops:s3cr3t-pw@db.example.test:5433/redrive?sslmode=require",
                         out, sizeof out);
  ASSERT_STR_EQ(out, "postgresql://ops@db.example.test:5433/redrive?sslmode=require");
  rd_redact_url_password("postgres:///redrive?host=/tmp/x&password=hunter22&user=u", out,
                         sizeof out);
  ASSERT_STR_EQ(out, "postgres:///redrive?host=/tmp/x&user=u");
  rd_redact_url_password("postgresql://u@h/d?sslpassword=keypass99&application_name=rd", out,
                         sizeof out);
  ASSERT_STR_EQ(out, "postgresql://u@h/d?application_name=rd");
  rd_redact_url_password("postgresql://h/d", out, sizeof out);
  ASSERT_STR_EQ(out, "postgresql://h/d");
  /* a registered password typed where a password does not belong */
  ASSERT_OK(rd_redact_add("typed-secret-77", 15, NULL));
  rd_redact_url_password("postgresql://typed-secret-77@h/d", out, sizeof out);
  ASSERT_STR_EQ(out, "postgresql://" RD_REDACTED "@h/d");
  rd_redact_clear();
  /* truncated, always terminated */
  char tiny[12];
  rd_redact_url_password("postgresql://u:p@host/db", tiny, sizeof tiny);
  ASSERT_INT_EQ(strlen(tiny), sizeof tiny - 1);
}

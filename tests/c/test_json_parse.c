/* rd_json_parse: the strict RFC 8259 parse every JSON text goes through. */
#include "test.h"

#include "redrive.h"

#include <cJSON.h>

/* Parse exactly n bytes from a heap copy without a terminating NUL, so the
 * sanitizers catch any read past the end. */
static int parse_n(const char *text, size_t n, cJSON **out, rd_err *err) {
  char *buf = malloc(n ? n : 1);
  memcpy(buf, text, n);
  int r = rd_json_parse(buf, n, out, err);
  free(buf);
  return r;
}

static int parse_s(const char *text, cJSON **out, rd_err *err) {
  return parse_n(text, strlen(text), out, err);
}

RD_TEST(json_parse_1_strict_refusals_name_the_place) {
  static const struct { const char *text, *msg; } cases[] = {
    {"[012]", "json: invalid number at line 1, column 3 (byte 3)"},
    {"[1.]", "json: invalid number at line 1, column 4 (byte 4)"},
    {"[-.5]", "json: invalid number at line 1, column 3 (byte 3)"},
    {"[\"\\uqqqq\"]", "json: invalid escape in a string at line 1, column 4 (byte 4)"},
    {"[\"a\tb\"]", "json: control character in a string (it must be escaped) at line 1, column 4 (byte 4)"},
    {"[\f]", "json: syntax error at line 1, column 2 (byte 2)"},
    {"{\n \"a\": tru }", "json: syntax error at line 2, column 10 (byte 12)"},
    {"[\"\\udc00\"]", "json: unpaired UTF-16 surrogate in a \\u escape at line 1, column 3 (byte 3)"},
    {"[1e999]", "json: number out of range at line 1, column 2 (byte 2)"},
    {"[1", "json: unexpected end of input at line 1, column 3 (byte 3)"},
    {"\"\\u12", "json: unexpected end of input at line 1, column 3 (byte 3)"},
    {"[\"\xc3\x28\"]", "json: invalid UTF-8 at line 1, column 3 (byte 3)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cJSON *j = NULL;
    rd_err err = {0};
    ASSERT_INT_EQ(parse_s(cases[i].text, &j, &err), RD_EINVALID);
    ASSERT(j == NULL);
    ASSERT_STR_EQ(err.msg, cases[i].msg);
  }
}

RD_TEST(json_parse_2_valid_text_needs_no_nul) {
  cJSON *j = NULL;
  rd_err err = {0};
  /* "[1] 2" cut after "[1]": what follows len is not read */
  ASSERT_INT_EQ(parse_n("[1] 2", 3, &j, &err), 0);
  ASSERT_INT_EQ(cJSON_GetArraySize(j), 1);
  cJSON_Delete(j);
  ASSERT_INT_EQ(parse_n("12345", 2, &j, &err), 0);
  ASSERT_INT_EQ((int)j->valuedouble, 12);
  cJSON_Delete(j);
  ASSERT_INT_EQ(parse_s("\xEF\xBB\xBF {\"a\": [true, false, null, -0.5e-2, \"\\ud83d\\ude00\"]}", &j, &err), 0);
  cJSON *a = cJSON_GetObjectItem(j, "a");
  ASSERT_INT_EQ(cJSON_GetArraySize(a), 5);
  ASSERT_STR_EQ(cJSON_GetArrayItem(a, 4)->valuestring, "\xF0\x9F\x98\x80");
  cJSON_Delete(j);
  ASSERT_INT_EQ(parse_n("", 0, &j, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "json: unexpected end of input at line 1, column 1 (byte 1)");
}

RD_TEST(json_parse_3_depth_bound_exactly) {
  size_t n = RD_JSON_MAX_DEPTH + 1;
  char *s = malloc(2 * n);
  memset(s, '[', n);
  memset(s + n, ']', n);
  cJSON *j = NULL;
  rd_err err = {0};
  /* RD_JSON_MAX_DEPTH containers: fine */
  ASSERT_INT_EQ(rd_json_parse(s + 1, 2 * n - 2, &j, &err), 0);
  ASSERT_INT_EQ(rd_json_depth(j, RD_JSON_MAX_DEPTH), RD_JSON_MAX_DEPTH);
  cJSON_Delete(j);
  /* one more: a nesting error at the container that passes the bound */
  ASSERT_INT_EQ(rd_json_parse(s, 2 * n, &j, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "json: nesting deeper than 512 at line 1, column 513 (byte 513)");
  free(s);
}

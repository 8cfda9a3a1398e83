/* Conformance: the JSON Patch community suite (json-patch-tests, read from
 * ../shared/conformance at test time), RFC 7386 appendix A and RFC 6901
 * section 5/6 examples (tests/fixtures). Each case is json-conf-N. */
#include "test.h"

#include "redrive.h"

#include <cJSON.h>

static cJSON *load(const char *dir_env, const char *dflt, const char *rel) {
  const char *dir = getenv(dir_env);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : dflt, rel);
  FILE *f = fopen(path, "rb");
  if (!f) RD__FAIL("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  ASSERT(s && fread(s, 1, (size_t)n, f) == (size_t)n);
  s[n] = '\0';
  fclose(f);
  cJSON *j = cJSON_Parse(s);
  if (!j) RD__FAIL("cannot parse %s", path);
  free(s);
  return j;
}

static char *show(const cJSON *j) { return j ? cJSON_PrintUnformatted(j) : NULL; }

/* One json-patch-tests case; returns 1 if it passed. Prints why not. */
static int patch_case(const char *file, int i, const cJSON *c) {
  const cJSON *doc = cJSON_GetObjectItemCaseSensitive(c, "doc");
  const cJSON *patch = cJSON_GetObjectItemCaseSensitive(c, "patch");
  const cJSON *expected = cJSON_GetObjectItemCaseSensitive(c, "expected");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(c, "error");
  cJSON *work = cJSON_Duplicate(doc, 1);
  rd_err err = {0};
  int r = rd_json_patch_apply(&work, patch, &err), ok = 1;
  if (error) {
    /* Must fail, name the op, and leave the document as it was. */
    ok = r == RD_EINVALID && strncmp(err.msg, "op ", 3) == 0 && rd_json_equal(work, doc);
  } else if (expected) {
    ok = r == 0 && rd_json_equal(work, expected);
  }
  if (!ok) {
    char *d = show(work), *p = show(patch);
    fprintf(stderr, "  %s case %d failed (r=%d, %s): patch %s gave %s\n", file, i, r, err.msg, p,
            d);
    free(d);
    free(p);
  }
  cJSON_Delete(work);
  return ok;
}

static void run_suite(const char *file, int *passed, int *skipped) {
  char rel[256];
  snprintf(rel, sizeof rel, "conformance/json-patch-tests/%s", file);
  cJSON *cases = load("RD_SHARED", "../shared", rel);
  int i = 0, failed = 0;
  for (const cJSON *c = cases->child; c; c = c->next, i++) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "disabled")) ||
        !cJSON_GetObjectItemCaseSensitive(c, "patch")) {
      (*skipped)++;
      continue;
    }
    if (patch_case(file, i, c)) (*passed)++;
    else failed++;
  }
  cJSON_Delete(cases);
  printf("json-patch-tests %s: %d passed, %d failed, %d skipped\n", file, *passed, failed,
         *skipped);
  ASSERT_INT_EQ(failed, 0);
}

RD_TEST(json_conf_1_patch_suite) {
  int passed = 0, skipped = 0;
  run_suite("tests.json", &passed, &skipped);
  ASSERT_INT_EQ(passed, 92); /* every case but the 3 disabled */
}

RD_TEST(json_conf_2_patch_spec_suite) {
  int passed = 0, skipped = 0;
  run_suite("spec_tests.json", &passed, &skipped);
  ASSERT_INT_EQ(passed, 16); /* every case but the disabled one */
}

RD_TEST(json_conf_3_rfc7386) {
  cJSON *fx = load("RD_ROOT", ".", "tests/fixtures/rfc7386.json");
  int n = 0;
  const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fx, "cases");
  for (const cJSON *c = cases->child; c; c = c->next, n++) {
    cJSON *work = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "doc"), 1);
    ASSERT_OK(rd_json_merge_patch(&work, cJSON_GetObjectItemCaseSensitive(c, "patch"), NULL));
    if (!rd_json_equal(work, cJSON_GetObjectItemCaseSensitive(c, "expected")))
      RD__FAIL("RFC 7386 %s: got %s",
               cJSON_GetObjectItemCaseSensitive(c, "section")->valuestring, show(work));
    cJSON_Delete(work);
  }
  printf("rfc7386: %d passed\n", n);
  ASSERT_INT_EQ(n, 16);
  cJSON_Delete(fx);
}

RD_TEST(json_conf_4_rfc6901) {
  cJSON *fx = load("RD_ROOT", ".", "tests/fixtures/rfc6901.json");
  const cJSON *doc = cJSON_GetObjectItemCaseSensitive(fx, "doc");
  int n = 0;
  const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fx, "cases");
  for (const cJSON *c = cases->child; c; c = c->next, n++) {
    const char *ptr = cJSON_GetObjectItemCaseSensitive(c, "pointer")->valuestring;
    const cJSON *want = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "whole"))
                            ? doc
                            : cJSON_GetObjectItemCaseSensitive(c, "expected");
    const cJSON *got = NULL;
    rd_err err = {0};
    if (rd_json_pointer_get(doc, ptr, &got, &err) != 0 || !rd_json_equal(got, want))
      RD__FAIL("RFC 6901 pointer '%s': %s", ptr, err.msg);
  }
  const cJSON *errors = cJSON_GetObjectItemCaseSensitive(fx, "errors");
  for (const cJSON *c = errors->child; c; c = c->next, n++) {
    const char *ptr = cJSON_GetObjectItemCaseSensitive(c, "pointer")->valuestring;
    const char *code = cJSON_GetObjectItemCaseSensitive(c, "code")->valuestring;
    const cJSON *got = NULL;
    int r = rd_json_pointer_get(doc, ptr, &got, NULL);
    if (strcmp(rd_err_name(r), code) != 0)
      RD__FAIL("pointer '%s': expected %s, got %s", ptr, code, rd_err_name(r));
  }
  printf("rfc6901: %d passed\n", n);
  ASSERT_INT_EQ(n, 35);
  cJSON_Delete(fx);
}

/*
 * fuzz_blueprint: hostile blueprints and patches through src/json and
 * src/engine/blueprint.c.
 *
 * Input: DOC 0xFF OPS 0xFF POINTER (any part may be missing or not JSON).
 *  - rd_blueprint_validate(DOC) against a registry of module types: a list
 *    of problems, each with a message; walk and find_module agree;
 *  - rd_json_patch_apply(DOC, OPS) is all or nothing: on failure the
 *    document is unchanged and the message names the op;
 *  - rd_json_merge_patch(DOC, OPS); rd_json_diff(DOC, result) applied to DOC
 *    gives the result (diff/apply inverse);
 *  - rd_json_pointer_get / set / remove with POINTER.
 */
#define FUZZ_TARGET "fuzz_blueprint"
#include "fuzz_common.h"

#include "redrive.h"

#include <cJSON.h>
#include <stdint.h>

static rd_blueprint_registry_t *reg;

static cJSON *parse(const unsigned char *d, size_t n) {
  if (n == 0) return NULL;
  return cJSON_ParseWithLength((const char *)d, n);
}

static int count_cb(const cJSON *module, const char *pointer, void *ud) {
  (void)module;
  FUZZ_CHECK(pointer && pointer[0] == '/', "walk pointer");
  (*(int *)ud)++;
  return 0;
}

static void add_type(const char *type, const char *spec) {
  cJSON *j = cJSON_Parse(spec);
  rd_err err = {0};
  if (!j || rd_blueprint_registry_add(reg, type, j, &err) != 0) {
    fprintf(stderr, "fuzz harness: registry: %s\n", err.msg);
    abort();
  }
  cJSON_Delete(j);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (rd_blueprint_registry_new(&reg, NULL) != 0) abort();
  add_type("http:ActionSendData",
           "{\"fields\":{\"url\":\"string\",\"method\":\"string\",\"headers\":\"array\","
           "\"qs\":\"array\",\"gzip\":\"boolean\",\"timeout\":\"number\",\"data\":\"any\"},"
           "\"required\":[\"url\"]}");
  add_type("json:ParseJSON", "{\"fields\":{\"json\":\"string\"},\"required\":[\"json\"]}");
  add_type("util:SetVariable",
           "{\"fields\":{\"name\":\"string\",\"value\":\"any\",\"n\":\"integer\","
           "\"o\":\"object\"},\"strict\":true}");
  return 0;
}

static void validate(const cJSON *doc) {
  rd_blueprint_problem_t *p = NULL;
  size_t n = 0;
  rd_err err = {0};
  int r = rd_blueprint_validate(doc, reg, &p, &n, &err);
  FUZZ_CHECK(r == 0 || r == RD_ENOMEM, "validate fails only for memory");
  for (size_t i = 0; r == 0 && i < n; i++) {
    FUZZ_CHECK(p[i].message && p[i].message[0], "problem without a message");
    FUZZ_CHECK(p[i].pointer != NULL, "problem without a pointer");
  }
  if (r == 0) rd_blueprint_problems_free(p, n);
  int count = 0;
  r = rd_blueprint_each_module(doc, count_cb, &count, &err);
  FUZZ_CHECK(r == 0 || r == RD_EINVALID || r == RD_ENOMEM, "walk result");
  for (int64_t id = 0; id < 4; id++) {
    char *ptr = NULL;
    if (rd_blueprint_find_module(doc, id, &ptr, &err) == 0) {
      const cJSON *m = NULL;
      FUZZ_CHECK(rd_json_pointer_get(doc, ptr, &m, &err) == 0, "find_module pointer resolves");
      free(ptr);
    }
  }
}

static void patch(const cJSON *doc, const cJSON *ops) {
  rd_err err = {0};
  cJSON *copy = cJSON_Duplicate(doc, 1);
  if (!copy) return;
  cJSON *before = copy;
  int r = rd_json_patch_apply(&copy, ops, &err);
  if (r != 0) {
    FUZZ_CHECK(copy == before, "failed patch replaced the document");
    FUZZ_CHECK(fuzz_dup_keys(doc) || rd_json_equal(copy, doc), "failed patch changed the document");
    FUZZ_CHECK(err.msg[0] != 0, "patch error without a message");
  } else {
    /* the diff of the two documents turns one into the other */
    cJSON *d = NULL;
    if (rd_json_diff(doc, copy, &d, &err) == 0) {
      cJSON *again = cJSON_Duplicate(doc, 1);
      if (again) {
        int r2 = rd_json_patch_apply(&again, d, &err);
        if (r2 != 0) fprintf(stderr, "diff does not apply: %s\n", err.msg);
        FUZZ_CHECK(r2 == 0 || r2 == RD_ENOMEM || fuzz_dup_keys(doc), "diff applies");
        if (r2 == 0 && !fuzz_dup_keys(doc) && !fuzz_dup_keys(copy))
          FUZZ_CHECK(rd_json_equal(again, copy), "diff + apply gives the target");
        cJSON_Delete(again);
      }
      cJSON_Delete(d);
    }
  }
  cJSON_Delete(copy);
  copy = cJSON_Duplicate(doc, 1);
  if (copy && rd_json_merge_patch(&copy, ops, &err) == 0) validate(copy);
  cJSON_Delete(copy);
}

static void pointer(const cJSON *doc, const char *ptr) {
  rd_err err = {0};
  const cJSON *v = NULL;
  int r = rd_json_pointer_get(doc, ptr, &v, &err);
  FUZZ_CHECK(r == 0 || r == RD_EINVALID || r == RD_ENOT_FOUND, "pointer get result");
  cJSON *copy = cJSON_Duplicate(doc, 1);
  if (!copy) return;
  cJSON *val = cJSON_CreateString("x");
  if (rd_json_pointer_set(&copy, ptr, val, &err) == 0) {
    const cJSON *got = NULL;
    FUZZ_CHECK(rd_json_pointer_get(copy, ptr, &got, &err) == 0 || strstr(ptr, "-"),
          "set then get");
  } else {
    cJSON_Delete(val);
  }
  (void)rd_json_pointer_remove(copy, ptr, &err);
  cJSON_Delete(copy);
  char esc[64];
  (void)rd_json_pointer_escape(esc, sizeof esc, ptr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const unsigned char *rest, *rest2;
  size_t rn, rn2;
  size_t dn = fuzz_split(data, size, 0xFF, &rest, &rn);
  size_t on = fuzz_split(rest, rn, 0xFF, &rest2, &rn2);
  cJSON *doc = parse(data, dn);
  if (!doc) return 0;
  if (rd_json_depth(doc, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH) {
    cJSON_Delete(doc);
    return 0;
  }
  validate(doc);
  cJSON *ops = parse(rest, on);
  if (ops) patch(doc, ops);
  cJSON_Delete(ops);
  if (rn2 > 0 && rn2 < 4096) {
    char *ptr = malloc(rn2 + 1);
    if (ptr) {
      memcpy(ptr, rest2, rn2);
      ptr[rn2] = 0;
      pointer(doc, ptr);
      free(ptr);
    }
  }
  cJSON_Delete(doc);
  return 0;
}

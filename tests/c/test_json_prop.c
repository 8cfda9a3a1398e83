/* Property tests for src/json: random documents from a seeded PRNG, random
 * edits, and the laws the API promises (diff/apply round trip, atomic
 * apply, idempotent merge, set-then-get, order-independent equality).
 * RD_PROP_SEED / RD_PROP_CASES override the defaults to chase a failure. */
#include "test.h"

#include "redrive.h"

#include <cJSON.h>

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n) { /* xorshift64*, uniform enough for tests */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (uint32_t)((rng * 2685821657736338717u) >> 32) % n;
}

static void seed(uint64_t s) {
  const char *e = getenv("RD_PROP_SEED");
  rng = (e ? strtoull(e, NULL, 10) : s) | 1;
}

static int cases(int dflt) {
  const char *e = getenv("RD_PROP_CASES");
  return e ? atoi(e) : dflt;
}

/* Keys that exercise pointer escaping and array-looking names. */
static const char *const keys[] = {"a", "b", "c", "flow", "~", "/", "a/b", "m~n", "~1", "",
                                   "-", "0", "10", "k\"l", " ", "id"};
#define NKEYS (sizeof keys / sizeof *keys)

static cJSON *gen(int depth);

static cJSON *gen_scalar(void) {
  static const double nums[] = {0, 1, -1, 2.5, 1e10, -0.125, 42, 3};
  static const char *const strs[] = {"", "x", "{{1.a}}", "http:*", "caf\xc3\xa9", "~0/1"};
  switch (rnd(6)) {
  case 0: return cJSON_CreateNull();
  case 1: return cJSON_CreateBool(rnd(2));
  case 2: return cJSON_CreateNumber(nums[rnd(8)]);
  case 3: return cJSON_CreateNumber((double)rnd(1000));
  default: return cJSON_CreateString(strs[rnd(6)]);
  }
}

static cJSON *gen_container(int depth, int object) {
  cJSON *c = object ? cJSON_CreateObject() : cJSON_CreateArray();
  int n = (int)rnd(5);
  for (int i = 0; i < n; i++) {
    cJSON *v = gen(depth - 1);
    const char *k = keys[rnd(NKEYS)];
    if (!object) cJSON_AddItemToArray(c, v);
    else if (cJSON_GetObjectItemCaseSensitive(c, k)) cJSON_Delete(v); /* keys stay unique */
    else cJSON_AddItemToObject(c, k, v);
  }
  return c;
}

static cJSON *gen(int depth) {
  if (depth <= 0 || rnd(3) == 0) return gen_scalar();
  return gen_container(depth, rnd(2));
}

/* A uniformly-ish random node of doc (maybe the root), with its pointer. */
static cJSON *pick(cJSON *doc, char *ptr, size_t n) {
  cJSON *cur = doc;
  ptr[0] = '\0';
  while ((cJSON_IsArray(cur) || cJSON_IsObject(cur)) && cur->child && rnd(3) != 0) {
    int size = cJSON_GetArraySize(cur), i = (int)rnd((uint32_t)size);
    cJSON *c = cJSON_GetArrayItem(cur, i);
    size_t len = strlen(ptr);
    if (cJSON_IsArray(cur)) {
      snprintf(ptr + len, n - len, "/%d", i);
    } else {
      ptr[len] = '/';
      rd_json_pointer_escape(ptr + len + 1, n - len - 1, c->string);
    }
    cur = c;
  }
  return cur;
}

/* One random edit of doc in place, through the public pointer API. */
static void mutate(cJSON **doc) {
  char ptr[4096];
  cJSON *node = pick(*doc, ptr, sizeof ptr);
  size_t len = strlen(ptr);
  int r = 0;
  switch (rnd(4)) {
  case 0: /* replace the node */
    r = rd_json_pointer_set(doc, ptr, gen(3), NULL);
    break;
  case 1: /* remove it (not the root) */
    if (len) r = rd_json_pointer_remove(*doc, ptr, NULL);
    break;
  default: /* add a child */
    if (cJSON_IsArray(node)) {
      snprintf(ptr + len, sizeof ptr - len, rnd(2) ? "/-" : "/%d", cJSON_GetArraySize(node));
    } else if (cJSON_IsObject(node)) {
      ptr[len] = '/';
      rd_json_pointer_escape(ptr + len + 1, sizeof ptr - len - 1, keys[rnd(NKEYS)]);
    } else {
      break;
    }
    cJSON *v = gen(2);
    if ((r = rd_json_pointer_set(doc, ptr, v, NULL)) != 0) cJSON_Delete(v);
  }
  ASSERT_OK(r);
}

static void fail_pair(const char *what, const cJSON *a, const cJSON *b, const cJSON *extra) {
  char *sa = cJSON_PrintUnformatted(a), *sb = cJSON_PrintUnformatted(b);
  char *se = extra ? cJSON_PrintUnformatted(extra) : NULL;
  RD__FAIL("%s\n  a: %s\n  b: %s\n  ops: %s", what, sa, sb, se ? se : "-");
}

RD_TEST(json_prop_1_diff_apply_roundtrip) {
  seed(1);
  int n = cases(3000);
  for (int i = 0; i < n; i++) {
    cJSON *a = gen(5), *b;
    if (rnd(4) == 0) {
      b = gen(5); /* unrelated pair */
    } else {
      b = cJSON_Duplicate(a, 1);
      for (int k = 1 + (int)rnd(4); k > 0; k--) mutate(&b);
    }
    cJSON *ops = NULL, *c = cJSON_Duplicate(a, 1);
    rd_err err = {0};
    ASSERT_OK(rd_json_diff(a, b, &ops, &err));
    if (rd_json_patch_apply(&c, ops, &err) != 0) fail_pair(err.msg, a, b, ops);
    if (!rd_json_equal(c, b)) fail_pair("diff/apply round trip differs", a, b, ops);
    if (rd_json_equal(a, b) && cJSON_GetArraySize(ops) != 0) fail_pair("diff of equal", a, b, ops);
    cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c), cJSON_Delete(ops);
  }
}

RD_TEST(json_prop_2_apply_is_atomic) {
  seed(2);
  int n = cases(2000);
  for (int i = 0; i < n; i++) {
    cJSON *a = gen(5), *b = cJSON_Duplicate(a, 1), *ops = NULL;
    for (int k = 1 + (int)rnd(3); k > 0; k--) mutate(&b);
    ASSERT_OK(rd_json_diff(a, b, &ops, NULL));
    /* A failing op at the end, after ops that did change the work copy. */
    cJSON *bad = cJSON_CreateObject();
    cJSON_AddStringToObject(bad, "op", rnd(2) ? "test" : "remove");
    cJSON_AddStringToObject(bad, "path", "/no such member/x");
    cJSON_AddNumberToObject(bad, "value", 1);
    cJSON_AddItemToArray(ops, bad);
    cJSON *c = cJSON_Duplicate(a, 1);
    rd_err err = {0};
    ASSERT_INT_EQ(rd_json_patch_apply(&c, ops, &err), RD_EINVALID);
    char want[32];
    snprintf(want, sizeof want, "op %d (", cJSON_GetArraySize(ops) - 1);
    ASSERT_CONTAINS(err.msg, want);
    if (!rd_json_equal(c, a)) fail_pair("failed apply changed the document", a, c, ops);
    cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c), cJSON_Delete(ops);
  }
}

/* Copy with object members in reverse order. */
static cJSON *reversed(const cJSON *j) {
  if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) return cJSON_Duplicate(j, 1);
  cJSON *out = cJSON_IsObject(j) ? cJSON_CreateObject() : cJSON_CreateArray();
  for (const cJSON *c = j->child; c; c = c->next) {
    cJSON *v = reversed(c);
    if (cJSON_IsArray(j)) {
      cJSON_AddItemToArray(out, v);
    } else {
      cJSON_AddItemToObject(out, c->string, v);
      /* move the new last member to the front */
      cJSON *last = cJSON_DetachItemViaPointer(out, v);
      last->next = out->child;
      last->prev = out->child ? out->child->prev : last;
      if (out->child) out->child->prev = last;
      out->child = last;
    }
  }
  return out;
}

RD_TEST(json_prop_3_equal_ignores_member_order) {
  seed(3);
  for (int i = 0, n = cases(3000); i < n; i++) {
    cJSON *a = gen(5), *r = reversed(a);
    char *text = cJSON_PrintUnformatted(a);
    cJSON *parsed = cJSON_Parse(text);
    if (!rd_json_equal(a, r)) fail_pair("reordered copy differs", a, r, NULL);
    if (!rd_json_equal(a, parsed)) fail_pair("print/parse differs", a, parsed, NULL);
    cJSON *b = cJSON_Duplicate(a, 1);
    mutate(&b);
    /* equal must agree with an empty diff */
    cJSON *ops = NULL;
    ASSERT_OK(rd_json_diff(a, b, &ops, NULL));
    ASSERT_INT_EQ(rd_json_equal(a, b), cJSON_GetArraySize(ops) == 0);
    free(text);
    cJSON_Delete(a), cJSON_Delete(r), cJSON_Delete(parsed), cJSON_Delete(b), cJSON_Delete(ops);
  }
}

RD_TEST(json_prop_4_merge_idempotent) {
  seed(4);
  for (int i = 0, n = cases(3000); i < n; i++) {
    cJSON *a = gen(4), *p = gen(4), *once = cJSON_Duplicate(a, 1);
    ASSERT_OK(rd_json_merge_patch(&once, p, NULL));
    cJSON *twice = cJSON_Duplicate(once, 1);
    ASSERT_OK(rd_json_merge_patch(&twice, p, NULL));
    if (!rd_json_equal(once, twice)) fail_pair("merge not idempotent", once, twice, p);
    if (!cJSON_IsObject(p) && !rd_json_equal(once, p)) fail_pair("non-object patch", once, p, p);
    cJSON_Delete(a), cJSON_Delete(p), cJSON_Delete(once), cJSON_Delete(twice);
  }
}

RD_TEST(json_prop_5_set_then_get) {
  seed(5);
  for (int i = 0, n = cases(3000); i < n; i++) {
    cJSON *a = gen(5);
    char ptr[4096];
    pick(a, ptr, sizeof ptr);
    cJSON *v = gen(3), *want = cJSON_Duplicate(v, 1);
    const cJSON *got = NULL;
    ASSERT_OK(rd_json_pointer_set(&a, ptr, v, NULL));
    ASSERT_OK(rd_json_pointer_get(a, ptr, &got, NULL));
    if (!rd_json_equal(got, want)) fail_pair(ptr, got, want, NULL);
    cJSON_Delete(a), cJSON_Delete(want);
  }
}

/* Random bytes and random op objects must never crash apply. */
RD_TEST(json_prop_6_garbage_patches) {
  seed(6);
  static const char *const ops[] = {"add", "remove", "replace", "move", "copy", "test", "x"};
  static const char *const paths[] = {"", "/", "/a", "/a/0", "/a/-", "/~", "/~2", "a", "/0",
                                      "#/a", "#/%41", "/a/01", "/-"};
  for (int i = 0, n = cases(3000); i < n; i++) {
    cJSON *doc = gen(4), *before = cJSON_Duplicate(doc, 1), *patch = cJSON_CreateArray();
    for (int k = (int)rnd(4); k >= 0; k--) {
      cJSON *o = rnd(8) ? cJSON_CreateObject() : gen(2);
      if (cJSON_IsObject(o) && rnd(8)) cJSON_AddStringToObject(o, "op", ops[rnd(7)]);
      if (cJSON_IsObject(o) && rnd(8)) cJSON_AddStringToObject(o, "path", paths[rnd(13)]);
      if (cJSON_IsObject(o) && rnd(2)) cJSON_AddStringToObject(o, "from", paths[rnd(13)]);
      if (cJSON_IsObject(o) && rnd(2)) cJSON_AddItemToObject(o, "value", gen(2));
      cJSON_AddItemToArray(patch, o);
    }
    rd_err err = {0};
    if (rd_json_patch_apply(&doc, patch, &err) != 0 && !rd_json_equal(doc, before))
      fail_pair("failed garbage patch changed the document", before, doc, patch);
    cJSON_Delete(doc), cJSON_Delete(before), cJSON_Delete(patch);
  }
}

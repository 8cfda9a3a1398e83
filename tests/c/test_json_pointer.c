/* Unit tests for src/json: exact error texts (once per error path), edge
 * cases of pointers and patches, and the depth bound. */
#include "test.h"

#include "redrive.h"

#include <cJSON.h>

static cJSON *parse(const char *s) {
  cJSON *j = cJSON_Parse(s);
  if (!j) RD__FAIL("bad test JSON: %s", s);
  return j;
}

/* doc must print (unformatted) exactly as want. */
static void assert_doc(const cJSON *doc, const char *want) {
  char *s = cJSON_PrintUnformatted(doc);
  ASSERT_STR_EQ(s, want);
  free(s);
}

RD_TEST(json_ptr_1_get) {
  cJSON *doc = parse("{\"flow\":[{\"id\":1,\"mapper\":{\"url\":\"u\"}}],\"a/b\":{\"m~n\":2}}");
  const cJSON *v = NULL;
  rd_err err = {0};
  ASSERT_OK(rd_json_pointer_get(doc, "/flow/0/mapper/url", &v, &err));
  ASSERT_STR_EQ(v->valuestring, "u");
  ASSERT_OK(rd_json_pointer_get(doc, "/a~1b/m~0n", &v, &err));
  ASSERT_INT_EQ(v->valueint, 2);
  ASSERT_OK(rd_json_pointer_get(doc, "", &v, &err));
  ASSERT(v == doc);
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "/flow/1", &v, &err), RD_ENOT_FOUND);
  ASSERT_STR_EQ(err.msg, "pointer '/flow/1': path not found");
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "flow", &v, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "pointer 'flow': invalid pointer: must start with '/'");
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "/a~2", &v, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "pointer '/a~2': invalid pointer: '~' must be followed by 0 or 1");
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "#/a%4", &v, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "pointer '#/a%4': invalid pointer: bad percent-escape");
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "#/a%00", &v, NULL), RD_EINVALID);
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "/flow/-", &v, NULL), RD_ENOT_FOUND);
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "/flow/0/id/x", &v, NULL), RD_ENOT_FOUND);
  ASSERT_INT_EQ(rd_json_pointer_get(doc, "/flow/99999999999999999999", &v, NULL), RD_ENOT_FOUND);
  cJSON_Delete(doc);
}

RD_TEST(json_ptr_2_set_remove) {
  cJSON *doc = parse("{\"a\":[1,2],\"b\":{\"c\":1,\"d\":2}}");
  rd_err err = {0};
  ASSERT_OK(rd_json_pointer_set(&doc, "/a/-", cJSON_CreateNumber(3), &err));
  ASSERT_OK(rd_json_pointer_set(&doc, "/a/3", cJSON_CreateNumber(4), &err)); /* == length */
  ASSERT_OK(rd_json_pointer_set(&doc, "/a/0", cJSON_CreateNumber(0), &err)); /* replaces */
  ASSERT_OK(rd_json_pointer_set(&doc, "/b/c", cJSON_CreateString("x"), &err));
  ASSERT_OK(rd_json_pointer_set(&doc, "/b/e", cJSON_CreateTrue(), &err));
  assert_doc(doc, "{\"a\":[0,2,3,4],\"b\":{\"c\":\"x\",\"d\":2,\"e\":true}}");
  cJSON *v = cJSON_CreateNull();
  ASSERT_INT_EQ(rd_json_pointer_set(&doc, "/a/9", v, &err), RD_ENOT_FOUND);
  ASSERT_STR_EQ(err.msg, "pointer '/a/9': path not found (index 9, array length 4)");
  ASSERT_INT_EQ(rd_json_pointer_set(&doc, "/a/x", v, &err), RD_ENOT_FOUND);
  ASSERT_STR_EQ(err.msg, "pointer '/a/x': path not found ('x' is not an array index)");
  ASSERT_INT_EQ(rd_json_pointer_set(&doc, "/q/r", v, &err), RD_ENOT_FOUND);
  ASSERT_INT_EQ(rd_json_pointer_set(&doc, "/b/c/z", v, &err), RD_ENOT_FOUND);
  ASSERT_STR_EQ(err.msg, "pointer '/b/c/z': path not found (parent is not a container)");
  cJSON_Delete(v); /* failures leave value with the caller */
  ASSERT_OK(rd_json_pointer_remove(doc, "/a/1", &err));
  ASSERT_OK(rd_json_pointer_remove(doc, "/b/d", &err));
  assert_doc(doc, "{\"a\":[0,3,4],\"b\":{\"c\":\"x\",\"e\":true}}");
  ASSERT_INT_EQ(rd_json_pointer_remove(doc, "", &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "pointer '': cannot remove the document root");
  ASSERT_INT_EQ(rd_json_pointer_remove(doc, "/b/d", &err), RD_ENOT_FOUND);
  ASSERT_OK(rd_json_pointer_set(&doc, "", cJSON_CreateString("root"), &err));
  assert_doc(doc, "\"root\"");
  cJSON_Delete(doc);
}

RD_TEST(json_ptr_3_escape) {
  char buf[16];
  ASSERT_INT_EQ(rd_json_pointer_escape(buf, sizeof buf, "a/b~c"), 7);
  ASSERT_STR_EQ(buf, "a~1b~0c");
  ASSERT_INT_EQ(rd_json_pointer_escape(buf, 4, "a/b~c"), 7); /* truncated, like snprintf */
  ASSERT_STR_EQ(buf, "a~1");
  ASSERT_INT_EQ(rd_json_pointer_escape(NULL, 0, "~~"), 4);
}

RD_TEST(json_patch_1_messages) {
  cJSON *doc = parse("{\"flow\":[{\"id\":1,\"mapper\":{}}]}"), *before = cJSON_Duplicate(doc, 1);
  static const struct {
    const char *ops, *msg;
  } cases[] = {
    {"{}", "patch: expected an array of ops"},
    {"[1]", "op 0: operation must be an object"},
    {"[{\"path\":\"/a\"}]", "op 0: missing 'op' (a string)"},
    {"[{\"op\":\"spam\",\"path\":\"/a\"}]", "op 0 (spam /a): unknown op 'spam'"},
    {"[{\"op\":\"add\"}]", "op 0: missing 'path' (a string)"},
    {"[{\"op\":\"add\",\"path\":\"/a\"}]", "op 0 (add /a): missing 'value'"},
    {"[{\"op\":\"copy\",\"path\":\"/a\"}]", "op 0 (copy /a): missing 'from' (a string)"},
    {"[{\"op\":\"test\",\"path\":\"\",\"value\":{}}]", "op 0 (test ): test failed: value differs"},
    {"[{\"op\":\"add\",\"path\":\"/x\",\"value\":1},"
     "{\"op\":\"replace\",\"path\":\"/flow/3/mapper/url\",\"value\":\"u\"}]",
     "op 1 (replace /flow/3/mapper/url): path not found"},
    {"[{\"op\":\"move\",\"from\":\"/flow\",\"path\":\"/flow/0/x\"}]",
     "op 0 (move /flow/0/x from /flow): cannot move a value into one of its children"},
    {"[{\"op\":\"move\",\"from\":\"/nope\",\"path\":\"/x\"}]",
     "op 0 (move /x from /nope): from: path not found"},
    {"[{\"op\":\"copy\",\"from\":\"nope\",\"path\":\"/x\"}]",
     "op 0 (copy /x from nope): from: invalid pointer: must start with '/'"},
    {"[{\"op\":\"remove\",\"path\":\"\"}]", "op 0 (remove ): cannot remove the document root"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *ops = parse(cases[i].ops);
    rd_err err = {0};
    ASSERT_INT_EQ(rd_json_patch_apply(&doc, ops, &err), RD_EINVALID);
    ASSERT_STR_EQ(err.msg, cases[i].msg);
    ASSERT(rd_json_equal(doc, before));
    cJSON_Delete(ops);
  }
  cJSON_Delete(doc);
  cJSON_Delete(before);
}

RD_TEST(json_patch_2_ops) {
  cJSON *doc = parse("{\"a\":[1,2,3],\"o\":{\"k\":1}}");
  cJSON *ops = parse("[{\"op\":\"add\",\"path\":\"/a/1\",\"value\":9},"
                     "{\"op\":\"move\",\"from\":\"/o/k\",\"path\":\"/a/0\"},"
                     "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/o/copy\"},"
                     "{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"},"
                     "{\"op\":\"test\",\"path\":\"/a/1\",\"value\":1.0},"
                     "{\"op\":\"replace\",\"path\":\"/o\",\"value\":{\"z\":[]}}]");
  rd_err err = {0};
  ASSERT_OK(rd_json_patch_apply(&doc, ops, &err));
  assert_doc(doc, "{\"a\":[1,1,9,2,3],\"o\":{\"z\":[]}}");
  cJSON_Delete(ops);
  /* a value moved out of an object into an array loses its member name */
  ops = parse("[{\"op\":\"move\",\"from\":\"/o/z\",\"path\":\"/a/-\"}]");
  ASSERT_OK(rd_json_patch_apply(&doc, ops, &err));
  ASSERT(doc->child->child->prev->string == NULL);
  assert_doc(doc, "{\"a\":[1,1,9,2,3,[]],\"o\":{}}");
  cJSON_Delete(ops);
  cJSON_Delete(doc);
}

/* "[[[[...1...]]]]" nested n deep. */
static char *nested(int n) {
  char *s = malloc((size_t)n * 2 + 2), *w = s;
  for (int i = 0; i < n; i++) *w++ = '[';
  *w++ = '1';
  for (int i = 0; i < n; i++) *w++ = ']';
  *w = '\0';
  return s;
}

RD_TEST(json_depth_1_bounded) {
  char *s = nested(RD_JSON_MAX_DEPTH), *t = nested(RD_JSON_MAX_DEPTH + 1);
  cJSON *ok = parse(s), *deep = parse(t), *doc = parse("{\"a\":{}}");
  ASSERT_INT_EQ(rd_json_depth(ok, RD_JSON_MAX_DEPTH), RD_JSON_MAX_DEPTH);
  ASSERT_INT_EQ(rd_json_depth(deep, RD_JSON_MAX_DEPTH), RD_JSON_MAX_DEPTH + 1);
  ASSERT_INT_EQ(rd_json_depth(deep, 3), 4); /* stops counting early */
  rd_err err = {0};
  /* 1 + 512 containers would be too deep */
  cJSON *v = cJSON_Duplicate(ok, 1);
  ASSERT_INT_EQ(rd_json_pointer_set(&doc, "/b", v, &err), RD_EINVALID);
  ASSERT_STR_EQ(err.msg, "pointer '/b': result would nest deeper than 512");
  cJSON_Delete(v);
  cJSON *ops = cJSON_CreateArray(), *op = cJSON_CreateObject();
  cJSON_AddStringToObject(op, "op", "add");
  cJSON_AddStringToObject(op, "path", "/a/b");
  cJSON_AddItemToObject(op, "value", cJSON_Duplicate(ok, 1));
  cJSON_AddItemToArray(ops, op);
  ASSERT_INT_EQ(rd_json_patch_apply(&doc, ops, &err), RD_EINVALID);
  ASSERT_CONTAINS(err.msg, "deeper than 512");
  ASSERT_INT_EQ(rd_json_merge_patch(&doc, deep, &err), RD_EINVALID);
  cJSON *out = NULL;
  ASSERT_INT_EQ(rd_json_diff(doc, deep, &out, &err), RD_EINVALID);
  ASSERT_INT_EQ(rd_json_patch_apply(&deep, ops, &err), RD_EINVALID);
  /* self-copies can double depth at each op: each one is refused */
  cJSON *grow = parse("[{\"op\":\"copy\",\"from\":\"\",\"path\":\"/0\"}]");
  for (int i = 0; i < 20; i++) rd_json_patch_apply(&ok, grow, NULL);
  ASSERT(rd_json_depth(ok, RD_JSON_MAX_DEPTH) <= RD_JSON_MAX_DEPTH);
  free(s), free(t);
  cJSON_Delete(ok), cJSON_Delete(deep), cJSON_Delete(doc), cJSON_Delete(ops);
  cJSON_Delete(grow);
}

RD_TEST(json_equal_1_numbers_and_order) {
  cJSON *a = parse("{\"x\":1,\"y\":[1.0,{\"p\":null,\"q\":\"s\"}]}");
  cJSON *b = parse("{\"y\":[1,{\"q\":\"s\",\"p\":null}],\"x\":1.000}");
  cJSON *c = parse("{\"y\":[1,{\"q\":\"s\",\"p\":null}],\"x\":1,\"z\":0}");
  cJSON *d = parse("{\"y\":[{\"q\":\"s\",\"p\":null},1],\"x\":1}");
  ASSERT(rd_json_equal(a, b));
  ASSERT(!rd_json_equal(a, c) && !rd_json_equal(c, a));
  ASSERT(!rd_json_equal(a, d)); /* arrays are ordered */
  cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c), cJSON_Delete(d);
}

RD_TEST(json_diff_1_minimal) {
  cJSON *a = parse("{\"flow\":[{\"id\":1},{\"id\":2},{\"id\":3}],\"name\":\"s\"}");
  cJSON *b = parse("{\"flow\":[{\"id\":1},{\"id\":9},{\"id\":2},{\"id\":3}],\"name\":\"t\"}");
  cJSON *ops = NULL;
  ASSERT_OK(rd_json_diff(a, b, &ops, NULL));
  assert_doc(ops, "[{\"op\":\"add\",\"path\":\"/flow/1\",\"value\":{\"id\":9}},"
                  "{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"t\"}]");
  cJSON_Delete(ops);
  ASSERT_OK(rd_json_diff(b, a, &ops, NULL));
  assert_doc(ops, "[{\"op\":\"remove\",\"path\":\"/flow/1\"},"
                  "{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"s\"}]");
  cJSON_Delete(ops), cJSON_Delete(a), cJSON_Delete(b);
}

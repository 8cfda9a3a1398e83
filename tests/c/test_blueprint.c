/* Blueprint core: registry, validation (every problem, with module id and
 * field), module walk through router routes, glob. */
#include "test.h"

#include "redrive.h"

#include <cJSON.h>

/* A Make-shaped blueprint: http module, a router with two routes (one with
 * a filter), an error handler. Single quotes become double quotes. */
static const char good[] =
    "{'name': 'Orders',"
    " 'flow': ["
    "  {'id': 1, 'module': 'http:ActionSendData', 'version': 3,"
    "   'mapper': {'url': 'https://x.test/orders', 'method': 'get', 'timeout': 30,"
    "              'parseResponse': true, 'data': '{{1.body}}'},"
    "   'onerror': [{'id': 7, 'module': 'builtin:Break',"
    "                'mapper': {'retry': true, 'count': '3', 'interval': '15'}}]},"
    "  {'id': 2, 'module': 'builtin:BasicRouter', 'routes': ["
    "    {'flow': [{'id': 3, 'module': 'json:ParseJSON', 'mapper': {'json': '{{1.data}}'}}]},"
    "    {'filter': {'name': 'big', 'conditions': [[{'a': '{{1.n}}', 'o': 'number:greater',"
    "                                               'b': '10'}]]},"
    "     'flow': [{'id': 4, 'module': 'http:ActionSendData', 'mapper': {'url': '{{3.url}}'}},"
    "              {'id': 5, 'module': 'builtin:BasicRouter', 'routes': ["
    "                 {'flow': [{'id': 6, 'module': 'util:SetVariable', 'mapper': {}}]}]}]}]}],"
    " 'metadata': {'version': 1, 'scenario': {'maxErrors': 3, 'autoCommit': true,"
    "                                         'roundtrips': 1, 'dlq': true}}}";

static cJSON *parse_q(const char *s) {
  char *t = strdup(s);
  for (char *p = t; *p; p++)
    if (*p == '\'') *p = '"';
  cJSON *j = cJSON_Parse(t);
  if (!j) RD__FAIL("bad test JSON: %s", t);
  free(t);
  return j;
}

static rd_blueprint_registry_t *registry(void) {
  rd_blueprint_registry_t *reg = NULL;
  ASSERT_OK(rd_blueprint_registry_new(&reg, NULL));
  static const struct {
    const char *type, *spec;
  } mods[] = {
    {"http:ActionSendData",
     "{'fields': {'url': 'string', 'method': 'string', 'timeout': 'integer', 'data': 'string',"
     "            'parseResponse': 'boolean',"
     "            'headers': {'type': 'array', 'items': {'type': 'object',"
     "                        'fields': {'name': 'string', 'value': 'any'}, 'required': ['name']}}},"
     " 'required': ['url']}"},
    {"json:ParseJSON", "{'fields': {'json': 'string'}, 'required': ['json'], 'strict': true}"},
    {"util:SetVariable", "{}"},
    {"builtin:Break", "{'fields': {'retry': 'boolean', 'count': 'any', 'interval': 'any'}}"},
  };
  for (size_t i = 0; i < sizeof mods / sizeof *mods; i++) {
    cJSON *spec = parse_q(mods[i].spec);
    ASSERT_OK(rd_blueprint_registry_add(reg, mods[i].type, spec, NULL));
    cJSON_Delete(spec);
  }
  return reg;
}

RD_TEST(blueprint_1_valid) {
  rd_blueprint_registry_t *reg = registry();
  cJSON *bp = parse_q(good);
  rd_blueprint_problem_t *p = NULL;
  size_t n = 99;
  ASSERT_OK(rd_blueprint_validate(bp, reg, &p, &n, NULL));
  for (size_t i = 0; i < n; i++) fprintf(stderr, "  %s: %s\n", p[i].field, p[i].message);
  ASSERT_INT_EQ(n, 0);
  rd_blueprint_problems_free(p, n);
  ASSERT_OK(rd_blueprint_validate(bp, NULL, &p, &n, NULL)); /* structure only */
  ASSERT_INT_EQ(n, 0);
  rd_blueprint_problems_free(p, n);
  cJSON_Delete(bp);
  rd_blueprint_registry_free(reg);
}

/* Apply edits (a JSON Patch) to the good blueprint and expect exactly
 * these problems, in this order: "id|field|pointer|message" lines. */
static void expect_problems(const char *patch, const char *const *want, size_t nwant) {
  rd_blueprint_registry_t *reg = registry();
  cJSON *bp = parse_q(good), *ops = parse_q(patch);
  rd_err err = {0};
  if (rd_json_patch_apply(&bp, ops, &err)) RD__FAIL("%s", err.msg);
  rd_blueprint_problem_t *p = NULL;
  size_t n = 0;
  ASSERT_OK(rd_blueprint_validate(bp, reg, &p, &n, NULL));
  for (size_t i = 0; i < n || i < nwant; i++) {
    char got[1024] = "(none)", id[24] = "-";
    if (i < n && p[i].has_module) snprintf(id, sizeof id, "%lld", (long long)p[i].module);
    if (i < n) snprintf(got, sizeof got, "%s|%s|%s|%s", id, p[i].field, p[i].pointer, p[i].message);
    ASSERT_STR_EQ(got, i < nwant ? want[i] : "(none)");
  }
  rd_blueprint_problems_free(p, n);
  cJSON_Delete(bp), cJSON_Delete(ops);
  rd_blueprint_registry_free(reg);
}

RD_TEST(blueprint_2_problems) {
  static const char *const want[] = {
    "-|name|/name|name must be a string, got number",
    "1|mapper.url|/flow/0/mapper/url|expected string, got number",
    "1|mapper.timeout|/flow/0/mapper/timeout|expected integer, got number",
    "1|onerror[0].module|/flow/0/onerror/0/module|"
    "error handler must be builtin:Break, Resume, Ignore, Commit or Rollback",
    "3|mapper.json|/flow/1/routes/0/flow/0/mapper/json|required field missing",
    "3|mapper.extra|/flow/1/routes/0/flow/0/mapper/extra|unknown field",
    "2|routes[1].filter|/flow/1/routes/1/filter|filter must be an object, got string",
    "1|id|/flow/1/routes/1/flow/0/id|duplicate id 1 (also at /flow/0)",
    "-|routes[1].flow[1]|/flow/1/routes/1/flow/1|module must be an object, got number",
    "-|module|/flow/2|a module follows router 2: a router must be the last module of its flow",
    "-|id|/flow/2/id|missing module id",
    "-|module|/flow/2/module|unknown module type 'nope:Nope'",
    "-|metadata.scenario.maxErrors|/metadata/scenario/maxErrors|expected integer, got string",
    "-|metadata.scenario.dlq|/metadata/scenario/dlq|expected boolean, got number",
  };
  expect_problems(
      "[{'op': 'replace', 'path': '/name', 'value': 5},"
      " {'op': 'replace', 'path': '/flow/0/mapper/url', 'value': 12},"
      " {'op': 'replace', 'path': '/flow/0/mapper/timeout', 'value': 2.5},"
      " {'op': 'replace', 'path': '/flow/0/onerror/0/module', 'value': 'builtin:Retry'},"
      " {'op': 'move', 'from': '/flow/1/routes/0/flow/0/mapper/json',"
      "  'path': '/flow/1/routes/0/flow/0/mapper/extra'},"
      " {'op': 'replace', 'path': '/flow/1/routes/1/filter', 'value': 'x'},"
      " {'op': 'replace', 'path': '/flow/1/routes/1/flow/0/id', 'value': 1},"
      " {'op': 'replace', 'path': '/flow/1/routes/1/flow/1', 'value': 5},"
      " {'op': 'add', 'path': '/flow/-', 'value': {'module': 'nope:Nope'}},"
      " {'op': 'replace', 'path': '/metadata/scenario/maxErrors', 'value': '3'},"
      " {'op': 'replace', 'path': '/metadata/scenario/dlq', 'value': 1}]",
      want, sizeof want / sizeof *want);
}

RD_TEST(blueprint_3_structure) {
  static const char *const want1[] = {"-|flow|/flow|flow must be an array of modules, got object"};
  expect_problems("[{'op': 'replace', 'path': '/flow', 'value': {}}]", want1, 1);
  static const char *const want2[] = {
    "2|routes|/flow/0/routes|a router needs routes (an array), got nothing",
    "1|module|/flow/1|module 1 follows router 2: a router must be the last module of its flow",
    "1|onerror|/flow/1/onerror|onerror must be an array of error handlers, got object",
    "-|metadata|/metadata|metadata must be an object, got array",
  };
  expect_problems("[{'op': 'remove', 'path': '/flow/1/routes'},"
                  " {'op': 'replace', 'path': '/flow/0/onerror', 'value': {}},"
                  " {'op': 'move', 'from': '/flow/1', 'path': '/flow/0'},"
                  " {'op': 'replace', 'path': '/metadata', 'value': []}]",
                  want2, 4);
  static const char *const want3[] = {
    "-|id|/flow/0/id|id must be an integer, got string",
    "-|onerror[1].id|/flow/0/onerror/1/id|duplicate id 7 (also at /flow/0/onerror/0)",
    "4|routes[0].flow|/flow/1/routes/0/flow|flow must be an array of modules, got nothing",
    "5|module|/flow/1/routes/1/flow/0/module|builtin:Ignore is an error handler: only valid "
    "in onerror",
  };
  expect_problems("[{'op': 'remove', 'path': '/flow/1/routes/0/flow'},"
                  " {'op': 'replace', 'path': '/flow/1/routes/1/flow/1/module',"
                  "  'value': 'builtin:Ignore'},"
                  " {'op': 'replace', 'path': '/flow/1/id', 'value': 4},"
                  " {'op': 'remove', 'path': '/flow/1/routes/1/flow/0'},"
                  " {'op': 'replace', 'path': '/flow/0/id', 'value': '1'},"
                  " {'op': 'add', 'path': '/flow/0/onerror/-',"
                  "  'value': {'id': 7, 'module': 'builtin:Resume'}}]",
                  want3, 4);
}

RD_TEST(blueprint_4_registry_specs) {
  rd_blueprint_registry_t *reg = NULL;
  ASSERT_OK(rd_blueprint_registry_new(&reg, NULL));
  static const struct {
    const char *spec, *msg;
  } bad[] = {
    {"[]", "x:Y: spec must be an object"},
    {"{'fields': {'a': 'str'}}",
     "x:Y: field 'a': type must be string, number, integer, boolean, array, object, url or any, "
     "or {type, items} / {type, fields, required}"},
    {"{'fields': {'a': {'type': 'string', 'items': 'any'}}}",
     "x:Y: field 'a': type must be string, number, integer, boolean, array, object, url or any, "
     "or {type, items} / {type, fields, required}"},
    {"{'fields': {'a': {'type': 'array', 'fields': {}}}}",
     "x:Y: field 'a': type must be string, number, integer, boolean, array, object, url or any, "
     "or {type, items} / {type, fields, required}"},
    {"{'fields': {'a': {'type': 'array', 'items': {'type': 'object', 'fields': {'b': 'text'}}}}}",
     "x:Y: field 'a.items.b': type must be string, number, integer, boolean, array, object, url "
     "or any, or {type, items} / {type, fields, required}"},
    {"{'fields': {'a': {'type': 'object', 'fields': []}}}",
     "x:Y: field 'a': fields must be an object"},
    {"{'fields': {'a': {'type': 'object', 'required': [2]}}}",
     "x:Y: field 'a': required must be an array of names"},
    {"{'required': 'a'}", "x:Y: required must be an array of names"},
    {"{'required': [1]}", "x:Y: required must be an array of names"},
    {"{'strict': 1}", "x:Y: strict must be a boolean"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *spec = parse_q(bad[i].spec);
    rd_err err = {0};
    ASSERT_INT_EQ(rd_blueprint_registry_add(reg, "x:Y", spec, &err), RD_EINVALID);
    ASSERT_STR_EQ(err.msg, bad[i].msg);
    cJSON_Delete(spec);
  }
  ASSERT(rd_blueprint_registry_get(reg, "x:Y") == NULL);
  cJSON *spec = parse_q("{'fields': {'a': 'any'}}");
  ASSERT_OK(rd_blueprint_registry_add(reg, "x:Y", spec, NULL));
  ASSERT_OK(rd_blueprint_registry_add(reg, "x:Y", spec, NULL)); /* replaces */
  ASSERT(rd_json_equal(rd_blueprint_registry_get(reg, "x:Y"), spec));
  cJSON_Delete(spec);
  rd_blueprint_registry_free(reg);
  rd_blueprint_registry_free(NULL);
}

typedef struct {
  char seen[512];
} walk_log;

static int log_cb(const cJSON *m, const char *pointer, void *ud) {
  walk_log *w = ud;
  size_t len = strlen(w->seen);
  snprintf(w->seen + len, sizeof w->seen - len, "%d=%s ",
           cJSON_GetObjectItemCaseSensitive(m, "id")->valueint, pointer);
  return 0;
}

static int stop_cb(const cJSON *m, const char *pointer, void *ud) {
  (void)pointer, (void)ud;
  return cJSON_GetObjectItemCaseSensitive(m, "id")->valueint == 4 ? 42 : 0;
}

RD_TEST(blueprint_5_walk_and_find) {
  cJSON *bp = parse_q(good);
  walk_log w = {{0}};
  ASSERT_OK(rd_blueprint_each_module(bp, log_cb, &w, NULL));
  ASSERT_STR_EQ(w.seen, "1=/flow/0 2=/flow/1 3=/flow/1/routes/0/flow/0 "
                        "4=/flow/1/routes/1/flow/0 5=/flow/1/routes/1/flow/1 "
                        "6=/flow/1/routes/1/flow/1/routes/0/flow/0 ");
  ASSERT_INT_EQ(rd_blueprint_each_module(bp, stop_cb, NULL, NULL), 42);
  char *ptr = NULL;
  ASSERT_OK(rd_blueprint_find_module(bp, 6, &ptr, NULL));
  ASSERT_STR_EQ(ptr, "/flow/1/routes/1/flow/1/routes/0/flow/0");
  free(ptr);
  rd_err err = {0};
  ASSERT_INT_EQ(rd_blueprint_find_module(bp, 7, &ptr, &err), RD_ENOT_FOUND); /* handlers: no */
  ASSERT_STR_EQ(err.msg, "no module with id 7");
  cJSON_Delete(bp);
}

RD_TEST(blueprint_6_glob) {
  ASSERT(rd_glob_match("http:*", "http:ActionSendData"));
  ASSERT(!rd_glob_match("http:*", "https:x"));
  ASSERT(rd_glob_match("*", ""));
  ASSERT(rd_glob_match("*:Action*Data", "http:ActionSendData"));
  ASSERT(rd_glob_match("?ttp:*a", "http:ActionSendData"));
  ASSERT(!rd_glob_match("?ttp:*x", "http:ActionSendData"));
  ASSERT(rd_glob_match("a\\*b", "a*b"));
  ASSERT(!rd_glob_match("a\\*b", "axb"));
  ASSERT(rd_glob_match("**a*a*a*b", "aaaaaaaaaaaaaaaaaaaab"));
  ASSERT(!rd_glob_match("*a*a*a*c", "aaaaaaaaaaaaaaaaaaaab"));
  ASSERT(rd_glob_match("", "") && !rd_glob_match("", "x"));
}

RD_TEST(blueprint_7_not_object_and_deep) {
  cJSON *arr = cJSON_CreateArray();
  rd_blueprint_problem_t *p = NULL;
  size_t n = 0;
  ASSERT_OK(rd_blueprint_validate(arr, NULL, &p, &n, NULL));
  ASSERT_INT_EQ(n, 1);
  ASSERT_STR_EQ(p[0].message, "blueprint must be an object, got array");
  rd_blueprint_problems_free(p, n);
  cJSON_Delete(arr);
  /* routers nested in routers deeper than the bound: one problem, no walk */
  cJSON *bp = parse_q("{'name': 'deep', 'flow': []}"), *flow = cJSON_GetObjectItem(bp, "flow");
  for (int i = 0; i < RD_JSON_MAX_DEPTH; i++) {
    cJSON *m = cJSON_CreateObject(), *routes = cJSON_CreateArray(), *route = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "id", i + 1);
    cJSON_AddStringToObject(m, "module", "builtin:BasicRouter");
    cJSON_AddItemToObject(m, "routes", routes);
    cJSON_AddItemToArray(routes, route);
    cJSON_AddItemToArray(flow, m);
    flow = cJSON_AddArrayToObject(route, "flow");
  }
  ASSERT_OK(rd_blueprint_validate(bp, NULL, &p, &n, NULL));
  ASSERT_INT_EQ(n, 1);
  ASSERT_STR_EQ(p[0].message, "blueprint nests deeper than 512");
  rd_blueprint_problems_free(p, n);
  ASSERT_INT_EQ(rd_blueprint_each_module(bp, log_cb, NULL, NULL), RD_EINVALID);
  cJSON_Delete(bp);
}

/* A field type may say what the elements of a list must be: headers
 * [{name, value}]. Each bad element is one problem naming its index. */
RD_TEST(blueprint_8_element_types) {
  static const char *const want[] = {
    "1|mapper.headers[1]|/flow/0/mapper/headers/1|expected object, got number",
    "1|mapper.headers[2].name|/flow/0/mapper/headers/2/name|required field missing",
    "1|mapper.headers[3].name|/flow/0/mapper/headers/3/name|expected string, got object",
    "4|mapper.headers|/flow/1/routes/1/flow/0/mapper/headers|expected array, got object",
  };
  expect_problems(
      "[{'op': 'add', 'path': '/flow/0/mapper/headers', 'value':"
      "   [{'name': 'a', 'value': 'x'}, 5, {'value': 'x'}, {'name': {}, 'value': 1},"
      "    '{{1.h}}', {'name': '{{1.n}}', 'value': [1]}, {'name': 'b', 'value': null}]},"
      " {'op': 'add', 'path': '/flow/1/routes/1/flow/0/mapper/headers',"
      "  'value': {'name': 'a'}}]",
      want, sizeof want / sizeof *want);
  static const char *const none[] = {0};
  /* a template for the whole list is resolved at run time */
  expect_problems("[{'op': 'add', 'path': '/flow/0/mapper/headers', 'value': '{{1.list}}'}]",
                  none, 0);
}

/* Duplicate ids among many modules (the ids are kept in a hash set): every
 * duplicate found once, naming the first module's place, whatever the ids. */
RD_TEST(blueprint_9_many_ids) {
  enum { N = 50000 };
  cJSON *bp = parse_q("{'name': 'many', 'flow': []}"), *flow = cJSON_GetObjectItem(bp, "flow");
  for (int i = 0; i < N; i++) {
    cJSON *m = cJSON_CreateObject();
    /* multiples of 2^32 and negative ids as well as small ones */
    double id = i % 3 == 0 ? (double)i * 4294967296.0 : i % 3 == 1 ? -(double)i : (double)i;
    cJSON_AddNumberToObject(m, "id", id);
    cJSON_AddStringToObject(m, "module", "util:SetVariable");
    cJSON_AddItemToArray(flow, m);
  }
  cJSON *dup = cJSON_CreateObject();
  cJSON_AddNumberToObject(dup, "id", 3.0 * 4294967296.0);
  cJSON_AddStringToObject(dup, "module", "util:SetVariable");
  cJSON_AddItemToArray(flow, dup);
  rd_blueprint_problem_t *p = NULL;
  size_t n = 0;
  ASSERT_OK(rd_blueprint_validate(bp, NULL, &p, &n, NULL));
  ASSERT_INT_EQ(n, 1);
  ASSERT_STR_EQ(p[0].pointer, "/flow/50000/id");
  ASSERT_STR_EQ(p[0].message, "duplicate id 12884901888 (also at /flow/3)");
  rd_blueprint_problems_free(p, n);
  cJSON_Delete(bp);
}

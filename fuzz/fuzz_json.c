/*
 * fuzz_json: hostile JSON text through the decoder and the Lua bridge.
 *
 *  1. rd_json_parse(bytes): either a document or an RD_EINVALID error
 *     whose message names a position;
 *  2. a document: printed by cJSON and parsed again, it is rd_json_equal;
 *  3. converted to Lua (rd__json_push) and back (rd__json_from_lua): when
 *     the way back succeeds, the result printed and parsed again is equal to
 *     itself (the encoder writes what it means);
 *  4. the same bytes through rd.json.decode / rd.json.encode in Lua never
 *     raise: they return a value or nil, message, "invalid".
 */
#define FUZZ_TARGET "fuzz_json"
#include "fuzz_common.h"

#include "lua/lrd.h"

#include <cJSON.h>
#include <math.h>
#include <stdint.h>

static lua_State *L;

/* rd_json_equal, except that numbers may differ in their last bits: cJSON
 * 1.7.15 prints a number with %1.15g whenever that reads back within a
 * relative DBL_EPSILON, so 0.1 + 0.2 prints as 0.3 and 2^53 as
 * 9.00719925474099e+15 (reported; see tests/c/test_regress_json.c). */
static int close_enough(const cJSON *a, const cJSON *b) {
  if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) {
    double x = a->valuedouble, y = b->valuedouble, m = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
    return fabs(x - y) <= m * 4e-16;
  }
  if ((a->type & 0xFF) != (b->type & 0xFF)) return 0;
  if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
  if (cJSON_IsArray(a)) {
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
      if (!close_enough(x, y)) return 0;
    return !x && !y;
  }
  if (cJSON_IsObject(a)) {
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
    for (const cJSON *x = a->child; x; x = x->next) {
      const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
      if (!y || !close_enough(x, y)) return 0;
    }
    return 1;
  }
  return rd_json_equal(a, b);
}

/* 1 if j holds a number that is not finite: the parser turns 1e400 into
 * infinity (reported), which cJSON prints as null. */
static int nonfinite(const cJSON *j) {
  if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) return 1;
  for (const cJSON *c = j->child; c; c = c->next)
    if (nonfinite(c)) return 1;
  return 0;
}

static int bridge(lua_State *L) {
  cJSON *j = lua_touserdata(L, 1);
  rd_err err = {0};
  if (rd__json_push(L, j, &err) != 0) {
    FUZZ_CHECK(err.code == RD_EINVALID || err.code == RD_ENOMEM, "push error code");
    return 0;
  }
  cJSON *back = rd__json_from_lua(L, -1, &err);
  if (!back) {
    FUZZ_CHECK(err.code != 0 && err.msg[0], "from_lua error without message");
    return 0;
  }
  char *s = cJSON_PrintUnformatted(back);
  if (s) {
    rd_err e2 = {0};
    cJSON *again = NULL;
    rd_json_parse(s, strlen(s), &again, &e2);
    if (!again) fprintf(stderr, "reparse of %s: %s\n", s, e2.msg);
    FUZZ_CHECK(again != NULL, "printed bridge result does not parse");
    FUZZ_CHECK(fuzz_dup_keys(back) || close_enough(back, again),
          "bridge result changes when printed and parsed");
    cJSON_Delete(again);
    cJSON_free(s);
  }
  cJSON_Delete(back);
  return 0;
}

static const char *LUA_SIDE =
    "local s = ...\n"
    "local v, err, code = rd.json.decode(s)\n"
    "if v == nil then\n"
    "  assert(type(err) == 'string' and code == 'invalid', 'decode: ' .. tostring(err))\n"
    "  return\n"
    "end\n"
    "local t, e2, c2 = rd.json.encode(v)\n"
    "if t == nil then assert(c2 == 'invalid', tostring(e2)); return end\n"
    "local v2, e3 = rd.json.decode(t)\n"
    "assert(v2 ~= nil, e3)\n"
    "local t2 = assert(rd.json.encode(v2))\n"
    "assert(#t2 == #t, 'encode(decode(encode(v))) changed length')\n"
    "rd.json.encode(v, {pretty = true})\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = fuzz_lua_state();
  if (luaL_loadstring(L, LUA_SIDE) != LUA_OK) abort();
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.lua_side");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rd_err err = {0};
  cJSON *j = NULL; /* rd_json_parse reads exactly size bytes: no copy needed */
  rd_json_parse((const char *)data, size, &j, &err);
  if (!j) {
    FUZZ_CHECK(err.code == RD_EINVALID, "parse error code");
    FUZZ_CHECK(strstr(err.msg, "byte") != NULL, "parse error names no position");
  } else {
    (void)rd_json_depth(j, RD_JSON_MAX_DEPTH);
    char *s = cJSON_PrintUnformatted(j);
    if (s) {
      cJSON *again = cJSON_Parse(s);
      FUZZ_CHECK(again != NULL, "cJSON output does not parse");
      FUZZ_CHECK(fuzz_dup_keys(j) || nonfinite(j) || close_enough(j, again), "cJSON print/parse round trip");
      cJSON_Delete(again);
      cJSON_free(s);
    }
    lua_pushcfunction(L, bridge);
    lua_pushlightuserdata(L, j);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "fuzz_json: bridge raised: %s\n", lua_tostring(L, -1));
      abort();
    }
    cJSON_Delete(j);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.lua_side");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_json: Lua side raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  if (size % 64 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

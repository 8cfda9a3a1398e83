/*
 * Shared by the fuzz targets: a Lua state with the redrive module loaded, as
 * the redrive binary makes it, and a helper to split an input into parts.
 */
#ifndef RD_FUZZ_COMMON_H
#define RD_FUZZ_COMMON_H

#include <cJSON.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_redrive(lua_State *L);

/* A state with the standard libraries and `rd` = require "redrive" as a
 * global; aborts on failure (the harness is broken, not the target). */
static lua_State *fuzz_lua_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  luaL_requiref(L, "redrive", luaopen_redrive, 0);
  lua_setglobal(L, "rd");
  return L;
}

/* Run a chunk (abort with its message when it fails to load or run). */
static void fuzz_lua_do(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "fuzz harness: %s\n", lua_tostring(L, -1));
    abort();
  }
}

/* Load `code`, a chunk that returns the harness function, and keep that
 * function in the registry under `key` (abort when it does not load: the
 * harness is broken, not the target). */
static void fuzz_lua_harness(lua_State *L, const char *key, const char *code) {
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz harness: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, key);
}

/* Call the harness function `key` with the n strings parts[i] (lens[i]
 * bytes); what it raises -- a violated property -- aborts, named by `who`.
 * Collects garbage now and then (`gc`). */
static void fuzz_lua_run(lua_State *L, const char *key, const char *who, int n,
                         const unsigned char *const *parts, const size_t *lens, int gc) {
  lua_getfield(L, LUA_REGISTRYINDEX, key);
  for (int i = 0; i < n; i++) lua_pushlstring(L, (const char *)parts[i], lens[i]);
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    fprintf(stderr, "%s: raised: %s\n", who, lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  if (gc) lua_gc(L, LUA_GCCOLLECT);
}

/* Split data at the first SEP byte: part 0 before it, *rest after it.
 * Bytes 0xFE/0xFF never occur in valid UTF-8, so as separators they do not
 * take anything away from valid JSON or template text. */
static size_t fuzz_split(const unsigned char *d, size_t n, unsigned char sep,
                         const unsigned char **rest, size_t *rest_n) {
  const unsigned char *p = memchr(d, sep, n);
  if (!p) {
    *rest = d + n;
    *rest_n = 0;
    return n;
  }
  *rest = p + 1;
  *rest_n = n - (size_t)(p - d) - 1;
  return (size_t)(p - d);
}


/* Abort with the target's name when a property does not hold. */
#define FUZZ_CHECK(cond, what)                                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s: property violated: %s\n", FUZZ_TARGET, (what));     \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* 1 if some object in j has two members with the same name. rd_json_equal
 * looks members up by name, so such documents do not even equal themselves
 * (the decoder accepts duplicates, as cJSON does): equality properties are
 * only checked without them. */
static inline int fuzz_dup_keys(const cJSON *j) {
  for (const cJSON *c = j->child; c; c = c->next) {
    if (cJSON_IsObject(j))
      for (const cJSON *d = c->next; d; d = d->next)
        if (c->string && d->string && strcmp(c->string, d->string) == 0) return 1;
    if (fuzz_dup_keys(c)) return 1;
  }
  return 0;
}

#endif

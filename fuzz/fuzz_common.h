/*
 * Shared by the fuzz targets: a Lua state with the redrive module loaded, as
 * the redrive binary makes it, and a helper to split an input into parts.
 */
#ifndef RD_FUZZ_COMMON_H
#define RD_FUZZ_COMMON_H

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

#endif

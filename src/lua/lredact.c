/* Lua binding of the redactor (src/core/redact.c) for the Lua parts, in the
 * internals table `require "redrive.core"`:
 *   core.redact(s) -> s with secrets replaced by "<redacted>"
 *   core.redact_add(literal)          register a credential sent
 *   core.redact_is_secret_name(name) -> boolean
 *   core.redact_holds_secret(s) -> boolean   (REPL history)
 *   core.redact_url(url) -> url without userinfo, query and fragment */
#include "lrd.h"

#include <stdlib.h>
#include <string.h>

static int l_redact(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char *out = NULL;
  size_t len = 0;
  if (rd_redact(s, n, &out, &len, NULL) != 0) return luaL_error(L, "not enough memory");
  if (!out) {
    lua_settop(L, 1); /* nothing to hide: the same string */
    return 1;
  }
  lua_pushlstring(L, out, len); /* (only a Lua memory error here would leak out) */
  free(out);
  return 1;
}

static int l_redact_add(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  if (rd_redact_add(s, n, NULL) != 0) return luaL_error(L, "not enough memory");
  return 0;
}

static int l_redact_is_secret_name(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, rd_redact_is_secret_name(s, n));
  return 1;
}

static int l_redact_holds_secret(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, rd_redact_holds_secret(s, n));
  return 1;
}

static int l_redact_url(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n + 1);
  rd_redact_url(s, out, n + 1);
  luaL_pushresultsize(&b, strlen(out));
  return 1;
}

static const luaL_Reg redact_funcs[] = {
  {"redact", l_redact}, {"redact_add", l_redact_add},
  {"redact_is_secret_name", l_redact_is_secret_name},
  {"redact_holds_secret", l_redact_holds_secret}, {"redact_url", l_redact_url}, {NULL, NULL},
};

void rd__open_redact(lua_State *L) { luaL_setfuncs(L, redact_funcs, 0); }

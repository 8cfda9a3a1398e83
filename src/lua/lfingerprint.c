/* Lua binding of the failure normaliser (src/core/fingerprint.c), thin:
 *   rd.fingerprint(message [, {module, module_id, class, status}])
 *     -> fingerprint, cause
 * also core.fingerprint, for the sources. module_id may be a number;
 * message may be nil (an empty message). */
#include "lrd.h"

#include <string.h>

/* [-0, +0, v] optional string field k of the table at t (numbers become
 * strings); anchored on the stack until the caller returns. */
static const char *opt_field(lua_State *L, int t, const char *k) {
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) return NULL;
  if (ty != LUA_TSTRING && ty != LUA_TNUMBER) {
    const char *msg = lua_pushfstring(L, "field '%s': string expected, got %s", k,
                                      luaL_typename(L, -1));
    luaL_argerror(L, 2, msg);
  }
  return lua_tostring(L, -1);
}

static int l_fingerprint(lua_State *L) {
  rd_failure_t f = {0};
  f.message = luaL_optlstring(L, 1, "", &f.message_len);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checkstack(L, 8, "fingerprint");
    f.module = opt_field(L, 2, "module");
    f.module_id = opt_field(L, 2, "module_id");
    f.error_class = opt_field(L, 2, "class");
    int isnum = 0;
    int ty = lua_getfield(L, 2, "status");
    lua_Integer st = ty == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : 0;
    if (ty != LUA_TNIL && (!isnum || st < 0 || st > 999))
      luaL_argerror(L, 2, "field 'status': HTTP status (integer 0..999) expected");
    f.status = (int)st;
  }
  if (f.message_len == 0) f.message = ""; /* an empty message, not strlen of it */
  char fp[RD_FINGERPRINT_LEN + 1], cause[RD_CAUSE_MAX];
  rd_fingerprint(&f, fp, cause, sizeof cause);
  lua_pushstring(L, fp);
  lua_pushstring(L, cause);
  return 2;
}

static const luaL_Reg fingerprint_funcs[] = {{"fingerprint", l_fingerprint}, {NULL, NULL}};

void rd__open_fingerprint(lua_State *L) { luaL_setfuncs(L, fingerprint_funcs, 0); }

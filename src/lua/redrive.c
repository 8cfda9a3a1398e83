/*
 * luaopen_redrive: the runtime (one uv loop per Lua state), the shared error
 * helpers of the bindings, and the assembly of the `redrive` module from the
 * C submodules and the compiled-in pure-Lua parts (package.preload).
 */
#include "lua/lrd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RD_RT_KEY "redrive.runtime"
#define RD_CANCELED_KEY "redrive.canceled"

struct rd__luafile {
  const char *name, *chunk, *src;
  size_t len;
};
extern const struct rd__luafile rd__luafiles[];

/* ---- errors ------------------------------------------------------------- */

/* ---- failures known by their value ----------------------------------------
 * An expected failure is nil, msg, code; a script that asserts it raises the
 * message alone. Every failure returned (here, and by the remote client
 * through rd._note_failure) is noted with its code, so that the command line
 * tells an unreachable source (exit 3) from a script's own error by the very
 * value the call returned, never by reading its text (rd._failure_code).
 * Bounded: the table starts again after RD_FAILURES_MAX distinct messages. */
#define RD_FAILURES_KEY "redrive.failures"
#define RD_FAILURES_MAX 256

/* [-0, +0] note the string at msg_idx with the string at code_idx. The
 * table's integer key 1 counts its messages (a message is a string key). */
static void note_failure(lua_State *L, int msg_idx, int code_idx) {
  msg_idx = lua_absindex(L, msg_idx);
  code_idx = lua_absindex(L, code_idx);
  lua_Integer n = RD_FAILURES_MAX;
  if (lua_getfield(L, LUA_REGISTRYINDEX, RD_FAILURES_KEY) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    n = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  if (n >= RD_FAILURES_MAX) { /* none yet, or full: start again */
    lua_pop(L, 1);
    lua_createtable(L, 1, 8);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RD_FAILURES_KEY);
    n = 0;
  }
  lua_pushvalue(L, msg_idx);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pushinteger(L, n + 1);
    lua_rawseti(L, -3, 1);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, msg_idx);
  lua_pushvalue(L, code_idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

int rd__lua_pusherr(lua_State *L, const rd_err *err) {
  lua_pushnil(L);
  lua_pushstring(L, err && err->msg[0] ? err->msg : rd_strerror(err ? err->code : RD_EIO));
  lua_pushstring(L, rd_err_name(err ? err->code : RD_EIO));
  note_failure(L, -2, -1);
  return 3;
}

/* rd._note_failure(msg, code): note a failure a Lua client returns */
static int l_note_failure(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING) note_failure(L, 1, 2);
  return 0;
}

/* rd._failure_code(msg) -> the code of a failure returned with that message | nil */
static int l_failure_code(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING ||
      lua_getfield(L, LUA_REGISTRYINDEX, RD_FAILURES_KEY) != LUA_TTABLE) return 0;
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  return lua_type(L, -1) == LUA_TSTRING ? 1 : 0;
}

int rd__lua_fail(lua_State *L, int code, const char *fmt, ...) {
  rd_err e = {.code = code};
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.msg, sizeof e.msg, fmt, ap);
  va_end(ap);
  return rd__lua_pusherr(L, &e);
}

/* ---- cancellation ---------------------------------------------------------- */

void rd__lua_push_canceled(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RD_CANCELED_KEY);
}

int rd__lua_is_canceled(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  rd__lua_push_canceled(L);
  int r = !lua_isnil(L, -1) && lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return r;
}

static int l_canceled_tostring(lua_State *L) {
  lua_pushliteral(L, "interrupted");
  return 1;
}

/* "stopped: " .. rd.canceled reads as text, as a string error did; other
 * operands follow Lua's rules. */
static int l_canceled_concat(lua_State *L) {
  for (int i = 1; i <= 2; i++) {
    if (rd__lua_is_canceled(L, i)) lua_pushliteral(L, "interrupted");
    else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER) lua_pushvalue(L, i);
    else return luaL_error(L, "attempt to concatenate a %s value", luaL_typename(L, i));
  }
  lua_concat(L, 2);
  return 1;
}

/* The unique value (a userdata nobody can change) stored once per state. */
static void canceled_new(lua_State *L) {
  lua_newuserdatauv(L, 0, 0);
  luaL_newmetatable(L, RD_MT_CANCELED);
  lua_pushcfunction(L, l_canceled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, l_canceled_concat);
  lua_setfield(L, -2, "__concat");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, RD_CANCELED_KEY);
}

/* rd.is_canceled(v) -> boolean: is v the cancellation (rd.canceled)? */
static int l_rd_is_canceled(lua_State *L) {
  lua_pushboolean(L, rd__lua_is_canceled(L, 1));
  return 1;
}

/* ---- error objects ----------------------------------------------------------- */

static int l_error_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  return 1;
}

/* Is the value at i an error object of rd__lua_raise? */
static int is_error_object(lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TTABLE || !lua_getmetatable(L, i)) return 0;
  luaL_getmetatable(L, RD_MT_ERROR);
  int r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

/* "listing failed: " .. err reads as text, as with a string error; other
 * operands follow Lua's rules. */
static int l_error_concat(lua_State *L) {
  for (int i = 1; i <= 2; i++) {
    if (is_error_object(L, i)) lua_getfield(L, i, "message");
    else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER) lua_pushvalue(L, i);
    else return luaL_error(L, "attempt to concatenate a %s value", luaL_typename(L, i));
  }
  lua_concat(L, 2);
  return 1;
}

int rd__lua_raise(lua_State *L, const rd_err *err) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, err && err->msg[0] ? err->msg : rd_strerror(err ? err->code : RD_EIO));
  lua_setfield(L, -2, "message");
  lua_pushstring(L, rd_err_name(err ? err->code : RD_EIO));
  lua_setfield(L, -2, "code");
  if (luaL_newmetatable(L, RD_MT_ERROR)) {
    lua_pushcfunction(L, l_error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_error_concat);
    lua_setfield(L, -2, "__concat");
  }
  lua_setmetatable(L, -2);
  return lua_error(L);
}

/* ---- runtime ------------------------------------------------------------- */

rd_rt *rd__rt(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RD_RT_KEY);
  rd_rt *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!rt) luaL_error(L, "redrive: runtime not initialised (require \"redrive\" first)");
  return rt;
}

rd_rt *rd__rt_peek(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RD_RT_KEY);
  rd_rt *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

rd_http_t *rd__rt_http(rd_rt *rt, rd_err *err) {
  if (!rt->http && rd_http_new(&rt->http, rd_loop_uv(rt->loop), NULL, err) != 0) return NULL;
  return rt->http;
}

/* Runtime teardown (lua_close or the state's collection): drop the tasks
 * and cancel what they wait on, run pending hooks (a group commit), close
 * the HTTP handles, then the loop (src/loop closes what is left). */
static int l_rt_gc(lua_State *L) {
  rd_rt *rt = luaL_checkudata(L, 1, RD_MT_RUNTIME);
  if (rt->closing) return 0;
  rt->closing = 1;
  rd_loop_shutdown(rt->loop);
  if (rt->http) rd_http_close(rt->http);
  rt->http = NULL;
  rd_loop_close(rt->loop);
  rt->loop = NULL;
  return 0;
}

static rd_rt *rt_new(lua_State *L) {
  rd_rt *rt = lua_newuserdatauv(L, sizeof *rt, 0);
  memset(rt, 0, sizeof *rt);
  rt->closing = 1; /* until the loop exists, __gc has nothing to do */
  luaL_newmetatable(L, RD_MT_RUNTIME);
  lua_pushcfunction(L, l_rt_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  rd_err err = {0};
  if (rd_loop_new(&rt->loop, &err) != 0) luaL_error(L, "redrive: %s", err.msg);
  rt->closing = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  rt->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  rt->dry_run = getenv("REDRIVE_DRY_RUN") && strcmp(getenv("REDRIVE_DRY_RUN"), "1") == 0;
  lua_setfield(L, LUA_REGISTRYINDEX, RD_RT_KEY);
  return rt;
}

/* rd.dry_run([on]) -> previous setting */
static int l_rd_dry_run(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  int prev = rt->dry_run;
  if (!lua_isnoneornil(L, 1)) rt->dry_run = lua_toboolean(L, 1);
  lua_pushboolean(L, prev);
  return 1;
}

/* rd.is_dry_run() -> boolean */
static int l_rd_is_dry_run(lua_State *L) {
  lua_pushboolean(L, rd__rt(L)->dry_run);
  return 1;
}

/* ---- compiled-in Lua ------------------------------------------------------ */

static int l_preload_loader(lua_State *L) {
  const struct rd__luafile *f = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbuffer(L, f->src, f->len, f->chunk) != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

int rd__lua_load_embedded(lua_State *L, const char *name) {
  for (const struct rd__luafile *f = rd__luafiles; f->name; f++)
    if (strcmp(f->name, name) == 0) return luaL_loadbuffer(L, f->src, f->len, f->chunk);
  lua_pushfstring(L, "redrive: no compiled-in module '%s'", name);
  return LUA_ERRRUN;
}

static void install_preloads(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const struct rd__luafile *f = rd__luafiles; f->name; f++) {
    lua_pushlightuserdata(L, (void *)f);
    lua_pushcclosure(L, l_preload_loader, 1);
    lua_setfield(L, -2, f->name);
  }
  lua_pop(L, 1);
}

/* core.luafiles() -> { name... }: lets the engine discover its modules. */
static int l_core_luafiles(lua_State *L) {
  lua_newtable(L);
  int i = 1;
  for (const struct rd__luafile *f = rd__luafiles; f->name; f++) {
    lua_pushstring(L, f->name);
    lua_rawseti(L, -2, i++);
  }
  return 1;
}

/* rd.verbose([on]) -> previous setting; when on, HTTP calls are logged to
 * stderr as "METHOD url -> status" with the URL's userinfo and query removed. */
static int l_rd_verbose(lua_State *L) {
  rd_rt *rt = rd__rt(L);
  int prev = rt->verbose;
  if (!lua_isnoneornil(L, 1)) rt->verbose = lua_toboolean(L, 1);
  lua_pushboolean(L, prev);
  return 1;
}

static const luaL_Reg rd_funcs[] = {
  {"verbose", l_rd_verbose}, {"is_canceled", l_rd_is_canceled},
  {"_note_failure", l_note_failure}, {"_failure_code", l_failure_code},
  {"dry_run", l_rd_dry_run}, {"is_dry_run", l_rd_is_dry_run}, {NULL, NULL},
};

/* The C internals table, `require "redrive.core"`, for the Lua parts. */
void rd__new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  if (meta) luaL_setfuncs(L, meta, 0);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

static void open_core(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, l_core_luafiles);
  lua_setfield(L, -2, "luafiles");
  rd__open_store(L);
  rd__open_pattern(L); /* core.pattern: the filters' own copy, out of scripts' reach */
  rd__open_num(L);
  rd__open_redact(L);
  rd__open_sandbox(L);
  rd__open_worker(L);
  rd__open_fingerprint(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "redrive.core");
  lua_pop(L, 1);
}

int luaopen_redrive(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RD_RT_KEY);
  int have_rt = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (!have_rt) {
    rt_new(L);
    canceled_new(L);
  }
  install_preloads(L);
  open_core(L);                  /* [core] */
  lua_newtable(L);               /* [core, rd] */
  lua_pushliteral(L, RD_VERSION);
  lua_setfield(L, -2, "version");
  rd__lua_push_canceled(L);
  lua_setfield(L, -2, "canceled");
  luaL_setfuncs(L, rd_funcs, 0);
  rd__open_task(L);
  rd__open_json(L);
  rd__open_http(L);
  rd__open_blueprint(L);
  rd__open_pattern(L);
  rd__open_fingerprint(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "rd");     /* core.rd = rd, for the Lua parts */
  /* pure-Lua parts add rd.all, rd.each, rd.connect, ... */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "redrive.prelude");
  lua_call(L, 1, 1);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
  lua_remove(L, -2);
  return 1;
}

/*
 * rd.pattern: string.find, match, gmatch and gsub with Lua 5.4's signatures
 * and results, on the bounded matcher of src/core/pattern.c. Each call may
 * spend a number of steps (rd.pattern.steps by default, or the one given to
 * rd.pattern.bounded / rd__pattern_push_lib); a tripped budget or stop flag
 * raises an error object with code "limit" (rd__lua_raise). Malformed
 * patterns raise Lua's own messages, as string.find does.
 */
#include "core/pattern.h"
#include "lua/lrd.h"

#include <string.h>

/* The upvalue shared by the functions of one library. */
typedef struct plib {
  uint64_t steps;
  const atomic_int *stop;
} plib;

/* gmatch's iterator state (upvalue 3; the subject and pattern are 1 and 2). */
typedef struct gmstate {
  plib lib;
  size_t pos;      /* where the next search starts */
  size_t last;     /* end of the last match */
  int has_last;
} gmstate;

static rd_pat_budget budget_of(const plib *lib) {
  return (rd_pat_budget){.limit = lib->steps, .stop = lib->stop};
}

static const plib *lib_up(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* [-0, +0, v] raise the failure of a match: Lua's message for a pattern
 * error (as string.find raises it), an error object for a limit. */
static int fail(lua_State *L, const rd_err *err) {
  if (err->code == RD_ELIMIT) return rd__lua_raise(L, err);
  return luaL_error(L, "%s", err->msg);
}

/* A 1-based, possibly negative start (string.find's init) as a 0-based
 * offset; beyond the subject when it is past its end. */
static size_t start_offset(lua_Integer i, size_t len) {
  if (i > 0) return (size_t)i - 1;
  if (i == 0 || i < -(lua_Integer)len) return 0;
  return len - (size_t)(-i);
}

/* [-0, +1, v] push capture i of the match s[start, end). */
static void push_capture(lua_State *L, const rd_pat *m, int i, size_t start, size_t end) {
  size_t at = 0, len = 0;
  rd_err err = {0};
  int r = rd__pat_capture(m, i, start, end, &at, &len, &err);
  if (r < 0) fail(L, &err);
  if (r == 1) lua_pushinteger(L, (lua_Integer)at);
  else lua_pushlstring(L, (const char *)m->s + at, len);
}

/* [-0, +n, v] push every capture (the whole match when there is none and
 * `whole`); returns how many. */
static int push_captures(lua_State *L, const rd_pat *m, size_t start, size_t end, int whole) {
  int n = m->level == 0 && whole ? 1 : m->level;
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(L, m, i, start, end);
  return n;
}

/* find(s, pattern [, init [, plain]]) and match(s, pattern [, init]). */
static int find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  rd_pat_budget b = budget_of(lib_up(L));
  rd_err err = {0};
  size_t start = 0, end = 0;
  int r;
  if (find && (lua_toboolean(L, 4) || rd__pat_is_plain(p, lp))) {
    r = rd__pat_plain_find(s, ls, init, p, lp, &b, &start, &err);
    end = start + lp;
    if (r == 1) {
      lua_pushinteger(L, (lua_Integer)start + 1);
      lua_pushinteger(L, (lua_Integer)end);
      return 2;
    }
  } else {
    rd_pat m;
    rd__pat_init(&m, s, ls, p, lp, 1, &b);
    r = rd__pat_search(&m, init, &start, &end, &err);
    if (r == 1 && find) {
      lua_pushinteger(L, (lua_Integer)start + 1);
      lua_pushinteger(L, (lua_Integer)end);
      return 2 + push_captures(L, &m, start, end, 0);
    }
    if (r == 1) return push_captures(L, &m, start, end, 1);
  }
  if (r < 0) return fail(L, &err);
  luaL_pushfail(L);
  return 1;
}

static int l_pattern_find(lua_State *L) { return find_aux(L, 1); }
static int l_pattern_match(lua_State *L) { return find_aux(L, 0); }

static int l_gmatch_next(lua_State *L) {
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  gmstate *g = lua_touserdata(L, lua_upvalueindex(3));
  rd_pat_budget b = budget_of(&g->lib);
  rd_pat m;
  rd__pat_init(&m, s, ls, p, lp, 0, &b);
  rd_err err = {0};
  for (size_t pos = g->pos; pos <= ls; pos++) {
    size_t end;
    int r = rd__pat_match_at(&m, pos, &end, &err);
    if (r < 0) return fail(L, &err);
    /* an empty match right where the last one ended is skipped, as in Lua */
    if (r == 1 && !(g->has_last && end == g->last)) {
      g->pos = g->last = end;
      g->has_last = 1;
      return push_captures(L, &m, pos, end, 1);
    }
  }
  return 0;
}

/* gmatch(s, pattern [, init]) -> iterator */
static int l_pattern_gmatch(lua_State *L) {
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  const plib *lib = lib_up(L);
  lua_settop(L, 2); /* the strings stay alive as upvalues */
  gmstate *g = lua_newuserdatauv(L, sizeof *g, 0);
  *g = (gmstate){.lib = *lib, .pos = init > ls ? ls + 1 : init};
  lua_pushcclosure(L, l_gmatch_next, 3);
  return 1;
}

/* [-0, +0, v] spend n steps of the match's budget on replacement work. */
static void charge(lua_State *L, rd_pat *m, uint64_t n) {
  rd_err err = {0};
  if (rd__pat_charge(m, n, &err) < 0) fail(L, &err);
}

/* A replacement string (argument 3) for the match s[start, end): %0 is the
 * whole match, %1-%9 captures, %% a percent sign. */
static void add_string(lua_State *L, rd_pat *m, luaL_Buffer *b, size_t start, size_t end) {
  size_t l;
  const char *r = lua_tolstring(L, 3, &l), *stop = r + l, *pc;
  uint64_t cost = 1 + l / 64;
  while ((pc = memchr(r, '%', (size_t)(stop - r))) != NULL) {
    luaL_addlstring(b, r, (size_t)(pc - r));
    int d = (unsigned char)pc[1]; /* Lua strings end with a NUL */
    if (d == '%') {
      luaL_addchar(b, '%');
    } else if (d == '0') {
      luaL_addlstring(b, (const char *)m->s + start, end - start);
      cost += (end - start) / 64;
    } else if (d >= '1' && d <= '9') {
      push_capture(L, m, d - '1', start, end);
      cost += lua_rawlen(L, -1) / 64;
      luaL_addvalue(b);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", '%');
    }
    cost++;
    r = pc + 2;
  }
  luaL_addlstring(b, r, (size_t)(stop - r));
  charge(L, m, cost);
}

/* Add the replacement of the match s[start, end) to b; 1 if it changed the
 * subject (a function or table giving nil or false keeps the match). */
static int add_value(lua_State *L, rd_pat *m, luaL_Buffer *b, size_t start, size_t end, int tr) {
  if (tr == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_captures(L, m, start, end, 1);
    lua_call(L, n, 1);
  } else if (tr == LUA_TTABLE) {
    push_capture(L, m, 0, start, end);
    lua_gettable(L, 3);
  } else {
    add_string(L, m, b, start, end);
    return 1;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(b, (const char *)m->s + start, end - start);
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return 1;
}

/* gsub(s, pattern, repl [, n]) -> string, count */
static int l_pattern_gsub(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                   tr == LUA_TTABLE, 3, "string/function/table");
  rd_pat_budget budget = budget_of(lib_up(L));
  rd_pat m;
  rd__pat_init(&m, s, ls, p, lp, 1, &budget);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t pos = 0, last = 0;
  int has_last = 0, changed = 0;
  lua_Integer n = 0;
  rd_err err = {0};
  while (n < max) {
    size_t end;
    int r = rd__pat_match_at(&m, pos, &end, &err);
    if (r < 0) return fail(L, &err);
    if (r == 1 && !(has_last && end == last)) {
      n++;
      changed |= add_value(L, &m, &b, pos, end, tr);
      pos = last = end;
      has_last = 1;
    } else if (pos < ls) {
      luaL_addchar(&b, s[pos++]);
    } else {
      break;
    }
    if (m.anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, s + pos, ls - pos);
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

/* rd.pattern.check(pattern) -> true | nil, message, "invalid" */
static int l_pattern_check(lua_State *L) {
  size_t lp;
  const char *p = luaL_checklstring(L, 1, &lp);
  rd_err err = {0};
  if (rd__pat_check(p, lp, &err) < 0) return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg lib_funcs[] = {
  {"find", l_pattern_find}, {"match", l_pattern_match},
  {"gmatch", l_pattern_gmatch}, {"gsub", l_pattern_gsub}, {NULL, NULL},
};

void rd__pattern_push_lib(lua_State *L, uint64_t steps, const atomic_int *stop) {
  lua_createtable(L, 0, 6);
  plib *lib = lua_newuserdatauv(L, sizeof *lib, 0);
  *lib = (plib){.steps = steps, .stop = stop};
  luaL_setfuncs(L, lib_funcs, 1);
  lua_pushinteger(L, (lua_Integer)steps);
  lua_setfield(L, -2, "steps");
}

/* rd.pattern.bounded(steps) -> {find, match, gmatch, gsub, steps} */
static int l_pattern_bounded(lua_State *L) {
  lua_Integer steps = luaL_checkinteger(L, 1);
  luaL_argcheck(L, steps >= 1, 1, "steps must be >= 1");
  rd__pattern_push_lib(L, (uint64_t)steps, NULL);
  return 1;
}

/* Adds `pattern` (a fresh table each call) to the table on top: rd.pattern
 * for scripts, core.pattern for redrive's own filters, so a script that
 * replaces rd.pattern.find cannot unbound them. */
void rd__open_pattern(lua_State *L) {
  rd__pattern_push_lib(L, RD_PAT_DEFAULT_STEPS, NULL);
  lua_pushcfunction(L, l_pattern_check);
  lua_setfield(L, -2, "check");
  lua_pushcfunction(L, l_pattern_bounded);
  lua_setfield(L, -2, "bounded");
  lua_setfield(L, -2, "pattern");
}

/*
 * Numeric options: the one rule for every duration, size and count an option
 * carries (timeouts, max_body, concurrency, limits, lease ttl...), in C and,
 * through core.check_number, in the Lua parts.
 *
 * A value must be a finite number inside its kind's range, and a whole number
 * where a size or count is meant. NaN, infinities, negatives and values out of
 * range are refused with RD_EINVALID and a message naming the option. Nothing
 * converts an option to an integer type before this check passed: casting an
 * out-of-range double to long is undefined behaviour (`timeout = 1e300`
 * became 1 ms).
 */
#include "lua/lrd.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Durations stay below ~31 years, so seconds * 1000 fits a long (ms) and
 * a uint64 (libuv timers) with room to spare; 2^53 is the largest size a
 * double (and so a Lua number) counts exactly. */
#define MAX_SECONDS 1e9
#define MAX_EXACT 9007199254740992.0

const rd_range rd__range_timeout = {0, MAX_SECONDS, 1, 0, "seconds"};
const rd_range rd__range_seconds = {0, MAX_SECONDS, 0, 0, "seconds"};
const rd_range rd__range_bytes = {1, MAX_EXACT, 0, 1, "bytes"};
const rd_range rd__range_count = {0, 1e9, 0, 1, NULL};
const rd_range rd__range_concurrency = {1, 10000, 0, 1, NULL};
const rd_range rd__range_rate = {0, 1e6, 1, 0, "per second"};
static const rd_range range_number = {0, 1e9, 0, 0, NULL};

static const struct {
  const char *kind;
  const rd_range *r;
} kinds[] = {
  {"timeout", &rd__range_timeout}, {"seconds", &rd__range_seconds},
  {"bytes", &rd__range_bytes},     {"count", &rd__range_count},
  {"concurrency", &rd__range_concurrency}, {"rate", &rd__range_rate},
  {"number", &range_number},
};

const rd_range *rd__range_named(const char *kind) {
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp(kinds[i].kind, kind) == 0) return kinds[i].r;
  return NULL;
}

static void show(char *buf, size_t n, double v) {
  if (isnan(v)) snprintf(buf, n, "nan");
  else if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
  else snprintf(buf, n, "%.15g", v);
}

int rd__num_check(double v, const char *name, const rd_range *r, rd_err *err) {
  int in = isfinite(v) && (r->above_min ? v > r->min : v >= r->min) && v <= r->max &&
           (!r->whole || v == floor(v));
  if (in) return 0;
  char got[32], lo[32], hi[32];
  show(got, sizeof got, v);
  show(lo, sizeof lo, r->min);
  show(hi, sizeof hi, r->max);
  return rd_err_set(err, RD_EINVALID, "option '%s' must be a %snumber%s%s %s %s and <= %s, got %s",
                    name, r->whole ? "whole " : "", r->unit ? " of " : "", r->unit ? r->unit : "",
                    r->above_min ? ">" : ">=", lo, hi, got);
}

int rd__opt_num(lua_State *L, int t, const char *k, const rd_range *r, double dflt, double *out,
                rd_err *err) {
  int ty = lua_getfield(L, t, k);
  double v = dflt;
  if (ty != LUA_TNIL) {
    if (ty != LUA_TNUMBER) {
      const char *msg = lua_pushfstring(L, "%s: number expected, got %s", k, lua_typename(L, ty));
      return luaL_argerror(L, t, msg);
    }
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  int rc = ty == LUA_TNIL ? 0 : rd__num_check(v, k, r, err);
  if (rc == 0) *out = v;
  return rc;
}

/* core.check_number(v, name, kind [, min [, max]]) -> v | nil, msg, "invalid"
 * The Lua parts' door to the same rule: `kind` is "timeout", "seconds",
 * "bytes", "count", "concurrency", "rate" or "number" (>= 0); min and max
 * narrow the range.
 * Whole kinds return an integer. v must be a number (callers convert text). */
static int l_check_number(lua_State *L) {
  lua_Number v = luaL_checknumber(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const rd_range *named = rd__range_named(luaL_checkstring(L, 3));
  luaL_argcheck(L, named != NULL, 3, "unknown kind");
  rd_range r = *named;
  if (!lua_isnoneornil(L, 4)) r.min = luaL_checknumber(L, 4), r.above_min = 0;
  if (!lua_isnoneornil(L, 5)) r.max = luaL_checknumber(L, 5);
  rd_err err = {0};
  if (rd__num_check(v, name, &r, &err)) return rd__lua_pusherr(L, &err);
  if (r.whole) lua_pushinteger(L, (lua_Integer)v); /* whole and <= 2^53: exact */
  else lua_pushnumber(L, v);
  return 1;
}

void rd__open_num(lua_State *L) {
  lua_pushcfunction(L, l_check_number);
  lua_setfield(L, -2, "check_number");
  lua_pushinteger(L, RD_HTTP_MAX_BODY);
  lua_setfield(L, -2, "MAX_BODY");
}

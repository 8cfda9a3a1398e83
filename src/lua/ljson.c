/*
 * JSON bridge on cJSON: rd.json.decode / encode / null / array / object, and
 * the conversions the other bindings share (rd__json_push, rd__json_from_lua).
 *
 * Text is parsed by rd_json_parse (src/json/parse.c: strict RFC 8259, the
 * one parse of redrive). Decoded arrays and objects carry a marker
 * metatable so `[]` and `{}` round-trip; integer-valued numbers become Lua
 * integers (exact to 2^53). Depth is bounded both ways (RD_JSON_MAX_DEPTH
 * containers) so hostile input cannot exhaust the C stack.
 */
#include "lua/lrd.h"

#include "json/parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RD_NULL_KEY "redrive.json.null.value"

/* ---- decode ----------------------------------------------------------------- */

static void push_number(lua_State *L, double d) {
  if (d == floor(d) && fabs(d) <= 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
  else lua_pushnumber(L, d);
}

/* cJSON prints a number with "%1.15g" whenever that reads back "close
 * enough", which loses digits (0.1 + 0.2 -> 0.3, 2^53 - 1 -> 9.007e+15).
 * Numbers we encode are printed here instead, exactly: integers in full,
 * floats with the fewest digits that read back to the same double. */
static void float_text(double d, char buf[40]) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, 40, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) break;
  }
}

static cJSON *exact_number(lua_State *L, int idx) {
  char buf[40];
  if (lua_isinteger(L, idx)) snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
  else float_text(lua_tonumber(L, idx), buf);
  return cJSON_CreateRaw(buf);
}

/* depth: containers around j. A container at depth RD_JSON_MAX_DEPTH would
 * be one too many (the parse allows that many in all). Numbers are finite:
 * the parse refuses overflow and Lua-made trees refuse NaN and infinity. */
static int push_value(lua_State *L, const cJSON *j, int depth, rd_err *err) {
  if (depth >= RD_JSON_MAX_DEPTH && (cJSON_IsArray(j) || cJSON_IsObject(j)))
    return rd_err_set(err, RD_EINVALID, "json: nesting deeper than %d", RD_JSON_MAX_DEPTH);
  if (!lua_checkstack(L, 3)) return rd_err_set(err, RD_ENOMEM, "json: Lua stack exhausted");
  switch (j->type & 0xFF) {
  case cJSON_NULL: rd__json_pushnull(L); return 0;
  case cJSON_False: lua_pushboolean(L, 0); return 0;
  case cJSON_True: lua_pushboolean(L, 1); return 0;
  case cJSON_Number:
    push_number(L, j->valuedouble);
    return 0;
  case cJSON_String:
  case cJSON_Raw: lua_pushstring(L, j->valuestring ? j->valuestring : ""); return 0;
  case cJSON_Array: {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    lua_Integer i = 1;
    for (const cJSON *c = j->child; c; c = c->next) {
      int r = push_value(L, c, depth + 1, err);
      if (r) return lua_pop(L, 1), r;
      lua_rawseti(L, -2, i++);
    }
    luaL_setmetatable(L, RD_MT_JSON_ARRAY);
    return 0;
  }
  case cJSON_Object: {
    lua_createtable(L, 0, 4);
    for (const cJSON *c = j->child; c; c = c->next) {
      lua_pushstring(L, c->string ? c->string : "");
      int r = push_value(L, c, depth + 1, err);
      if (r) return lua_pop(L, 2), r;
      lua_rawset(L, -3);
    }
    luaL_setmetatable(L, RD_MT_JSON_OBJECT);
    return 0;
  }
  default: return rd_err_set(err, RD_EINVALID, "json: unknown value type");
  }
}

int rd__json_push(lua_State *L, const cJSON *item, rd_err *err) {
  return push_value(L, item, 0, err);
}

/* rd.json.decode(s) -> value | nil, err, "invalid" */
static int l_json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  rd_err err = {0};
  cJSON *j = NULL;
  if (rd_json_parse(s, len, &j, &err)) return rd__lua_pusherr(L, &err);
  int r = rd__json_push(L, j, &err);
  cJSON_Delete(j);
  if (r) return rd__lua_pusherr(L, &err);
  return 1;
}

/* ---- encode ----------------------------------------------------------------- */

int rd__json_isnull(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA) return 0;
  lua_getfield(L, LUA_REGISTRYINDEX, RD_NULL_KEY);
  int eq = lua_rawequal(L, idx < 0 ? idx - 1 : idx, -1);
  lua_pop(L, 1);
  return eq;
}

void rd__json_pushnull(lua_State *L) { lua_getfield(L, LUA_REGISTRYINDEX, RD_NULL_KEY); }

/* The table's JSON kind: 1 array, 2 object, 0 unmarked. */
static int marked_kind(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  int kind = 0;
  luaL_getmetatable(L, RD_MT_JSON_ARRAY);
  if (lua_rawequal(L, -1, -2)) kind = 1;
  lua_pop(L, 1);
  if (!kind) {
    luaL_getmetatable(L, RD_MT_JSON_OBJECT);
    if (lua_rawequal(L, -1, -2)) kind = 2;
    lua_pop(L, 1);
  }
  if (!kind) { /* any metatable with __jsontype = "array" | "object" */
    if (lua_getfield(L, -1, "__jsontype") == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      kind = strcmp(k, "array") == 0 ? 1 : strcmp(k, "object") == 0 ? 2 : 0;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return kind;
}

/* Unmarked table: an array when its keys are exactly 1..n (n > 0). */
static int looks_like_array(lua_State *L, int idx, lua_Integer *n) {
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return 0;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k < 1) {
      lua_pop(L, 1);
      return 0;
    }
    if (k > max) max = k;
    count++;
  }
  *n = max;
  return count > 0 && count == max;
}

static cJSON *from_lua(lua_State *L, int idx, int depth, int exact, rd_err *err);

static cJSON *from_array(lua_State *L, int idx, lua_Integer n, int depth, int exact,
                         rd_err *err) {
  cJSON *a = cJSON_CreateArray();
  if (!a) return rd_err_set(err, RD_ENOMEM, "json: out of memory"), NULL;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    cJSON *c = from_lua(L, lua_gettop(L), depth + 1, exact, err);
    lua_pop(L, 1);
    if (!c) {
      if (err && !strstr(err->msg, " at ")) {
        size_t l = strlen(err->msg);
        snprintf(err->msg + l, sizeof err->msg - l, " at [%lld]", (long long)i);
      }
      cJSON_Delete(a);
      return NULL;
    }
    cJSON_AddItemToArray(a, c);
  }
  return a;
}

/* The key lua_next left at -2, as the text of an object member: a string as
 * it is, an integer in decimal (into numkey). RD_EINVALID for a key of any
 * other type, or an integer whose text is also a string key of the table
 * ({[1] = a, ["1"] = b} would print the key "1" twice). */
static int member_key(lua_State *L, int idx, char numkey[32], const char **key, rd_err *err) {
  if (lua_type(L, -2) == LUA_TSTRING) {
    *key = lua_tostring(L, -2);
    return 0;
  }
  if (!lua_isinteger(L, -2))
    return rd_err_set(err, RD_EINVALID, "json: cannot encode a table key of type %s",
                      luaL_typename(L, -2));
  snprintf(numkey, 32, "%lld", (long long)lua_tointeger(L, -2));
  *key = numkey;
  lua_pushstring(L, numkey);
  int twice = lua_rawget(L, idx) != LUA_TNIL;
  lua_pop(L, 1);
  if (twice)
    return rd_err_set(err, RD_EINVALID, "json: the key \"%s\" twice (the integer %s and the string \"%s\")",
                      numkey, numkey, numkey);
  return 0;
}

static cJSON *from_object(lua_State *L, int idx, int depth, int exact, rd_err *err) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return rd_err_set(err, RD_ENOMEM, "json: out of memory"), NULL;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char numkey[32];
    const char *key;
    if (member_key(L, idx, numkey, &key, err)) {
      lua_pop(L, 2);
      cJSON_Delete(o);
      return NULL;
    }
    cJSON *c = from_lua(L, lua_gettop(L), depth + 1, exact, err);
    if (!c) {
      if (err && !strstr(err->msg, " at ")) {
        size_t l = strlen(err->msg);
        snprintf(err->msg + l, sizeof err->msg - l, " at .%s", key);
      }
      lua_pop(L, 2);
      cJSON_Delete(o);
      return NULL;
    }
    cJSON_AddItemToObject(o, key, c);
    lua_pop(L, 1);
  }
  return o;
}

static cJSON *from_table(lua_State *L, int idx, int depth, int exact, rd_err *err) {
  if (depth >= RD_JSON_MAX_DEPTH) { /* as push_value: at most that many containers */
    rd_err_set(err, RD_EINVALID, "json: nesting deeper than %d (or a cycle)", RD_JSON_MAX_DEPTH);
    return NULL;
  }
  if (!lua_checkstack(L, 6)) return rd_err_set(err, RD_ENOMEM, "json: stack exhausted"), NULL;
  int kind = marked_kind(L, idx);
  lua_Integer n = 0;
  if (kind == 1) n = (lua_Integer)lua_rawlen(L, idx);
  else if (kind == 0 && looks_like_array(L, idx, &n)) kind = 1;
  return kind == 1 ? from_array(L, idx, n, depth, exact, err)
                   : from_object(L, idx, depth, exact, err);
}

static cJSON *from_lua(lua_State *L, int idx, int depth, int exact, rd_err *err) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return cJSON_CreateNull();
  case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    if (isnan(d) || isinf(d)) {
      rd_err_set(err, RD_EINVALID, "json: cannot encode %s", isnan(d) ? "NaN" : "infinity");
      return NULL;
    }
    return exact ? exact_number(L, idx) : cJSON_CreateNumber(d);
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    long bad = rd__utf8_invalid_at((const unsigned char *)s, len);
    if (bad >= 0 || memchr(s, '\0', len)) {
      rd_err_set(err, RD_EINVALID, "json: cannot encode a string with invalid UTF-8 (byte %ld)",
                 bad >= 0 ? bad + 1 : (long)((const char *)memchr(s, 0, len) - s) + 1);
      return NULL;
    }
    return cJSON_CreateString(s);
  }
  case LUA_TTABLE: return from_table(L, idx, depth, exact, err);
  case LUA_TUSERDATA:
    if (rd__json_isnull(L, idx)) return cJSON_CreateNull();
    if (luaL_getmetafield(L, idx, "__tojson") != LUA_TNIL) {
      /* objects such as blueprints know their JSON form */
      lua_pushvalue(L, idx);
      lua_call(L, 1, 1);
      cJSON *j = from_lua(L, lua_gettop(L), depth + 1, exact, err);
      lua_pop(L, 1);
      return j;
    }
    /* fall through */
  default:
    rd_err_set(err, RD_EINVALID, "json: cannot encode a %s", luaL_typename(L, idx));
    return NULL;
  }
}

cJSON *rd__json_from_lua(lua_State *L, int idx, rd_err *err) {
  return from_lua(L, lua_absindex(L, idx), 0, 0, err);
}

/* ---- encode to text, directly --------------------------------------------
 * Compact text is written straight from the Lua value into one growable
 * buffer: no cJSON tree (a malloc per node and per key), no second walk to
 * print it. It writes exactly what printing the tree from from_lua (exact
 * numbers) would: the same member order (lua_next's), the same escapes as
 * cJSON (\" \\ \b \f \n \r \t, other control bytes as \u00xx), and the same
 * refusals with the same messages. Pretty text still goes through cJSON. */

enum { JW_RAISED = 1 }; /* a __tojson raised: its error object is kept */

typedef struct jw {
  lua_State *L;
  char *p;
  size_t len, cap;
  int heap;       /* p is malloc'd (else it is `small`) */
  int marks;      /* stack index of the array marker; the object one follows */
  int errslot;    /* stack index where a raised __tojson error is kept */
  rd_err *err;
  char small[1024];
} jw;

static int jw_grow(jw *w, size_t n) {
  size_t cap = w->cap * 2;
  while (cap - w->len < n) cap *= 2;
  char *p = w->heap ? realloc(w->p, cap) : malloc(cap);
  if (!p) return rd_err_set(w->err, RD_ENOMEM, "json: out of memory");
  if (!w->heap) memcpy(p, w->p, w->len);
  w->p = p, w->cap = cap, w->heap = 1;
  return 0;
}

static inline int jw_reserve(jw *w, size_t n) {
  return w->cap - w->len >= n ? 0 : jw_grow(w, n);
}

static inline int jw_put(jw *w, const char *s, size_t n) {
  if (jw_reserve(w, n)) return RD_ENOMEM;
  memcpy(w->p + w->len, s, n);
  w->len += n;
  return 0;
}

static int jw_int(jw *w, long long v) {
  char tmp[24], *e = tmp + sizeof tmp, *q = e;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do *--q = (char)('0' + u % 10); while ((u /= 10));
  if (v < 0) *--q = '-';
  return jw_put(w, q, (size_t)(e - q));
}

static int jw_number(jw *w, int idx) {
  if (lua_isinteger(w->L, idx)) return jw_int(w, (long long)lua_tointeger(w->L, idx));
  double d = lua_tonumber(w->L, idx);
  if (isnan(d) || isinf(d))
    return rd_err_set(w->err, RD_EINVALID, "json: cannot encode %s", isnan(d) ? "NaN" : "infinity");
  char buf[40];
  float_text(d, buf); /* the one rule for printing a float */
  return jw_put(w, buf, strlen(buf));
}

/* Bytes of s as a JSON string. `check`: refuse invalid UTF-8 and NUL bytes
 * (values); keys are written as cJSON writes them (up to a NUL, unchecked). */
static int jw_string(jw *w, const char *s, size_t n, int check) {
  static const char hex[] = "0123456789abcdef";
  if (jw_reserve(w, n + 2)) return RD_ENOMEM;
  w->p[w->len++] = '"';
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0; /* bytes [run, i) are copied as they are */
  while (i < n) {
    unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0x80) { /* a UTF-8 sequence: copied, checked when asked */
      size_t len = !check ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      if (check && (i + len > n || rd__utf8_invalid_at(u + i, len) >= 0)) goto bad;
      i += len;
      continue;
    }
    if (c == 0 && check) goto bad;
    if (jw_put(w, s + run, i - run) || jw_reserve(w, 7)) return RD_ENOMEM;
    char *o = w->p + w->len;
    o[0] = '\\';
    switch (c) {
    case '"': o[1] = '"'; w->len += 2; break;
    case '\\': o[1] = '\\'; w->len += 2; break;
    case '\b': o[1] = 'b'; w->len += 2; break;
    case '\f': o[1] = 'f'; w->len += 2; break;
    case '\n': o[1] = 'n'; w->len += 2; break;
    case '\r': o[1] = 'r'; w->len += 2; break;
    case '\t': o[1] = 't'; w->len += 2; break;
    default:
      memcpy(o + 1, "u00", 3);
      o[4] = hex[c >> 4];
      o[5] = hex[c & 15];
      w->len += 6;
    }
    run = ++i;
  }
  if (jw_put(w, s + run, n - run) || jw_put(w, "\"", 1)) return RD_ENOMEM;
  return 0;
bad: { /* the message from_lua gives: the first invalid byte, else the NUL */
    long at = rd__utf8_invalid_at(u, n);
    if (at < 0) at = (long)((const char *)memchr(s, 0, n) - s);
    return rd_err_set(w->err, RD_EINVALID,
                      "json: cannot encode a string with invalid UTF-8 (byte %ld)", at + 1);
  }
}

/* The table's JSON kind as marked_kind, against the markers kept on the
 * stack; leaves what it pushed for the caller to drop. */
static int jw_kind(jw *w, int idx) {
  lua_State *L = w->L;
  if (!lua_getmetatable(L, idx)) return 0;
  if (lua_rawequal(L, -1, w->marks)) return 1;
  if (lua_rawequal(L, -1, w->marks + 1)) return 2;
  if (lua_getfield(L, -1, "__jsontype") != LUA_TSTRING) return 0;
  const char *k = lua_tostring(L, -1);
  return strcmp(k, "array") == 0 ? 1 : strcmp(k, "object") == 0 ? 2 : 0;
}

static int jw_value(jw *w, int idx, int depth);

/* " at [i]" / " at .key": where the innermost refusal happened. */
static int at_index(jw *w, int r, long long i) {
  if (r < 0 && w->err && !strstr(w->err->msg, " at ")) {
    size_t l = strlen(w->err->msg);
    snprintf(w->err->msg + l, sizeof w->err->msg - l, " at [%lld]", i);
  }
  return r;
}

static int at_key(jw *w, int r, const char *key) {
  if (r < 0 && w->err && !strstr(w->err->msg, " at ")) {
    size_t l = strlen(w->err->msg);
    snprintf(w->err->msg + l, sizeof w->err->msg - l, " at .%s", key);
  }
  return r;
}

static int jw_table(jw *w, int idx, int depth) {
  lua_State *L = w->L;
  if (depth >= RD_JSON_MAX_DEPTH)
    return rd_err_set(w->err, RD_EINVALID, "json: nesting deeper than %d (or a cycle)",
                      RD_JSON_MAX_DEPTH);
  if (!lua_checkstack(L, 6)) return rd_err_set(w->err, RD_ENOMEM, "json: stack exhausted");
  int top = lua_gettop(L);
  int kind = jw_kind(w, idx);
  lua_settop(L, top);
  lua_Integer n = 0;
  if (kind == 1) n = (lua_Integer)lua_rawlen(L, idx);
  else if (kind == 0 && looks_like_array(L, idx, &n)) kind = 1;
  if (kind == 1) {
    if (jw_put(w, "[", 1)) return RD_ENOMEM;
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1 && jw_put(w, ",", 1)) return RD_ENOMEM;
      lua_rawgeti(L, idx, i);
      int r = jw_value(w, top + 1, depth + 1);
      lua_settop(L, top);
      if (r) return at_index(w, r, (long long)i);
    }
    return jw_put(w, "]", 1);
  }
  if (jw_put(w, "{", 1)) return RD_ENOMEM;
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char numkey[32];
    const char *key;
    if (member_key(L, idx, numkey, &key, w->err)) {
      lua_settop(L, top);
      return RD_EINVALID;
    }
    int r = (first ? 0 : jw_put(w, ",", 1));
    if (!r) r = jw_string(w, key, strlen(key), 0);
    if (!r) r = jw_put(w, ":", 1);
    if (!r) r = jw_value(w, top + 2, depth + 1);
    if (r) {
      at_key(w, r, key);
      lua_settop(L, top);
      return r;
    }
    first = 0;
    lua_settop(L, top + 1);
  }
  return jw_put(w, "}", 1);
}

/* __tojson runs in protected mode: a raise must not leave the buffer behind. */
static int jw_userdata(jw *w, int idx, int depth) {
  lua_State *L = w->L;
  if (rd__json_isnull(L, idx)) return jw_put(w, "null", 4);
  if (luaL_getmetafield(L, idx, "__tojson") == LUA_TNIL)
    return rd_err_set(w->err, RD_EINVALID, "json: cannot encode a %s", luaL_typename(L, idx));
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* kept below what the walk unwinds */
    lua_replace(L, w->errslot);
    return JW_RAISED;
  }
  int r = jw_value(w, lua_gettop(L), depth + 1);
  lua_pop(L, 1);
  return r;
}

static int jw_value(jw *w, int idx, int depth) {
  lua_State *L = w->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return jw_put(w, "null", 4);
  case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? jw_put(w, "true", 4) : jw_put(w, "false", 5);
  case LUA_TNUMBER: return jw_number(w, idx);
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return jw_string(w, s, n, 1);
  }
  case LUA_TTABLE: return jw_table(w, idx, depth);
  case LUA_TUSERDATA: return jw_userdata(w, idx, depth);
  default:
    return rd_err_set(w->err, RD_EINVALID, "json: cannot encode a %s", luaL_typename(L, idx));
  }
}

/* Encode the value at idx into w: 0, an RD_E* code (err says why), or
 * JW_RAISED: a __tojson raised
 * and its error object is on top of the stack (the caller re-raises it
 * after freeing the buffer). */
static int jw_encode(lua_State *L, int idx, jw *w, rd_err *err) {
  *w = (jw){.L = L, .cap = sizeof w->small, .err = err};
  w->p = w->small;
  idx = lua_absindex(L, idx);
  int base = lua_gettop(L);
  luaL_checkstack(L, 8, "json");
  luaL_getmetatable(L, RD_MT_JSON_ARRAY);
  luaL_getmetatable(L, RD_MT_JSON_OBJECT);
  lua_pushnil(L);
  w->marks = base + 1;
  w->errslot = base + 3;
  int r = jw_value(w, idx, 0);
  if (r == JW_RAISED) {
    lua_pushvalue(L, w->errslot); /* the error object */
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
  } else {
    lua_settop(L, base);
  }
  if (!r && jw_reserve(w, 1)) r = RD_ENOMEM; /* room for a NUL */
  return r;
}

static void jw_free(jw *w) {
  if (w->heap) free(w->p);
}

/* Pretty text: the cJSON tree, printed by cJSON. */
static char *encode_pretty(lua_State *L, int idx, rd_err *err) {
  cJSON *j = from_lua(L, lua_absindex(L, idx), 0, 1, err);
  if (!j) return NULL;
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  if (!s) rd_err_set(err, RD_ENOMEM, "json: out of memory");
  return s;
}

char *rd__json_encode(lua_State *L, int idx, int pretty, rd_err *err) {
  if (pretty) return encode_pretty(L, idx, err);
  jw w;
  int r = jw_encode(L, idx, &w, err);
  if (r == JW_RAISED) {
    jw_free(&w);
    lua_error(L);
  }
  char *s = NULL;
  if (!r) s = w.heap ? w.p : malloc(w.len + 1);
  if (s) {
    if (!w.heap) memcpy(s, w.p, w.len);
    s[w.len] = 0; /* jw_encode reserved the byte */
    return s;
  }
  if (!r) rd_err_set(err, RD_ENOMEM, "json: out of memory");
  jw_free(&w);
  return NULL;
}

/* rd.json.encode(v [, {pretty = true}]) -> string | nil, err, "invalid" */
static int l_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  int pretty = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  rd_err err = {0};
  if (pretty) {
    char *s = encode_pretty(L, 1, &err);
    if (!s) return rd__lua_pusherr(L, &err);
    lua_pushstring(L, s);
    cJSON_free(s);
    return 1;
  }
  jw w;
  int r = jw_encode(L, 1, &w, &err);
  if (r == JW_RAISED) {
    jw_free(&w);
    return lua_error(L);
  }
  if (r) {
    jw_free(&w);
    return rd__lua_pusherr(L, &err);
  }
  lua_pushlstring(L, w.p, w.len);
  jw_free(&w);
  return 1;
}

static int mark(lua_State *L, const char *mt) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  else luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, mt);
  return 1;
}

/* rd.json.array([t]) / rd.json.object([t]) -> t, marked */
static int l_json_array(lua_State *L) { return mark(L, RD_MT_JSON_ARRAY); }
static int l_json_object(lua_State *L) { return mark(L, RD_MT_JSON_OBJECT); }

/* rd.json.kind(v) -> "array" | "object" | nil */
static int l_json_kind(lua_State *L) {
  if (!lua_istable(L, 1)) return 0;
  int k = marked_kind(L, 1);
  if (k == 0) return 0;
  lua_pushstring(L, k == 1 ? "array" : "object");
  return 1;
}

static int l_null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

static const luaL_Reg json_funcs[] = {
  {"decode", l_json_decode}, {"encode", l_json_encode}, {"array", l_json_array},
  {"object", l_json_object}, {"kind", l_json_kind}, {NULL, NULL},
};

void rd__open_json(lua_State *L) {
  luaL_newmetatable(L, RD_MT_JSON_ARRAY);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_pop(L, 1);
  luaL_newmetatable(L, RD_MT_JSON_OBJECT);
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, RD_NULL_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, 0, 0);
    luaL_newmetatable(L, RD_MT_NULL);
    lua_pushcfunction(L, l_null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RD_NULL_KEY);
  }
  luaL_newlib(L, json_funcs);
  lua_insert(L, -2);
  lua_setfield(L, -2, "null");
  lua_setfield(L, -2, "json");
}

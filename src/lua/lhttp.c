/*
 * rd.http.request{method, url, headers, query, body, json, timeout,
 * connect_timeout, follow, verify, gzip, user, password, max_body}
 *   -> res | nil, err, code
 *
 * Checks every argument before anything is allocated, starts the request on
 * the runtime's curl multi and parks the task (or blocks the main thread)
 * until it ends. Strings the request borrows (url, body) stay on this
 * function's stack frame, which survives the yield.
 */
#include "lua/lrd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  rd_wait_t base;        /* status: 0, a transport error, or RD_ECANCELED */
  char what[300];        /* "GET url" redacted, for --verbose logs */
  rd_http_op_t *op;
  rd_http_res_t *res;
  rd_err err;
} http_wait;

static void http_cb(int status, rd_http_res_t *res, const rd_err *err, void *ud) {
  http_wait *w = ud;
  w->op = NULL;
  w->res = res;
  if (err) w->err = *err;
  rd_wait_done(&w->base, status);
}

static void http_cancel(rd_wait_t *base) {
  http_wait *w = (http_wait *)base;
  if (w->op) rd_http_cancel(w->op);
  w->op = NULL;
}

static void http_release(rd_wait_t *base) {
  http_wait *w = (http_wait *)base;
  rd_http_res_free(w->res);
  free(w);
}

/* [-0, +1, m] the response as a table with the Response metatable. */
static void push_response(lua_State *L, const rd_http_res_t *res) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, res->status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, res->body, res->body_len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, res->url);
  lua_setfield(L, -2, "url");
  lua_pushnumber(L, res->total_time);
  lua_setfield(L, -2, "time");
  lua_pushinteger(L, (lua_Integer)(res->bytes_sent + res->bytes_recv));
  lua_setfield(L, -2, "transfer");
  lua_pushboolean(L, res->reused);
  lua_setfield(L, -2, "reused");
  lua_createtable(L, 0, (int)res->nheaders);
  for (size_t i = 0; i < res->nheaders; i++) {
    const rd_http_header_t *hd = &res->headers[i];
    if (lua_getfield(L, -1, hd->name) == LUA_TSTRING) { /* repeated: join */
      lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), hd->value);
      lua_remove(L, -2);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, hd->value);
    }
    lua_setfield(L, -2, hd->name);
  }
  lua_setfield(L, -2, "headers");
  luaL_setmetatable(L, RD_MT_RESPONSE);
}

static int http_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  http_wait *w = (http_wait *)ctx;
  int st = w->base.status;
  if (st == RD_ECANCELED) {
    rd_wait_release(&w->base);
    return rd__wait_canceled(L);
  }
  if (rd__rt(L)->verbose) {
    char line[400];
    if (st) snprintf(line, sizeof line, "redrive: http %s -> %s", w->what, rd_err_name(st));
    else snprintf(line, sizeof line, "redrive: http %s -> %ld (%.0f ms)", w->what,
                  w->res->status, w->res->total_time * 1000.0);
    rd_redact_msg(line, sizeof line);
    fprintf(stderr, "%s\n", line);
  }
  if (st != 0) {
    rd_err e = w->err;
    rd_wait_release(&w->base);
    return rd__lua_pusherr(L, &e);
  }
  push_response(L, w->res);
  rd_wait_release(&w->base);
  return 1;
}

/* ---- request building ------------------------------------------------------ */

/* [-0, +1, m] s percent-encoded (RFC 3986 unreserved characters kept). */
static void push_escaped(lua_State *L, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '~') {
      luaL_addchar(&b, (char)c);
    } else {
      luaL_addchar(&b, '%');
      luaL_addchar(&b, hex[c >> 4]);
      luaL_addchar(&b, hex[c & 15]);
    }
  }
  luaL_pushresult(&b);
}

/* [-0, +0, m] append "k=v" (escaped) to the parts table. */
static void add_pair(lua_State *L, int parts, int kidx, int vidx) {
  kidx = lua_absindex(L, kidx);
  vidx = lua_absindex(L, vidx);
  if (!lua_isstring(L, vidx) && !lua_isboolean(L, vidx))
    luaL_error(L, "bad argument #1 to 'request' (query.%s: string or number expected)",
               lua_tostring(L, kidx));
  size_t kl, vl;
  const char *k = lua_tolstring(L, kidx, &kl);
  push_escaped(L, k, kl);
  lua_pushliteral(L, "=");
  const char *v = luaL_tolstring(L, vidx, &vl);
  push_escaped(L, v, vl);
  lua_remove(L, -2);
  lua_concat(L, 3);
  lua_rawseti(L, parts, (lua_Integer)lua_rawlen(L, parts) + 1);
}

/* [-0, +1, m] url plus the url-encoded `query` table (arrays repeat the key;
 * keys sorted so a URL is stable in logs and tests). */
static void push_url(lua_State *L, int opts) {
  lua_getfield(L, opts, "url");
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "bad argument #1 to 'request' (url: string expected)");
  if (lua_getfield(L, opts, "query") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  luaL_argcheck(L, lua_istable(L, -1), 1, "query: table expected");
  int q = lua_gettop(L);
  lua_newtable(L);
  int keys = lua_gettop(L), nk = 0;
  for (lua_pushnil(L); lua_next(L, q); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad argument #1 to 'request' (query keys must be strings)");
    lua_pushvalue(L, -2);
    lua_rawseti(L, keys, ++nk);
  }
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, keys);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  lua_newtable(L);
  int parts = lua_gettop(L);
  for (int i = 1; i <= nk; i++) {
    lua_rawgeti(L, keys, i);
    lua_pushvalue(L, -1);
    lua_gettable(L, q);
    if (lua_istable(L, -1)) {
      for (lua_Integer j = 1; lua_rawgeti(L, -1, j) != LUA_TNIL; j++) {
        add_pair(L, parts, -3, -1);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    } else {
      add_pair(L, parts, -2, -1);
    }
    lua_pop(L, 2);
  }
  const char *url = lua_tostring(L, q - 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, url);
  for (int i = 1; i <= (int)lua_rawlen(L, parts); i++) {
    luaL_addchar(&b, (i == 1 && !strchr(url, '?')) ? '?' : '&');
    lua_rawgeti(L, parts, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_replace(L, q - 1);
  lua_settop(L, q - 1);
}

static const char *opt_string(lua_State *L, int t, const char *k) {
  int ty = lua_getfield(L, t, k);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (ty != LUA_TSTRING) luaL_error(L, "bad argument #1 to 'request' (%s: string expected, got %s)", k, lua_typename(L, ty));
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the options table keeps it alive */
  return s;
}

static int opt_bool(lua_State *L, int t, const char *k, int dflt) {
  lua_getfield(L, t, k);
  int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Seconds option k as ms into *ms (0 when absent, at least 1 when set);
 * RD_EINVALID (err names it) outside rd__range_timeout, left for the caller
 * to return once every argument is checked. */
static int opt_ms(lua_State *L, int t, const char *k, long *ms, rd_err *err) {
  double s = 0;
  int r = rd__opt_num(L, t, k, &rd__range_timeout, 0, &s, err);
  long v = (long)(s * 1000.0 + 0.5); /* s <= 1e9: fits */
  *ms = s > 0 && v < 1 ? 1 : v;
  return r;
}

/* [-0, +1, m] a table of "Name: value" lines; sets *has_ctype. */
static void push_header_lines(lua_State *L, int opts, int *has_ctype) {
  lua_newtable(L);
  int out = lua_gettop(L), n = 0;
  if (lua_getfield(L, opts, "headers") == LUA_TTABLE) {
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || !(lua_isstring(L, -1)))
        luaL_error(L, "bad argument #1 to 'request' (headers: string keys and values expected)");
      const char *k = lua_tostring(L, -2);
      if (strchr(k, '\n') || strchr(k, '\r') || strchr(lua_tostring(L, -1), '\n') ||
          strchr(lua_tostring(L, -1), '\r'))
        luaL_error(L, "bad argument #1 to 'request' (header '%s' contains a line break)", k);
      if (strcasecmp(k, "content-type") == 0) *has_ctype = 1;
      lua_pushfstring(L, "%s: %s", k, lua_tostring(L, -1));
      lua_rawseti(L, out, ++n);
    }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "bad argument #1 to 'request' (headers: table expected)");
  }
  lua_pop(L, 1);
}

static int l_http_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  rd_http_req_t req = {0};
  req.method = opt_string(L, 1, "method");
  req.user = opt_string(L, 1, "user");
  req.pass = opt_string(L, 1, "password");
  rd_err bad = {0}; /* an out-of-range option: returned after the type checks */
  double max_body = 0;
  if (!opt_ms(L, 1, "timeout", &req.timeout_ms, &bad) &&
      !opt_ms(L, 1, "connect_timeout", &req.connect_timeout_ms, &bad))
    rd__opt_num(L, 1, "max_body", &rd__range_bytes, 0, &max_body, &bad);
  req.max_body = (uint64_t)max_body; /* whole and <= 2^53: exact */
  req.follow = opt_bool(L, 1, "follow", 0);
  req.insecure = !opt_bool(L, 1, "verify", 1); /* Lua keeps the user-facing name */
  req.gzip = opt_bool(L, 1, "gzip", 1);
  push_url(L, 1); /* 2: url */
  req.url = lua_tostring(L, 2);
  int has_ctype = 0;
  push_header_lines(L, 1, &has_ctype); /* 3: header lines */
  lua_getfield(L, 1, "json");            /* 4: body */
  if (!lua_isnil(L, -1)) {
    rd_err e = {0};
    char *s = rd__json_encode(L, -1, 0, &e);
    if (!s) return luaL_error(L, "bad argument #1 to 'request' (json: %s)", e.msg);
    lua_pop(L, 1);
    lua_pushstring(L, s);
    cJSON_free(s);
    if (!has_ctype) {
      lua_pushliteral(L, "Content-Type: application/json");
      lua_rawseti(L, 3, (lua_Integer)lua_rawlen(L, 3) + 1);
    }
    if (!req.method) req.method = "POST";
  } else {
    lua_pop(L, 1);
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "bad argument #1 to 'request' (body: string expected)");
  }
  if (lua_isstring(L, 4)) req.body = lua_tolstring(L, 4, &req.body_len);
  if (!req.method) req.method = req.body ? "POST" : "GET";
  if (bad.code) return rd__lua_fail(L, bad.code, "http: %s", bad.msg);
  rd__wait_check(L);
  size_t nh = lua_rawlen(L, 3);
  const char **lines = calloc(nh + 1, sizeof *lines);
  http_wait *w = calloc(1, sizeof *w);
  if (!lines || !w) {
    free(lines);
    free(w);
    return luaL_error(L, "out of memory");
  }
  for (size_t i = 0; i < nh; i++) {
    lua_rawgeti(L, 3, (lua_Integer)i + 1);
    lines[i] = lua_tostring(L, -1); /* the lines table keeps it alive */
    lua_pop(L, 1);
  }
  req.headers = lines;
  rd_rt *rt = rd__rt(L);
  if (rt->verbose) {
    char url[256];
    rd_redact_url(req.url, url, sizeof url);
    snprintf(w->what, sizeof w->what, "%s %s", req.method, url);
  }
  rd_wait_init(&w->base, http_cancel, http_release);
  rd_err err = {0};
  rd_http_t *h = rd__rt_http(rt, &err);
  int r = h ? rd_http_start(h, &req, http_cb, w, &w->op, &err) : err.code;
  free(lines); /* curl copied the header lines */
  if (r != 0) {
    free(w);
    return rd__lua_pusherr(L, &err);
  }
  return rd__await(L, &w->base, http_done);
}

/* res:json() -> value | nil, err, "invalid" */
static int l_response_json(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "body");
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (!s) return luaL_error(L, "response has no body");
  rd_err err = {0};
  cJSON *j = NULL;
  if (rd_json_parse(s, len, &j, &err)) {
    lua_getfield(L, 1, "url");
    char url[256];
    rd_redact_url(lua_isstring(L, -1) ? lua_tostring(L, -1) : "?", url, sizeof url);
    return rd__lua_fail(L, RD_EINVALID, "response of %s is not JSON: %s", url, err.msg);
  }
  int r = rd__json_push(L, j, &err);
  cJSON_Delete(j);
  if (r) return rd__lua_pusherr(L, &err);
  return 1;
}

static const luaL_Reg http_funcs[] = {{"request", l_http_request}, {NULL, NULL}};
static const luaL_Reg response_methods[] = {{"json", l_response_json}, {NULL, NULL}};

void rd__open_http(lua_State *L) {
  rd__new_class(L, RD_MT_RESPONSE, NULL, response_methods);
  luaL_newlib(L, http_funcs);
  lua_setfield(L, -2, "http");
}

/* Lua binding of blueprints: rd.blueprint(doc) objects over a cJSON
 * document (pointer, patch, merge, diff, module views, validate) and the
 * module type registry. The work is done by src/json and src/engine. */
#include "lrd.h"

#include "core/buf.h"
#include "engine/blueprint.h"
#include "json/pointer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RD_MT_BLUEPRINT_MODULE "redrive.Blueprint.module"
#define RD_MT_BLUEPRINT_BOX "redrive.Blueprint.box"
#define RD_BP_REGISTRY_KEY "redrive.blueprint.registry"

typedef struct lbp {
  cJSON *doc; /* NULL only while being built */
} lbp;

/* A view of one module (rel == "") or of a value inside it. It finds the
 * module again by id on every access, so edits elsewhere in the document
 * (a module removed before it) do not make it point at the wrong module.
 * User values: 1 = the blueprint, 2 = module pointer at creation (used
 * when the module has no id), 3 = pointer relative to the module. */
typedef struct lview {
  int has_id;
  int64_t id;
} lview;

/* Temporaries that must be freed even if Lua raises: their owner is this
 * userdata, whose __gc frees whatever is left in it. */
typedef struct box {
  cJSON *json;
  char *str;
  rd_buf buf;
} box;

static int box_gc(lua_State *L) {
  box *b = luaL_checkudata(L, 1, RD_MT_BLUEPRINT_BOX);
  cJSON_Delete(b->json);
  free(b->str);
  rd__buf_free(&b->buf);
  memset(b, 0, sizeof *b);
  return 0;
}

/* [-0, +1, m] */
static box *newbox(lua_State *L) {
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, RD_MT_BLUEPRINT_BOX);
  return b;
}

static lbp *check_bp(lua_State *L, int idx) {
  lbp *bp = luaL_checkudata(L, idx, RD_MT_BLUEPRINT);
  if (!bp->doc) luaL_error(L, "attempt to use a freed blueprint");
  return bp;
}

/* [-0, +1, m] a new, empty blueprint userdata; the caller sets doc. */
static lbp *new_bp(lua_State *L) {
  lbp *bp = lua_newuserdatauv(L, sizeof *bp, 0);
  bp->doc = NULL;
  luaL_setmetatable(L, RD_MT_BLUEPRINT);
  return bp;
}

/* ---- conversion ---------------------------------------------------------- */

static const cJSON *view_node(lua_State *L, int idx, rd_err *err);

/* [-0, +0, m] the value at idx as a new cJSON tree (blueprints and views
 * are copied; with `parse`, strings are JSON text). NULL + err. */
static cJSON *tojson(lua_State *L, int idx, int parse, rd_err *err) {
  if (parse && lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    cJSON *j = NULL; /* the parse bounds the depth itself */
    return rd_json_parse(s, len, &j, err) ? NULL : j;
  }
  const cJSON *src = NULL;
  lbp *bp = luaL_testudata(L, idx, RD_MT_BLUEPRINT);
  if (bp) src = bp->doc;
  else if (luaL_testudata(L, idx, RD_MT_BLUEPRINT_MODULE) && !(src = view_node(L, idx, err)))
    return NULL;
  if (!src) return rd__json_from_lua(L, idx, err);
  cJSON *j = cJSON_Duplicate(src, 1);
  if (!j) rd_err_set(err, RD_ENOMEM, "out of memory");
  return j;
}

/* [-0, +1, m] push a cJSON value as Lua data; raises on failure. */
static void push_json(lua_State *L, const cJSON *j) {
  rd_err err = {0};
  if (rd__json_push(L, j, &err)) luaL_error(L, "%s", err.msg);
}

/* ---- the registry -------------------------------------------------------- */

static int registry_gc(lua_State *L) {
  rd_blueprint_registry_t **reg = lua_touserdata(L, 1);
  rd_blueprint_registry_free(*reg);
  *reg = NULL;
  return 0;
}

/* [-0, +0, -] the registry of this Lua state (made by rd__open_blueprint). */
static rd_blueprint_registry_t *registry(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RD_BP_REGISTRY_KEY);
  rd_blueprint_registry_t **reg = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return reg ? *reg : NULL;
}

/* rd.blueprint.register_module(type, {fields = {...}, required = {...},
 * strict = bool}) -> true | nil, msg, "invalid" */
static int l_blueprint_register_module(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  box *b = newbox(L);
  rd_err err = {0};
  if (!(b->json = rd__json_from_lua(L, 2, &err))) return rd__lua_pusherr(L, &err);
  rd_blueprint_registry_t *reg = registry(L);
  if (!reg) return luaL_error(L, "blueprint registry missing");
  if (rd_blueprint_registry_add(reg, type, b->json, &err)) return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* rd.blueprint.registered(type) -> spec table | nil */
static int l_blueprint_registered(lua_State *L) {
  const cJSON *spec = rd_blueprint_registry_get(registry(L), luaL_checkstring(L, 1));
  if (!spec) return 0;
  push_json(L, spec);
  return 1;
}

/* ---- construction -------------------------------------------------------- */

/* rd.blueprint(table | json_string | blueprint) -> bp | nil, msg, "invalid" */
static int l_blueprint_new(lua_State *L) {
  /* called as a method of the rd.blueprint table (__call): argument 1 is
   * that table and the user's first argument is 2, so the message is built
   * here (luaL_typeerror would name the table and no function) */
  int t = lua_type(L, 2);
  if (t != LUA_TTABLE && t != LUA_TSTRING && !luaL_testudata(L, 2, RD_MT_BLUEPRINT))
    return luaL_error(L, "bad argument #1 to 'blueprint' (table or JSON string expected, got %s)",
                      luaL_typename(L, 2));
  lbp *bp = new_bp(L);
  rd_err err = {0};
  if (!(bp->doc = tojson(L, 2, 1, &err))) return rd__lua_pusherr(L, &err);
  return 1;
}

/* ---- pointer methods ----------------------------------------------------- */

/* bp:get(pointer) -> value | nil, msg, "invalid"|"not_found" */
static int l_bp_get(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  const char *ptr = luaL_checkstring(L, 2);
  const cJSON *v = NULL;
  rd_err err = {0};
  if (rd_json_pointer_get(bp->doc, ptr, &v, &err)) return rd__lua_pusherr(L, &err);
  push_json(L, v);
  return 1;
}

/* bp:set(pointer, value) -> true | nil, msg, code */
static int l_bp_set(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  const char *ptr = luaL_checkstring(L, 2);
  luaL_checkany(L, 3);
  box *b = newbox(L);
  rd_err err = {0};
  if (!(b->json = tojson(L, 3, 0, &err))) return rd__lua_pusherr(L, &err);
  if (rd_json_pointer_set(&bp->doc, ptr, b->json, &err)) return rd__lua_pusherr(L, &err);
  b->json = NULL; /* the document owns it now */
  lua_pushboolean(L, 1);
  return 1;
}

/* bp:remove(pointer) -> true | nil, msg, code */
static int l_bp_remove(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  rd_err err = {0};
  if (rd_json_pointer_remove(bp->doc, luaL_checkstring(L, 2), &err))
    return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* bp:merge(patch) / bp:apply(ops): patch as table or JSON string. */
static int l_bp_merge(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  luaL_checkany(L, 2);
  box *b = newbox(L);
  rd_err err = {0};
  if (!(b->json = tojson(L, 2, 1, &err)) || rd_json_merge_patch(&bp->doc, b->json, &err))
    return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_bp_apply(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  luaL_checkany(L, 2);
  box *b = newbox(L);
  rd_err err = {0};
  if (!(b->json = tojson(L, 2, 1, &err))) return rd__lua_pusherr(L, &err);
  /* An empty Lua table converts to {}: treat it as the empty patch. */
  if (cJSON_IsObject(b->json) && !b->json->child) b->json->type = cJSON_Array;
  if (rd_json_patch_apply(&bp->doc, b->json, &err)) return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* bp:diff(other) -> ops (a JSON Patch turning bp into other) */
static int l_bp_diff(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  luaL_checkany(L, 2);
  box *b = newbox(L), *ops = newbox(L);
  rd_err err = {0};
  if (!(b->json = tojson(L, 2, 1, &err)) || rd_json_diff(bp->doc, b->json, &ops->json, &err))
    return rd__lua_pusherr(L, &err);
  push_json(L, ops->json);
  return 1;
}

/* ---- whole-document methods ---------------------------------------------- */

/* [-0, +1, m] the document printed, pretty or not. */
static void push_text(lua_State *L, const cJSON *j, int pretty) {
  box *b = newbox(L);
  if (!(b->str = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j)))
    luaL_error(L, "out of memory");
  lua_pushstring(L, b->str);
  lua_remove(L, -2);
}

/* bp:json{pretty = bool} -> string */
static int l_bp_json(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  int pretty = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    pretty = lua_getfield(L, 2, "pretty") != LUA_TNIL && lua_toboolean(L, -1);
  }
  push_text(L, bp->doc, pretty);
  return 1;
}

static int l_bp_copy(lua_State *L) {
  lbp *bp = check_bp(L, 1), *c = new_bp(L);
  if (!(c->doc = cJSON_Duplicate(bp->doc, 1))) return luaL_error(L, "out of memory");
  return 1;
}

static int l_bp_totable(lua_State *L) {
  push_json(L, check_bp(L, 1)->doc);
  return 1;
}

static int l_bp_eq(lua_State *L) {
  lbp *a = luaL_testudata(L, 1, RD_MT_BLUEPRINT), *b = luaL_testudata(L, 2, RD_MT_BLUEPRINT);
  lua_pushboolean(L, a && b && a->doc && b->doc && rd_json_equal(a->doc, b->doc));
  return 1;
}

static int l_bp_tostring(lua_State *L) {
  lbp *bp = luaL_checkudata(L, 1, RD_MT_BLUEPRINT);
  if (!bp->doc) lua_pushliteral(L, "redrive.Blueprint (freed)");
  else push_text(L, bp->doc, 1);
  return 1;
}

static int l_bp_gc(lua_State *L) {
  lbp *bp = luaL_checkudata(L, 1, RD_MT_BLUEPRINT);
  cJSON_Delete(bp->doc);
  bp->doc = NULL;
  return 0;
}

/* [-0, +1, m] one problem as {module = id|nil, field, pointer, message} */
static void push_problem(lua_State *L, const rd_blueprint_problem_t *p) {
  lua_createtable(L, 0, 4);
  if (p->has_module) {
    lua_pushinteger(L, (lua_Integer)p->module);
    lua_setfield(L, -2, "module");
  }
  lua_pushstring(L, p->field);
  lua_setfield(L, -2, "field");
  lua_pushstring(L, p->pointer);
  lua_setfield(L, -2, "pointer");
  lua_pushstring(L, p->message);
  lua_setfield(L, -2, "message");
}

typedef struct problems {
  rd_blueprint_problem_t *p;
  size_t n;
} problems;

static int problems_gc(lua_State *L) {
  problems *ps = lua_touserdata(L, 1);
  rd_blueprint_problems_free(ps->p, ps->n);
  ps->p = NULL, ps->n = 0;
  return 0;
}

/* bp:validate() -> true | nil, {problem...}, "invalid" */
static int l_bp_validate(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  problems *ps = lua_newuserdatauv(L, sizeof *ps, 0);
  *ps = (problems){0};
  lua_createtable(L, 0, 1); /* frees the list even if building the result raises */
  lua_pushcfunction(L, problems_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  rd_err err = {0};
  if (rd_blueprint_validate(bp->doc, registry(L), &ps->p, &ps->n, &err))
    return rd__lua_pusherr(L, &err);
  if (ps->n == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_createtable(L, (int)ps->n, 0);
  for (size_t i = 0; i < ps->n; i++) {
    push_problem(L, &ps->p[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushstring(L, rd_err_name(RD_EINVALID));
  return 3;
}

/* ---- module views -------------------------------------------------------- */

/* [-0, +1, m] a view of the blueprint at bpi. */
static void push_view(lua_State *L, int bpi, int has_id, int64_t id, const char *modptr,
                      const char *rel) {
  bpi = lua_absindex(L, bpi);
  lview *v = lua_newuserdatauv(L, sizeof *v, 3);
  v->has_id = has_id;
  v->id = id;
  luaL_setmetatable(L, RD_MT_BLUEPRINT_MODULE);
  lua_pushvalue(L, bpi);
  lua_setiuservalue(L, -2, 1);
  lua_pushstring(L, modptr);
  lua_setiuservalue(L, -2, 2);
  lua_pushstring(L, rel);
  lua_setiuservalue(L, -2, 3);
}

/* The blueprint of the view at idx, and the module's current pointer in
 * out (the module is found again by id). RD_ENOT_FOUND when it is gone. */
static int view_module(lua_State *L, int idx, lbp **bp, rd_buf *out, rd_err *err) {
  lview *v = luaL_checkudata(L, idx, RD_MT_BLUEPRINT_MODULE);
  lua_getiuservalue(L, idx, 1);
  *bp = check_bp(L, -1);
  lua_pop(L, 1); /* the view keeps the blueprint alive */
  out->len = 0;
  if (!v->has_id) {
    lua_getiuservalue(L, idx, 2);
    int r = rd__buf_adds(out, lua_tostring(L, -1));
    lua_pop(L, 1);
    return r ? rd_err_set(err, RD_ENOMEM, "out of memory") : 0;
  }
  char *ptr = NULL;
  int r = rd_blueprint_find_module((*bp)->doc, v->id, &ptr, err);
  if (r == 0 && rd__buf_adds(out, ptr)) r = rd_err_set(err, RD_ENOMEM, "out of memory");
  free(ptr);
  return r;
}

/* Full pointer of the view's value into out, and the value itself. */
static int view_resolve(lua_State *L, int idx, lbp **bp, rd_buf *out, const cJSON **node,
                        rd_err *err) {
  int r = view_module(L, idx, bp, out, err);
  if (r) return r;
  lua_getiuservalue(L, idx, 3);
  r = rd__buf_adds(out, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (r) return rd_err_set(err, RD_ENOMEM, "out of memory");
  return rd_json_pointer_get((*bp)->doc, out->data, node, err);
}

static const cJSON *view_node(lua_State *L, int idx, rd_err *err) {
  box *b = newbox(L);
  lbp *bp;
  const cJSON *node = NULL;
  int r = view_resolve(L, idx, &bp, &b->buf, &node, err);
  lua_pop(L, 1);
  return r ? NULL : node;
}

/* The child of node named by the Lua key at kidx (1-based for arrays);
 * its reference token goes to tok. NULL if there is none. */
static const cJSON *view_child(lua_State *L, const cJSON *node, int kidx, rd_buf *tok) {
  tok->len = 0;
  if (cJSON_IsArray(node) && lua_isinteger(L, kidx)) {
    lua_Integer k = lua_tointeger(L, kidx);
    if (k < 1 || k > cJSON_GetArraySize(node) + 1 || rd__jptr_push_index(tok, (size_t)k - 1))
      return NULL;
    return k <= cJSON_GetArraySize(node) ? cJSON_GetArrayItem(node, (int)k - 1) : NULL;
  }
  if (cJSON_IsObject(node) && lua_type(L, kidx) == LUA_TSTRING) {
    const char *k = lua_tostring(L, kidx);
    if (rd__jptr_push(tok, k)) return NULL;
    return cJSON_GetObjectItemCaseSensitive(node, k);
  }
  return NULL;
}

/* [-0, +1, m] push child (a view if it is a container) of the view at idx,
 * reached by token tok. */
static void push_child(lua_State *L, int idx, const cJSON *child, const char *tok) {
  if (!cJSON_IsArray(child) && !cJSON_IsObject(child)) {
    push_json(L, child);
    return;
  }
  lview *v = lua_touserdata(L, idx);
  lua_getiuservalue(L, idx, 2);
  lua_getiuservalue(L, idx, 3);
  lua_pushstring(L, tok);
  lua_concat(L, 2); /* [modptr, rel..tok] */
  lua_getiuservalue(L, idx, 1);
  push_view(L, -1, v->has_id, v->id, lua_tostring(L, -3), lua_tostring(L, -2));
  lua_replace(L, -4);
  lua_pop(L, 2);
}

/* m[key]: scalars as Lua values, arrays and objects as views; m.pointer is
 * the module's JSON pointer. nil when there is nothing (or the module was
 * removed from the blueprint). */
static int l_view_index(lua_State *L) {
  box *b = newbox(L), *t = newbox(L);
  lbp *bp;
  const cJSON *node;
  if (view_resolve(L, 1, &bp, &b->buf, &node, NULL)) return 0;
  lua_getiuservalue(L, 1, 3);
  int at_module = *lua_tostring(L, -1) == '\0';
  lua_pop(L, 1);
  if (at_module && lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "pointer") == 0) {
    lua_pushstring(L, b->buf.data);
    return 1;
  }
  const cJSON *child = view_child(L, node, 2, &t->buf);
  if (!child) return 0;
  push_child(L, 1, child, t->buf.data);
  return 1;
}

/* m[key] = value writes through to the blueprint; nil removes. Raises on
 * failure (an assignment cannot return an error). */
static int l_view_newindex(lua_State *L) {
  box *b = newbox(L), *t = newbox(L);
  lview *v = lua_touserdata(L, 1);
  lbp *bp;
  const cJSON *node;
  rd_err err = {0};
  if (view_resolve(L, 1, &bp, &b->buf, &node, &err)) return luaL_error(L, "%s", err.msg);
  const cJSON *child = view_child(L, node, 2, &t->buf);
  if (!t->buf.len) return luaL_error(L, "cannot set %s here", luaL_tolstring(L, 2, NULL));
  if (rd__buf_adds(&b->buf, t->buf.data)) return luaL_error(L, "out of memory");
  if (lua_isnil(L, 3)) {
    if (child && rd_json_pointer_remove(bp->doc, b->buf.data, &err))
      return luaL_error(L, "%s", err.msg);
    return 0;
  }
  if (!(t->json = tojson(L, 3, 0, &err)) ||
      rd_json_pointer_set(&bp->doc, b->buf.data, t->json, &err))
    return luaL_error(L, "%s", err.msg);
  const cJSON *set = t->json;
  t->json = NULL; /* the document owns it now */
  int64_t id;
  lua_getiuservalue(L, 1, 3);
  /* A view follows its module by id: follow a new id too. */
  if (v->has_id && *lua_tostring(L, -1) == '\0' && lua_type(L, 2) == LUA_TSTRING &&
      strcmp(lua_tostring(L, 2), "id") == 0 && rd__json_int(set, &id))
    v->id = id;
  return 0;
}

static int l_view_len(lua_State *L) {
  const cJSON *node = view_node(L, 1, NULL);
  lua_pushinteger(L, node ? cJSON_GetArraySize(node) : 0);
  return 1;
}

/* next(m, key) over the view's children, for pairs(m). */
static int l_view_next(lua_State *L) {
  box *t = newbox(L);
  const cJSON *node = view_node(L, 1, NULL), *c = NULL;
  if (!node) return 0;
  lua_Integer i = 0;
  if (lua_isnil(L, 2)) c = node->child;
  else if (cJSON_IsArray(node) && lua_isinteger(L, 2))
    c = cJSON_GetArrayItem(node, (int)(i = lua_tointeger(L, 2)));
  else if (cJSON_IsObject(node) && lua_type(L, 2) == LUA_TSTRING)
    c = (c = cJSON_GetObjectItemCaseSensitive(node, lua_tostring(L, 2))) ? c->next : NULL;
  if (!c) return 0;
  if (cJSON_IsArray(node)) {
    lua_pushinteger(L, i + 1);
    if (rd__jptr_push_index(&t->buf, (size_t)i)) return luaL_error(L, "out of memory");
  } else {
    lua_pushstring(L, c->string);
    if (rd__jptr_push(&t->buf, c->string)) return luaL_error(L, "out of memory");
  }
  push_child(L, 1, c, t->buf.data);
  return 2;
}

static int l_view_pairs(lua_State *L) {
  luaL_checkudata(L, 1, RD_MT_BLUEPRINT_MODULE);
  lua_pushcfunction(L, l_view_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* __tojson: rd.json.encode(m) encodes the value the view shows. */
static int l_view_tojson(lua_State *L) {
  const cJSON *node = view_node(L, 1, NULL);
  if (!node) return 0;
  push_json(L, node);
  return 1;
}

static int l_view_tostring(lua_State *L) {
  const cJSON *node = view_node(L, 1, NULL);
  if (!node) lua_pushliteral(L, "redrive.Blueprint.module (removed)");
  else push_text(L, node, 1);
  return 1;
}

/* bp:module(id) -> view | nil, msg, "not_found" */
static int l_bp_module(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  box *b = newbox(L);
  rd_err err = {0};
  if (rd_blueprint_find_module(bp->doc, id, &b->str, &err)) return rd__lua_pusherr(L, &err);
  push_view(L, 1, 1, id, b->str, "");
  return 1;
}

typedef struct collect {
  const char *glob; /* NULL: every module */
  rd_buf *out;      /* records "has_id id pointer\0" */
  int nomem;
} collect;

static int collect_cb(const cJSON *m, const char *pointer, void *ud) {
  collect *c = ud;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "module");
  if (c->glob && !(cJSON_IsString(type) && rd_glob_match(c->glob, type->valuestring))) return 0;
  int64_t id = 0;
  int has_id = rd__blueprint_module_id(m, &id);
  if (rd__buf_printf(c->out, "%d %lld %s", has_id, (long long)id, pointer) ||
      rd__buf_add(c->out, "", 1))
    return c->nomem = 1;
  return 0;
}

/* bp:modules{module = glob} -> {view...} in flow order, routes included */
static int l_bp_modules(lua_State *L) {
  lbp *bp = check_bp(L, 1);
  collect c = {0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "module");
    c.glob = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1); /* kept on the stack */
  }
  box *b = newbox(L);
  c.out = &b->buf;
  rd_err err = {0};
  int r = rd_blueprint_each_module(bp->doc, collect_cb, &c, &err);
  if (c.nomem) return luaL_error(L, "out of memory");
  if (r < 0) return rd__lua_pusherr(L, &err);
  lua_newtable(L);
  lua_Integer n = 0;
  for (size_t off = 0; off < b->buf.len; off += strlen(b->buf.data + off) + 1) {
    int has_id = 0, used = 0;
    long long id = 0;
    sscanf(b->buf.data + off, "%d %lld %n", &has_id, &id, &used);
    push_view(L, 1, has_id, id, b->buf.data + off + used, "");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* ---- registration -------------------------------------------------------- */

static int l_bp_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lbp *bp = luaL_checkudata(L, 1, RD_MT_BLUEPRINT);
  const char *k = lua_tostring(L, 2);
  if (!bp->doc || !k || strcmp(k, "name") != 0) return 0;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(bp->doc, "name");
  if (!cJSON_IsString(name)) return 0;
  lua_pushstring(L, name->valuestring);
  return 1;
}

static const luaL_Reg bp_methods[] = {
  {"get", l_bp_get},       {"set", l_bp_set},         {"remove", l_bp_remove},
  {"merge", l_bp_merge},   {"apply", l_bp_apply},     {"diff", l_bp_diff},
  {"module", l_bp_module}, {"modules", l_bp_modules}, {"validate", l_bp_validate},
  {"json", l_bp_json},     {"copy", l_bp_copy},       {"totable", l_bp_totable},
  {NULL, NULL},
};

static const luaL_Reg bp_meta[] = {
  {"__eq", l_bp_eq},     {"__tostring", l_bp_tostring}, {"__gc", l_bp_gc},
  {"__close", l_bp_gc}, {"__tojson", l_bp_totable},   {NULL, NULL},
};

static const luaL_Reg view_meta[] = {
  {"__index", l_view_index}, {"__newindex", l_view_newindex}, {"__len", l_view_len},
  {"__pairs", l_view_pairs}, {"__tostring", l_view_tostring}, {"__tojson", l_view_tojson},
  {NULL, NULL},
};

static const luaL_Reg blueprint_funcs[] = {
  {"register_module", l_blueprint_register_module},
  {"registered", l_blueprint_registered},
  {NULL, NULL},
};

/* One registry per Lua state, kept in the Lua registry; reused when the
 * module is opened again. */
static void open_registry(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, RD_BP_REGISTRY_KEY) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  rd_blueprint_registry_t **reg = lua_newuserdatauv(L, sizeof *reg, 0);
  *reg = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, registry_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  rd_err err = {0};
  if (rd_blueprint_registry_new(reg, &err)) luaL_error(L, "%s", err.msg);
  lua_setfield(L, LUA_REGISTRYINDEX, RD_BP_REGISTRY_KEY);
}

void rd__open_blueprint(lua_State *L) {
  luaL_newmetatable(L, RD_MT_BLUEPRINT_BOX);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, RD_MT_BLUEPRINT);
  luaL_newlib(L, bp_methods);
  lua_pushcclosure(L, l_bp_index, 1);
  lua_setfield(L, -2, "__index");
  luaL_setfuncs(L, bp_meta, 0);
  lua_pop(L, 1);
  luaL_newmetatable(L, RD_MT_BLUEPRINT_MODULE);
  luaL_setfuncs(L, view_meta, 0);
  lua_pop(L, 1);
  open_registry(L);
  /* rd.blueprint: callable, and holds the registry functions */
  luaL_newlib(L, blueprint_funcs);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_blueprint_new);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "blueprint");
  /* the engine registers module types through redrive.core */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "redrive.core") == LUA_TTABLE) {
    lua_pushcfunction(L, l_blueprint_register_module);
    lua_setfield(L, -2, "register_module");
  }
  lua_pop(L, 2);
}

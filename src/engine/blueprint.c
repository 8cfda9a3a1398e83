/* Blueprints (Make format): the module type registry, structural and type
 * validation, and walking the modules of a flow including router routes. */
#include "engine/blueprint.h"

#include "core/buf.h"
#include "json/pointer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

int rd__json_int(const cJSON *v, int64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (d != floor(d) || fabs(d) >= 9007199254740992.0) return 0;
  *out = (int64_t)d;
  return 1;
}

int rd__blueprint_module_id(const cJSON *module, int64_t *out) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(module, "id");
  return cJSON_IsObject(module) && rd__json_int(id, out);
}

int rd_glob_match(const char *p, const char *s) {
  const char *star = NULL, *retry = NULL;
  /* Greedy with one backtrack point: on a mismatch, let the last '*'
   * swallow one more character. Linear in practice, never recursive. */
  while (*s) {
    if (*p == '\\' && p[1]) {
      if (p[1] == *s) {
        p += 2, s++;
        continue;
      }
    } else if (*p == '?' || (*p != '*' && *p == *s)) {
      p++, s++;
      continue;
    } else if (*p == '*') {
      star = p++;
      retry = s;
      continue;
    }
    if (!star) return 0;
    p = star + 1;
    s = ++retry;
  }
  while (*p == '*') p++;
  return *p == '\0';
}

static const char *const handlers[] = {"builtin:Break", "builtin:Resume", "builtin:Ignore",
                                       "builtin:Commit", "builtin:Rollback"};

static int is_handler(const char *type) {
  for (size_t i = 0; i < sizeof handlers / sizeof *handlers; i++)
    if (strcmp(type, handlers[i]) == 0) return 1;
  return 0;
}

/* ---- registry ------------------------------------------------------------ */

struct rd_blueprint_registry {
  cJSON *types; /* {type: spec}, specs checked when added */
};

int rd_blueprint_registry_new(rd_blueprint_registry_t **out, rd_err *err) {
  rd_blueprint_registry_t *reg = calloc(1, sizeof *reg);
  if (!reg || !(reg->types = cJSON_CreateObject())) {
    free(reg);
    return rd_err_set(err, RD_ENOMEM, "out of memory");
  }
  *out = reg;
  return 0;
}

void rd_blueprint_registry_free(rd_blueprint_registry_t *reg) {
  if (!reg) return;
  cJSON_Delete(reg->types);
  free(reg);
}

/* "url": a string whose literal part is checked as a URL (url_problem) */
static const char *const field_types[] = {"string", "number", "integer", "boolean",
                                          "array",  "object", "any",     "url"};

static int known_field_type(const char *t) {
  for (size_t i = 0; i < sizeof field_types / sizeof *field_types; i++)
    if (strcmp(t, field_types[i]) == 0) return 1;
  return 0;
}

/* A field type: a type name, or {"type": "array", "items": <field type>}, or
 * {"type": "object", "fields": {name: <field type>}, "required": [name...]}
 * (what the elements of a list such as headers [{name, value}] must be).
 * `path` names the field in messages ("headers", "headers.items.name"). */
static int check_ftype(const char *type, const char *path, const cJSON *t, rd_err *err) {
  static const char *const what = "type must be string, number, integer, boolean, array, "
                                  "object, url or any, or {type, items} / {type, fields, "
                                  "required}";
  if (cJSON_IsString(t) && known_field_type(t->valuestring)) return 0;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "type");
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(t, "items");
  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(t, "fields");
  const cJSON *required = cJSON_GetObjectItemCaseSensitive(t, "required");
  int is_array = cJSON_IsString(name) && strcmp(name->valuestring, "array") == 0;
  int is_object = cJSON_IsString(name) && strcmp(name->valuestring, "object") == 0;
  if (!cJSON_IsObject(t) || !(is_array || is_object) || (items && !is_array) ||
      ((fields || required) && !is_object))
    return rd_err_set(err, RD_EINVALID, "%s: field '%.64s': %s", type, path, what);
  char sub[160];
  if (items) {
    snprintf(sub, sizeof sub, "%.64s.items", path);
    return check_ftype(type, sub, items, err);
  }
  if (fields && !cJSON_IsObject(fields))
    return rd_err_set(err, RD_EINVALID, "%s: field '%.64s': fields must be an object", type, path);
  for (const cJSON *f = fields ? fields->child : NULL; f; f = f->next) {
    snprintf(sub, sizeof sub, "%.64s.%.64s", path, f->string);
    int r = check_ftype(type, sub, f, err);
    if (r) return r;
  }
  if (required && !cJSON_IsArray(required))
    return rd_err_set(err, RD_EINVALID, "%s: field '%.64s': required must be an array of names",
                      type, path);
  for (const cJSON *r = required ? required->child : NULL; r; r = r->next)
    if (!cJSON_IsString(r))
      return rd_err_set(err, RD_EINVALID,
                        "%s: field '%.64s': required must be an array of names", type, path);
  return 0;
}

static int check_spec(const char *type, const cJSON *spec, rd_err *err) {
  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(spec, "fields");
  const cJSON *required = cJSON_GetObjectItemCaseSensitive(spec, "required");
  const cJSON *strict = cJSON_GetObjectItemCaseSensitive(spec, "strict");
  if (!cJSON_IsObject(spec))
    return rd_err_set(err, RD_EINVALID, "%s: spec must be an object", type);
  if (fields && !cJSON_IsObject(fields) && !(cJSON_IsArray(fields) && !fields->child))
    return rd_err_set(err, RD_EINVALID, "%s: fields must be an object", type);
  for (const cJSON *f = fields ? fields->child : NULL; f; f = f->next) {
    int r = check_ftype(type, f->string ? f->string : "", f, err);
    if (r) return r;
  }
  if (required && !cJSON_IsArray(required))
    return rd_err_set(err, RD_EINVALID, "%s: required must be an array of names", type);
  for (const cJSON *r = required ? required->child : NULL; r; r = r->next)
    if (!cJSON_IsString(r))
      return rd_err_set(err, RD_EINVALID, "%s: required must be an array of names", type);
  if (strict && !cJSON_IsBool(strict))
    return rd_err_set(err, RD_EINVALID, "%s: strict must be a boolean", type);
  return 0;
}

int rd_blueprint_registry_add(rd_blueprint_registry_t *reg, const char *type, const cJSON *spec,
                              rd_err *err) {
  if (!*type) return rd_err_set(err, RD_EINVALID, "module type must not be empty");
  if (rd_json_depth(spec, 8) > 8)
    return rd_err_set(err, RD_EINVALID, "%s: spec nests too deeply", type);
  int r = check_spec(type, spec, err);
  if (r) return r;
  cJSON *copy = cJSON_Duplicate(spec, 1);
  if (!copy || rd__json_set_member(reg->types, type, copy)) {
    cJSON_Delete(copy);
    return rd_err_set(err, RD_ENOMEM, "out of memory");
  }
  return 0;
}

const cJSON *rd_blueprint_registry_get(const rd_blueprint_registry_t *reg, const char *type) {
  return reg ? cJSON_GetObjectItemCaseSensitive(reg->types, type) : NULL;
}

/* ---- walking modules ----------------------------------------------------- */

typedef struct walker {
  rd_blueprint_module_cb cb;
  void *ud;
  rd_buf path; /* pointer of the current flow / module */
} walker;

static int walk_flow(walker *w, const cJSON *flow);

/* Visit a router's routes: routes[i].flow, each a flow of its own. */
static int walk_routes(walker *w, const cJSON *routes) {
  size_t len = w->path.len;
  int i = 0, r = 0;
  for (const cJSON *rt = routes->child; rt && !r; rt = rt->next, i++) {
    const cJSON *flow = cJSON_GetObjectItemCaseSensitive(rt, "flow");
    if (!cJSON_IsArray(flow)) continue;
    if (rd__buf_printf(&w->path, "/routes/%d/flow", i)) return RD_ENOMEM;
    r = walk_flow(w, flow);
    w->path.len = len;
    w->path.data[len] = '\0';
  }
  return r;
}

static int walk_flow(walker *w, const cJSON *flow) {
  size_t len = w->path.len;
  int i = 0, r = 0;
  for (const cJSON *m = flow->child; m && !r; m = m->next, i++) {
    if (!cJSON_IsObject(m)) continue;
    if (rd__jptr_push_index(&w->path, (size_t)i)) return RD_ENOMEM;
    r = w->cb(m, w->path.data, w->ud);
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(m, "routes");
    if (!r && cJSON_IsArray(routes)) r = walk_routes(w, routes);
    w->path.len = len;
    w->path.data[len] = '\0';
  }
  return r;
}

int rd_blueprint_each_module(const cJSON *bp, rd_blueprint_module_cb cb, void *ud, rd_err *err) {
  if (rd_json_depth(bp, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH)
    return rd_err_set(err, RD_EINVALID, "blueprint nests deeper than %d", RD_JSON_MAX_DEPTH);
  const cJSON *flow = cJSON_GetObjectItemCaseSensitive(bp, "flow");
  if (!cJSON_IsArray(flow)) return 0;
  walker w = {.cb = cb, .ud = ud};
  int r = rd__buf_adds(&w.path, "/flow") ? RD_ENOMEM : walk_flow(&w, flow);
  rd__buf_free(&w.path);
  if (r == RD_ENOMEM) return rd_err_set(err, RD_ENOMEM, "out of memory");
  return r;
}

typedef struct finder {
  int64_t id;
  char *pointer;
  int nomem;
} finder;

static int find_cb(const cJSON *m, const char *pointer, void *ud) {
  finder *f = ud;
  int64_t id;
  if (!rd__blueprint_module_id(m, &id) || id != f->id) return 0;
  if (!(f->pointer = strdup(pointer))) f->nomem = 1;
  return 1;
}

int rd_blueprint_find_module(const cJSON *bp, int64_t id, char **pointer, rd_err *err) {
  finder f = {.id = id};
  int r = rd_blueprint_each_module(bp, find_cb, &f, err);
  if (r < 0) return r;
  if (f.nomem) return rd_err_set(err, RD_ENOMEM, "out of memory");
  if (!f.pointer) return rd_err_set(err, RD_ENOT_FOUND, "no module with id %lld", (long long)id);
  *pointer = f.pointer;
  return 0;
}

/* ---- validation ---------------------------------------------------------- */

typedef struct seen_id {
  int64_t id;
  char *pointer;
} seen_id;

typedef struct vctx {
  const rd_blueprint_registry_t *reg;
  rd_blueprint_problem_t *p;
  size_t n, cap;
  seen_id *ids;
  size_t nids, capids;
  int nomem;
} vctx;

static const char *type_name(const cJSON *v) {
  if (cJSON_IsString(v)) return "string";
  if (cJSON_IsNumber(v)) return "number";
  if (cJSON_IsBool(v)) return "boolean";
  if (cJSON_IsArray(v)) return "array";
  if (cJSON_IsObject(v)) return "object";
  return v ? "null" : "nothing";
}

/* base + "/" + escaped tokens (NULL ends the list), malloc'd; NULL on OOM. */
static char *ptr_join(const char *base, ...) {
  rd_buf b = {0};
  int r = rd__buf_adds(&b, base);
  va_list ap;
  va_start(ap, base);
  for (const char *t; !r && (t = va_arg(ap, const char *));) r = rd__jptr_push(&b, t);
  va_end(ap);
  char *s = r ? NULL : rd__buf_steal(&b, NULL);
  rd__buf_free(&b);
  return s;
}

/* Record one problem. `mod` (may be NULL) is the module it belongs to;
 * takes ownership of `pointer`. */
static void problem(vctx *v, const cJSON *mod, const char *field, char *pointer, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
static void problem(vctx *v, const cJSON *mod, const char *field, char *pointer, const char *fmt,
                    ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 8;
    rd_blueprint_problem_t *p = realloc(v->p, cap * sizeof *p);
    if (!p) goto oom;
    v->p = p, v->cap = cap;
  }
  rd_blueprint_problem_t *p = &v->p[v->n];
  int64_t id = 0;
  *p = (rd_blueprint_problem_t){.has_module = rd__blueprint_module_id(mod, &id)};
  p->module = id;
  p->field = strdup(field);
  p->message = strdup(msg);
  p->pointer = pointer;
  v->n++;
  if (p->field && p->message && p->pointer) return;
  v->nomem = 1;
  return;
oom:
  free(pointer);
  v->nomem = 1;
}

/* The slot of `id` in the open-addressing table v->ids (capacity a power of
 * two): the slot holding it, or the empty slot where it belongs. A hash set,
 * not a list: a scan per module made validation quadratic in the module
 * count (issue 13, finding 5). */
static seen_id *id_slot(const vctx *v, int64_t id) {
  uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15u, mask = v->capids - 1;
  for (size_t i = (size_t)(h >> 32) & mask;; i = (i + 1) & mask)
    if (!v->ids[i].pointer || v->ids[i].id == id) return &v->ids[i];
}

/* Double the table (kept at most half full); 0 or -1 on OOM. */
static int ids_grow(vctx *v) {
  size_t cap = v->capids ? v->capids * 2 : 64;
  seen_id *old = v->ids, *ids = calloc(cap, sizeof *ids);
  size_t oldcap = v->capids;
  if (!ids) return -1;
  v->ids = ids, v->capids = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].pointer) *id_slot(v, old[i].id) = old[i];
  free(old);
  return 0;
}

/* Remember an id; report it if an earlier module has it already. */
static void check_unique(vctx *v, const cJSON *mod, const char *field, int64_t id,
                         const char *pointer) {
  if (2 * (v->nids + 1) > v->capids && ids_grow(v) < 0) return (void)(v->nomem = 1);
  seen_id *slot = id_slot(v, id);
  if (slot->pointer) {
    problem(v, mod, field, ptr_join(pointer, "id", NULL), "duplicate id %lld (also at %s)",
            (long long)id, slot->pointer);
    return;
  }
  if (!(slot->pointer = strdup(pointer))) return (void)(v->nomem = 1);
  slot->id = id;
  v->nids++;
}

/* Check `id` of node, a module (required) or a handler (optional) of module
 * `mod`, problems reported as `field`. */
static void check_id(vctx *v, const cJSON *mod, const cJSON *node, const char *pointer,
                     int required, const char *field) {
  const cJSON *idv = cJSON_GetObjectItemCaseSensitive(node, "id");
  int64_t id;
  if (!idv && !required) return;
  if (!idv) problem(v, mod, field, ptr_join(pointer, "id", NULL), "missing module id");
  else if (!rd__json_int(idv, &id))
    problem(v, mod, field, ptr_join(pointer, "id", NULL), "id must be an integer, got %s",
            type_name(idv));
  else check_unique(v, mod, field, id, pointer);
}

static int is_template(const cJSON *val) {
  return cJSON_IsString(val) && strstr(val->valuestring, "{{") != NULL;
}

static int type_matches(const char *want, const cJSON *val) {
  int64_t i;
  /* "{{1.a}}" is resolved when the module runs: any type may come out. */
  if (strcmp(want, "any") == 0 || is_template(val)) return 1;
  if (strcmp(want, "integer") == 0) return rd__json_int(val, &i);
  if (strcmp(want, "url") == 0) return cJSON_IsString(val);
  return strcmp(want, type_name(val)) == 0;
}

/* What is wrong with the authority of URL `s` (a "url" field), written into
 * `out`; 0 when nothing is. Only the literal part is judged: a host or port
 * that is a template ("{{1.host}}") is known when the module runs. A port
 * must be a number: "http://127.0.0.1:PORT/x" is a placeholder nobody
 * filled in (the shipped example scenarios have them), refused before
 * anything runs or is stored. */
static int url_problem(const char *s, char *out, size_t n) {
  const char *p = strstr(s, "://");
  if (!p) return 0; /* the module says which schemes it takes when it runs */
  p += 3;
  size_t len = strcspn(p, "/?#");
  const char *tpl = strstr(p, "{{");
  if (tpl && (size_t)(tpl - p) < len) return 0;
  for (const char *at; (at = memchr(p, '@', len));) { /* userinfo: never judged, never printed */
    len -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  const char *end = p + len, *host = p;
  if (*p == '[') { /* [v6 address]:port */
    const char *close = memchr(p, ']', len);
    if (!close) return 0;
    host = close + 1;
  }
  const char *colon = memchr(host, ':', (size_t)(end - host));
  if (!colon) return 0;
  const char *port = colon + 1;
  size_t plen = (size_t)(end - port);
  if (plen == 0) return 0; /* "http://h:/x": the scheme's port (RFC 3986) */
  if (plen <= 5 && strspn(port, "0123456789") >= plen && atol(port) <= 65535) return 0;
  int upper = 1;
  for (size_t i = 0; i < plen; i++)
    if (!(port[i] == '_' || (port[i] >= 'A' && port[i] <= 'Z'))) upper = 0;
  snprintf(out, n, "port \"%.*s\" of %.*s is not a number%s", (int)(plen > 40 ? 40 : plen), port,
           (int)(len > 200 ? 200 : len), p,
           upper ? ": a placeholder to fill in (examples/demo.sh fills PORT)" : "");
  return 1;
}

/* Check `val`, the value at `field` / `pointer` (borrowed), against field
 * type `want` (see check_ftype): its type, then the elements of an array
 * ({type, items}) or the members of an object ({type, fields, required}).
 * null and template strings are not checked further. The registry bounds
 * the depth of a spec, so the recursion is shallow. */
static void check_value(vctx *v, const cJSON *mod, const cJSON *want, const cJSON *val,
                        const char *field, const char *pointer) {
  const cJSON *tname = cJSON_IsString(want) ? want : cJSON_GetObjectItemCaseSensitive(want, "type");
  if (!type_matches(tname->valuestring, val)) {
    problem(v, mod, field, ptr_join(pointer, NULL), "expected %s, got %s",
            strcmp(tname->valuestring, "url") == 0 ? "string" : tname->valuestring, type_name(val));
    return;
  }
  char why[400];
  if (strcmp(tname->valuestring, "url") == 0 && url_problem(val->valuestring, why, sizeof why))
    problem(v, mod, field, ptr_join(pointer, NULL), "%s", why);
  if (cJSON_IsString(want) || is_template(val)) return;
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(want, "items");
  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(want, "fields");
  const cJSON *required = cJSON_GetObjectItemCaseSensitive(want, "required");
  char sub[256], idx[24];
  int i = 0;
  for (const cJSON *e = items && cJSON_IsArray(val) ? val->child : NULL; e; e = e->next, i++) {
    snprintf(idx, sizeof idx, "%d", i);
    snprintf(sub, sizeof sub, "%s[%d]", field, i);
    char *p = ptr_join(pointer, idx, NULL);
    if (!p) return (void)(v->nomem = 1);
    check_value(v, mod, items, e, sub, p);
    free(p);
  }
  if (!cJSON_IsObject(val)) return;
  for (const cJSON *r = required ? required->child : NULL; r; r = r->next) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(val, r->valuestring);
    if (x && !cJSON_IsNull(x)) continue;
    snprintf(sub, sizeof sub, "%s.%s", field, r->valuestring);
    problem(v, mod, sub, ptr_join(pointer, r->valuestring, NULL), "required field missing");
  }
  for (const cJSON *f = fields ? val->child : NULL; f; f = f->next) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(fields, f->string);
    if (!w || cJSON_IsNull(f)) continue;
    snprintf(sub, sizeof sub, "%s.%s", field, f->string);
    char *p = ptr_join(pointer, f->string, NULL);
    if (!p) return (void)(v->nomem = 1);
    check_value(v, mod, w, f, sub, p);
    free(p);
  }
}

/* Check mapper fields against the registered spec. `prefix` names the
 * mapper in messages ("mapper", "onerror[0].mapper"). */
static void check_mapper(vctx *v, const cJSON *mod, const cJSON *owner, const char *pointer,
                         const char *prefix, const cJSON *spec) {
  const cJSON *mapper = cJSON_GetObjectItemCaseSensitive(owner, "mapper");
  char field[256];
  if (mapper && !cJSON_IsNull(mapper) && !cJSON_IsObject(mapper)) {
    problem(v, mod, prefix, ptr_join(pointer, "mapper", NULL), "mapper must be an object, got %s",
            type_name(mapper));
    return;
  }
  if (!spec) return;
  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(spec, "fields");
  const cJSON *required = cJSON_GetObjectItemCaseSensitive(spec, "required");
  for (const cJSON *r = required ? required->child : NULL; r; r = r->next) {
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(mapper, r->valuestring);
    if (val && !cJSON_IsNull(val)) continue;
    snprintf(field, sizeof field, "%s.%s", prefix, r->valuestring);
    problem(v, mod, field, ptr_join(pointer, "mapper", r->valuestring, NULL),
            "required field missing");
  }
  int strict = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "strict"));
  for (const cJSON *f = mapper ? mapper->child : NULL; f; f = f->next) {
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(fields, f->string);
    snprintf(field, sizeof field, "%s.%s", prefix, f->string);
    if (!want && strict)
      problem(v, mod, field, ptr_join(pointer, "mapper", f->string, NULL), "unknown field");
    if (!want || cJSON_IsNull(f)) continue;
    char *p = ptr_join(pointer, "mapper", f->string, NULL);
    if (!p) return (void)(v->nomem = 1);
    check_value(v, mod, want, f, field, p);
    free(p);
  }
}

/* One entry of `onerror`: a directive module. */
static void check_handler(vctx *v, const cJSON *mod, const cJSON *h, const char *pointer, int i) {
  char idx[24], field[64];
  snprintf(idx, sizeof idx, "%d", i);
  char *hp = ptr_join(pointer, "onerror", idx, NULL);
  if (!hp) return (void)(v->nomem = 1);
  snprintf(field, sizeof field, "onerror[%d]", i);
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(h, "module");
  if (!cJSON_IsObject(h)) {
    problem(v, mod, field, strdup(hp), "error handler must be an object, got %s", type_name(h));
  } else if (!cJSON_IsString(type) || !is_handler(type->valuestring)) {
    snprintf(field, sizeof field, "onerror[%d].module", i);
    problem(v, mod, field, ptr_join(hp, "module", NULL),
            "error handler must be builtin:Break, Resume, Ignore, Commit or Rollback");
  } else {
    snprintf(field, sizeof field, "onerror[%d].id", i);
    check_id(v, mod, h, hp, 0, field);
    snprintf(field, sizeof field, "onerror[%d].mapper", i);
    check_mapper(v, mod, h, hp, field, rd_blueprint_registry_get(v->reg, type->valuestring));
  }
  free(hp);
}

static void check_flow(vctx *v, const cJSON *owner, const cJSON *flow, const char *pointer,
                       const char *field);

/* A router's routes: [{flow: [...], filter?}]. */
static void check_routes(vctx *v, const cJSON *mod, const char *pointer) {
  const cJSON *routes = cJSON_GetObjectItemCaseSensitive(mod, "routes");
  char idx[24], field[64];
  if (!cJSON_IsArray(routes)) {
    problem(v, mod, "routes", ptr_join(pointer, "routes", NULL),
            "a router needs routes (an array), got %s", type_name(routes));
    return;
  }
  int i = 0;
  for (const cJSON *rt = routes->child; rt; rt = rt->next, i++) {
    snprintf(idx, sizeof idx, "%d", i);
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(rt, "filter");
    snprintf(field, sizeof field, "routes[%d]", i);
    if (!cJSON_IsObject(rt)) {
      problem(v, mod, field, ptr_join(pointer, "routes", idx, NULL),
              "route must be an object, got %s", type_name(rt));
      continue;
    }
    if (filter && !cJSON_IsObject(filter) && !cJSON_IsNull(filter)) {
      snprintf(field, sizeof field, "routes[%d].filter", i);
      problem(v, mod, field, ptr_join(pointer, "routes", idx, "filter", NULL),
              "filter must be an object, got %s", type_name(filter));
    }
    snprintf(field, sizeof field, "routes[%d].flow", i);
    char *fp = ptr_join(pointer, "routes", idx, "flow", NULL);
    if (!fp) return (void)(v->nomem = 1);
    check_flow(v, mod, cJSON_GetObjectItemCaseSensitive(rt, "flow"), fp, field);
    free(fp);
  }
}

static void check_module(vctx *v, const cJSON *mod, const char *pointer, const char *field) {
  if (!cJSON_IsObject(mod)) {
    problem(v, NULL, field, strdup(pointer), "module must be an object, got %s", type_name(mod));
    return;
  }
  check_id(v, mod, mod, pointer, 1, "id");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(mod, "module");
  const cJSON *spec = NULL;
  if (!cJSON_IsString(type)) {
    problem(v, mod, "module", ptr_join(pointer, "module", NULL),
            "module type must be a string, got %s", type_name(type));
  } else if (is_handler(type->valuestring)) {
    problem(v, mod, "module", ptr_join(pointer, "module", NULL),
            "%s is an error handler: only valid in onerror", type->valuestring);
  } else if (strcmp(type->valuestring, RD_BLUEPRINT_ROUTER) == 0) {
    spec = rd_blueprint_registry_get(v->reg, type->valuestring);
    check_routes(v, mod, pointer);
  } else if (v->reg && !(spec = rd_blueprint_registry_get(v->reg, type->valuestring))) {
    problem(v, mod, "module", ptr_join(pointer, "module", NULL), "unknown module type '%.200s'",
            type->valuestring);
  }
  check_mapper(v, mod, mod, pointer, "mapper", spec);
  const cJSON *onerror = cJSON_GetObjectItemCaseSensitive(mod, "onerror");
  if (onerror && !cJSON_IsArray(onerror)) {
    problem(v, mod, "onerror", ptr_join(pointer, "onerror", NULL),
            "onerror must be an array of error handlers, got %s", type_name(onerror));
    return;
  }
  int i = 0;
  for (const cJSON *h = onerror ? onerror->child : NULL; h; h = h->next, i++)
    check_handler(v, mod, h, pointer, i);
}

static int is_router(const cJSON *mod) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(mod, "module");
  return cJSON_IsString(type) && strcmp(type->valuestring, RD_BLUEPRINT_ROUTER) == 0;
}

/* `owner` is the router holding this flow (NULL for the top level): flow
 * problems are reported against it. */
static void check_flow(vctx *v, const cJSON *owner, const cJSON *flow, const char *pointer,
                       const char *field) {
  if (!cJSON_IsArray(flow)) {
    problem(v, owner, field, strdup(pointer), "flow must be an array of modules, got %s",
            type_name(flow));
    return;
  }
  rd_buf b = {0};
  char where[96];
  int i = 0;
  for (const cJSON *m = flow->child; m && !v->nomem; m = m->next, i++) {
    b.len = 0;
    if (rd__buf_adds(&b, pointer) || rd__jptr_push_index(&b, (size_t)i)) v->nomem = 1;
    snprintf(where, sizeof where, "%s[%d]", field, i);
    if (!v->nomem) check_module(v, m, b.data, where);
    if (!v->nomem && m->next && is_router(m)) {
      /* the engine runs the routes and stops: a module after a router would
       * silently never run */
      int64_t rid = 0, nid = 0;
      char after[40] = "a module";
      rd__blueprint_module_id(m, &rid);
      if (rd__blueprint_module_id(m->next, &nid))
        snprintf(after, sizeof after, "module %lld", (long long)nid);
      b.len = 0;
      if (rd__buf_adds(&b, pointer) || rd__jptr_push_index(&b, (size_t)i + 1)) v->nomem = 1;
      else
        problem(v, m->next, "module", strdup(b.data),
                "%s follows router %lld: a router must be the last module of its flow", after,
                (long long)rid);
    }
  }
  rd__buf_free(&b);
}

static void check_type(vctx *v, const cJSON *obj, const char *key, const char *want,
                       const char *field) {
  const cJSON *val = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!val || cJSON_IsNull(val) || type_matches(want, val)) return;
  problem(v, NULL, field, ptr_join("/metadata/scenario", key, NULL), "expected %s, got %s", want,
          type_name(val));
}

static void check_metadata(vctx *v, const cJSON *bp) {
  const cJSON *md = cJSON_GetObjectItemCaseSensitive(bp, "metadata");
  if (!md || cJSON_IsNull(md)) return;
  if (!cJSON_IsObject(md)) {
    problem(v, NULL, "metadata", strdup("/metadata"), "metadata must be an object, got %s",
            type_name(md));
    return;
  }
  const cJSON *sc = cJSON_GetObjectItemCaseSensitive(md, "scenario");
  if (!sc || cJSON_IsNull(sc)) return;
  if (!cJSON_IsObject(sc)) {
    problem(v, NULL, "metadata.scenario", strdup("/metadata/scenario"),
            "metadata.scenario must be an object, got %s", type_name(sc));
    return;
  }
  check_type(v, sc, "maxErrors", "integer", "metadata.scenario.maxErrors");
  check_type(v, sc, "roundtrips", "integer", "metadata.scenario.roundtrips");
  check_type(v, sc, "autoCommit", "boolean", "metadata.scenario.autoCommit");
  check_type(v, sc, "dlq", "boolean", "metadata.scenario.dlq");
}

static void check_blueprint(vctx *v, const cJSON *bp) {
  if (!cJSON_IsObject(bp)) {
    problem(v, NULL, "", strdup(""), "blueprint must be an object, got %s", type_name(bp));
    return;
  }
  if (rd_json_depth(bp, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH) {
    problem(v, NULL, "", strdup(""), "blueprint nests deeper than %d", RD_JSON_MAX_DEPTH);
    return;
  }
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(bp, "name");
  if (!cJSON_IsString(name))
    problem(v, NULL, "name", strdup("/name"), "name must be a string, got %s", type_name(name));
  check_flow(v, NULL, cJSON_GetObjectItemCaseSensitive(bp, "flow"), "/flow", "flow");
  check_metadata(v, bp);
}

void rd_blueprint_problems_free(rd_blueprint_problem_t *p, size_t n) {
  for (size_t i = 0; p && i < n; i++) {
    free(p[i].field);
    free(p[i].pointer);
    free(p[i].message);
  }
  free(p);
}

int rd_blueprint_validate(const cJSON *bp, const rd_blueprint_registry_t *reg,
                          rd_blueprint_problem_t **out, size_t *n, rd_err *err) {
  vctx v = {.reg = reg};
  check_blueprint(&v, bp);
  for (size_t i = 0; i < v.capids; i++) free(v.ids[i].pointer);
  free(v.ids);
  if (v.nomem) {
    rd_blueprint_problems_free(v.p, v.n);
    return rd_err_set(err, RD_ENOMEM, "out of memory");
  }
  *out = v.p;
  *n = v.n;
  return 0;
}

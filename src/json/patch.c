/* RFC 6902 JSON Patch (all or nothing), RFC 7386 JSON Merge Patch, and a
 * diff that produces JSON Patches. */
#include "redrive.h"

#include "json/pointer.h"

#include <stdlib.h>
#include <string.h>

/* ---- JSON Patch ---------------------------------------------------------- */

enum { OP_ADD, OP_REMOVE, OP_REPLACE, OP_MOVE, OP_COPY, OP_TEST };
static const char *const op_names[] = {"add", "remove", "replace", "move", "copy", "test"};

static int op_kind(const char *name) {
  for (int i = 0; i < (int)(sizeof op_names / sizeof *op_names); i++)
    if (strcmp(name, op_names[i]) == 0) return i;
  return -1;
}

/* The string member `key` of op, NULL if absent or not a string. */
static const char *str_member(const cJSON *op, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(op, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Put a copy of `value` at p, after checking its depth so that copying a
 * hostile value cannot recurse without bound. */
static int put_copy(cJSON **doc, const rd__jptr *p, const cJSON *value, int mode, rd_err *err) {
  if ((size_t)rd_json_depth(value, RD_JSON_MAX_DEPTH) + p->n > RD_JSON_MAX_DEPTH)
    return rd_err_set(err, RD_EINVALID, "result would nest deeper than %d", RD_JSON_MAX_DEPTH);
  cJSON *v = cJSON_Duplicate(value, 1);
  if (!v) return rd_err_set(err, RD_ENOMEM, "out of memory");
  int r = rd__jptr_put(doc, p, v, mode, err);
  if (r) cJSON_Delete(v);
  return r;
}

static int do_move(cJSON **doc, const rd__jptr *from, const rd__jptr *to, rd_err *err) {
  cJSON *item;
  if (rd__jptr_is_ancestor(from, to))
    return rd_err_set(err, RD_EINVALID, "cannot move a value into one of its children");
  if (rd__jptr_walk(*doc, from, from->n, &item, err))
    return rd_err_set(err, RD_ENOT_FOUND, "from: path not found");
  int same = from->n == to->n;
  for (size_t i = 0; same && i < from->n; i++) same = strcmp(from->tok[i], to->tok[i]) == 0;
  if (same) return 0;
  int r = rd__jptr_detach(*doc, from, &item, err);
  if (r == 0 && (r = rd__jptr_put(doc, to, item, RD__PUT_ADD, err)) != 0) cJSON_Delete(item);
  return r;
}

static int do_copy(cJSON **doc, const rd__jptr *from, const rd__jptr *to, rd_err *err) {
  cJSON *item;
  if (rd__jptr_walk(*doc, from, from->n, &item, err))
    return rd_err_set(err, RD_ENOT_FOUND, "from: path not found");
  return put_copy(doc, to, item, RD__PUT_ADD, err);
}

static int do_test(cJSON *doc, const rd__jptr *p, const cJSON *value, rd_err *err) {
  cJSON *item;
  int r = rd__jptr_walk(doc, p, p->n, &item, err);
  if (r) return r;
  if (!rd_json_equal(item, value))
    return rd_err_set(err, RD_EINVALID, "test failed: value differs");
  return 0;
}

static int run_op(cJSON **doc, int kind, const rd__jptr *p, const rd__jptr *f, const cJSON *value,
                  rd_err *err) {
  cJSON *item;
  int r;
  switch (kind) {
  case OP_ADD: return put_copy(doc, p, value, RD__PUT_ADD, err);
  case OP_REPLACE: return put_copy(doc, p, value, RD__PUT_REPLACE, err);
  case OP_REMOVE:
    if ((r = rd__jptr_detach(*doc, p, &item, err)) == 0) cJSON_Delete(item);
    return r;
  case OP_MOVE: return do_move(doc, f, p, err);
  case OP_COPY: return do_copy(doc, f, p, err);
  default: return do_test(*doc, p, value, err);
  }
}

/* Check the shape of one operation, then run it on *doc. */
static int apply_one(cJSON **doc, const cJSON *op, rd_err *err) {
  if (!cJSON_IsObject(op)) return rd_err_set(err, RD_EINVALID, "operation must be an object");
  const char *name = str_member(op, "op"), *path = str_member(op, "path");
  const char *from = str_member(op, "from");
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(op, "value");
  if (!name) return rd_err_set(err, RD_EINVALID, "missing 'op' (a string)");
  int kind = op_kind(name);
  if (kind < 0) return rd_err_set(err, RD_EINVALID, "unknown op '%.64s'", name);
  if (!path) return rd_err_set(err, RD_EINVALID, "missing 'path' (a string)");
  if (!value && (kind == OP_ADD || kind == OP_REPLACE || kind == OP_TEST))
    return rd_err_set(err, RD_EINVALID, "missing 'value'");
  if (!from && (kind == OP_MOVE || kind == OP_COPY))
    return rd_err_set(err, RD_EINVALID, "missing 'from' (a string)");
  rd__jptr p = {0}, f = {0};
  rd_err fe = {0};
  int r = rd__jptr_parse(&p, path, err);
  if (r == 0 && from && (r = rd__jptr_parse(&f, from, &fe)) != 0)
    rd_err_set(err, r, "from: %s", fe.msg);
  if (r == 0) r = run_op(doc, kind, &p, &f, value, err);
  rd__jptr_free(&p);
  rd__jptr_free(&f);
  return r;
}

/* Name the failing op in err: "op 2 (replace /flow/3/mapper/url): ...". */
static int fail_op(rd_err *err, size_t i, const cJSON *op, const rd_err *inner) {
  int code = inner->code == RD_ENOMEM ? RD_ENOMEM : RD_EINVALID;
  const char *name = cJSON_IsObject(op) ? str_member(op, "op") : NULL;
  const char *path = cJSON_IsObject(op) ? str_member(op, "path") : NULL;
  const char *from = cJSON_IsObject(op) ? str_member(op, "from") : NULL;
  if (!name || !path) return rd_err_set(err, code, "op %zu: %s", i, inner->msg);
  if (from && (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0))
    return rd_err_set(err, code, "op %zu (%s %.150s from %.150s): %s", i, name, path, from,
                      inner->msg);
  return rd_err_set(err, code, "op %zu (%.32s %.200s): %s", i, name, path, inner->msg);
}

int rd_json_patch_apply(cJSON **doc, const cJSON *ops, rd_err *err) {
  if (!cJSON_IsArray(ops)) return rd_err_set(err, RD_EINVALID, "patch: expected an array of ops");
  if (!*doc || rd_json_depth(*doc, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH)
    return rd_err_set(err, RD_EINVALID, "patch: document missing or deeper than %d",
                      RD_JSON_MAX_DEPTH);
  /* All or nothing: work on a copy and swap it in at the end. */
  cJSON *work = cJSON_Duplicate(*doc, 1);
  if (!work) return rd_err_set(err, RD_ENOMEM, "out of memory");
  size_t i = 0;
  for (const cJSON *op = ops->child; op; op = op->next, i++) {
    rd_err e = {0};
    if (apply_one(&work, op, &e) != 0) {
      cJSON_Delete(work);
      return fail_op(err, i, op, &e);
    }
  }
  cJSON_Delete(*doc);
  *doc = work;
  return 0;
}

/* ---- Merge Patch --------------------------------------------------------- */

/* RFC 7386 MergePatch for an object target and an object patch, in place. */
static int merge_into(cJSON *target, const cJSON *patch) {
  for (const cJSON *m = patch->child; m; m = m->next) {
    cJSON *cur = cJSON_GetObjectItemCaseSensitive(target, m->string);
    if (cJSON_IsNull(m)) {
      if (cur) cJSON_Delete(cJSON_DetachItemViaPointer(target, cur));
      continue;
    }
    if (!cJSON_IsObject(m)) {
      cJSON *v = cJSON_Duplicate(m, 1);
      if (!v || rd__json_set_member(target, m->string, v)) return cJSON_Delete(v), RD_ENOMEM;
      continue;
    }
    if (!cJSON_IsObject(cur)) {
      /* MergePatch(non-object, object) starts from an empty object. */
      if (!(cur = cJSON_CreateObject())) return RD_ENOMEM;
      if (rd__json_set_member(target, m->string, cur)) return cJSON_Delete(cur), RD_ENOMEM;
    }
    if (merge_into(cur, m)) return RD_ENOMEM;
  }
  return 0;
}

int rd_json_merge_patch(cJSON **doc, const cJSON *patch, rd_err *err) {
  if (rd_json_depth(patch, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH ||
      rd_json_depth(*doc, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH)
    return rd_err_set(err, RD_EINVALID, "merge: nesting deeper than %d", RD_JSON_MAX_DEPTH);
  cJSON *work;
  if (!cJSON_IsObject(patch)) work = cJSON_Duplicate(patch, 1);
  else if (!cJSON_IsObject(*doc)) work = cJSON_CreateObject();
  else work = cJSON_Duplicate(*doc, 1);
  if (!work || (cJSON_IsObject(patch) && merge_into(work, patch))) {
    cJSON_Delete(work);
    return rd_err_set(err, RD_ENOMEM, "out of memory");
  }
  cJSON_Delete(*doc);
  *doc = work;
  return 0;
}

/* ---- diff ---------------------------------------------------------------- */

typedef struct differ {
  cJSON *ops;   /* the patch being built */
  rd_buf path;  /* pointer of the values being compared */
} differ;

/* Append {op, path, value?} for the current path; value is copied. */
static int emit(differ *d, const char *op, const cJSON *value) {
  cJSON *o = cJSON_CreateObject(), *v = NULL;
  if (!o || !cJSON_AddItemToArray(d->ops, o)) return cJSON_Delete(o), RD_ENOMEM;
  if (!cJSON_AddStringToObject(o, "op", op) ||
      !cJSON_AddStringToObject(o, "path", d->path.data ? d->path.data : ""))
    return RD_ENOMEM;
  if (value && (!(v = cJSON_Duplicate(value, 1)) || !cJSON_AddItemToObject(o, "value", v)))
    return cJSON_Delete(v), RD_ENOMEM;
  return 0;
}

static void truncate_path(differ *d, size_t len) {
  d->path.len = len;
  if (d->path.data) d->path.data[len] = '\0';
}

static int diff_at(differ *d, const cJSON *a, const cJSON *b);

static int diff_objects(differ *d, const cJSON *a, const cJSON *b) {
  size_t len = d->path.len;
  int r = 0;
  for (const cJSON *c = a->child; c && !r; c = c->next) {
    const cJSON *other = cJSON_GetObjectItemCaseSensitive(b, c->string);
    if (!(r = rd__jptr_push(&d->path, c->string)))
      r = other ? diff_at(d, c, other) : emit(d, "remove", NULL);
    truncate_path(d, len);
  }
  for (const cJSON *c = b->child; c && !r; c = c->next) {
    if (cJSON_GetObjectItemCaseSensitive(a, c->string)) continue;
    if (!(r = rd__jptr_push(&d->path, c->string))) r = emit(d, "add", c);
    truncate_path(d, len);
  }
  return r;
}

/* Children of an array, for random access. Caller frees. */
static const cJSON **items(const cJSON *arr, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(arr);
  const cJSON **v = malloc((*n ? *n : 1) * sizeof *v);
  size_t i = 0;
  if (v)
    for (const cJSON *c = arr->child; c; c = c->next) v[i++] = c;
  return v;
}

/* Keep the common head and tail, pair up the middle elements by index,
 * then remove what a has left or add what b has left. Insertions and
 * deletions in one place come out as single adds/removes. */
static int diff_middle(differ *d, const cJSON **a, size_t la, const cJSON **b, size_t lb) {
  size_t p = 0, s = 0, len = d->path.len;
  while (p < la && p < lb && rd_json_equal(a[p], b[p])) p++;
  while (s < la - p && s < lb - p && rd_json_equal(a[la - 1 - s], b[lb - 1 - s])) s++;
  size_t ma = la - p - s, mb = lb - p - s;
  int r = 0;
  for (size_t k = 0; k < ma && k < mb && !r; k++) {
    if (!(r = rd__jptr_push_index(&d->path, p + k))) r = diff_at(d, a[p + k], b[p + k]);
    truncate_path(d, len);
  }
  for (size_t k = mb; k < ma && !r; k++) { /* each removal shifts the rest left */
    if (!(r = rd__jptr_push_index(&d->path, p + mb))) r = emit(d, "remove", NULL);
    truncate_path(d, len);
  }
  for (size_t k = ma; k < mb && !r; k++) {
    if (!(r = rd__jptr_push_index(&d->path, p + k))) r = emit(d, "add", b[p + k]);
    truncate_path(d, len);
  }
  return r;
}

static int diff_arrays(differ *d, const cJSON *a, const cJSON *b) {
  size_t la, lb;
  const cJSON **va = items(a, &la), **vb = items(b, &lb);
  int r = va && vb ? diff_middle(d, va, la, vb, lb) : RD_ENOMEM;
  free(va);
  free(vb);
  return r;
}

static int diff_at(differ *d, const cJSON *a, const cJSON *b) {
  if (rd_json_equal(a, b)) return 0;
  if (cJSON_IsObject(a) && cJSON_IsObject(b)) return diff_objects(d, a, b);
  if (cJSON_IsArray(a) && cJSON_IsArray(b)) return diff_arrays(d, a, b);
  return emit(d, "replace", b);
}

int rd_json_diff(const cJSON *from, const cJSON *to, cJSON **ops, rd_err *err) {
  if (rd_json_depth(from, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH ||
      rd_json_depth(to, RD_JSON_MAX_DEPTH) > RD_JSON_MAX_DEPTH)
    return rd_err_set(err, RD_EINVALID, "diff: nesting deeper than %d", RD_JSON_MAX_DEPTH);
  differ d = {.ops = cJSON_CreateArray()};
  int r = d.ops ? diff_at(&d, from, to) : RD_ENOMEM;
  rd__buf_free(&d.path);
  if (r) {
    cJSON_Delete(d.ops);
    return rd_err_set(err, RD_ENOMEM, "out of memory");
  }
  *ops = d.ops;
  return 0;
}

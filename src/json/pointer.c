/* RFC 6901 JSON Pointer on cJSON trees: parsing, lookup and the primitive
 * edits (put, detach) that JSON Patch and the blueprint API build on. */
#include "json/pointer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_plain(rd__jptr *p, const char *s, rd_err *err);

/* The URI fragment form (RFC 6901 section 6, "#/c%25d"): percent-decode,
 * then parse as usual. */
static int parse_fragment(rd__jptr *p, const char *s, rd_err *err) {
  char *plain = malloc(strlen(s) + 1), *w = plain;
  if (!plain) return rd_err_set(err, RD_ENOMEM, "out of memory");
  for (const char *q = s + 1; *q; q++) {
    int hi, lo;
    if (*q != '%') {
      *w++ = *q;
    } else if ((hi = hexval(q[1])) >= 0 && (lo = hexval(q[2])) >= 0 && (hi || lo)) {
      *w++ = (char)(hi * 16 + lo);
      q += 2;
    } else {
      free(plain);
      return rd_err_set(err, RD_EINVALID, "invalid pointer: bad percent-escape");
    }
  }
  *w = '\0';
  int r = parse_plain(p, plain, err);
  free(plain);
  return r;
}

int rd__jptr_parse(rd__jptr *p, const char *s, rd_err *err) {
  p->n = 0;
  p->tok = NULL;
  return *s == '#' ? parse_fragment(p, s, err) : parse_plain(p, s, err);
}

static int parse_plain(rd__jptr *p, const char *s, rd_err *err) {
  if (*s == '\0') return 0;
  if (*s != '/') return rd_err_set(err, RD_EINVALID, "invalid pointer: must start with '/'");
  size_t n = 0, len = strlen(s);
  for (const char *q = s; *q; q++) {
    if (*q == '/') n++;
    else if (*q == '~' && q[1] != '0' && q[1] != '1')
      return rd_err_set(err, RD_EINVALID, "invalid pointer: '~' must be followed by 0 or 1");
  }
  /* One block: the token array, then the unescaped tokens; they never need
   * more bytes than the pointer itself (each '/' becomes a NUL). */
  char **tok = malloc(n * sizeof *tok + len + 1);
  if (!tok) return rd_err_set(err, RD_ENOMEM, "out of memory");
  char *w = (char *)(tok + n);
  size_t i = 0;
  for (const char *q = s; *q; q++) {
    if (*q == '/') {
      if (i) *w++ = '\0';
      tok[i++] = w;
    } else if (*q == '~') {
      *w++ = *++q == '0' ? '~' : '/';
    } else {
      *w++ = *q;
    }
  }
  *w = '\0';
  p->n = n;
  p->tok = tok;
  return 0;
}

void rd__jptr_free(rd__jptr *p) {
  free(p->tok);
  p->tok = NULL;
  p->n = 0;
}

int rd__jptr_is_ancestor(const rd__jptr *a, const rd__jptr *b) {
  if (a->n >= b->n) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->tok[i], b->tok[i]) != 0) return 0;
  return 1;
}

/* RFC 6901 array index: "0" or digits without a leading zero; -1 if the
 * token is anything else ("-", "1e0", "01", "-1"). */
static int parse_index(const char *t, size_t *out) {
  if (!*t || (t[0] == '0' && t[1])) return -1;
  size_t v = 0;
  for (; *t; t++) {
    if (*t < '0' || *t > '9') return -1;
    v = v * 10 + (size_t)(*t - '0');
    if (v > INT_MAX) return -1; /* cJSON indexes arrays with int */
  }
  *out = v;
  return 0;
}

static cJSON *child(cJSON *node, const char *tok) {
  if (cJSON_IsObject(node)) return cJSON_GetObjectItemCaseSensitive(node, tok);
  size_t i;
  if (cJSON_IsArray(node) && parse_index(tok, &i) == 0) return cJSON_GetArrayItem(node, (int)i);
  return NULL;
}

int rd__jptr_walk(cJSON *root, const rd__jptr *p, size_t upto, cJSON **out, rd_err *err) {
  cJSON *cur = root;
  for (size_t i = 0; i < upto && cur; i++) cur = child(cur, p->tok[i]);
  if (!cur) return rd_err_set(err, RD_ENOT_FOUND, "path not found");
  *out = cur;
  return 0;
}

/* Give `item` the member name `key` (a fresh copy), dropping its old one. */
static int set_key(cJSON *item, const char *key) {
  size_t n = strlen(key) + 1;
  char *k = cJSON_malloc(n);
  if (!k) return RD_ENOMEM;
  memcpy(k, key, n);
  if (item->string && !(item->type & cJSON_StringIsConst)) cJSON_free(item->string);
  item->string = k;
  item->type &= ~cJSON_StringIsConst;
  return 0;
}

int rd__json_set_member(cJSON *obj, const char *key, cJSON *value) {
  cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (old) {
    /* In place, so the member keeps its position among its siblings. */
    if (set_key(value, key)) return RD_ENOMEM;
    cJSON_ReplaceItemViaPointer(obj, old, value);
    return 0;
  }
  return cJSON_AddItemToObject(obj, key, value) ? 0 : RD_ENOMEM;
}

static int put_member(cJSON *obj, const char *key, cJSON *value, int mode, rd_err *err) {
  if (mode == RD__PUT_REPLACE && !cJSON_GetObjectItemCaseSensitive(obj, key))
    return rd_err_set(err, RD_ENOT_FOUND, "path not found");
  if (rd__json_set_member(obj, key, value)) return rd_err_set(err, RD_ENOMEM, "out of memory");
  return 0;
}

/* Link item in before `at`, an element of arr. Not cJSON_InsertItemInArray:
 * Debian 12's patched cJSON 1.7.15 refuses insertions past index 0. */
static void insert_before(cJSON *arr, cJSON *at, cJSON *item) {
  item->next = at;
  item->prev = at->prev; /* for the head: the tail, as cJSON keeps it */
  if (at == arr->child) arr->child = item;
  else at->prev->next = item;
  at->prev = item;
}

static int put_element(cJSON *arr, const char *tok, cJSON *value, int mode, rd_err *err) {
  size_t len = (size_t)cJSON_GetArraySize(arr), i = len;
  if (strcmp(tok, "-") != 0 && parse_index(tok, &i) != 0)
    return rd_err_set(err, RD_ENOT_FOUND, "path not found ('%.64s' is not an array index)", tok);
  if (i > len || (i == len && mode == RD__PUT_REPLACE))
    return rd_err_set(err, RD_ENOT_FOUND, "path not found (index %zu, array length %zu)", i, len);
  /* An item moved out of an object still carries its member name. */
  if (value->string && !(value->type & cJSON_StringIsConst)) cJSON_free(value->string);
  value->string = NULL;
  value->type &= ~cJSON_StringIsConst;
  cJSON_bool ok;
  if (i == len) ok = cJSON_AddItemToArray(arr, value);
  else if (mode == RD__PUT_ADD) insert_before(arr, cJSON_GetArrayItem(arr, (int)i), value), ok = 1;
  else ok = cJSON_ReplaceItemInArray(arr, (int)i, value);
  return ok ? 0 : rd_err_set(err, RD_ENOMEM, "out of memory");
}

int rd__jptr_put(cJSON **root, const rd__jptr *p, cJSON *value, int mode, rd_err *err) {
  int depth = rd_json_depth(value, RD_JSON_MAX_DEPTH);
  if (p->n > RD_JSON_MAX_DEPTH || (size_t)depth + p->n > RD_JSON_MAX_DEPTH)
    return rd_err_set(err, RD_EINVALID, "result would nest deeper than %d", RD_JSON_MAX_DEPTH);
  if (p->n == 0) {
    cJSON_Delete(*root);
    *root = value;
    return 0;
  }
  cJSON *parent;
  int r = rd__jptr_walk(*root, p, p->n - 1, &parent, err);
  if (r) return r;
  const char *key = p->tok[p->n - 1];
  if (cJSON_IsObject(parent)) return put_member(parent, key, value, mode, err);
  if (cJSON_IsArray(parent)) return put_element(parent, key, value, mode, err);
  return rd_err_set(err, RD_ENOT_FOUND, "path not found (parent is not a container)");
}

int rd__jptr_detach(cJSON *root, const rd__jptr *p, cJSON **out, rd_err *err) {
  if (p->n == 0) return rd_err_set(err, RD_EINVALID, "cannot remove the document root");
  cJSON *parent, *item = NULL;
  int r = rd__jptr_walk(root, p, p->n - 1, &parent, err);
  if (r) return r;
  if (!(item = child(parent, p->tok[p->n - 1])))
    return rd_err_set(err, RD_ENOT_FOUND, "path not found");
  *out = cJSON_DetachItemViaPointer(parent, item);
  return 0;
}

/* Public API: the same operations on pointer strings, with the pointer
 * named in the message. */

static int fail(rd_err *err, const char *ptr, const rd_err *inner) {
  return rd_err_set(err, inner->code, "pointer '%.200s': %s", ptr, inner->msg);
}

int rd_json_pointer_get(const cJSON *doc, const char *ptr, const cJSON **out, rd_err *err) {
  rd__jptr p;
  rd_err e = {0};
  cJSON *item = NULL;
  int r = rd__jptr_parse(&p, ptr, &e);
  if (r == 0) r = rd__jptr_walk((cJSON *)doc, &p, p.n, &item, &e);
  rd__jptr_free(&p);
  if (r) return fail(err, ptr, &e);
  *out = item;
  return 0;
}

int rd_json_pointer_set(cJSON **doc, const char *ptr, cJSON *value, rd_err *err) {
  rd__jptr p;
  rd_err e = {0};
  int r = rd__jptr_parse(&p, ptr, &e);
  if (r == 0) r = rd__jptr_put(doc, &p, value, RD__PUT_SET, &e);
  rd__jptr_free(&p);
  return r ? fail(err, ptr, &e) : 0;
}

int rd_json_pointer_remove(cJSON *doc, const char *ptr, rd_err *err) {
  rd__jptr p;
  rd_err e = {0};
  cJSON *item = NULL;
  int r = rd__jptr_parse(&p, ptr, &e);
  if (r == 0) r = rd__jptr_detach(doc, &p, &item, &e);
  rd__jptr_free(&p);
  if (r) return fail(err, ptr, &e);
  cJSON_Delete(item);
  return 0;
}

size_t rd_json_pointer_escape(char *out, size_t n, const char *token) {
  size_t k = 0;
  for (; *token; token++) {
    char one[2] = {*token, '\0'};
    const char *rep = *token == '~' ? "~0" : *token == '/' ? "~1" : one;
    for (; *rep; rep++, k++)
      if (k + 1 < n) out[k] = *rep;
  }
  if (n) out[k < n ? k : n - 1] = '\0';
  return k;
}

int rd__jptr_push(rd_buf *b, const char *token) {
  if (rd__buf_add(b, "/", 1)) return RD_ENOMEM;
  for (; *token; token++) {
    const char *rep = *token == '~' ? "~0" : *token == '/' ? "~1" : NULL;
    if (rep ? rd__buf_add(b, rep, 2) : rd__buf_add(b, token, 1)) return RD_ENOMEM;
  }
  return 0;
}

int rd__jptr_push_index(rd_buf *b, size_t i) { return rd__buf_printf(b, "/%zu", i); }

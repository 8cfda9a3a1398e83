/*
 * The store binding: `core.store_open(target, opts)` and the methods of
 * redrive.Store (see docs/internals.md, "The store"). Thin: check the
 * arguments (misuse raises), run one store operation (src/store/op.h), turn
 * records into plain tables (absent fields omitted, JSON columns left as
 * strings).
 *
 * Every call is an operation that the task parks on until it completes,
 * then finishes in the continuation: a SQLite store completes at once (the
 * continuation runs right away, and the call never yields except for the
 * group commit below), a PostgreSQL store when the server's committed
 * answer arrives, while other tasks run. On the main thread of a plain
 * script the loop runs until the answer is there. A PostgreSQL call from a
 * coroutine that is not a task raises (it could not wait).
 *
 * Records reach Lua through callbacks that run while the operation is
 * finished (SQLite: while its statement is open), so each record is pushed
 * inside lua_pcall: a memory error then ends the listing cleanly and is
 * raised afterwards. Result tables are made before the operation starts,
 * so nothing can raise while one is pending.
 */
#include "lua/lrd.h"

#include "store/op.h"
#include "store/record.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lstore {
  rd_store_t *st;  /* NULL once closed */
  int busy;        /* inside a call that runs callbacks: no re-entry */
} lstore;

/* ---- acknowledging a write ---------------------------------------------------
 * The group commit is the store's (src/store/group.c): on SQLite a write
 * from a task may have joined the open group, durable only once it commits.
 * The task then parks on a store wait and gets its ids after the commit. (A
 * PostgreSQL operation completes after its commit: nothing is pending.) */

typedef struct {
  rd_store_wait_t sw; /* first */
  char id1[RD_STORE_ID_LEN + 1], id2[RD_STORE_ID_LEN + 1];
  int nids;            /* 0: a count of rows (job_mark) instead */
  int64_t count;
} ack_wait;

static void ack_release(rd_wait_t *w) { free(w); }

/* [-0, +1|2, m] push the ids of a durable write. */
static int push_ids(lua_State *L, const char *id1, const char *id2) {
  lua_pushstring(L, id1);
  if (!id2) return 1;
  lua_pushstring(L, id2);
  return 2;
}

static int ack_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  ack_wait *w = (ack_wait *)ctx;
  int st = w->sw.base.status;
  rd_err e = w->sw.err;
  char id1[sizeof w->id1], id2[sizeof w->id2];
  memcpy(id1, w->id1, sizeof id1);
  memcpy(id2, w->id2, sizeof id2);
  int two = w->nids > 1, counted = w->nids == 0;
  int64_t count = w->count;
  rd_wait_release(&w->sw.base);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  if (st) return rd__lua_pusherr(L, &e);
  if (counted) {
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
  }
  return push_ids(L, id1, two ? id2 : NULL);
}

/* After a write that succeeded: when it joined the open group commit, wait
 * for the commit (a task) or commit now (a thread that cannot wait); then
 * the ids, or the commit's error. */
static int ack(lua_State *L, rd_store_t *st, const char *id1, const char *id2) {
  if (!st || !rd_store_group_pending(st)) return push_ids(L, id1, id2);
  ack_wait *w = rd__in_task(L) ? malloc(sizeof *w) : NULL;
  if (!w) {
    rd_err err = {0};
    if (rd_store_group_commit(st, &err)) return rd__lua_pusherr(L, &err);
    return push_ids(L, id1, id2);
  }
  snprintf(w->id1, sizeof w->id1, "%s", id1);
  snprintf(w->id2, sizeof w->id2, "%s", id2 ? id2 : "");
  w->nids = id2 ? 2 : 1;
  rd_store_group_wait(st, &w->sw, ack_release);
  return rd__await(L, &w->sw.base, ack_done);
}

/* The same for a write answered by a count of rows. */
static int ack_count(lua_State *L, rd_store_t *st, int64_t n) {
  ack_wait *w = st && rd_store_group_pending(st) && rd__in_task(L) ? malloc(sizeof *w) : NULL;
  if (!w) {
    rd_err err = {0};
    if (st && rd_store_group_pending(st) && rd_store_group_commit(st, &err))
      return rd__lua_pusherr(L, &err);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
  }
  w->nids = 0;
  w->count = n;
  rd_store_group_wait(st, &w->sw, ack_release);
  return rd__await(L, &w->sw.base, ack_done);
}

/* ---- the userdata --------------------------------------------------------- */

static lstore *to_lstore(lua_State *L) { return luaL_checkudata(L, 1, RD_MT_STORE); }

static rd_store_t *check_store(lua_State *L) {
  lstore *u = to_lstore(L);
  if (!u->st) luaL_error(L, "attempt to use a closed store");
  if (u->busy) luaL_error(L, "store used from inside one of its own listings");
  return u->st;
}

/* [-0, +1, m] push a new closed store; returns it. Closed first, so that a
 * memory error before the store is attached leaves nothing for __gc. */
static lstore *new_lstore(lua_State *L) {
  lstore *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, RD_MT_STORE);
  return u;
}

/* ---- one operation in flight -------------------------------------------------
 * The operation (its wait first) and the argument structs and results it
 * points at, alive until the continuation has finished it. */

typedef struct lop {
  rd__op op;
  union {
    rd_scenario_t sc;
    rd_exec_t e;
    rd_exec_filter_t ef;
    rd_dlq_filter_t df;
    rd_log_filter_t lf;
    rd_dlq_sel_t sel;
    rd_claim_opts_t claim;
    struct { rd_exec_t e; rd_dlq_item_t d; rd_dlq_log_t log; rd_retry_done_t r; } rec;
    struct { rd_job_t j; rd_dlq_sel_t sel; rd_job_item_t mark; } job;
    rd__ledger_take take;
    rd__ledger_settle settle;
    rd__ledger_filter events;
  } in;
  union {
    int64_t n;
    int ok;                  /* job_own */
    rd_store_t *st;          /* open: the store being opened */
    void *rec;               /* get: the record, owned */
    rd_health_t h;
    rd__ledger_hold hold;
    struct { char a[RD_STORE_ID_LEN + 1], b[RD_STORE_ID_LEN + 1]; } ids;
  } out;
  int t;                     /* stack index of the result table (listings) or
                                of the new store (open) */
  int two;                   /* a second id comes back */
  int64_t n2;                /* job_create: the ledger's size, beside its id */
} lop;

static void lop_free(rd_wait_t *w) { free(w); }

/* [-0, +0, v] A new operation of `kind` on st; raises (before anything
 * started) when st answers asynchronously and this thread cannot wait, or
 * without memory. */
static lop *lop_new(lua_State *L, rd_store_t *st, int kind) {
  if (rd__op_async(st)) rd__wait_check(L);
  lop *o = calloc(1, sizeof *o);
  if (!o) luaL_error(L, "not enough memory");
  rd__op_init(&o->op, st, kind, lop_free);
  return o;
}

/* Start o and park until it completes; k then finishes it. */
static int lop_run(lua_State *L, lop *o, lua_KFunction k) {
  rd_err err = {0};
  if (rd__op_start(&o->op, &err)) {
    free(o);
    return rd__lua_pusherr(L, &err);
  }
  return rd__await(L, &o->op.base, k);
}

/* In a continuation: the operation, or rd.canceled raised (o freed) when
 * its wait was cancelled. */
static lop *lop_resumed(lua_State *L, lua_KContext ctx) {
  lop *o = (lop *)ctx;
  if (o->op.base.status == RD_ECANCELED) {
    rd__op_finish(&o->op, NULL);
    rd_wait_release(&o->op.base);
    rd__wait_canceled(L);
  }
  return o;
}

/* In a continuation: finish o and free it; 0 or the error (in err). */
static int lop_end(lop *o, rd_err *err) {
  int r = rd__op_finish(&o->op, err);
  rd_wait_release(&o->op.base);
  return r;
}

/* ---- opening ------------------------------------------------------------------ */

static int k_open(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = (lop *)ctx;
  rd_store_t *st = o->out.st;
  int canceled = o->op.base.status == RD_ECANCELED, t = o->t;
  rd_err err = {0};
  int r = lop_end(o, &err);
  if (r) {
    rd_store_close(st);
    if (canceled) return rd__wait_canceled(L);
    return rd__lua_pusherr(L, &err);
  }
  lstore *u = lua_touserdata(L, t);
  u->st = st;
  lua_settop(L, t);
  return 1;
}

/* core.store_open(target?, {password = s}?) -> store | nil, msg, code
 * target: a file path or a postgresql:// URL (default: rd_store_default_path). */
static int l_store_open(lua_State *L) {
  const char *target = luaL_optstring(L, 1, NULL);
  const char *password = NULL;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "password"); /* stays on the stack: anchored */
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
      luaL_argerror(L, 2, "field 'password': string expected");
    password = lua_tostring(L, -1);
  }
  char def[4096];
  if (!target) {
    int r = rd_store_default_path(def, sizeof def);
    if (r) return rd__lua_fail(L, r, "store: no default path (set REDRIVE_DB or HOME)");
    target = def;
  }
  if (rd_store_is_url(target)) rd__wait_check(L);
  lstore *u = new_lstore(L);
  (void)u;
  int t = lua_gettop(L);
  lop *o = calloc(1, sizeof *o);
  if (!o) return luaL_error(L, "not enough memory");
  rd_err err = {0};
  rd_store_t *st;
  if (rd__store_new(&st, target, &err)) {
    free(o);
    return rd__lua_pusherr(L, &err);
  }
  /* writes from tasks group-commit; a PostgreSQL connection runs on it */
  if (rd_store_attach(st, rd__rt(L)->loop, &err)) {
    free(o);
    rd_store_close(st);
    return rd__lua_pusherr(L, &err);
  }
  rd__op_init(&o->op, st, RD__OP_OPEN, lop_free);
  o->op.a.open.target = target;
  o->op.a.open.password = password;
  o->out.st = st;
  o->t = t;
  if (rd__op_start(&o->op, &err)) {
    free(o);
    rd_store_close(st);
    return rd__lua_pusherr(L, &err);
  }
  return rd__await(L, &o->op.base, k_open);
}

static int l_store_default_path(lua_State *L) {
  char buf[4096];
  int r = rd_store_default_path(buf, sizeof buf);
  if (r) return rd__lua_fail(L, r, "store: no default path (set REDRIVE_DB or HOME)");
  lua_pushstring(L, buf);
  return 1;
}

/* __gc, __close and close: idempotent. Operations of other tasks still in
 * flight on a PostgreSQL store fail. */
static int l_store_close(lua_State *L) {
  lstore *u = to_lstore(L);
  if (u->busy) return 0; /* a finalizer during one of our listings: not now */
  rd_store_t *st = u->st;
  u->st = NULL;
  rd_store_close(st); /* commits an open group, waking its writers */
  return 0;
}

static int l_store_tostring(lua_State *L) {
  lstore *u = to_lstore(L);
  if (u->st) lua_pushfstring(L, "redrive.Store (%s)", rd_store_path(u->st));
  else lua_pushliteral(L, "redrive.Store (closed)");
  return 1;
}

/* st:path() -> the file, or the URL without its password */
static int l_store_path(lua_State *L) {
  lua_pushstring(L, rd_store_path(check_store(L)));
  return 1;
}

/* st:backend() -> "sqlite" | "postgresql" */
static int l_store_backend(lua_State *L) {
  lua_pushstring(L, rd_store_backend(check_store(L)));
  return 1;
}

/* ---- reading arguments -----------------------------------------------------
 * Field readers leave the value on the stack so that the strings they return
 * stay anchored until the function returns. A missing field is nil; a
 * field set to rd.json.null is present but empty (clears it in updates). */

typedef struct fields {
  lua_State *L;
  int arg;             /* argument number, for messages */
  int t;               /* absolute index of the table, 0 = no table */
  const char *prefix;  /* "exec." in messages */
} fields;

static fields args_table(lua_State *L, int arg, int optional, const char *prefix) {
  if (optional && lua_isnoneornil(L, arg)) return (fields){L, arg, 0, prefix};
  luaL_checktype(L, arg, LUA_TTABLE);
  return (fields){L, arg, lua_absindex(L, arg), prefix};
}

/* Push field k; returns its type (LUA_TNIL when absent), -1 for json null. */
static int get(const fields *f, const char *k) {
  luaL_checkstack(f->L, 4, "too many fields");
  if (!f->t) {
    lua_pushnil(f->L);
    return LUA_TNIL;
  }
  int t = lua_getfield(f->L, f->t, k);
  if (t == LUA_TUSERDATA && rd__json_isnull(f->L, -1)) return -1;
  return t;
}

static int bad(const fields *f, const char *k, const char *want) {
  const char *msg = lua_pushfstring(f->L, "field '%s%s': %s expected, got %s", f->prefix, k,
                                    want, luaL_typename(f->L, -1));
  return luaL_argerror(f->L, f->arg, msg);
}

/* String field: NULL when absent or null; *present (if given) says whether it
 * was there at all. */
static const char *f_str(const fields *f, const char *k, int *present) {
  int t = get(f, k);
  if (present) *present = t != LUA_TNIL;
  if (t == LUA_TNIL || t == -1) return NULL;
  if (t != LUA_TSTRING) bad(f, k, "string");
  return lua_tostring(f->L, -1);
}

static const char *f_reqstr(const fields *f, const char *k) {
  const char *s = f_str(f, k, NULL);
  if (!s) bad(f, k, "string");
  return s;
}

static double f_num(const fields *f, const char *k, int *present) {
  int t = get(f, k);
  if (present) *present = t != LUA_TNIL;
  if (t == LUA_TNIL || t == -1) return RD_STORE_NONE;
  if (t != LUA_TNUMBER) bad(f, k, "number");
  return lua_tonumber(f->L, -1);
}

static int64_t f_int(const fields *f, const char *k, int64_t def, int *present) {
  int t = get(f, k);
  if (present) *present = t != LUA_TNIL;
  if (t == LUA_TNIL) return def;
  if (t == -1) return 0;
  int ok;
  lua_Integer v = lua_tointegerx(f->L, -1, &ok);
  if (t != LUA_TNUMBER || !ok) bad(f, k, "integer");
  return v;
}

static int f_bool(const fields *f, const char *k, int def, int *present) {
  int t = get(f, k);
  if (present) *present = t != LUA_TNIL;
  if (t == LUA_TNIL) return def;
  if (t == -1) return 0;
  if (t != LUA_TBOOLEAN) bad(f, k, "boolean");
  return lua_toboolean(f->L, -1);
}

/* A duration, size or count field, checked by the one rule of lnum.c. This
 * binding is internal (the sources check what users pass), so a value out
 * of range here is a caller's bug: it raises, naming the field. A NaN
 * default (RD_STORE_NONE) makes the field required. */
static double f_ranged(const fields *f, const char *k, const rd_range *r, double dflt) {
  int t = get(f, k);
  double v = dflt;
  if (t == LUA_TNUMBER) v = lua_tonumber(f->L, -1);
  else if ((t != LUA_TNIL && t != -1) || isnan(dflt)) bad(f, k, "number");
  rd_err err = {0};
  if (rd__num_check(v, k, r, &err)) luaL_argerror(f->L, f->arg, err.msg);
  return v;
}

static int f_limit(const fields *f) {
  rd_range r = rd__range_count;
  r.max = RD_STORE_MAX_LIMIT;
  return (int)f_ranged(f, "limit", &r, 0);
}

/* Sub-table field as its own `fields` (t = 0 when absent). */
static fields f_table(const fields *f, const char *k, const char *prefix) {
  int t = get(f, k);
  if (t == LUA_TNIL) return (fields){f->L, f->arg, 0, prefix};
  if (t != LUA_TTABLE) bad(f, k, "table");
  return (fields){f->L, f->arg, lua_absindex(f->L, -1), prefix};
}

/* Array of strings field -> C array in a userdata on the stack. */
static const char *const *f_strings(const fields *f, const char *k, size_t *n) {
  int t = get(f, k);
  *n = 0;
  if (t == LUA_TNIL) return NULL;
  if (t != LUA_TTABLE) bad(f, k, "table of ids");
  int at = lua_absindex(f->L, -1);
  size_t len = (size_t)luaL_len(f->L, at);
  const char **v = lua_newuserdatauv(f->L, (len ? len : 1) * sizeof *v, 0);
  for (size_t i = 0; i < len; i++) {
    if (lua_rawgeti(f->L, at, (lua_Integer)i + 1) != LUA_TSTRING) {
      lua_pushfstring(f->L, "field '%s%s[%d]': string expected, got %s", f->prefix, k,
                      (int)i + 1, luaL_typename(f->L, -1));
      luaL_argerror(f->L, f->arg, lua_tostring(f->L, -1));
    }
    v[i] = lua_tostring(f->L, -1); /* anchored by the array */
    lua_pop(f->L, 1);
  }
  *n = len;
  return v;
}

static const char *check_id(lua_State *L, int arg) { return luaL_checkstring(L, arg); }

/* Read a record of kind r from the table of f: every field a caller may set,
 * by its kind; *mask (may be NULL) gets bit i for each field i present
 * (RD_EXEC_STATUS, ...). Absent fields are NULL, RD_STORE_NONE or 0, as
 * are those the store sets. */
static void read_rec(const fields *f, const rd__record *r, void *rec, unsigned *mask) {
  unsigned m = 0;
  memset(rec, 0, r->size);
  for (int i = 0; i < r->n; i++) {
    const rd__field *fd = &r->fields[i];
    int p = 0;
    if (fd->kind == RD__K_REAL) *RD__MEMBER(rec, fd, double) = RD_STORE_NONE;
    if (fd->flags & RD_F_STORE) continue;
    switch (fd->kind) {
    case RD__K_TEXT:
    case RD__K_JSON: *RD__MEMBER(rec, fd, const char *) = f_str(f, fd->name, &p); break;
    case RD__K_BIGINT: *RD__MEMBER(rec, fd, int64_t) = f_int(f, fd->name, 0, &p); break;
    case RD__K_INT: {
      int64_t v = f_int(f, fd->name, 0, &p);
      if (v < INT_MIN || v > INT_MAX) bad(f, fd->name, "small integer");
      *RD__MEMBER(rec, fd, int) = (int)v;
      break;
    }
    case RD__K_BOOL: *RD__MEMBER(rec, fd, int) = f_bool(f, fd->name, 0, &p); break;
    case RD__K_REAL: *RD__MEMBER(rec, fd, double) = f_num(f, fd->name, &p); break;
    }
    if (p) m |= 1u << i;
  }
  if (mask) *mask = m;
}

static void read_sel(const fields *f, rd_dlq_sel_t *sel) {
  *sel = (rd_dlq_sel_t){0};
  sel->ids = f_strings(f, "ids", &sel->n_ids);
  sel->all = f_bool(f, "all", 0, NULL);
  sel->except = f_strings(f, "except", &sel->n_except);
  sel->scenario_id = f_int(f, "scenario", 0, NULL);
  sel->fingerprint = f_str(f, "fingerprint", NULL);
  if (!sel->ids && !sel->all) luaL_argerror(f->L, f->arg, "'ids' or 'all = true' expected");
  if (sel->ids && sel->all) luaL_argerror(f->L, f->arg, "'ids' and 'all' exclude each other");
}

/* ---- pushing records ------------------------------------------------------ */

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* Whole numbers come back as integers, so 1700000000 stays 1700000000. */
static void push_num(lua_State *L, double v) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
}

static void set_num(lua_State *L, const char *k, double v) {
  if (isnan(v)) return;
  push_num(L, v);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* [-0, +1, m] push record `rec` of kind r as a table: absent fields
 * (NULL, RD_STORE_NONE, 0 of an optional reference) are left out. */
static void push_rec(lua_State *L, const rd__record *r, const void *rec) {
  lua_createtable(L, 0, r->n);
  for (int i = 0; i < r->n; i++) {
    const rd__field *f = &r->fields[i];
    switch (f->kind) {
    case RD__K_TEXT:
    case RD__K_JSON: set_str(L, f->name, *RD__CMEMBER(rec, f, char *)); break;
    case RD__K_BIGINT: {
      int64_t v = *RD__CMEMBER(rec, f, int64_t);
      if (v || !(f->flags & RD_F_ZERONULL)) set_int(L, f->name, v);
      break;
    }
    case RD__K_INT: set_int(L, f->name, *RD__CMEMBER(rec, f, int)); break;
    case RD__K_BOOL: set_bool(L, f->name, *RD__CMEMBER(rec, f, int)); break;
    case RD__K_REAL: set_num(L, f->name, *RD__CMEMBER(rec, f, double)); break;
    }
  }
}

static void push_scenario(lua_State *L, const void *p) { push_rec(L, &rd__rec_scenario, p); }
static void push_exec(lua_State *L, const void *p) { push_rec(L, &rd__rec_exec, p); }
static void push_item(lua_State *L, const void *p) { push_rec(L, &rd__rec_item, p); }
static void push_log(lua_State *L, const void *p) { push_rec(L, &rd__rec_log, p); }
static void push_job(lua_State *L, const void *p) { push_rec(L, &rd__rec_job, p); }
static void push_job_item(lua_State *L, const void *p) { push_rec(L, &rd__rec_job_item, p); }

/* {fingerprint, cause, count, first, last, scenarios = {id...}, example_ids =
 * {id...}, more_scenarios = n} */
static void push_group(lua_State *L, const void *p) {
  const rd_group_t *g = p;
  lua_createtable(L, 0, 8);
  set_str(L, "fingerprint", g->fingerprint);
  set_str(L, "cause", g->cause);
  set_int(L, "count", g->count);
  set_num(L, "first", g->first);
  set_num(L, "last", g->last);
  lua_createtable(L, (int)g->n_scenarios, 0);
  for (size_t i = 0; i < g->n_scenarios; i++) {
    lua_pushinteger(L, (lua_Integer)g->scenarios[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "scenarios");
  if (g->more_scenarios) set_int(L, "more_scenarios", (int64_t)g->more_scenarios);
  lua_createtable(L, (int)g->n_examples, 0);
  for (size_t i = 0; i < g->n_examples; i++) {
    lua_pushstring(L, g->examples[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "example_ids");
}

/* Collects records into the table on top of the stack, each push protected. */
typedef struct collector {
  lua_State *L;
  lstore *u;
  int t;                                 /* absolute index of the result table */
  lua_Integer n;
  void (*push)(lua_State *L, const void *rec);
  const void *rec;
  const char *id, *msg;                  /* delete errors */
  int code;
  int failed;                            /* a push raised: error object on top */
} collector;

static int collect_p(lua_State *L) {
  collector *c = lua_touserdata(L, 1);
  if (c->push) {
    c->push(L, c->rec);
  } else {
    lua_createtable(L, 0, 3);
    set_str(L, "id", c->id);
    set_str(L, "message", c->msg);
    set_str(L, "code", rd_err_name(c->code));
  }
  lua_rawseti(L, 2, ++c->n);
  return 0;
}

static int collect(collector *c) {
  lua_pushcfunction(c->L, collect_p);  /* light C function: no allocation */
  lua_pushlightuserdata(c->L, c);
  lua_pushvalue(c->L, c->t);
  if (lua_pcall(c->L, 2, 0, 0) != LUA_OK) {
    c->failed = 1;
    return 1;
  }
  return 0;
}

static int cb_scenario(const rd_scenario_t *r, void *ud) {
  collector *c = ud;
  c->rec = r;
  return collect(c);
}
static int cb_exec(const rd_exec_t *r, void *ud) {
  collector *c = ud;
  c->rec = r;
  return collect(c);
}
static int cb_item(const rd_dlq_item_t *r, void *ud) {
  collector *c = ud;
  c->rec = r;
  return collect(c);
}
static int cb_log(const rd_dlq_log_t *r, void *ud) {
  collector *c = ud;
  c->rec = r;
  return collect(c);
}
static int cb_group(const rd_group_t *g, void *ud) {
  collector *c = ud;
  c->rec = g;
  return collect(c);
}
static int cb_job(const rd_job_t *r, void *ud) {
  collector *c = ud;
  c->rec = r;
  return collect(c);
}
static int cb_job_item(const rd_job_item_t *r, void *ud) {
  collector *c = ud;
  c->rec = r;
  return collect(c);
}
static int cb_error(const char *id, int code, const char *msg, void *ud) {
  collector *c = ud;
  c->id = id;
  c->code = code;
  c->msg = msg;
  return collect(c);
}

/* [-0, +1, m] one event of the ledger's audit */
static void push_event(lua_State *L, const void *p) {
  const rd__ledger_event *ev = p;
  lua_createtable(L, 0, 12);
  set_int(L, "id", ev->id);
  set_num(L, "time", ev->time);
  set_str(L, "host", ev->host);
  set_int(L, "pid", ev->pid);
  set_str(L, "source", ev->source);
  set_str(L, "item", ev->item);
  set_str(L, "action", ev->action);
  set_str(L, "outcome", ev->outcome);
  set_str(L, "code", ev->code);
  set_str(L, "rule", ev->rule);
  set_str(L, "execution", ev->execution);
  set_str(L, "message", ev->message);
}
static int cb_event(const rd__ledger_event *ev, void *ud) {
  collector *c = ud;
  c->rec = ev;
  return collect(c);
}

/* After the store call: raise a push's error, or return the table or an
 * expected failure. */
static int collector_end(lua_State *L, collector *c, int r, const rd_err *err) {
  c->u->busy = 0;
  if (c->failed) return lua_error(L);
  if (r) return rd__lua_pusherr(L, err);
  lua_settop(L, c->t);
  return 1;
}

/* ---- continuations shared by many calls ----------------------------------------- */

/* [-0, +1, m] push an owned record (then free it), or the error. */
static int push_owned(lua_State *L, int r, void *rec, void (*push)(lua_State *, const void *),
                      const rd_err *err) {
  if (r) return rd__lua_pusherr(L, err);
  /* The record is freed whatever happens: push under protection. */
  collector c = {.L = L, .push = push, .rec = rec};
  luaL_checkstack(L, 8, "store");
  lua_newtable(L);
  c.t = lua_gettop(L);
  int failed = collect(&c);
  free(rec);
  if (failed) return lua_error(L);
  lua_rawgeti(L, c.t, 1);
  return 1;
}

static void (*const pushers[])(lua_State *, const void *) = {
  [RD__OP_SCENARIO_GET] = push_scenario, [RD__OP_EXEC_GET] = push_exec,
  [RD__OP_DLQ_GET] = push_item,
};

/* get: one record, owned */
static int k_get(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  void (*push)(lua_State *, const void *) = pushers[o->op.kind];
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  void *rec = r ? NULL : o->out.rec;
  rd_wait_release(&o->op.base);
  return push_owned(L, r, rec, push, &err);
}

/* writes answered by `true` */
static int k_true(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  rd_err err = {0};
  if (lop_end(lop_resumed(L, ctx), &err)) return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* calls answered by a count */
static int k_count(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  int64_t n = o->out.n;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* listings: records collected into the table made before the call */
static int k_list(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  collector c = {.L = L, .u = to_lstore(L), .t = o->t};
  switch (o->op.kind) {
  case RD__OP_SCENARIO_LIST:
    c.push = push_scenario, o->op.a.scenario_list.cb = cb_scenario, o->op.a.scenario_list.ud = &c;
    break;
  case RD__OP_EXEC_LIST:
    c.push = push_exec, o->op.a.exec_list.cb = cb_exec, o->op.a.exec_list.ud = &c;
    break;
  case RD__OP_DLQ_LIST:
    c.push = push_item, o->op.a.dlq_list.cb = cb_item, o->op.a.dlq_list.ud = &c;
    break;
  case RD__OP_DLQ_LOGS:
    c.push = push_log, o->op.a.dlq_logs.cb = cb_log, o->op.a.dlq_logs.ud = &c;
    break;
  case RD__OP_CLAIM:
    c.push = push_item, o->op.a.claim.cb = cb_item, o->op.a.claim.ud = &c;
    break;
  case RD__OP_DLQ_GROUPS:
    c.push = push_group, o->op.a.dlq_groups.cb = cb_group, o->op.a.dlq_groups.ud = &c;
    break;
  case RD__OP_JOB_LIST:
    c.push = push_job, o->op.a.job_list.cb = cb_job, o->op.a.job_list.ud = &c;
    break;
  case RD__OP_JOB_ITEMS:
    c.push = push_job_item, o->op.a.job_items.cb = cb_job_item, o->op.a.job_items.ud = &c;
    break;
  case RD__OP_LEDGER_EVENTS:
    c.push = push_event, o->op.a.ledger_events.cb = cb_event, o->op.a.ledger_events.ud = &c;
    break;
  }
  c.u->busy = 1;
  rd_err err = {0};
  int r = lop_end(o, &err);
  return collector_end(L, &c, r, &err);
}

/* [-0, +0, v] the result table of a listing, made before its operation
 * starts (nothing may raise while one is pending); its index goes to o. It
 * is a list: marked as a JSON array, so an empty one encodes as [] (not {}). */
static lop *list_op(lua_State *L, rd_store_t *st, int kind) {
  luaL_checkstack(L, 8, "store");
  lua_newtable(L);
  luaL_setmetatable(L, RD_MT_JSON_ARRAY);
  int t = lua_gettop(L);
  lop *o = lop_new(L, st, kind);
  o->t = t;
  return o;
}

/* writes answered by their ids, once durable (ack) */
static int k_ids(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_store_t *st = o->op.st;
  char a[RD_STORE_ID_LEN + 1], b[RD_STORE_ID_LEN + 1];
  int two = o->two;
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  memcpy(a, o->out.ids.a, sizeof a);
  memcpy(b, o->out.ids.b, sizeof b);
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  return ack(L, st, a, two ? b : NULL);
}

/* ---- scenarios ------------------------------------------------------------ */

static int k_scenario_create(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  int64_t id = o->out.n;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int l_scenario_create(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd_scenario_t sc;
  read_rec(&f, &rd__rec_scenario, &sc, NULL);
  if (!sc.name) f_reqstr(&f, "name");
  if (!sc.blueprint) f_reqstr(&f, "blueprint");
  lop *o = lop_new(L, st, RD__OP_SCENARIO_CREATE);
  o->in.sc = sc;
  o->op.a.scenario_create.rec = &o->in.sc;
  o->op.a.scenario_create.id = &o->out.n;
  return lop_run(L, o, k_scenario_create);
}

static int l_scenario_get(lua_State *L) {
  rd_store_t *st = check_store(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  lop *o = lop_new(L, st, RD__OP_SCENARIO_GET);
  o->op.a.scenario_get.id = id;
  o->op.a.scenario_get.out = (rd_scenario_t **)&o->out.rec;
  return lop_run(L, o, k_get);
}

static int l_scenario_list(lua_State *L) {
  rd_store_t *st = check_store(L);
  lop *o = list_op(L, st, RD__OP_SCENARIO_LIST);
  return lop_run(L, o, k_list);
}

static int l_scenario_update(lua_State *L) {
  rd_store_t *st = check_store(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  fields f = args_table(L, 3, 0, "");
  unsigned mask;
  rd_scenario_t sc;
  read_rec(&f, &rd__rec_scenario, &sc, &mask);
  lop *o = lop_new(L, st, RD__OP_SCENARIO_UPDATE);
  o->in.sc = sc;
  o->op.a.scenario_update.id = id;
  o->op.a.scenario_update.rec = &o->in.sc;
  o->op.a.scenario_update.mask = mask;
  return lop_run(L, o, k_true);
}

/* ---- executions ----------------------------------------------------------- */

static int l_exec_get(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  lop *o = lop_new(L, st, RD__OP_EXEC_GET);
  o->op.a.exec_get.id = id;
  o->op.a.exec_get.out = (rd_exec_t **)&o->out.rec;
  return lop_run(L, o, k_get);
}

static int l_exec_list(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  rd_exec_filter_t flt = {
    .scenario_id = f_int(&f, "scenario", 0, NULL),
    .status = f_str(&f, "status", NULL),
    .mode = f_str(&f, "mode", NULL),
    .since = f_num(&f, "since", NULL),
    .until = f_num(&f, "until", NULL),
    .after = f_str(&f, "after", NULL),
    .limit = f_limit(&f),
    .fingerprint = f_str(&f, "fingerprint", NULL),
  };
  lop *o = list_op(L, st, RD__OP_EXEC_LIST);
  o->in.ef = flt;
  o->op.a.exec_list.f = &o->in.ef;
  return lop_run(L, o, k_list);
}

static int l_exec_update(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  fields f = args_table(L, 3, 0, "");
  rd_exec_t e;
  unsigned mask;
  read_rec(&f, &rd__rec_exec, &e, &mask);
  lop *o = lop_new(L, st, RD__OP_EXEC_UPDATE);
  o->in.e = e;
  o->op.a.exec_update.id = id;
  o->op.a.exec_update.rec = &o->in.e;
  o->op.a.exec_update.mask = mask;
  return lop_run(L, o, k_true);
}

static int l_exec_delete(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  lop *o = lop_new(L, st, RD__OP_EXEC_DELETE);
  o->op.a.exec_delete.id = id;
  return lop_run(L, o, k_true);
}

static int l_record(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  fields fe = f_table(&f, "exec", "exec.");
  if (!fe.t) luaL_argerror(L, 2, "field 'exec': table expected, got nil");
  fields fd = f_table(&f, "dlq", "dlq.");
  rd_exec_t e;
  rd_dlq_item_t d;
  read_rec(&fe, &rd__rec_exec, &e, NULL);
  if (fd.t) read_rec(&fd, &rd__rec_item, &d, NULL);
  lop *o = lop_new(L, st, RD__OP_RECORD);
  o->in.rec.e = e;
  if (fd.t) o->in.rec.d = d;
  o->two = fd.t != 0;
  o->op.a.record.exec = &o->in.rec.e;
  o->op.a.record.dlq = fd.t ? &o->in.rec.d : NULL;
  o->op.a.record.exec_id = o->out.ids.a;
  o->op.a.record.dlq_id = o->out.ids.b;
  return lop_run(L, o, k_ids);
}

/* ---- DLQ ------------------------------------------------------------------- */

static int l_dlq_get(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  lop *o = lop_new(L, st, RD__OP_DLQ_GET);
  o->op.a.dlq_get.id = id;
  o->op.a.dlq_get.out = (rd_dlq_item_t **)&o->out.rec;
  return lop_run(L, o, k_get);
}

static void read_dlq_filter(const fields *f, rd_dlq_filter_t *flt) {
  int p;
  int resolved = f_bool(f, "resolved", 0, &p);
  *flt = (rd_dlq_filter_t){
    .scenario_id = f_int(f, "scenario", 0, NULL),
    .resolved = p ? resolved : -1,
    .since = f_num(f, "since", NULL),
    .until = f_num(f, "until", NULL),
    .after = f_str(f, "after", NULL),
    .limit = f_limit(f),
    .fingerprint = f_str(f, "fingerprint", NULL),
  };
}

static int l_dlq_list(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  rd_dlq_filter_t flt;
  read_dlq_filter(&f, &flt);
  lop *o = list_op(L, st, RD__OP_DLQ_LIST);
  o->in.df = flt;
  o->op.a.dlq_list.f = &o->in.df;
  return lop_run(L, o, k_list);
}

static int l_dlq_count(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  rd_dlq_filter_t flt;
  read_dlq_filter(&f, &flt);
  lop *o = lop_new(L, st, RD__OP_DLQ_COUNT);
  o->in.df = flt;
  o->op.a.dlq_count.f = &o->in.df;
  o->op.a.dlq_count.n = &o->out.n;
  return lop_run(L, o, k_count);
}

static int l_dlq_patch(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  fields f = args_table(L, 3, 0, "");
  const char *bp = f_str(&f, "blueprint", NULL);
  int64_t failer = f_int(&f, "failer", 0, NULL);
  if (failer < 0) luaL_argerror(L, 3, "field 'failer': module id must be positive");
  lop *o = lop_new(L, st, RD__OP_DLQ_PATCH);
  o->op.a.dlq_patch.id = id;
  o->op.a.dlq_patch.blueprint = bp;
  o->op.a.dlq_patch.failer = failer;
  return lop_run(L, o, k_true);
}

/* st:dlq_delete{sel} -> {deleted = n, errors} and st:dlq_resolve{sel} ->
 * {resolved = n, errors}: the same selection, the same report. */
static int k_on_selection(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  const char *count = o->op.kind == RD__OP_DLQ_RESOLVE ? "resolved" : "deleted";
  collector c = {.L = L, .u = to_lstore(L), .t = o->t};
  o->op.a.dlq_delete.on_error = cb_error;
  o->op.a.dlq_delete.ud = &c;
  c.u->busy = 1;
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  int64_t n = o->out.n;
  rd_wait_release(&o->op.base);
  c.u->busy = 0;
  if (c.failed) return lua_error(L);
  if (r) return rd__lua_pusherr(L, &err);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, count);
  lua_pushvalue(L, c.t);
  lua_setfield(L, -2, "errors");
  return 1;
}

static int on_selection(lua_State *L, int kind) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd_dlq_sel_t sel;
  read_sel(&f, &sel);
  lop *o = list_op(L, st, kind); /* the table of errors */
  o->in.sel = sel;
  o->op.a.dlq_delete.sel = &o->in.sel;
  o->op.a.dlq_delete.deleted = &o->out.n;
  return lop_run(L, o, k_on_selection);
}

static int l_dlq_delete(lua_State *L) { return on_selection(L, RD__OP_DLQ_DELETE); }
static int l_dlq_resolve(lua_State *L) { return on_selection(L, RD__OP_DLQ_RESOLVE); }

static int l_dlq_groups(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  rd_dlq_filter_t flt;
  read_dlq_filter(&f, &flt);
  lop *o = list_op(L, st, RD__OP_DLQ_GROUPS);
  o->in.df = flt;
  o->op.a.dlq_groups.f = &o->in.df;
  return lop_run(L, o, k_list);
}

static int l_dlq_logs(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  fields f = args_table(L, 3, 1, "");
  int64_t status = f_int(&f, "status", 0, NULL);
  if (status < 0 || status > 3) luaL_argerror(L, 3, "field 'status': 1, 2 or 3 expected");
  rd_log_filter_t flt = {
    .status = (int)status,
    .from = f_num(&f, "from", NULL),
    .to = f_num(&f, "to", NULL),
    .after = f_str(&f, "after", NULL),
    .limit = f_limit(&f),
  };
  lop *o = list_op(L, st, RD__OP_DLQ_LOGS);
  o->in.lf = flt;
  o->op.a.dlq_logs.id = id;
  o->op.a.dlq_logs.f = &o->in.lf;
  return lop_run(L, o, k_list);
}

/* ---- leases and retries ----------------------------------------------------- */

static double check_ttl(lua_State *L, const fields *f, int arg) {
  if (f) return f_ranged(f, "ttl", &rd__range_timeout, RD_STORE_NONE);
  double ttl = luaL_checknumber(L, arg);
  rd_err err = {0};
  if (rd__num_check(ttl, "ttl", &rd__range_timeout, &err)) luaL_argerror(L, arg, err.msg);
  return ttl;
}

static int l_claim(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd_claim_opts_t co = {0};
  read_sel(&f, &co.sel);
  co.after = f_str(&f, "after", NULL);
  co.limit = f_limit(&f);
  co.owner = f_reqstr(&f, "owner");
  co.ttl = check_ttl(L, &f, 2);
  co.resolved = f_bool(&f, "resolved", 0, NULL);
  lop *o = list_op(L, st, RD__OP_CLAIM);
  o->in.claim = co;
  o->op.a.claim.o = &o->in.claim;
  return lop_run(L, o, k_list);
}

static int l_renew(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *owner = luaL_checkstring(L, 2);
  double ttl = check_ttl(L, NULL, 3);
  lop *o = lop_new(L, st, RD__OP_RENEW);
  o->op.a.renew.owner = owner;
  o->op.a.renew.ttl = ttl;
  o->op.a.renew.n = &o->out.n;
  return lop_run(L, o, k_count);
}

static int l_release(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *owner = luaL_checkstring(L, 2);
  const char *id = luaL_optstring(L, 3, NULL);
  lop *o = lop_new(L, st, RD__OP_RELEASE);
  o->op.a.release.owner = owner;
  o->op.a.release.id = id;
  o->op.a.release.n = &o->out.n;
  return lop_run(L, o, k_count);
}

/* st:retry_done{exec = rec, success = bool, dlq_id = id, owner = s, log = {...}}
 * or st:retry_done{exec = rec, success = bool, dlq = item?}
 * -> exec_id[, dlq_id of the new item] | nil, msg, code */
static int l_retry_done(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd_retry_done_t d = {
    .success = f_bool(&f, "success", 0, NULL),
    .dlq_id = f_str(&f, "dlq_id", NULL),
    .owner = f_str(&f, "owner", NULL),
    .job_id = f_str(&f, "job_id", NULL),
    .job_error = f_str(&f, "job_error", NULL),
  };
  fields fe = f_table(&f, "exec", "exec.");
  fields fl = f_table(&f, "log", "log.");
  fields fd = f_table(&f, "dlq", "dlq.");
  if (!fe.t) luaL_argerror(L, 2, "field 'exec': table expected, got nil");
  if (d.dlq_id && !d.owner) f_reqstr(&f, "owner");
  if (d.dlq_id && !fl.t) luaL_argerror(L, 2, "field 'log': table expected, got nil");
  if (d.dlq_id && fd.t) luaL_argerror(L, 2, "fields 'dlq_id' and 'dlq' exclude each other");
  rd_exec_t e;
  rd_dlq_log_t log;
  rd_dlq_item_t item;
  read_rec(&fe, &rd__rec_exec, &e, NULL);
  if (fl.t) {
    read_rec(&fl, &rd__rec_log, &log, NULL);
    if (log.status < 1 || log.status > 3)
      luaL_argerror(L, 2, "field 'log.status': 1, 2 or 3 expected");
  }
  if (fd.t) read_rec(&fd, &rd__rec_item, &item, NULL);
  lop *o = lop_new(L, st, RD__OP_RETRY_DONE);
  o->in.rec.e = e;
  o->in.rec.r = d;
  o->in.rec.r.exec = &o->in.rec.e;
  if (fl.t) {
    o->in.rec.log = log;
    o->in.rec.r.log = &o->in.rec.log;
  }
  if (fd.t) {
    o->in.rec.d = item;
    o->in.rec.r.dlq = &o->in.rec.d;
  }
  o->two = fd.t != 0;
  o->op.a.retry_done.r = &o->in.rec.r;
  o->op.a.retry_done.exec_id = o->out.ids.a;
  o->op.a.retry_done.dlq_id = o->out.ids.b;
  return lop_run(L, o, k_ids);
}

/* ---- health ----------------------------------------------------------------- */

static int health_p(lua_State *L) {
  const rd_health_t *h = lua_touserdata(L, 1);
  lua_createtable(L, 0, 9);
  set_int(L, "total", h->total);
  set_int(L, "finished", h->finished);
  set_int(L, "succeeded", h->succeeded);
  set_int(L, "failed", h->failed);
  set_int(L, "running", h->running);
  set_num(L, "success_rate", h->success_rate);
  set_num(L, "avg_duration", h->avg_duration);
  set_num(L, "p95_duration", h->p95_duration);
  lua_createtable(L, (int)h->n_top, 0);
  for (size_t i = 0; i < h->n_top; i++) {
    /* both {reason, count} and {reason = , count = } */
    lua_createtable(L, 2, 2);
    lua_pushstring(L, h->top[i].reason);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 1);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, (lua_Integer)h->top[i].count);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 2);
    lua_setfield(L, -2, "count");
    if (h->top[i].fingerprint[0]) {
      lua_pushstring(L, h->top[i].fingerprint);
      lua_setfield(L, -2, "fingerprint");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "top_reasons");
  return 1;
}

static int k_health(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  rd_health_t h = o->out.h;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  /* h owns strings: build the table under protection, then free them. */
  lua_pushcfunction(L, health_p);
  lua_pushlightuserdata(L, &h);
  int rc = lua_pcall(L, 1, 1, 0);
  rd_store_health_free(&h);
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}

/* ---- bulk jobs ------------------------------------------------------------------
 * st:job_create{kind, params, ids | all, except, scenario, fingerprint} -> id, total
 * st:job_get(id) -> job with its ledger's counts (pending, started, succeeded,
 *                   failed, skipped, not_attempted) and its live runners' count
 * st:job_list{state, after, limit} -> {job...}
 * st:job_items(id, {outcome, after, limit}) -> {row...}
 * st:job_mark(id, {item ids}, {outcome, execution_id, error, code, runner}) -> n, once durable
 * st:job_own(id, "take" | "renew" | "release" | "done" | "cancel", owner, ttl) -> true | false */

static int k_job_create(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  char id[RD_STORE_ID_LEN + 1];
  memcpy(id, o->out.ids.a, sizeof id);
  int64_t total = o->n2;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  lua_pushstring(L, id);
  lua_pushinteger(L, (lua_Integer)total);
  return 2;
}

static int l_job_create(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd_dlq_sel_t sel;
  read_sel(&f, &sel);
  lop *o = lop_new(L, st, RD__OP_JOB_CREATE);
  o->in.job.j = (rd_job_t){.kind = f_reqstr(&f, "kind"), .params = f_str(&f, "params", NULL)};
  o->in.job.sel = sel;
  o->op.a.job_create.job = &o->in.job.j;
  o->op.a.job_create.sel = &o->in.job.sel;
  o->op.a.job_create.id = o->out.ids.a;
  o->op.a.job_create.total = &o->n2;
  return lop_run(L, o, k_job_create);
}

static const char *const COUNT_NAMES[] = {"pending", "started", "succeeded", "failed", "skipped",
                                          "not_attempted", "runners"};

static int k_job_get(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  rd_job_counts_t c = {0};
  o->op.a.job_get.counts = &c;
  int r = rd__op_finish(&o->op, &err);
  void *rec = r ? NULL : o->out.rec; /* read before the operation is freed */
  rd_wait_release(&o->op.base);
  int n = push_owned(L, r, rec, push_job, &err);
  if (r) return n;
  int64_t v[] = {c.pending, c.started, c.succeeded, c.failed, c.skipped, c.not_attempted,
                 c.runners};
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) set_int(L, COUNT_NAMES[i], v[i]);
  return 1;
}

static int l_job_get(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  lop *o = lop_new(L, st, RD__OP_JOB_GET);
  o->op.a.job_get.id = id;
  o->op.a.job_get.out = (rd_job_t **)&o->out.rec;
  return lop_run(L, o, k_job_get);
}

static int l_job_list(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  const char *state = f_str(&f, "state", NULL), *after = f_str(&f, "after", NULL);
  int limit = f_limit(&f);
  lop *o = list_op(L, st, RD__OP_JOB_LIST);
  o->op.a.job_list.state = state;
  o->op.a.job_list.after = after;
  o->op.a.job_list.limit = limit;
  return lop_run(L, o, k_list);
}

static int l_job_items(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  fields f = args_table(L, 3, 1, "");
  const char *outcome = f_str(&f, "outcome", NULL), *after = f_str(&f, "after", NULL);
  int limit = f_limit(&f);
  lop *o = list_op(L, st, RD__OP_JOB_ITEMS);
  o->op.a.job_items.id = id;
  o->op.a.job_items.outcome = outcome;
  o->op.a.job_items.after = after;
  o->op.a.job_items.limit = limit;
  return lop_run(L, o, k_list);
}

static int k_job_mark(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_store_t *st = o->op.st;
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  int64_t n = o->out.n;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  return ack_count(L, st, n); /* "started" must be durable before the item is acted on */
}

static int l_job_mark(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_createtable(L, 0, 1); /* the ids as a field, for f_strings */
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "items");
  fields fi = args_table(L, lua_gettop(L), 0, "");
  fi.arg = 3;
  size_t n;
  const char *const *items = f_strings(&fi, "items", &n);
  fields f = args_table(L, 4, 0, "");
  rd_job_item_t m = {
    .outcome = f_reqstr(&f, "outcome"), .execution_id = f_str(&f, "execution_id", NULL),
    .error = f_str(&f, "error", NULL), .code = f_str(&f, "code", NULL),
    .runner = f_str(&f, "runner", NULL),
  };
  lop *o = lop_new(L, st, RD__OP_JOB_MARK);
  o->in.job.mark = m;
  o->op.a.job_mark.id = id;
  o->op.a.job_mark.items = items;
  o->op.a.job_mark.n = n;
  o->op.a.job_mark.m = &o->in.job.mark;
  o->op.a.job_mark.n_changed = &o->out.n;
  return lop_run(L, o, k_job_mark);
}

static int k_job_own(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  int ok = o->out.ok;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, ok);
  return 1;
}

static int l_job_own(lua_State *L) {
  static const char *const whats[] = {"take", "renew", "release", "done", "cancel", NULL};
  static const int codes[] = {RD_JOB_TAKE, RD_JOB_RENEW, RD_JOB_RELEASE, RD_JOB_DONE,
                              RD_JOB_CANCEL};
  rd_store_t *st = check_store(L);
  const char *id = check_id(L, 2);
  int what = codes[luaL_checkoption(L, 3, NULL, whats)];
  const char *owner = luaL_optstring(L, 4, NULL);
  double ttl = luaL_optnumber(L, 5, 0);
  lop *o = lop_new(L, st, RD__OP_JOB_OWN);
  o->op.a.job_own.id = id;
  o->op.a.job_own.what = what;
  o->op.a.job_own.owner = owner;
  o->op.a.job_own.ttl = ttl;
  o->op.a.job_own.ok = &o->out.ok;
  return lop_run(L, o, k_job_own);
}

static int l_health(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  int64_t scenario = f_int(&f, "scenario", 0, NULL);
  double since = f_num(&f, "since", NULL);
  rd_range top_range = {1, RD_HEALTH_TOP_MAX, 0, 1, NULL};
  int top = (int)f_ranged(&f, "limit", &top_range, 5);
  luaL_checkstack(L, 4, "store");
  lop *o = lop_new(L, st, RD__OP_HEALTH);
  o->op.a.health.scenario_id = scenario;
  o->op.a.health.since = since;
  o->op.a.health.top = top;
  o->op.a.health.out = &o->out.h;
  return lop_run(L, o, k_health);
}

/* ---- new work, and a test hook ---------------------------------------------------- */

static int k_wait_work(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  rd_wait_t *w = (rd_wait_t *)ctx;
  int st = w->status;
  rd_wait_release(w);
  if (st == RD_ECANCELED) return rd__wait_canceled(L);
  lua_pushboolean(L, st == 0);
  return 1;
}

/* st:wait_work{timeout = seconds?} -> true (items may have become claimable)
 * | false (the timeout passed first). See rd_store_wait_work. */
static int l_wait_work(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  double timeout = f_ranged(&f, "timeout", &rd__range_seconds, 0);
  rd__wait_check(L);
  rd_wait_t *w;
  rd_err err = {0};
  if (rd_store_wait_work(st, (uint64_t)ceil(timeout * 1000), &w, &err))
    return rd__lua_pusherr(L, &err);
  return rd__await(L, w, k_wait_work);
}

/* Test hooks (PostgreSQL; "unsupported" on SQLite):
 * st:_sleep(seconds) -> true: a query that takes that long on the server,
 * to show that other tasks run while a store call is in flight;
 * st:_setting(name) -> value: a setting of the store's own session. */
static int l_sleep(lua_State *L) {
  rd_store_t *st = check_store(L);
  double s = luaL_checknumber(L, 2);
  lop *o = lop_new(L, st, RD__OP_PROBE);
  o->op.a.probe.sleep = s;
  return lop_run(L, o, k_true);
}

static int k_setting(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  char v[sizeof o->out.ids.a];
  memcpy(v, o->out.ids.a, sizeof v);
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  lua_pushstring(L, v);
  return 1;
}

static int l_setting(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *name = luaL_checkstring(L, 2);
  lop *o = lop_new(L, st, RD__OP_PROBE);
  o->op.a.probe.setting = name;
  o->op.a.probe.out = o->out.ids.a;
  o->op.a.probe.outlen = sizeof o->out.ids.a;
  return lop_run(L, o, k_setting);
}

/* ---- the ledger of remote mutations (src/store/ledger.h) ---------------------- */

static int64_t check_pid(const fields *f) {
  int64_t pid = f_int(f, "pid", -1, NULL);
  if (pid < 0) bad(f, "pid", "process id");
  return pid;
}

/* take: true | false, {why, host, pid, since, expiry} */
static int k_ledger_take(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lop *o = lop_resumed(L, ctx);
  rd_err err = {0};
  int r = rd__op_finish(&o->op, &err);
  rd__ledger_hold h = o->out.hold;
  rd_wait_release(&o->op.base);
  if (r) return rd__lua_pusherr(L, &err);
  lua_pushboolean(L, h.taken);
  if (h.taken) return 1;
  lua_createtable(L, 0, 5);
  set_str(L, "why", h.why);
  if (h.host[0]) set_str(L, "host", h.host);
  if (h.pid) set_int(L, "pid", h.pid);
  set_num(L, "since", h.since);
  set_num(L, "expiry", h.expiry);
  return 2;
}

/* st:ledger_take{source, item, action, owner, host, pid, rule?, ttl}
 * -> true | false, {why = "leased" | "unknown" | "done", host, pid, since,
 * expiry} | nil, msg, code */
static int l_ledger_take(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd__ledger_take t = {
    .source = f_reqstr(&f, "source"), .item = f_reqstr(&f, "item"),
    .action = f_reqstr(&f, "action"), .owner = f_reqstr(&f, "owner"),
    .host = f_reqstr(&f, "host"), .rule = f_str(&f, "rule", NULL), .pid = check_pid(&f),
    .ttl = check_ttl(L, &f, 2),
  };
  lop *o = lop_new(L, st, RD__OP_LEDGER_TAKE);
  o->in.take = t;
  o->op.a.ledger_take.t = &o->in.take;
  o->op.a.ledger_take.out = &o->out.hold;
  return lop_run(L, o, k_ledger_take);
}

/* st:ledger_renew(owner, ttl) -> leases renewed */
static int l_ledger_renew(lua_State *L) {
  rd_store_t *st = check_store(L);
  const char *owner = luaL_checkstring(L, 2);
  double ttl = check_ttl(L, NULL, 3);
  lop *o = lop_new(L, st, RD__OP_LEDGER_RENEW);
  o->op.a.ledger_renew.owner = owner;
  o->op.a.ledger_renew.ttl = ttl;
  o->op.a.ledger_renew.n = &o->out.n;
  return lop_run(L, o, k_count);
}

/* st:ledger_settle{source, item, action, owner?, outcome, host, pid, code?,
 * rule?, execution?, message?} -> leases ended (0 or 1) */
static int l_ledger_settle(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 0, "");
  rd__ledger_settle l = {
    .source = f_reqstr(&f, "source"), .item = f_reqstr(&f, "item"),
    .action = f_reqstr(&f, "action"), .owner = f_str(&f, "owner", NULL),
    .outcome = f_reqstr(&f, "outcome"), .host = f_reqstr(&f, "host"), .pid = check_pid(&f),
    .code = f_str(&f, "code", NULL), .rule = f_str(&f, "rule", NULL),
    .execution = f_str(&f, "execution", NULL), .message = f_str(&f, "message", NULL),
  };
  lop *o = lop_new(L, st, RD__OP_LEDGER_SETTLE);
  o->in.settle = l;
  o->op.a.ledger_settle.s = &o->in.settle;
  o->op.a.ledger_settle.n = &o->out.n;
  return lop_run(L, o, k_count);
}

/* st:ledger_events{since?, source?, after?, limit?} -> {event...} in id order */
static int l_ledger_events(lua_State *L) {
  rd_store_t *st = check_store(L);
  fields f = args_table(L, 2, 1, "");
  rd__ledger_filter flt = {
    .since = f_num(&f, "since", NULL), .source = f_str(&f, "source", NULL),
    .after = f_int(&f, "after", 0, NULL), .limit = f_limit(&f),
  };
  lop *o = list_op(L, st, RD__OP_LEDGER_EVENTS);
  o->in.events = flt;
  o->op.a.ledger_events.f = &o->in.events;
  return lop_run(L, o, k_list);
}

/* ---- registration ------------------------------------------------------------ */

static const luaL_Reg store_methods[] = {
  {"close", l_store_close},
  {"job_create", l_job_create},
  {"job_get", l_job_get},
  {"job_list", l_job_list},
  {"job_items", l_job_items},
  {"job_mark", l_job_mark},
  {"job_own", l_job_own},
  {"path", l_store_path},
  {"backend", l_store_backend},
  {"scenario_create", l_scenario_create},
  {"scenario_get", l_scenario_get},
  {"scenario_list", l_scenario_list},
  {"scenario_update", l_scenario_update},
  {"exec_get", l_exec_get},
  {"exec_list", l_exec_list},
  {"exec_update", l_exec_update},
  {"exec_delete", l_exec_delete},
  {"record", l_record},
  {"dlq_get", l_dlq_get},
  {"dlq_list", l_dlq_list},
  {"dlq_count", l_dlq_count},
  {"dlq_patch", l_dlq_patch},
  {"dlq_delete", l_dlq_delete},
  {"dlq_resolve", l_dlq_resolve},
  {"dlq_groups", l_dlq_groups},
  {"dlq_logs", l_dlq_logs},
  {"claim", l_claim},
  {"renew", l_renew},
  {"release", l_release},
  {"retry_done", l_retry_done},
  {"health", l_health},
  {"ledger_take", l_ledger_take},
  {"ledger_renew", l_ledger_renew},
  {"ledger_settle", l_ledger_settle},
  {"ledger_events", l_ledger_events},
  {"wait_work", l_wait_work},
  {"_sleep", l_sleep},
  {"_setting", l_setting},
  {NULL, NULL},
};

static const luaL_Reg store_meta[] = {
  {"__gc", l_store_close},
  {"__close", l_store_close},
  {"__tostring", l_store_tostring},
  {"__index", NULL},
  {NULL, NULL},
};

/* core.store_schema_version() -> the schema version this build writes */
static int l_store_schema_version(lua_State *L) {
  lua_pushinteger(L, rd_store_schema_version());
  return 1;
}

static const luaL_Reg store_funcs[] = {
  {"store_open", l_store_open},
  {"store_schema_version", l_store_schema_version},
  {"store_default_path", l_store_default_path},
  {NULL, NULL},
};

void rd__open_store(lua_State *L) {
  if (luaL_newmetatable(L, RD_MT_STORE)) {
    luaL_setfuncs(L, store_meta, 0);
    luaL_newlib(L, store_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, store_funcs, 0);
}

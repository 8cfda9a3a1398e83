/* Incomplete executions (DLQ items) and their retry logs on PostgreSQL:
 * recording a run, reading, patching, deleting. Leases and the record of a
 * retry are in pg_retry.c. Columns, binders and readers come from
 * RD_DLQ_ITEM_FIELDS and RD_DLQ_LOG_FIELDS (record.c). Each operation is one
 * transaction: its statements go in one pipeline segment. */
#include "store/pg_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const rd__record *const ITEM = &rd__rec_item, *const LOG = &rd__rec_log;

static int nomem(rd_err *err) { return rd_err_set(err, RD_ENOMEM, "store: out of memory"); }

static int stopped(rd_err *err) { return rd_err_set(err, RD_ECANCELED, "store: listing stopped"); }

/* ---- record --------------------------------------------------------------------- */

static int q_item_insert(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_insert(q, ITEM, 0);
}

int rd__pg_item_insert(rd__pgreq *r, const rd_dlq_item_t *d, const char *id, const char *exec_id,
                       rd_err *err) {
  int e = rd__pg_add_built(r, q_item_insert, NULL, err);
  if (e) return e;
  rd__pg_rec(r, ITEM, d);
  rd__pg_text(r, ":id", id);
  if (isnan(d->created)) rd__pg_real(r, ":created", rd__st_now());
  rd__pg_text(r, ":execution_id", exec_id);
  return 0;
}

static int record_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_exec_t *exec = op->a.record.exec;
  const rd_dlq_item_t *dlq = op->a.record.dlq;
  char *eid = r->ids[0], *did = r->ids[1];
  int e = rd__pick_id(exec->id, eid, "execution", err);
  if (!e && dlq) e = rd__pick_id(dlq->id, did, "incomplete execution", err);
  if (!e) e = rd__pg_exec_put(r, exec, eid, dlq ? did : NULL, err);
  if (!e && dlq) e = rd__pg_item_insert(r, dlq, did, eid, err);
  return e;
}

static int record_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.record.exec_id) memcpy(op->a.record.exec_id, r->ids[0], RD_STORE_ID_LEN + 1);
  if (op->a.record.dlq_id && op->a.record.dlq)
    memcpy(op->a.record.dlq_id, r->ids[1], RD_STORE_ID_LEN + 1);
  return 0;
}

const rd__pgop rd__pg_record = {record_build, record_read};

/* ---- get, list, count --------------------------------------------------------------- */

static int q_item_get(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_get(q, ITEM);
}

static int get_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_item_get, NULL, err);
  if (!e) rd__pg_text(r, ":id", op->a.dlq_get.id);
  return e;
}

static int get_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_item(err, op->a.dlq_get.id);
  rd_dlq_item_t d;
  rd__pg_read(r, 0, 0, ITEM, 1, &d);
  rd_dlq_item_t *copy = rd__rec_dup(ITEM, &d);
  if (!copy) return nomem(err);
  *op->a.dlq_get.out = copy;
  return 0;
}

const rd__pgop rd__pg_dlq_get = {get_build, get_read};

static int q_list(rd_buf *q, const void *ud) {
  int r = rd__sql_select(q, ITEM, 0);
  if (!r) r = rd__sql_dlq_filter(q, &rd__dialect_pg, ud, 1);
  return r ? r : rd__buf_adds(q, " ORDER BY id LIMIT :limit");
}

static int list_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_dlq_filter_t *f = op->a.dlq_list.f;
  int limit, e = rd__st_limit(f->limit, &limit, err);
  if (!e) e = rd__pg_add_built(r, q_list, f, err);
  if (e) return e;
  rd__bind_dlq_filter(&rd__pg_binder, r, f);
  rd__pg_int(r, ":limit", limit);
  return 0;
}

static int list_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    rd_dlq_item_t d;
    rd__pg_read(r, 0, i, ITEM, 0, &d);
    if (op->a.dlq_list.cb(&d, op->a.dlq_list.ud)) return stopped(err);
  }
  return 0;
}

const rd__pgop rd__pg_dlq_list = {list_build, list_read};

static int q_count(rd_buf *q, const void *ud) {
  int r = rd__buf_adds(q, "SELECT count(*) FROM dlq_item");
  return r ? r : rd__sql_dlq_filter(q, &rd__dialect_pg, ud, 0);
}

static int count_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_count, op->a.dlq_count.f, err);
  if (!e) rd__bind_dlq_filter(&rd__pg_binder, r, op->a.dlq_count.f);
  return e;
}

static int count_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  *op->a.dlq_count.n = strtoll(rd__pg_value(r, 0, 0, 0), NULL, 10);
  return 0;
}

const rd__pgop rd__pg_dlq_count = {count_build, count_read};

/* ---- logs ------------------------------------------------------------------------------ */

static int q_logs(rd_buf *q, const void *ud) { return rd__sql_logs(q, ud); }

static int logs_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_log_filter_t *f = op->a.dlq_logs.f;
  int limit, e = rd__st_limit(f->limit, &limit, err);
  if (!e) e = rd__pg_add(r, "SELECT 1 FROM dlq_item WHERE id = :id", err);
  if (e) return e;
  rd__pg_text(r, ":id", op->a.dlq_logs.id);
  e = rd__pg_add_built(r, q_logs, f, err);
  if (!e) rd__bind_logs(&rd__pg_binder, r, op->a.dlq_logs.id, f, limit);
  return e;
}

static int logs_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_item(err, op->a.dlq_logs.id);
  for (int i = 0, n = rd__pg_rows(r, 1); i < n; i++) {
    rd_dlq_log_t l;
    rd__pg_read(r, 1, i, LOG, 1, &l);
    if (op->a.dlq_logs.cb(&l, op->a.dlq_logs.ud)) return stopped(err);
  }
  return 0;
}

const rd__pgop rd__pg_dlq_logs = {logs_build, logs_read};

/* ---- patch ------------------------------------------------------------------------------
 * The item is read and locked first, so the update that follows in the same
 * transaction sees the lease the read saw: not found, leased (conflict) or
 * patched, never in between. */

static int patch_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  double now = rd__st_now();
  int e = rd__pg_add(r,
                     "SELECT " RD__PG_LEASED ", lease_owner FROM dlq_item WHERE id = :id"
                     " FOR UPDATE",
                     err);
  if (e) return e;
  rd__pg_text(r, ":id", op->a.dlq_patch.id);
  rd__pg_real(r, ":now", now);
  e = rd__pg_add(r,
                 "UPDATE dlq_item SET blueprint = coalesce(:bp, blueprint),"
                 " failer = CASE WHEN :failer > 0 THEN :failer ELSE failer END"
                 " WHERE id = :id AND NOT " RD__PG_LEASED,
                 err);
  if (e) return e;
  rd__pg_text(r, ":bp", op->a.dlq_patch.blueprint);
  rd__pg_int(r, ":failer", op->a.dlq_patch.failer);
  rd__pg_text(r, ":id", op->a.dlq_patch.id);
  rd__pg_real(r, ":now", now);
  return 0;
}

static int patch_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_item(err, op->a.dlq_patch.id);
  const char *leased = rd__pg_value(r, 0, 0, 0);
  if (leased && leased[0] == 't')
    return rd__err_leased(err, op->a.dlq_patch.id, rd__pg_value(r, 0, 0, 1));
  return 0;
}

const rd__pgop rd__pg_dlq_patch = {patch_build, patch_read};

/* ---- delete ------------------------------------------------------------------------------ */

int rd__pg_sel_sql(rd_buf *q, const rd_dlq_sel_t *sel) {
  int r = 0;
  if (sel->scenario_id) r = rd__buf_adds(q, " AND scenario_id = :scenario");
  if (!r && !sel->all)
    r = rd__buf_adds(q, " AND id IN (SELECT json_array_elements_text(:ids::json))");
  if (!r && sel->except && sel->n_except > 0)
    r = rd__buf_adds(q, " AND id NOT IN (SELECT json_array_elements_text(:except::json))");
  if (!r && sel->fingerprint) r = rd__buf_adds(q, " AND fingerprint = :fingerprint");
  return r;
}

void rd__pg_sel_bind(rd__pgreq *r, const rd_dlq_sel_t *sel) {
  rd__pg_int(r, ":scenario", sel->scenario_id);
  rd__pg_text(r, ":fingerprint", sel->fingerprint);
  rd__pg_strings(r, ":ids", sel->ids, sel->ids ? sel->n_ids : 0);
  rd__pg_strings(r, ":except", sel->except, sel->except ? sel->n_except : 0);
}

static int q_locked(rd_buf *q, const void *ud) {
  int r = rd__buf_adds(q, "SELECT id, " RD__PG_LEASED " FROM dlq_item WHERE true");
  if (!r) r = rd__pg_sel_sql(q, ud);
  return r ? r : rd__buf_adds(q, " ORDER BY id FOR UPDATE");
}

static int q_missing(rd_buf *q, const void *ud) {
  const rd_dlq_sel_t *sel = ud;
  int r = rd__buf_adds(q, "SELECT DISTINCT v FROM json_array_elements_text(:ids::json) AS v"
                          " WHERE v NOT IN (SELECT id FROM dlq_item WHERE true");
  if (!r && sel->scenario_id) r = rd__buf_adds(q, " AND scenario_id = :scenario");
  if (!r && sel->fingerprint) r = rd__buf_adds(q, " AND fingerprint = :fingerprint");
  if (!r) r = rd__buf_adds(q, ")");
  if (!r && sel->except && sel->n_except > 0)
    r = rd__buf_adds(q, " AND v NOT IN (SELECT json_array_elements_text(:except::json))");
  return r ? r : rd__buf_adds(q, " ORDER BY v");
}

static int q_delete(rd_buf *q, const void *ud) {
  int r = rd__buf_adds(q, "DELETE FROM dlq_item WHERE NOT " RD__PG_LEASED);
  return r ? r : rd__pg_sel_sql(q, ud);
}

static int q_resolve(rd_buf *q, const void *ud) {
  int r = rd__buf_adds(q, "UPDATE dlq_item SET resolved = true WHERE NOT resolved"
                          " AND NOT " RD__PG_LEASED);
  return r ? r : rd__pg_sel_sql(q, ud);
}

/* Delete and resolve (one body, as on SQLite): 1. the selected items,
 * locked (a claim skips them now), with their lease; 2. requested ids that
 * do not exist (in the scenario / with the fingerprint, if given); 3. the
 * unleased ones go, with their logs (ON DELETE CASCADE), or are marked
 * resolved. */
static int delete_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_dlq_sel_t *sel = op->a.dlq_delete.sel;
  double now = rd__st_now();
  int e = rd__pg_add_built(r, q_locked, sel, err);
  if (e) return e;
  rd__pg_sel_bind(r, sel);
  rd__pg_real(r, ":now", now);
  if (!sel->all) {
    e = rd__pg_add_built(r, q_missing, sel, err);
    if (e) return e;
    rd__pg_sel_bind(r, sel);
  }
  e = rd__pg_add_built(r, op->kind == RD__OP_DLQ_RESOLVE ? q_resolve : q_delete, sel, err);
  if (e) return e;
  rd__pg_sel_bind(r, sel);
  rd__pg_real(r, ":now", now);
  return 0;
}

/* Report each row of statement qi (its first column an id) for which
 * `only_leased` (its second column true) or every row. */
static int report(rd__pgreq *r, rd__op *op, int qi, int leased, int code, const char *msg,
                  rd_err *err) {
  rd_dlq_error_cb cb = op->a.dlq_delete.on_error;
  for (int i = 0, n = rd__pg_rows(r, qi); cb && i < n; i++) {
    const char *l = leased ? rd__pg_value(r, qi, i, 1) : "t";
    if (!l || l[0] != 't') continue;
    if (cb(rd__pg_value(r, qi, i, 0), code, msg, op->a.dlq_delete.ud))
      return rd_err_set(err, RD_ECANCELED, "store: deletion stopped");
  }
  return 0;
}

static int delete_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  int last = r->nq - 1;
  int e = report(r, op, 0, 1, RD_ECONFLICT, RD__MSG_BEING_RETRIED, err);
  if (!e && r->nq == 3) e = report(r, op, 1, 0, RD_ENOT_FOUND, RD__MSG_NOT_FOUND, err);
  if (!e && op->a.dlq_delete.deleted) *op->a.dlq_delete.deleted = rd__pg_changed(r, last);
  return e;
}

/* DLQ_DELETE and DLQ_RESOLVE */
const rd__pgop rd__pg_dlq_delete = {delete_build, delete_read};

/* ---- groups ----------------------------------------------------------------------------
 * One statement, so the groups and their examples come from one snapshot:
 * the groups (biggest first; NULL, items without a fingerprint, sorts first
 * as on SQLite), each with its first RD_GROUP_EXAMPLES ids and their causes
 * from a lateral subquery on the same filter. */

static int q_groups(rd_buf *q, const void *ud) {
  const rd_dlq_filter_t *f = ud;
  int r = rd__buf_adds(q, "SELECT g.fingerprint, g.n, g.first, g.last, g.scenarios,"
                          " x.ids[1], x.ids[2], x.ids[3], x.causes[1], x.causes[2], x.causes[3]"
                          " FROM (SELECT fingerprint, count(*) AS n, min(created) AS first,"
                          " max(created) AS last,"
                          " array_to_string(array_agg(DISTINCT scenario_id), ',') AS scenarios"
                          " FROM dlq_item");
  if (!r) r = rd__sql_dlq_filter(q, &rd__dialect_pg, f, 1);
  if (!r)
    r = rd__buf_adds(q, " GROUP BY fingerprint ORDER BY n DESC, fingerprint NULLS FIRST"
                        " LIMIT :limit) g CROSS JOIN LATERAL (SELECT array_agg(id ORDER BY id)"
                        " AS ids, array_agg(cause ORDER BY id) AS causes FROM (SELECT id, cause"
                        " FROM dlq_item");
  if (!r) r = rd__sql_dlq_filter(q, &rd__dialect_pg, f, 1);
  return r ? r
           : rd__buf_adds(q, " AND (fingerprint = g.fingerprint"
                             " OR (fingerprint IS NULL AND g.fingerprint IS NULL))"
                             " ORDER BY id LIMIT 3) e) x"
                             " ORDER BY g.n DESC, g.fingerprint NULLS FIRST");
}

static int groups_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  rd_dlq_filter_t f = *op->a.dlq_groups.f;
  f.after = NULL; /* groups are not paged */
  int limit, e = rd__st_limit(f.limit, &limit, err);
  if (!e) e = rd__pg_add_built(r, q_groups, &f, err);
  if (e) return e;
  rd__bind_dlq_filter(&rd__pg_binder, r, &f);
  rd__pg_int(r, ":limit", limit);
  return 0;
}

static int groups_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  _Static_assert(RD_GROUP_EXAMPLES == 3, "q_groups reads 3 examples");
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    const char *v;
    rd_group_t g = {
      .fingerprint = rd__pg_value(r, 0, i, 0),
      .count = (v = rd__pg_value(r, 0, i, 1)) ? strtoll(v, NULL, 10) : 0,
      .first = (v = rd__pg_value(r, 0, i, 2)) ? strtod(v, NULL) : NAN,
      .last = (v = rd__pg_value(r, 0, i, 3)) ? strtod(v, NULL) : NAN,
    };
    rd__group_scenarios(&g, rd__pg_value(r, 0, i, 4));
    for (int k = 0; k < RD_GROUP_EXAMPLES; k++) {
      const char *id = rd__pg_value(r, 0, i, 5 + k), *c = rd__pg_value(r, 0, i, 8 + k);
      if (!id || strlen(id) > RD_STORE_ID_LEN) continue;
      g.examples[g.n_examples++] = id;
      if (!g.cause) g.cause = c;
    }
    if (op->a.dlq_groups.cb(&g, op->a.dlq_groups.ud)) return stopped(err);
  }
  return 0;
}

const rd__pgop rd__pg_dlq_groups = {groups_build, groups_read};

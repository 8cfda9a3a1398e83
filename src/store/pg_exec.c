/* Executions on PostgreSQL: the statements and how their results are read.
 * Columns, binders and readers come from RD_EXEC_FIELDS (record.c). */
#include "store/pg_int.h"


static const rd__record *const R = &rd__rec_exec;

static int q_put(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_insert(q, R, 1);
}

int rd__pg_exec_put(rd__pgreq *r, const rd_exec_t *e, const char *id, const char *dlq_id,
                    rd_err *err) {
  int x = rd__pg_add_built(r, q_put, NULL, err);
  if (x) return x;
  rd__pg_rec(r, R, e);
  rd__pg_text(r, ":id", id);
  if (dlq_id) rd__pg_text(r, ":dlq_id", dlq_id);
  return 0;
}

/* ---- get, list ---------------------------------------------------------------- */

static int q_get(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_get(q, R);
}

static int get_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_get, NULL, err);
  if (!e) rd__pg_text(r, ":id", op->a.exec_get.id);
  return e;
}

static int get_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_exec(err, op->a.exec_get.id);
  rd_exec_t e;
  rd__pg_read(r, 0, 0, R, 1, &e);
  rd_exec_t *copy = rd__rec_dup(R, &e);
  if (!copy) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  *op->a.exec_get.out = copy;
  return 0;
}

const rd__pgop rd__pg_exec_get = {get_build, get_read};

static int q_list(rd_buf *q, const void *ud) { return rd__sql_exec_list(q, ud); }

static int list_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_exec_filter_t *f = op->a.exec_list.f;
  int limit, e = rd__st_limit(f->limit, &limit, err);
  if (!e) e = rd__pg_add_built(r, q_list, f, err);
  if (!e) rd__bind_exec_list(&rd__pg_binder, r, f, limit);
  return e;
}

static int list_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    rd_exec_t e;
    rd__pg_read(r, 0, i, R, 0, &e);
    if (op->a.exec_list.cb(&e, op->a.exec_list.ud))
      return rd_err_set(err, RD_ECANCELED, "store: listing stopped");
  }
  return 0;
}

const rd__pgop rd__pg_exec_list = {list_build, list_read};

/* ---- update, delete --------------------------------------------------------------- */

static int q_update(rd_buf *q, const void *ud) {
  (void)ud;
  int rc = rd__sql_update(q, R);
  return rc ? rc : rd__buf_adds(q, " WHERE id = :id");
}

static int update_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_update, NULL, err);
  if (e) return e;
  rd__pg_rec(r, R, op->a.exec_update.rec);
  rd__pg_int(r, ":mask", op->a.exec_update.mask);
  rd__pg_text(r, ":id", op->a.exec_update.id);
  return 0;
}

static int update_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  return rd__pg_changed(r, 0) ? 0 : rd__err_no_exec(err, op->a.exec_update.id);
}

const rd__pgop rd__pg_exec_update = {update_build, update_read};

static int delete_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add(r, "DELETE FROM execution WHERE id = :id", err);
  if (!e) rd__pg_text(r, ":id", op->a.exec_delete.id);
  return e;
}

static int delete_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  return rd__pg_changed(r, 0) ? 0 : rd__err_no_exec(err, op->a.exec_delete.id);
}

const rd__pgop rd__pg_exec_delete = {delete_build, delete_read};

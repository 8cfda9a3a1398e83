/* Executions: one row per run (or retry) of a scenario; run_data and error
 * are JSON text the Lua layer decodes. Columns, binders and readers come
 * from RD_EXEC_FIELDS (record.c). */
#include "store/sqlite_int.h"

#include "core/ids.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

static const rd__record *const R = &rd__rec_exec;

static int q_put(rd_buf *q) { return rd__sql_insert(q, R, 1); }
static int q_get(rd_buf *q) { return rd__sql_get(q, R); }
static int q_update(rd_buf *q) {
  int rc = rd__sql_update(q, R);
  return rc ? rc : rd__buf_adds(q, " WHERE id = :id");
}

int rd__exec_put(rd_store_t *st, const rd_exec_t *e, const char *id, const char *dlq_id,
                 rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_EXEC_PUT, q_put, &s, err);
  if (r) return r;
  rd__sq_rec_bind(s, R, e);
  rd__bind_text(s, ":id", id);
  if (dlq_id) rd__bind_text(s, ":dlq_id", dlq_id);
  return rd__st_exec(st, s, "cannot write an execution to", err);
}

int rd__sq_exec_get(rd_store_t *st, const char *id, rd_exec_t **out, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_EXEC_GET, q_get, &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rd_exec_t e;
    rd__sq_rec_read(s, R, 1, &e);
    rd_exec_t *copy = rd__rec_dup(R, &e);
    if (copy) *out = copy;
    else r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  } else if (rc == SQLITE_DONE) {
    r = rd__err_no_exec(err, id);
  } else {
    r = rd__st_fail(st, rc, "cannot read", err);
  }
  sqlite3_reset(s);
  return r;
}

int rd__sq_exec_list(rd_store_t *st, const rd_exec_filter_t *f, rd_exec_cb cb, void *ud,
                       rd_err *err) {
  int limit;
  int r = rd__st_limit(f->limit, &limit, err);
  if (r) return r;
  /* One cached statement per combination of filters (query.c). */
  rd_buf q = {0};
  r = rd__sql_exec_list(&q, f);
  sqlite3_stmt *s = NULL;
  if (r) r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  else r = rd__st_prep(st, q.data, &s, err);
  rd__buf_free(&q);
  if (r) return r;
  rd__bind_exec_list(&rd__sq_binder, s, f, limit);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_exec_t e;
    rd__sq_rec_read(s, R, 0, &e);
    if (cb(&e, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd__sq_exec_update(rd_store_t *st, const char *id, const rd_exec_t *f, unsigned mask,
                         rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_slot(st, RD__Q_EXEC_UPDATE, q_update, &s, err);
  if (!r) {
    rd__sq_rec_bind(s, R, f);
    rd__bind_int(s, ":mask", mask);
    rd__bind_text(s, ":id", id);
    r = rd__st_exec(st, s, "cannot update an execution in", err);
  }
  if (!r && rd__st_changes(st) == 0)
    r = rd__err_no_exec(err, id);
  return rd__st_end(st, r, err);
}

int rd__sq_exec_delete(rd_store_t *st, const char *id, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st, "DELETE FROM execution WHERE id = :id", &s, err);
  if (!r) {
    rd__bind_text(s, ":id", id);
    r = rd__st_exec(st, s, "cannot delete an execution from", err);
  }
  if (!r && rd__st_changes(st) == 0)
    r = rd__err_no_exec(err, id);
  return rd__st_end(st, r, err);
}

/* Scenarios: name, blueprint (JSON text) and whether failed runs are kept as
 * incomplete executions. Columns, binders and readers come from
 * RD_SCENARIO_FIELDS (record.c). */
#include "store/sqlite_int.h"

#include <stdlib.h>

static const rd__record *const R = &rd__rec_scenario;

static int q_insert(rd_buf *q) { return rd__sql_insert(q, R, 0); }
static int q_get(rd_buf *q) { return rd__sql_get(q, R); }
static int q_list(rd_buf *q) {
  int rc = rd__sql_select(q, R, 1);
  return rc ? rc : rd__buf_adds(q, " ORDER BY id");
}
static int q_update(rd_buf *q) {
  int rc = rd__sql_update(q, R);
  return rc ? rc : rd__buf_adds(q, ", updated = :updated WHERE id = :id");
}

int rd__sq_scenario_create(rd_store_t *st, const rd_scenario_t *sc, int64_t *id, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_slot(st, RD__Q_SCENARIO_INSERT, q_insert, &s, err);
  if (!r) {
    double now = rd__st_now();
    rd__sq_rec_bind(s, R, sc);
    rd__bind_double(s, ":created", now);
    rd__bind_double(s, ":updated", now);
    r = rd__st_exec(st, s, "cannot write a scenario to", err);
  }
  int64_t newid = sqlite3_last_insert_rowid(st->sq->db);
  r = rd__st_end(st, r, err);
  if (!r && id) *id = newid;
  return r;
}

int rd__sq_scenario_get(rd_store_t *st, int64_t id, rd_scenario_t **out, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_SCENARIO_GET, q_get, &s, err);
  if (r) return r;
  rd__bind_int(s, ":id", id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rd_scenario_t sc;
    rd__sq_rec_read(s, R, 1, &sc);
    rd_scenario_t *copy = rd__rec_dup(R, &sc);
    if (copy) *out = copy;
    else r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  } else if (rc == SQLITE_DONE) {
    r = rd__err_no_scenario(err, id);
  } else {
    r = rd__st_fail(st, rc, "cannot read", err);
  }
  sqlite3_reset(s);
  return r;
}

int rd__sq_scenario_list(rd_store_t *st, rd_scenario_cb cb, void *ud, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_SCENARIO_LIST, q_list, &s, err);
  if (r) return r;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_scenario_t sc;
    rd__sq_rec_read(s, R, 1, &sc);
    if (cb(&sc, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd__sq_scenario_update(rd_store_t *st, int64_t id, const rd_scenario_t *f, unsigned mask,
                             rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_slot(st, RD__Q_SCENARIO_UPDATE, q_update, &s, err);
  if (!r) {
    rd__sq_rec_bind(s, R, f);
    rd__bind_int(s, ":mask", mask);
    rd__bind_double(s, ":updated", rd__st_now());
    rd__bind_int(s, ":id", id);
    r = rd__st_exec(st, s, "cannot update a scenario in", err);
  }
  if (!r && rd__st_changes(st) == 0)
    r = rd__err_no_scenario(err, id);
  return rd__st_end(st, r, err);
}

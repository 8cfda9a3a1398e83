/* Scenarios on PostgreSQL: the statements and how their results are read.
 * Columns, binders and readers come from RD_SCENARIO_FIELDS (record.c). */
#include "store/pg_int.h"

#include <stdlib.h>

static const rd__record *const R = &rd__rec_scenario;

static int listing_stopped(rd_err *err) {
  return rd_err_set(err, RD_ECANCELED, "store: listing stopped");
}

/* ---- create ---------------------------------------------------------------- */

static int q_insert(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_insert_auto(q, R);
}

static int create_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_insert, NULL, err);
  if (e) return e;
  double now = rd__st_now();
  rd__pg_rec(r, R, op->a.scenario_create.rec);
  rd__pg_real(r, ":created", now);
  rd__pg_real(r, ":updated", now);
  return 0;
}

static int create_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.scenario_create.id)
    *op->a.scenario_create.id = strtoll(rd__pg_value(r, 0, 0, 0), NULL, 10);
  return 0;
}

const rd__pgop rd__pg_scenario_create = {create_build, create_read};

/* ---- get, list ---------------------------------------------------------------- */

static int q_get(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_get(q, R);
}

static int get_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_get, NULL, err);
  if (!e) rd__pg_int(r, ":id", op->a.scenario_get.id);
  return e;
}

static int get_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_scenario(err, op->a.scenario_get.id);
  rd_scenario_t sc;
  rd__pg_read(r, 0, 0, R, 1, &sc);
  rd_scenario_t *copy = rd__rec_dup(R, &sc);
  if (!copy) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  *op->a.scenario_get.out = copy;
  return 0;
}

const rd__pgop rd__pg_scenario_get = {get_build, get_read};

static int q_list(rd_buf *q, const void *ud) {
  (void)ud;
  int rc = rd__sql_select(q, R, 1);
  return rc ? rc : rd__buf_adds(q, " ORDER BY id");
}

static int list_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  (void)op;
  return rd__pg_add_built(r, q_list, NULL, err);
}

static int list_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    rd_scenario_t sc;
    rd__pg_read(r, 0, i, R, 1, &sc);
    if (op->a.scenario_list.cb(&sc, op->a.scenario_list.ud)) return listing_stopped(err);
  }
  return 0;
}

const rd__pgop rd__pg_scenario_list = {list_build, list_read};

/* ---- update ------------------------------------------------------------------- */

static int q_update(rd_buf *q, const void *ud) {
  (void)ud;
  int rc = rd__sql_update(q, R);
  return rc ? rc : rd__buf_adds(q, ", updated = :updated WHERE id = :id");
}

static int update_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_update, NULL, err);
  if (e) return e;
  rd__pg_rec(r, R, op->a.scenario_update.rec);
  rd__pg_int(r, ":mask", op->a.scenario_update.mask);
  rd__pg_real(r, ":updated", rd__st_now());
  rd__pg_int(r, ":id", op->a.scenario_update.id);
  return 0;
}

static int update_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  return rd__pg_changed(r, 0) ? 0 : rd__err_no_scenario(err, op->a.scenario_update.id);
}

const rd__pgop rd__pg_scenario_update = {update_build, update_read};

/* Incomplete executions (DLQ items) and their retry logs: recording a run,
 * reading, patching, deleting. Leases and the record of a retry are in
 * retry.c. Columns, binders and readers come from RD_DLQ_ITEM_FIELDS and
 * RD_DLQ_LOG_FIELDS (record.c). */
#include "store/sqlite_int.h"

#include "core/ids.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const rd__record *const ITEM = &rd__rec_item, *const LOG = &rd__rec_log;

static int q_item_insert(rd_buf *q) { return rd__sql_insert(q, ITEM, 0); }
static int q_item_get(rd_buf *q) { return rd__sql_get(q, ITEM); }

static int nomem(rd_err *err) { return rd_err_set(err, RD_ENOMEM, "store: out of memory"); }

int rd__prep_built(rd_store_t *st, const rd__record *cols, const char *head,
                   const char *const *conds, const int *use, size_t n, const char *tail,
                   sqlite3_stmt **s, rd_err *err) {
  rd_buf q = {0};
  int r = cols ? rd__sql_select(&q, cols, 0) : 0;
  if (!r) r = rd__buf_adds(&q, head);
  for (size_t i = 0; !r && i < n; i++)
    if (use[i]) r = rd__buf_adds(&q, conds[i]);
  if (!r) r = rd__buf_adds(&q, tail);
  r = r ? nomem(err) : rd__st_prep(st, q.data, s, err);
  rd__buf_free(&q);
  return r;
}

/* ---- record ------------------------------------------------------------- */

int rd__item_insert(rd_store_t *st, const rd_dlq_item_t *d, const char *id, const char *exec_id,
                    rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_ITEM_INSERT, q_item_insert, &s, err);
  if (r) return r;
  rd__sq_rec_bind(s, ITEM, d);
  rd__bind_text(s, ":id", id);
  if (isnan(d->created)) rd__bind_double(s, ":created", rd__st_now());
  rd__bind_text(s, ":execution_id", exec_id);
  return rd__st_exec(st, s, "cannot write an incomplete execution to", err);
}

int rd__sq_record(rd_store_t *st, const rd_exec_t *exec, const rd_dlq_item_t *dlq,
                    char *exec_id, char *dlq_id, rd_err *err) {
  char eid[RD_ID_LEN + 1], did[RD_ID_LEN + 1] = "";
  int r = rd__pick_id(exec->id, eid, "execution", err);
  if (!r && dlq) r = rd__pick_id(dlq->id, did, "incomplete execution", err);
  if (!r) r = rd__st_begin_group(st, err);
  if (r) return r;
  r = rd__exec_put(st, exec, eid, dlq ? did : NULL, err);
  if (!r && dlq) r = rd__item_insert(st, dlq, did, eid, err);
  r = rd__st_end(st, r, err);
  if (r) return r;
  if (exec_id) memcpy(exec_id, eid, sizeof eid);
  if (dlq_id && dlq) memcpy(dlq_id, did, sizeof did);
  return 0;
}

/* ---- reading ------------------------------------------------------------ */

int rd__item_get(rd_store_t *st, const char *id, rd_dlq_item_t **out, rd_dlq_cb cb, void *ud,
                 rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_ITEM_GET, q_item_get, &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rd_dlq_item_t d;
    rd__sq_rec_read(s, ITEM, 1, &d);
    if (out) {
      rd_dlq_item_t *copy = rd__rec_dup(ITEM, &d);
      if (copy) *out = copy;
      else r = nomem(err);
    } else if (cb(&d, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
    }
  } else if (rc == SQLITE_DONE) {
    r = rd__err_no_item(err, id);
  } else {
    r = rd__st_fail(st, rc, "cannot read", err);
  }
  sqlite3_reset(s);
  return r;
}

/* A listing or count of items, built by query.c, prepared and bound. */
static int prep_filter(rd_store_t *st, const char *head, const rd_dlq_filter_t *f, int full,
                       const char *tail, sqlite3_stmt **s, rd_err *err) {
  rd_buf q = {0};
  int r = rd__buf_adds(&q, head);
  if (!r) r = rd__sql_dlq_filter(&q, &rd__dialect_sqlite, f, full);
  if (!r) r = rd__buf_adds(&q, tail);
  r = r ? nomem(err) : rd__st_prep(st, q.data, s, err);
  rd__buf_free(&q);
  if (!r) rd__bind_dlq_filter(&rd__sq_binder, *s, f);
  return r;
}

int rd__sq_dlq_list(rd_store_t *st, const rd_dlq_filter_t *f, rd_dlq_cb cb, void *ud,
                      rd_err *err) {
  int limit;
  int r = rd__st_limit(f->limit, &limit, err);
  if (r) return r;
  rd_buf head = {0};
  sqlite3_stmt *s;
  r = rd__sql_select(&head, ITEM, 0)
          ? nomem(err)
          : prep_filter(st, head.data, f, 1, " ORDER BY id LIMIT :limit", &s, err);
  rd__buf_free(&head);
  if (r) return r;
  rd__bind_int(s, ":limit", limit);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_dlq_item_t d;
    rd__sq_rec_read(s, ITEM, 0, &d);
    if (cb(&d, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd__sq_dlq_count(rd_store_t *st, const rd_dlq_filter_t *f, int64_t *n, rd_err *err) {
  sqlite3_stmt *s;
  int r = prep_filter(st, "SELECT count(*) FROM dlq_item", f, 0, "", &s, err);
  if (r) return r;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *n = sqlite3_column_int64(s, 0);
  else r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd__sq_dlq_logs(rd_store_t *st, const char *dlq_id, const rd_log_filter_t *f,
                      rd_dlq_log_cb cb, void *ud, rd_err *err) {
  int limit;
  int r = rd__st_limit(f->limit, &limit, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st, "SELECT 1 FROM dlq_item WHERE id = :id", &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", dlq_id);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc == SQLITE_DONE)
    return rd__err_no_item(err, dlq_id);
  if (rc != SQLITE_ROW) return rd__st_fail(st, rc, "cannot read", err);
  rd_buf q = {0};
  r = rd__sql_logs(&q, f) ? nomem(err) : rd__st_prep(st, q.data, &s, err);
  rd__buf_free(&q);
  if (r) return r;
  rd__bind_logs(&rd__sq_binder, s, dlq_id, f, limit);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_dlq_log_t l;
    rd__sq_rec_read(s, LOG, 1, &l);
    if (cb(&l, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

/* ---- patch, delete ------------------------------------------------------ */

/* Inside a transaction: RD_ENOT_FOUND or RD_ECONFLICT unless item `id`
 * exists and nobody holds a lease on it. */
static int check_unleased(rd_store_t *st, const char *id, double now, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "SELECT " LEASED ", lease_owner FROM dlq_item WHERE id = :id", &s,
                      err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  rd__bind_double(s, ":now", now);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE)
    r = rd__err_no_item(err, id);
  else if (rc != SQLITE_ROW)
    r = rd__st_fail(st, rc, "cannot read", err);
  else if (sqlite3_column_int(s, 0))
    r = rd__err_leased(err, id, rd__col_text(s, 1));
  sqlite3_reset(s);
  return r;
}

int rd__sq_dlq_patch(rd_store_t *st, const char *id, const char *blueprint, int64_t failer,
                       rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  r = check_unleased(st, id, rd__st_now(), err);
  sqlite3_stmt *s;
  if (!r)
    r = rd__st_prep(st,
                    "UPDATE dlq_item SET blueprint = coalesce(:bp, blueprint),"
                    " failer = CASE WHEN :failer > 0 THEN :failer ELSE failer END"
                    " WHERE id = :id",
                    &s, err);
  if (!r) {
    rd__bind_text(s, ":bp", blueprint);
    rd__bind_int(s, ":failer", failer);
    rd__bind_text(s, ":id", id);
    r = rd__st_exec(st, s, "cannot update an incomplete execution in", err);
  }
  return rd__st_end(st, r, err);
}

const char *const rd__sel_conds[RD__SEL_N] = {
  " AND scenario_id = :scenario",
  " AND id IN (SELECT value FROM json_each(:ids))",
  " AND id NOT IN (SELECT value FROM json_each(:except))",
  " AND fingerprint = :fingerprint",
};

void rd__sel_use(const rd_dlq_sel_t *sel, int use[RD__SEL_N]) {
  use[0] = sel->scenario_id != 0;
  use[1] = !sel->all;
  use[2] = sel->except && sel->n_except > 0;
  use[3] = sel->fingerprint != NULL;
}

int rd__sel_bind(sqlite3_stmt *s, const rd_dlq_sel_t *sel, rd_err *err) {
  rd__bind_int(s, ":scenario", sel->scenario_id);
  rd__bind_text(s, ":fingerprint", sel->fingerprint);
  if (rd__bind_strings(s, ":ids", sel->ids, sel->ids ? sel->n_ids : 0) ||
      rd__bind_strings(s, ":except", sel->except, sel->except ? sel->n_except : 0))
    return nomem(err);
  return 0;
}

/* Step s (its first column an id) and report each row to on_error. */
static int report(rd_store_t *st, sqlite3_stmt *s, int code, const char *message,
                  rd_dlq_error_cb on_error, void *ud, rd_err *err) {
  int rc, r = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (on_error && on_error(rd__col_text(s, 0), code, message, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: deletion stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

/* One transaction over a selection: the items leased right now are kept
 * and reported ("being retried"), so are requested ids that do not exist
 * (in the scenario / with the fingerprint, if given); `act` (a statement
 * over the rest: DELETE or UPDATE, with the selection's conditions
 * appended) runs on what is left and *n counts the rows it changed. The one
 * body of delete and resolve. (The selection was checked: rd__op_check.) */
static int on_selection(rd_store_t *st, const rd_dlq_sel_t *sel, const char *act, const char *what,
                        int64_t *n, rd_dlq_error_cb on_error, void *ud, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  double now = rd__st_now();
  int use[RD__SEL_N];
  rd__sel_use(sel, use);
  sqlite3_stmt *s;
  /* 1. items leased right now stay, reported */
  r = rd__prep_built(st, NULL, "SELECT id FROM dlq_item WHERE " LEASED, rd__sel_conds, use,
                     RD__SEL_N, " ORDER BY id", &s, err);
  if (!r) r = rd__sel_bind(s, sel, err);
  if (!r) {
    rd__bind_double(s, ":now", now);
    r = report(st, s, RD_ECONFLICT, RD__MSG_BEING_RETRIED, on_error, ud, err);
  }
  /* 2. requested ids that do not exist (in the scenario, with the
   * fingerprint, if given) */
  if (!r && !sel->all) {
    static const char *const conds[] = {
      " AND scenario_id = :scenario", " AND fingerprint = :fingerprint", ")",
      " AND value NOT IN (SELECT value FROM json_each(:except))",
    };
    r = rd__prep_built(st, NULL,
                   "SELECT DISTINCT value FROM json_each(:ids) WHERE value NOT IN"
                   " (SELECT id FROM dlq_item WHERE 1",
                   conds, (const int[]){use[0], use[3], 1, use[2]}, 4, " ORDER BY value", &s, err);
    if (!r) r = rd__sel_bind(s, sel, err);
    if (!r) r = report(st, s, RD_ENOT_FOUND, RD__MSG_NOT_FOUND, on_error, ud, err);
  }
  /* 3. the rest */
  if (!r) r = rd__prep_built(st, NULL, act, rd__sel_conds, use, RD__SEL_N, "", &s, err);
  if (!r) r = rd__sel_bind(s, sel, err);
  if (!r) {
    rd__bind_double(s, ":now", now);
    r = rd__st_exec(st, s, what, err);
  }
  int64_t changed = r ? 0 : rd__st_changes(st);
  r = rd__st_end(st, r, err);
  if (!r && n) *n = changed;
  return r;
}

int rd__sq_dlq_delete(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *deleted,
                      rd_dlq_error_cb on_error, void *ud, rd_err *err) {
  /* logs go with their item (ON DELETE CASCADE) */
  return on_selection(st, sel, "DELETE FROM dlq_item WHERE NOT " LEASED,
                      "cannot delete incomplete executions from", deleted, on_error, ud, err);
}

int rd__sq_dlq_resolve(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *n,
                       rd_dlq_error_cb on_error, void *ud, rd_err *err) {
  return on_selection(st, sel, "UPDATE dlq_item SET resolved = 1 WHERE resolved = 0 AND NOT " LEASED,
                      "cannot resolve incomplete executions in", n, on_error, ud, err);
}

/* ---- groups ------------------------------------------------------------- */

/* The first examples of group g (its cause too) in id order; f without
 * after. */
static int group_examples(rd_store_t *st, const rd_dlq_filter_t *f, rd_group_t *g,
                          char ids[RD_GROUP_EXAMPLES][RD_STORE_ID_LEN + 1], char **cause,
                          rd_err *err) {
  rd_dlq_filter_t ef = *f;
  ef.fingerprint = g->fingerprint;
  sqlite3_stmt *s;
  int r = prep_filter(st, "SELECT id, cause FROM dlq_item", &ef, 1,
                      g->fingerprint ? " ORDER BY id LIMIT :limit"
                                     : " AND fingerprint IS NULL ORDER BY id LIMIT :limit",
                      &s, err);
  if (r) return r;
  rd__bind_int(s, ":limit", RD_GROUP_EXAMPLES);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW && g->n_examples < RD_GROUP_EXAMPLES) {
    const char *id = rd__col_text(s, 0), *c = rd__col_text(s, 1);
    if (!id || strlen(id) > RD_STORE_ID_LEN) continue;
    strcpy(ids[g->n_examples], id);
    g->examples[g->n_examples] = ids[g->n_examples];
    g->n_examples++;
    if (!*cause && c && !(*cause = strdup(c))) {
      r = nomem(err);
      break;
    }
  }
  if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd__sq_dlq_groups(rd_store_t *st, const rd_dlq_filter_t *f, rd_group_cb cb, void *ud,
                      rd_err *err) {
  int limit;
  int r = rd__st_limit(f->limit, &limit, err);
  if (r) return r;
  rd_dlq_filter_t gf = *f;
  gf.after = NULL; /* groups are not paged */
  sqlite3_stmt *s;
  /* one read transaction: the groups and their examples agree */
  if (sqlite3_exec(st->sq->db, st->sq->batch ? "SAVEPOINT rd_groups" : "BEGIN", NULL, NULL, NULL))
    return rd__st_fail(st, sqlite3_errcode(st->sq->db), "cannot read", err);
  r = prep_filter(st,
                  "SELECT fingerprint, count(*) AS n, min(created), max(created),"
                  " group_concat(DISTINCT scenario_id) FROM dlq_item",
                  &gf, 1, " GROUP BY fingerprint ORDER BY n DESC, fingerprint LIMIT :limit", &s,
                  err);
  if (!r) {
    rd__bind_int(s, ":limit", limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      rd_group_t g = {
        .fingerprint = rd__col_text(s, 0), .count = sqlite3_column_int64(s, 1),
        .first = rd__col_double(s, 2), .last = rd__col_double(s, 3),
      };
      rd__group_scenarios(&g, rd__col_text(s, 4));
      char ids[RD_GROUP_EXAMPLES][RD_STORE_ID_LEN + 1], *cause = NULL;
      r = group_examples(st, &gf, &g, ids, &cause, err);
      g.cause = cause;
      if (!r && cb(&g, ud)) r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      free(cause);
      if (r) break;
    }
    if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
    sqlite3_reset(s);
  }
  sqlite3_exec(st->sq->db, st->sq->batch ? "RELEASE rd_groups" : "COMMIT", NULL, NULL, NULL);
  return r;
}

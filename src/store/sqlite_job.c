/* Bulk jobs on SQLite: the job, its ledger and the lease on it, with the
 * SQL of job.c. Each call is one transaction. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

static const rd__record *const JOB = &rd__rec_job, *const ROW = &rd__rec_job_item;

static int nomem(rd_err *err) { return rd_err_set(err, RD_ENOMEM, "store: out of memory"); }

/* Prepare what build() writes (cached by its text). */
static int prep(rd_store_t *st, int (*build)(rd_buf *q, const void *ud), const void *ud,
                sqlite3_stmt **s, rd_err *err) {
  rd_buf q = {0};
  int r = build(&q, ud) ? nomem(err) : rd__st_prep(st, q.data, s, err);
  rd__buf_free(&q);
  return r;
}

/* The selection's conditions, as rd__sel_conds writes them. */
static int sel_cond(rd_buf *q, const rd_dlq_sel_t *sel) {
  int use[RD__SEL_N], r = 0;
  rd__sel_use(sel, use);
  for (int i = 0; !r && i < RD__SEL_N; i++)
    if (use[i]) r = rd__buf_adds(q, rd__sel_conds[i]);
  return r;
}

static int q_insert(rd_buf *q, const void *ud) { (void)ud; return rd__sql_job_insert(q); }
static int q_ledger(rd_buf *q, const void *ud) {
  return rd__sql_job_ledger(q, &rd__dialect_sqlite, ud, sel_cond);
}
static int q_total(rd_buf *q, const void *ud) { (void)ud; return rd__sql_job_total(q); }

int rd__sq_job_create(rd_store_t *st, const rd_job_t *job, const rd_dlq_sel_t *sel, char *id,
                      int64_t *total, rd_err *err) {
  char jid[RD_STORE_ID_LEN + 1];
  int r = rd__pick_id(job->id, jid, "job", err);
  if (!r) r = rd__st_begin(st, err);
  if (r) return r;
  double now = rd__st_now();
  sqlite3_stmt *s;
  r = prep(st, q_insert, NULL, &s, err);
  if (!r) {
    rd__bind_text(s, ":id", jid);
    rd__bind_text(s, ":kind", job->kind);
    rd__bind_text(s, ":params", job->params);
    rd__bind_double(s, ":now", now);
    r = rd__st_exec(st, s, "cannot create a job in", err);
  }
  if (!r) r = prep(st, q_ledger, sel, &s, err);
  if (!r) r = rd__sel_bind(s, sel, err);
  if (!r) {
    rd__bind_text(s, ":job", jid);
    rd__bind_double(s, ":now", now);
    r = rd__st_exec(st, s, "cannot create a job's ledger in", err);
  }
  int64_t n = 0;
  if (!r) r = prep(st, q_total, NULL, &s, err);
  if (!r) {
    rd__bind_text(s, ":id", jid);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
    else r = rd__st_fail(st, rc, "cannot create a job in", err);
    sqlite3_reset(s);
  }
  r = rd__st_end(st, r, err);
  if (r) return r;
  if (id) memcpy(id, jid, sizeof jid);
  if (total) *total = n;
  return 0;
}

static int q_get(rd_buf *q, const void *ud) { (void)ud; return rd__sql_get(q, JOB); }
static int q_counts(rd_buf *q, const void *ud) { (void)ud; return rd__sql_job_counts(q); }

/* Does job id exist? 0, RD_ENOT_FOUND or an error. */
static int job_exists(rd_store_t *st, const char *id, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "SELECT 1 FROM job WHERE id = :id", &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc == SQLITE_ROW) return 0;
  if (rc == SQLITE_DONE) return rd__err_no_job(err, id);
  return rd__st_fail(st, rc, "cannot read", err);
}

int rd__sq_job_get(rd_store_t *st, const char *id, rd_job_t **out, rd_job_counts_t *counts,
                   rd_err *err) {
  sqlite3_stmt *s;
  /* one read transaction: the job and its counts agree */
  if (sqlite3_exec(st->sq->db, st->sq->batch ? "SAVEPOINT rd_job" : "BEGIN", NULL, NULL, NULL))
    return rd__st_fail(st, sqlite3_errcode(st->sq->db), "cannot read", err);
  int r = prep(st, q_get, NULL, &s, err);
  if (!r) {
    rd__bind_text(s, ":id", id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      rd_job_t j;
      rd__sq_rec_read(s, JOB, 1, &j);
      if (out && !(*out = rd__rec_dup(JOB, &j))) r = nomem(err);
    } else {
      r = rc == SQLITE_DONE ? rd__err_no_job(err, id) : rd__st_fail(st, rc, "cannot read", err);
    }
    sqlite3_reset(s);
  }
  if (!r && counts) {
    *counts = (rd_job_counts_t){0};
    r = prep(st, q_counts, NULL, &s, err);
    if (!r) {
      rd__bind_text(s, ":id", id);
      rd__bind_double(s, ":now", rd__st_now());
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        rd__job_count(counts, rd__col_text(s, 0), sqlite3_column_int64(s, 1));
      if (rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
      sqlite3_reset(s);
    }
  }
  sqlite3_exec(st->sq->db, st->sq->batch ? "RELEASE rd_job" : "COMMIT", NULL, NULL, NULL);
  if (r && out && *out) {
    free(*out);
    *out = NULL;
  }
  return r;
}


int rd__sq_job_list(rd_store_t *st, const char *state, const char *after, int limit,
                    rd_job_cb cb, void *ud, rd_err *err) {
  int n, r = rd__st_limit(limit, &n, err);
  sqlite3_stmt *s;
  if (!r) r = prep(st, rd__sql_job_list_q, &(rd__job_sel){state, after}, &s, err);
  if (r) return r;
  rd__bind_text(s, ":state", state);
  rd__bind_text(s, ":after", after);
  rd__bind_int(s, ":limit", n);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_job_t j;
    rd__sq_rec_read(s, JOB, 1, &j);
    if (cb(&j, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd__sq_job_items(rd_store_t *st, const char *id, const char *outcome, const char *after,
                     int limit, rd_job_item_cb cb, void *ud, rd_err *err) {
  int n, r = rd__st_limit(limit, &n, err);
  if (!r) r = job_exists(st, id, err);
  sqlite3_stmt *s;
  if (!r) r = prep(st, rd__sql_job_items_q, &(rd__job_sel){outcome, after}, &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  rd__bind_text(s, ":outcome", outcome);
  rd__bind_text(s, ":after", after);
  rd__bind_int(s, ":limit", n);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_job_item_t row;
    rd__sq_rec_read(s, ROW, 1, &row);
    if (cb(&row, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}


int rd__sq_job_mark(rd_store_t *st, const char *id, const char *const *items, size_t n,
                    const rd_job_item_t *m, int64_t *n_changed, rd_err *err) {
  rd__job_mark_sel ms = {&rd__dialect_sqlite, !strcmp(m->outcome, "started"), m->runner != NULL};
  /* a write of a job's runner: joins the loop's group commit from a task */
  int r = rd__st_begin_group(st, err);
  if (r) return r;
  double now = rd__st_now();
  sqlite3_stmt *s;
  int64_t changed = 0;
  r = prep(st, rd__sql_job_mark_q, &ms, &s, err);
  if (!r && rd__bind_strings(s, ":items", items, n)) r = nomem(err);
  if (!r) {
    rd__bind_text(s, ":id", id);
    rd__bind_text(s, ":outcome", m->outcome);
    rd__bind_text(s, ":execution_id", m->execution_id);
    rd__bind_text(s, ":error", m->error);
    rd__bind_text(s, ":code", m->code);
    rd__bind_text(s, ":runner", m->runner);
    rd__bind_double(s, ":now", now);
    r = rd__st_exec(st, s, "cannot record in a job's ledger in", err);
    if (!r) changed = rd__st_changes(st);
  }
  r = rd__st_end(st, r, err);
  if (!r && n_changed) *n_changed = changed;
  return r;
}

int rd__sq_job_own(rd_store_t *st, const char *id, int what, const char *owner, double ttl,
                   int *ok, rd_err *err) {
  const char *sql[RD__JOB_OWN_MAX];
  int decides, n = rd__sql_job_own(what, sql, &decides);
  int r = rd__st_begin(st, err);
  if (r) return r;
  r = job_exists(st, id, err);
  double now = rd__st_now();
  int64_t changed = 0;
  for (int i = 0; !r && i < n; i++) {
    sqlite3_stmt *s;
    r = rd__st_prep(st, sql[i], &s, err);
    if (r) break;
    rd__bind_text(s, ":id", id);
    rd__bind_text(s, ":owner", owner ? owner : "");
    rd__bind_double(s, ":now", now);
    rd__bind_double(s, ":expiry", now + ttl);
    r = rd__st_exec(st, s, "cannot change who runs a job in", err);
    if (!r && i == decides) changed = rd__st_changes(st);
  }
  r = rd__st_end(st, r, err);
  if (!r && ok) *ok = changed > 0;
  return r;
}

/* The ledger row of a retry, inside retry_done's transaction. */
int rd__sq_job_retried(rd_store_t *st, const rd_retry_done_t *d, const char *exec_id,
                       rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, rd__sql_job_retried, &s, err);
  if (r) return r;
  rd__bind_int(s, ":ok", d->success != 0);
  rd__bind_text(s, ":exec", exec_id);
  rd__bind_text(s, ":error", d->job_error);
  rd__bind_double(s, ":now", rd__st_now());
  rd__bind_text(s, ":job", d->job_id);
  rd__bind_text(s, ":item", d->dlq_id);
  return rd__st_exec(st, s, "cannot record in a job's ledger in", err);
}

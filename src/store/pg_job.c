/* Bulk jobs on PostgreSQL: the job, its ledger and the lease on it, with
 * the SQL of job.c; each operation one pipeline segment (one transaction). */
#include "store/pg_int.h"

#include <stdlib.h>
#include <string.h>

static const rd__record *const JOB = &rd__rec_job, *const ROW = &rd__rec_job_item;

static int nomem(rd_err *err) { return rd_err_set(err, RD_ENOMEM, "store: out of memory"); }

static int stopped(rd_err *err) { return rd_err_set(err, RD_ECANCELED, "store: listing stopped"); }

static int64_t num(const rd__pgreq *r, int qi, int i, int c) {
  const char *v = rd__pg_value(r, qi, i, c);
  return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- create ------------------------------------------------------------------ */

static int q_insert(rd_buf *q, const void *ud) { (void)ud; return rd__sql_job_insert(q); }
static int q_ledger(rd_buf *q, const void *ud) {
  return rd__sql_job_ledger(q, &rd__dialect_pg, ud, rd__pg_sel_sql);
}
static int q_total(rd_buf *q, const void *ud) { (void)ud; return rd__sql_job_total(q); }

static int create_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_job_t *job = op->a.job_create.job;
  const rd_dlq_sel_t *sel = op->a.job_create.sel;
  char *jid = r->ids[0];
  double now = rd__st_now();
  int e = rd__pick_id(job->id, jid, "job", err);
  if (!e) e = rd__pg_add_built(r, q_insert, NULL, err);
  if (e) return e;
  rd__pg_text(r, ":id", jid);
  rd__pg_text(r, ":kind", job->kind);
  rd__pg_text(r, ":params", job->params);
  rd__pg_real(r, ":now", now);
  e = rd__pg_add_built(r, q_ledger, sel, err);
  if (e) return e;
  rd__pg_sel_bind(r, sel);
  rd__pg_text(r, ":job", jid);
  rd__pg_real(r, ":now", now);
  e = rd__pg_add_built(r, q_total, NULL, err);
  if (!e) rd__pg_text(r, ":id", jid);
  return e;
}

static int create_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.job_create.id) memcpy(op->a.job_create.id, r->ids[0], RD_STORE_ID_LEN + 1);
  if (op->a.job_create.total) *op->a.job_create.total = num(r, 2, 0, 0);
  return 0;
}

const rd__pgop rd__pg_job_create = {create_build, create_read};

/* ---- get, list, items ------------------------------------------------------------ */

static int q_get(rd_buf *q, const void *ud) { (void)ud; return rd__sql_get(q, JOB); }
static int q_counts(rd_buf *q, const void *ud) { (void)ud; return rd__sql_job_counts(q); }

static int get_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_get, NULL, err);
  if (!e) rd__pg_text(r, ":id", op->a.job_get.id);
  if (!e) e = rd__pg_add_built(r, q_counts, NULL, err);
  if (!e) rd__pg_text(r, ":id", op->a.job_get.id);
  if (!e) rd__pg_real(r, ":now", rd__st_now());
  return e;
}

static int get_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_job(err, op->a.job_get.id);
  rd_job_counts_t *c = op->a.job_get.counts;
  if (c) {
    *c = (rd_job_counts_t){0};
    for (int i = 0, n = rd__pg_rows(r, 1); i < n; i++)
      rd__job_count(c, rd__pg_value(r, 1, i, 0), num(r, 1, i, 1));
  }
  if (!op->a.job_get.out) return 0;
  rd_job_t j;
  rd__pg_read(r, 0, 0, JOB, 1, &j);
  return (*op->a.job_get.out = rd__rec_dup(JOB, &j)) ? 0 : nomem(err);
}

const rd__pgop rd__pg_job_get = {get_build, get_read};


static int list_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int n, e = rd__st_limit(op->a.job_list.limit, &n, err);
  if (!e)
    e = rd__pg_add_built(r, rd__sql_job_list_q,
                         &(rd__job_sel){op->a.job_list.state, op->a.job_list.after}, err);
  if (e) return e;
  rd__pg_text(r, ":state", op->a.job_list.state);
  rd__pg_text(r, ":after", op->a.job_list.after);
  rd__pg_int(r, ":limit", n);
  return 0;
}

static int list_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    rd_job_t j;
    rd__pg_read(r, 0, i, JOB, 1, &j);
    if (op->a.job_list.cb(&j, op->a.job_list.ud)) return stopped(err);
  }
  return 0;
}

const rd__pgop rd__pg_job_list = {list_build, list_read};

static int items_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int n, e = rd__st_limit(op->a.job_items.limit, &n, err);
  if (!e) e = rd__pg_add(r, "SELECT 1 FROM job WHERE id = :id", err);
  if (e) return e;
  rd__pg_text(r, ":id", op->a.job_items.id);
  e = rd__pg_add_built(r, rd__sql_job_items_q,
                       &(rd__job_sel){op->a.job_items.outcome, op->a.job_items.after}, err);
  if (e) return e;
  rd__pg_text(r, ":id", op->a.job_items.id);
  rd__pg_text(r, ":outcome", op->a.job_items.outcome);
  rd__pg_text(r, ":after", op->a.job_items.after);
  rd__pg_int(r, ":limit", n);
  return 0;
}

static int items_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_job(err, op->a.job_items.id);
  for (int i = 0, n = rd__pg_rows(r, 1); i < n; i++) {
    rd_job_item_t row;
    rd__pg_read(r, 1, i, ROW, 1, &row);
    if (op->a.job_items.cb(&row, op->a.job_items.ud)) return stopped(err);
  }
  return 0;
}

const rd__pgop rd__pg_job_items = {items_build, items_read};

/* ---- mark, own ------------------------------------------------------------------------ */


static int mark_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_job_item_t *m = op->a.job_mark.m;
  rd__job_mark_sel ms = {&rd__dialect_pg, !strcmp(m->outcome, "started"), m->runner != NULL};
  double now = rd__st_now();
  int e = rd__pg_add_built(r, rd__sql_job_mark_q, &ms, err);
  if (e) return e;
  rd__pg_strings(r, ":items", op->a.job_mark.items, op->a.job_mark.n);
  rd__pg_text(r, ":id", op->a.job_mark.id);
  rd__pg_text(r, ":outcome", m->outcome);
  rd__pg_text(r, ":execution_id", m->execution_id);
  rd__pg_text(r, ":error", m->error);
  rd__pg_text(r, ":code", m->code);
  rd__pg_text(r, ":runner", m->runner);
  rd__pg_real(r, ":now", now);
  return 0;
}

static int mark_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.job_mark.n_changed) *op->a.job_mark.n_changed = rd__pg_changed(r, 0);
  return 0;
}

const rd__pgop rd__pg_job_mark = {mark_build, mark_read};

/* The job locked first (its lease is decided on the row as it is now),
 * then the statements of the change. */
static int own_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const char *sql[RD__JOB_OWN_MAX];
  int decides, n = rd__sql_job_own(op->a.job_own.what, sql, &decides);
  double now = rd__st_now();
  int e = rd__pg_add(r, "SELECT 1 FROM job WHERE id = :id FOR UPDATE", err);
  if (e) return e;
  rd__pg_text(r, ":id", op->a.job_own.id);
  for (int i = 0; i < n; i++) {
    e = rd__pg_add(r, sql[i], err);
    if (e) return e;
    rd__pg_text(r, ":id", op->a.job_own.id);
    rd__pg_text(r, ":owner", op->a.job_own.owner ? op->a.job_own.owner : "");
    rd__pg_real(r, ":now", now);
    rd__pg_real(r, ":expiry", now + op->a.job_own.ttl);
  }
  return 0;
}

static int own_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  if (rd__pg_rows(r, 0) == 0) return rd__err_no_job(err, op->a.job_own.id);
  const char *sql[RD__JOB_OWN_MAX];
  int decides;
  rd__sql_job_own(op->a.job_own.what, sql, &decides);
  /* query 0 locks the job: statement i is query i + 1 */
  if (op->a.job_own.ok) *op->a.job_own.ok = rd__pg_changed(r, decides + 1) > 0;
  return 0;
}

const rd__pgop rd__pg_job_own = {own_build, own_read};

int rd__pg_job_retried(rd__pgreq *r, const rd_retry_done_t *d, const char *exec_id,
                       rd_err *err) {
  int e = rd__pg_add(r, rd__sql_job_retried, err);
  if (e) return e;
  rd__pg_bool(r, ":ok", d->success != 0);
  rd__pg_text(r, ":exec", exec_id);
  rd__pg_text(r, ":error", d->job_error);
  rd__pg_real(r, ":now", rd__st_now());
  rd__pg_text(r, ":job", d->job_id);
  rd__pg_text(r, ":item", d->dlq_id);
  return 0;
}

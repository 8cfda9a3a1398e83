/* Bulk jobs (include/redrive.h, "bulk jobs"): the SQL both backends run,
 * built once here; where the dialects differ (how a JSON array parameter is
 * read as a set of strings, how a pending item is written) the dialect
 * says. The job's states and the ledger's
 * outcomes are the words of this file and of the job runner
 * (lua/redrive/source/local_job.lua). */
#include "store/record.h"

#include <string.h>

/* A JSON array parameter as a subquery's set of strings. */
static int set_of(rd_buf *q, const rd__dialect *d, const char *param) {
  return rd__buf_printf(q, "(%s%s%s)", d->set_open, param, d->set_close);
}

int rd__sql_job_insert(rd_buf *q) {
  return rd__buf_adds(q, "INSERT INTO job (id, kind, state, params, total, created, updated_at)"
                         " VALUES (:id, :kind, 'running', :params, 0, :now, :now)");
}

/* The ledger of a new job: the ids asked for (distinct, minus except), or
 * the pending items of the selection as they are now (cond: the selection's
 * conditions, written by the backend). */
int rd__sql_job_ledger(rd_buf *q, const rd__dialect *d, const rd_dlq_sel_t *sel,
                       int (*cond)(rd_buf *q, const rd_dlq_sel_t *sel)) {
  int r = rd__buf_adds(q, "INSERT INTO job_item (job_id, item_id, outcome, updated) ");
  if (sel->all) {
    if (!r) r = rd__buf_adds(q, "SELECT :job, id, 'pending', :now FROM dlq_item WHERE true");
    if (!r) r = rd__buf_adds(q, d->pending);
    if (!r) r = cond(q, sel);
    return r ? r : rd__buf_adds(q, " ORDER BY id");
  }
  /* DISTINCT in a subquery: PostgreSQL would type :now as text in a
   * SELECT DISTINCT list */
  if (!r) r = rd__buf_printf(q, "SELECT :job, x.value, 'pending', :now FROM (SELECT DISTINCT"
                                " v.value FROM %s:ids%s", d->rows_open, d->rows_close);
  if (!r && sel->except && sel->n_except > 0) {
    r = rd__buf_adds(q, " WHERE v.value NOT IN ");
    if (!r) r = set_of(q, d, ":except");
  }
  return r ? r : rd__buf_adds(q, ") AS x");
}

int rd__sql_job_total(rd_buf *q) {
  return rd__buf_adds(q, "UPDATE job SET total = (SELECT count(*) FROM job_item"
                         " WHERE job_id = :id) WHERE id = :id RETURNING total");
}

int rd__sql_job_counts(rd_buf *q) {
  return rd__buf_adds(q, "SELECT outcome, count(*) FROM job_item WHERE job_id = :id"
                         " GROUP BY outcome");
}

int rd__job_outcome_valid(const char *o) {
  static const char *const outcomes[] = {"pending", "started", "succeeded", "failed", "skipped",
                                         "not_attempted"};
  for (size_t i = 0; o && i < sizeof outcomes / sizeof *outcomes; i++)
    if (!strcmp(o, outcomes[i])) return 1;
  return 0;
}

void rd__job_count(rd_job_counts_t *c, const char *outcome, int64_t n) {
  if (!outcome) return;
  if (!strcmp(outcome, "pending")) c->pending = n;
  else if (!strcmp(outcome, "started")) c->started = n;
  else if (!strcmp(outcome, "succeeded")) c->succeeded = n;
  else if (!strcmp(outcome, "failed")) c->failed = n;
  else if (!strcmp(outcome, "skipped")) c->skipped = n;
  else if (!strcmp(outcome, "not_attempted")) c->not_attempted = n;
}

int rd__sql_job_list(rd_buf *q, const char *state, const char *after) {
  int r = rd__sql_select(q, &rd__rec_job, 1);
  if (!r) r = rd__buf_adds(q, " WHERE true");
  if (!r && state) r = rd__buf_adds(q, " AND state = :state");
  if (!r && after) r = rd__buf_adds(q, " AND id > :after");
  return r ? r : rd__buf_adds(q, " ORDER BY id LIMIT :limit");
}

int rd__sql_job_items(rd_buf *q, const char *outcome, const char *after) {
  int r = rd__sql_select(q, &rd__rec_job_item, 1);
  if (!r) r = rd__buf_adds(q, " WHERE job_id = :id");
  if (!r && outcome) r = rd__buf_adds(q, " AND outcome = :outcome");
  if (!r && after) r = rd__buf_adds(q, " AND item_id > :after");
  return r ? r : rd__buf_adds(q, " ORDER BY item_id LIMIT :limit");
}

/* A settled row never changes; "started" only from pending. An in-doubt
 * row may still learn its true outcome (its retry was recorded after all). */
int rd__sql_job_mark(rd_buf *q, const rd__dialect *d, int started) {
  int r = rd__buf_adds(q, "UPDATE job_item SET outcome = :outcome,"
                          " execution_id = coalesce(:execution_id, execution_id),"
                          " error = :error, code = :code, updated = :now"
                          " WHERE job_id = :id AND item_id IN ");
  if (!r) r = set_of(q, d, ":items");
  return r ? r
           : rd__buf_adds(q, started ? " AND outcome = 'pending'"
                                     : " AND outcome IN ('pending', 'started')");
}

int rd__sql_job_touch(rd_buf *q) {
  return rd__buf_adds(q, "UPDATE job SET updated_at = :now WHERE id = :id");
}

/* The ledger row of a retry recorded by retry_done (:ok a truth value). */
const char rd__sql_job_retried[] =
    "UPDATE job_item SET outcome = CASE WHEN :ok THEN 'succeeded' ELSE 'failed' END,"
    " execution_id = :exec, error = CASE WHEN :ok THEN NULL ELSE :error END, code = NULL,"
    " updated = :now WHERE job_id = :job AND item_id = :item"
    " AND (outcome IN ('pending', 'started') OR code = 'in_doubt')";

/* What an owner's lease on a job does (RD_JOB_*): the statements, in order.
 * A take-over (or a cancel) first settles what a dead or departed owner left
 * started: its action may have happened, so it is never done again. */
#define IN_DOUBT                                                                                \
  "UPDATE job_item SET outcome = 'failed', code = 'in_doubt', updated = :now,"                  \
  " error = 'in flight when its runner stopped (it may have acted): not done again'"            \
  " WHERE job_id = :id AND outcome = 'started' AND EXISTS (SELECT 1 FROM job WHERE id = :id"   \
  " AND (owner IS NULL OR (owner_expiry <= :now AND owner <> :owner)))"

int rd__sql_job_own(int what, const char *sql[3]) {
  sql[0] = sql[1] = sql[2] = NULL;
  switch (what) {
  case RD_JOB_TAKE:
    sql[0] = IN_DOUBT;
    sql[1] = "UPDATE job SET owner = :owner, owner_expiry = :expiry,"
             " started_at = coalesce(started_at, :now), updated_at = :now WHERE id = :id"
             " AND state = 'running' AND (owner IS NULL OR owner_expiry <= :now OR owner = :owner)";
    return 2;
  case RD_JOB_RELEASE:
    sql[0] = "UPDATE job SET owner = NULL, owner_expiry = NULL, updated_at = :now"
             " WHERE id = :id AND owner = :owner";
    return 1;
  case RD_JOB_DONE:
    sql[0] = "UPDATE job SET state = 'done', owner = NULL, owner_expiry = NULL,"
             " finished_at = :now, updated_at = :now WHERE id = :id AND state = 'running'";
    return 1;
  case RD_JOB_CANCEL:
    sql[0] = IN_DOUBT;
    sql[1] = "UPDATE job_item SET outcome = 'not_attempted', code = 'canceled',"
             " error = 'the job was canceled', updated = :now WHERE job_id = :id"
             " AND outcome = 'pending' AND EXISTS (SELECT 1 FROM job WHERE id = :id"
             " AND state = 'running')";
    sql[2] = "UPDATE job SET state = 'canceled', finished_at = :now, updated_at = :now"
             " WHERE id = :id AND state = 'running'";
    return 3;
  }
  return 0;
}

int rd__err_no_job(rd_err *err, const char *id) {
  return rd_err_set(err, RD_ENOT_FOUND, "store: no job '%.64s'", id ? id : "");
}

int rd__sql_job_list_q(rd_buf *q, const void *ud) {
  const rd__job_sel *t = ud;
  return rd__sql_job_list(q, t->filter, t->after);
}

int rd__sql_job_items_q(rd_buf *q, const void *ud) {
  const rd__job_sel *t = ud;
  return rd__sql_job_items(q, t->filter, t->after);
}

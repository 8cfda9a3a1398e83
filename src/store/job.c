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

/* The ledger's rows by outcome, and the runners alive at :now. */
int rd__sql_job_counts(rd_buf *q) {
  return rd__buf_adds(q, "SELECT outcome, count(*) FROM job_item WHERE job_id = :id"
                         " GROUP BY outcome UNION ALL SELECT 'runners', count(*) FROM job_runner"
                         " WHERE job_id = :id AND expiry > :now");
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
  else if (!strcmp(outcome, "runners")) c->runners = n;
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

/* A settled row never changes; "started" only from pending, and with a
 * runner only while that runner's lease row exists (one whose rows were
 * settled in doubt starts nothing more). An in-doubt row may still learn
 * its true outcome (its retry was recorded after all). */
int rd__sql_job_mark_q(rd_buf *q, const void *ud) {
  const rd__job_mark_sel *m = ud;
  const rd__dialect *d = m->d;
  int started = m->started, by_runner = m->by_runner;
  int r = rd__buf_adds(q, "UPDATE job_item SET outcome = :outcome,"
                          " execution_id = coalesce(:execution_id, execution_id),"
                          " error = :error, code = :code, updated = :now");
  if (!r && started) r = rd__buf_adds(q, ", runner = :runner");
  if (!r) r = rd__buf_adds(q, " WHERE job_id = :id AND item_id IN ");
  if (!r) r = set_of(q, d, ":items");
  if (!r && started && by_runner)
    r = rd__buf_adds(q, " AND EXISTS (SELECT 1 FROM job_runner r WHERE r.job_id = :id"
                        " AND r.owner = :runner)");
  return r ? r
           : rd__buf_adds(q, started ? " AND outcome = 'pending'"
                                     : " AND outcome IN ('pending', 'started')");
}

/* The ledger row of a retry recorded by retry_done (:ok a truth value). */
const char rd__sql_job_retried[] =
    "UPDATE job_item SET outcome = CASE WHEN :ok THEN 'succeeded' ELSE 'failed' END,"
    " execution_id = :exec, error = CASE WHEN :ok THEN NULL ELSE :error END, code = NULL,"
    " updated = :now WHERE job_id = :job AND item_id = :item"
    " AND (outcome IN ('pending', 'started') OR code = 'in_doubt')";

/* What a runner's lease on a job does (RD_JOB_*): the statements, in
 * order. Most changes first settle what a dead runner left started (its
 * lease expired or is gone, and it is not the caller): its action may have
 * happened, so it is never done again; and drop the expired leases, in the
 * same transaction, so a runner whose lease row is still there knows its
 * started rows are untouched. Last, the job row's owner and owner_expiry say
 * which live runner's lease ends first (the moment a worker looks again). */
#define IN_DOUBT                                                                                \
  "UPDATE job_item SET outcome = 'failed', code = 'in_doubt', updated = :now,"                  \
  " error = 'in flight when its runner stopped (it may have acted): not done again'"            \
  " WHERE job_id = :id AND outcome = 'started' AND (runner IS NULL OR runner <> :owner)"         \
  " AND NOT EXISTS (SELECT 1 FROM job_runner r WHERE r.job_id = :id"                             \
  " AND r.owner = job_item.runner AND r.expiry > :now)"
#define DROP_EXPIRED "DELETE FROM job_runner WHERE job_id = :id AND expiry <= :now AND owner <> :owner"
#define SYNC_OWNER                                                                              \
  "UPDATE job SET owner = (SELECT r.owner FROM job_runner r WHERE r.job_id = :id"               \
  " ORDER BY r.expiry, r.owner LIMIT 1), owner_expiry = (SELECT min(r.expiry) FROM job_runner r" \
  " WHERE r.job_id = :id), updated_at = :now WHERE id = :id"

int rd__sql_job_own(int what, const char *sql[RD__JOB_OWN_MAX], int *decides) {
  for (int i = 0; i < RD__JOB_OWN_MAX; i++) sql[i] = NULL;
  *decides = 0;
  switch (what) {
  case RD_JOB_TAKE:
    sql[0] = IN_DOUBT;
    sql[1] = DROP_EXPIRED;
    sql[2] = "INSERT INTO job_runner (job_id, owner, expiry) SELECT id, :owner, :expiry FROM job"
             " WHERE id = :id AND state = 'running'"
             " ON CONFLICT (job_id, owner) DO UPDATE SET expiry = excluded.expiry";
    sql[3] = "UPDATE job SET started_at = coalesce(started_at, :now) WHERE id = :id";
    sql[4] = SYNC_OWNER;
    *decides = 2;
    return 5;
  case RD_JOB_RENEW:
    sql[0] = IN_DOUBT;
    sql[1] = DROP_EXPIRED;
    sql[2] = "UPDATE job_runner SET expiry = :expiry WHERE job_id = :id AND owner = :owner";
    sql[3] = SYNC_OWNER;
    *decides = 2;
    return 4;
  case RD_JOB_RELEASE:
    sql[0] = "DELETE FROM job_runner WHERE job_id = :id AND owner = :owner";
    sql[1] = SYNC_OWNER;
    return 2;
  case RD_JOB_DONE:
    sql[0] = IN_DOUBT;
    sql[1] = "UPDATE job SET state = 'done', finished_at = :now, updated_at = :now"
             " WHERE id = :id AND state = 'running' AND NOT EXISTS (SELECT 1 FROM job_item"
             " WHERE job_id = :id AND outcome IN ('pending', 'started'))";
    sql[2] = "DELETE FROM job_runner WHERE job_id = :id"
             " AND EXISTS (SELECT 1 FROM job WHERE id = :id AND state = 'done')";
    sql[3] = SYNC_OWNER;
    *decides = 1;
    return 4;
  case RD_JOB_CANCEL:
    sql[0] = IN_DOUBT;
    sql[1] = "UPDATE job_item SET outcome = 'not_attempted', code = 'canceled',"
             " error = 'the job was canceled', updated = :now WHERE job_id = :id"
             " AND outcome = 'pending' AND EXISTS (SELECT 1 FROM job WHERE id = :id"
             " AND state = 'running')";
    sql[2] = "UPDATE job SET state = 'canceled', finished_at = :now, updated_at = :now"
             " WHERE id = :id AND state = 'running'";
    sql[3] = DROP_EXPIRED;
    sql[4] = SYNC_OWNER;
    *decides = 2;
    return 5;
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

/* Leases on incomplete executions and the record of a retry, on PostgreSQL.
 *
 * A claim picks and leases a batch in one statement: the candidates are
 * selected FOR UPDATE SKIP LOCKED, so two workers claiming at the same time
 * never wait for each other and never get the same item (a row another
 * transaction is leasing is skipped, not waited for); the lease (owner,
 * expiry) is what keeps them apart afterwards.
 *
 * The record of a retry is one transaction (one pipeline segment): settle
 * the item (redrive_settle, a function of the schema: it raises when the
 * lease is not ours -- for a job's retry, see RD__SQL_JOB_HELD --, which
 * aborts the whole segment), the execution, its
 * default retry_of, the log, the links. Data the later statements need from
 * earlier ones (the item's execution, the chain's root) is read by them in
 * SQL, inside the transaction, so nothing waits for a round trip. */
#include "store/pg_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const rd__record *const ITEM = &rd__rec_item;

/* ---- leases ----------------------------------------------------------------- */

static int q_claim(rd_buf *q, const void *ud) {
  const rd_claim_opts_t *o = ud;
  int r = rd__buf_adds(q, "WITH c AS (UPDATE dlq_item SET lease_owner = :owner,"
                          " lease_expiry = :expiry WHERE id IN (SELECT id FROM dlq_item WHERE"
                          " (lease_owner IS NULL OR lease_expiry <= :now OR lease_owner = :owner)");
  if (!r) r = rd__pg_sel_sql(q, &o->sel);
  if (!r && o->after) r = rd__buf_adds(q, " AND id > :after");
  /* literal, so the partial index on pending items applies */
  if (!r && !o->resolved) r = rd__buf_adds(q, " AND NOT resolved");
  if (!r) r = rd__buf_adds(q, " ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING ");
  if (!r) r = rd__sql_cols(q, ITEM, 1);
  /* RETURNING gives no order; the contract is id order */
  return r ? r : rd__buf_adds(q, ") SELECT * FROM c ORDER BY id");
}

static int claim_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_claim_opts_t *o = op->a.claim.o;
  int limit, e = rd__st_limit(o->limit, &limit, err);
  if (!e) e = rd__pg_add_built(r, q_claim, o, err);
  if (e) return e;
  double now = rd__st_now();
  rd__pg_sel_bind(r, &o->sel);
  rd__pg_real(r, ":now", now);
  rd__pg_real(r, ":expiry", now + o->ttl);
  rd__pg_text(r, ":owner", o->owner);
  rd__pg_text(r, ":after", o->after);
  rd__pg_int(r, ":limit", limit);
  return 0;
}

static int claim_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    rd_dlq_item_t d;
    rd__pg_read(r, 0, i, ITEM, 1, &d);
    if (op->a.claim.cb(&d, op->a.claim.ud))
      return rd_err_set(err, RD_ECANCELED, "store: listing stopped");
  }
  return 0;
}

const rd__pgop rd__pg_claim = {claim_build, claim_read};

static int renew_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  /* resolved items too: a forced retry leases one */
  int e = rd__pg_add(r, "UPDATE dlq_item SET lease_expiry = :expiry WHERE lease_owner = :owner",
                     err);
  if (e) return e;
  rd__pg_text(r, ":owner", op->a.renew.owner);
  rd__pg_real(r, ":expiry", rd__st_now() + op->a.renew.ttl);
  return 0;
}

static int count_read(rd__pgreq *r, int64_t *n) {
  if (n) *n = rd__pg_changed(r, 0);
  return 0;
}

static int renew_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  return count_read(r, op->a.renew.n);
}

const rd__pgop rd__pg_renew = {renew_build, renew_read};

static int release_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const char *id = op->a.release.id;
  int e = rd__pg_add(r,
                     id ? "UPDATE dlq_item SET lease_owner = NULL, lease_expiry = NULL"
                          " WHERE lease_owner = :owner AND id = :id"
                        : "UPDATE dlq_item SET lease_owner = NULL, lease_expiry = NULL"
                          " WHERE lease_owner = :owner",
                     err);
  if (e) return e;
  rd__pg_text(r, ":owner", op->a.release.owner);
  rd__pg_text(r, ":id", id);
  return 0;
}

static int release_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  return count_read(r, op->a.release.n);
}

const rd__pgop rd__pg_release = {release_build, release_read};

/* ---- the record of a retry ------------------------------------------------------ */

static int q_log_insert(rd_buf *q, const void *ud) {
  (void)ud;
  return rd__sql_insert(q, &rd__rec_log, 0);
}

/* The retry's execution took no retry_of of its own: the item's. */
#define Q_RETRY_OF                                                                 \
  "UPDATE execution SET retry_of = (SELECT execution_id FROM dlq_item WHERE id = :dlq)" \
  " WHERE id = :new AND retry_of IS NULL"
/* retry_success_id = the new execution on the execution retried, on the
 * root given and on the root of the one retried, all read from the new
 * execution's row, written above in this transaction. */
#define Q_LINK                                                                     \
  "UPDATE execution SET retry_success_id = :new WHERE id IN"                       \
  " (SELECT retry_of FROM execution WHERE id = :new"                               \
  " UNION SELECT parent_id FROM execution WHERE id = :new"                         \
  " UNION SELECT p.parent_id FROM execution p JOIN execution n ON p.id = n.retry_of" \
  " WHERE n.id = :new)"

static int retry_done_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd_retry_done_t *d = op->a.retry_done.r;
  char *eid = r->ids[0], *did = r->ids[1];
  int e = rd__pick_id(d->exec->id, eid, "execution", err);
  if (!e && d->dlq) e = rd__pick_id(d->dlq->id, did, "incomplete execution", err);
  if (e) return e;
  if (d->dlq_id) {
    if (!(r->lease_item = strdup(d->dlq_id)) || !(r->lease_owner = strdup(d->owner)))
      return rd_err_set(err, RD_ENOMEM, "store: out of memory");
    e = rd__pg_add(r, "SELECT redrive_settle(:id, :owner, :success, :job)", err);
    if (e) return e;
    rd__pg_text(r, ":id", d->dlq_id);
    rd__pg_text(r, ":owner", d->owner);
    rd__pg_bool(r, ":success", d->success);
    rd__pg_text(r, ":job", d->job_id);
  }
  const char *exec_dlq = d->dlq ? did : (d->exec->dlq_id ? NULL : d->dlq_id);
  e = rd__pg_exec_put(r, d->exec, eid, exec_dlq, err);
  if (!e && d->dlq) e = rd__pg_item_insert(r, d->dlq, did, eid, err);
  if (!e && d->dlq_id && !d->exec->retry_of) {
    e = rd__pg_add(r, Q_RETRY_OF, err);
    rd__pg_text(r, ":dlq", d->dlq_id);
    rd__pg_text(r, ":new", eid);
  }
  if (!e && d->dlq_id) {
    e = rd__pg_add_built(r, q_log_insert, NULL, err);
    if (e) return e;
    char lid[RD_STORE_ID_LEN + 1];
    e = rd__pick_id(d->log->id, lid, "log", err);
    rd__pg_rec(r, &rd__rec_log, d->log);
    rd__pg_text(r, ":id", lid);
    rd__pg_text(r, ":dlq_id", d->dlq_id);
    if (isnan(d->log->timestamp)) rd__pg_real(r, ":timestamp", rd__st_now());
    rd__pg_text(r, ":execution_id", eid);
  }
  if (!e && d->success) {
    e = rd__pg_add(r, Q_LINK, err);
    rd__pg_text(r, ":new", eid);
  }
  if (!e && d->dlq_id && d->job_id) e = rd__pg_job_retried(r, d, eid, err);
  return e;
}

static int retry_done_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.retry_done.exec_id) memcpy(op->a.retry_done.exec_id, r->ids[0], RD_STORE_ID_LEN + 1);
  if (op->a.retry_done.dlq_id && op->a.retry_done.r->dlq)
    memcpy(op->a.retry_done.dlq_id, r->ids[1], RD_STORE_ID_LEN + 1);
  return 0;
}

const rd__pgop rd__pg_retry_done = {retry_done_build, retry_done_read};

/* Leases on incomplete executions and the record of a retry.
 *
 * A lease (lease_owner, lease_expiry) is what keeps two processes from
 * retrying one item: it is taken in a write transaction, which SQLite
 * serialises across processes, only when the item has no lease, an expired
 * one, or one of the same owner. The retry's result is written by
 * rd_store_retry_done in one transaction that first checks (and drops) the
 * lease: the execution, the log, the item's resolution and the links from
 * the executions retried to it all land together or not at all. */
#include "store/sqlite_int.h"
#include "store/schema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int nomem(rd_err *err) { return rd_err_set(err, RD_ENOMEM, "store: out of memory"); }

/* ---- leases ------------------------------------------------------------- */

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

int rd__sq_claim(rd_store_t *st, const rd_claim_opts_t *o, rd_dlq_cb cb, void *ud,
                   rd_err *err) {
  int limit, use[RD__SEL_N + 2];
  int r = rd__st_limit(o->limit, &limit, err);
  if (r) return r;
  char (*ids)[RD_STORE_ID_LEN + 1] = malloc((size_t)limit * sizeof *ids);
  if (!ids) return nomem(err);
  size_t n = 0;
  r = rd__st_begin(st, err);
  if (r) goto done;
  double now = rd__st_now();
  /* the selection's conditions, then after and pending */
  const char *conds[RD__SEL_N + 2];
  memcpy(conds, rd__sel_conds, sizeof rd__sel_conds);
  conds[RD__SEL_N] = " AND id > :after";
  conds[RD__SEL_N + 1] = " AND resolved = 0";
  rd__sel_use(&o->sel, use);
  use[RD__SEL_N] = o->after != NULL;
  /* resolved as a literal, so the partial index on pending items applies */
  use[RD__SEL_N + 1] = !o->resolved;
  /* One statement picks and leases the batch. */
  sqlite3_stmt *s;
  r = rd__prep_built(st, NULL,
                     "UPDATE dlq_item SET lease_owner = :owner, lease_expiry = :expiry"
                     " WHERE id IN (SELECT id FROM dlq_item WHERE"
                     " (lease_owner IS NULL OR lease_expiry <= :now OR lease_owner = :owner)",
                     conds, use, RD__SEL_N + 2, " ORDER BY id LIMIT :limit) RETURNING id", &s,
                     err);
  if (!r) r = rd__sel_bind(s, &o->sel, err);
  if (!r) {
    rd__bind_double(s, ":now", now);
    rd__bind_double(s, ":expiry", now + o->ttl);
    rd__bind_text(s, ":owner", o->owner);
    rd__bind_text(s, ":after", o->after);
    rd__bind_int(s, ":limit", limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const char *id = rd__col_text(s, 0);
      if (n < (size_t)limit && id && strlen(id) <= RD_STORE_ID_LEN) strcpy(ids[n++], id);
    }
    if (rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot lease incomplete executions in", err);
    sqlite3_reset(s);
  }
  r = rd__st_end(st, r, err);
  /* RETURNING gives no order; the contract is id order. */
  qsort(ids, n, sizeof *ids, cmp_id);
  /* The leases are ours now: nobody else changes these items until they
   * expire, so reading them outside the transaction is safe. */
  for (size_t i = 0; !r && i < n; i++) r = rd__item_get(st, ids[i], NULL, cb, ud, err);
done:
  free(ids);
  return r;
}

int rd__sq_renew(rd_store_t *st, const char *owner, double ttl, int64_t *n, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  /* resolved items too: a forced retry leases one */
  r = rd__st_prep(st, "UPDATE dlq_item SET lease_expiry = :expiry WHERE lease_owner = :owner",
                  &s, err);
  if (!r) {
    rd__bind_text(s, ":owner", owner);
    rd__bind_double(s, ":expiry", rd__st_now() + ttl);
    r = rd__st_exec(st, s, "cannot renew leases in", err);
  }
  int64_t changed = r ? 0 : rd__st_changes(st);
  r = rd__st_end(st, r, err);
  if (!r && n) *n = changed;
  return r;
}

int rd__sq_release(rd_store_t *st, const char *owner, const char *id, int64_t *n,
                     rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st,
                  id ? "UPDATE dlq_item SET lease_owner = NULL, lease_expiry = NULL"
                       " WHERE lease_owner = :owner AND id = :id"
                     : "UPDATE dlq_item SET lease_owner = NULL, lease_expiry = NULL"
                       " WHERE lease_owner = :owner",
                  &s, err);
  if (!r) {
    rd__bind_text(s, ":owner", owner);
    rd__bind_text(s, ":id", id);
    r = rd__st_exec(st, s, "cannot release leases in", err);
  }
  int64_t changed = r ? 0 : rd__st_changes(st);
  r = rd__st_end(st, r, err);
  if (!r && n) *n = changed;
  return r;
}

/* ---- the record of a retry -------------------------------------------------
 * One prepared statement per step: settle the item (checking the lease and
 * returning its execution), put the execution, add the log, link. */

static int q_settle(rd_buf *q) {
  return rd__buf_adds(q, "UPDATE dlq_item SET resolved = (resolved OR :success),"
                         " attempts = attempts + 1, lease_owner = NULL, lease_expiry = NULL"
                         " WHERE id = :id AND (lease_owner = :owner OR "
                         RD__SQL_JOB_HELD(":owner", ":job", ":id") ") RETURNING execution_id");
}
static int q_why(rd_buf *q) {
  return rd__buf_adds(q, "SELECT lease_owner FROM dlq_item WHERE id = :id");
}
static int q_log_insert(rd_buf *q) { return rd__sql_insert(q, &rd__rec_log, 0); }
/* The execution retried, the root given, and the root of the one retried. */
static int q_link(rd_buf *q) {
  return rd__buf_adds(q, "UPDATE execution SET retry_success_id = :new WHERE id IN"
                         " (:retry_of, :parent_id,"
                         " (SELECT parent_id FROM execution WHERE id = :retry_of))");
}

/* Why settle found no row: RD_ENOT_FOUND or RD_ECONFLICT naming the holder. */
static int settle_refused(rd_store_t *st, const char *id, const char *owner, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_RETRY_WHY, q_why, &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) {
    r = rd__err_no_item(err, id);
  } else if (rc != SQLITE_ROW) {
    r = rd__st_fail(st, rc, "cannot read", err);
  } else {
    r = rd__err_not_held(err, id, owner, rd__col_text(s, 0));
  }
  sqlite3_reset(s);
  return r;
}

/* Drop owner's lease on item `id` (or, for job `job`'s retry, the lease
 * its runner may no longer hold: RD__SQL_JOB_HELD), count the attempt,
 * resolve it on success; the item's execution goes to orig. */
static int settle(rd_store_t *st, const char *id, const char *owner, const char *job,
                  int success, char orig[RD_STORE_ID_LEN + 1], rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_RETRY_SETTLE, q_settle, &s, err);
  if (r) return r;
  rd__bind_int(s, ":success", success != 0);
  rd__bind_text(s, ":id", id);
  rd__bind_text(s, ":owner", owner);
  rd__bind_text(s, ":job", job);
  int rc = sqlite3_step(s);
  int found = rc == SQLITE_ROW;
  if (found) {
    const char *o = rd__col_text(s, 0);
    if (o && strlen(o) <= RD_STORE_ID_LEN) strcpy(orig, o);
    rc = sqlite3_step(s);
  }
  if (rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot update an incomplete execution in", err);
  sqlite3_reset(s);
  if (!r && !found) r = settle_refused(st, id, owner, err);
  return r;
}

static int insert_log(rd_store_t *st, const rd_dlq_log_t *l, const char *dlq_id,
                      const char *exec_id, rd_err *err) {
  char lid[RD_STORE_ID_LEN + 1];
  int r = rd__pick_id(l->id, lid, "log", err);
  sqlite3_stmt *s;
  if (!r) r = rd__st_slot(st, RD__Q_LOG_INSERT, q_log_insert, &s, err);
  if (r) return r;
  rd__sq_rec_bind(s, &rd__rec_log, l);
  rd__bind_text(s, ":id", lid);
  rd__bind_text(s, ":dlq_id", dlq_id);
  if (isnan(l->timestamp)) rd__bind_double(s, ":timestamp", rd__st_now());
  rd__bind_text(s, ":execution_id", exec_id);
  return rd__st_exec(st, s, "cannot write a retry log to", err);
}

static int link_retry(rd_store_t *st, const rd_exec_t *e, const char *eid, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_slot(st, RD__Q_RETRY_LINK, q_link, &s, err);
  if (r) return r;
  rd__bind_text(s, ":new", eid);
  rd__bind_text(s, ":retry_of", e->retry_of);
  rd__bind_text(s, ":parent_id", e->parent_id);
  return rd__st_exec(st, s, "cannot link an execution to its retry in", err);
}

int rd__sq_retry_done(rd_store_t *st, const rd_retry_done_t *d, char *exec_id, char *dlq_id,
                        rd_err *err) {
  char eid[RD_STORE_ID_LEN + 1], did[RD_STORE_ID_LEN + 1] = "", orig[RD_STORE_ID_LEN + 1] = "";
  int r = rd__pick_id(d->exec->id, eid, "execution", err);
  if (!r && d->dlq) r = rd__pick_id(d->dlq->id, did, "incomplete execution", err);
  if (!r) r = rd__st_begin_group(st, err);
  if (r) return r;
  if (d->dlq_id) r = settle(st, d->dlq_id, d->owner, d->job_id, d->success, orig, err);
  rd_exec_t e = *d->exec;
  if (!e.retry_of && orig[0]) e.retry_of = orig;
  const char *exec_dlq = d->dlq ? did : (e.dlq_id ? NULL : d->dlq_id);
  if (!r) r = rd__exec_put(st, &e, eid, exec_dlq, err);
  if (!r && d->dlq) r = rd__item_insert(st, d->dlq, did, eid, err);
  if (!r && d->dlq_id) r = insert_log(st, d->log, d->dlq_id, eid, err);
  if (!r && d->success) r = link_retry(st, &e, eid, err);
  if (!r && d->dlq_id && d->job_id) r = rd__sq_job_retried(st, d, eid, err);
  r = rd__st_end(st, r, err);
  if (r) return r;
  if (exec_id) memcpy(exec_id, eid, sizeof eid);
  if (dlq_id && d->dlq) memcpy(dlq_id, did, sizeof did);
  return 0;
}

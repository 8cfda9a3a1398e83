/* Operations on a store (op.h): the checks every backend shares, then
 * start, wait and finish through the backend's table. */
#include "store/store_int.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const char *const what[] = {
#define RD__OP_WHAT(K, w) w,
  RD__OP_KINDS(RD__OP_WHAT)
#undef RD__OP_WHAT
};

const char *rd__op_what(int kind) {
  return kind >= 0 && kind < RD__OP_NKINDS ? what[kind] : "?";
}

static void op_cancel(rd_wait_t *w) {
  rd__op *op = (rd__op *)w;
  if (op->impl->cancel) op->impl->cancel(op);
}

void rd__op_init(rd__op *op, rd_store_t *st, int kind, void (*release)(rd_wait_t *)) {
  *op = (rd__op){.st = st, .kind = kind, .impl = st->be};
  rd_wait_init(&op->base, op_cancel, release);
}

int rd__op_async(const rd_store_t *st) { return st->be->async; }

/* ---- the checks both backends rely on ------------------------------------ */

static int bad_status(const char *s, rd_err *err) {
  return rd_err_set(err, RD_EINVALID, "store: invalid execution status '%s'", s ? s : "(none)");
}

static int check_limit(int limit, rd_err *err) {
  int unused;
  return rd__st_limit(limit, &unused, err);
}

/* A lease owner: a claim's must not be empty either. */
static int check_owner(const char *owner, int nonempty, const char *call, rd_err *err) {
  if (!owner || (nonempty && !*owner))
    return rd_err_set(err, RD_EINVALID, "store: %s needs an owner", call);
  return 0;
}

static int check_ttl(double ttl, const char *call, rd_err *err) {
  if (!(ttl > 0)) return rd_err_set(err, RD_EINVALID, "store: %s needs a ttl > 0", call);
  return 0;
}

static int check_log_status(int status, int optional, rd_err *err) {
  if ((optional && status == 0) || (status >= 1 && status <= 3)) return 0;
  return rd_err_set(err, RD_EINVALID, "store: log status must be 1, 2 or 3");
}

static int check_retry_done(const rd_retry_done_t *r, rd_err *err) {
  if (!r->exec) return rd_err_set(err, RD_EINVALID, "store: retry_done needs an execution");
  if (r->dlq_id && (!r->owner || !r->log))
    return rd_err_set(err, RD_EINVALID, "store: retry_done of an item needs its owner and log");
  if (r->dlq_id && r->dlq)
    return rd_err_set(err, RD_EINVALID, "store: retry_done takes an item retried or a new one");
  if (r->log) {
    int e = check_log_status(r->log->status, 0, err);
    if (e) return e;
  }
  return rd__st_valid_status(r->exec->status) ? 0 : bad_status(r->exec->status, err);
}

static int check_job_create(const rd__op *op, rd_err *err) {
  const rd_job_t *job = op->a.job_create.job;
  if (!job->kind || (strcmp(job->kind, "retry") != 0 && strcmp(job->kind, "delete") != 0))
    return rd_err_set(err, RD_EINVALID, "store: a job's kind is 'retry' or 'delete'");
  return rd__sel_check(op->a.job_create.sel, err);
}

static int check_job_mark(const rd__op *op, rd_err *err) {
  const rd_job_item_t *m = op->a.job_mark.m;
  if (!op->a.job_mark.id) return rd_err_set(err, RD_EINVALID, "store: a job needs an id");
  if (!m->outcome || !strcmp(m->outcome, "pending") || !rd__job_outcome_valid(m->outcome))
    return rd_err_set(err, RD_EINVALID, "store: invalid ledger outcome '%.40s'",
                      m->outcome ? m->outcome : "(none)");
  for (size_t i = 0; i < op->a.job_mark.n; i++)
    if (!op->a.job_mark.items[i]) return rd_err_set(err, RD_EINVALID, "store: NULL id in items");
  return 0;
}

int rd__op_check(const rd__op *op, rd_err *err) {
  switch (op->kind) {
  case RD__OP_SCENARIO_CREATE: {
    const rd_scenario_t *sc = op->a.scenario_create.rec;
    if (!sc->name || !sc->blueprint)
      return rd_err_set(err, RD_EINVALID, "store: a scenario needs a name and a blueprint");
    return 0;
  }
  case RD__OP_SCENARIO_UPDATE: {
    const rd_scenario_t *f = op->a.scenario_update.rec;
    unsigned mask = op->a.scenario_update.mask;
    if (((mask & RD_SCENARIO_NAME) && !f->name) ||
        ((mask & RD_SCENARIO_BLUEPRINT) && !f->blueprint))
      return rd_err_set(err, RD_EINVALID,
                        "store: a scenario's name and blueprint cannot be removed");
    return 0;
  }
  case RD__OP_EXEC_UPDATE: {
    const rd_exec_t *f = op->a.exec_update.rec;
    if ((op->a.exec_update.mask & RD_EXEC_STATUS) && !rd__st_valid_status(f->status))
      return bad_status(f->status, err);
    return 0;
  }
  case RD__OP_RECORD: {
    const char *s = op->a.record.exec->status;
    return rd__st_valid_status(s) ? 0 : bad_status(s, err);
  }
  case RD__OP_EXEC_LIST: return check_limit(op->a.exec_list.f->limit, err);
  case RD__OP_DLQ_LIST: return check_limit(op->a.dlq_list.f->limit, err);
  case RD__OP_DLQ_LOGS: {
    int r = check_limit(op->a.dlq_logs.f->limit, err);
    return r ? r : check_log_status(op->a.dlq_logs.f->status, 1, err);
  }
  case RD__OP_DLQ_DELETE:
  case RD__OP_DLQ_RESOLVE: return rd__sel_check(op->a.dlq_delete.sel, err);
  case RD__OP_DLQ_GROUPS: return check_limit(op->a.dlq_groups.f->limit, err);
  case RD__OP_CLAIM: {
    const rd_claim_opts_t *o = op->a.claim.o;
    int r = check_limit(o->limit, err);
    if (!r) r = rd__sel_check(&o->sel, err);
    if (!r) r = check_owner(o->owner, 1, "claim", err);
    return r ? r : check_ttl(o->ttl, "claim", err);
  }
  case RD__OP_RENEW: {
    int r = check_owner(op->a.renew.owner, 0, "renew", err);
    return r ? r : check_ttl(op->a.renew.ttl, "renew", err);
  }
  case RD__OP_RELEASE: return check_owner(op->a.release.owner, 0, "release", err);
  case RD__OP_RETRY_DONE: return check_retry_done(op->a.retry_done.r, err);
  case RD__OP_HEALTH:
    if (op->a.health.top < 0)
      return rd_err_set(err, RD_EINVALID, "store: top must not be negative");
    return 0;
  case RD__OP_JOB_CREATE: return check_job_create(op, err);
  case RD__OP_JOB_GET:
    return op->a.job_get.id ? 0 : rd_err_set(err, RD_EINVALID, "store: a job needs an id");
  case RD__OP_JOB_LIST: return check_limit(op->a.job_list.limit, err);
  case RD__OP_JOB_ITEMS: {
    int r = check_limit(op->a.job_items.limit, err);
    if (!r && op->a.job_items.outcome && !rd__job_outcome_valid(op->a.job_items.outcome))
      r = rd_err_set(err, RD_EINVALID, "store: invalid ledger outcome '%.40s'",
                     op->a.job_items.outcome);
    return r;
  }
  case RD__OP_JOB_MARK: return check_job_mark(op, err);
  case RD__OP_JOB_OWN: {
    int what = op->a.job_own.what;
    if (what < RD_JOB_TAKE || what > RD_JOB_RENEW)
      return rd_err_set(err, RD_EINVALID, "store: unknown job change %d", what);
    if (what == RD_JOB_CANCEL || what == RD_JOB_DONE) return 0;
    int r = check_owner(op->a.job_own.owner, 1, "a job's lease", err);
    if (r || (what != RD_JOB_TAKE && what != RD_JOB_RENEW)) return r;
    return check_ttl(op->a.job_own.ttl, "a job's lease", err);
  }
  case RD__OP_LEDGER_TAKE:
  case RD__OP_LEDGER_RENEW:
  case RD__OP_LEDGER_SETTLE:
  case RD__OP_LEDGER_EVENTS: return rd__ledger_check(op, err);
  case RD__OP_PROBE:
    if (!(op->a.probe.sleep >= 0 && op->a.probe.sleep <= 60))
      return rd_err_set(err, RD_EINVALID, "store: sleep takes 0 to 60 seconds");
    return 0;
  default: return 0;
  }
}

/* ---- running ------------------------------------------------------------- */

int rd__op_start(rd__op *op, rd_err *err) {
  int r = rd__op_check(op, err);
  return r ? r : op->impl->start(op, err);
}

int rd__op_finish(rd__op *op, rd_err *err) {
  const rd__backend *be = op->impl;
  int status = op->base.status;
  if (status) {
    if (be->discard) be->discard(op);
    if (status == RD_ECANCELED)
      return rd_err_set(err, RD_ECANCELED, "store: %s: canceled", rd__op_what(op->kind));
    if (err) *err = op->err;
    return status;
  }
  return be->finish(op, err);
}

int rd__op_run(rd__op *op, rd_err *err) {
  int r = rd__op_start(op, err);
  if (r) return r;
  if (!op->base.done) {
    rd_loop_t *loop = op->st->loop;
    rd_err e = {0};
    if (!loop) {
      r = rd_err_set(&e, RD_EINVALID, "store: an asynchronous store without a loop");
    } else {
      r = rd_loop_wait(loop, &op->base, &e);
    }
    if (r) {
      if (!op->base.done) rd_wait_cancel(&op->base);
      rd__op_finish(op, NULL);
      return rd_err_set(err, r, "store: %s: %.400s", rd__op_what(op->kind), e.msg);
    }
  }
  return rd__op_finish(op, err);
}

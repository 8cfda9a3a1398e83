/* The store's front: a target (a file path or a postgresql:// URL) picks the
 * backend; opening, closing, the loop a store is attached to, waits for new
 * work, and the synchronous API of include/redrive.h, each call one
 * operation (op.c) run through the backend's table (backend.h). Also the
 * helpers both backends share. */
#include "store/store_int.h"

#include "core/ids.h"

#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- shared helpers -------------------------------------------------------- */

double rd__st_now(void) { return (double)rd__now_ms() / 1000.0; }

int rd__st_limit(int limit, int *out, rd_err *err) {
  if (limit < 0) return rd_err_set(err, RD_EINVALID, "store: limit must not be negative");
  *out = limit == 0 ? RD_STORE_DEFAULT_LIMIT : limit > RD_STORE_MAX_LIMIT ? RD_STORE_MAX_LIMIT
                                                                           : limit;
  return 0;
}

int rd__st_top(int top) {
  if (top <= 0) return 5;
  return top > RD_HEALTH_TOP_MAX ? RD_HEALTH_TOP_MAX : top;
}

int rd__st_valid_status(const char *s) {
  static const char *const ok[] = {"success", "warning", "error", "running", "canceled"};
  if (!s) return 0;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strcmp(s, ok[i]) == 0) return 1;
  return 0;
}

int rd__pick_id(const char *given, char out[RD_ID_LEN + 1], const char *what, rd_err *err) {
  if (given) {
    if (!rd__id_valid(given))
      return rd_err_set(err, RD_EINVALID, "store: invalid %s id '%s'", what, given);
    memcpy(out, given, RD_ID_LEN + 1);
    return 0;
  }
  if (rd__id_new(out)) return rd_err_set(err, RD_EIO, "store: no random bytes for an id");
  return 0;
}

int rd__sel_check(const rd_dlq_sel_t *sel, rd_err *err) {
  if (!sel->all && !sel->ids)
    return rd_err_set(err, RD_EINVALID, "store: give ids or all");
  for (size_t i = 0; sel->ids && i < sel->n_ids; i++)
    if (!sel->ids[i]) return rd_err_set(err, RD_EINVALID, "store: NULL id in ids");
  for (size_t i = 0; sel->except && i < sel->n_except; i++)
    if (!sel->except[i]) return rd_err_set(err, RD_EINVALID, "store: NULL id in except");
  return 0;
}

int rd__err_no_scenario(rd_err *err, int64_t id) {
  return rd_err_set(err, RD_ENOT_FOUND, "store: no scenario %lld", (long long)id);
}

int rd__err_no_exec(rd_err *err, const char *id) {
  return rd_err_set(err, RD_ENOT_FOUND, "store: no execution '%s'", id);
}

int rd__err_no_item(rd_err *err, const char *id) {
  return rd_err_set(err, RD_ENOT_FOUND, "store: no incomplete execution '%s'", id);
}

int rd__err_leased(rd_err *err, const char *id, const char *holder) {
  return rd_err_set(err, RD_ECONFLICT, "store: incomplete execution '%s' is being retried (by %s)",
                    id, holder ? holder : "?");
}

int rd__err_not_held(rd_err *err, const char *id, const char *owner, const char *holder) {
  return rd_err_set(err, RD_ECONFLICT,
                    "store: lease on incomplete execution '%s' is not held by '%s'%s%s", id, owner,
                    holder ? " but by " : "", holder ? holder : "");
}

void rd_store_health_free(rd_health_t *h) {
  if (!h) return;
  for (size_t i = 0; i < h->n_top; i++) free(h->top[i].reason);
  h->n_top = 0;
}

/* ---- opening and closing --------------------------------------------------- */

int rd_store_is_url(const char *target) {
  return target && (strncmp(target, "postgresql://", 13) == 0 ||
                    strncmp(target, "postgres://", 11) == 0);
}

int rd__store_new(rd_store_t **out, const char *target, rd_err *err) {
  if (!target || !*target) return rd_err_set(err, RD_EINVALID, "store: empty path");
  rd_store_t *st = calloc(1, sizeof *st);
  if (!st) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  if (rd_store_is_url(target)) {
    /* shown without its password wherever it appears */
    char shown[4096];
    rd_redact_url_password(target, shown, sizeof shown);
    st->be = &rd__pg_backend;
    st->path = strdup(shown);
  } else {
    st->be = &rd__sqlite_backend;
    st->path = strdup(target);
  }
  if (!st->path) {
    free(st);
    return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  }
  *out = st;
  return 0;
}

int rd_store_open_opts(rd_store_t **out, const char *target, const rd_store_opts_t *o,
                       rd_err *err) {
  rd_store_t *st;
  int r = rd__store_new(&st, target, err);
  if (r) return r;
  rd_loop_t *loop = o ? o->loop : NULL;
  if (!loop && st->be != &rd__sqlite_backend) {
    /* the connection is driven by a loop: without the caller's, one of its own */
    r = rd_loop_new(&st->own_loop, err);
    loop = st->own_loop;
  }
  if (!r && loop) r = rd_store_attach(st, loop, err);
  if (!r) {
    rd__op op;
    rd__op_init(&op, st, RD__OP_OPEN, NULL);
    op.a.open.target = target;
    op.a.open.password = o ? o->password : NULL;
    r = rd__op_run(&op, err);
  }
  if (r) {
    rd_store_close(st);
    return r;
  }
  *out = st;
  return 0;
}

int rd_store_open(rd_store_t **out, const char *path, rd_err *err) {
  return rd_store_open_opts(out, path, NULL, err);
}

void rd_store_close(rd_store_t *st) {
  if (!st) return;
  rd_store_group_commit(st, NULL); /* wakes its writers */
  rd__work_signal(st); /* nothing more will come: let them look */
  st->be->close(st);
  rd_hook_cancel(&st->hook);
  if (st->own_loop) rd_loop_close(st->own_loop); /* runs until its handles are closed */
  free(st->path);
  free(st);
}

const char *rd_store_path(const rd_store_t *st) { return st->path; }

const char *rd_store_backend(const rd_store_t *st) { return st->be->name; }

int rd_store_attach(rd_store_t *st, rd_loop_t *loop, rd_err *err) {
  if (st->loop == loop) return 0;
  rd_store_group_commit(st, NULL);
  rd_hook_cancel(&st->hook);
  int r = st->be->set_loop(st, loop, err);
  if (r) return r;
  st->loop = loop;
  if (st->own_loop && loop != st->own_loop) {
    rd_loop_close(st->own_loop);
    st->own_loop = NULL;
  }
  return 0;
}

void rd_store_set_loop(rd_store_t *st, rd_loop_t *loop) { rd_store_attach(st, loop, NULL); }


/* ---- the default store ------------------------------------------------------- */

int rd_store_default_path(char *buf, size_t n) {
  const char *env = getenv("REDRIVE_DB");
  int len;
  if (env && *env) {
    len = snprintf(buf, n, "%s", env);
  } else if ((env = getenv("XDG_DATA_HOME")) && env[0] == '/') {
    len = snprintf(buf, n, "%s/redrive/redrive.db", env);
  } else {
    const char *home = getenv("HOME");
    if (!home || !*home) {
      struct passwd *pw = getpwuid(getuid());
      home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !*home) return RD_ENOT_FOUND;
    len = snprintf(buf, n, "%s/.local/share/redrive/redrive.db", home);
  }
  return len < 0 || (size_t)len >= n ? RD_EINVALID : 0;
}

/* ---- the synchronous API: one operation each ------------------------------------ */

#define RUN(st, KIND, field, ...)                                                  \
  do {                                                                             \
    rd__op op_;                                                                    \
    rd__op_init(&op_, (st), RD__OP_##KIND, NULL);                                  \
    op_.a.field = (__typeof__(op_.a.field)){__VA_ARGS__};                          \
    return rd__op_run(&op_, err);                                                  \
  } while (0)

int rd_store_scenario_create(rd_store_t *st, const rd_scenario_t *sc, int64_t *id, rd_err *err) {
  RUN(st, SCENARIO_CREATE, scenario_create, sc, id);
}

int rd_store_scenario_get(rd_store_t *st, int64_t id, rd_scenario_t **out, rd_err *err) {
  RUN(st, SCENARIO_GET, scenario_get, id, out);
}

int rd_store_scenario_list(rd_store_t *st, rd_scenario_cb cb, void *ud, rd_err *err) {
  RUN(st, SCENARIO_LIST, scenario_list, cb, ud);
}

int rd_store_scenario_update(rd_store_t *st, int64_t id, const rd_scenario_t *f, unsigned mask,
                             rd_err *err) {
  RUN(st, SCENARIO_UPDATE, scenario_update, id, f, mask);
}

int rd_store_exec_get(rd_store_t *st, const char *id, rd_exec_t **out, rd_err *err) {
  RUN(st, EXEC_GET, exec_get, id, out);
}

int rd_store_exec_list(rd_store_t *st, const rd_exec_filter_t *f, rd_exec_cb cb, void *ud,
                       rd_err *err) {
  RUN(st, EXEC_LIST, exec_list, f, cb, ud);
}

int rd_store_exec_update(rd_store_t *st, const char *id, const rd_exec_t *f, unsigned mask,
                         rd_err *err) {
  RUN(st, EXEC_UPDATE, exec_update, id, f, mask);
}

int rd_store_exec_delete(rd_store_t *st, const char *id, rd_err *err) {
  RUN(st, EXEC_DELETE, exec_delete, id);
}

int rd_store_record(rd_store_t *st, const rd_exec_t *exec, const rd_dlq_item_t *dlq,
                    char *exec_id, char *dlq_id, rd_err *err) {
  RUN(st, RECORD, record, exec, dlq, exec_id, dlq_id);
}

int rd_store_dlq_get(rd_store_t *st, const char *id, rd_dlq_item_t **out, rd_err *err) {
  RUN(st, DLQ_GET, dlq_get, id, out);
}

int rd_store_dlq_list(rd_store_t *st, const rd_dlq_filter_t *f, rd_dlq_cb cb, void *ud,
                      rd_err *err) {
  RUN(st, DLQ_LIST, dlq_list, f, cb, ud);
}

int rd_store_dlq_count(rd_store_t *st, const rd_dlq_filter_t *f, int64_t *n, rd_err *err) {
  RUN(st, DLQ_COUNT, dlq_count, f, n);
}

int rd_store_dlq_patch(rd_store_t *st, const char *id, const char *blueprint, int64_t failer,
                       rd_err *err) {
  RUN(st, DLQ_PATCH, dlq_patch, id, blueprint, failer);
}

int rd_store_dlq_delete(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *deleted,
                        rd_dlq_error_cb on_error, void *ud, rd_err *err) {
  RUN(st, DLQ_DELETE, dlq_delete, sel, deleted, on_error, ud);
}

int rd_store_dlq_resolve(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *n,
                         rd_dlq_error_cb on_error, void *ud, rd_err *err) {
  RUN(st, DLQ_RESOLVE, dlq_delete, sel, n, on_error, ud);
}

int rd_store_dlq_groups(rd_store_t *st, const rd_dlq_filter_t *f, rd_group_cb cb, void *ud,
                        rd_err *err) {
  RUN(st, DLQ_GROUPS, dlq_groups, f, cb, ud);
}

int rd_store_dlq_logs(rd_store_t *st, const char *dlq_id, const rd_log_filter_t *f,
                      rd_dlq_log_cb cb, void *ud, rd_err *err) {
  RUN(st, DLQ_LOGS, dlq_logs, dlq_id, f, cb, ud);
}

int rd_store_claim(rd_store_t *st, const rd_claim_opts_t *o, rd_dlq_cb cb, void *ud,
                   rd_err *err) {
  RUN(st, CLAIM, claim, o, cb, ud);
}

int rd_store_renew(rd_store_t *st, const char *owner, double ttl, int64_t *n, rd_err *err) {
  RUN(st, RENEW, renew, owner, ttl, n);
}

int rd_store_release(rd_store_t *st, const char *owner, const char *id, int64_t *n,
                     rd_err *err) {
  RUN(st, RELEASE, release, owner, id, n);
}

int rd_store_retry_done(rd_store_t *st, const rd_retry_done_t *d, char *exec_id, char *dlq_id,
                        rd_err *err) {
  RUN(st, RETRY_DONE, retry_done, d, exec_id, dlq_id);
}

int rd_store_health(rd_store_t *st, int64_t scenario_id, double since, int top, rd_health_t *out,
                    rd_err *err) {
  RUN(st, HEALTH, health, scenario_id, since, top, out);
}

int rd_store_job_create(rd_store_t *st, const rd_job_t *job, const rd_dlq_sel_t *sel, char *id,
                        int64_t *total, rd_err *err) {
  RUN(st, JOB_CREATE, job_create, job, sel, id, total);
}

int rd_store_job_get(rd_store_t *st, const char *id, rd_job_t **out, rd_job_counts_t *counts,
                     rd_err *err) {
  RUN(st, JOB_GET, job_get, id, out, counts);
}

int rd_store_job_list(rd_store_t *st, const char *state, const char *after, int limit,
                      rd_job_cb cb, void *ud, rd_err *err) {
  RUN(st, JOB_LIST, job_list, state, after, limit, cb, ud);
}

int rd_store_job_items(rd_store_t *st, const char *id, const char *outcome, const char *after,
                       int limit, rd_job_item_cb cb, void *ud, rd_err *err) {
  RUN(st, JOB_ITEMS, job_items, id, outcome, after, limit, cb, ud);
}

int rd_store_job_mark(rd_store_t *st, const char *id, const char *const *items, size_t n,
                      const rd_job_item_t *m, int64_t *n_changed, rd_err *err) {
  RUN(st, JOB_MARK, job_mark, id, items, n, m, n_changed);
}

int rd_store_job_own(rd_store_t *st, const char *id, int what, const char *owner, double ttl,
                     int *ok, rd_err *err) {
  RUN(st, JOB_OWN, job_own, id, what, owner, ttl, ok);
}

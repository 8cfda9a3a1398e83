/* Health on PostgreSQL: the figures, p95 (percentile_disc: the nearest
 * rank, as on SQLite) and the top reasons in one statement, so they come
 * from one snapshot and no execution row leaves the server. One row per top
 * reason (or one row without a reason), the figures repeated on each. The
 * top reasons are the fingerprint groups of failed executions. */
#include "store/pg_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int q_health(rd_buf *q, const void *ud) {
  const rd__op *op = ud;
  int r = rd__buf_adds(q, "WITH e AS (SELECT status, duration, fingerprint, cause FROM execution"
                          " WHERE true");
  if (!r && op->a.health.scenario_id) r = rd__buf_adds(q, " AND scenario_id = :scenario");
  if (!r && !isnan(op->a.health.since)) r = rd__buf_adds(q, " AND started_at >= :since");
  if (!r)
    r = rd__buf_adds(
        q, "), f AS (SELECT count(*) AS total,"
           " count(*) FILTER (WHERE status <> 'running') AS finished,"
           " count(*) FILTER (WHERE status IN ('success', 'warning')) AS succeeded,"
           " count(*) FILTER (WHERE status = 'error') AS failed,"
           " count(*) FILTER (WHERE status = 'running') AS running,"
           " avg(duration) FILTER (WHERE status <> 'running') AS avg_duration,"
           " percentile_disc(0.95) WITHIN GROUP (ORDER BY duration)"
           "   FILTER (WHERE status <> 'running' AND duration IS NOT NULL) AS p95"
           " FROM e),"
           /* by fingerprint (the failures of one cause), each shown with
            * its cause, as on SQLite */
           " t AS (SELECT coalesce(min(cause), 'unknown') COLLATE \"C\" AS why, count(*) AS n,"
           " fingerprint FROM e WHERE status = 'error'"
           " GROUP BY fingerprint ORDER BY n DESC, why LIMIT :top)"
           " SELECT f.total, f.finished, f.succeeded, f.failed, f.running, f.avg_duration,"
           " f.p95, t.why, t.n, t.fingerprint FROM f LEFT JOIN t ON true ORDER BY t.n DESC, t.why");
  return r;
}

static int health_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add_built(r, q_health, op, err);
  if (e) return e;
  rd__pg_int(r, ":scenario", op->a.health.scenario_id);
  rd__pg_real(r, ":since", op->a.health.since);
  rd__pg_int(r, ":top", rd__st_top(op->a.health.top));
  return 0;
}

static int64_t num(const rd__pgreq *r, int i, int c) {
  const char *v = rd__pg_value(r, 0, i, c);
  return v ? strtoll(v, NULL, 10) : 0;
}

static double real(const rd__pgreq *r, int i, int c) {
  const char *v = rd__pg_value(r, 0, i, c);
  return v ? strtod(v, NULL) : NAN;
}

static int health_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  rd_health_t h = {.success_rate = NAN};
  int n = rd__pg_rows(r, 0);
  if (n > 0) {
    h.total = num(r, 0, 0);
    h.finished = num(r, 0, 1);
    h.succeeded = num(r, 0, 2);
    h.failed = num(r, 0, 3);
    h.running = num(r, 0, 4);
    h.avg_duration = real(r, 0, 5);
    h.p95_duration = real(r, 0, 6);
  } else {
    h.avg_duration = h.p95_duration = NAN;
  }
  if (h.succeeded + h.failed > 0)
    h.success_rate = (double)h.succeeded / (double)(h.succeeded + h.failed);
  for (int i = 0; i < n && h.n_top < RD_HEALTH_TOP_MAX; i++) {
    const char *why = rd__pg_value(r, 0, i, 7);
    if (!why) continue;
    char *copy = strdup(why);
    if (!copy) {
      rd_store_health_free(&h);
      return rd_err_set(err, RD_ENOMEM, "store: out of memory");
    }
    const char *fp = rd__pg_value(r, 0, i, 9);
    snprintf(h.top[h.n_top].fingerprint, sizeof h.top[h.n_top].fingerprint, "%s", fp ? fp : "");
    h.top[h.n_top].reason = copy;
    h.top[h.n_top++].count = num(r, i, 8);
  }
  *op->a.health.out = h;
  return 0;
}

const rd__pgop rd__pg_health = {health_build, health_read};

/* Health of a scenario (or of all): counts, average and p95 duration, top
 * failure reasons, all computed by SQLite over the executions, so no row is
 * loaded into memory. */
#include "store/sqlite_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prepare head + filter conditions + tail for the given filter. */
static int prep(rd_store_t *st, const char *head, int scenario, int since, const char *tail,
                sqlite3_stmt **s, rd_err *err) {
  rd_buf q = {0};
  int r = rd__buf_adds(&q, head);
  if (!r && scenario) r = rd__buf_adds(&q, " AND e.scenario_id = :scenario");
  if (!r && since) r = rd__buf_adds(&q, " AND e.started_at >= :since");
  if (!r) r = rd__buf_adds(&q, tail);
  r = r ? rd_err_set(err, RD_ENOMEM, "store: out of memory") : rd__st_prep(st, q.data, s, err);
  rd__buf_free(&q);
  return r;
}

int rd__sq_health(rd_store_t *st, int64_t scenario_id, double since, int top, rd_health_t *out,
                    rd_err *err) {
  top = rd__st_top(top);
  int use_scn = scenario_id != 0, use_since = !isnan(since);
  rd_health_t h = {.success_rate = NAN, .avg_duration = NAN, .p95_duration = NAN};
  int64_t ndur = 0;
  sqlite3_stmt *s;
  /* One read transaction, so the figures agree with each other. */
  int r = sqlite3_exec(st->sq->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
              ? 0 : rd__st_fail(st, sqlite3_errcode(st->sq->db), "cannot read", err);
  if (r) return r;
  r = prep(st,
           "SELECT count(*), total(e.status <> 'running'),"
           " total(e.status IN ('success', 'warning')), total(e.status = 'error'),"
           " total(e.status = 'running'),"
           " avg(CASE WHEN e.status <> 'running' THEN e.duration END),"
           " count(CASE WHEN e.status <> 'running' THEN e.duration END)"
           " FROM execution e WHERE 1",
           use_scn, use_since, "", &s, err);
  if (!r) {
    rd__bind_int(s, ":scenario", scenario_id);
    rd__bind_double(s, ":since", since);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      h.total = sqlite3_column_int64(s, 0);
      h.finished = sqlite3_column_int64(s, 1);
      h.succeeded = sqlite3_column_int64(s, 2);
      h.failed = sqlite3_column_int64(s, 3);
      h.running = sqlite3_column_int64(s, 4);
      h.avg_duration = rd__col_double(s, 5);
      ndur = sqlite3_column_int64(s, 6);
    } else {
      r = rd__st_fail(st, rc, "cannot read", err);
    }
    sqlite3_reset(s);
  }
  if (!r && h.succeeded + h.failed > 0)
    h.success_rate = (double)h.succeeded / (double)(h.succeeded + h.failed);
  /* p95 by nearest rank: the ceil(0.95 n)-th smallest duration. */
  if (!r && ndur > 0) {
    r = prep(st,
             "SELECT e.duration FROM execution e WHERE e.status <> 'running'"
             " AND e.duration IS NOT NULL",
             use_scn, use_since, " ORDER BY e.duration LIMIT 1 OFFSET :off", &s, err);
    if (!r) {
      rd__bind_int(s, ":scenario", scenario_id);
      rd__bind_double(s, ":since", since);
      rd__bind_int(s, ":off", (ndur * 95 + 99) / 100 - 1);
      int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) h.p95_duration = rd__col_double(s, 0);
      else if (rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
      sqlite3_reset(s);
    }
  }
  if (!r && h.failed > 0) {
    /* by fingerprint (the failures of one cause, src/core/fingerprint.c),
     * each shown with its cause */
    r = prep(st,
             "SELECT coalesce(min(e.cause), 'unknown') AS why, count(*) AS n, e.fingerprint"
             " FROM execution e WHERE e.status = 'error'",
             use_scn, use_since, " GROUP BY e.fingerprint ORDER BY n DESC, why LIMIT :top", &s,
             err);
    if (!r) {
      rd__bind_int(s, ":scenario", scenario_id);
      rd__bind_double(s, ":since", since);
      rd__bind_int(s, ":top", top);
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW && h.n_top < RD_HEALTH_TOP_MAX) {
        const char *reason = rd__col_text(s, 0);
        char *copy = strdup(reason ? reason : "unknown");
        if (!copy) {
          r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
          break;
        }
        const char *fp = rd__col_text(s, 2);
        snprintf(h.top[h.n_top].fingerprint, sizeof h.top[h.n_top].fingerprint, "%s",
                 fp ? fp : "");
        h.top[h.n_top].reason = copy;
        h.top[h.n_top++].count = sqlite3_column_int64(s, 1);
      }
      if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW) r = rd__st_fail(st, rc, "cannot read", err);
      sqlite3_reset(s);
    }
  }
  sqlite3_exec(st->sq->db, "COMMIT", NULL, NULL, NULL);
  if (r) {
    rd_store_health_free(&h);
    return r;
  }
  *out = h;
  return 0;
}

/* Executions: one row per run (or retry) of a scenario; run_data and error
 * are JSON text the Lua layer decodes. */
#include "store/store_int.h"

#include "core/ids.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

/* run_data last, so lists can leave it out. */
#define COLS                                                                          \
  "id, scenario_id, status, mode, started_at, stopped_at, duration, operations, "     \
  "transfer, attempts, error, retry_of, retry_success_id, parent_id, dlq_id"

static void read_row(sqlite3_stmt *s, rd_exec_t *e, int with_run_data) {
  *e = (rd_exec_t){
    .id = rd__col_text(s, 0),
    .scenario_id = sqlite3_column_int64(s, 1),
    .status = rd__col_text(s, 2),
    .mode = rd__col_text(s, 3),
    .started_at = rd__col_double(s, 4),
    .stopped_at = rd__col_double(s, 5),
    .duration = rd__col_double(s, 6),
    .operations = sqlite3_column_int64(s, 7),
    .transfer = sqlite3_column_int64(s, 8),
    .attempts = sqlite3_column_int64(s, 9),
    .error = rd__col_text(s, 10),
    .retry_of = rd__col_text(s, 11),
    .retry_success_id = rd__col_text(s, 12),
    .parent_id = rd__col_text(s, 13),
    .dlq_id = rd__col_text(s, 14),
    .run_data = with_run_data ? rd__col_text(s, 15) : NULL,
  };
}

static void bind_fields(sqlite3_stmt *s, const rd_exec_t *e) {
  if (e->scenario_id) rd__bind_int(s, ":scenario_id", e->scenario_id);
  rd__bind_text(s, ":status", e->status);
  rd__bind_text(s, ":mode", e->mode);
  rd__bind_double(s, ":started_at", e->started_at);
  rd__bind_double(s, ":stopped_at", e->stopped_at);
  rd__bind_double(s, ":duration", e->duration);
  rd__bind_int(s, ":operations", e->operations);
  rd__bind_int(s, ":transfer", e->transfer);
  rd__bind_int(s, ":attempts", e->attempts);
  rd__bind_text(s, ":error", e->error);
  rd__bind_text(s, ":run_data", e->run_data);
  rd__bind_text(s, ":retry_of", e->retry_of);
  rd__bind_text(s, ":retry_success_id", e->retry_success_id);
  rd__bind_text(s, ":parent_id", e->parent_id);
  rd__bind_text(s, ":dlq_id", e->dlq_id);
}

int rd__exec_put(rd_store_t *st, const rd_exec_t *e, const char *id, const char *dlq_id,
                 rd_err *err) {
  if (!rd__st_valid_status(e->status))
    return rd_err_set(err, RD_EINVALID, "store: invalid execution status '%s'",
                      e->status ? e->status : "(none)");
  sqlite3_stmt *s;
  int r = rd__st_prep(
      st,
      "INSERT INTO execution (id, scenario_id, status, mode, started_at, stopped_at, duration,"
      " operations, transfer, attempts, error, run_data, retry_of, retry_success_id, parent_id,"
      " dlq_id) VALUES (:id, :scenario_id, :status, :mode, :started_at, :stopped_at, :duration,"
      " :operations, :transfer, :attempts, :error, :run_data, :retry_of, :retry_success_id,"
      " :parent_id, :dlq_id)"
      " ON CONFLICT (id) DO UPDATE SET scenario_id = excluded.scenario_id,"
      " status = excluded.status, mode = excluded.mode, started_at = excluded.started_at,"
      " stopped_at = excluded.stopped_at, duration = excluded.duration,"
      " operations = excluded.operations, transfer = excluded.transfer,"
      " attempts = excluded.attempts, error = excluded.error, run_data = excluded.run_data,"
      " retry_of = excluded.retry_of, retry_success_id = excluded.retry_success_id,"
      " parent_id = excluded.parent_id, dlq_id = excluded.dlq_id",
      &s, err);
  if (r) return r;
  bind_fields(s, e);
  rd__bind_text(s, ":id", id);
  if (dlq_id) rd__bind_text(s, ":dlq_id", dlq_id);
  return rd__st_exec(st, s, "cannot write an execution to", err);
}

int rd_store_exec_get(rd_store_t *st, const char *id, rd_exec_t **out, rd_err *err) {
  static const size_t offs[] = {
    offsetof(rd_exec_t, id), offsetof(rd_exec_t, status), offsetof(rd_exec_t, mode),
    offsetof(rd_exec_t, error), offsetof(rd_exec_t, run_data), offsetof(rd_exec_t, retry_of),
    offsetof(rd_exec_t, retry_success_id), offsetof(rd_exec_t, parent_id),
    offsetof(rd_exec_t, dlq_id),
  };
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "SELECT " COLS ", run_data FROM execution WHERE id = :id", &s, err);
  if (r) return r;
  rd__bind_text(s, ":id", id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rd_exec_t e;
    read_row(s, &e, 1);
    rd_exec_t *copy = rd__st_dup(&e, sizeof e, offs, sizeof offs / sizeof offs[0]);
    if (copy) *out = copy;
    else r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  } else if (rc == SQLITE_DONE) {
    r = rd_err_set(err, RD_ENOT_FOUND, "store: no execution '%s'", id);
  } else {
    r = rd__st_fail(st, rc, "cannot read", err);
  }
  sqlite3_reset(s);
  return r;
}

int rd_store_exec_list(rd_store_t *st, const rd_exec_filter_t *f, rd_exec_cb cb, void *ud,
                       rd_err *err) {
  int limit;
  int r = rd__st_limit(f->limit, &limit, err);
  if (r) return r;
  /* One cached statement per combination of filters, so each can use the
   * index that fits it. */
  rd_buf q = {0};
  r = rd__buf_adds(&q, "SELECT " COLS " FROM execution WHERE 1");
  if (!r && f->scenario_id) r = rd__buf_adds(&q, " AND scenario_id = :scenario");
  if (!r && f->status) r = rd__buf_adds(&q, " AND status = :status");
  if (!r && f->mode) r = rd__buf_adds(&q, " AND mode = :mode");
  if (!r && !isnan(f->since)) r = rd__buf_adds(&q, " AND started_at >= :since");
  if (!r && !isnan(f->until)) r = rd__buf_adds(&q, " AND started_at < :until");
  if (!r && f->after) r = rd__buf_adds(&q, " AND id > :after");
  if (!r) r = rd__buf_adds(&q, " ORDER BY id LIMIT :limit");
  sqlite3_stmt *s = NULL;
  if (r) r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  else r = rd__st_prep(st, q.data, &s, err);
  rd__buf_free(&q);
  if (r) return r;
  rd__bind_int(s, ":scenario", f->scenario_id);
  rd__bind_text(s, ":status", f->status);
  rd__bind_text(s, ":mode", f->mode);
  rd__bind_double(s, ":since", f->since);
  rd__bind_double(s, ":until", f->until);
  rd__bind_text(s, ":after", f->after);
  rd__bind_int(s, ":limit", limit);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_exec_t e;
    read_row(s, &e, 0);
    if (cb(&e, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd_store_exec_update(rd_store_t *st, const char *id, const rd_exec_t *f, unsigned mask,
                         rd_err *err) {
  if ((mask & RD_EXEC_STATUS) && !rd__st_valid_status(f->status))
    return rd_err_set(err, RD_EINVALID, "store: invalid execution status '%s'",
                      f->status ? f->status : "(none)");
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  /* One statement for every mask: a field keeps its value unless its bit is set. */
  r = rd__st_prep(
      st,
      "UPDATE execution SET"
      " status = CASE WHEN :mask & 1 THEN :status ELSE status END,"
      " mode = CASE WHEN :mask & 2 THEN :mode ELSE mode END,"
      " started_at = CASE WHEN :mask & 4 THEN :started_at ELSE started_at END,"
      " stopped_at = CASE WHEN :mask & 8 THEN :stopped_at ELSE stopped_at END,"
      " duration = CASE WHEN :mask & 16 THEN :duration ELSE duration END,"
      " operations = CASE WHEN :mask & 32 THEN :operations ELSE operations END,"
      " transfer = CASE WHEN :mask & 64 THEN :transfer ELSE transfer END,"
      " attempts = CASE WHEN :mask & 128 THEN :attempts ELSE attempts END,"
      " error = CASE WHEN :mask & 256 THEN :error ELSE error END,"
      " run_data = CASE WHEN :mask & 512 THEN :run_data ELSE run_data END,"
      " retry_of = CASE WHEN :mask & 1024 THEN :retry_of ELSE retry_of END,"
      " retry_success_id = CASE WHEN :mask & 2048 THEN :retry_success_id"
      "   ELSE retry_success_id END,"
      " parent_id = CASE WHEN :mask & 4096 THEN :parent_id ELSE parent_id END,"
      " dlq_id = CASE WHEN :mask & 8192 THEN :dlq_id ELSE dlq_id END,"
      " scenario_id = CASE WHEN :mask & 16384 THEN :scenario_id ELSE scenario_id END"
      " WHERE id = :id",
      &s, err);
  if (!r) {
    bind_fields(s, f);
    rd__bind_int(s, ":mask", mask);
    rd__bind_text(s, ":id", id);
    r = rd__st_exec(st, s, "cannot update an execution in", err);
  }
  if (!r && sqlite3_changes(st->db) == 0)
    r = rd_err_set(err, RD_ENOT_FOUND, "store: no execution '%s'", id);
  return rd__st_end(st, r, err);
}

int rd_store_exec_delete(rd_store_t *st, const char *id, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st, "DELETE FROM execution WHERE id = :id", &s, err);
  if (!r) {
    rd__bind_text(s, ":id", id);
    r = rd__st_exec(st, s, "cannot delete an execution from", err);
  }
  if (!r && sqlite3_changes(st->db) == 0)
    r = rd_err_set(err, RD_ENOT_FOUND, "store: no execution '%s'", id);
  return rd__st_end(st, r, err);
}

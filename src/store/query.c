/* The queries both backends build from a caller's filter: the SQL text (one
 * statement per combination of filters, so each can use the index that
 * fits it) and the binding of its parameters, through the backend's binder.
 * Where the dialects differ -- how a pending item is written, so that the
 * partial indexes on pending items apply -- the dialect says. */
#include "store/record.h"

#include <math.h>
#include <stdlib.h>

const rd__dialect rd__dialect_sqlite = {
  " AND resolved = 0", " AND resolved = 1",
  "SELECT value FROM json_each(", ")", "json_each(", ") AS v",
};
const rd__dialect rd__dialect_pg = {
  " AND NOT resolved", " AND resolved",
  "SELECT json_array_elements_text(", "::json)", "json_array_elements_text(", "::json) AS v(value)",
};

int rd__sql_exec_list(rd_buf *q, const rd_exec_filter_t *f) {
  int r = rd__sql_select(q, &rd__rec_exec, 0);
  if (!r) r = rd__buf_adds(q, " WHERE true");
  if (!r && f->scenario_id) r = rd__buf_adds(q, " AND scenario_id = :scenario");
  if (!r && f->status) r = rd__buf_adds(q, " AND status = :status");
  if (!r && f->mode) r = rd__buf_adds(q, " AND mode = :mode");
  if (!r && !isnan(f->since)) r = rd__buf_adds(q, " AND started_at >= :since");
  if (!r && !isnan(f->until)) r = rd__buf_adds(q, " AND started_at < :until");
  if (!r && f->after) r = rd__buf_adds(q, " AND id > :after");
  if (!r && f->fingerprint) r = rd__buf_adds(q, " AND fingerprint = :fingerprint");
  return r ? r : rd__buf_adds(q, " ORDER BY id LIMIT :limit");
}

void rd__bind_exec_list(const rd__binder *b, void *s, const rd_exec_filter_t *f, int limit) {
  b->i64(s, ":scenario", f->scenario_id);
  b->text(s, ":status", f->status);
  b->text(s, ":mode", f->mode);
  b->real(s, ":since", f->since);
  b->real(s, ":until", f->until);
  b->text(s, ":after", f->after);
  b->text(s, ":fingerprint", f->fingerprint);
  b->i64(s, ":limit", limit);
}

int rd__sql_dlq_filter(rd_buf *q, const rd__dialect *d, const rd_dlq_filter_t *f, int full) {
  int r = rd__buf_adds(q, " WHERE true");
  if (!r && f->scenario_id) r = rd__buf_adds(q, " AND scenario_id = :scenario");
  if (!r && f->resolved == 0) r = rd__buf_adds(q, d->pending);
  if (!r && f->resolved == 1) r = rd__buf_adds(q, d->resolved);
  if (!r && full && !isnan(f->since)) r = rd__buf_adds(q, " AND created >= :since");
  if (!r && full && !isnan(f->until)) r = rd__buf_adds(q, " AND created < :until");
  if (!r && f->after) r = rd__buf_adds(q, " AND id > :after");
  if (!r && f->fingerprint) r = rd__buf_adds(q, " AND fingerprint = :fingerprint");
  return r;
}

void rd__bind_dlq_filter(const rd__binder *b, void *s, const rd_dlq_filter_t *f) {
  b->i64(s, ":scenario", f->scenario_id);
  b->real(s, ":since", f->since);
  b->real(s, ":until", f->until);
  b->text(s, ":after", f->after);
  b->text(s, ":fingerprint", f->fingerprint);
}

int rd__sql_logs(rd_buf *q, const rd_log_filter_t *f) {
  int r = rd__sql_select(q, &rd__rec_log, 1);
  if (!r) r = rd__buf_adds(q, " WHERE dlq_id = :id");
  if (!r && f->status) r = rd__buf_adds(q, " AND status = :status");
  if (!r && !isnan(f->from)) r = rd__buf_adds(q, " AND timestamp >= :from");
  if (!r && !isnan(f->to)) r = rd__buf_adds(q, " AND timestamp < :to");
  if (!r && f->after) r = rd__buf_adds(q, " AND id > :after");
  return r ? r : rd__buf_adds(q, " ORDER BY id LIMIT :limit");
}

void rd__bind_logs(const rd__binder *b, void *s, const char *dlq_id, const rd_log_filter_t *f,
                   int limit) {
  b->text(s, ":id", dlq_id);
  b->i64(s, ":status", f->status);
  b->real(s, ":from", f->from);
  b->real(s, ":to", f->to);
  b->text(s, ":after", f->after);
  b->i64(s, ":limit", limit);
}

void rd__group_scenarios(rd_group_t *g, const char *list) {
  for (const char *p = list; p && *p;) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p) break;
    if (g->n_scenarios < RD_GROUP_SCENARIOS) g->scenarios[g->n_scenarios++] = v;
    else g->more_scenarios++;
    p = *end == ',' ? end + 1 : end;
  }
}

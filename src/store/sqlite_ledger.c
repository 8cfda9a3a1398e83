/* The ledger (ledger.h) on SQLite. Each operation is one write transaction
 * (BEGIN IMMEDIATE), which SQLite serialises across processes, so a take
 * sees every lease and done action committed before it. */
#include "store/sqlite_int.h"

#include <stdio.h>
#include <string.h>

/* The upsert that takes the lease: inserted, or the row updated only when
 * nobody else holds it (free or ours) and the action is not done. An
 * expired lease is not free: its holder stopped renewing it mid-call
 * (crashed, cut off), so its call may or may not have reached the
 * platform -- the item is in doubt until a reconciliation settles it.
 * changes() says whether it was taken. */
#define Q_TAKE                                                                        \
  "INSERT INTO ledger_item (source, item, action, owner, state, expiry, host, pid, rule," \
  " updated) VALUES (:source, :item, :action, :owner, 'leased', :expiry, :host, :pid,"  \
  " :rule, :now) ON CONFLICT (source, item) DO UPDATE SET action = excluded.action,"     \
  " owner = excluded.owner, state = 'leased', expiry = excluded.expiry,"                \
  " host = excluded.host, pid = excluded.pid, rule = excluded.rule,"                    \
  " updated = excluded.updated"                                                         \
  " WHERE (ledger_item.owner IS NULL OR ledger_item.owner = excluded.owner)"            \
  " AND instr(ledger_item.done, ' ' || excluded.action || ' ') = 0"
#define Q_HOLDER                                                                      \
  "SELECT instr(done, ' ' || :action || ' ') > 0,"                                     \
  " CASE WHEN state = 'leased' AND expiry <= :now THEN 'unknown' ELSE state END,"    \
  " host, pid, updated, expiry FROM ledger_item WHERE source = :source AND item = :item"

static int holder(rd_store_t *st, const rd__ledger_take *t, double now, rd__ledger_hold *h,
                  rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, Q_HOLDER, &s, err);
  if (r) return r;
  rd__bind_text(s, ":source", t->source);
  rd__bind_text(s, ":item", t->item);
  rd__bind_text(s, ":action", t->action);
  rd__bind_double(s, ":now", now);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rd__ledger_why(h, sqlite3_column_int(s, 0), rd__col_text(s, 1));
    const char *host = rd__col_text(s, 2);
    snprintf(h->host, sizeof h->host, "%s", host ? host : "");
    h->pid = sqlite3_column_int64(s, 3);
    h->since = rd__col_double(s, 4);
    h->expiry = rd__col_double(s, 5);
  } else if (rc != SQLITE_DONE) {
    r = rd__st_fail(st, rc, "cannot read the ledger in", err);
  }
  sqlite3_reset(s);
  return r;
}

int rd__sq_ledger_take(rd_store_t *st, const rd__ledger_take *t, rd__ledger_hold *h,
                       rd_err *err) {
  *h = (rd__ledger_hold){.since = RD_STORE_NONE, .expiry = RD_STORE_NONE};
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  double now = rd__st_now();
  r = rd__st_prep(st, Q_TAKE, &s, err);
  if (!r) {
    rd__bind_text(s, ":source", t->source);
    rd__bind_text(s, ":item", t->item);
    rd__bind_text(s, ":action", t->action);
    rd__bind_text(s, ":owner", t->owner);
    rd__bind_text(s, ":host", t->host);
    rd__bind_int(s, ":pid", t->pid);
    rd__bind_text(s, ":rule", t->rule);
    rd__bind_double(s, ":now", now);
    rd__bind_double(s, ":expiry", now + t->ttl);
    r = rd__st_exec(st, s, "cannot take a lease in the ledger of", err);
  }
  if (!r) h->taken = rd__st_changes(st) > 0;
  if (!r && !h->taken) r = holder(st, t, now, h, err);
  return rd__st_end(st, r, err);
}

int rd__sq_ledger_renew(rd_store_t *st, const char *owner, double ttl, int64_t *n, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st, "UPDATE ledger_item SET expiry = :expiry"
                      " WHERE owner = :owner AND state = 'leased'", &s, err);
  if (!r) {
    rd__bind_text(s, ":owner", owner);
    rd__bind_double(s, ":expiry", rd__st_now() + ttl);
    r = rd__st_exec(st, s, "cannot renew leases in the ledger of", err);
  }
  int64_t changed = r ? 0 : rd__st_changes(st);
  r = rd__st_end(st, r, err);
  if (!r && n) *n = changed;
  return r;
}

/* The lease ends as the outcome says; owner NULL settles one in doubt
 * ('unknown', or expired). */
#define Q_SETTLE                                                                       \
  "UPDATE ledger_item SET"                                                             \
  " owner = CASE WHEN :outcome = 'unknown' THEN owner END,"                            \
  " state = CASE WHEN :outcome = 'unknown' THEN 'unknown' END, expiry = NULL,"         \
  " done = CASE WHEN :outcome = 'done' AND instr(done, ' ' || :action || ' ') = 0"     \
  " THEN done || :action || ' ' ELSE done END,"                                        \
  " action = :action, host = :host, pid = :pid, rule = :rule, updated = :now"          \
  " WHERE source = :source AND item = :item"                                           \
  " AND (owner = :owner OR (:owner IS NULL"                                            \
  " AND (state = 'unknown' OR expiry <= :now)))"
#define Q_EVENT                                                                        \
  "INSERT INTO ledger_event (time, host, pid, source, item, action, outcome, code, rule," \
  " execution, message) VALUES (:now, :host, :pid, :source, :item, :action, :outcome,"  \
  " :code, :rule, :execution, :message)"

static void bind_settle(sqlite3_stmt *s, const rd__ledger_settle *l, double now) {
  rd__bind_text(s, ":source", l->source);
  rd__bind_text(s, ":item", l->item);
  rd__bind_text(s, ":action", l->action);
  rd__bind_text(s, ":owner", l->owner);
  rd__bind_text(s, ":outcome", l->outcome);
  rd__bind_text(s, ":host", l->host);
  rd__bind_int(s, ":pid", l->pid);
  rd__bind_text(s, ":code", l->code);
  rd__bind_text(s, ":rule", l->rule);
  rd__bind_text(s, ":execution", l->execution);
  rd__bind_text(s, ":message", l->message);
  rd__bind_double(s, ":now", now);
}

int rd__sq_ledger_settle(rd_store_t *st, const rd__ledger_settle *l, int64_t *n, rd_err *err) {
  int r = rd__st_begin(st, err);
  if (r) return r;
  double now = rd__st_now();
  int64_t changed = 0;
  sqlite3_stmt *s;
  if (strcmp(l->outcome, "skipped")) { /* a skip held no lease */
    r = rd__st_prep(st, Q_SETTLE, &s, err);
    if (!r) {
      bind_settle(s, l, now);
      r = rd__st_exec(st, s, "cannot record an outcome in the ledger of", err);
    }
    if (!r) changed = rd__st_changes(st);
  }
  if (!r) r = rd__st_prep(st, Q_EVENT, &s, err);
  if (!r) {
    bind_settle(s, l, now);
    r = rd__st_exec(st, s, "cannot record an outcome in the ledger of", err);
  }
  r = rd__st_end(st, r, err);
  if (!r && n) *n = changed;
  return r;
}

#define Q_EVENTS                                                                       \
  "SELECT id, time, host, pid, source, item, action, outcome, code, rule, execution,"   \
  " message FROM ledger_event WHERE id > :after"                                       \
  " AND (:since IS NULL OR time >= :since)"                                            \
  " AND (:source IS NULL OR source = :source"                                          \
  " OR substr(source, 1, length(:source) + 1) = :source || ' ')"                       \
  " ORDER BY id LIMIT :limit"

int rd__sq_ledger_events(rd_store_t *st, const rd__ledger_filter *f, rd__ledger_cb cb, void *ud,
                         rd_err *err) {
  int limit, r = rd__st_limit(f->limit, &limit, err);
  sqlite3_stmt *s;
  if (!r) r = rd__st_prep(st, Q_EVENTS, &s, err);
  if (r) return r;
  rd__bind_int(s, ":after", f->after);
  rd__bind_double(s, ":since", f->since);
  rd__bind_text(s, ":source", f->source);
  rd__bind_int(s, ":limit", limit);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd__ledger_event ev = {
      .id = sqlite3_column_int64(s, 0), .time = rd__col_double(s, 1),
      .host = rd__col_text(s, 2), .pid = sqlite3_column_int64(s, 3),
      .source = rd__col_text(s, 4), .item = rd__col_text(s, 5), .action = rd__col_text(s, 6),
      .outcome = rd__col_text(s, 7), .code = rd__col_text(s, 8), .rule = rd__col_text(s, 9),
      .execution = rd__col_text(s, 10), .message = rd__col_text(s, 11),
    };
    if (cb(&ev, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read the ledger of", err);
  sqlite3_reset(s);
  return r;
}

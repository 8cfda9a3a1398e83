/* The ledger (ledger.h) on PostgreSQL; the same statements as on SQLite
 * (sqlite_ledger.c says why an expired lease is not free). Each operation
 * is one request, its statements one transaction (a pipeline segment). A
 * take is one upsert:
 * two hosts taking the same row at once are serialised by its row lock,
 * and ON CONFLICT's WHERE is checked on the row as the other committed it,
 * so exactly one of them takes it. Times are the server's clock, the same
 * for every host. */
#include "store/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW "extract(epoch FROM clock_timestamp())::double precision"

#define Q_TAKE                                                                        \
  "INSERT INTO ledger_item (source, item, action, owner, state, expiry, host, pid, rule," \
  " updated) VALUES (:source, :item, :action, :owner, 'leased', " NOW " + :ttl, :host,"  \
  " :pid, :rule, " NOW ") ON CONFLICT (source, item) DO UPDATE SET"                      \
  " action = excluded.action, owner = excluded.owner, state = 'leased',"                 \
  " expiry = excluded.expiry, host = excluded.host, pid = excluded.pid,"                 \
  " rule = excluded.rule, updated = excluded.updated"                                    \
  " WHERE (ledger_item.owner IS NULL OR ledger_item.owner = excluded.owner)"             \
  " AND strpos(ledger_item.done, ' ' || excluded.action || ' ') = 0 RETURNING 1"
#define Q_HOLDER                                                                      \
  "SELECT strpos(done, ' ' || :action || ' ') > 0,"                                    \
  " CASE WHEN state = 'leased' AND expiry <= " NOW " THEN 'unknown' ELSE state END,"   \
  " host, pid, updated, expiry FROM ledger_item WHERE source = :source AND item = :item"

static void bind_take(rd__pgreq *r, const rd__ledger_take *t) {
  rd__pg_text(r, ":source", t->source);
  rd__pg_text(r, ":item", t->item);
  rd__pg_text(r, ":action", t->action);
  rd__pg_text(r, ":owner", t->owner);
  rd__pg_text(r, ":host", t->host);
  rd__pg_int(r, ":pid", t->pid);
  rd__pg_text(r, ":rule", t->rule);
  rd__pg_real(r, ":ttl", t->ttl);
}

static int take_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd__ledger_take *t = op->a.ledger_take.t;
  int e = rd__pg_add(r, Q_TAKE, err);
  if (e) return e;
  bind_take(r, t);
  /* read in the same transaction: who holds it, when the take failed */
  e = rd__pg_add(r, Q_HOLDER, err);
  if (!e) bind_take(r, t);
  return e;
}

static double real_at(const rd__pgreq *r, int c) {
  const char *v = rd__pg_value(r, 1, 0, c);
  return v ? strtod(v, NULL) : RD_STORE_NONE;
}

static int take_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  rd__ledger_hold *h = op->a.ledger_take.out;
  *h = (rd__ledger_hold){.taken = rd__pg_rows(r, 0) > 0, .since = RD_STORE_NONE,
                         .expiry = RD_STORE_NONE};
  if (h->taken || rd__pg_rows(r, 1) < 1) {
    if (!h->taken) rd__ledger_why(h, 0, NULL);
    return 0;
  }
  const char *done = rd__pg_value(r, 1, 0, 0), *host = rd__pg_value(r, 1, 0, 2);
  rd__ledger_why(h, done && done[0] == 't', rd__pg_value(r, 1, 0, 1));
  snprintf(h->host, sizeof h->host, "%s", host ? host : "");
  const char *pid = rd__pg_value(r, 1, 0, 3);
  h->pid = pid ? strtoll(pid, NULL, 10) : 0;
  h->since = real_at(r, 4);
  h->expiry = real_at(r, 5);
  return 0;
}

const rd__pgop rd__pg_ledger_take = {take_build, take_read};

static int renew_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  int e = rd__pg_add(r, "UPDATE ledger_item SET expiry = " NOW " + :ttl"
                        " WHERE owner = :owner AND state = 'leased'", err);
  if (e) return e;
  rd__pg_text(r, ":owner", op->a.ledger_renew.owner);
  rd__pg_real(r, ":ttl", op->a.ledger_renew.ttl);
  return 0;
}

static int renew_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.ledger_renew.n) *op->a.ledger_renew.n = rd__pg_changed(r, 0);
  return 0;
}

const rd__pgop rd__pg_ledger_renew = {renew_build, renew_read};

/* As on SQLite (sqlite_ledger.c): the lease ends as the outcome says. */
#define Q_SETTLE                                                                       \
  "UPDATE ledger_item SET"                                                             \
  " owner = CASE WHEN :outcome = 'unknown' THEN owner END,"                            \
  " state = CASE WHEN :outcome = 'unknown' THEN 'unknown' END, expiry = NULL,"         \
  " done = CASE WHEN :outcome = 'done' AND strpos(done, ' ' || :action || ' ') = 0"    \
  " THEN done || :action || ' ' ELSE done END,"                                        \
  " action = :action, host = :host, pid = :pid, rule = :rule, updated = " NOW          \
  " WHERE source = :source AND item = :item"                                           \
  " AND (owner = :owner OR (:owner::text IS NULL"                                      \
  " AND (state = 'unknown' OR expiry <= " NOW ")))"
#define Q_EVENT                                                                        \
  "INSERT INTO ledger_event (time, host, pid, source, item, action, outcome, code, rule," \
  " execution, message) VALUES (" NOW ", :host, :pid, :source, :item, :action,"         \
  " :outcome, :code, :rule, :execution, :message)"

static void bind_settle(rd__pgreq *r, const rd__ledger_settle *l) {
  rd__pg_text(r, ":source", l->source);
  rd__pg_text(r, ":item", l->item);
  rd__pg_text(r, ":action", l->action);
  rd__pg_text(r, ":owner", l->owner);
  rd__pg_text(r, ":outcome", l->outcome);
  rd__pg_text(r, ":host", l->host);
  rd__pg_int(r, ":pid", l->pid);
  rd__pg_text(r, ":code", l->code);
  rd__pg_text(r, ":rule", l->rule);
  rd__pg_text(r, ":execution", l->execution);
  rd__pg_text(r, ":message", l->message);
}

static int settle_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd__ledger_settle *l = op->a.ledger_settle.s;
  int e = rd__pg_add(r, Q_EVENT, err);
  if (!e) bind_settle(r, l);
  if (!e && strcmp(l->outcome, "skipped")) { /* a skip held no lease */
    e = rd__pg_add(r, Q_SETTLE, err);
    if (!e) bind_settle(r, l);
  }
  return e;
}

static int settle_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  int64_t *n = op->a.ledger_settle.n;
  if (n) *n = r->nq > 1 ? rd__pg_changed(r, 1) : 0;
  return 0;
}

const rd__pgop rd__pg_ledger_settle = {settle_build, settle_read};

static int events_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  const rd__ledger_filter *f = op->a.ledger_events.f;
  int limit, e = rd__st_limit(f->limit, &limit, err);
  if (!e)
    e = rd__pg_add(r, "SELECT id, time, host, pid, source, item, action, outcome, code, rule,"
                      " execution, message FROM ledger_event WHERE id > :after"
                      " AND (:since::double precision IS NULL OR time >= :since)"
                      " AND (:source::text IS NULL OR source = :source"
                      " OR substr(source, 1, length(:source) + 1) = :source || ' ')"
                      " ORDER BY id LIMIT :limit", err);
  if (e) return e;
  rd__pg_int(r, ":after", f->after);
  rd__pg_real(r, ":since", f->since);
  rd__pg_text(r, ":source", f->source);
  rd__pg_int(r, ":limit", limit);
  return 0;
}

static int events_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  for (int i = 0, n = rd__pg_rows(r, 0); i < n; i++) {
    const char *id = rd__pg_value(r, 0, i, 0), *t = rd__pg_value(r, 0, i, 1),
               *pid = rd__pg_value(r, 0, i, 3);
    rd__ledger_event ev = {
      .id = id ? strtoll(id, NULL, 10) : 0, .time = t ? strtod(t, NULL) : RD_STORE_NONE,
      .host = rd__pg_value(r, 0, i, 2), .pid = pid ? strtoll(pid, NULL, 10) : 0,
      .source = rd__pg_value(r, 0, i, 4), .item = rd__pg_value(r, 0, i, 5),
      .action = rd__pg_value(r, 0, i, 6), .outcome = rd__pg_value(r, 0, i, 7),
      .code = rd__pg_value(r, 0, i, 8), .rule = rd__pg_value(r, 0, i, 9),
      .execution = rd__pg_value(r, 0, i, 10), .message = rd__pg_value(r, 0, i, 11),
    };
    if (op->a.ledger_events.cb(&ev, op->a.ledger_events.ud))
      return rd_err_set(err, RD_ECANCELED, "store: listing stopped");
  }
  return 0;
}

const rd__pgop rd__pg_ledger_events = {events_build, events_read};

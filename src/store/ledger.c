/* The ledger's parts both backends share (ledger.h): the checks of its
 * operations and how a refused take is named. */
#include "store/ledger.h"

#include "store/store_int.h"

#include <stdio.h>
#include <string.h>

static const char *const OUTCOMES[] = {"done", "failed", "unknown", "skipped"};

int rd__ledger_outcome_ok(const char *s) {
  for (size_t i = 0; s && i < sizeof OUTCOMES / sizeof OUTCOMES[0]; i++)
    if (!strcmp(s, OUTCOMES[i])) return 1;
  return 0;
}

void rd__ledger_why(rd__ledger_hold *h, int done, const char *state) {
  /* a row free of leases that still refused us was taken and freed between
   * the upsert and the read: busy, as a lease */
  const char *why = done ? "done" : (state && !strcmp(state, "unknown")) ? "unknown" : "leased";
  snprintf(h->why, sizeof h->why, "%s", why);
}

static int need(const char *v, const char *what, const char *call, rd_err *err) {
  if (v && *v) return 0;
  return rd_err_set(err, RD_EINVALID, "store: %s needs %s", call, what);
}

static int check_take(const rd__ledger_take *t, rd_err *err) {
  const char *c = "a ledger lease";
  int r = need(t->source, "a source", c, err);
  if (!r) r = need(t->item, "an item", c, err);
  if (!r) r = need(t->action, "an action", c, err);
  if (!r) r = need(t->owner, "an owner", c, err);
  if (!r) r = need(t->host, "a host", c, err);
  if (!r && strlen(t->host) > RD__LEDGER_HOST_LEN)
    r = rd_err_set(err, RD_EINVALID, "store: a ledger host name is longer than %d bytes",
                   RD__LEDGER_HOST_LEN);
  if (!r && strchr(t->action, ' '))
    r = rd_err_set(err, RD_EINVALID, "store: a ledger action has no spaces");
  if (!r && !(t->ttl > 0)) r = rd_err_set(err, RD_EINVALID, "store: %s needs a ttl > 0", c);
  return r;
}

static int check_settle(const rd__ledger_settle *s, rd_err *err) {
  const char *c = "a ledger outcome";
  int r = need(s->source, "a source", c, err);
  if (!r) r = need(s->item, "an item", c, err);
  if (!r) r = need(s->action, "an action", c, err);
  if (!r) r = need(s->host, "a host", c, err);
  if (!r && !rd__ledger_outcome_ok(s->outcome))
    r = rd_err_set(err, RD_EINVALID,
                   "store: a ledger outcome is done, failed, unknown or skipped, not '%s'",
                   s->outcome ? s->outcome : "(none)");
  if (!r && s->owner && !*s->owner) r = need(NULL, "a non-empty owner", c, err);
  return r;
}

int rd__ledger_check(const rd__op *op, rd_err *err) {
  switch (op->kind) {
  case RD__OP_LEDGER_TAKE: return check_take(op->a.ledger_take.t, err);
  case RD__OP_LEDGER_RENEW:
    if (need(op->a.ledger_renew.owner, "an owner", "renewing ledger leases", err))
      return RD_EINVALID;
    if (!(op->a.ledger_renew.ttl > 0))
      return rd_err_set(err, RD_EINVALID, "store: renewing ledger leases needs a ttl > 0");
    return 0;
  case RD__OP_LEDGER_SETTLE: return check_settle(op->a.ledger_settle.s, err);
  case RD__OP_LEDGER_EVENTS: {
    int unused;
    return rd__st_limit(op->a.ledger_events.f->limit, &unused, err);
  }
  default: return 0;
  }
}

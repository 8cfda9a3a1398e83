/* The ledger of remote mutations (src/store/sqlite_ledger.c, pg_ledger.c):
 * what several redrive hosts share so that none acts twice on one item of
 * a remote platform (lua/redrive/ledger.lua and the mutation gate use it).
 *
 * Two tables (schema.c, migration 3 -> 4):
 *   ledger_item  one row per (source, item): the lease on it -- owner (one
 *                per gated call), state 'leased' (renewed while the call
 *                runs) or 'unknown' (an outcome nobody knows), the
 *                host and pid that hold it -- and `done`, the actions whose
 *                outcome was recorded as done (" retry patch "). Taking a
 *                lease is one upsert on that one row, so two hosts racing
 *                for it are serialised by the row (SQLite: the write lock;
 *                PostgreSQL: ON CONFLICT's row lock, its WHERE re-checked
 *                on the row as committed). A lease whose expiry passed
 *                (its host stopped renewing it mid-call: crashed, cut off)
 *                is in doubt like an 'unknown' one: its call may or may not
 *                have reached the platform, so nobody takes it until a
 *                reconciliation (owner NULL) settles it; the crash blocks
 *                only the items it had in flight.
 *   ledger_event the audit: one row per outcome (done, failed, unknown,
 *                skipped), append-only.
 * Times are seconds since the epoch: SQLite takes this host's clock,
 * PostgreSQL the server's (one clock for every host). */
#ifndef RD_STORE_LEDGER_H
#define RD_STORE_LEDGER_H

#include "redrive.h"

#include <stdint.h>

#define RD__LEDGER_HOST_LEN 255

/* Take the lease on (source, item) for action: taken unless another owner
 * holds it (or held it and is in doubt) or action is recorded as done. */
typedef struct rd__ledger_take {
  const char *source, *item, *action, *owner, *host, *rule; /* rule may be NULL */
  int64_t pid;
  double ttl;                                              /* seconds, > 0 */
} rd__ledger_take;

/* What a take found. */
typedef struct rd__ledger_hold {
  int taken;
  char why[8];          /* not taken: "leased", "unknown" (in doubt: an
                           unknown outcome or an expired lease) or "done" */
  char host[RD__LEDGER_HOST_LEN + 1]; /* who holds it / did it last */
  int64_t pid;
  double since;         /* when that row last changed */
  double expiry;        /* "leased": when it expires */
} rd__ledger_hold;

/* Record an outcome: the event, and (unless outcome is "skipped") the
 * lease of owner on (source, item) ends -- "done" adds action to the done
 * actions, "failed" frees it, "unknown" keeps it without expiry. owner
 * NULL: settle a lease in doubt whoever took it (a reconciliation). */
typedef struct rd__ledger_settle {
  const char *source, *item, *action, *owner, *outcome, *host;
  const char *code, *rule, *execution, *message;           /* may be NULL */
  int64_t pid;
} rd__ledger_settle;

/* A filter on the audit: since (RD_STORE_NONE: all), source (NULL: all;
 * a kind alone matches every source of that kind), after an event id. */
typedef struct rd__ledger_filter {
  double since;
  const char *source;
  int64_t after;
  int limit;
} rd__ledger_filter;

/* One event of the audit (strings borrowed for the callback). */
typedef struct rd__ledger_event {
  int64_t id, pid;
  double time;
  const char *host, *source, *item, *action, *outcome, *code, *rule, *execution, *message;
} rd__ledger_event;

typedef int (*rd__ledger_cb)(const rd__ledger_event *ev, void *ud);

struct rd__op;
/* The argument checks of the ledger's operations (op.c calls it for them):
 * 0 or RD_EINVALID naming what is missing. */
int rd__ledger_check(const struct rd__op *op, rd_err *err);
/* The outcomes an event may have ("done", "failed", "unknown", "skipped"):
 * 1 when s is one. */
int rd__ledger_outcome_ok(const char *s);
/* Fill h->why from a row that refused a take: done, else its state. */
void rd__ledger_why(rd__ledger_hold *h, int done, const char *state);

#endif

/* Internals shared by the store's files (src/store/): the store object as
 * the front (store.c, op.c, group.c) and both backends see it, and the
 * helpers every backend uses. SQLite's own internals are in sqlite_int.h,
 * PostgreSQL's in pg_int.h. */
#ifndef RD_STORE_STORE_INT_H
#define RD_STORE_STORE_INT_H

#include "core/buf.h"
#include "redrive.h"
#include "store/backend.h"
#include "store/op.h"
#include "store/record.h"

#include <stddef.h>

struct rd__sq;
struct rd__pg;

struct rd_store {
  const rd__backend *be;
  char *path;              /* the target as shown: a file path, or the URL
                              without its password (rd_redact_url_password) */
  rd_loop_t *loop;         /* the loop the store is attached to */
  rd_loop_t *own_loop;     /* a PostgreSQL store opened without a loop runs
                              one of its own (rd_store_open) */
  /* Group commit on the loop (group.c): a group of this iteration is open
   * (SQLite: the batch transaction writes joined), the hook that ends it
   * before the loop polls, and the writers waiting for it. */
  int group;
  rd_hook_t hook;
  rd_store_wait_t *waiters;
  /* New work (work.c): waits woken by this process's writes and, once the
   * backend listens, by other connections'. */
  struct work_wait *work;
  int listening;
  struct rd__sq *sq;       /* SQLite's part (sqlite*.c) */
  struct rd__pg *pg;       /* PostgreSQL's part (pg*.c) */
};

/* Now, seconds since the epoch with ms precision. */
double rd__st_now(void);
/* Check a page size: 0 -> default, > max -> max; RD_EINVALID if negative. */
int rd__st_limit(int limit, int *out, rd_err *err);
/* How many top reasons health reports: 0 -> 5, capped at RD_HEALTH_TOP_MAX. */
int rd__st_top(int top);
/* Is s one of the execution statuses? */
int rd__st_valid_status(const char *s);
/* Use the caller's id if given (RD_EINVALID unless it is a valid id), else
 * make a new one into out. `what` names the record in the message. */
int rd__pick_id(const char *given, char out[RD_STORE_ID_LEN + 1], const char *what, rd_err *err);
/* RD_EINVALID unless sel names ids or all, without NULL ids. */
int rd__sel_check(const rd_dlq_sel_t *sel, rd_err *err);
/* Argument checks every backend makes before it starts an operation (the
 * same messages whatever holds the store): 0 or RD_EINVALID. */
int rd__op_check(const rd__op *op, rd_err *err);

/* ---- messages both backends give (store.c) ---------------------------------- */

/* RD_ENOT_FOUND: "store: no scenario 7", "... no execution 'x'", "... no
 * incomplete execution 'x'". */
int rd__err_no_scenario(rd_err *err, int64_t id);
int rd__err_no_exec(rd_err *err, const char *id);
int rd__err_no_item(rd_err *err, const char *id);
/* RD_ECONFLICT: item id is leased right now (by holder). */
int rd__err_leased(rd_err *err, const char *id, const char *holder);
/* RD_ECONFLICT: owner does not hold the lease on item id (holder: who
 * does, or NULL). */
int rd__err_not_held(rd_err *err, const char *id, const char *owner, const char *holder);
/* What a bulk delete reports for an item it kept. */
#define RD__MSG_BEING_RETRIED "being retried"
#define RD__MSG_NOT_FOUND "not found"

/* ---- group commit (group.c) ---------------------------------------------- */

/* SQLite's rule before a write begins: join the open group (`joins`, from a
 * task) or commit it first. 0 or an error. */
int rd__group_enter(rd_store_t *st, int joins, rd_err *err);
/* End st's group right before the loop next polls (idempotent). */
void rd__group_schedule(rd_store_t *st);
/* ---- the front (store.c) -------------------------------------------------- */

/* Wake every wait for new work on st (work.c). */
void rd__work_signal(rd_store_t *st);

#endif

/* The backend interface of the store: what SQLite (src/store/sqlite*.c) and
 * PostgreSQL (src/store/pg*.c) each implement, side by side. The front
 * (store.c, op.c, group.c) picks one by the target a store is opened on --
 * a file path or a postgresql:// URL -- and talks to it only through this
 * table, so every operation, the group commit and notifications of new work
 * have one contract for both. */
#ifndef RD_STORE_BACKEND_H
#define RD_STORE_BACKEND_H

#include "store/op.h"

typedef struct rd__backend {
  const char *name;      /* "sqlite", "postgresql" */
  int async;             /* operations complete from the loop */
  /* Start op (RD__OP_OPEN included). A synchronous backend completes
   * op->base at once and does the work in finish. 0 or an error (op then
   * never completes). */
  int (*start)(rd__op *op, rd_err *err);
  /* op->base completed with status 0: do the work (synchronous) or read
   * the results, writing the out pointers and running the callbacks. */
  int (*finish)(rd__op *op, rd_err *err);
  /* The caller gave up on op before it completed (cancellation): it must
   * never complete it, nor touch it again. NULL: nothing is ever pending. */
  void (*cancel)(rd__op *op);
  /* op completed with an error: free its state (op->state) without
   * reaching through op->st. NULL if there is none. */
  void (*discard)(rd__op *op);
  /* The group of this loop iteration ends (group.c's before-poll hook):
   * commit it (SQLite) or send the sync point that commits it
   * (PostgreSQL), then complete what waits for that. */
  void (*group_end)(rd_store_t *st);
  /* The store moves to another loop (NULL: none); called with the group
   * ended. 0 or an error (the store keeps its loop). */
  int (*set_loop)(rd_store_t *st, rd_loop_t *loop, rd_err *err);
  /* Start hearing of new work from other connections (PostgreSQL: LISTEN);
   * NULL when only this process's own writes can tell. */
  int (*listen)(rd_store_t *st, rd_err *err);
  /* Free the backend's part of st (the connection, statements). */
  void (*close)(rd_store_t *st);
} rd__backend;

extern const rd__backend rd__sqlite_backend, rd__pg_backend;

#endif

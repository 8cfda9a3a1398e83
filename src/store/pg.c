/* The PostgreSQL backend: not built yet; URLs are recognised and refused. */
#include "store/store_int.h"

static int pg_start(rd__op *op, rd_err *err) {
  return rd_err_set(err, RD_EUNSUPPORTED, "store: '%s': PostgreSQL stores are not supported yet",
                    op->st->path);
}

static int pg_finish(rd__op *op, rd_err *err) {
  (void)op, (void)err;
  return 0;
}

static void pg_group_end(rd_store_t *st) { (void)st; }

static int pg_set_loop(rd_store_t *st, rd_loop_t *loop, rd_err *err) {
  (void)st, (void)loop, (void)err;
  return 0;
}

static void pg_close(rd_store_t *st) { (void)st; }

const rd__backend rd__pg_backend = {
  .name = "postgresql",
  .start = pg_start,
  .finish = pg_finish,
  .group_end = pg_group_end,
  .set_loop = pg_set_loop,
  .close = pg_close,
};

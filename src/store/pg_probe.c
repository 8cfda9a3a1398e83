/* A test hook on PostgreSQL (st:_sleep, st:_setting in the Lua binding): a
 * query that sleeps on the server, so a test can show the loop running
 * meanwhile, or one that reads a setting of the store's own session (what
 * the connection's setup chose, e.g. synchronous_commit). */
#include "store/pg_int.h"

#include <stdio.h>

static int probe_build(rd__pgreq *r, const rd__op *op, rd_err *err) {
  if (op->a.probe.setting) {
    int e = rd__pg_add(r, "SELECT current_setting(:name)", err);
    if (!e) rd__pg_text(r, ":name", op->a.probe.setting);
    return e;
  }
  int e = rd__pg_add(r, "SELECT pg_sleep(:seconds)", err);
  if (!e) rd__pg_real(r, ":seconds", op->a.probe.sleep);
  return e;
}

static int probe_read(rd__pgreq *r, rd__op *op, rd_err *err) {
  (void)err;
  if (op->a.probe.setting && op->a.probe.out) {
    const char *v = rd__pg_value(r, 0, 0, 0);
    snprintf(op->a.probe.out, op->a.probe.outlen, "%s", v ? v : "");
  }
  return 0;
}

const rd__pgop rd__pg_probe = {probe_build, probe_read};

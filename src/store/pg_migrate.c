/* The last step of connecting to a PostgreSQL store: bring its schema to
 * rd__schema_version, once, however many processes open it at the same
 * time. Everything runs in one transaction that first takes a
 * transaction-level advisory lock: the second process to arrive waits (on
 * the server: the loop keeps running) until the first has committed, then
 * finds the version current. A lock held by a process that dies goes with
 * its session, and the half-made migration with its transaction.
 *
 * Steps, each one round trip (pg.c sends them with PQsendQuery, outside
 * pipeline mode, and hands back their results):
 *  0. BEGIN, the lock, does redrive_schema exist, is there a schema to
 *     create tables in;
 *  1. (it exists) its version and application: a newer version, or
 *     another application's table, is RD_ECORRUPT;
 *  2. the migrations still missing (and, from 0, redrive_schema itself),
 *     the new version, synchronous_commit back on if the server had it
 *     off, dlq_item's oid (the NOTIFY channel), COMMIT. */
#include "store/pg_int.h"

#include "store/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 'RDrv' and 1: the advisory lock of redrive's migrations, per database. */
#define LOCK_KEY "5927010551086923777"
#define APPLICATION "redrive"

char *rd__pg_setup_sql(rd__pgsetup *s, rd_err *err) {
  rd_buf q = {0};
  int r = 0;
  switch (s->step) {
  case 0:
    r = rd__buf_adds(&q, "BEGIN; SELECT pg_advisory_xact_lock(" LOCK_KEY ");"
                         " SELECT to_regclass('redrive_schema') IS NOT NULL, current_schema(),"
                         " current_setting('synchronous_commit')");
    break;
  case 1: r = rd__buf_adds(&q, "SELECT version, application FROM redrive_schema"); break;
  case 2:
    if (!s->exists)
      r = rd__buf_adds(&q, "CREATE TABLE redrive_schema (application text NOT NULL,"
                           " version integer NOT NULL);"
                           " INSERT INTO redrive_schema VALUES ('" APPLICATION "', 0);");
    for (int v = s->version; !r && v < rd__schema_version; v++)
      r = rd__buf_adds(&q, rd__migrations[v].pg);
    if (!r && s->version < rd__schema_version)
      r = rd__buf_printf(&q, "; UPDATE redrive_schema SET version = %d;", rd__schema_version);
    /* acknowledged means durable: a server (or role) that commits
     * without waiting for the flush is overruled for this session */
    if (!r && s->sync_off) r = rd__buf_adds(&q, " SET synchronous_commit = on;");
    if (!r) r = rd__buf_adds(&q, " SELECT to_regclass('dlq_item')::oid; COMMIT");
    break;
  default: return NULL;
  }
  if (r) {
    rd__buf_free(&q);
    rd_err_set(err, RD_ENOMEM, "store: out of memory");
    return NULL;
  }
  return rd__buf_steal(&q, NULL);
}

/* The first row's column c of the last result with rows, NULL if none. */
static const char *last_value(PGresult **res, int n, int c) {
  for (int i = n - 1; i >= 0; i--)
    if (PQresultStatus(res[i]) == PGRES_TUPLES_OK && PQntuples(res[i]) > 0 &&
        PQnfields(res[i]) > c && !PQgetisnull(res[i], 0, c))
      return PQgetvalue(res[i], 0, c);
  return NULL;
}

int rd__pg_setup_next(rd__pgsetup *s, PGresult **res, int n, const char *where, rd_err *err) {
  switch (s->step) {
  case 0: {
    const char *exists = last_value(res, n, 0);
    if (!last_value(res, n, 1))
      return rd_err_set(err, RD_EINVALID,
                        "store: '%s' has no schema to create the tables in (see search_path)",
                        where);
    s->exists = exists && exists[0] == 't';
    const char *sync = last_value(res, n, 2);
    s->sync_off = sync && strcmp(sync, "off") == 0;
    s->step = s->exists ? 1 : 2;
    return 0;
  }
  case 1: {
    const char *v = last_value(res, n, 0), *app = last_value(res, n, 1);
    if (!v || !app || strcmp(app, APPLICATION) != 0)
      return rd_err_set(err, RD_ECORRUPT,
                        "store: '%s' is not a redrive store (redrive_schema belongs to %s)", where,
                        app ? app : "something else");
    s->version = atoi(v);
    if (s->version > rd__schema_version)
      return rd_err_set(err, RD_ECORRUPT,
                        "store: '%s' has schema version %d, newer than this redrive knows (%d)",
                        where, s->version, rd__schema_version);
    s->step = 2;
    return 0;
  }
  case 2: {
    const char *oid = last_value(res, n, 0);
    if (!oid) return rd_err_set(err, RD_ECORRUPT, "store: '%s' has no table dlq_item", where);
    s->table_oid = (unsigned)strtoul(oid, NULL, 10);
    s->step = 3;
    return 0;
  }
  default: return 0;
  }
}

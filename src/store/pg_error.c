/* Errors of the PostgreSQL backend: a failed result -> an RD_E* code (by its
 * SQLSTATE, never by its text) and a message naming what failed and where,
 * from the server's primary message only: its DETAIL and CONTEXT can quote
 * row values and parameters (run data, states), which never go into an
 * error. The message is redacted like every other. */
#include "store/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int code_of(const char *state) {
  if (!state) return RD_EIO;
  if (strcmp(state, "23505") == 0) return RD_ECONFLICT;      /* unique_violation */
  if (strncmp(state, "23", 2) == 0) return RD_EINVALID;      /* other constraints */
  if (strncmp(state, "22", 2) == 0) return RD_EINVALID;      /* data: bad JSON, ... */
  if (strcmp(state, "RDNFD") == 0) return RD_ENOT_FOUND;     /* redrive_settle */
  if (strcmp(state, "RDLSE") == 0) return RD_ECONFLICT;
  if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0) return RD_EAUTH;
  if (strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0) return RD_EBUSY;
  if (strcmp(state, "57014") == 0) return RD_ETIMEOUT;       /* statement_timeout */
  if (strcmp(state, "42P07") == 0 || strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0)
    return RD_ECORRUPT; /* tables missing, or somebody else's in the way */
  if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) return RD_EIO;
  return RD_EIO;
}

/* "parameter $N" in a CONTEXT line: N, or 0. */
static int param_no(const char *ctx) {
  const char *p = ctx ? strstr(ctx, "parameter $") : NULL;
  return p ? atoi(p + 11) : 0;
}

int rd__pg_fail(const rd__pgreq *r, const PGresult *res, const char *where, rd_err *err) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  int code = code_of(state);
  const char *what = r ? rd__op_what(r->kind) : "open";
  char about[160] = "";
  const char *col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
  const char *con = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
  int n = param_no(PQresultErrorField(res, PG_DIAG_CONTEXT));
  if (col) {
    snprintf(about, sizeof about, " (column %s)", col);
  } else if (con) {
    snprintf(about, sizeof about, " (constraint %s)", con);
  } else if (n > 0 && r && r->failed_q >= 0 && n <= r->q[r->failed_q].stmt->nparams) {
    /* a value that is not of its column's type: which one, never what */
    snprintf(about, sizeof about, " (in %s)", r->q[r->failed_q].stmt->params[n - 1] + 1);
  }
  if (state && strcmp(state, "RDNFD") == 0) return rd__err_no_item(err, primary);
  if (state && strcmp(state, "RDLSE") == 0 && r && r->lease_item)
    return rd__err_not_held(err, r->lease_item, r->lease_owner,
                            primary && *primary ? primary : NULL);
  char msg[sizeof err->msg];
  snprintf(msg, sizeof msg, "store: cannot %s in '%s': %s%s", what, where,
           primary ? primary : "the server failed", about);
  rd_redact_msg(msg, sizeof msg);
  return rd_err_set(err, code, "%s", msg);
}

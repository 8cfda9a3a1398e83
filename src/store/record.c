/* Record descriptors generated from the X-macro lists of include/redrive.h,
 * and what the store derives from them for both backends: column lists,
 * INSERT / upsert / masked UPDATE statements, binders, row readers and
 * copies. */
#include "store/record.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(type, f, F, kind, flags) \
  {#f, ":" #f, RD__K_##kind, (flags), offsetof(type, f)},

#define SCENARIO_FIELD(f, F, kind, flags) FIELD(rd_scenario_t, f, F, kind, flags)
#define EXEC_FIELD(f, F, kind, flags) FIELD(rd_exec_t, f, F, kind, flags)
#define ITEM_FIELD(f, F, kind, flags) FIELD(rd_dlq_item_t, f, F, kind, flags)
#define LOG_FIELD(f, F, kind, flags) FIELD(rd_dlq_log_t, f, F, kind, flags)
#define JOB_FIELD(f, F, kind, flags) FIELD(rd_job_t, f, F, kind, flags)
#define JOB_ITEM_FIELD(f, F, kind, flags) FIELD(rd_job_item_t, f, F, kind, flags)

static const rd__field scenario_fields[] = {RD_SCENARIO_FIELDS(SCENARIO_FIELD)};
static const rd__field exec_fields[] = {RD_EXEC_FIELDS(EXEC_FIELD)};
static const rd__field item_fields[] = {RD_DLQ_ITEM_FIELDS(ITEM_FIELD)};
static const rd__field log_fields[] = {RD_DLQ_LOG_FIELDS(LOG_FIELD)};
static const rd__field job_fields[] = {RD_JOB_FIELDS(JOB_FIELD)};
static const rd__field job_item_fields[] = {RD_JOB_ITEM_FIELDS(JOB_ITEM_FIELD)};

#define NFIELDS(a) ((int)(sizeof a / sizeof a[0]))

const rd__record rd__rec_scenario = {"scenario", "scenario", scenario_fields,
                                     NFIELDS(scenario_fields), sizeof(rd_scenario_t)};
const rd__record rd__rec_exec = {"execution", "execution", exec_fields, NFIELDS(exec_fields),
                                 sizeof(rd_exec_t)};
const rd__record rd__rec_item = {"dlq_item", "incomplete execution", item_fields,
                                 NFIELDS(item_fields), sizeof(rd_dlq_item_t)};
const rd__record rd__rec_log = {"dlq_log", "retry log", log_fields, NFIELDS(log_fields),
                                sizeof(rd_dlq_log_t)};
const rd__record rd__rec_job = {"job", "job", job_fields, NFIELDS(job_fields), sizeof(rd_job_t)};
const rd__record rd__rec_job_item = {"job_item", "job ledger row", job_item_fields,
                                     NFIELDS(job_item_fields), sizeof(rd_job_item_t)};

static int is_text(rd__kind k) { return k == RD__K_TEXT || k == RD__K_JSON; }

const char *rd__kind_sqlite(rd__kind k) {
  if (is_text(k)) return "TEXT";
  return k == RD__K_REAL ? "REAL" : "INTEGER";
}

const char *rd__kind_pg(rd__kind k) {
  switch (k) {
  case RD__K_TEXT: return "text";
  /* json, not jsonb: the text is kept byte for byte (key order, spacing,
   * number spelling), as SQLite keeps it; run data and states are stored as
   * the modules produced them and only ever read back whole. */
  case RD__K_JSON: return "json";
  case RD__K_BIGINT: return "bigint";
  case RD__K_INT: return "integer";
  case RD__K_BOOL: return "boolean";
  case RD__K_REAL: return "double precision";
  }
  return "?";
}

void *rd__rec_dup(const rd__record *r, const void *rec) {
  size_t total = r->size;
  for (int i = 0; i < r->n; i++) {
    const char *v = is_text(r->fields[i].kind) ? *RD__CMEMBER(rec, &r->fields[i], char *) : NULL;
    if (v) total += strlen(v) + 1;
  }
  char *block = malloc(total);
  if (!block) return NULL;
  memcpy(block, rec, r->size);
  char *p = block + r->size;
  for (int i = 0; i < r->n; i++) {
    if (!is_text(r->fields[i].kind)) continue;
    const char **slot = RD__MEMBER(block, &r->fields[i], const char *);
    if (!*slot) continue;
    size_t len = strlen(*slot) + 1;
    memcpy(p, *slot, len);
    *slot = p;
    p += len;
  }
  return block;
}

/* ---- SQL ------------------------------------------------------------------ */

int rd__sql_cols(rd_buf *q, const rd__record *r, int heavy) {
  int first = 1, rc = 0;
  for (int i = 0; !rc && i < r->n; i++) {
    if (!heavy && (r->fields[i].flags & RD_F_HEAVY)) continue;
    if (!first) rc = rd__buf_adds(q, ", ");
    if (!rc) rc = rd__buf_adds(q, r->fields[i].name);
    first = 0;
  }
  return rc;
}

int rd__sql_select(rd_buf *q, const rd__record *r, int heavy) {
  int rc = rd__buf_adds(q, "SELECT ");
  if (!rc) rc = rd__sql_cols(q, r, heavy);
  if (!rc) rc = rd__buf_printf(q, " FROM %s", r->table);
  return rc;
}

int rd__sql_insert(rd_buf *q, const rd__record *r, int upsert) {
  int rc = rd__buf_printf(q, "INSERT INTO %s (", r->table);
  if (!rc) rc = rd__sql_cols(q, r, 1);
  if (!rc) rc = rd__buf_adds(q, ") VALUES (");
  for (int i = 0; !rc && i < r->n; i++)
    rc = rd__buf_printf(q, "%s%s", i ? ", " : "", r->fields[i].param);
  if (!rc) rc = rd__buf_adds(q, ")");
  if (rc || !upsert) return rc;
  const char *key = NULL;
  for (int i = 0; i < r->n; i++)
    if (r->fields[i].flags & RD_F_KEY) key = r->fields[i].name;
  rc = rd__buf_printf(q, " ON CONFLICT (%s) DO UPDATE SET ", key);
  int first = 1;
  for (int i = 0; !rc && i < r->n; i++) {
    if (r->fields[i].flags & RD_F_KEY) continue;
    rc = rd__buf_printf(q, "%s%s = excluded.%s", first ? "" : ", ", r->fields[i].name,
                        r->fields[i].name);
    first = 0;
  }
  return rc;
}

int rd__sql_insert_auto(rd_buf *q, const rd__record *r) {
  const char *key = NULL;
  int rc = rd__buf_printf(q, "INSERT INTO %s (", r->table);
  for (int i = 0, first = 1; !rc && i < r->n; i++) {
    if (r->fields[i].flags & RD_F_KEY) {
      key = r->fields[i].name;
      continue;
    }
    rc = rd__buf_printf(q, "%s%s", first ? "" : ", ", r->fields[i].name);
    first = 0;
  }
  if (!rc) rc = rd__buf_adds(q, ") VALUES (");
  for (int i = 0, first = 1; !rc && i < r->n; i++) {
    if (r->fields[i].flags & RD_F_KEY) continue;
    rc = rd__buf_printf(q, "%s%s", first ? "" : ", ", r->fields[i].param);
    first = 0;
  }
  return rc ? rc : rd__buf_printf(q, ") RETURNING %s", key);
}

int rd__sql_get(rd_buf *q, const rd__record *r) {
  int rc = rd__sql_select(q, r, 1);
  return rc ? rc : rd__buf_adds(q, " WHERE id = :id");
}

int rd__sql_update(rd_buf *q, const rd__record *r) {
  int rc = rd__buf_printf(q, "UPDATE %s SET ", r->table);
  int first = 1;
  for (int i = 0; !rc && i < r->n; i++) {
    const rd__field *f = &r->fields[i];
    if (f->flags & (RD_F_KEY | RD_F_STORE)) continue;
    /* one statement for every mask: a field keeps its value unless its
     * bit (1 << its place in the list) is set; "<> 0" because PostgreSQL
     * wants a boolean there */
    rc = rd__buf_printf(q, "%s%s = CASE WHEN (:mask & %u) <> 0 THEN %s ELSE %s END",
                        first ? "" : ", ",
                        f->name, 1u << i, f->param, f->name);
    first = 0;
  }
  return rc;
}

/* ---- rows ----------------------------------------------------------------- */

void rd__rec_bind(const rd__binder *b, void *s, const rd__record *r, const void *rec) {
  for (int i = 0; i < r->n; i++) {
    const rd__field *f = &r->fields[i];
    if (f->flags & RD_F_STORE) continue;
    switch (f->kind) {
    case RD__K_TEXT:
    case RD__K_JSON: b->text(s, f->param, *RD__CMEMBER(rec, f, char *)); break;
    case RD__K_BIGINT: {
      int64_t v = *RD__CMEMBER(rec, f, int64_t);
      if (v || !(f->flags & RD_F_ZERONULL)) b->i64(s, f->param, v);
      else b->text(s, f->param, NULL);
      break;
    }
    case RD__K_INT: b->i64(s, f->param, *RD__CMEMBER(rec, f, int)); break;
    case RD__K_BOOL: b->boolean(s, f->param, *RD__CMEMBER(rec, f, int) != 0); break;
    case RD__K_REAL: b->real(s, f->param, *RD__CMEMBER(rec, f, double)); break;
    }
  }
}

void rd__rec_read(const rd__reader *rd, void *row, const rd__record *r, int heavy, void *rec) {
  memset(rec, 0, r->size);
  int col = 0;
  for (int i = 0; i < r->n; i++) {
    const rd__field *f = &r->fields[i];
    int skip = !heavy && (f->flags & RD_F_HEAVY);
    switch (f->kind) {
    case RD__K_TEXT:
    case RD__K_JSON: *RD__MEMBER(rec, f, const char *) = skip ? NULL : rd->text(row, col); break;
    case RD__K_BIGINT: *RD__MEMBER(rec, f, int64_t) = skip ? 0 : rd->i64(row, col); break;
    case RD__K_INT: *RD__MEMBER(rec, f, int) = skip ? 0 : (int)rd->i64(row, col); break;
    case RD__K_BOOL: *RD__MEMBER(rec, f, int) = skip ? 0 : rd->boolean(row, col); break;
    case RD__K_REAL: *RD__MEMBER(rec, f, double) = skip ? NAN : rd->real(row, col); break;
    }
    if (!skip) col++;
  }
}

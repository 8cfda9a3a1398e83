/* Scenarios: name, blueprint (JSON text) and whether failed runs are kept as
 * incomplete executions. */
#include "store/store_int.h"

#include <stddef.h>
#include <stdlib.h>

#define COLS "id, name, blueprint, dlq, created, updated"

static void read_row(sqlite3_stmt *s, rd_scenario_t *sc) {
  *sc = (rd_scenario_t){
    .id = sqlite3_column_int64(s, 0),
    .name = rd__col_text(s, 1),
    .blueprint = rd__col_text(s, 2),
    .dlq = sqlite3_column_int(s, 3),
    .created = rd__col_double(s, 4),
    .updated = rd__col_double(s, 5),
  };
}

int rd_store_scenario_create(rd_store_t *st, const rd_scenario_t *sc, int64_t *id, rd_err *err) {
  if (!sc->name || !sc->blueprint)
    return rd_err_set(err, RD_EINVALID, "store: a scenario needs a name and a blueprint");
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st,
                  "INSERT INTO scenario (name, blueprint, dlq, created, updated)"
                  " VALUES (:name, :bp, :dlq, :now, :now)",
                  &s, err);
  if (!r) {
    rd__bind_text(s, ":name", sc->name);
    rd__bind_text(s, ":bp", sc->blueprint);
    rd__bind_int(s, ":dlq", sc->dlq != 0);
    rd__bind_double(s, ":now", rd__st_now());
    r = rd__st_exec(st, s, "cannot write a scenario to", err);
  }
  int64_t newid = sqlite3_last_insert_rowid(st->db);
  r = rd__st_end(st, r, err);
  if (!r && id) *id = newid;
  return r;
}

int rd_store_scenario_get(rd_store_t *st, int64_t id, rd_scenario_t **out, rd_err *err) {
  static const size_t offs[] = {offsetof(rd_scenario_t, name),
                                offsetof(rd_scenario_t, blueprint)};
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "SELECT " COLS " FROM scenario WHERE id = :id", &s, err);
  if (r) return r;
  rd__bind_int(s, ":id", id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    rd_scenario_t sc;
    read_row(s, &sc);
    rd_scenario_t *copy = rd__st_dup(&sc, sizeof sc, offs, 2);
    if (copy) *out = copy;
    else r = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  } else if (rc == SQLITE_DONE) {
    r = rd_err_set(err, RD_ENOT_FOUND, "store: no scenario %lld", (long long)id);
  } else {
    r = rd__st_fail(st, rc, "cannot read", err);
  }
  sqlite3_reset(s);
  return r;
}

int rd_store_scenario_list(rd_store_t *st, rd_scenario_cb cb, void *ud, rd_err *err) {
  sqlite3_stmt *s;
  int r = rd__st_prep(st, "SELECT " COLS " FROM scenario ORDER BY id", &s, err);
  if (r) return r;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rd_scenario_t sc;
    read_row(s, &sc);
    if (cb(&sc, ud)) {
      r = rd_err_set(err, RD_ECANCELED, "store: listing stopped");
      break;
    }
  }
  if (!r && rc != SQLITE_DONE) r = rd__st_fail(st, rc, "cannot read", err);
  sqlite3_reset(s);
  return r;
}

int rd_store_scenario_update(rd_store_t *st, int64_t id, const rd_scenario_t *f, unsigned mask,
                             rd_err *err) {
  if (((mask & RD_SCENARIO_NAME) && !f->name) || ((mask & RD_SCENARIO_BLUEPRINT) && !f->blueprint))
    return rd_err_set(err, RD_EINVALID, "store: a scenario's name and blueprint cannot be removed");
  int r = rd__st_begin(st, err);
  if (r) return r;
  sqlite3_stmt *s;
  r = rd__st_prep(st,
                  "UPDATE scenario SET"
                  " name = CASE WHEN :mask & 1 THEN :name ELSE name END,"
                  " blueprint = CASE WHEN :mask & 2 THEN :bp ELSE blueprint END,"
                  " dlq = CASE WHEN :mask & 4 THEN :dlq ELSE dlq END,"
                  " updated = :now WHERE id = :id",
                  &s, err);
  if (!r) {
    rd__bind_int(s, ":mask", mask);
    rd__bind_text(s, ":name", f->name);
    rd__bind_text(s, ":bp", f->blueprint);
    rd__bind_int(s, ":dlq", f->dlq != 0);
    rd__bind_double(s, ":now", rd__st_now());
    rd__bind_int(s, ":id", id);
    r = rd__st_exec(st, s, "cannot update a scenario in", err);
  }
  if (!r && sqlite3_changes(st->db) == 0)
    r = rd_err_set(err, RD_ENOT_FOUND, "store: no scenario %lld", (long long)id);
  return rd__st_end(st, r, err);
}

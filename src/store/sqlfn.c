/* SQL functions of the store: the failure normaliser (src/core/fingerprint.c)
 * callable from SQL, so that a migration fingerprints the rows it finds
 * exactly as the sources fingerprint new ones:
 *   rd_fingerprint(message, module, module_id, class) -> fingerprint
 *   rd_cause(message)                                 -> template
 *   rd_module_type(blueprint_json, module_id)         -> "http:ActionSendData" | NULL */
#include "store/sqlite_int.h"

#include <cJSON.h>
#include <stdlib.h>

/* Text of argument i, NULL for SQL NULL. */
static const char *arg_text(sqlite3_value **argv, int i, size_t *len) {
  const char *s = (const char *)sqlite3_value_text(argv[i]);
  if (len) *len = s ? (size_t)sqlite3_value_bytes(argv[i]) : 0;
  return s;
}

static void fn_fingerprint(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  rd_failure_t f = {0};
  f.message = arg_text(argv, 0, &f.message_len);
  if (!f.message || f.message_len == 0) f.message = "", f.message_len = 0;
  f.module = arg_text(argv, 1, NULL);
  f.module_id = arg_text(argv, 2, NULL);
  f.error_class = arg_text(argv, 3, NULL);
  char fp[RD_FINGERPRINT_LEN + 1];
  rd_fingerprint(&f, fp, NULL, 0);
  sqlite3_result_text(ctx, fp, -1, SQLITE_TRANSIENT);
}

static void fn_cause(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  size_t n;
  const char *msg = arg_text(argv, 0, &n);
  char cause[RD_CAUSE_MAX];
  rd_cause(msg ? msg : "", n, cause, sizeof cause);
  sqlite3_result_text(ctx, cause, -1, SQLITE_TRANSIENT);
}

static void fn_module_type(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  size_t n;
  const char *text = arg_text(argv, 0, &n);
  if (!text || sqlite3_value_type(argv[1]) == SQLITE_NULL) return; /* NULL */
  int64_t id = sqlite3_value_int64(argv[1]);
  struct cJSON *bp = NULL;
  char *ptr = NULL;
  if (rd_json_parse(text, n, &bp, NULL) == 0 && rd_blueprint_find_module(bp, id, &ptr, NULL) == 0) {
    const cJSON *m = NULL;
    if (rd_json_pointer_get(bp, ptr, &m, NULL) == 0) {
      const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "module");
      if (cJSON_IsString(type)) sqlite3_result_text(ctx, type->valuestring, -1, SQLITE_TRANSIENT);
    }
  }
  free(ptr);
  cJSON_Delete(bp);
}

int rd__sq_functions(rd_store_t *st, rd_err *err) {
  static const struct {
    const char *name;
    int nargs;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
  } fns[] = {
    {"rd_fingerprint", 4, fn_fingerprint},
    {"rd_cause", 1, fn_cause},
    {"rd_module_type", 2, fn_module_type},
  };
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
    int rc = sqlite3_create_function_v2(st->sq->db, fns[i].name, fns[i].nargs,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                        NULL, fns[i].fn, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return rd__st_fail(st, rc, "cannot register SQL functions on", err);
  }
  return 0;
}

/*
 * The PostgreSQL backend's connection (pg_int.h has the design): libpq in
 * nonblocking pipeline mode on the store's loop.
 *
 * Connecting: host names are resolved with uv_getaddrinfo (libpq would
 * resolve them blocking), then PQconnectStartParams / PQconnectPoll as the
 * socket becomes ready, under a timeout of our own (libpq's connect_timeout
 * only applies to blocking connects); then the schema (pg_migrate.c), then
 * pipeline mode. A connection that breaks fails what was in flight and is
 * made again by the next operation.
 *
 * Requests are sent when their operation starts, into the open segment of
 * the pipeline; the group commit's hook (group.c) sends the sync that ends
 * it. Results are matched in order: per statement sent (a Parse for a
 * statement new to the connection, then its Execute), then the sync.
 */
#include "store/pg_int.h"

#include "json/parse.h"
#include "store/schema.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CONNECT_TIMEOUT_MS 10000
#define MAX_TRIES 5          /* sends of a request a transient error may cost */

enum { DOWN, RESOLVING, CONNECTING, SETUP, READY };

/* One expected result: statement qi of request r, its Parse or its Execute. */
typedef struct slot {
  rd__pgreq *r;
  int qi;
  int prep;
} slot;

/* A pipeline segment: the requests sent between two sync points. */
typedef struct seg {
  rd__pgreq *head, *tail;
  slot *slots;
  size_t n, cap, at;         /* expected results, the next one */
  int synced;
  int failed;                /* 1 + the slot whose statement failed, 0 if none */
  struct seg *next;
} seg;

struct rd__pg {
  rd_store_t *st;            /* NULL once the store is closed */
  char *url, *password;      /* wiped when freed */
  PGconn *conn;
  int state;
  uv_poll_t *poll;           /* malloc'd, freed in its close callback */
  int fd, events;
  uv_timer_t *timer;         /* the connect timeout */
  uv_getaddrinfo_t *gai;     /* a resolution in flight */
  int closes;                /* close callbacks still to come */
  char **hosts;              /* resolving: the host list and the addresses */
  char **addrs;
  int nhosts, at_host;
  rd__pgreq *wait_head, *wait_tail; /* not sent yet (connecting) */
  seg *seg_head, *seg_tail;  /* sent, answers pending; the tail may be open */
  rd__pgstmt *stmts;
  int nstmts;
  rd__op *open_op;           /* the RD__OP_OPEN waiting for the connection */
  rd__pgsetup setup;
  PGresult **setup_res;      /* the answers of the setup's current step */
  int nsetup;
  int want_listen, listen_sent;
};

static const rd__pgop *const ops[RD__OP_NKINDS] = {
  [RD__OP_SCENARIO_CREATE] = &rd__pg_scenario_create,
  [RD__OP_SCENARIO_GET] = &rd__pg_scenario_get,
  [RD__OP_SCENARIO_LIST] = &rd__pg_scenario_list,
  [RD__OP_SCENARIO_UPDATE] = &rd__pg_scenario_update,
  [RD__OP_EXEC_GET] = &rd__pg_exec_get,
  [RD__OP_EXEC_LIST] = &rd__pg_exec_list,
  [RD__OP_EXEC_UPDATE] = &rd__pg_exec_update,
  [RD__OP_EXEC_DELETE] = &rd__pg_exec_delete,
  [RD__OP_RECORD] = &rd__pg_record,
  [RD__OP_DLQ_GET] = &rd__pg_dlq_get,
  [RD__OP_DLQ_LIST] = &rd__pg_dlq_list,
  [RD__OP_DLQ_COUNT] = &rd__pg_dlq_count,
  [RD__OP_DLQ_PATCH] = &rd__pg_dlq_patch,
  [RD__OP_DLQ_DELETE] = &rd__pg_dlq_delete,
  [RD__OP_DLQ_RESOLVE] = &rd__pg_dlq_delete,
  [RD__OP_DLQ_GROUPS] = &rd__pg_dlq_groups,
  [RD__OP_DLQ_LOGS] = &rd__pg_dlq_logs,
  [RD__OP_CLAIM] = &rd__pg_claim,
  [RD__OP_RENEW] = &rd__pg_renew,
  [RD__OP_RELEASE] = &rd__pg_release,
  [RD__OP_RETRY_DONE] = &rd__pg_retry_done,
  [RD__OP_HEALTH] = &rd__pg_health,
  [RD__OP_PROBE] = &rd__pg_probe,
  [RD__OP_JOB_CREATE] = &rd__pg_job_create,
  [RD__OP_JOB_GET] = &rd__pg_job_get,
  [RD__OP_JOB_LIST] = &rd__pg_job_list,
  [RD__OP_JOB_ITEMS] = &rd__pg_job_items,
  [RD__OP_JOB_MARK] = &rd__pg_job_mark,
  [RD__OP_JOB_OWN] = &rd__pg_job_own,
  [RD__OP_LEDGER_TAKE] = &rd__pg_ledger_take,
  [RD__OP_LEDGER_RENEW] = &rd__pg_ledger_renew,
  [RD__OP_LEDGER_SETTLE] = &rd__pg_ledger_settle,
  [RD__OP_LEDGER_EVENTS] = &rd__pg_ledger_events,
};

static void update_watch(rd__pg *pg);
static int pg_listen(rd_store_t *st, rd_err *err);
static void queue(rd__pg *pg, rd__pgreq *r);
static void start_connect(rd__pg *pg);
static void broken(rd__pg *pg, const char *why);
static void send_waiting(rd__pg *pg);

/* ---- statements ------------------------------------------------------------ */

/* ":name" parameters -> $1, $2, ... (the same name, the same number); quoted
 * text, quoted identifiers and :: casts are left alone. */
static int translate(rd__pgstmt *s) {
  rd_buf out = {0};
  const char *p = s->sql;
  int r = 0;
  while (!r && *p) {
    if (*p == '\'' || *p == '"') {
      const char *e = p + 1;
      while (*e && !(*e == *p && e[1] != *p)) e += (*e == *p) ? 2 : 1;
      size_t n = (size_t)(e - p) + (*e ? 1 : 0);
      r = rd__buf_add(&out, p, n);
      p += n;
    } else if (p[0] == ':' && p[1] == ':') {
      r = rd__buf_add(&out, p, 2);
      p += 2;
    } else if (p[0] == ':' && (p[1] == '_' || (p[1] >= 'a' && p[1] <= 'z'))) {
      const char *e = p + 1;
      while (*e == '_' || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9')) e++;
      int k = 0;
      while (k < s->nparams && !(strlen(s->params[k]) == (size_t)(e - p) &&
                                 memcmp(s->params[k], p, (size_t)(e - p)) == 0))
        k++;
      if (k == s->nparams) {
        char **np = realloc(s->params, (size_t)(k + 1) * sizeof *np);
        char *name = np ? strndup(p, (size_t)(e - p)) : NULL;
        if (np) s->params = np;
        if (!name) r = RD_ENOMEM;
        else s->params[s->nparams++] = name;
      }
      if (!r) r = rd__buf_printf(&out, "$%d", k + 1);
      p = e;
    } else {
      r = rd__buf_add(&out, p, 1);
      p++;
    }
  }
  if (r) {
    rd__buf_free(&out);
    return RD_ENOMEM;
  }
  s->text = rd__buf_steal(&out, NULL);
  return s->text ? 0 : RD_ENOMEM;
}

static void stmt_free(rd__pgstmt *s) {
  for (int i = 0; i < s->nparams; i++) free(s->params[i]);
  free(s->params);
  free(s->sql);
  free(s->text);
  free(s);
}

/* The cached statement for sql, made on first use. */
static rd__pgstmt *stmt_get(rd__pg *pg, const char *sql) {
  for (rd__pgstmt *s = pg->stmts; s; s = s->next)
    if (strcmp(s->sql, sql) == 0) return s;
  rd__pgstmt *s = calloc(1, sizeof *s);
  if (!s || !(s->sql = strdup(sql)) || translate(s)) {
    if (s) stmt_free(s);
    return NULL;
  }
  snprintf(s->name, sizeof s->name, "rd%d", ++pg->nstmts);
  s->next = pg->stmts;
  pg->stmts = s;
  return s;
}

/* ---- building requests ---------------------------------------------------------- */

int rd__pg_add(rd__pgreq *r, const char *sql, rd_err *err) {
  if (r->nq == RD__PG_MAXQ) return rd_err_set(err, RD_EINVALID, "store: too many statements");
  rd__pgstmt *s = stmt_get(r->pg, sql);
  int *val = s ? malloc((size_t)(s->nparams ? s->nparams : 1) * sizeof *val) : NULL;
  if (!val) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  for (int i = 0; i < s->nparams; i++) val[i] = -1;
  r->q[r->nq++] = (rd__pgq){.stmt = s, .val = val};
  return 0;
}

int rd__pg_add_built(rd__pgreq *r, int (*build)(rd_buf *q, const void *ud), const void *ud,
                     rd_err *err) {
  rd_buf q = {0};
  int e = build(&q, ud) ? rd_err_set(err, RD_ENOMEM, "store: out of memory")
                        : rd__pg_add(r, q.data, err);
  rd__buf_free(&q);
  return e;
}

/* The slot of parameter `name` in the last statement, -1 if it has none. */
static int param(rd__pgreq *r, const char *name) {
  rd__pgstmt *s = r->q[r->nq - 1].stmt;
  for (int i = 0; i < s->nparams; i++)
    if (strcmp(s->params[i], name) == 0) return i;
  return -1;
}

/* PostgreSQL refuses text that is not UTF-8, which SQLite keeps as it is: a
 * reason quoting a binary response must not make a record fail. Each byte
 * that does not start a valid sequence becomes U+FFFD. */
static int add_utf8(rd_buf *b, const char *v, size_t n) {
  const unsigned char *s = (const unsigned char *)v;
  for (;;) {
    long bad = rd__utf8_invalid_at(s, n);
    if (bad < 0) return rd__buf_add(b, s, n);
    if (rd__buf_add(b, s, (size_t)bad) || rd__buf_add(b, "\xEF\xBF\xBD", 3)) return RD_ENOMEM;
    s += bad + 1;
    n -= (size_t)bad + 1;
  }
}

static void bind_raw(rd__pgreq *r, const char *name, const char *v, size_t n) {
  int i = param(r, name);
  if (i < 0) return;
  if (!v) {
    r->q[r->nq - 1].val[i] = -1;
    return;
  }
  size_t off = r->buf.len;
  if (add_utf8(&r->buf, v, n) || rd__buf_add(&r->buf, "", 1)) {
    r->failed_q = -2; /* out of memory: the request fails when it starts */
    return;
  }
  r->q[r->nq - 1].val[i] = (int)off;
}

void rd__pg_text(rd__pgreq *r, const char *name, const char *v) {
  bind_raw(r, name, v, v ? strlen(v) : 0);
}

void rd__pg_int(rd__pgreq *r, const char *name, int64_t v) {
  char b[32];
  int n = snprintf(b, sizeof b, "%lld", (long long)v);
  bind_raw(r, name, b, (size_t)n);
}

void rd__pg_bool(rd__pgreq *r, const char *name, int v) { bind_raw(r, name, v ? "t" : "f", 1); }

void rd__pg_real(rd__pgreq *r, const char *name, double v) {
  if (isnan(v)) {
    bind_raw(r, name, NULL, 0);
    return;
  }
  char b[40];
  int n = snprintf(b, sizeof b, "%.17g", v);
  bind_raw(r, name, b, (size_t)n);
}

void rd__pg_strings(rd__pgreq *r, const char *name, const char *const *v, size_t n) {
  if (param(r, name) < 0) return;
  rd_buf b = {0};
  int e = rd__buf_add(&b, "[", 1);
  for (size_t i = 0; !e && i < n; i++) {
    if (i) e = rd__buf_add(&b, ",", 1);
    e = e ? e : rd__buf_add(&b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v[i]; !e && *p; p++) {
      if (*p == '"' || *p == '\\') e = rd__buf_add(&b, (char[]){'\\', (char)*p}, 2);
      else if (*p < 0x20) e = rd__buf_printf(&b, "\\u%04x", *p);
      else e = rd__buf_add(&b, p, 1);
    }
    e = e ? e : rd__buf_add(&b, "\"", 1);
  }
  e = e ? e : rd__buf_add(&b, "]", 1);
  if (e) r->failed_q = -2;
  else bind_raw(r, name, b.data, b.len);
  rd__buf_free(&b);
}

static void b_text(void *s, const char *name, const char *v) { rd__pg_text(s, name, v); }
static void b_i64(void *s, const char *name, int64_t v) { rd__pg_int(s, name, v); }
static void b_bool(void *s, const char *name, int v) { rd__pg_bool(s, name, v); }
static void b_real(void *s, const char *name, double v) { rd__pg_real(s, name, v); }
const rd__binder rd__pg_binder = {b_text, b_i64, b_bool, b_real};

void rd__pg_rec(rd__pgreq *r, const rd__record *rec_r, const void *rec) {
  rd__rec_bind(&rd__pg_binder, r, rec_r, rec);
}

/* ---- reading results ------------------------------------------------------------- */

static const char *c_text(void *row, int c) {
  rd__pgrow *w = row;
  return PQgetisnull(w->res, w->row, c) ? NULL : PQgetvalue(w->res, w->row, c);
}
static int64_t c_i64(void *row, int c) {
  const char *v = c_text(row, c);
  return v ? strtoll(v, NULL, 10) : 0;
}
static int c_bool(void *row, int c) {
  const char *v = c_text(row, c);
  return v && v[0] == 't';
}
static double c_real(void *row, int c) {
  const char *v = c_text(row, c);
  return v ? strtod(v, NULL) : NAN;
}
const rd__reader rd__pg_reader = {c_text, c_i64, c_bool, c_real};

void rd__pg_read(rd__pgreq *r, int qi, int i, const rd__record *rec_r, int heavy, void *rec) {
  rd__pgrow row = {r->q[qi].res, i};
  rd__rec_read(&rd__pg_reader, &row, rec_r, heavy, rec);
}

int rd__pg_rows(const rd__pgreq *r, int qi) { return PQntuples(r->q[qi].res); }

int64_t rd__pg_changed(const rd__pgreq *r, int qi) {
  return strtoll(PQcmdTuples(r->q[qi].res), NULL, 10);
}

const char *rd__pg_value(const rd__pgreq *r, int qi, int i, int c) {
  rd__pgrow row = {r->q[qi].res, i};
  return c_text(&row, c);
}

/* ---- requests ------------------------------------------------------------------ */

static void req_clear(rd__pgreq *r) {
  for (int i = 0; i < r->nq; i++) {
    PQclear(r->q[i].res);
    r->q[i].res = NULL;
  }
  r->failed_q = -1;
}

static void req_free(rd__pgreq *r) {
  if (!r) return;
  req_clear(r);
  for (int i = 0; i < r->nq; i++) free(r->q[i].val);
  rd__buf_free(&r->buf);
  free(r->lease_item);
  free(r->lease_owner);
  free(r);
}

/* r is answered (status 0) or failed: it goes to its operation, whose wait
 * completes; a request nobody waits for any more is freed. */
static void complete(rd__pgreq *r, int status, const rd_err *why) {
  rd__op *op = r->op;
  r->next = NULL;
  if (!op) {
    req_free(r);
    return;
  }
  if (status && why) op->err = *why;
  rd_wait_done(&op->base, status);
}

/* A failed statement of r: its code and message go to r's operation. */
static void complete_failed(rd__pgreq *r) {
  rd_err e = {0};
  int code = rd__pg_fail(r, r->q[r->failed_q].res, r->pg->st ? r->pg->st->path : "?", &e);
  complete(r, code, &e);
}

/* Fail every request not answered yet, and the open operation. */
static void fail_all(rd__pg *pg, int code, const char *why) {
  rd_err e = {0};
  rd_err_set(&e, code, "%s", why);
  while (pg->seg_head) {
    seg *s = pg->seg_head;
    pg->seg_head = s->next;
    for (rd__pgreq *r = s->head, *next; r; r = next) {
      next = r->next;
      complete(r, code, &e);
    }
    free(s->slots);
    free(s);
  }
  pg->seg_tail = NULL;
  for (rd__pgreq *r = pg->wait_head, *next; r; r = next) {
    next = r->next;
    complete(r, code, &e);
  }
  pg->wait_head = pg->wait_tail = NULL;
  if (pg->open_op) {
    rd__op *op = pg->open_op;
    pg->open_op = NULL;
    op->err = e;
    rd_wait_done(&op->base, code);
  }
}

/* ---- the socket ------------------------------------------------------------------ */

static void handle_closed(uv_handle_t *h) {
  rd__pg *pg = h->data;
  free(h);
  if (--pg->closes == 0 && !pg->st) free(pg);
}

/* Close one of pg's handles: freed, and counted, in its close callback. */
static void close_handle(rd__pg *pg, uv_handle_t *h) {
  pg->closes++;
  uv_close(h, handle_closed);
}

static void close_poll(rd__pg *pg) {
  if (!pg->poll) return;
  close_handle(pg, (uv_handle_t *)pg->poll);
  pg->poll = NULL;
  pg->events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watch pg's socket for `events` (0: stop); a new socket gets a new handle. */
static int watch(rd__pg *pg, int events) {
  int fd = pg->conn ? PQsocket(pg->conn) : -1;
  if (pg->poll && pg->fd != fd) close_poll(pg);
  if (fd < 0 || !pg->st || !pg->st->loop) return events ? -1 : 0;
  if (!pg->poll) {
    if (!events) return 0;
    uv_poll_t *p = malloc(sizeof *p);
    if (!p || uv_poll_init_socket(rd_loop_uv(pg->st->loop), p, fd) != 0) {
      free(p);
      return -1;
    }
    p->data = pg;
    pg->poll = p;
    pg->fd = fd;
    pg->events = 0;
  }
  if (events == pg->events) return 0;
  pg->events = events;
  return events ? uv_poll_start(pg->poll, events, on_poll) : uv_poll_stop(pg->poll);
}

/* Send what libpq holds; 0, 1 (more to send: wait for writable) or -1. */
static int flush(rd__pg *pg) {
  int r = PQflush(pg->conn);
  if (r < 0) broken(pg, PQerrorMessage(pg->conn));
  return r;
}

/* ---- connecting -------------------------------------------------------------------- */

static void stop_timer(rd__pg *pg) {
  if (!pg->timer) return;
  close_handle(pg, (uv_handle_t *)pg->timer);
  pg->timer = NULL;
}

static void free_hosts(rd__pg *pg) {
  for (int i = 0; i < pg->nhosts; i++) {
    free(pg->hosts[i]);
    free(pg->addrs[i]);
  }
  free(pg->hosts);
  free(pg->addrs);
  pg->hosts = pg->addrs = NULL;
  pg->nhosts = pg->at_host = 0;
}

static void clear_setup(rd__pg *pg) {
  for (int i = 0; i < pg->nsetup; i++) PQclear(pg->setup_res[i]);
  free(pg->setup_res);
  pg->setup_res = NULL;
  pg->nsetup = 0;
}

/* The connection is gone (or never came): fail what waited on it with
 * `why` (a full message when `full`, else libpq's words to wrap) and be
 * ready to connect again for the next operation. */
static void connection_down(rd__pg *pg, int code, const char *why, int full) {
  /* why may be libpq's, freed with the connection below: copy it first */
  char msg[400];
  snprintf(msg, sizeof msg, "%s", why);
  msg[strcspn(msg, "\n")] = '\0'; /* libpq ends its messages with a newline */
  stop_timer(pg);
  close_poll(pg);
  if (pg->gai) {
    uv_cancel((uv_req_t *)pg->gai); /* its callback frees it */
    pg->gai = NULL;
  }
  free_hosts(pg);
  clear_setup(pg);
  if (pg->conn) PQfinish(pg->conn);
  pg->conn = NULL;
  pg->state = DOWN;
  pg->listen_sent = 0;
  for (rd__pgstmt *s = pg->stmts; s; s = s->next) s->state = 0;
  char text[512];
  if (full)
    snprintf(text, sizeof text, "%s", msg);
  else
    snprintf(text, sizeof text, "store: %s '%s': %s",
             code == RD_EIO ? "connection lost to" : "cannot connect to",
             pg->st ? pg->st->path : "?", msg);
  rd_redact_msg(text, sizeof text);
  fail_all(pg, code, text);
}

static void broken(rd__pg *pg, const char *why) {
  char msg[400];
  int n = why && *why ? (int)strcspn(why, "\n") : 0;
  snprintf(msg, sizeof msg, "%.*s (a write in flight may or may not have been committed)",
           n ? n : 36, n ? why : "the server closed the connection");
  connection_down(pg, RD_EIO, msg, 0);
}

static void connect_failed(rd__pg *pg, int code, const char *why) {
  connection_down(pg, code, why, 0);
}

static void notice(void *arg, const char *msg) { (void)arg, (void)msg; }

static void setup_send(rd__pg *pg);

static void connected(rd__pg *pg) {
  stop_timer(pg);
  PQsetNoticeProcessor(pg->conn, notice, NULL); /* never on stderr */
  if (PQsetnonblocking(pg->conn, 1) != 0) {
    connect_failed(pg, RD_ECONNECT, PQerrorMessage(pg->conn));
    return;
  }
  pg->state = SETUP;
  pg->setup = (rd__pgsetup){0};
  setup_send(pg);
}

static void connect_step(rd__pg *pg) {
  /* libpq may have closed the socket and opened another (the next host of
   * a list, a retry without SSL or GSS), quite possibly with the same
   * number, which epoll then no longer watches: a fresh handle each step */
  close_poll(pg);
  switch (PQconnectPoll(pg->conn)) {
  case PGRES_POLLING_READING:
    if (watch(pg, UV_READABLE)) connect_failed(pg, RD_ECONNECT, "cannot watch the socket");
    break;
  case PGRES_POLLING_WRITING:
    if (watch(pg, UV_WRITABLE)) connect_failed(pg, RD_ECONNECT, "cannot watch the socket");
    break;
  case PGRES_POLLING_OK: connected(pg); break;
  default:
    /* no SQLSTATE for a refused connection: a password wanted and not
     * given is the one case libpq tells apart */
    connect_failed(pg, PQconnectionNeedsPassword(pg->conn) ? RD_EAUTH : RD_ECONNECT,
                   PQerrorMessage(pg->conn));
    break;
  }
}

static void on_timeout(uv_timer_t *t) {
  rd__pg *pg = t->data;
  connect_failed(pg, RD_ETIMEOUT, "no connection within the connect timeout");
}

/* The value of keyword k in the parsed options, NULL when unset. */
static const char *opt(PQconninfoOption *o, const char *k) {
  for (; o && o->keyword; o++)
    if (strcmp(o->keyword, k) == 0) return o->val && *o->val ? o->val : NULL;
  return NULL;
}

/* The URL's options (PQconninfoFree them), or NULL when the URL is bad:
 * connecting has then failed, saying why. */
static PQconninfoOption *parse_url(rd__pg *pg) {
  char *errmsg = NULL;
  PQconninfoOption *o = PQconninfoParse(pg->url, &errmsg);
  if (!o) {
    connect_failed(pg, RD_EINVALID, errmsg ? errmsg : "out of memory");
    PQfreemem(errmsg);
  }
  return o;
}

static void start_libpq(rd__pg *pg) {
  PQconninfoOption *o = parse_url(pg);
  if (!o) return;
  const char *kw[64], *val[64];
  int n = 0;
  for (PQconninfoOption *p = o; p->keyword && n < 56; p++) {
    if (!p->val || !*p->val) continue;
    if (strcmp(p->keyword, "password") == 0 && pg->password) continue;
    kw[n] = p->keyword, val[n++] = p->val;
  }
  rd_buf addrs = {0};
  int nomem = 0;
  if (pg->nhosts > 0 && !opt(o, "hostaddr")) {
    for (int i = 0; i < pg->nhosts && !nomem; i++)
      nomem = rd__buf_printf(&addrs, "%s%s", i ? "," : "", pg->addrs[i] ? pg->addrs[i] : "");
    if (!nomem) kw[n] = "hostaddr", val[n++] = addrs.data ? addrs.data : "";
  }
  if (pg->password) kw[n] = "password", val[n++] = pg->password;
  kw[n] = "client_encoding", val[n++] = "UTF8";
  kw[n] = "fallback_application_name", val[n++] = "redrive";
  kw[n] = NULL, val[n] = NULL;
  pg->conn = nomem ? NULL : PQconnectStartParams(kw, val, 0);
  PQconninfoFree(o);
  rd__buf_free(&addrs);
  free_hosts(pg);
  if (!pg->conn) {
    connect_failed(pg, RD_ENOMEM, "out of memory");
    return;
  }
  if (PQstatus(pg->conn) == CONNECTION_BAD) {
    connect_failed(pg, RD_ECONNECT, PQerrorMessage(pg->conn));
    return;
  }
  pg->state = CONNECTING;
  /* as if PQconnectPoll had said PGRES_POLLING_WRITING */
  if (watch(pg, UV_WRITABLE)) connect_failed(pg, RD_ECONNECT, "cannot watch the socket");
}

static void resolve_next(rd__pg *pg);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  rd__pg *pg = req->data;
  int mine = pg && pg->gai == req;
  free(req);
  if (!mine) {
    uv_freeaddrinfo(res); /* cancelled: the store moved on (or closed) */
    if (pg && --pg->closes == 0 && !pg->st) free(pg);
    return;
  }
  pg->closes--;
  pg->gai = NULL;
  if (status != 0 || !res) {
    char why[300];
    snprintf(why, sizeof why, "cannot resolve host \"%s\": %s", pg->hosts[pg->at_host],
             uv_strerror(status));
    uv_freeaddrinfo(res);
    connect_failed(pg, RD_ECONNECT, why);
    return;
  }
  char ip[INET6_ADDRSTRLEN] = "";
  if (res->ai_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
  else
    uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
  uv_freeaddrinfo(res);
  if (!(pg->addrs[pg->at_host] = strdup(ip))) {
    connect_failed(pg, RD_ENOMEM, "out of memory");
    return;
  }
  pg->at_host++;
  resolve_next(pg);
}

/* A host that needs no lookup: a socket directory, an address, nothing. */
static int literal_host(const char *h) {
  unsigned char buf[sizeof(struct in6_addr)];
  return !*h || h[0] == '/' || h[0] == '@' || inet_pton(AF_INET, h, buf) == 1 ||
         inet_pton(AF_INET6, h, buf) == 1;
}

static void resolve_next(rd__pg *pg) {
  while (pg->at_host < pg->nhosts && literal_host(pg->hosts[pg->at_host])) pg->at_host++;
  if (pg->at_host == pg->nhosts) {
    start_libpq(pg);
    return;
  }
  uv_getaddrinfo_t *req = malloc(sizeof *req);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  if (!req) {
    connect_failed(pg, RD_ENOMEM, "out of memory");
    return;
  }
  req->data = pg;
  if (uv_getaddrinfo(rd_loop_uv(pg->st->loop), req, on_resolved, pg->hosts[pg->at_host], NULL,
                     &hints) != 0) {
    free(req);
    connect_failed(pg, RD_ECONNECT, "cannot start a host name lookup");
    return;
  }
  pg->gai = req;
  pg->closes++;
}

/* Connect: resolve the host names libpq would resolve blocking, then start. */
static void start_connect(rd__pg *pg) {
  pg->state = RESOLVING;
  pg->timer = malloc(sizeof *pg->timer);
  if (!pg->timer || uv_timer_init(rd_loop_uv(pg->st->loop), pg->timer) != 0) {
    free(pg->timer);
    pg->timer = NULL;
    connect_failed(pg, RD_ENOMEM, "cannot make a timer");
    return;
  }
  pg->timer->data = pg;
  PQconninfoOption *o = parse_url(pg);
  if (!o) return;
  const char *ct = opt(o, "connect_timeout");
  if (!ct) ct = getenv("PGCONNECT_TIMEOUT");
  double secs = ct ? strtod(ct, NULL) : 0;
  uv_timer_start(pg->timer, on_timeout, secs >= 1 ? (uint64_t)(secs * 1000) : CONNECT_TIMEOUT_MS,
                 0);
  const char *hosts = opt(o, "hostaddr") ? NULL : opt(o, "host");
  if (!hosts && !opt(o, "hostaddr")) hosts = getenv("PGHOST");
  int nomem = 0;
  for (const char *p = hosts; p && !nomem;) {
    size_t len = strcspn(p, ",");
    char **h = realloc(pg->hosts, (size_t)(pg->nhosts + 1) * sizeof *h);
    char **a = h ? realloc(pg->addrs, (size_t)(pg->nhosts + 1) * sizeof *a) : NULL;
    if (h) pg->hosts = h;
    if (a) pg->addrs = a;
    char *one = a ? strndup(p, len) : NULL;
    if (!one) {
      nomem = 1;
      break;
    }
    pg->hosts[pg->nhosts] = one;
    pg->addrs[pg->nhosts++] = NULL;
    p = p[len] ? p + len + 1 : NULL;
  }
  PQconninfoFree(o);
  if (nomem) connect_failed(pg, RD_ENOMEM, "out of memory");
  else resolve_next(pg);
}

/* ---- the schema (pg_migrate.c says what to send) ------------------------------------ */

static void setup_send(rd__pg *pg) {
  rd_err e = {0};
  char *sql = rd__pg_setup_sql(&pg->setup, &e);
  if (!sql && e.code) {
    connection_down(pg, e.code, e.msg, 1);
    return;
  }
  if (!sql) { /* done: the store is ready */
    if (!PQenterPipelineMode(pg->conn)) {
      connect_failed(pg, RD_ECONNECT, PQerrorMessage(pg->conn));
      return;
    }
    pg->state = READY;
    if (pg->want_listen && pg->st) pg_listen(pg->st, NULL);
    if (pg->open_op) {
      rd__op *op = pg->open_op;
      pg->open_op = NULL;
      rd_wait_done(&op->base, 0);
    }
    send_waiting(pg);
    update_watch(pg);
    return;
  }
  int ok = PQsendQuery(pg->conn, sql);
  free(sql);
  if (!ok) {
    connect_failed(pg, RD_ECONNECT, PQerrorMessage(pg->conn));
    return;
  }
  int f = flush(pg);
  if (f >= 0 && watch(pg, UV_READABLE | (f ? UV_WRITABLE : 0)))
    connect_failed(pg, RD_ECONNECT, "cannot watch the socket");
}

static void setup_read(rd__pg *pg) {
  if (!PQconsumeInput(pg->conn)) {
    connect_failed(pg, RD_ECONNECT, PQerrorMessage(pg->conn));
    return;
  }
  while (!PQisBusy(pg->conn)) {
    PGresult *res = PQgetResult(pg->conn);
    if (res) {
      PGresult **p = realloc(pg->setup_res, (size_t)(pg->nsetup + 1) * sizeof *p);
      if (!p) {
        PQclear(res);
        connect_failed(pg, RD_ENOMEM, "out of memory");
        return;
      }
      pg->setup_res = p;
      pg->setup_res[pg->nsetup++] = res;
      continue;
    }
    /* the step's answers are all in */
    rd_err e = {0};
    for (int i = 0; i < pg->nsetup && !e.code; i++) {
      ExecStatusType t = PQresultStatus(pg->setup_res[i]);
      if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK)
        rd__pg_fail(NULL, pg->setup_res[i], pg->st->path, &e);
    }
    if (!e.code) rd__pg_setup_next(&pg->setup, pg->setup_res, pg->nsetup, pg->st->path, &e);
    clear_setup(pg);
    if (e.code) {
      connection_down(pg, e.code, e.msg, 1);
      return;
    }
    setup_send(pg);
    return;
  }
}

/* ---- the pipeline ----------------------------------------------------------------- */

/* The open segment, made when there is none. */
static seg *open_seg(rd__pg *pg) {
  if (pg->seg_tail && !pg->seg_tail->synced) return pg->seg_tail;
  seg *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (pg->seg_tail) pg->seg_tail->next = s;
  else pg->seg_head = s;
  pg->seg_tail = s;
  return s;
}

/* Send r into the open segment. On a failure r is completed with it (the
 * connection is down). */
static void send_req(rd__pg *pg, rd__pgreq *r) {
  seg *s = open_seg(pg);
  size_t need = s ? s->n + 2 * (size_t)r->nq : 0;
  if (s && need > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 32;
    while (cap < need) cap *= 2;
    slot *p = realloc(s->slots, cap * sizeof *p);
    if (p) s->slots = p, s->cap = cap;
  }
  if (!s || need > s->cap) {
    rd_err e = {0};
    rd_err_set(&e, RD_ENOMEM, "store: out of memory");
    complete(r, RD_ENOMEM, &e);
    return;
  }
  r->tries++;
  r->next = NULL;
  if (s->tail) s->tail->next = r;
  else s->head = r;
  s->tail = r;
  for (int i = 0; i < r->nq; i++) {
    rd__pgstmt *st = r->q[i].stmt;
    if (st->state == 0) {
      if (!PQsendPrepare(pg->conn, st->name, st->text, st->nparams, NULL)) {
        broken(pg, PQerrorMessage(pg->conn));
        return;
      }
      st->state = 1;
      s->slots[s->n++] = (slot){r, i, 1};
    }
    const char *vals[st->nparams ? st->nparams : 1];
    for (int k = 0; k < st->nparams; k++)
      vals[k] = r->q[i].val[k] < 0 ? NULL : r->buf.data + r->q[i].val[k];
    if (!PQsendQueryPrepared(pg->conn, st->name, st->nparams, vals, NULL, NULL, 0)) {
      broken(pg, PQerrorMessage(pg->conn));
      return;
    }
    s->slots[s->n++] = (slot){r, i, 0};
  }
  rd__group_schedule(pg->st);
}

static void send_waiting(rd__pg *pg) {
  while (pg->wait_head && pg->state == READY) {
    rd__pgreq *r = pg->wait_head;
    pg->wait_head = r->next;
    if (!pg->wait_head) pg->wait_tail = NULL;
    send_req(pg, r);
  }
}

static void queue(rd__pg *pg, rd__pgreq *r) {
  r->next = NULL;
  if (pg->wait_tail) pg->wait_tail->next = r;
  else pg->wait_head = r;
  pg->wait_tail = r;
}

/* The group's end (group.c's hook): the sync that commits the open segment. */
static void pg_group_end(rd_store_t *st) {
  rd__pg *pg = st->pg;
  seg *s = pg ? pg->seg_tail : NULL;
  if (!s || s->synced || pg->state != READY) return;
  if (!PQpipelineSync(pg->conn)) {
    broken(pg, PQerrorMessage(pg->conn));
    return;
  }
  s->synced = 1;
  if (flush(pg) >= 0) update_watch(pg);
}

/* An error worth sending the request again for: a deadlock or serialization
 * failure (the server rolled back), or a statement this connection had not
 * prepared after all (its Parse was in a segment that failed). */
static int transient(const PGresult *res) {
  const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  return code && (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0 ||
                  strcmp(code, "26000") == 0);
}

/* The sync of the head segment is answered: its requests are done, or one
 * failed and the others go again (their transaction was rolled back). */
static void seg_done(rd__pg *pg) {
  seg *s = pg->seg_head;
  pg->seg_head = s->next;
  if (!pg->seg_head) pg->seg_tail = NULL;
  rd__pgreq *bad = s->failed ? s->slots[s->failed - 1].r : NULL;
  rd__pgreq *again = NULL, **tail = &again;
  for (rd__pgreq *r = s->head, *next; r; r = next) {
    next = r->next;
    r->next = NULL;
    if (!bad) {
      complete(r, 0, NULL);
    } else if (r == bad && !(transient(r->q[r->failed_q].res) && r->tries < MAX_TRIES && r->op)) {
      complete_failed(r);
    } else if (!r->op && !r->internal) {
      req_free(r); /* nobody waits for it: not worth sending again */
    } else {
      if (r == bad)
        for (int i = 0; i < r->nq; i++)
          if (r->q[i].stmt->state == 1) r->q[i].stmt->state = 0;
      req_clear(r);
      *tail = r;
      tail = &r->next;
    }
  }
  free(s->slots);
  free(s);
  while (again) {
    rd__pgreq *r = again;
    again = r->next;
    if (pg->state == READY) {
      send_req(pg, r);
    } else {
      /* the connection broke meanwhile: r was rolled back, so it waits for
       * the next connection */
      queue(pg, r);
      if (pg->state == DOWN && pg->st) start_connect(pg);
    }
  }
}

/* A result for the head segment's next slot. */
static void slot_result(rd__pg *pg, PGresult *res) {
  seg *s = pg->seg_head;
  slot *sl = &s->slots[s->at++];
  rd__pgreq *r = sl->r;
  rd__pgq *q = &r->q[sl->qi];
  ExecStatusType t = PQresultStatus(res);
  if (t == PGRES_FATAL_ERROR && !s->failed) s->failed = (int)s->at;
  if (sl->prep) {
    /* a Parse is not undone by the rollback: prepared is prepared */
    if (t == PGRES_COMMAND_OK) q->stmt->state = 2;
    else if (q->stmt->state == 1) q->stmt->state = 0;
  }
  if (t == PGRES_FATAL_ERROR && r->failed_q < 0) {
    r->failed_q = sl->qi;
    PQclear(q->res);
    q->res = res;
  } else if (!sl->prep && !q->res) {
    q->res = res;
  } else {
    PQclear(res);
  }
}

static int pending(const rd__pg *pg) {
  const seg *s = pg->seg_head;
  return s && (s->at < s->n || s->synced);
}

static void read_results(rd__pg *pg) {
  if (!PQconsumeInput(pg->conn)) {
    broken(pg, PQerrorMessage(pg->conn));
    return;
  }
  int nulls = 0;
  while (pg->state == READY && pending(pg) && !PQisBusy(pg->conn)) {
    PGresult *res = PQgetResult(pg->conn);
    if (!res) {
      if (++nulls > 1) break; /* nothing more queued: never spin */
      continue;
    }
    nulls = 0;
    if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      seg_done(pg);
    } else if (pg->seg_head->at < pg->seg_head->n) {
      slot_result(pg, res);
    } else {
      PQclear(res);
      broken(pg, "an answer nobody asked for");
      return;
    }
  }
  /* after the results: parsing them may have queued notifications */
  int woke = 0;
  for (PGnotify *n; pg->conn && (n = PQnotifies(pg->conn)); PQfreemem(n)) woke = 1;
  if (woke && pg->st) rd__work_signal(pg->st);
}

static void update_watch(rd__pg *pg) {
  if (!pg->conn || pg->state != READY) return;
  int ev = 0;
  if (pending(pg) || (pg->listen_sent && pg->st && pg->st->work)) ev |= UV_READABLE;
  if (PQflush(pg->conn) == 1) ev |= UV_WRITABLE;
  if (watch(pg, ev)) broken(pg, "cannot watch the socket");
}

static void on_poll(uv_poll_t *h, int status, int events) {
  rd__pg *pg = h->data;
  if (status < 0) events = UV_READABLE | UV_WRITABLE; /* libpq finds out what */
  switch (pg->state) {
  case CONNECTING: connect_step(pg); return;
  case SETUP:
    if ((events & UV_WRITABLE) && flush(pg) == 0) watch(pg, UV_READABLE);
    if (pg->state == SETUP && (events & UV_READABLE)) setup_read(pg);
    return;
  case READY:
    if ((events & UV_WRITABLE) && flush(pg) < 0) return;
    if (events & UV_READABLE) read_results(pg);
    update_watch(pg);
    return;
  default: return;
  }
}

/* ---- the backend ---------------------------------------------------------------------- */

static int pg_open(rd__op *op, rd_err *err) {
  rd_store_t *st = op->st;
  if (!st->loop) return rd_err_set(err, RD_EINVALID, "store: '%s' needs a loop", st->path);
  int e = rd__pq_load(err);
  if (e) return e;
  rd__pg *pg = calloc(1, sizeof *pg);
  if (!pg || !(pg->url = strdup(op->a.open.target)) ||
      (op->a.open.password && !(pg->password = strdup(op->a.open.password)))) {
    if (pg) free(pg->url);
    free(pg);
    return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  }
  /* before anything can print them */
  if (rd_redact_add_url(pg->url, err) ||
      (pg->password && rd_redact_add(pg->password, strlen(pg->password), err))) {
    free(pg->url);
    free(pg->password);
    free(pg);
    return err ? err->code : RD_ENOMEM;
  }
  pg->st = st;
  st->pg = pg;
  pg->open_op = op;
  start_connect(pg);
  return 0;
}

static int pg_start(rd__op *op, rd_err *err) {
  if (op->kind == RD__OP_OPEN) return pg_open(op, err);
  rd__pg *pg = op->st->pg;
  const rd__pgop *o = op->kind < RD__OP_NKINDS ? ops[op->kind] : NULL;
  if (!o) return rd_err_set(err, RD_EUNSUPPORTED, "store: cannot %s", rd__op_what(op->kind));
  if (!pg || !op->st->loop)
    return rd_err_set(err, RD_EINVALID, "store: '%s' has no connection", op->st->path);
  rd__pgreq *r = calloc(1, sizeof *r);
  if (!r) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
  r->pg = pg;
  r->kind = op->kind;
  r->failed_q = -1;
  int e = o->build(r, op, err);
  if (!e && r->failed_q == -2) e = rd_err_set(err, RD_ENOMEM, "store: out of memory");
  if (e) {
    r->failed_q = -1;
    req_free(r);
    return e;
  }
  r->op = op;
  op->state = r;
  if (pg->state == READY) {
    send_req(pg, r);
  } else {
    queue(pg, r);
    if (pg->state == DOWN) start_connect(pg);
  }
  return 0;
}

static int pg_finish(rd__op *op, rd_err *err) {
  rd__pgreq *r = op->state;
  op->state = NULL;
  if (op->kind == RD__OP_OPEN) return 0;
  int e = ops[op->kind]->read(r, op, err);
  req_free(r);
  return e;
}

static void pg_discard(rd__op *op) {
  req_free(op->state);
  op->state = NULL;
}

static void pg_cancel(rd__op *op) {
  rd__pg *pg = op->st ? op->st->pg : NULL;
  rd__pgreq *r = op->state;
  op->state = NULL;
  if (op->kind == RD__OP_OPEN) {
    if (pg && pg->open_op == op) pg->open_op = NULL;
    return;
  }
  if (!r) return;
  r->op = NULL; /* the connection frees it when its answer comes */
  if (!pg) return;
  for (rd__pgreq **p = &pg->wait_head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
    if (*p != r) continue;
    *p = r->next; /* never sent: gone now */
    if (pg->wait_tail == r) pg->wait_tail = prev;
    req_free(r);
    return;
  }
}

static int pg_set_loop(rd_store_t *st, rd_loop_t *loop, rd_err *err) {
  rd__pg *pg = st->pg;
  if (!pg) return 0;
  if (pg->state != READY && pg->state != DOWN)
    return rd_err_set(err, RD_EBUSY, "store: '%s' is connecting", st->path);
  if (pending(pg) && loop)
    return rd_err_set(err, RD_EBUSY, "store: '%s' has operations in flight", st->path);
  close_poll(pg); /* on the old loop; the next watch makes one on the new */
  if (!loop) fail_all(pg, RD_EIO, "store: detached from its loop");
  return 0;
}

static int pg_listen(rd_store_t *st, rd_err *err) {
  (void)err;
  rd__pg *pg = st->pg;
  if (!pg) return 0;
  pg->want_listen = 1;
  if (pg->state == READY && !pg->listen_sent) {
    /* the channel the schema's triggers notify (pg_migrate.c) */
    char sql[64];
    snprintf(sql, sizeof sql, "LISTEN redrive_work_%u", pg->setup.table_oid);
    rd__pgreq *r = calloc(1, sizeof *r);
    if (!r) return rd_err_set(err, RD_ENOMEM, "store: out of memory");
    r->pg = pg;
    r->failed_q = -1;
    r->internal = 1;
    if (rd__pg_add(r, sql, err)) {
      req_free(r);
      return RD_ENOMEM;
    }
    pg->listen_sent = 1;
    send_req(pg, r); /* nobody waits for it: freed when answered */
  }
  update_watch(pg);
  return 0;
}

static void pg_close(rd_store_t *st) {
  rd__pg *pg = st->pg;
  if (!pg) return;
  st->pg = NULL;
  fail_all(pg, RD_EIO, "store: closed while the operation was in flight");
  connection_down(pg, RD_EIO, "closed", 0);
  for (rd__pgstmt *s = pg->stmts, *next; s; s = next) {
    next = s->next;
    stmt_free(s);
  }
  if (pg->password) explicit_bzero(pg->password, strlen(pg->password));
  free(pg->password);
  explicit_bzero(pg->url, strlen(pg->url));
  free(pg->url);
  pg->st = NULL;
  if (pg->closes == 0) free(pg); /* else the last close callback does */
}

const rd__backend rd__pg_backend = {
  .name = "postgresql",
  .async = 1,
  .start = pg_start,
  .finish = pg_finish,
  .cancel = pg_cancel,
  .discard = pg_discard,
  .group_end = pg_group_end,
  .set_loop = pg_set_loop,
  .listen = pg_listen,
  .close = pg_close,
};

/*
 * redrive — public C API for embedders.
 *
 * Conventions (see docs/c-api.md, "C API"):
 *  - A fallible function returns 0 or a negative RD_E* code. Outputs go
 *    through out-parameters written only on success.
 *  - Every fallible function takes an `rd_err *err` supplied by the caller
 *    (may be NULL) that receives the code and a one-line message naming what
 *    and where. Errors are never stored on shared objects.
 *  - Constructors are rd_x_new/open(&out, ..., err); destructors rd_x_free /
 *    rd_x_close accept NULL.
 */
#ifndef RD_REDRIVE_H
#define RD_REDRIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RD_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------ */

/* XX(code, NAME, lua_name, message) */
#define RD_ERR_MAP(XX)                                                     \
  XX(-1, NOT_FOUND, "not_found", "not found")                              \
  XX(-2, INVALID, "invalid", "invalid argument or document")               \
  XX(-3, HTTP, "http", "HTTP transport error")                             \
  XX(-4, TIMEOUT, "timeout", "operation timed out")                        \
  XX(-5, CONNECT, "connect", "cannot connect")                             \
  XX(-6, TLS, "tls", "TLS error")                                          \
  XX(-7, UNSUPPORTED, "unsupported", "not supported")                      \
  XX(-8, CONFLICT, "conflict", "conflict")                                 \
  XX(-9, CANCELED, "canceled", "canceled")                                 \
  XX(-10, NOMEM, "nomem", "out of memory")                                 \
  XX(-11, IO, "io", "I/O error")                                           \
  XX(-12, AUTH, "auth", "authentication refused")                          \
  XX(-13, RATE_LIMITED, "rate_limited", "rate limit exhausted")            \
  XX(-14, BUSY, "busy", "resource busy")                                   \
  XX(-15, CORRUPT, "corrupt", "corrupt or foreign data")                   \
  XX(-16, TOO_LARGE, "too_large", "size limit exceeded")                   \
  XX(-17, LIMIT, "limit", "work limit exceeded")

enum {
  RD_OK = 0,
#define RD__ERR_ENUM(code, name, lname, msg) RD_E##name = code,
  RD_ERR_MAP(RD__ERR_ENUM)
#undef RD__ERR_ENUM
};

/* An error is a code and a message, nothing more. (An HTTP status is never
 * an error here: a 4xx/5xx reply is a response, rd_http_res_t.status, and a
 * server's Retry-After is its header, rd_http_res_header(res,
 * "retry-after"); the Lua sources read both from the response.) */
typedef struct rd_err {
  int code;            /* RD_E* or 0 */
  char msg[512];       /* one line: what and where */
} rd_err;

/* Stable short name of a code ("not_found"), "ok" for 0, "unknown" else. */
const char *rd_err_name(int code);
/* Generic message for a code. */
const char *rd_strerror(int code);
/* Fill `err` (if not NULL) with code and a printf-style message; returns
 * `code` so callers can write `return rd_err_set(err, RD_EINVALID, ...)`. */
int rd_err_set(rd_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reset `err` to "no error". */
void rd_err_clear(rd_err *err);

/* ---- secrets: the one redactor ----------------------------------------- *
 *
 * Everything redrive stores or prints (errors, reasons, run-data errors, logs,
 * --json output, REPL results) goes through rd_redact. It replaces with
 * RD_REDACTED:
 *  - the value bound to a credential's name (rd_redact_is_secret_name) in a
 *    header line `Name: value`, a query string or form body `name=value`, a
 *    JSON member `"name": "value"` or Lua-ish `name = "value"`;
 *  - the credential after `Bearer` / `Basic`, and URL userinfo (`//u:p@`);
 *  - every literal credential this process has sent (the registry below),
 *    wherever it appears, so a server that echoes a request cannot smuggle a
 *    token into a stored error.
 * Redact before truncating: half a token is no longer recognised.
 * All functions are thread-safe (one process-wide mutex). */

#define RD_REDACTED "<redacted>"
#define RD_REDACT_MIN 6          /* shorter literals are not registered */
#define RD_REDACT_MAX_LEN 4096   /* longer literals are not registered */
#define RD_REDACT_SLOTS 1024     /* registered literals kept (oldest dropped) */

/* Redact n bytes at s. On success *out is a malloc'd, NUL-terminated copy
 * with every secret replaced (free() it; *outlen, if not NULL, gets its
 * length), or NULL when s holds nothing to replace (use s as is).
 * RD_ENOMEM (nothing written). */
int rd_redact(const char *s, size_t n, char **out, size_t *outlen, rd_err *err);
/* Redact the NUL-terminated message in buf (capacity cap) in place,
 * truncating it to fit. Cannot fail: without memory the message is replaced
 * by a note saying it was withheld. */
void rd_redact_msg(char *buf, size_t cap);
/* 1 when s holds a secret someone typed as a literal: a registered
 * credential, a quoted or query value under a credential's name, a Bearer /
 * Basic credential or URL userinfo; 0 otherwise (Lua code such as
 * `token = os.getenv("T")` is not a secret). The REPL keeps such lines out
 * of its history. */
int rd_redact_holds_secret(const char *s, size_t n);
/* 1 when `name` (a header, query parameter or field name; case, `-`, `_`,
 * `.` and camelCase do not matter) names a credential: authorization,
 * cookie, token, password, client_secret, x-api-key, ... (see redact.c). */
int rd_redact_is_secret_name(const char *name, size_t n);
/* Register a credential literal sent by this process (and its percent-
 * encoded / decoded forms). Literals shorter than RD_REDACT_MIN or longer
 * than RD_REDACT_MAX_LEN are ignored, so short values do not scrub ordinary
 * text. The registry keeps a copy until rd_redact_clear; RD_ENOMEM. */
int rd_redact_add(const char *secret, size_t n, rd_err *err);
/* Register the credential of a "Name: value" header line when Name is a
 * credential's name (the part after an auth scheme: `Bearer x` gives x;
 * each cookie value of a Cookie header). RD_ENOMEM. */
int rd_redact_add_header(const char *line, rd_err *err);
/* Register the password of a URL's userinfo and the values of query
 * parameters with credential names. RD_ENOMEM. */
int rd_redact_add_url(const char *url, rd_err *err);
/* Forget (and wipe) every registered literal. */
void rd_redact_clear(void);
/* Copy `url` into `out` (size n, truncated, always NUL-terminated) without
 * userinfo, query and fragment: the form a URL takes in messages. */
void rd_redact_url(const char *url, char *out, size_t n);
/* Copy `url` into `out` (size n, truncated, always NUL-terminated) without
 * its password: the userinfo keeps its user, query parameters with
 * credential names (password=, sslpassword=) are left out, the rest stays
 * (a PostgreSQL URL's host=/socket/dir, dbname, options), and registered
 * literals are redacted: the form a store URL takes wherever it is shown. */
void rd_redact_url_password(const char *url, char *out, size_t n);

/* ---- failure fingerprints: the one normaliser ------------------------- *
 *
 * Failures that share a cause share a fingerprint, whatever varies between
 * them. rd_cause turns a failure message into its template: a left-to-right
 * scan replaces
 *   <n>     numbers (with a fraction; "500ms" -> "<n>ms"), except an HTTP
 *           status the text names as one ("HTTP 503", "HTTP/1.1 503",
 *           "status code 503", "statusCode: 503", "[503]", "503 Service
 *           Unavailable")
 *   <hex>   0x1f, and words of 8+ hex digits with a digit in them
 *   <id>    words of 10+ letters and digits with 2+ of each
 *   <uuid>  8-4-4-4-12 hex
 *   <host>  a URL's userinfo, host and port (scheme and path stay: the path
 *           normalised, query values -> <v>, a fragment -> #<v>), IPv4 and
 *           IPv6 addresses (with a port), name:port, DNS names of three
 *           labels or more in lower case (api.example.com)
 *   <email> addresses
 *   <time>  ISO 8601 dates and times (with a zone), hh:mm:ss, HTTP dates
 *   <q>     a quoted value ("...", '...', `...`, typographic quotes); kept,
 *           and normalised inside, are a label or JSON key (a ':' follows),
 *           prose (it holds white space), "" and a JSON string value that is
 *           a bare word without digits ("not_found");
 * white space runs become one space (trimmed), control characters a space,
 * bytes that are not UTF-8 U+FFFD, and the same placeholder repeated with
 * only separators between (", ", " ", ";", "|") one placeholder ("ids 1, 2,
 * 3" -> "ids <n>"). An empty message is "(no message)". The template of a
 * template is itself.
 *   "HTTP 503 from http://10.0.0.7:8080/order/5?x=1" ->
 *   "HTTP 503 from http://<host>/order/<n>?x=<v>"
 * Bounded: only the first RD_CAUSE_SCAN bytes of a message are read, each
 * rule looks ahead a bounded distance, nothing is allocated. The kept
 * template is valid UTF-8, cut (with "…") at a character boundary. */
#define RD_FINGERPRINT_LEN 12    /* hex digits of a fingerprint */
#define RD_CAUSE_SCAN 4096       /* bytes of a message read */
#define RD_CAUSE_MAX 320         /* a cause buffer this big keeps templates of ~300 bytes */

/* Write the template of msg[0..n) into out (cap bytes, NUL-terminated; cut
 * with "…" when it does not fit). Returns the length written. Never fails;
 * out may be NULL with cap 0. */
size_t rd_cause(const char *msg, size_t n, char *out, size_t cap);

/* What identifies a failure's cause. Every member may be NULL / 0. */
typedef struct rd_failure {
  const char *module;      /* module type: "http:ActionSendData", an n8n node type */
  const char *module_id;   /* its id in the scenario: "3", an n8n node name */
  const char *error_class; /* error class or code: "http", "ConnectionError" */
  int status;              /* HTTP status, 0 = the one the message names, if any */
  const char *message;     /* the failure's message (a reason, error.message) */
  size_t message_len;      /* 0 = strlen(message) */
} rd_failure_t;

/* The fingerprint of a failure: RD_FINGERPRINT_LEN lower-case hex digits
 * (fp, NUL-terminated) of a 64-bit hash of the module, module id, the HTTP
 * status ("HTTP 503": given, else the first the message names) or else
 * the error class, and the message's template (whole, even when `cause`
 * keeps only its start). The template goes to cause (cap bytes, as
 * rd_cause; cause may be NULL). Stable across runs, machines and sources:
 * the same failure always gets the same fingerprint, one status or module
 * apart it gets another. Each of module, module_id and error_class counts
 * up to 256 bytes. Never fails. */
void rd_fingerprint(const rd_failure_t *f, char fp[RD_FINGERPRINT_LEN + 1], char *cause,
                    size_t cap);

/* ---- loop: tasks and waits on one libuv loop -------------------------- *
 *
 * A task is a C function the loop runs, never re-entrantly: only from the
 * loop's own callbacks, once after rd_task_spawn and then each time the wait
 * it parked on completes (or after it yielded). In its function a task
 * either parks on one wait (rd_task_park), yields (rd_task_yield), or
 * returns without doing either: then it has ended and the loop frees it.
 *
 * A wait is a record that an operation embeds, as its first member, in its
 * own state. The operation completes it with rd_wait_done(w, status) from
 * any loop callback (or at once, before the task parks). Cancelling it
 * (rd_task_cancel, rd_loop_interrupt, rd_loop_close) first calls w->cancel,
 * which stops the operation so that it never completes the wait itself,
 * then completes it with RD_ECANCELED: a cancelled wait is told apart by
 * that status, nothing else. When the parked task runs again it reads
 * w->status and frees the record with rd_wait_release. After
 * rd_loop_interrupt every wait fails with RD_ECANCELED, including waits
 * that start later, until rd_loop_clear_interrupt.
 *
 * Before-poll hooks run once, right before the loop next waits for I/O:
 * after every task made ready in this loop iteration has run, in the order
 * they were scheduled. (The store's group commit is one: writes of one
 * iteration share one sync, and their tasks run again once it is done.)
 */
struct uv_loop_s;
typedef struct rd_loop rd_loop_t;
typedef struct rd_task rd_task_t;
typedef struct rd_wait rd_wait_t;
typedef struct rd_hook rd_hook_t;
typedef struct rd_cond rd_cond_t;

struct rd_wait {
  int status;                    /* 0 or RD_E*, valid once done */
  int done;                      /* set once, by rd_wait_done */
  /* Stop the operation (NULL when there is nothing to stop). */
  void (*cancel)(rd_wait_t *w);
  /* Free the record, asynchronously when it owns uv handles. */
  void (*release)(rd_wait_t *w);
  rd_task_t *task;               /* private: the task parked on it */
};

struct rd_hook {
  void (*fn)(rd_hook_t *h);
  rd_hook_t *next;               /* private */
  rd_loop_t *loop;               /* private: set while scheduled */
};

struct rd_cond {                 /* private: FIFO of waits */
  struct rd__cond_wait *head, *tail;
};

/* A task's function; ud as given to rd_task_spawn. */
typedef void (*rd_task_fn)(rd_task_t *t, void *ud);

enum { RD_TASK_READY, RD_TASK_PARKED, RD_TASK_RUNNING };

/* Create a loop with its own uv loop. RD_ENOMEM, RD_EIO. */
int rd_loop_new(rd_loop_t **out, rd_err *err);
/* The uv loop, for other handles (rd_http_new); borrowed until close. */
struct uv_loop_s *rd_loop_uv(rd_loop_t *l);
/* Run until no task is left, the loop is interrupted, or nothing could make
 * progress (every task parked, no handle active). RD_EBUSY when the loop is
 * already running or this is called from a task. */
int rd_loop_run(rd_loop_t *l, rd_err *err);
/* Run the loop, from outside any task, until `w` completes (a program's
 * main thread waiting for one operation). After an interrupt w is
 * cancelled and 0 returned (w->status is RD_ECANCELED). RD_EBUSY as for
 * rd_loop_run; RD_EINVALID when nothing left could complete w ("deadlock"):
 * w is then cancelled. The caller still owns w. */
int rd_loop_wait(rd_loop_t *l, rd_wait_t *w, rd_err *err);
/* Unfinished tasks. */
size_t rd_loop_tasks(const rd_loop_t *l);
/* Inside rd_loop_run, rd_loop_wait or rd_loop_drain? */
int rd_loop_running(const rd_loop_t *l);
/* The task whose function is running now, NULL outside tasks. */
rd_task_t *rd_loop_current(const rd_loop_t *l);
/* Cancel every wait, now and until rd_loop_clear_interrupt. Safe from any
 * loop callback (e.g. a uv_async_t of a signal handler), not from a signal
 * handler itself. */
void rd_loop_interrupt(rd_loop_t *l);
int rd_loop_interrupted(const rd_loop_t *l);
void rd_loop_clear_interrupt(rd_loop_t *l);
/* After an interrupt: run the loop so the tasks unwind (cancelling what
 * they wait on again and again) for at most grace_ms; returns the tasks
 * left. */
size_t rd_loop_drain(rd_loop_t *l, uint64_t grace_ms);
/* Stop everything without running any task again: each parked task's wait
 * is cancelled and released, every task is dropped (its function is not
 * called again), and the scheduled hooks run. Handles stay open, so owners
 * can close theirs (rd_http_close); new tasks are refused. Idempotent; not
 * from inside a task. */
void rd_loop_shutdown(rd_loop_t *l);
/* Shut down (if not done), close every handle and free the loop (NULL is
 * fine). Returns 0, or how many handles others had left open, which it
 * closed for them (a leak in the caller). */
int rd_loop_close(rd_loop_t *l);

/* Schedule hook h before the loop next polls; a no-op when h is scheduled
 * already. h->fn must be set. */
void rd_loop_before_poll(rd_loop_t *l, rd_hook_t *h);
/* Run every scheduled hook now, in order, hooks they schedule included. */
void rd_loop_run_hooks(rd_loop_t *l);
/* Unschedule h (a no-op when it is not scheduled). */
void rd_hook_cancel(rd_hook_t *h);

/* Start a task: fn(t, ud) runs from the loop, never from inside this
 * call. *out (may be NULL) is valid until the task ends. RD_ENOMEM;
 * RD_EBUSY after rd_loop_shutdown. */
int rd_task_spawn(rd_loop_t *l, rd_task_fn fn, void *ud, rd_task_t **out, rd_err *err);
/* From inside t's function: park t on w until w completes. If w is done
 * already, or the loop is interrupted (w is then cancelled), t is just
 * queued to run again. */
void rd_task_park(rd_task_t *t, rd_wait_t *w);
/* From inside t's function: run t again after the tasks ready now. */
void rd_task_yield(rd_task_t *t);
/* Cancel the wait t is parked on or, when t is not parked (queued to run,
 * or running), the next wait it parks on; 1, or 0 when t is already queued
 * to see a cancelled wait (cancels do not pile up). t keeps running:
 * cancellation stops waits, never code. */
int rd_task_cancel(rd_task_t *t);
/* RD_TASK_READY, RD_TASK_PARKED or RD_TASK_RUNNING. */
int rd_task_state(const rd_task_t *t);

/* Prepare a wait record embedded in an operation's state. */
void rd_wait_init(rd_wait_t *w, void (*cancel)(rd_wait_t *), void (*release)(rd_wait_t *));
/* Complete w with status (0 or RD_E*) and queue the task parked on it. Only
 * the first completion counts. Safe from any loop callback. */
void rd_wait_done(rd_wait_t *w, int status);
/* If w is not done: w->cancel, then complete it with RD_ECANCELED. */
void rd_wait_cancel(rd_wait_t *w);
/* Free w (w->release); NULL is fine. Not while a task is parked on it. */
void rd_wait_release(rd_wait_t *w);
/* A wait that completes (status 0) ms milliseconds from now. RD_ENOMEM. */
int rd_wait_timer(rd_loop_t *l, uint64_t ms, rd_wait_t **out, rd_err *err);

/* A condition variable: tasks park on rd_wait_cond waits until signalled.
 * Must stay valid while waits are queued on it (a cancelled wait leaves the
 * queue). */
void rd_cond_init(rd_cond_t *c);
/* A wait queued at the tail of c. RD_ENOMEM. */
int rd_wait_cond(rd_cond_t *c, rd_wait_t **out, rd_err *err);
/* Complete the oldest wait (signal) or all of them (broadcast); returns
 * how many were woken. */
size_t rd_cond_signal(rd_cond_t *c);
size_t rd_cond_broadcast(rd_cond_t *c);

/* ---- HTTP on a libuv loop (libcurl multi) ------------------------------ */

typedef struct rd_http rd_http_t;        /* one curl multi bound to a loop */
typedef struct rd_http_op rd_http_op_t;  /* one request in flight */

typedef struct rd_http_opts {
  long max_host_connections;  /* per-host connection cap, 0 = default (32) */
  long max_total_connections; /* 0 = default (256) */
} rd_http_opts_t;

typedef struct rd_http_req {
  const char *method;          /* "GET" if NULL */
  const char *url;
  const char *const *headers;  /* NULL-terminated "Name: value" lines */
  const char *body;            /* borrowed until the callback runs */
  size_t body_len;
  long timeout_ms;             /* whole request; 0 = 30000 */
  long connect_timeout_ms;     /* 0 = 10000 */
  int follow;                  /* follow redirects */
  long max_redirects;          /* 0 = 10 */
  int insecure;                /* 1: skip TLS certificate and host checks (0, the
                                  default of a zeroed request, verifies them) */
  int gzip;                    /* ask for and decode gzip/deflate */
  const char *user, *pass;     /* basic auth, borrowed */
  uint64_t max_body;           /* decoded body limit in bytes; 0 = RD_HTTP_MAX_BODY */
} rd_http_req_t;

/* Default limit on a response body, counted on the decoded bytes: a body
 * past it fails the request with RD_ETOO_LARGE as soon as the byte that
 * passes it arrives (nothing bigger is ever buffered). 16 MiB is far above
 * any API page or run-data document redrive reads, and keeps 256 transfers
 * at once (the connection cap) within 4 GiB even against a gzip bomb. */
#define RD_HTTP_MAX_BODY ((uint64_t)16 << 20)
/* Limit on the header block of one response (every header line of it):
 * past it, RD_ETOO_LARGE. curl refuses a single line above 100 KiB itself. */
#define RD_HTTP_MAX_HEADERS ((size_t)256 << 10)

typedef struct rd_http_header {
  char *name;   /* lower-case */
  char *value;
} rd_http_header_t;

typedef struct rd_http_res {
  long status;
  char *body;
  size_t body_len;
  rd_http_header_t *headers;  /* in arrival order, final response only */
  size_t nheaders;
  char *url;                  /* effective URL after redirects */
  double total_time;          /* seconds */
  size_t bytes_sent, bytes_recv;
  int reused;                 /* 1 when a kept-alive connection was reused */
} rd_http_res_t;

/* Called once when a request ends. On success `status` is 0 and the callee
 * owns `res` (free it with rd_http_res_free). On a transport failure status
 * is RD_ETIMEOUT / RD_ECONNECT / RD_ETLS / RD_EHTTP, res is NULL and `err`
 * says what. A 4xx/5xx reply is a response, not an error. */
typedef void (*rd_http_cb)(int status, rd_http_res_t *res, const rd_err *err, void *ud);

int rd_http_new(rd_http_t **out, struct uv_loop_s *loop, const rd_http_opts_t *opts,
                rd_err *err);
/* Cancel every request in flight (their callbacks are not called) and free
 * `h` once its handles are closed; the loop must run to finish closing. */
void rd_http_close(rd_http_t *h);
/* Start a request. Its credentials (secret headers, basic-auth password,
 * URL password and secret query values) are registered with the redactor
 * first. On failure returns a code and `cb` is never called. */
int rd_http_start(rd_http_t *h, const rd_http_req_t *req, rd_http_cb cb, void *ud,
                  rd_http_op_t **op, rd_err *err);
/* Abort a request in flight; its callback is not called. */
void rd_http_cancel(rd_http_op_t *op);
void rd_http_res_free(rd_http_res_t *res);
/* Header value by lower-case name, borrowed from res, NULL if absent. */
const char *rd_http_res_header(const rd_http_res_t *res, const char *name);

/* ---- store: the durable store of the local engine --------------------- *
 *
 * Scenarios, executions, incomplete executions (DLQ items) and their retry
 * logs, in one of two backends, chosen by the target a store is opened on:
 *  - a file path: SQLite (WAL, synchronous=FULL, mode 0600: an existing
 *    file, -wal or -shm readable by others is made 0600 on open);
 *  - a postgresql:// (or postgres://) URL: PostgreSQL through libpq, driven
 *    asynchronously on a loop (never a blocking libpq call on it), the
 *    password from the URL, rd_store_opts_t.password or libpq's own ways
 *    (PGPASSFILE, service files); the URL is shown without its password.
 * Once a writing call returns 0, its change survives a crash or kill -9.
 * Several processes (and hosts, on PostgreSQL) may use one store; leases
 * keep them from retrying an item twice.
 *
 * Units: timestamps are seconds since the Unix epoch (fractions allowed),
 * durations milliseconds. A double field set to RD_STORE_NONE (NaN) is SQL
 * NULL (absent); a NULL string is absent too.
 *
 * Records handed to callbacks are borrowed: valid until the callback returns.
 * A callback returns 0 to go on, anything else to stop: the call then returns
 * RD_ECANCELED (on SQLite a writing call rolls back; on PostgreSQL results
 * are read after the operation committed). A callback must not call the
 * store it is called from. Records returned through `**out` are one malloc'd
 * block each: free them with free().
 *
 * The calls below are synchronous. On PostgreSQL each runs the store's loop
 * until its answer arrives, so it must be called from outside that loop's
 * tasks (a task uses the Lua binding's operations, which park it instead).
 */
typedef struct rd_store rd_store_t;

#define RD_STORE_NONE (__builtin_nan(""))
#define RD_STORE_ID_LEN 32             /* ids: 32 lowercase hex chars */
#define RD_STORE_DEFAULT_LIMIT 100     /* page size when `limit` is 0 */
#define RD_STORE_MAX_LIMIT 10000

typedef struct rd_store_opts {
  rd_loop_t *loop;          /* PostgreSQL: drive the connection on this loop
                               (NULL: a loop of the store's own) */
  const char *password;     /* PostgreSQL: the password, used instead of the
                               URL's; registered with the redactor, never shown */
} rd_store_opts_t;

/* Is target a PostgreSQL URL (postgresql:// or postgres://)? */
int rd_store_is_url(const char *target);
/* Open the store at `target` and bring its schema up to date. A file is
 * created (with its parent directories) if needed; RD_ECORRUPT when it is
 * not SQLite, is a database of something else, or has a newer schema;
 * RD_EIO when it cannot be created or opened; RD_EBUSY when another process
 * holds the lock for more than ~5 s. A URL is connected to (RD_ECONNECT,
 * RD_EAUTH when the server refuses the credentials) and migrated once, under
 * an advisory lock, however many processes open it at the same time;
 * RD_ECORRUPT when its schema is newer or another application's. The
 * message names the target (a URL without its password). */
int rd_store_open(rd_store_t **out, const char *target, rd_err *err);
int rd_store_open_opts(rd_store_t **out, const char *target, const rd_store_opts_t *o,
                       rd_err *err);
/* Close the store (NULL is fine). Pending leases stay until they expire.
 * On PostgreSQL, operations still in flight fail (RD_EIO). */
void rd_store_close(rd_store_t *st);
/* The target given to rd_store_open, as shown (a URL without its password);
 * borrowed, valid until close. */
const char *rd_store_path(const rd_store_t *st);
/* "sqlite" or "postgresql". */
const char *rd_store_backend(const rd_store_t *st);
/* Batches, by hand (SQLite; RD_EUNSUPPORTED on PostgreSQL, where the writes
 * of one loop iteration share a transaction by themselves).
 * rd_store_batch_begin opens one write transaction; until
 * rd_store_batch_commit, every writing call runs in its own savepoint inside
 * it (still atomic on its own) and none is durable before the commit, which
 * makes them all durable with one sync. The caller must not acknowledge a
 * batched write before the commit returns 0; a failed commit rolls the whole
 * batch back. Closing the store commits an open batch. (On a loop, the
 * group commit below does this by itself.) */
int rd_store_batch_begin(rd_store_t *st, rd_err *err);
int rd_store_batch_commit(rd_store_t *st, rd_err *err);
int rd_store_in_batch(const rd_store_t *st);

/* Group commit on a loop (src/store/group.c). Once a store is attached to
 * a loop, the writes of one loop iteration share one commit, made by a
 * before-poll hook right before the loop next polls. On SQLite,
 * rd_store_record and rd_store_retry_done called from a task of that loop
 * join one open transaction: such a write is not durable when the call
 * returns, and the task must not acknowledge it before it has parked on
 * rd_store_group_wait and that wait completed with 0 ("acknowledged means
 * durable"); every other write, and every write made outside a task, first
 * commits the open group (it never becomes part of a later transaction)
 * and the open groups of other stores on the loop (the same file opened
 * twice would otherwise wait for its own lock). On PostgreSQL every
 * operation of an iteration is one pipelined transaction and completes
 * after its commit, so nothing is ever pending here. Close every store
 * attached to a loop before the loop. */
typedef struct rd_store_wait {
  rd_wait_t base;              /* first; status 0 once committed, else the commit's code */
  rd_err err;                  /* why the commit failed */
  struct rd_store_wait *next;  /* private */
  rd_store_t *st;              /* private: NULL once woken */
} rd_store_wait_t;
/* Attach st to loop (NULL detaches), committing an open group first. A
 * PostgreSQL store moves its connection to the new loop (and cannot work
 * without one). 0, or an error when the connection cannot be watched there. */
int rd_store_attach(rd_store_t *st, rd_loop_t *loop, rd_err *err);
void rd_store_set_loop(rd_store_t *st, rd_loop_t *loop);
/* Is a group of st open, i.e. did the last write join one? */
int rd_store_group_pending(const rd_store_t *st);
/* Queue w (embedded in the caller's record, freed by `release`) to complete
 * when the open group commits; at once (status 0) when none is open. */
void rd_store_group_wait(rd_store_t *st, rd_store_wait_t *w, void (*release)(rd_wait_t *));
/* Commit the open group now and complete its waits; 0 when none is open. */
int rd_store_group_commit(rd_store_t *st, rd_err *err);
/* New work: a wait (park a task on it, then rd_wait_release it) that
 * completes with 0 when incomplete executions may have become claimable --
 * a new one, or one whose lease was dropped while it is pending -- or with
 * RD_ETIMEOUT after timeout_ms (0: no timeout; a timeout needs the store
 * attached to a loop). This process's own writes wake it on both backends;
 * on PostgreSQL, so do every other connection's (LISTEN / NOTIFY, sent by
 * the schema's triggers when the change commits). Leases that merely
 * expire wake nobody: a worker waits with the ttl as its timeout and claims
 * again. Closing the store wakes its waits. RD_ENOMEM, RD_EINVALID; on
 * PostgreSQL RD_EIO when the connection cannot listen. */
int rd_store_wait_work(rd_store_t *st, uint64_t timeout_ms, rd_wait_t **out, rd_err *err);
/* The schema version this build writes (SQLite: PRAGMA user_version;
 * PostgreSQL: the table redrive_schema). */
int rd_store_schema_version(void);
/* Write the default store path into buf: $REDRIVE_DB, else
 * $XDG_DATA_HOME/redrive/redrive.db, else ~/.local/share/redrive/redrive.db.
 * RD_EINVALID if it does not fit, RD_ENOT_FOUND if no home is known. */
int rd_store_default_path(char *buf, size_t n);

/* -- records, each described once --
 *
 * Every record the store keeps is one X-macro list, XX(field, FIELD, kind,
 * flags), in column order. The struct below, the update-mask bits, the
 * store's column lists, binders and row readers (src/store/record.c) and the
 * Lua tables of the binding (src/lua/lstore.c) are all generated from it:
 * a new column is one line here plus one migration (src/store/schema.c, a
 * text for each backend),
 * and a test fails when the schema and a list disagree.
 *
 * kind    C type          SQLite    PostgreSQL
 * TEXT    const char *    TEXT      text               NULL = absent
 * JSON    const char *    TEXT      json               JSON text, kept as given
 * BIGINT  int64_t         INTEGER   bigint
 * INT     int             INTEGER   integer
 * BOOL    int             INTEGER   boolean            0 or 1
 * REAL    double          REAL      double precision   RD_STORE_NONE = absent
 *
 * flags: RD_F_KEY the primary key; RD_F_NOTNULL declared NOT NULL;
 * RD_F_ZERONULL 0 is stored as NULL and NULL read as 0 (optional reference);
 * RD_F_HEAVY left out of list results (large JSON); RD_F_STORE set by the
 * store alone (what a caller passes in is ignored). */
enum {
  RD_F_KEY = 1 << 0, RD_F_NOTNULL = 1 << 1, RD_F_ZERONULL = 1 << 2, RD_F_HEAVY = 1 << 3,
  RD_F_STORE = 1 << 4,
};

#define RD__CTYPE_TEXT const char *
#define RD__CTYPE_JSON const char *
#define RD__CTYPE_BIGINT int64_t
#define RD__CTYPE_INT int
#define RD__CTYPE_BOOL int
#define RD__CTYPE_REAL double
#define RD__FIELD_DECL(f, F, kind, flags) RD__CTYPE_##kind f;

/* -- scenarios (integer ids) -- */
#define RD_SCENARIO_FIELDS(XX)                                                \
  XX(id, ID, BIGINT, RD_F_KEY | RD_F_STORE)                                   \
  XX(name, NAME, TEXT, RD_F_NOTNULL)                                          \
  XX(blueprint, BLUEPRINT, JSON, RD_F_NOTNULL)                                \
  XX(dlq, DLQ, BOOL, RD_F_NOTNULL)          /* store incomplete executions */ \
  XX(created, CREATED, REAL, RD_F_NOTNULL | RD_F_STORE)                       \
  XX(updated, UPDATED, REAL, RD_F_NOTNULL | RD_F_STORE)

typedef struct rd_scenario {
  RD_SCENARIO_FIELDS(RD__FIELD_DECL)
} rd_scenario_t;

/* Field bits for rd_store_scenario_update: RD_SCENARIO_NAME, ... (1 << the
 * field's place in the list). */
#define RD__SCENARIO_IDX(f, F, k, fl) RD__SCENARIO_I_##F,
#define RD__SCENARIO_BIT(f, F, k, fl) RD_SCENARIO_##F = 1 << RD__SCENARIO_I_##F,
enum { RD_SCENARIO_FIELDS(RD__SCENARIO_IDX) RD__SCENARIO_NFIELDS };
enum { RD_SCENARIO_FIELDS(RD__SCENARIO_BIT) };

typedef int (*rd_scenario_cb)(const rd_scenario_t *rec, void *ud);

/* Insert a scenario (id, created, updated are set by the store). */
int rd_store_scenario_create(rd_store_t *st, const rd_scenario_t *sc, int64_t *id, rd_err *err);
/* RD_ENOT_FOUND if there is no such scenario. */
int rd_store_scenario_get(rd_store_t *st, int64_t id, rd_scenario_t **out, rd_err *err);
int rd_store_scenario_list(rd_store_t *st, rd_scenario_cb cb, void *ud, rd_err *err);
/* Update the fields named in `mask` (RD_SCENARIO_*; bits of fields the store
 * sets are ignored); RD_ENOT_FOUND. */
int rd_store_scenario_update(rd_store_t *st, int64_t id, const rd_scenario_t *fields,
                             unsigned mask, rd_err *err);

/* -- executions (32-hex ids) -- */
#define RD_EXEC_FIELDS(XX)                                                    \
  XX(id, ID, TEXT, RD_F_KEY | RD_F_NOTNULL)  /* NULL on insert: made */       \
  XX(scenario_id, SCENARIO_ID, BIGINT, RD_F_ZERONULL)   /* 0 = none */        \
  XX(status, STATUS, TEXT, RD_F_NOTNULL)  /* success|warning|error|running|canceled */ \
  XX(mode, MODE, TEXT, 0)                                                     \
  XX(started_at, STARTED_AT, REAL, 0)                                         \
  XX(stopped_at, STOPPED_AT, REAL, 0)                                         \
  XX(duration, DURATION, REAL, 0)                                             \
  XX(operations, OPERATIONS, BIGINT, RD_F_NOTNULL)                            \
  XX(transfer, TRANSFER, BIGINT, RD_F_NOTNULL)                                \
  XX(attempts, ATTEMPTS, BIGINT, RD_F_NOTNULL)                                \
  XX(error, ERROR, JSON, 0)                                                   \
  XX(run_data, RUN_DATA, JSON, RD_F_HEAVY)  /* never set in list results */   \
  XX(retry_of, RETRY_OF, TEXT, 0)           /* the execution retried */       \
  XX(retry_success_id, RETRY_SUCCESS_ID, TEXT, 0) /* its successful retry */  \
  XX(parent_id, PARENT_ID, TEXT, 0)         /* the root of a retry chain */   \
  XX(dlq_id, DLQ_ID, TEXT, 0)                                                 \
  XX(fingerprint, FINGERPRINT, TEXT, 0)     /* of the error (rd_fingerprint) */ \
  XX(cause, CAUSE, TEXT, 0)                 /* its template (rd_cause) */

typedef struct rd_exec {
  RD_EXEC_FIELDS(RD__FIELD_DECL)
} rd_exec_t;

/* Field bits for rd_store_exec_update: RD_EXEC_STATUS, RD_EXEC_MODE, ... */
#define RD__EXEC_IDX(f, F, k, fl) RD__EXEC_I_##F,
#define RD__EXEC_BIT(f, F, k, fl) RD_EXEC_##F = 1 << RD__EXEC_I_##F,
enum { RD_EXEC_FIELDS(RD__EXEC_IDX) RD__EXEC_NFIELDS };
enum { RD_EXEC_FIELDS(RD__EXEC_BIT) };

typedef struct rd_exec_filter {
  int64_t scenario_id;     /* 0 = any */
  const char *status;      /* NULL = any */
  const char *mode;        /* NULL = any */
  double since, until;     /* on started_at: since <= t < until; RD_STORE_NONE = open */
  const char *after;       /* keyset pagination: ids > after; NULL = from the start */
  int limit;               /* 0 = RD_STORE_DEFAULT_LIMIT, capped at RD_STORE_MAX_LIMIT */
  const char *fingerprint; /* NULL = any */
} rd_exec_filter_t;

typedef int (*rd_exec_cb)(const rd_exec_t *rec, void *ud);

/* Execution with run_data; RD_ENOT_FOUND. */
int rd_store_exec_get(rd_store_t *st, const char *id, rd_exec_t **out, rd_err *err);
/* One page in id (creation) order, without run_data. */
int rd_store_exec_list(rd_store_t *st, const rd_exec_filter_t *f, rd_exec_cb cb, void *ud,
                       rd_err *err);
/* Update the fields named in `mask` (RD_EXEC_*); RD_ENOT_FOUND, RD_EINVALID. */
int rd_store_exec_update(rd_store_t *st, const char *id, const rd_exec_t *fields, unsigned mask,
                         rd_err *err);
/* Delete an execution; RD_ENOT_FOUND. Its DLQ item, if any, stays. */
int rd_store_exec_delete(rd_store_t *st, const char *id, rd_err *err);

/* -- incomplete executions (DLQ items) and their logs -- */
#define RD_DLQ_ITEM_FIELDS(XX)                                                \
  XX(id, ID, TEXT, RD_F_KEY | RD_F_NOTNULL)    /* NULL on insert: made */     \
  XX(scenario_id, SCENARIO_ID, BIGINT, RD_F_ZERONULL)                         \
  XX(scenario_name, SCENARIO_NAME, TEXT, 0)                                   \
  XX(reason, REASON, TEXT, 0)                                                 \
  XX(created, CREATED, REAL, RD_F_NOTNULL)     /* RD_STORE_NONE: now */       \
  XX(size, SIZE, BIGINT, RD_F_NOTNULL)                                        \
  XX(resolved, RESOLVED, BOOL, RD_F_NOTNULL)                                  \
  XX(retry, RETRY, BOOL, RD_F_NOTNULL)                                        \
  XX(attempts, ATTEMPTS, BIGINT, RD_F_NOTNULL)                                \
  XX(execution_id, EXECUTION_ID, TEXT, RD_F_STORE) /* set by rd_store_record */ \
  XX(failer, FAILER, BIGINT, RD_F_ZERONULL)    /* module id, 0 = none */      \
  XX(blueprint, BLUEPRINT, JSON, RD_F_HEAVY)   /* NULL in list results */     \
  XX(state, STATE, JSON, RD_F_HEAVY)           /* what resuming needs */      \
  XX(lease_owner, LEASE_OWNER, TEXT, RD_F_STORE)   /* NULL when not leased */ \
  XX(lease_expiry, LEASE_EXPIRY, REAL, RD_F_STORE) /* NONE when not leased */ \
  XX(fingerprint, FINGERPRINT, TEXT, 0)        /* of the failure */           \
  XX(cause, CAUSE, TEXT, 0)                    /* its template */

typedef struct rd_dlq_item {
  RD_DLQ_ITEM_FIELDS(RD__FIELD_DECL)
} rd_dlq_item_t;

#define RD_DLQ_LOG_FIELDS(XX)                                                 \
  XX(id, ID, TEXT, RD_F_KEY | RD_F_NOTNULL)                                   \
  XX(dlq_id, DLQ_ID, TEXT, RD_F_NOTNULL | RD_F_STORE)                         \
  XX(status, STATUS, INT, RD_F_NOTNULL)  /* 1 success, 2 warning, 3 error */  \
  XX(duration, DURATION, REAL, 0)                                             \
  XX(operations, OPERATIONS, BIGINT, RD_F_NOTNULL)                            \
  XX(transfer, TRANSFER, BIGINT, RD_F_NOTNULL)                                \
  XX(timestamp, TIMESTAMP, REAL, RD_F_NOTNULL) /* RD_STORE_NONE: now */       \
  XX(execution_id, EXECUTION_ID, TEXT, RD_F_STORE)                            \
  XX(forced, FORCED, BOOL, RD_F_NOTNULL)

typedef struct rd_dlq_log {
  RD_DLQ_LOG_FIELDS(RD__FIELD_DECL)
} rd_dlq_log_t;

typedef struct rd_dlq_filter {
  int64_t scenario_id;         /* 0 = any */
  int resolved;                /* -1 = any, 0 = pending, 1 = resolved */
  double since, until;         /* on created; RD_STORE_NONE = open */
  const char *after;
  int limit;
  const char *fingerprint;     /* NULL = any */
} rd_dlq_filter_t;

typedef struct rd_log_filter {
  int status;                  /* 0 = any */
  double from, to;             /* on timestamp: from <= t < to; RD_STORE_NONE = open */
  const char *after;
  int limit;
} rd_log_filter_t;

/* Which items a claim, delete or resolve is about: `ids` (n_ids of them)
 * or, with `all`, every item (of `scenario_id` when not 0, with
 * `fingerprint` when not NULL); minus `except`. */
typedef struct rd_dlq_sel {
  const char *const *ids;
  size_t n_ids;
  int all;
  const char *const *except;
  size_t n_except;
  int64_t scenario_id;
  const char *fingerprint;
} rd_dlq_sel_t;

typedef int (*rd_dlq_cb)(const rd_dlq_item_t *item, void *ud);
typedef int (*rd_dlq_log_cb)(const rd_dlq_log_t *log, void *ud);
/* An item a delete could not remove, with why: code RD_ECONFLICT ("being
 * retried") or RD_ENOT_FOUND ("not found"). */
typedef int (*rd_dlq_error_cb)(const char *id, int code, const char *message, void *ud);

/* One transaction: insert (or, when exec->id exists, replace) the execution
 * and, when `dlq` is not NULL, its DLQ item, linked both ways (the item's
 * execution_id, the execution's dlq_id). Writes the ids into exec_id and
 * dlq_id (each RD_STORE_ID_LEN + 1 bytes; dlq_id may be NULL without dlq). */
int rd_store_record(rd_store_t *st, const rd_exec_t *exec, const rd_dlq_item_t *dlq,
                    char *exec_id, char *dlq_id, rd_err *err);

/* Item with blueprint and state; RD_ENOT_FOUND. */
int rd_store_dlq_get(rd_store_t *st, const char *id, rd_dlq_item_t **out, rd_err *err);
/* One page in id order, without blueprint and state. */
int rd_store_dlq_list(rd_store_t *st, const rd_dlq_filter_t *f, rd_dlq_cb cb, void *ud,
                      rd_err *err);
/* Count items (scenario_id, resolved, fingerprint and after of f; since,
 * until and limit are ignored): an interrupted bulk retry counts what it
 * did not reach. */
int rd_store_dlq_count(rd_store_t *st, const rd_dlq_filter_t *f, int64_t *n, rd_err *err);
/* Replace the blueprint (when not NULL) and the failer (when > 0).
 * RD_ENOT_FOUND; RD_ECONFLICT while someone holds a lease on the item. */
int rd_store_dlq_patch(rd_store_t *st, const char *id, const char *blueprint, int64_t failer,
                       rd_err *err);
/* One transaction: delete the selected items with their logs. Items leased
 * right now are kept and reported to on_error ("being retried"), as are
 * requested ids that do not exist; the rest is deleted and counted in
 * *deleted. `all` deletes everything selected: the caller must have had it
 * confirmed. on_error runs inside the transaction. */
int rd_store_dlq_delete(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *deleted,
                        rd_dlq_error_cb on_error, void *ud, rd_err *err);
/* One transaction: mark the selected items resolved without retrying them
 * (handled by hand). Leased items and requested ids that do not exist are
 * kept and reported to on_error, as rd_store_dlq_delete does; *n counts
 * the items that were pending and are resolved now. */
int rd_store_dlq_resolve(rd_store_t *st, const rd_dlq_sel_t *sel, int64_t *n,
                         rd_dlq_error_cb on_error, void *ud, rd_err *err);

/* Failure groups: the items of f (scenario_id, resolved, since and until
 * on created; after is ignored) grouped by fingerprint, biggest first (then
 * by fingerprint), at most f->limit groups (0 = RD_STORE_DEFAULT_LIMIT,
 * capped at RD_STORE_MAX_LIMIT), computed by SQLite (GROUP BY): no item is
 * held in memory. Each group is handed to cb, borrowed for the call. */
#define RD_GROUP_EXAMPLES 3      /* example ids per group */
#define RD_GROUP_SCENARIOS 32    /* scenario ids per group listed (the rest counted) */
typedef struct rd_group {
  const char *fingerprint;     /* NULL: items recorded without one */
  const char *cause;           /* the template of its first item */
  int64_t count;
  double first, last;          /* created of its oldest and newest item */
  int64_t scenarios[RD_GROUP_SCENARIOS];
  size_t n_scenarios;          /* listed in scenarios */
  size_t more_scenarios;       /* not listed */
  const char *examples[RD_GROUP_EXAMPLES]; /* the first ids, in id order */
  size_t n_examples;
} rd_group_t;
typedef int (*rd_group_cb)(const rd_group_t *g, void *ud);
int rd_store_dlq_groups(rd_store_t *st, const rd_dlq_filter_t *f, rd_group_cb cb, void *ud,
                        rd_err *err);

/* One page of an item's retry logs in id order; RD_ENOT_FOUND without the item. */
int rd_store_dlq_logs(rd_store_t *st, const char *dlq_id, const rd_log_filter_t *f,
                      rd_dlq_log_cb cb, void *ud, rd_err *err);

/* Lease up to `limit` selected items with ids > after for `owner` until now
 * + ttl seconds, in one transaction: pending (unresolved) ones, and with
 * `resolved` resolved ones too (a forced retry); an item leased by someone
 * else is skipped unless the lease has expired; one leased by `owner`
 * already is leased again. Then hands each claimed item (with blueprint and
 * state) to cb in id order. Two processes never get the same item while its
 * lease runs. */
typedef struct rd_claim_opts {
  rd_dlq_sel_t sel;
  const char *after;
  int limit;
  const char *owner;
  double ttl;                  /* seconds, > 0 */
  int resolved;                /* lease resolved items as well */
} rd_claim_opts_t;
int rd_store_claim(rd_store_t *st, const rd_claim_opts_t *o, rd_dlq_cb cb, void *ud,
                   rd_err *err);
/* Extend every lease `owner` holds to now + ttl; *n (may be NULL) = how many. */
int rd_store_renew(rd_store_t *st, const char *owner, double ttl, int64_t *n, rd_err *err);
/* Release owner's lease on `id`, or on all its items when id is NULL. */
int rd_store_release(rd_store_t *st, const char *owner, const char *id, int64_t *n,
                     rd_err *err);

/* What one retry produced, for rd_store_retry_done. */
typedef struct rd_retry_done {
  const rd_exec_t *exec;       /* the retry's execution: retry_of = the execution
                                  retried (default: the item's), parent_id = the
                                  chain's root (optional) */
  int success;                 /* the retry succeeded */
  const char *dlq_id;          /* the item retried, leased by `owner`; NULL when
                                  the execution retried has no item to settle */
  const char *owner;
  const rd_dlq_log_t *log;     /* with dlq_id: the attempt's log (required) */
  const rd_dlq_item_t *dlq;    /* without dlq_id: a new item for this failed
                                  retry, linked both ways (may be NULL) */
  const char *job_id;          /* with dlq_id, a bulk job's retry: its ledger
                                  row for the item gets the outcome (succeeded /
                                  failed, job_error) and the new execution in
                                  the same transaction (NULL: no job) */
  const char *job_error;       /* the ledger's error of a failed retry */
} rd_retry_done_t;

/* Record a retry in ONE transaction, so that a crash can never leave half of
 * it (a resolved item whose execution does not point at its retry would let a
 * safe retry run the work again):
 *  - the retry's execution (and, with r->dlq, its new item);
 *  - with r->dlq_id: the attempt's log, attempts + 1, the item resolved on
 *    success (it stays resolved if it was), the lease released;
 *  - on success: retry_success_id = the new execution on the execution
 *    retried (retry_of), on the given parent_id and on the root of retry_of
 *    (its parent_id), so a safe retry of any member of the chain sees it.
 * Writes the new execution's id into exec_id and the new item's id into
 * dlq_id (each RD_STORE_ID_LEN + 1 bytes, may be NULL). RD_ECONFLICT when
 * `owner` does not hold the lease on r->dlq_id (never claimed, released, or
 * taken over by another process after it expired); RD_ENOT_FOUND; any
 * failure rolls everything back. */
int rd_store_retry_done(rd_store_t *st, const rd_retry_done_t *r, char *exec_id, char *dlq_id,
                        rd_err *err);

/* -- health: computed in SQL over executions of scenario_id (0 = all) with
 * started_at >= since (RD_STORE_NONE = all time). succeeded = success +
 * warning, failed = error, finished = all but running; success_rate =
 * succeeded / (succeeded + failed) or NONE; avg and p95 (nearest rank) over
 * finished executions with a duration, NONE when there are none; top
 * reasons of failed executions: their fingerprint groups, biggest first,
 * each with its cause as the reason ("unknown" for failures recorded
 * without an error, which share the empty fingerprint). -- */
#define RD_HEALTH_TOP_MAX 20
typedef struct rd_health {
  int64_t total, finished, succeeded, failed, running;
  double success_rate, avg_duration, p95_duration;
  size_t n_top;
  struct {
    char *reason;
    int64_t count;
    char fingerprint[RD_FINGERPRINT_LEN + 1];
  } top[RD_HEALTH_TOP_MAX];
} rd_health_t;
/* Fill *out (then free its strings with rd_store_health_free); top is the
 * number of reasons wanted (0 = 5, capped at RD_HEALTH_TOP_MAX). */
int rd_store_health(rd_store_t *st, int64_t scenario_id, double since, int top, rd_health_t *out,
                    rd_err *err);
void rd_store_health_free(rd_health_t *h);

/* ---- bulk jobs: a retry or delete with its per-item ledger ---------------- *
 *
 * A job is a row (what it does, with the caller's options as JSON) and a
 * ledger: one row per item it is about, made when it is created, each
 * pending until the job settles it. Several runners (processes, or tasks of
 * one) may run a job at once: each holds a lease of its own on it (a
 * job_runner row: rd_store_job_own, renewed), and acts only on items whose
 * ledger row it marked started (committed, with its name, before it acts;
 * only a pending row can be marked, so one runner acts on an item). When a
 * runner dies its lease expires; the next runner to join or renew settles
 * the rows it left started as failed with code "in_doubt" (their action may
 * have happened: never acted on twice), and the others finish what is left.
 * A retry settles its ledger row in the transaction that records it
 * (rd_retry_done_t.job_id). */
#define RD_JOB_FIELDS(XX)                                                     \
  XX(id, ID, TEXT, RD_F_KEY | RD_F_NOTNULL)                                   \
  XX(kind, KIND, TEXT, RD_F_NOTNULL)         /* "retry" | "delete" */         \
  XX(state, STATE, TEXT, RD_F_NOTNULL | RD_F_STORE) /* running|done|canceled */ \
  XX(params, PARAMS, JSON, 0)                /* the caller's options */       \
  XX(total, TOTAL, BIGINT, RD_F_NOTNULL | RD_F_STORE) /* ledger rows */       \
  XX(owner, OWNER, TEXT, RD_F_STORE) /* the live runner whose lease ends first */ \
  XX(owner_expiry, OWNER_EXPIRY, REAL, RD_F_STORE) /* its lease's end */      \
  XX(created, CREATED, REAL, RD_F_NOTNULL | RD_F_STORE)                       \
  XX(started_at, STARTED_AT, REAL, RD_F_STORE) /* first taken */              \
  XX(updated_at, UPDATED_AT, REAL, RD_F_NOTNULL | RD_F_STORE)                 \
  XX(finished_at, FINISHED_AT, REAL, RD_F_STORE)

typedef struct rd_job {
  RD_JOB_FIELDS(RD__FIELD_DECL)
} rd_job_t;

#define RD_JOB_ITEM_FIELDS(XX)                                                \
  XX(job_id, JOB_ID, TEXT, RD_F_KEY | RD_F_NOTNULL)                           \
  XX(item_id, ITEM_ID, TEXT, RD_F_KEY | RD_F_NOTNULL)                         \
  XX(outcome, OUTCOME, TEXT, RD_F_NOTNULL) /* pending|started|succeeded|failed|skipped|not_attempted */ \
  XX(execution_id, EXECUTION_ID, TEXT, 0)  /* a retry's new execution */      \
  XX(error, ERROR, TEXT, 0)                                                   \
  XX(code, CODE, TEXT, 0)                  /* "in_doubt", "not_found", ... */ \
  XX(updated, UPDATED, REAL, 0)                                               \
  XX(runner, RUNNER, TEXT, 0)              /* who marked it started */

typedef struct rd_job_item {
  RD_JOB_ITEM_FIELDS(RD__FIELD_DECL)
} rd_job_item_t;

/* Ledger rows by outcome, and the runners whose lease has not expired. */
typedef struct rd_job_counts {
  int64_t pending, started, succeeded, failed, skipped, not_attempted, runners;
} rd_job_counts_t;

typedef int (*rd_job_cb)(const rd_job_t *job, void *ud);
typedef int (*rd_job_item_cb)(const rd_job_item_t *row, void *ud);

/* Create a running job of job->kind with job->params (JSON, may be NULL)
 * under a new id (id, RD_STORE_ID_LEN + 1 bytes) and its ledger, in one
 * transaction: sel's ids (distinct, minus except; missing ones too: the job
 * reports them), or with sel->all the pending items of the selection as
 * they are now. *total (may be NULL) = ledger rows. RD_EINVALID. */
int rd_store_job_create(rd_store_t *st, const rd_job_t *job, const rd_dlq_sel_t *sel, char *id,
                        int64_t *total, rd_err *err);
/* The job (*out, free()) and its ledger's counts (may be NULL). RD_ENOT_FOUND. */
int rd_store_job_get(rd_store_t *st, const char *id, rd_job_t **out, rd_job_counts_t *counts,
                     rd_err *err);
/* Jobs in id (creation) order: of `state` (NULL = any), ids > after (NULL =
 * from the start), at most limit (0 = default, capped). */
int rd_store_job_list(rd_store_t *st, const char *state, const char *after, int limit,
                      rd_job_cb cb, void *ud, rd_err *err);
/* A page of job id's ledger in item id order: rows of `outcome` (NULL =
 * any), item ids > after. RD_ENOT_FOUND without the job. */
int rd_store_job_items(rd_store_t *st, const char *id, const char *outcome, const char *after,
                       int limit, rd_job_item_cb cb, void *ud, rd_err *err);
/* Settle ledger rows `items` (n of them) of job id with m's outcome,
 * execution_id, error and code: "started" only rows still pending (with
 * m->runner: by that runner, and only while its lease row exists), any
 * other outcome rows pending or started (a settled row never changes).
 * *n_changed (may be NULL) counts the rows changed. */
int rd_store_job_mark(rd_store_t *st, const char *id, const char *const *items, size_t n,
                      const rd_job_item_t *m, int64_t *n_changed, rd_err *err);
/* Who runs job id; each change first settles, as failed "in_doubt", the
 * rows left started by a runner (not owner) whose lease expired or is gone,
 * and drops the expired leases. RD_JOB_TAKE: owner joins the runners of a
 * running job (a lease of ttl seconds). RD_JOB_RENEW: owner extends its
 * lease, if it still has one (0: it stalled past it and its rows were
 * settled: it must stop). RD_JOB_RELEASE: owner leaves (the job stays
 * running). RD_JOB_DONE: the job is finished, if no row is left pending or
 * started. RD_JOB_CANCEL: canceled, its pending rows not_attempted (a
 * runner sees it and stops). *ok (may be NULL): 1 if the change was made
 * (joined, renewed, released; a running job ended), else 0. */
enum { RD_JOB_TAKE, RD_JOB_RELEASE, RD_JOB_DONE, RD_JOB_CANCEL, RD_JOB_RENEW };
int rd_store_job_own(rd_store_t *st, const char *id, int what, const char *owner, double ttl,
                     int *ok, rd_err *err);

/* ---- blueprint / JSON patch ------------------------------------------- *
 * JSON documents are cJSON trees (include <cJSON.h> to use them). The caller
 * owns every tree it passes in; "borrowed" results live as long as the
 * document is not changed. Every function here refuses documents nested
 * deeper than RD_JSON_MAX_DEPTH containers, so hostile input cannot exhaust
 * the stack. */

struct cJSON;
#ifndef RD_JSON_MAX_DEPTH
#define RD_JSON_MAX_DEPTH 512
#endif

/* Parse the JSON text s[0..len) (no NUL needed, none allowed outside escapes)
 * strictly per RFC 8259: what is not JSON is RD_EINVALID with a message
 * naming line, column and byte ("json: invalid number at line 1, column 2
 * (byte 2)"). Also refused: bytes that are not UTF-8, \u escapes that are
 * unpaired UTF-16 surrogates, numbers that overflow a double, and nesting
 * deeper than RD_JSON_MAX_DEPTH containers ("json: nesting deeper than 512
 * at ...", at the container that passes it). A leading UTF-8 byte order mark
 * is ignored. On success *out is a new tree the caller owns; RD_ENOMEM. */
int rd_json_parse(const char *s, size_t len, struct cJSON **out, rd_err *err);

/* RFC 6901 JSON Pointer, as a string ("/a~1b/0") or a URI fragment
 * ("#/a~1b/0", percent-decoded). A syntax error ("a", "/~2") is
 * RD_EINVALID; a pointer that names nothing is RD_ENOT_FOUND (so is a
 * token that is not an array index, "01", "1e0", on an array). `-` names
 * the slot after the last array element: set appends there, get finds
 * nothing. Messages name the pointer: "pointer '/a/b': path not found". */

/* Borrow the value at `ptr` into *out. */
int rd_json_pointer_get(const struct cJSON *doc, const char *ptr, const struct cJSON **out,
                        rd_err *err);
/* Put `value` at `ptr`: replace an existing member or element, add a new
 * object member, or append at index == length or `-`. The parent must
 * exist. "" replaces the whole document (*doc changes). On success the
 * document owns `value`; on failure the caller still does. */
int rd_json_pointer_set(struct cJSON **doc, const char *ptr, struct cJSON *value, rd_err *err);
/* Remove the value at `ptr` (not the root). */
int rd_json_pointer_remove(struct cJSON *doc, const char *ptr, rd_err *err);
/* Escape one reference token (~ -> ~0, / -> ~1) into out (size n), like
 * snprintf: returns the length the escaped token needs. */
size_t rd_json_pointer_escape(char *out, size_t n, const char *token);

/* Deep equality: object member order does not matter, numbers compare by
 * value. Returns 1 or 0. */
int rd_json_equal(const struct cJSON *a, const struct cJSON *b);
/* Containers nested in `doc` ({"a":[1]} is 2, a scalar 0), counting no
 * further than max + 1. */
int rd_json_depth(const struct cJSON *doc, int max);

/* RFC 6902 JSON Patch: apply the array of operations `ops` (add, remove,
 * replace, move, copy, test) to *doc, all or nothing: the ops run on a copy
 * that replaces *doc only when every op succeeded. Any failure is RD_EINVALID
 * with a message naming the op (index from 0 in `ops`), its op and path:
 * "op 2 (replace /flow/3/mapper/url): path not found"; RD_ENOMEM. */
int rd_json_patch_apply(struct cJSON **doc, const struct cJSON *ops, rd_err *err);
/* RFC 7386 JSON Merge Patch, all or nothing. A non-object patch replaces
 * the document. Fails only on RD_ENOMEM or a too deep result (RD_EINVALID). */
int rd_json_merge_patch(struct cJSON **doc, const struct cJSON *patch, rd_err *err);
/* A JSON Patch (new array, caller owns it) that turns `from` into `to`:
 * applying it to a copy of `from` gives a document rd_json_equal to `to`. */
int rd_json_diff(const struct cJSON *from, const struct cJSON *to, struct cJSON **ops,
                 rd_err *err);

/* Blueprints (Make format): {name, flow: [module...], metadata}, a module
 * {id, module: "app:Type", mapper: {...}, onerror: [handler...]}; a
 * "builtin:BasicRouter" module holds routes: [{flow: [...], filter?}]. */

/* Module types with their mapper field types, filled by the runtime. */
typedef struct rd_blueprint_registry rd_blueprint_registry_t;

int rd_blueprint_registry_new(rd_blueprint_registry_t **out, rd_err *err);
void rd_blueprint_registry_free(rd_blueprint_registry_t *reg);
/* Register (or replace) module type `type`. spec: {"fields": {name: type},
 * "required": [name...], "strict": bool}, every member optional; a type is
 * "string"|"number"|"integer"|"boolean"|"array"|"object"|"any". strict
 * reports mapper fields not in `fields`. spec is copied. RD_EINVALID on a bad
 * spec. */
int rd_blueprint_registry_add(rd_blueprint_registry_t *reg, const char *type,
                              const struct cJSON *spec, rd_err *err);
/* The spec registered for `type` (borrowed), NULL if none. */
const struct cJSON *rd_blueprint_registry_get(const rd_blueprint_registry_t *reg,
                                              const char *type);

/* One thing wrong with a blueprint. Strings are owned by the array. */
typedef struct rd_blueprint_problem {
  int has_module;   /* the problem is inside module `module` */
  int64_t module;   /* its id */
  char *field;      /* "mapper.url", "onerror[0].module", "metadata.scenario.maxErrors" */
  char *pointer;    /* JSON pointer of the offending value (or where it is missing) */
  char *message;    /* "expected string, got number" */
} rd_blueprint_problem_t;

/* Check the structure of `bp` and, when `reg` is not NULL, each module's
 * type and mapper against it. Lists every problem found (*n may be 0) into
 * *out (free with rd_blueprint_problems_free). Fails only with RD_ENOMEM. */
int rd_blueprint_validate(const struct cJSON *bp, const rd_blueprint_registry_t *reg,
                          rd_blueprint_problem_t **out, size_t *n, rd_err *err);
void rd_blueprint_problems_free(rd_blueprint_problem_t *p, size_t n);

/* Called for each module of the flow, depth first in flow order, routes of
 * a router after the router itself (onerror handlers are not visited).
 * `pointer` is borrowed for the call. Return nonzero to stop the walk. */
typedef int (*rd_blueprint_module_cb)(const struct cJSON *module, const char *pointer, void *ud);
/* Walk the modules; returns the callback's nonzero value if it stopped the
 * walk, else 0; RD_ENOMEM or RD_EINVALID (too deep). */
int rd_blueprint_each_module(const struct cJSON *bp, rd_blueprint_module_cb cb, void *ud,
                             rd_err *err);
/* JSON pointer (malloc'd, caller frees) of the flow module with id `id`;
 * RD_ENOT_FOUND if there is none. */
int rd_blueprint_find_module(const struct cJSON *bp, int64_t id, char **pointer, rd_err *err);
/* Shell-style match of `s` against `pat` ('*' any run, '?' one char,
 * '\\' quotes the next). Returns 1 or 0. */
int rd_glob_match(const char *pat, const char *s);

#ifdef __cplusplus
}
#endif
#endif /* RD_REDRIVE_H */

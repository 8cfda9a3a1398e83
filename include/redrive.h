/*
 * redrive — public C API for embedders.
 *
 * Conventions (see README "C API"):
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
  XX(-15, CORRUPT, "corrupt", "corrupt or foreign data")

enum {
  RD_OK = 0,
#define RD__ERR_ENUM(code, name, lname, msg) RD_E##name = code,
  RD_ERR_MAP(RD__ERR_ENUM)
#undef RD__ERR_ENUM
};

typedef struct rd_err {
  int code;            /* RD_E* or 0 */
  int http_status;     /* HTTP status behind the error, 0 if none */
  double retry_after;  /* seconds a server asked us to wait, 0 if none */
  char msg[512];       /* one line: what and where */
} rd_err;

/* Stable short name of a code ("not_found"), "ok" for 0, "unknown" else. */
const char *rd_err_name(int code);
/* Generic message for a code. */
const char *rd_strerror(int code);
/* Fill `err` (if not NULL) with code and a printf-style message; returns
 * `code` so callers can write `return rd_err_set(err, RD_EINVAL, ...)`. */
int rd_err_set(rd_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reset `err` to "no error". */
void rd_err_clear(rd_err *err);

/* ---- HTTP on a libuv loop (libcurl multi) ------------------------------ */

struct uv_loop_s;
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
  int verify;                  /* TLS verification; set to 1 unless told */
  int gzip;                    /* ask for and decode gzip/deflate */
  const char *user, *pass;     /* basic auth, borrowed */
} rd_http_req_t;

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
/* Start a request. On failure returns a code and `cb` is never called. */
int rd_http_start(rd_http_t *h, const rd_http_req_t *req, rd_http_cb cb, void *ud,
                  rd_http_op_t **op, rd_err *err);
/* Abort a request in flight; its callback is not called. */
void rd_http_cancel(rd_http_op_t *op);
void rd_http_res_free(rd_http_res_t *res);
/* Header value by lower-case name, borrowed from res, NULL if absent. */
const char *rd_http_res_header(const rd_http_res_t *res, const char *name);
/* Copy `url` into `out` without userinfo and query, for messages. */
void rd_http_redact_url(const char *url, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* RD_REDRIVE_H */

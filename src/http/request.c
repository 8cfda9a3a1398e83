/*
 * One HTTP request: builds the easy handle from rd_http_req_t, collects the
 * final response's headers (lower-case names) and body, and turns curl's
 * result into either a response or a classified transport error.
 */
#include "http/http.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { TOO_LARGE_BODY = 1, TOO_LARGE_HEADERS = 2 };

/* Decoded body bytes arrive here (curl inflates gzip before calling), so
 * the limit is enforced where memory is taken: the chunk that would pass
 * max_body aborts the transfer (returning short makes curl stop with
 * CURLE_WRITE_ERROR) and is never stored. */
static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  rd_http_op_t *op = ud;
  size_t len = sz * n;
  if ((uint64_t)len > op->max_body - op->body.len) {
    op->too_large = TOO_LARGE_BODY;
    return 0;
  }
  return rd__buf_add(&op->body, p, len) == 0 ? len : 0;
}

static void clear_headers(rd_http_op_t *op) {
  for (size_t i = 0; i < op->nheaders; i++) {
    free(op->headers[i].name);
    free(op->headers[i].value);
  }
  op->nheaders = 0;
}

static int add_header(rd_http_op_t *op, const char *name, size_t nl, const char *val,
                      size_t vl) {
  if (op->nheaders == op->capheaders) {
    size_t cap = op->capheaders ? op->capheaders * 2 : 16;
    rd_http_header_t *p = realloc(op->headers, cap * sizeof *p);
    if (!p) return -1;
    op->headers = p;
    op->capheaders = cap;
  }
  char *n = strndup(name, nl), *v = strndup(val, vl);
  if (!n || !v) {
    free(n);
    free(v);
    return -1;
  }
  for (char *c = n; *c; c++) *c = (char)tolower((unsigned char)*c);
  op->headers[op->nheaders++] = (rd_http_header_t){n, v};
  return 0;
}

/* Header lines of every response arrive here (redirects, 100 Continue): a
 * status line starts a new set, so only the final response's remain. */
static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  rd_http_op_t *op = ud;
  size_t len = sz * n;
  /* counted over every response of the request (redirects, 1xx), so an
   * endless header stream or chain of interim responses is bounded too */
  op->header_bytes += len;
  if (op->header_bytes > RD_HTTP_MAX_HEADERS) {
    op->too_large = TOO_LARGE_HEADERS;
    return 0;
  }
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    clear_headers(op);
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon) return len;
  size_t nl = (size_t)(colon - p);
  const char *v = colon + 1, *end = p + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
  return add_header(op, p, nl, v, (size_t)(end - v)) == 0 ? len : 0;
}

static void op_free(rd_http_op_t *op) {
  curl_slist_free_all(op->hdrs);
  rd__buf_free(&op->body);
  clear_headers(op);
  free(op->headers);
  free(op);
}

static int set_method(CURL *e, const rd_http_req_t *req, const char *m) {
  if (req->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    if (strcmp(m, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
  } else if (strcmp(m, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(m, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
  }
  return 0;
}

static int configure(rd_http_op_t *op, CURL *e, const rd_http_req_t *req, rd_err *err) {
  const char *m = op->method;
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)op);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, op->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, req->follow ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, req->max_redirects > 0 ? req->max_redirects : 10L);
  /* verified unless the caller opted out by name */
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (req->gzip) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (req->user) curl_easy_setopt(e, CURLOPT_USERNAME, req->user);
  if (req->pass) curl_easy_setopt(e, CURLOPT_PASSWORD, req->pass);
  for (const char *const *hp = req->headers; hp && *hp; hp++) {
    struct curl_slist *s = curl_slist_append(op->hdrs, *hp);
    if (!s) return rd_err_set(err, RD_ENOMEM, "http: out of memory");
    op->hdrs = s;
  }
  if (op->hdrs) curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
  return set_method(e, req, m);
}

/* Every credential a request carries is registered before it is sent, so
 * that whatever the server echoes back, and any message that quotes it
 * later, is scrubbed of it (rd_redact). */
static int register_secrets(const rd_http_req_t *req, rd_err *err) {
  int r = rd_redact_add_url(req->url, err);
  for (const char *const *hp = req->headers; r == 0 && hp && *hp; hp++)
    r = rd_redact_add_header(*hp, err);
  if (r == 0 && req->pass) r = rd_redact_add(req->pass, strlen(req->pass), err);
  return r;
}

int rd_http_start(rd_http_t *h, const rd_http_req_t *req, rd_http_cb cb, void *ud,
                  rd_http_op_t **out, rd_err *err) {
  if (!req->url || !*req->url) return rd_err_set(err, RD_EINVALID, "http: missing url");
  int r = register_secrets(req, err);
  if (r != 0) return r;
  const char *m = req->method ? req->method : "GET";
  if (strlen(m) >= 16) return rd_err_set(err, RD_EINVALID, "http: bad method '%.20s'", m);
  rd_http_op_t *op = calloc(1, sizeof *op);
  if (!op) return rd_err_set(err, RD_ENOMEM, "http: out of memory");
  for (size_t i = 0; m[i]; i++) op->method[i] = (char)toupper((unsigned char)m[i]);
  rd_redact_url(req->url, op->url, sizeof op->url);
  op->h = h;
  op->cb = cb;
  op->ud = ud;
  op->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 30000L;
  op->max_body = req->max_body > 0 ? req->max_body : RD_HTTP_MAX_BODY;
  op->easy = rd__http_easy_get(h);
  r = op->easy ? configure(op, op->easy, req, err)
                   : rd_err_set(err, RD_ENOMEM, "http: cannot create a curl handle");
  if (r == 0 && rd__http_add(h, op, op->easy) != 0)
    r = rd_err_set(err, RD_EHTTP, "http: %s %s: cannot start the transfer", op->method, op->url);
  if (r != 0) {
    rd__http_easy_put(h, op->easy);
    op_free(op);
    return r;
  }
  if (out) *out = op;
  return 0;
}

static int classify(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT: return RD_ETIMEOUT;
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return RD_ECONNECT;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_USE_SSL_FAILED: return RD_ETLS;
  default: return RD_EHTTP;
  }
}

static rd_http_res_t *take_response(rd_http_op_t *op) {
  rd_http_res_t *res = calloc(1, sizeof *res);
  if (!res) return NULL;
  CURL *e = op->easy;
  char *url = NULL;
  curl_off_t up = 0, down = 0, total_us = 0;
  long hdr = 0, reqsz = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res->status);
  curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
  curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &down);
  curl_easy_getinfo(e, CURLINFO_HEADER_SIZE, &hdr);
  curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &reqsz);
  curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
  long connects = 0;
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
  res->reused = connects == 0;
  res->url = strdup(url ? url : "");
  res->total_time = (double)total_us / 1e6;
  res->bytes_sent = (size_t)(up + reqsz);
  res->bytes_recv = (size_t)(down + hdr);
  if (!op->body.data) rd__buf_add(&op->body, "", 0);
  res->body = rd__buf_steal(&op->body, &res->body_len);
  res->headers = op->headers;
  res->nheaders = op->nheaders;
  op->headers = NULL;
  op->nheaders = op->capheaders = 0;
  if (!res->url || !res->body) {
    rd_http_res_free(res);
    return NULL;
  }
  return res;
}

void rd__http_op_finish(rd_http_op_t *op, CURLcode rc) {
  rd_http_t *h = op->h;
  rd__http_unlink(h, op);
  rd_err err = {0};
  rd_http_res_t *res = NULL;
  int status = 0;
  if (rc == CURLE_OK) {
    res = take_response(op);
    if (!res) status = rd_err_set(&err, RD_ENOMEM, "http: out of memory");
  } else if (op->too_large == TOO_LARGE_BODY) {
    status = rd_err_set(&err, RD_ETOO_LARGE,
                        "http: %s %s: response body larger than max_body (%" PRIu64 " bytes)",
                        op->method, op->url, op->max_body);
  } else if (op->too_large == TOO_LARGE_HEADERS) {
    status = rd_err_set(&err, RD_ETOO_LARGE, "http: %s %s: response headers larger than %zu bytes",
                        op->method, op->url, RD_HTTP_MAX_HEADERS);
  } else {
    status = classify(rc);
    const char *why = op->errbuf[0] ? op->errbuf : curl_easy_strerror(rc);
    if (status == RD_ETIMEOUT)
      rd_err_set(&err, status, "http: %s %s: timed out after %ld ms", op->method, op->url,
                 op->timeout_ms);
    else
      rd_err_set(&err, status, "http: %s %s: %s", op->method, op->url, why);
    rd_redact_msg(err.msg, sizeof err.msg); /* curl's text may quote the URL */
  }
  rd__http_easy_put(h, op->easy);
  op->easy = NULL;
  rd_http_cb cb = op->cb;
  void *ud = op->ud;
  op_free(op);
  cb(status, res, status ? &err : NULL, ud);
}

void rd_http_cancel(rd_http_op_t *op) {
  if (!op) return;
  rd_http_t *h = op->h;
  rd__http_unlink(h, op);
  rd__http_remove(h, op->easy);
  /* a half-done transfer's connection must not be reused: drop the handle */
  curl_easy_cleanup(op->easy);
  op_free(op);
}

void rd_http_res_free(rd_http_res_t *res) {
  if (!res) return;
  for (size_t i = 0; i < res->nheaders; i++) {
    free(res->headers[i].name);
    free(res->headers[i].value);
  }
  free(res->headers);
  free(res->body);
  free(res->url);
  free(res);
}

const char *rd_http_res_header(const rd_http_res_t *res, const char *name) {
  for (size_t i = 0; i < res->nheaders; i++)
    if (strcmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  return NULL;
}

/*
 * HTTP on the loop: one curl multi handle driven by libuv, as curl's
 * multi-uv example does (one uv_poll_t per socket attached with
 * curl_multi_assign, one uv_timer_t for curl's timeouts), with its gaps
 * fixed: poll errors handed to curl as readable+writable, checked allocations, poll contexts
 * freed in their close callbacks, and easy handles reused from a pool so
 * keep-alive connections and TLS sessions are shared.
 */
#include "http/http.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct sockctx {
  uv_poll_t poll;
  curl_socket_t fd;
  rd_http_t *h;
  struct sockctx *prev, *next;
} sockctx;

struct rd_http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  int closing, pending_closes;
  rd_http_op_t *ops;          /* in flight */
  sockctx *socks;
  CURL *pool[64];             /* idle easy handles */
  int npool;
};

static void maybe_free(rd_http_t *h) {
  if (h->closing && h->pending_closes == 0) free(h);
}

static void sock_closed(uv_handle_t *hd) {
  sockctx *c = hd->data;
  rd_http_t *h = c->h;
  free(c);
  h->pending_closes--;
  maybe_free(h);
}

static void sock_close(rd_http_t *h, sockctx *c) {
  if (c->prev) c->prev->next = c->next;
  else h->socks = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_poll_stop(&c->poll);
  h->pending_closes++;
  uv_close((uv_handle_t *)&c->poll, sock_closed);
}

/* ---- completion ------------------------------------------------------------ */

static void check_done(rd_http_t *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    rd_http_op_t *op = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&op);
    /* msg is dead after remove_handle: everything needed was copied above */
    curl_multi_remove_handle(h->multi, e);
    rd__http_op_finish(op, rc);
  }
}

static void on_timer(uv_timer_t *t) {
  rd_http_t *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sockctx *c = p->data;
  rd_http_t *h = c->h;
  int flags = 0, running;
  /* A poll error (e.g. the RST of a kept-alive connection the server closed
   * just as we reused it) is handed to curl as "readable and writable", not
   * CURL_CSELECT_ERR: curl then reads the error itself, and a reused
   * connection that died before any reply byte makes it retry the request
   * on a fresh connection, where CSELECT_ERR would fail the transfer. */
  if (status < 0) flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
  else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  curl_multi_socket_action(h->multi, c->fd, flags, &running);
  check_done(h);
}

/* curl tells us which sockets to watch; never call curl from here. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  rd_http_t *h = userp;
  sockctx *c = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (c) {
      curl_multi_assign(h->multi, s, NULL);
      sock_close(h, c);
    }
    return 0;
  }
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) return -1;
    if (uv_poll_init_socket(h->loop, &c->poll, s) != 0) {
      free(c);
      return -1;
    }
    c->fd = s;
    c->h = h;
    c->poll.data = c;
    c->next = h->socks;
    if (h->socks) h->socks->prev = c;
    h->socks = c;
    curl_multi_assign(h->multi, s, c);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&c->poll, ev, on_poll);
  return 0;
}

static int on_timeout(CURLM *m, long ms, void *userp) {
  (void)m;
  rd_http_t *h = userp;
  if (ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

/* ---- lifecycle ------------------------------------------------------------------ */

int rd_http_new(rd_http_t **out, struct uv_loop_s *loop, const rd_http_opts_t *opts,
                rd_err *err) {
  int r = rd__curl_load(err);
  if (r) return r;
  rd_http_t *h = calloc(1, sizeof *h);
  if (!h) return rd_err_set(err, RD_ENOMEM, "http: out of memory");
  h->loop = loop;
  h->multi = curl_multi_init();
  if (!h->multi) {
    free(h);
    return rd_err_set(err, RD_ENOMEM, "http: cannot create a curl multi handle");
  }
  long per_host = opts && opts->max_host_connections ? opts->max_host_connections : 32;
  long total = opts && opts->max_total_connections ? opts->max_total_connections : 256;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timeout);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, total);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  *out = h;
  return 0;
}

static void timer_closed(uv_handle_t *t) {
  rd_http_t *h = t->data;
  h->pending_closes--;
  maybe_free(h);
}

void rd_http_close(rd_http_t *h) {
  if (!h) return;
  while (h->ops) rd_http_cancel(h->ops);
  for (int i = 0; i < h->npool; i++) curl_easy_cleanup(h->pool[i]);
  h->npool = 0;
  h->closing = 1;
  curl_multi_cleanup(h->multi); /* may report CURL_POLL_REMOVE for cached sockets */
  h->multi = NULL;
  while (h->socks) sock_close(h, h->socks);
  h->pending_closes++;
  uv_close((uv_handle_t *)&h->timer, timer_closed);
}

/* ---- easy handle pool (used by request.c) -----------------------------------------
 * Keep-alive lives in the multi handle's connection cache, so pooling easy
 * handles only saves their setup. libcurl before 8.1.0 keeps a pointer to
 * the previous transfer's last header across curl_easy_reset, and a folded
 * first header in the next response then writes to freed memory (curl issue
 * 11101; found by fuzz/fuzz_http.c): with such a libcurl, never reuse. */

static int pool_safe(void) {
  static int safe = -1;
  if (safe < 0) safe = curl_version_info(CURLVERSION_NOW)->version_num >= 0x080100;
  return safe;
}

CURL *rd__http_easy_get(rd_http_t *h) {
  if (h->npool) return h->pool[--h->npool];
  return curl_easy_init();
}

void rd__http_easy_put(rd_http_t *h, CURL *e) {
  if (!e) return;
  if (h->closing || !pool_safe() || h->npool == (int)(sizeof h->pool / sizeof h->pool[0])) {
    curl_easy_cleanup(e);
    return;
  }
  curl_easy_reset(e);
  h->pool[h->npool++] = e;
}

int rd__http_add(rd_http_t *h, rd_http_op_t *op, CURL *e) {
  CURLMcode mc = curl_multi_add_handle(h->multi, e);
  if (mc != CURLM_OK) return RD_EHTTP;
  op->next = h->ops;
  op->prev = NULL;
  if (h->ops) h->ops->prev = op;
  h->ops = op;
  return 0;
}

void rd__http_unlink(rd_http_t *h, rd_http_op_t *op) {
  if (op->prev) op->prev->next = op->next;
  else if (h->ops == op) h->ops = op->next;
  if (op->next) op->next->prev = op->prev;
  op->prev = op->next = NULL;
}

void rd__http_remove(rd_http_t *h, CURL *e) {
  if (h->multi) curl_multi_remove_handle(h->multi, e);
}

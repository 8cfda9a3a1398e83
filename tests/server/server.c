/*
 * tests/server/server.c: the loopback HTTP/1.1 server of redrive's test suite,
 * reliability tests and benchmarks.
 *
 *   testserver [--port N] [--port-file PATH] [--seed N]
 *
 * Binds 127.0.0.1:N (N = 0, the default, takes an ephemeral port), prints the
 * bound port as one line on stdout and writes it to PATH (atomically, so a
 * poller never reads half a number). SIGTERM / SIGINT close every handle and
 * exit 0. The endpoints are listed with the route table near the end.
 *
 * Single-threaded on libuv, built to be a fast benchmark sink:
 *  - reads land in one shared 64 KiB slab; only an unfinished request (and
 *    what follows it) is copied into the connection's own buffer, so idle
 *    keep-alive connections own no input memory;
 *  - the answers to every request parsed from one read (pipelining) are
 *    batched in one output buffer and written with uv_try_write; only what the
 *    kernel refuses is copied into a queued uv_write;
 *  - a request whose answer is deferred (/delay, /stall, /big) stops parsing
 *    on its connection until the answer is done, which keeps answers in order.
 *
 * Choices a test may care about: query values are form-decoded ('+' is a
 * space); a missing `key` is the key ""; /count counts requests carrying `key`
 * on every endpoint except /count and /records themselves; defaults are
 * /flaky fail=1 code=500 delay=0 (a success after the failures takes
 * delay ms, answered as /delay answers), /ratelimit rate=1, /chaos p=0.3 (no rate limit),
 * /huge-header n=65536; /chaos and /ratelimit share a key's token bucket, and
 * each key has its own PRNG (seeded from --seed, default 1, and the key) so a
 * key's sequence does not depend on other traffic; POST /reset restarts it.
 * /orders/ID is 404 above 100000 before the every-7th 500. A peer that sends
 * EOF while /delay or /stall is pending is taken as gone.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>
#include <zlib.h>

#define HEAD_MAX (64 * 1024)               /* request line + headers, else 431 */
#define BODY_MAX ((size_t)64 << 20)        /* request body, else 413 */
#define IN_MAX (2 * BODY_MAX + HEAD_MAX)   /* buffered input beyond this is abuse */
#define MAX_HEADERS 128
#define MAX_PARAMS 64
#define SLAB_SIZE (64 * 1024)
#define BIG_MAX ((uint64_t)256 << 20)
#define BIG_CHUNK (256 * 1024)
#define BIG_INFLIGHT 4                     /* /big: uv_writes queued at once */
#define LINGER_MS 2000                     /* wait for the peer's FIN this long */
#define DELAY_MAX 3600000
#define HUGE_MAX ((int64_t)64 << 20)
#define BOMB_MIB 4096                      /* /gzip-bomb inflates to 4 GiB */
#define PAD_LINE 1024                      /* /many-headers: bytes per header line */
#define JSON "application/json"

/* ------------------------------------------------------------------------ */
/* Memory and string buffers                                                */

static void die(const char *what) {
  fprintf(stderr, "testserver: %s\n", what);
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p && n) die("out of memory");
  return p;
}

typedef struct {
  char *p;
  size_t len, cap;
} sb;

static void sb_reserve(sb *b, size_t extra) {
  if (b->cap - b->len >= extra) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) cap *= 2;
  b->p = xrealloc(b->p, cap);
  b->cap = cap;
}

static void sb_add(sb *b, const void *p, size_t n) {
  sb_reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void sb_str(sb *b, const char *s) { sb_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3)))
static void sb_fmt(sb *b, const char *fmt, ...) {
  va_list ap;
  sb_reserve(b, 128);
  va_start(ap, fmt);
  int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) die("vsnprintf failed");
  if ((size_t)n >= b->cap - b->len) {
    sb_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

static void sb_free(sb *b) {
  free(b->p);
  *b = (sb){0};
}

/* Drops the bytes a request consumed; gives a large buffer back once empty,
 * so that one big upload does not pin its memory for the connection's life. */
static void sb_consume(sb *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    if (b->cap > SLAB_SIZE) sb_free(b);
    return;
  }
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}

/* Scratch buffers are reused across requests; one huge answer should not
 * keep its memory forever. */
static void sb_trim(sb *b) {
  b->len = 0;
  if (b->cap > ((size_t)1 << 20)) sb_free(b);
}

/* Length of the valid UTF-8 sequence at s, 0 when invalid (overlong forms
 * and surrogates included), so that JSON output is always valid UTF-8. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0], lo = 0x80, hi = 0xbf;
  size_t len;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c >= 0xe0 && c <= 0xef) len = 3;
  else if (c >= 0xf0 && c <= 0xf4) len = 4;
  else return 0;
  if (c == 0xe0) lo = 0xa0;
  if (c == 0xed) hi = 0x9f;
  if (c == 0xf0) lo = 0x90;
  if (c == 0xf4) hi = 0x8f;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  return len;
}

/* JSON string contents without quotes. Bytes that are not UTF-8 become
 * \u00XX (read as Latin-1) rather than producing invalid JSON. */
static void sb_json_raw(sb *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x80 &&
           s[run] != '"' && s[run] != '\\')
      run++;
    if (run > i) sb_add(b, s + i, run - i);
    if ((i = run) == n) break;
    unsigned char ch = (unsigned char)s[i];
    size_t k = ch >= 0x80 ? utf8_len((const unsigned char *)s + i, n - i) : 0;
    if (k) {
      sb_add(b, s + i, k);
      i += k;
      continue;
    }
    char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
    const char *two = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n"
                    : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
    if (two) sb_add(b, two, 2);
    else sb_add(b, esc, 6);
    i++;
  }
}

static void sb_json(sb *b, const char *s, size_t n) {
  sb_add(b, "\"", 1);
  sb_json_raw(b, s, n);
  sb_add(b, "\"", 1);
}

/* ------------------------------------------------------------------------ */
/* Types and global state                                                   */

typedef struct {
  bool keep;      /* keep the connection open after this answer */
  bool head_only; /* HEAD: headers only */
  bool http10;    /* an HTTP/1.0 peer needs keep-alive announced */
} rflags;

typedef struct {
  const char *name, *value;
  size_t nlen, vlen;
} header;

typedef struct {
  const char *k, *v; /* url-decoded and NUL-terminated, in G.scratch */
  size_t kl, vl;
} param;

typedef struct {
  const char *method, *path, *query; /* query: NULL when the target has no '?' */
  size_t mlen, plen, qlen;
  header h[MAX_HEADERS];
  int nh;
  param q[MAX_PARAMS];
  int nq;
  int64_t clen; /* -1: no Content-Length */
  bool te, chunked, expect, conn_close, conn_keep;
  const char *body;
  size_t blen;
  rflags f;
} req;

enum { IDLE, DELAY, STALL, BIG };                    /* conn.busy */
enum { CK_SIZE, CK_DATA, CK_CRLF, CK_TRAILER };      /* conn.ck_state */

typedef struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* /delay, then the linger of a graceful close */
  uv_shutdown_t shut;
  struct conn *prev, *next;
  sb in;            /* the unfinished request and what follows, from its first byte */
  size_t scan;      /* where to resume looking for the end of the head */
  size_t head_len;  /* 0 until the head is complete */
  size_t body_len;  /* Content-Length */
  size_t want;      /* size of the whole request when known: sizes the reads */
  size_t ck_raw, ck_out, ck_left; /* chunked body: offsets in the request */
  int ck_state;
  bool chunked, expect, sent_continue;
  int busy;         /* IDLE or what the deferred answer is waiting for */
  rflags pend;      /* how to answer a pending /delay */
  uint64_t big_left, big_off;
  int writes;       /* uv_write requests in flight */
  int open;         /* handles not closed yet: free the conn at 0 */
  bool closing, close_after, draining, peer_eof;
  bool reset_next;  /* /ok-drop: the next request on this connection gets a RST */
} conn;

typedef struct {
  uv_write_t req;
  conn *c;
  char data[];
} wreq;

typedef struct {
  char *p;
  size_t n;
} blob;

/* Per-key state of /count, /flaky, /ratelimit, /chaos and /record. */
typedef struct entry {
  struct entry *next;
  uint64_t hash, count, hits, rng;
  uint64_t pending; /* /make: retries asked for and not logged yet */
  bool has_bucket;
  double tokens;
  uint64_t last_ns;
  blob *recs;
  size_t nrec, caprec;
  size_t klen;
  char key[];
} entry;

static struct {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_signal_t sigterm, sigint;
  bool stopping;
  uint64_t seed;
  conn *conns;
  sb out;     /* answers for the connection being served, flushed per event */
  sb body;    /* JSON body being built */
  sb hdr;     /* extra header lines being built */
  sb scratch; /* decoded query parameters */
  entry **tab;
  size_t tabsize, nent;
  unsigned char *gzip;
  size_t gzip_len;
  unsigned char *bomb; /* /gzip-bomb: BOMB_MIB MiB of zeros, gzipped */
  size_t bomb_len;
} G;

static char g_slab[SLAB_SIZE];
static char g_pattern[BIG_CHUNK + 26]; /* 'a'..'z' repeated, for /big */

static const char OK_RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 11\r\n\r\n{\"ok\":true}";
static const unsigned char BAD_GZIP[] = {
  0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03, /* a valid gzip header, then */
  0xff, 0xff, 0xff, 0xff, 'n', 'o', 't', ' ', 'd', 'e', 'f', 'l', 'a', 't', 'e'};

static void conn_close(conn *c);
static void conn_reset(conn *c);
static void conn_flush(conn *c);
static void maybe_finish(conn *c);
static void resume(conn *c);

/* ------------------------------------------------------------------------ */
/* Per-key state                                                            */

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
  return h;
}

/* splitmix64: one PRNG per key, seeded from --seed and the key, so a key's
 * sequence does not depend on how concurrent tests interleave. */
static uint64_t rng_next(entry *e) {
  uint64_t z = (e->rng += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static double rng_unit(entry *e) { return (double)(rng_next(e) >> 11) * 0x1p-53; }

static void map_grow(void) {
  size_t size = G.tabsize ? G.tabsize * 2 : 64;
  entry **tab = calloc(size, sizeof *tab);
  if (!tab) die("out of memory");
  for (size_t i = 0; i < G.tabsize; i++) {
    for (entry *e = G.tab[i], *next; e; e = next) {
      next = e->next;
      e->next = tab[e->hash & (size - 1)];
      tab[e->hash & (size - 1)] = e;
    }
  }
  free(G.tab);
  G.tab = tab;
  G.tabsize = size;
}

static entry *entry_get(const char *k, size_t kl, bool create) {
  uint64_t h = fnv1a(k, kl);
  if (G.tabsize) {
    for (entry *e = G.tab[h & (G.tabsize - 1)]; e; e = e->next)
      if (e->hash == h && e->klen == kl && !memcmp(e->key, k, kl)) return e;
  }
  if (!create) return NULL;
  if (G.nent >= G.tabsize) map_grow();
  entry *e = calloc(1, sizeof *e + kl + 1);
  if (!e) die("out of memory");
  memcpy(e->key, k, kl);
  e->klen = kl;
  e->hash = h;
  e->rng = G.seed ^ h;
  e->next = G.tab[h & (G.tabsize - 1)];
  G.tab[h & (G.tabsize - 1)] = e;
  G.nent++;
  return e;
}

static void map_clear(void) {
  for (size_t i = 0; i < G.tabsize; i++) {
    for (entry *e = G.tab[i], *next; e; e = next) {
      next = e->next;
      for (size_t j = 0; j < e->nrec; j++) free(e->recs[j].p);
      free(e->recs);
      free(e);
    }
    G.tab[i] = NULL;
  }
  G.nent = 0;
}

static void record_add(entry *e, const char *p, size_t n) {
  if (e->nrec == e->caprec) {
    e->caprec = e->caprec ? e->caprec * 2 : 8;
    e->recs = xrealloc(e->recs, e->caprec * sizeof *e->recs);
  }
  blob *b = &e->recs[e->nrec++];
  b->p = xrealloc(NULL, n + 1);
  memcpy(b->p, p, n);
  b->p[n] = '\0'; /* a C string too (the /make logs are searched) */
  b->n = n;
}

/* Token bucket of `rate` tokens per second holding at most max(rate, 1),
 * starting with `initial` tokens (< 0: full): takes a token and returns 0,
 * or returns the whole seconds (>= 1) until one is available. A test that
 * must see a 429 whatever its speed starts the bucket empty (burst=0). */
static uint64_t bucket_take(entry *e, double rate, double initial) {
  uint64_t now = uv_hrtime();
  double cap = rate < 1 ? 1 : rate;
  if (!e->has_bucket) {
    e->has_bucket = true;
    e->tokens = initial < 0 || initial > cap ? cap : initial;
  } else {
    e->tokens += (double)(now - e->last_ns) / 1e9 * rate;
    if (e->tokens > cap) e->tokens = cap;
  }
  e->last_ns = now;
  if (e->tokens >= 1) {
    e->tokens -= 1;
    return 0;
  }
  double wait = (1 - e->tokens) / rate;
  if (wait > 86400.0 * 365) wait = 86400.0 * 365; /* a tiny rate must not overflow */
  uint64_t s = (uint64_t)wait;
  if ((double)s < wait) s++;
  return s ? s : 1;
}

/* ------------------------------------------------------------------------ */
/* Writing answers (into G.out)                                             */

static const char *reason(int s) {
  switch (s) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 413: return "Content Too Large";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

static bool no_body_status(int status) { return status == 204 || status == 304; }

/* Status line and headers. clen < 0: no Content-Length. extra: header lines,
 * each ending in CRLF. */
static void head_out(const rflags *f, int status, const char *ctype, int64_t clen,
                     const char *extra) {
  sb *o = &G.out;
  bool nobody = no_body_status(status);
  sb_fmt(o, "HTTP/1.1 %d %s\r\n", status, reason(status));
  if (ctype && !nobody) sb_fmt(o, "Content-Type: %s\r\n", ctype);
  if (clen >= 0 && !nobody) sb_fmt(o, "Content-Length: %" PRId64 "\r\n", clen);
  if (extra) sb_str(o, extra);
  if (!f->keep) sb_str(o, "Connection: close\r\n");
  else if (f->http10) sb_str(o, "Connection: keep-alive\r\n");
  sb_add(o, "\r\n", 2);
}

static void reply(const rflags *f, int status, const char *ctype, const char *extra,
                  const void *body, size_t n) {
  head_out(f, status, ctype, (int64_t)n, extra);
  if (!f->head_only && !no_body_status(status)) sb_add(&G.out, body, n);
}

static void reply_json(const rflags *f, int status, const char *json) {
  reply(f, status, JSON, NULL, json, strlen(json));
}

static sb *body_begin(void) {
  G.body.len = 0;
  return &G.body;
}

/* Sends G.body (built after body_begin) as JSON. */
static void reply_body(const rflags *f, int status, const char *extra) {
  reply(f, status, JSON, extra, G.body.p, G.body.len);
}

static void reply_error(const rflags *f, int status, const char *msg) {
  sb *b = body_begin();
  sb_str(b, "{\"error\":");
  sb_json(b, msg, strlen(msg));
  sb_add(b, "}", 1);
  reply_body(f, status, NULL);
}

static void reply_ok(const rflags *f) {
  if (f->keep && !f->http10 && !f->head_only) sb_add(&G.out, OK_RESP, sizeof OK_RESP - 1);
  else reply_json(f, 200, "{\"ok\":true}");
}

/* ------------------------------------------------------------------------ */
/* Connections: closing, writing                                            */

static void on_close(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->open) return;
  if (c->prev) c->prev->next = c->next;
  else G.conns = c->next;
  if (c->next) c->next->prev = c->prev;
  sb_free(&c->in);
  free(c);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_close);
  uv_close((uv_handle_t *)&c->timer, on_close);
}

/* Abortive close (RST), for /flaky code=reset and /chaos. */
static void conn_reset(conn *c) {
  if (c->closing) return;
  c->closing = true;
  if (uv_tcp_close_reset(&c->tcp, on_close) != 0) uv_close((uv_handle_t *)&c->tcp, on_close);
  uv_close((uv_handle_t *)&c->timer, on_close);
}

static void big_pump(conn *c);

static void on_write(uv_write_t *w, int status) {
  wreq *wr = (wreq *)w;
  conn *c = wr->c;
  free(wr);
  c->writes--;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->busy == BIG) {
    big_pump(c);
    if (c->busy != BIG) resume(c);
    return;
  }
  maybe_finish(c);
}

/* Queues n bytes; copy=false only for memory that outlives the write. */
static int write_buf(conn *c, const char *p, size_t n, bool copy) {
  wreq *w = xrealloc(NULL, sizeof *w + (copy ? n : 0));
  w->c = c;
  if (copy) {
    memcpy(w->data, p, n);
    p = w->data;
  }
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int err = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (err) {
    free(w);
    conn_close(c);
    return err;
  }
  c->writes++;
  return 0;
}

/* Sends what G.out holds for c: straight to the socket when nothing is queued
 * (the usual case: no allocation), the rest through a uv_write. */
static void conn_flush(conn *c) {
  sb *o = &G.out;
  size_t n = o->len, done = 0;
  o->len = 0;
  if (n && !c->closing) {
    if (!c->writes) {
      uv_buf_t b = uv_buf_init(o->p, (unsigned)n);
      int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
      if (w >= 0) done = (size_t)w;
      else if (w != UV_EAGAIN) conn_close(c);
    }
    if (done < n && !c->closing) write_buf(c, o->p + done, n - done, true);
  }
  if (o->cap > ((size_t)1 << 20)) sb_free(o);
}

/* /big: keeps at most BIG_INFLIGHT chunks queued, from the static pattern,
 * so N bytes never need N bytes of memory. */
static void big_pump(conn *c) {
  uv_stream_t *s = (uv_stream_t *)&c->tcp;
  while (!c->closing && c->big_left && c->writes < BIG_INFLIGHT &&
         uv_stream_get_write_queue_size(s) < 2 * BIG_CHUNK) {
    size_t n = c->big_left < BIG_CHUNK ? (size_t)c->big_left : BIG_CHUNK;
    if (write_buf(c, g_pattern + c->big_off % 26, n, false)) return;
    c->big_off += n;
    c->big_left -= n;
  }
  if (!c->big_left) c->busy = IDLE;
}

static void on_linger(uv_timer_t *t) { conn_close(t->data); }

static void on_shutdown(uv_shutdown_t *s, int status) {
  conn *c = s->handle->data;
  if (status < 0) conn_close(c);
}

/* Ends a connection marked close_after once its last answer is written. It
 * sends FIN and waits for the peer's: closing with unread input would send
 * RST, which can destroy the answer still in flight (e.g. a 413). */
static void maybe_finish(conn *c) {
  if (c->closing || !c->close_after || c->busy || c->writes || c->draining) return;
  if (c->peer_eof) {
    conn_close(c);
    return;
  }
  c->draining = true;
  sb_free(&c->in);
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_linger, LINGER_MS, 0);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */

static bool is_tchar(unsigned char c) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr(extra, c));
}

static bool parse_u64(const char *s, size_t n, uint64_t *out) {
  uint64_t v = 0;
  if (!n || n > 18) return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out = v;
  return true;
}

/* Offset just past the blank line ending the head, 0 if not there yet.
 * Lines may end in CRLF or a bare LF. */
static size_t head_end(const char *p, size_t n, size_t from) {
  size_t i = from;
  while (i < n) {
    const char *nl = memchr(p + i, '\n', n - i);
    if (!nl) return 0;
    size_t j = (size_t)(nl - p) + 1;
    if (j < n && p[j] == '\n') return j + 1;
    if (j + 1 < n && p[j] == '\r' && p[j + 1] == '\n') return j + 2;
    i = j;
  }
  return 0;
}

static size_t line_len(const char *line, const char *eol) {
  size_t len = (size_t)(eol - line);
  return len && line[len - 1] == '\r' ? len - 1 : len;
}

static int parse_request_line(const char *p, size_t len, req *r) {
  const char *end = p + len, *s = p;
  while (s < end && is_tchar((unsigned char)*s)) s++;
  if (s == p || s == end || *s != ' ') return 400;
  r->method = p;
  r->mlen = (size_t)(s - p);
  const char *t = ++s;
  while (s < end && (unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f) s++;
  if (s == t || *t != '/' || end - s != 9 || *s != ' ') return 400;
  if (memcmp(s + 1, "HTTP/1.", 7) || (s[8] != '0' && s[8] != '1')) return 400;
  r->f.http10 = s[8] == '0';
  const char *q = memchr(t, '?', (size_t)(s - t));
  r->path = t;
  r->plen = (size_t)((q ? q : s) - t);
  r->query = q ? q + 1 : NULL;
  r->qlen = q ? (size_t)(s - q - 1) : 0;
  r->f.head_only = r->mlen == 4 && !memcmp(p, "HEAD", 4);
  return 0;
}

static bool name_is(const header *h, const char *name) {
  return h->nlen == strlen(name) && !strncasecmp(h->name, name, h->nlen);
}

static bool value_is(const char *v, size_t n, const char *word) {
  return n == strlen(word) && !strncasecmp(v, word, n);
}

static void parse_connection(const header *h, req *r) {
  const char *p = h->value, *end = p + h->vlen;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    const char *w = e;
    while (w > p && (w[-1] == ' ' || w[-1] == '\t')) w--;
    if (value_is(p, (size_t)(w - p), "close")) r->conn_close = true;
    if (value_is(p, (size_t)(w - p), "keep-alive")) r->conn_keep = true;
    p = e + 1;
  }
}

/* Looks at the headers that frame the body or the connection. */
static int header_meaning(const header *h, req *r) {
  if (name_is(h, "content-length")) {
    uint64_t v;
    if (!parse_u64(h->value, h->vlen, &v)) return 400;
    if (r->clen >= 0 && (uint64_t)r->clen != v) return 400;
    r->clen = (int64_t)v;
  } else if (name_is(h, "transfer-encoding")) {
    if (r->te) return 400;
    r->te = true;
    r->chunked = value_is(h->value, h->vlen, "chunked");
  } else if (name_is(h, "connection")) {
    parse_connection(h, r);
  } else if (name_is(h, "expect")) {
    r->expect = value_is(h->value, h->vlen, "100-continue");
  }
  return 0;
}

static int parse_header(const char *line, size_t len, req *r) {
  const char *colon = memchr(line, ':', len), *end = line + len;
  if (!colon || colon == line) return 400;
  for (const char *s = line; s < colon; s++)
    if (!is_tchar((unsigned char)*s)) return 400;
  const char *v = colon + 1;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  for (const char *s = v; s < end; s++)
    if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f) return 400;
  if (r->nh == MAX_HEADERS) return 431;
  header *h = &r->h[r->nh++];
  *h = (header){line, v, (size_t)(colon - line), (size_t)(end - v)};
  return header_meaning(h, r);
}

/* Parses the head p[0..n) (ending with its blank line) into r; the pointers
 * in r point into p. Returns 0 or the status to fail with. */
static int parse_head(const char *p, size_t n, req *r) {
  const char *end = p + n, *eol = memchr(p, '\n', n);
  r->nh = r->nq = 0;
  r->clen = -1;
  r->te = r->chunked = r->expect = r->conn_close = r->conn_keep = false;
  r->body = NULL;
  r->blen = 0;
  int st = parse_request_line(p, line_len(p, eol), r);
  for (const char *line = eol + 1; !st && line < end; line = eol + 1) {
    eol = memchr(line, '\n', (size_t)(end - line));
    size_t len = line_len(line, eol);
    if (!len) break;
    st = parse_header(line, len, r);
  }
  if (st) return st;
  if (r->te && !r->chunked) return 501;
  if (r->te && r->clen >= 0) return 400;
  r->f.keep = r->f.http10 ? r->conn_keep && !r->conn_close : !r->conn_close;
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Form decoding ('+' is a space); d may hold n bytes. */
static size_t url_decode(char *d, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
        (lo = hexval(s[i + 2])) >= 0) {
      d[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      d[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  return o;
}

static const char *decode_into(sb *s, const char *p, size_t n, size_t *len) {
  char *d = s->p + s->len;
  *len = url_decode(d, p, n);
  s->len += *len;
  s->p[s->len++] = 0;
  return d;
}

/* Splits and decodes the query into r->q. The scratch space is reserved up
 * front so the pointers stay valid. */
static void parse_query(req *r) {
  sb *s = &G.scratch;
  const char *p = r->query, *end = p + r->qlen;
  s->len = 0;
  sb_reserve(s, r->qlen + 2 * MAX_PARAMS + 2);
  while (p < end && r->nq < MAX_PARAMS) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (!amp) amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p)), *kend = eq ? eq : amp;
    if (kend > p) {
      param *q = &r->q[r->nq++];
      q->k = decode_into(s, p, (size_t)(kend - p), &q->kl);
      q->v = eq ? decode_into(s, eq + 1, (size_t)(amp - eq - 1), &q->vl)
                : decode_into(s, p, 0, &q->vl);
    }
    p = amp + 1;
  }
}

static const param *qget(const req *r, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < r->nq; i++)
    if (r->q[i].kl == n && !memcmp(r->q[i].k, name, n)) return &r->q[i];
  return NULL;
}

/* The `key` parameter; "" when absent. */
static const char *qkey(const req *r, size_t *kl) {
  const param *p = qget(r, "key");
  *kl = p ? p->vl : 0;
  return p ? p->v : "";
}

static int64_t qint(const req *r, const char *name, int64_t dflt) {
  const param *p = qget(r, name);
  char *end;
  if (!p || !p->vl) return dflt;
  long long v = strtoll(p->v, &end, 10);
  return *end ? dflt : (int64_t)v;
}

static double qdbl(const req *r, const char *name, double dflt) {
  const param *p = qget(r, name);
  char *end;
  if (!p || !p->vl) return dflt;
  double v = strtod(p->v, &end);
  return *end || v != v ? dflt : v;
}

/* ------------------------------------------------------------------------ */
/* Endpoints                                                                */

typedef void handler(conn *c, req *r, uint64_t arg);

static void h_ok(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  reply_ok(&r->f);
}

/* Values of repeated headers are joined with ", " under one name. */
static void echo_headers(sb *b, const req *r) {
  bool first = true;
  for (int i = 0; i < r->nh; i++) {
    const header *h = &r->h[i];
    int j = 0;
    while (j < i && !(r->h[j].nlen == h->nlen && !strncasecmp(r->h[j].name, h->name, h->nlen)))
      j++;
    if (j < i) continue;
    sb_str(b, first ? "\"" : ",\"");
    first = false;
    sb_reserve(b, h->nlen);
    for (size_t k = 0; k < h->nlen; k++) {
      char ch = h->name[k];
      b->p[b->len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    sb_str(b, "\":\"");
    sb_json_raw(b, h->value, h->vlen);
    for (j = i + 1; j < r->nh; j++) {
      if (r->h[j].nlen != h->nlen || strncasecmp(r->h[j].name, h->name, h->nlen)) continue;
      sb_add(b, ", ", 2);
      sb_json_raw(b, r->h[j].value, r->h[j].vlen);
    }
    sb_add(b, "\"", 1);
  }
}

static void h_echo(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  sb *b = body_begin();
  sb_str(b, "{\"method\":");
  sb_json(b, r->method, r->mlen);
  sb_str(b, ",\"path\":");
  sb_json(b, r->path, r->plen);
  sb_str(b, ",\"query\":");
  sb_json(b, r->query ? r->query : "", r->qlen);
  sb_str(b, ",\"headers\":{");
  echo_headers(b, r);
  sb_str(b, "},\"body\":");
  sb_json(b, r->body, r->blen);
  sb_add(b, "}", 1);
  reply_body(&r->f, 200, NULL);
}

/* /echo-raw/N: status N with the request itself as plain text (request
 * line, header lines as sent, blank line, body), as a careless server's
 * error page does: tests check that no credential survives into errors. */
static void h_echo_raw(conn *c, req *r, uint64_t n) {
  (void)c;
  if (n < 200 || n > 599) {
    reply_error(&r->f, 400, "status must be within 200..599");
    return;
  }
  sb *b = body_begin();
  sb_add(b, r->method, r->mlen);
  sb_add(b, " ", 1);
  sb_add(b, r->path, r->plen);
  if (r->query) {
    sb_add(b, "?", 1);
    sb_add(b, r->query, r->qlen);
  }
  sb_str(b, " HTTP/1.1\n");
  for (int i = 0; i < r->nh; i++) {
    sb_add(b, r->h[i].name, r->h[i].nlen);
    sb_add(b, ": ", 2);
    sb_add(b, r->h[i].value, r->h[i].vlen);
    sb_add(b, "\n", 1);
  }
  sb_add(b, "\n", 1);
  if (r->blen) sb_add(b, r->body, r->blen);
  reply(&r->f, (int)n, "text/plain", NULL, G.body.p, G.body.len);
}

static void h_status(conn *c, req *r, uint64_t n) {
  (void)c;
  if (n < 200 || n > 599) {
    reply_error(&r->f, 400, "status must be within 200..599");
    return;
  }
  sb_fmt(body_begin(), "{\"status\":%" PRIu64 "}", n);
  reply_body(&r->f, (int)n, NULL);
}

static void on_delay(uv_timer_t *t) {
  conn *c = t->data;
  c->busy = IDLE;
  reply_ok(&c->pend);
  resume(c);
}

static void h_delay(conn *c, req *r, uint64_t ms) {
  if (ms > DELAY_MAX) {
    reply_error(&r->f, 400, "delay above one hour");
    return;
  }
  c->busy = DELAY;
  c->pend = r->f;
  uv_timer_start(&c->timer, on_delay, ms, 0);
}

static void h_stall(conn *c, req *r, uint64_t arg) {
  (void)r, (void)arg;
  c->busy = STALL;
}

static void h_close(conn *c, req *r, uint64_t arg) {
  (void)r, (void)arg;
  c->close_after = true;
}

/* A keep-alive answer (no `Connection: close`), after which the server
 * drops the connection: the next request on it is answered by a RST, as
 * when a server closes an idle keep-alive connection just as the client
 * reuses it (deterministically: the client cannot see the close coming). */
static void h_ok_drop(conn *c, req *r, uint64_t arg) {
  (void)arg;
  reply_ok(&r->f);
  c->reset_next = true;
}

static void h_close_mid_body(conn *c, req *r, uint64_t arg) {
  (void)arg;
  head_out(&r->f, 200, "application/octet-stream", 1000, NULL);
  sb_add(&G.out, g_pattern, 100);
  c->close_after = true;
}

static void h_redirect(conn *c, req *r, uint64_t n) {
  (void)c;
  if (!n) {
    reply_json(&r->f, 200, "{\"redirected\":true}");
    return;
  }
  G.hdr.len = 0;
  sb_fmt(&G.hdr, "Location: /redirect/%" PRIu64 "\r\n", n - 1);
  sb_fmt(body_begin(), "{\"location\":\"/redirect/%" PRIu64 "\"}", n - 1);
  reply_body(&r->f, 302, G.hdr.p); /* vsnprintf left it NUL-terminated */
}

static void h_redirect_abs(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  const param *to = qget(r, "to");
  bool ok = to && to->vl;
  for (size_t i = 0; ok && i < to->vl; i++)
    ok = (unsigned char)to->v[i] >= 0x20 && to->v[i] != 0x7f;
  if (!ok) {
    reply_error(&r->f, 400, "need a `to` URL without control characters");
    return;
  }
  G.hdr.len = 0;
  sb_str(&G.hdr, "Location: ");
  sb_add(&G.hdr, to->v, to->vl);
  sb_add(&G.hdr, "\r\n", 3); /* with the NUL */
  sb *b = body_begin();
  sb_str(b, "{\"location\":");
  sb_json(b, to->v, to->vl);
  sb_add(b, "}", 1);
  reply_body(&r->f, 302, G.hdr.p);
}

/* Streams n bytes of the a..z pattern after the head already in G.out. */
static void big_start(conn *c, const req *r, uint64_t n) {
  if (r->f.head_only || !n) return;
  conn_flush(c);
  c->busy = BIG;
  c->big_left = n;
  c->big_off = 0;
  big_pump(c);
}

static void h_big(conn *c, req *r, uint64_t n) {
  if (n > BIG_MAX) {
    reply_error(&r->f, 400, "size above 256 MiB");
    return;
  }
  head_out(&r->f, 200, "application/octet-stream", (int64_t)n, NULL);
  big_start(c, r, n);
}

/* A body that never ends: no Content-Length, the connection closes only
 * when the client goes (it ends at the client's limit or timeout). */
static void h_endless(conn *c, req *r, uint64_t arg) {
  (void)arg;
  r->f.keep = false;
  head_out(&r->f, 200, "application/octet-stream", -1, NULL);
  big_start(c, r, UINT64_MAX);
}

static void h_gzip(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  reply(&r->f, 200, JSON, "Content-Encoding: gzip\r\n", G.gzip, G.gzip_len);
}

static void h_gzip_bomb(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  reply(&r->f, 200, "application/octet-stream", "Content-Encoding: gzip\r\n", G.bomb,
        G.bomb_len);
}

/* ?n=N header lines of PAD_LINE bytes each (default 1024: 1 MiB of headers). */
static void h_many_headers(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  int64_t n = qint(r, "n", 1024);
  if (n < 0 || n > 65536) {
    reply_error(&r->f, 400, "n must be within 0..65536");
    return;
  }
  sb *h = &G.hdr;
  h->len = 0;
  for (int64_t i = 0; i < n; i++) {
    int k = snprintf(NULL, 0, "X-Pad-%" PRId64 ": ", i);
    sb_fmt(h, "X-Pad-%" PRId64 ": ", i);
    sb_reserve(h, PAD_LINE);
    memset(h->p + h->len, 'p', PAD_LINE - 2 - (size_t)k);
    h->len += PAD_LINE - 2 - (size_t)k;
    sb_add(h, "\r\n", 2);
  }
  sb_add(h, "", 1); /* extra headers are a C string */
  reply(&r->f, 200, JSON, h->p, "{\"ok\":true}", 11);
}

static void h_bad_gzip(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  reply(&r->f, 200, JSON, "Content-Encoding: gzip\r\n", BAD_GZIP, sizeof BAD_GZIP);
}

static void h_malformed_json(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  reply_json(&r->f, 200, "{\"a\": [1, 2,");
}

static void h_json(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  const param *b = qget(r, "body");
  reply(&r->f, 200, JSON, NULL, b ? b->v : "", b ? b->vl : 0);
}

static void h_huge_header(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  int64_t n = qint(r, "n", 65536);
  if (n < 0 || n > HUGE_MAX) {
    reply_error(&r->f, 400, "n must be within 0..64 MiB");
    return;
  }
  sb *h = &G.hdr;
  h->len = 0;
  sb_reserve(h, (size_t)n + 16);
  sb_str(h, "X-Huge: ");
  memset(h->p + h->len, 'x', (size_t)n);
  h->len += (size_t)n;
  sb_add(h, "\r\n", 3); /* with the NUL: extra headers are a C string */
  reply(&r->f, 200, JSON, h->p, "{\"ok\":true}", 11);
}

static void h_bad_chunked(conn *c, req *r, uint64_t arg) {
  (void)arg;
  static const char body[] = "zz-not-hex\r\n{\"a\":1}\r\n0\r\n\r\n";
  head_out(&r->f, 200, JSON, -1, "Transfer-Encoding: chunked\r\n");
  sb_add(&G.out, body, sizeof body - 1);
  c->close_after = true;
}

static void h_chunked(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  static const char body[] = "6\r\n{\"chun\r\n5\r\nked\":\r\n5\r\ntrue}\r\n0\r\n\r\n";
  head_out(&r->f, 200, JSON, -1, "Transfer-Encoding: chunked\r\n");
  if (!r->f.head_only) sb_add(&G.out, body, sizeof body - 1);
}

static void h_garbage(conn *c, req *r, uint64_t arg) {
  (void)r, (void)arg;
  static const char junk[] = "\x16\x03\x01 this is not HTTP at all \x00\xff\xfe\r\n\r\n";
  sb_add(&G.out, junk, sizeof junk - 1);
  c->close_after = true;
}

/* 429 with Retry-After (whole seconds, or an HTTP-date with retry_after=date)
 * when e's bucket is empty; returns whether it answered. */
static bool rate_limited(const req *r, entry *e, double rate) {
  uint64_t wait = bucket_take(e, rate, qdbl(r, "burst", -1));
  if (!wait) return false;
  char date[64];
  const param *ra = qget(r, "retry_after");
  G.hdr.len = 0;
  if (ra && !strcmp(ra->v, "date")) {
    time_t t = time(NULL) + (time_t)wait;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    sb_fmt(&G.hdr, "Retry-After: %s\r\n", date);
  } else {
    sb_fmt(&G.hdr, "Retry-After: %" PRIu64 "\r\n", wait);
  }
  sb_fmt(body_begin(), "{\"error\":\"rate limited\",\"retry_after\":%" PRIu64 "}", wait);
  reply_body(&r->f, 429, G.hdr.p);
  return true;
}

static void h_ratelimit(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  size_t kl;
  const char *k = qkey(r, &kl);
  double rate = qdbl(r, "rate", 1);
  if (rate <= 0) {
    reply_error(&r->f, 400, "rate must be > 0");
    return;
  }
  if (!rate_limited(r, entry_get(k, kl, true), rate)) reply_ok(&r->f);
}

/* {"ok":B,"key":K,"hit":H} into G.body */
static void key_hit_body(bool ok, const char *k, size_t kl, uint64_t hit) {
  sb *b = body_begin();
  sb_str(b, ok ? "{\"ok\":true,\"key\":" : "{\"ok\":false,\"key\":");
  sb_json(b, k, kl);
  sb_fmt(b, ",\"hit\":%" PRIu64 "}", hit);
}

static void h_flaky(conn *c, req *r, uint64_t arg) {
  (void)arg;
  size_t kl;
  const char *k = qkey(r, &kl);
  entry *e = entry_get(k, kl, true);
  uint64_t hit = ++e->hits;
  int64_t fail = qint(r, "fail", 1);
  const param *code = qget(r, "code");
  if (fail < 0 || hit > (uint64_t)fail) {
    /* delay=MS: a success that takes that long (a slow job after failures) */
    int64_t ms = qint(r, "delay", 0);
    if (ms > 0 && ms <= DELAY_MAX) {
      c->busy = DELAY;
      c->pend = r->f;
      uv_timer_start(&c->timer, on_delay, (uint64_t)ms, 0);
      return;
    }
    key_hit_body(true, k, kl, hit);
    reply_body(&r->f, 200, NULL);
    return;
  }
  if (code && !strcmp(code->v, "reset")) {
    conn_reset(c);
    return;
  }
  int64_t st = qint(r, "code", 500);
  if (st < 200 || st > 599) st = 500;
  key_hit_body(false, k, kl, hit);
  reply_body(&r->f, (int)st, NULL);
}

static void h_chaos(conn *c, req *r, uint64_t arg) {
  (void)arg;
  static const int codes[] = {500, 502, 503};
  size_t kl;
  const char *k = qkey(r, &kl);
  entry *e = entry_get(k, kl, true);
  double p = qdbl(r, "p", 0.3), rate = qdbl(r, "rate", 0);
  /* Two draws on every request, so the sequence depends only on the count. */
  double u = rng_unit(e);
  unsigned pick = (unsigned)(rng_next(e) % 4);
  if (u < p) {
    if (pick == 3) {
      conn_reset(c);
      return;
    }
    sb_fmt(body_begin(), "{\"error\":\"chaos\",\"status\":%d}", codes[pick]);
    reply_body(&r->f, codes[pick], NULL);
    return;
  }
  if (rate > 0 && rate_limited(r, e, rate)) return;
  sb *b = body_begin();
  sb_str(b, "{\"ok\":true,\"key\":");
  sb_json(b, k, kl);
  sb_add(b, "}", 1);
  reply_body(&r->f, 200, NULL);
}

static bool want_post(const req *r) {
  if (r->mlen == 4 && !memcmp(r->method, "POST", 4)) return true;
  static const char body[] = "{\"error\":\"use POST\"}";
  reply(&r->f, 405, JSON, "Allow: POST\r\n", body, sizeof body - 1);
  return false;
}

static void h_record(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  if (!want_post(r)) return;
  size_t kl;
  const char *k = qkey(r, &kl);
  entry *e = entry_get(k, kl, true);
  record_add(e, r->body, r->blen);
  sb_fmt(body_begin(), "{\"ok\":true,\"n\":%zu}", e->nrec);
  reply_body(&r->f, 200, NULL);
}

static void h_records(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  size_t kl;
  const char *k = qkey(r, &kl);
  entry *e = entry_get(k, kl, false);
  size_t n = e ? e->nrec : 0;
  sb *b = body_begin();
  sb_str(b, "{\"key\":");
  sb_json(b, k, kl);
  sb_fmt(b, ",\"count\":%zu,\"bodies\":[", n);
  for (size_t i = 0; i < n; i++) {
    if (i) sb_add(b, ",", 1);
    sb_json(b, e->recs[i].p, e->recs[i].n);
  }
  sb_add(b, "]}", 2);
  reply_body(&r->f, 200, NULL);
}

static void h_count(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  size_t kl;
  const char *k = qkey(r, &kl);
  entry *e = entry_get(k, kl, false);
  sb *b = body_begin();
  sb_str(b, "{\"key\":");
  sb_json(b, k, kl);
  sb_fmt(b, ",\"count\":%" PRIu64 "}", e ? e->count : 0);
  reply_body(&r->f, 200, NULL);
}

static void h_reset(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  if (!want_post(r)) return;
  map_clear();
  reply_ok(&r->f);
}

/* Demo API. A missing order (> 100000) is 404 before the every-7th failure. */
static void h_orders(conn *c, req *r, uint64_t id) {
  (void)c;
  if (id > 100000) {
    reply_error(&r->f, 404, "order not found");
    return;
  }
  if (id % 7 == 0) {
    reply_error(&r->f, 500, "order service failed");
    return;
  }
  sb_fmt(body_begin(),
         "{\"id\":%" PRIu64 ",\"status\":\"paid\",\"amount\":%" PRIu64 ",\"customer\":"
         "{\"name\":\"Customer %" PRIu64 "\",\"email\":\"c%" PRIu64 "@example.test\"}}",
         id, id * 10, id, id);
  reply_body(&r->f, 200, NULL);
}

static void webhook(req *r, const char *key) {
  if (!want_post(r)) return;
  record_add(entry_get(key, strlen(key), true), r->body, r->blen);
  reply_json(&r->f, 200, "{\"accepted\":true}");
}

static void h_webhook(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  webhook(r, "webhook");
}

static void h_webhook2(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  webhook(r, "webhook2");
}

static void h_webhook_v1(conn *c, req *r, uint64_t arg) {
  (void)c, (void)arg;
  reply_error(&r->f, 410, "endpoint moved to /v2/webhook");
}

/* ------------------------------------------------------------------------ */
/* Remote platforms: Make-like, n8n-like and Kaizen-like APIs                */
/*
 * What Prism's stateless mocks cannot do: count what each item received
 * (a test checks "nothing sent" or "sent exactly once" at the server), and
 * answer as the item asks. An item's behaviour is spelled in its id,
 * letters each followed by a number (other characters are ignored, so a
 * test makes ids unique with any tag):
 *   s<N> (Make) the status (1 success, 2 warning, 3 error) of the log a
 *        retry ends with, s0 (the default) never logged;
 *   k<N> (Make) log polls after a retry before its log shows (default 0:
 *        the first poll shows it);
 *   p<N> (Make) logs already there (errors, dated 2025-01-01) before any retry;
 *   q<N> (Make) lists it in scenario N's listing once the server has seen it;
 *   h1   a mutation (retry, patch, delete) naming it is never answered (to
 *        interrupt it in flight);
 *   f<N> the first N mutations of each kind naming it fail: HTTP 400.
 * Each mutation of an item is counted under KIND/ID (/count): makeretry,
 * makepatch, makedelete, n8nretry, n8ndelete, kaizenretry -- alone or in
 * a bulk request, the failed and unanswered ones included. */

typedef struct {
  int status, polls, prior, hold, queue, fail;
} item_spec;

static item_spec spec_parse(const char *id, size_t n) {
  item_spec sp = {0, 0, 0, 0, -1, 0};
  for (size_t i = 0; i < n; i++) {
    char letter = id[i];
    int v = 0;
    size_t j = i + 1;
    if (j >= n || id[j] < '0' || id[j] > '9') continue;
    while (j < n && id[j] >= '0' && id[j] <= '9' && v < 1000000) v = v * 10 + (id[j++] - '0');
    if (letter == 's') sp.status = v;
    else if (letter == 'k') sp.polls = v;
    else if (letter == 'p') sp.prior = v;
    else if (letter == 'h') sp.hold = v;
    else if (letter == 'q') sp.queue = v;
    else if (letter == 'f') sp.fail = v;
    i = j - 1;
  }
  return sp;
}

/* One more mutation of the item: KIND/ID's count, after it. */
static uint64_t item_count(const char *kind, const char *id, size_t n) {
  char key[256];
  size_t kl = strlen(kind);
  if (n > sizeof key - kl - 2) n = sizeof key - kl - 2;
  memcpy(key, kind, kl);
  key[kl] = '/';
  memcpy(key + kl + 1, id, n);
  return ++entry_get(key, kl + 1 + n, true)->count;
}

enum { MUT_GO, MUT_HOLD, MUT_FAIL };

/* A mutation of one item, counted under KIND/ID (*count: the count after
 * it, if count is not NULL): what its spec says to do (MUT_GO: the caller
 * answers it). */
static int item_mutation(const char *kind, const char *id, size_t n, uint64_t *count) {
  uint64_t k = item_count(kind, id, n);
  if (count) *count = k;
  item_spec sp = spec_parse(id, n);
  if (sp.hold) return MUT_HOLD;
  if (k <= (uint64_t)sp.fail) return MUT_FAIL;
  return MUT_GO;
}

/* Answers a mutation that is not MUT_GO; false when the caller answers. */
static bool mutation_answered(conn *c, const req *r, int what) {
  if (what == MUT_HOLD) { /* never answered: a test interrupts the call in flight */
    c->busy = STALL;
    return true;
  }
  if (what == MUT_FAIL) {
    reply_error(&r->f, 400, "fake platform: this item's mutation is refused (f<N> in its id)");
    return true;
  }
  return false;
}

/* The next string of the body's "ids" array ({"ids": ["a", "b"]}); *cur
 * starts NULL and moves past each. NULL at the end. */
static const char *ids_next(const req *r, const char **cur, size_t *n) {
  if (!r->body) return NULL;
  const char *end = r->body + r->blen, *p = *cur;
  if (!p) {
    for (const char *x = r->body; x + 5 <= end && !p; x++)
      if (!memcmp(x, "\"ids\"", 5)) p = x;
    p = p ? memchr(p, '[', (size_t)(end - p)) : NULL;
    if (!p) return NULL;
  }
  if (p >= end || *p == ']') return NULL;
  const char *q = memchr(p, '"', (size_t)(end - p));
  const char *close = q ? memchr(q + 1, '"', (size_t)(end - q - 1)) : NULL;
  const char *bracket = memchr(p, ']', (size_t)(end - p));
  if (!close || (bracket && bracket < q)) return NULL;
  *n = (size_t)(close - q - 1);
  *cur = close + 1;
  return q + 1;
}

/* The body's string field NAME ({"id": "x"}), or NULL. */
static const char *body_str(const req *r, const char *name, size_t *n) {
  char pat[64];
  int pl = snprintf(pat, sizeof pat, "\"%s\"", name);
  if (!r->body || pl <= 0 || (size_t)pl >= sizeof pat) return NULL;
  const char *end = r->body + r->blen;
  for (const char *x = r->body; x + pl <= end; x++) {
    if (memcmp(x, pat, (size_t)pl)) continue;
    const char *q = x + pl;
    while (q < end && (*q == ' ' || *q == ':')) q++;
    if (q >= end || *q != '"') return NULL;
    const char *close = memchr(q + 1, '"', (size_t)(end - q - 1));
    if (!close) return NULL;
    *n = (size_t)(close - q - 1);
    return q + 1;
  }
  return NULL;
}

static bool method_is(const req *r, const char *m) {
  size_t n = strlen(m);
  return r->mlen == n && !memcmp(r->method, m, n);
}

/* ---- Make (base_url = server + "/make") --------------------------------- */
/*
 *   GET    /make/dlqs/ID           {"dlq": {...}}: resolved once a log is 1 or 2
 *   GET    /make/dlqs/ID/logs      {"dlqLogs": [...]}, newest first; pg[offset]
 *                                  > 0 is an empty page; a poll while a retry
 *                                  is pending counts towards k
 *   POST   /make/dlqs/ID/retry     {"dlq": ID}: one retry pending
 *   POST   /make/dlqs/retry        body {"ids": [...]}: {"dlqs": [...]}
 *   PATCH  /make/dlqs/ID           {"dlq": {...}} (makepatch/ID)
 *   DELETE /make/dlqs/ID           {"dlq": ID} (makedelete/ID)
 *   DELETE /make/dlqs?scenarioId=N body {"ids": [...]}: {"dlqs": [...]}
 *   GET    /make/dlqs?scenarioId=N {"dlqs": [...]}: the items seen whose id
 *                                  has q<N> (pg[offset] > 0: an empty page)
 * Each request about an item counts under the key make/ID. A bulk request
 * naming an item spelled h1 is never answered, one naming an item whose
 * f<N> has not run out fails whole (nothing of it done). */

/* The item's state, created with its prior logs on first sight. */
static entry *mk_item(const char *id, size_t n) {
  char key[256];
  if (n > sizeof key - 6) n = sizeof key - 6;
  memcpy(key, "make/", 5);
  memcpy(key + 5, id, n);
  bool fresh = !entry_get(key, n + 5, false);
  entry *e = entry_get(key, n + 5, true);
  e->count++;
  if (fresh) {
    item_spec sp = spec_parse(id, n);
    for (int i = 0; i < sp.prior && i < 100; i++) {
      sb log = {0}; /* not G.scratch: it holds the request's query */
      sb_fmt(&log, "{\"id\":\"%.*s-L%d\",\"imtId\":\"%.*s-E%d\",\"status\":3,\"duration\":900,"
             "\"operations\":1,\"transfer\":0,\"timestamp\":\"2025-01-01T00:00:00.000Z\",\"type\":\"retry\"}",
             (int)n, id, i + 1, (int)n, id, i + 1);
      record_add(e, log.p, log.len);
      sb_free(&log);
    }
  }
  return e;
}

/* A retry of the item is pending (its log shows after k polls). */
static void mk_pending(entry *e) {
  if (!e->pending) e->hits = 0;
  e->pending++;
}

static bool mk_resolved(const entry *e) {
  for (size_t i = 0; i < e->nrec; i++)
    if (strstr(e->recs[i].p, "\"status\":1,") || strstr(e->recs[i].p, "\"status\":2,")) return true;
  return false;
}

static void mk_json(sb *b, const entry *e, const char *id, size_t n, int scenario) {
  sb_str(b, "{\"id\":");
  sb_json(b, id, n);
  sb_fmt(b, ",\"scenarioId\":%d,\"scenarioName\":\"fake make\",\"reason\":\"fake failure\","
         "\"created\":\"2025-01-01T00:00:00.000Z\",\"resolved\":%s,\"attempts\":%zu,\"retry\":true,"
         "\"size\":10,\"index\":1}", scenario, mk_resolved(e) ? "true" : "false", e->nrec);
}

static void mk_detail(const rflags *f, entry *e, const char *id, size_t n) {
  sb *b = body_begin();
  sb_str(b, "{\"dlq\":");
  mk_json(b, e, id, n, 7);
  sb_str(b, "}");
  reply_body(f, 200, NULL);
}

/* GET /make/dlqs?scenarioId=N: every item seen whose id has q<N>. */
static void mk_list(const req *r) {
  int64_t sid = qint(r, "scenarioId", -1);
  sb *b = body_begin();
  sb_str(b, "{\"dlqs\":[");
  bool first = true;
  for (size_t i = 0; qint(r, "pg[offset]", 0) == 0 && i < G.tabsize; i++) {
    for (entry *e = G.tab[i]; e; e = e->next) {
      if (e->klen <= 5 || memcmp(e->key, "make/", 5)) continue;
      if (spec_parse(e->key + 5, e->klen - 5).queue != sid || sid < 0) continue;
      if (!first) sb_add(b, ",", 1);
      first = false;
      mk_json(b, e, e->key + 5, e->klen - 5, (int)sid);
    }
  }
  sb_str(b, "]}");
  reply_body(&r->f, 200, NULL);
}

static void mk_logs(const req *r, entry *e, const char *id, size_t n) {
  item_spec sp = spec_parse(id, n);
  if (e->pending && sp.status >= 1 && sp.status <= 3 && ++e->hits > (uint64_t)sp.polls) {
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    size_t k = e->nrec + 1;
    sb log = {0};
    sb_fmt(&log, "{\"id\":\"%.*s-L%zu\",\"imtId\":\"%.*s-E%zu\",\"status\":%d,\"duration\":%zu,"
           "\"operations\":3,\"transfer\":512,\"timestamp\":\"%s\",\"type\":\"retry\"}",
           (int)n, id, k, (int)n, id, k, sp.status, 1000 + k, ts);
    record_add(e, log.p, log.len);
    sb_free(&log);
    e->pending--;
    e->hits = 0;
  }
  sb *b = body_begin();
  sb_str(b, "{\"dlqLogs\":[");
  if (qint(r, "pg[offset]", 0) == 0) {
    for (size_t i = e->nrec; i-- > 0;) { /* newest first */
      sb_add(b, e->recs[i].p, e->recs[i].n);
      if (i) sb_add(b, ",", 1);
    }
  }
  sb_str(b, "]}");
  reply_body(&r->f, 200, NULL);
}

/* POST /make/dlqs/retry and DELETE /make/dlqs {"ids": [...]}: each id is
 * counted under KIND/ID; unless one of them holds or fails the request,
 * every retried id gets a pending retry, and the answer lists them all. */
static void mk_bulk(conn *c, req *r, const char *kind, bool retry) {
  int worst = MUT_GO;
  const char *cur = NULL, *id;
  size_t n;
  while ((id = ids_next(r, &cur, &n))) {
    mk_item(id, n);
    int what = item_mutation(kind, id, n, NULL);
    if (what == MUT_HOLD || (what == MUT_FAIL && worst == MUT_GO)) worst = what;
  }
  if (mutation_answered(c, r, worst)) return;
  sb *o = body_begin();
  sb_str(o, "{\"dlqs\":[");
  bool first = true;
  for (cur = NULL; (id = ids_next(r, &cur, &n)); first = false) {
    if (retry) mk_pending(mk_item(id, n));
    sb_add(o, first ? "\"" : ",\"", first ? 1 : 2);
    sb_json_raw(o, id, n);
    sb_add(o, "\"", 1);
  }
  sb_str(o, "]}");
  reply_body(&r->f, 200, NULL);
}

/* POST /make/dlqs/ID/retry, PATCH and DELETE /make/dlqs/ID. */
static void mk_mutate(conn *c, req *r, entry *e, const char *kind, const char *id, size_t n) {
  if (mutation_answered(c, r, item_mutation(kind, id, n, NULL))) return;
  if (!strcmp(kind, "makepatch")) {
    mk_detail(&r->f, e, id, n);
    return;
  }
  if (!strcmp(kind, "makeretry")) mk_pending(e);
  sb *b = body_begin();
  sb_str(b, "{\"dlq\":");
  sb_json(b, id, n);
  sb_str(b, "}");
  reply_body(&r->f, 200, NULL);
}

static void h_make(conn *c, req *r, uint64_t skip) {
  const char *p = r->path + skip, *end = r->path + r->plen;
  bool post = method_is(r, "POST");
  if ((size_t)(end - p) == 10 && !memcmp(p, "dlqs/retry", 10) && post) {
    mk_bulk(c, r, "makeretry", true);
    return;
  }
  if ((size_t)(end - p) == 4 && !memcmp(p, "dlqs", 4) && method_is(r, "GET")) {
    mk_list(r);
    return;
  }
  if ((size_t)(end - p) == 4 && !memcmp(p, "dlqs", 4) && method_is(r, "DELETE")) {
    mk_bulk(c, r, "makedelete", false);
    return;
  }
  if ((size_t)(end - p) <= 5 || memcmp(p, "dlqs/", 5)) {
    reply_error(&r->f, 404, "fake make: unknown path");
    return;
  }
  const char *id = p + 5, *slash = memchr(id, '/', (size_t)(end - id));
  size_t n = (size_t)((slash ? slash : end) - id);
  if (!n) {
    reply_error(&r->f, 404, "fake make: no id");
    return;
  }
  entry *e = mk_item(id, n);
  size_t rest = slash ? (size_t)(end - slash) : 0;
  if (!slash && method_is(r, "GET")) mk_detail(&r->f, e, id, n);
  else if (!slash && method_is(r, "PATCH")) mk_mutate(c, r, e, "makepatch", id, n);
  else if (!slash && method_is(r, "DELETE")) mk_mutate(c, r, e, "makedelete", id, n);
  else if (rest == 5 && !memcmp(slash, "/logs", 5) && method_is(r, "GET")) mk_logs(r, e, id, n);
  else if (rest == 6 && !memcmp(slash, "/retry", 6) && post) mk_mutate(c, r, e, "makeretry", id, n);
  else reply_error(&r->f, 404, "fake make: unknown path");
}

/* ---- n8n (base_url = server + "/n8n") ----------------------------------- */
/*
 *   GET    /n8n/executions           {"data": [], "nextCursor": null}: none
 *                                    listed (a retry chain is the execution alone)
 *   GET    /n8n/executions/ID        a failed (error) execution of workflow w1
 *   POST   /n8n/executions/ID/retry  the retry, finished with success:
 *                                    {"id": "ID-R<k>", "retryOf": ID, ...} (n8nretry/ID)
 *   DELETE /n8n/executions/ID        the deleted execution (n8ndelete/ID)
 * Each request about an execution counts under the key n8n/ID. */

static void n8n_exec(sb *b, const char *id, size_t n, uint64_t retry) {
  sb_str(b, "{\"id\":\"");
  sb_json_raw(b, id, n);
  if (retry) {
    sb_fmt(b, "-R%" PRIu64 "\",\"finished\":true,\"mode\":\"retry\",\"status\":\"success\",\"retryOf\":\"", retry);
    sb_json_raw(b, id, n);
    sb_str(b, "\"");
  } else {
    sb_str(b, "\",\"finished\":false,\"mode\":\"trigger\",\"status\":\"error\",\"retryOf\":null,"
           "\"data\":{\"resultData\":{\"lastNodeExecuted\":\"HTTP\",\"error\":{\"message\":\"fake failure\","
           "\"node\":{\"name\":\"HTTP\"}}}}");
  }
  sb_str(b, ",\"retrySuccessId\":null,\"workflowId\":\"w1\",\"startedAt\":\"2025-01-01T00:00:00.000Z\","
         "\"stoppedAt\":\"2025-01-01T00:00:01.000Z\"}");
}

static void h_n8n(conn *c, req *r, uint64_t skip) {
  const char *p = r->path + skip, *end = r->path + r->plen;
  if ((size_t)(end - p) == 10 && !memcmp(p, "executions", 10) && method_is(r, "GET")) {
    reply_json(&r->f, 200, "{\"data\":[],\"nextCursor\":null}");
    return;
  }
  if ((size_t)(end - p) <= 11 || memcmp(p, "executions/", 11)) {
    reply_error(&r->f, 404, "fake n8n: unknown path");
    return;
  }
  const char *id = p + 11, *slash = memchr(id, '/', (size_t)(end - id));
  size_t n = (size_t)((slash ? slash : end) - id), rest = slash ? (size_t)(end - slash) : 0;
  char key[256];
  int kl = snprintf(key, sizeof key, "n8n/%.*s", (int)(n < 200 ? n : 200), id);
  entry_get(key, (size_t)kl, true)->count++;
  uint64_t retry = 0;
  if (!slash && method_is(r, "GET")) {
    /* the execution as it is */
  } else if (!slash && method_is(r, "DELETE")) {
    if (mutation_answered(c, r, item_mutation("n8ndelete", id, n, NULL))) return;
  } else if (rest == 6 && !memcmp(slash, "/retry", 6) && method_is(r, "POST")) {
    if (mutation_answered(c, r, item_mutation("n8nretry", id, n, &retry))) return;
  } else {
    reply_error(&r->f, 404, "fake n8n: unknown path");
    return;
  }
  n8n_exec(body_begin(), id, n, retry);
  reply_body(&r->f, 200, NULL);
}

/* ---- Kaizen (base_url = server + "/kaizen") ----------------------------- */
/*
 *   POST /kaizen/executions/retry {"id": ID}: {"success": true, "execution":
 *        {"id": "ID-R<k>", "status": "InProgress", "parentExecutionId": ID,
 *        ...}} (kaizenretry/ID) */

static void h_kaizen(conn *c, req *r, uint64_t skip) {
  const char *p = r->path + skip, *end = r->path + r->plen;
  size_t n = 0;
  const char *id = body_str(r, "id", &n);
  if ((size_t)(end - p) != 16 || memcmp(p, "executions/retry", 16) || !method_is(r, "POST")) {
    reply_error(&r->f, 404, "fake kaizen: unknown path");
    return;
  }
  if (!id || !n) {
    reply_error(&r->f, 400, "fake kaizen: body {\"id\": ...} expected");
    return;
  }
  uint64_t k = 0;
  if (mutation_answered(c, r, item_mutation("kaizenretry", id, n, &k))) return;
  sb *b = body_begin();
  sb_str(b, "{\"success\":true,\"execution\":{\"id\":\"");
  sb_json_raw(b, id, n);
  sb_fmt(b, "-R%" PRIu64 "\",\"status\":\"InProgress\",\"attempts\":%" PRIu64 ",\"totalAttempts\":100,"
         "\"isLastAttempt\":false,\"startTime\":\"2025-01-01T00:00:00.000Z\",\"parentExecutionId\":\"", k, k + 1);
  sb_json_raw(b, id, n);
  sb_str(b, "\",\"workflow\":{\"id\":\"w1\",\"name\":\"fake kaizen\"}}}");
  reply_body(&r->f, 200, NULL);
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */

typedef struct {
  const char *path;
  size_t len;
  bool prefix; /* path + a decimal number, passed as arg */
  handler *fn;
  bool tree;   /* path + anything: the handler reads the rest (arg = len) */
} route;

#define ROUTE(p, pre, fn) {p, sizeof p - 1, pre, fn, false}
#define TREE(p, fn) {p, sizeof p - 1, false, fn, true}
static const route routes[] = {
  ROUTE("/ok", false, h_ok),                     /* 200 {"ok":true}: the bench sink */
  ROUTE("/echo", false, h_echo),                 /* the request as JSON */
  ROUTE("/echo-raw/", true, h_echo_raw),         /* /echo-raw/N: status N, the request as text */
  ROUTE("/status/", true, h_status),             /* /status/N: status N */
  ROUTE("/delay/", true, h_delay),               /* /delay/MS: /ok after MS ms */
  ROUTE("/stall", false, h_stall),               /* never answers */
  ROUTE("/close", false, h_close),               /* closes without answering */
  ROUTE("/close-mid-body", false, h_close_mid_body),
  ROUTE("/ok-drop", false, h_ok_drop),           /* /ok, then a RST for the next request */
  ROUTE("/redirect/", true, h_redirect),         /* 302 chain to /redirect/0 */
  ROUTE("/redirect-abs", false, h_redirect_abs), /* ?to=URL */
  ROUTE("/big/", true, h_big),                   /* /big/N: N bytes a..z */
  ROUTE("/gzip", false, h_gzip),
  ROUTE("/gzip-bomb", false, h_gzip_bomb),       /* ~4 MB inflating to 4 GiB of zeros */
  ROUTE("/endless", false, h_endless),           /* a..z until the client goes */
  ROUTE("/many-headers", false, h_many_headers), /* ?n=N header lines of 1 KiB */
  ROUTE("/bad-gzip", false, h_bad_gzip),
  ROUTE("/malformed-json", false, h_malformed_json),
  ROUTE("/json", false, h_json),                 /* ?body=...: that body */
  ROUTE("/huge-header", false, h_huge_header),   /* ?n=BYTES of X-Huge */
  ROUTE("/bad-chunked", false, h_bad_chunked),
  ROUTE("/chunked", false, h_chunked),
  ROUTE("/garbage", false, h_garbage),
  ROUTE("/flaky", false, h_flaky),               /* ?key&fail=N&code=C|reset&delay=MS */
  ROUTE("/ratelimit", false, h_ratelimit),       /* ?key&rate=R[&burst=B][&retry_after=date] */
  ROUTE("/chaos", false, h_chaos),               /* ?key&p=P[&rate=R] */
  ROUTE("/record", false, h_record),             /* POST ?key: keep the body */
  ROUTE("/records", false, h_records),           /* ?key: the kept bodies */
  ROUTE("/count", false, h_count),               /* ?key: requests seen with it */
  ROUTE("/reset", false, h_reset),               /* POST: forget all keys */
  ROUTE("/orders/", true, h_orders),             /* demo API */
  ROUTE("/webhook", false, h_webhook),
  ROUTE("/v2/webhook", false, h_webhook2),
  ROUTE("/v1/webhook", false, h_webhook_v1),
  TREE("/make/", h_make),                        /* a Make-like DLQ API (see above) */
  TREE("/n8n/", h_n8n),                          /* an n8n-like executions API */
  TREE("/kaizen/", h_kaizen),                    /* Kaizen's retry */
};

static const route *route_find(const req *r, uint64_t *arg, bool *bad) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    const route *rt = &routes[i];
    if (rt->prefix || rt->tree ? r->plen <= rt->len : r->plen != rt->len) continue;
    if (memcmp(r->path, rt->path, rt->len)) continue;
    if (rt->prefix) *bad = !parse_u64(r->path + rt->len, r->plen - rt->len, arg);
    if (rt->tree) *arg = rt->len;
    return rt;
  }
  return NULL;
}

static void dispatch(conn *c, req *r) {
  uint64_t arg = 0;
  bool bad = false;
  if (r->query) parse_query(r);
  const route *rt = route_find(r, &arg, &bad);
  /* /count and /records only look: they do not count as uses of the key. */
  const param *key = qget(r, "key");
  if (key && !(rt && (rt->fn == h_count || rt->fn == h_records)))
    entry_get(key->v, key->vl, true)->count++;
  if (!rt) reply_error(&r->f, 404, "not found");
  else if (bad) reply_error(&r->f, 400, "expected a number in the path");
  else rt->fn(c, r, arg);
  if (!r->f.keep) c->close_after = true;
  sb_trim(&G.body);
  sb_trim(&G.hdr);
  sb_trim(&G.scratch);
}

/* ------------------------------------------------------------------------ */
/* Request framing                                                          */

static const char *fail_message(int status) {
  switch (status) {
  case 413: return "request body too large";
  case 431: return "request head too large";
  case 501: return "unsupported transfer-encoding";
  default: return "bad request";
  }
}

/* Answers a request that cannot be parsed, then closes: after a framing
 * error nothing that follows can be trusted. Consumes all n bytes. */
static size_t fail(conn *c, int status, size_t n) {
  rflags f = {.keep = false};
  reply_error(&f, status, fail_message(status));
  c->close_after = true;
  return n;
}

static void request_reset(conn *c) {
  c->scan = c->head_len = c->body_len = c->want = 0;
  c->ck_raw = c->ck_out = c->ck_left = 0;
  c->ck_state = CK_SIZE;
  c->chunked = c->expect = c->sent_continue = false;
}

/* Remembers how the body of the request whose head just arrived is framed. */
static int frame_start(conn *c, const req *r, size_t head_len) {
  c->head_len = head_len;
  c->chunked = r->chunked;
  c->expect = r->expect && !r->f.http10;
  if (r->chunked) {
    c->ck_raw = c->ck_out = head_len;
    return 0;
  }
  if (r->clen > (int64_t)BODY_MAX) return 413;
  c->body_len = r->clen > 0 ? (size_t)r->clen : 0;
  c->want = head_len + c->body_len;
  return 0;
}

/* "hex[;ext]" line of a chunked body; returns 0 or a status. */
static int chunk_size_line(conn *c, const char *p, size_t len) {
  size_t i = 0, size = 0;
  int d;
  while (i < len && i < 15 && (d = hexval(p[i])) >= 0) size = size * 16 + (size_t)d, i++;
  if (!i) return 400;
  while (i < len && (p[i] == ' ' || p[i] == '\t')) i++;
  if (i < len && p[i] != ';') return 400;
  if (size > BODY_MAX - (c->ck_out - c->head_len)) return 413;
  c->ck_left = size;
  c->ck_state = size ? CK_DATA : CK_TRAILER;
  return 0;
}

/* Next line at p[c->ck_raw..n): its length without the line end, or -1 if it
 * is not complete yet; moves ck_raw past it. */
static long chunk_line(conn *c, const char *p, size_t n, const char **line) {
  const char *nl = memchr(p + c->ck_raw, '\n', n - c->ck_raw);
  if (!nl) return -1;
  *line = p + c->ck_raw;
  c->ck_raw = (size_t)(nl - p) + 1;
  return (long)line_len(*line, nl);
}

/* Decodes a chunked body in place: data moves down from ck_raw to ck_out, so
 * the body ends up contiguous after the head. Resumable on every read.
 * Returns 1 when complete, 0 for more input, -status on error. */
static int chunk_step(conn *c, char *p, size_t n) {
  const char *line;
  long len;
  for (;;) {
    if (c->ck_state == CK_SIZE || c->ck_state == CK_TRAILER) {
      if ((len = chunk_line(c, p, n, &line)) < 0) return n - c->ck_raw > HEAD_MAX ? -431 : 0;
      if (c->ck_state == CK_TRAILER) {
        if (!len) return 1;
        continue;
      }
      int st = chunk_size_line(c, line, (size_t)len);
      if (st) return -st;
    } else if (c->ck_state == CK_DATA) {
      size_t k = n - c->ck_raw < c->ck_left ? n - c->ck_raw : c->ck_left;
      if (!k) return 0;
      memmove(p + c->ck_out, p + c->ck_raw, k);
      c->ck_out += k, c->ck_raw += k, c->ck_left -= k;
      if (c->ck_left) return 0;
      c->ck_state = CK_CRLF;
    } else { /* CK_CRLF: the line end after a chunk's data */
      size_t avail = n - c->ck_raw;
      if (!avail || (p[c->ck_raw] == '\r' && avail < 2)) return 0;
      if (p[c->ck_raw] == '\r') c->ck_raw++;
      if (p[c->ck_raw++] != '\n') return -400;
      c->ck_state = CK_SIZE;
    }
  }
}

/* 1 with *total = the request's size when its body is complete, 0 for more
 * input, -status on error. */
static int body_ready(conn *c, char *p, size_t n, size_t *total) {
  if (!c->chunked) {
    *total = c->head_len + c->body_len;
    return n >= *total;
  }
  int st = chunk_step(c, p, n);
  if (st == 1) *total = c->ck_raw;
  return st;
}

/* Takes one request from p[0..n), the connection's unparsed input. Returns
 * the bytes consumed, 0 when more input is needed. */
static size_t request_try(conn *c, char *p, size_t n) {
  req r;
  size_t total;
  int st;
  bool fresh = !c->head_len;
  if (fresh) {
    if (!c->scan && p[0] == '\n') return 1; /* stray line ends between requests */
    if (!c->scan && p[0] == '\r') return n < 2 ? 0 : p[1] == '\n' ? 2 : fail(c, 400, n);
    size_t h = head_end(p, n, c->scan);
    if (!h || h > HEAD_MAX) {
      if (n > HEAD_MAX) return fail(c, 431, n);
      c->scan = n > 3 ? n - 3 : 0;
      return 0;
    }
    if ((st = parse_head(p, h, &r)) || (st = frame_start(c, &r, h))) return fail(c, st, n);
  }
  if ((st = body_ready(c, p, n, &total)) < 0) return fail(c, -st, n);
  if (!st) {
    if (c->expect && !c->sent_continue) sb_str(&G.out, "HTTP/1.1 100 Continue\r\n\r\n");
    c->sent_continue = true;
    return 0;
  }
  if (!fresh) parse_head(p, c->head_len, &r); /* parsed fine before */
  r.body = p + c->head_len;
  r.blen = c->chunked ? c->ck_out - c->head_len : c->body_len;
  request_reset(c);
  dispatch(c, &r);
  return total;
}

/* Answers every complete request in p[0..n); returns the bytes consumed. */
static size_t conn_process(conn *c, char *p, size_t n) {
  size_t off = 0;
  while (off < n && !c->busy && !c->close_after && !c->closing) {
    size_t used = request_try(c, p + off, n - off);
    if (!used) break;
    off += used;
  }
  /* Once the connection is to be closed, the rest of the input is moot. */
  return c->close_after || c->closing ? n : off;
}

/* Continues after a deferred answer: the input may hold pipelined requests. */
static void resume(conn *c) {
  if (c->closing) return;
  if (c->in.len) sb_consume(&c->in, conn_process(c, c->in.p, c->in.len));
  conn_flush(c);
  maybe_finish(c);
}

/* ------------------------------------------------------------------------ */
/* libuv callbacks                                                          */

/* The shared slab while the connection has no buffered input; otherwise its
 * own buffer, grown to hold the whole request when its size is known. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  if (!c->in.len || c->draining) {
    *buf = uv_buf_init(g_slab, SLAB_SIZE);
    return;
  }
  size_t want = 16 * 1024;
  if (c->want > c->in.len + want) want = c->want - c->in.len;
  sb_reserve(&c->in, want);
  *buf = uv_buf_init(c->in.p + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void on_read_end(conn *c, ssize_t err) {
  /* A peer gone while an answer is deferred is a disconnect: clean up. */
  if (err != UV_EOF || c->draining || c->busy == DELAY || c->busy == STALL) {
    conn_close(c);
    return;
  }
  c->peer_eof = c->close_after = true;
  uv_read_stop((uv_stream_t *)&c->tcp);
  maybe_finish(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread < 0) {
    on_read_end(c, nread);
    return;
  }
  if (!nread || c->closing || c->draining) return;
  if (c->reset_next) {
    conn_reset(c);
    return;
  }
  if (buf->base == g_slab) {
    size_t used = conn_process(c, g_slab, (size_t)nread);
    if (used < (size_t)nread) sb_add(&c->in, g_slab + used, (size_t)nread - used);
  } else {
    c->in.len += (size_t)nread;
    sb_consume(&c->in, conn_process(c, c->in.p, c->in.len));
  }
  conn_flush(c);
  if (c->in.len > IN_MAX) conn_close(c);
  maybe_finish(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) die("out of memory");
  uv_tcp_init(&G.loop, &c->tcp);
  uv_timer_init(&G.loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open = 2;
  c->next = G.conns;
  if (G.conns) G.conns->prev = c;
  G.conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s, (void)signum;
  if (G.stopping) return;
  G.stopping = true;
  uv_close((uv_handle_t *)&G.server, NULL);
  uv_close((uv_handle_t *)&G.sigterm, NULL);
  uv_close((uv_handle_t *)&G.sigint, NULL);
  for (conn *c = G.conns; c; c = c->next) conn_close(c);
}

/* ------------------------------------------------------------------------ */
/* Start-up                                                                 */

/* The /gzip body, compressed once (windowBits 31: gzip framing). */
static void gzip_init(void) {
  sb plain = {0};
  sb_str(&plain, "{\"gzip\":true,\"text\":\"");
  for (int i = 0; i < 1000; i++) sb_str(&plain, "hello ");
  sb_str(&plain, "\"}");
  z_stream zs = {0};
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    die("deflateInit2 failed");
  uLong cap = deflateBound(&zs, (uLong)plain.len);
  G.gzip = xrealloc(NULL, cap);
  zs.next_in = (Bytef *)plain.p;
  zs.avail_in = (uInt)plain.len;
  zs.next_out = G.gzip;
  zs.avail_out = (uInt)cap;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) die("deflate failed");
  G.gzip_len = zs.total_out;
  deflateEnd(&zs);
  sb_free(&plain);
}

/* The /gzip-bomb body: BOMB_MIB MiB of zeros in one gzip member, built
 * without compressing 4 GiB. After a full flush deflate keeps no history,
 * so every further 1 MiB of zeros compresses to the same bytes: compress
 * three chunks, check the second and third agree, repeat that block, then
 * end the stream and write the trailer (CRC-32 and size of the whole). */
static void bomb_init(void) {
  enum { CHUNK = 1 << 20 };
  unsigned char *zeros = calloc(1, CHUNK), out[3][16384];
  size_t len[3];
  z_stream zs = {0};
  if (!zeros || deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    die("bomb: deflateInit2 failed");
  for (int i = 0; i < 3; i++) {
    zs.next_in = zeros;
    zs.avail_in = CHUNK;
    zs.next_out = out[i];
    zs.avail_out = sizeof out[i];
    if (deflate(&zs, Z_FULL_FLUSH) != Z_OK || zs.avail_in || !zs.avail_out)
      die("bomb: deflate failed");
    len[i] = sizeof out[i] - zs.avail_out;
  }
  if (len[1] != len[2] || memcmp(out[1], out[2], len[1])) die("bomb: flush blocks differ");
  unsigned char tail[64];
  zs.next_out = tail;
  zs.avail_out = sizeof tail;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) die("bomb: deflate finish failed");
  size_t tail_len = sizeof tail - zs.avail_out - 8; /* zlib's trailer replaced below */
  deflateEnd(&zs);
  uLong crc_chunk = crc32(0L, zeros, CHUNK), crc = crc32(0L, Z_NULL, 0);
  free(zeros);
  G.bomb_len = len[0] + (BOMB_MIB - 1) * len[1] + tail_len + 8;
  G.bomb = xrealloc(NULL, G.bomb_len);
  unsigned char *p = G.bomb;
  memcpy(p, out[0], len[0]), p += len[0];
  for (int i = 1; i < BOMB_MIB; i++) memcpy(p, out[1], len[1]), p += len[1];
  memcpy(p, tail, tail_len), p += tail_len;
  for (int i = 0; i < BOMB_MIB; i++) crc = crc32_combine(crc, crc_chunk, CHUNK);
  uint32_t size = (uint32_t)((uint64_t)BOMB_MIB * CHUNK); /* ISIZE: mod 2^32 */
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(crc >> (8 * i));
  for (int i = 0; i < 4; i++) p[4 + i] = (unsigned char)(size >> (8 * i));
}

/* Thousands of concurrent connections need more than the usual 1024 fds. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl); /* best effort (fails under valgrind) */
  }
}

/* Written beside and renamed, so a poller never sees a partial number. */
static void write_port_file(const char *path, int port) {
  size_t n = strlen(path) + 32;
  char *tmp = xrealloc(NULL, n);
  snprintf(tmp, n, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
    die("cannot write the port file");
  free(tmp);
}

static int listen_on(int port) {
  struct sockaddr_in addr;
  struct sockaddr_storage got;
  int len = sizeof got, err;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(&G.loop, &G.server);
  if ((err = uv_tcp_bind(&G.server, (const struct sockaddr *)&addr, 0)) ||
      (err = uv_listen((uv_stream_t *)&G.server, 4096, on_connection))) {
    fprintf(stderr, "testserver: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(err));
    exit(1);
  }
  uv_tcp_getsockname(&G.server, (struct sockaddr *)&got, &len);
  return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void usage(void) {
  fprintf(stderr, "usage: testserver [--port N] [--port-file PATH] [--seed N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *port_file = NULL;
  uint64_t port = 0;
  G.seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--port") && parse_u64(v, strlen(v), &port) && port <= 65535) i++;
    else if (!strcmp(a, "--seed") && parse_u64(v, strlen(v), &G.seed)) i++;
    else if (!strcmp(a, "--port-file")) port_file = argv[++i];
    else usage();
  }
  signal(SIGPIPE, SIG_IGN); /* a write to a gone peer must be an error, not death */
  raise_nofile();
  for (size_t i = 0; i < sizeof g_pattern; i++) g_pattern[i] = (char)('a' + i % 26);
  gzip_init();
  bomb_init();
  if (uv_loop_init(&G.loop)) die("uv_loop_init failed");
  int bound = listen_on((int)port);
  uv_signal_init(&G.loop, &G.sigterm);
  uv_signal_init(&G.loop, &G.sigint);
  uv_signal_start(&G.sigterm, on_signal, SIGTERM);
  uv_signal_start(&G.sigint, on_signal, SIGINT);
  printf("%d\n", bound);
  fflush(stdout);
  if (port_file) write_port_file(port_file, bound);
  uv_run(&G.loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&G.loop);
  map_clear();
  free(G.tab);
  free(G.gzip);
  free(G.bomb);
  sb_free(&G.out);
  sb_free(&G.body);
  sb_free(&G.hdr);
  sb_free(&G.scratch);
  if (rc) fprintf(stderr, "testserver: uv_loop_close: %s\n", uv_strerror(rc));
  return rc ? 1 : 0;
}

/* Regressions found by fuzz/fuzz_http.c (hostile HTTP responses). Each runs
 * against a one-shot loopback server thread that answers with fixed bytes;
 * they catch memory errors under `make asan` and `make valgrind`. */
#include "redrive.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  int lfd;
  const char *const *answers; /* one per connection, NULL-terminated */
} canned;

static void *serve(void *arg) {
  canned *c = arg;
  for (const char *const *a = c->answers; *a; a++) {
    int fd = accept(c->lfd, NULL, NULL);
    if (fd < 0) break;
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) { /* the request head */
      ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
      if (r <= 0) break;
      got += (size_t)r;
      buf[got] = 0;
      if (strstr(buf, "\r\n\r\n")) break;
    }
    (void)!write(fd, *a, strlen(*a));
    close(fd);
  }
  return NULL;
}

static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  ASSERT(fd >= 0);
  ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
  ASSERT_OK(listen(fd, 4));
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &sl));
  *port = ntohs(sa.sin_port);
  return fd;
}

typedef struct {
  int calls, ok;
} tally;

static void on_done(int status, rd_http_res_t *res, const rd_err *err, void *ud) {
  tally *t = ud;
  t->calls++;
  if (status == 0) {
    t->ok++;
    rd_http_res_free(res);
  } else {
    ASSERT(err && err->msg[0]);
  }
}

/* Sequential requests on one rd_http (so easy handles are reused), one per
 * canned answer; every request must end with a callback. */
static void run_sequence(const char *const *answers, int n, const char *method, tally *t) {
  canned c = {.answers = answers};
  int port;
  c.lfd = listen_any(&port);
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, serve, &c));
  uv_loop_t loop;
  uv_loop_init(&loop);
  rd_http_t *h;
  ASSERT_OK(rd_http_new(&h, &loop, NULL, NULL));
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
  for (int i = 0; i < n; i++) {
    /* the answers are immediate: the timeout only bounds a hang (valgrind) */
    rd_http_req_t req = {.url = url, .timeout_ms = 120000,
                         .method = i ? method : "GET"};
    ASSERT_OK(rd_http_start(h, &req, on_done, t, NULL, NULL));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_INT_EQ(t->calls, i + 1);
  }
  rd_http_close(h);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(uv_loop_close(&loop), 0);
  pthread_join(th, NULL);
  close(c.lfd);
}

/* fuzz_http crash 83db8f61: a response whose first header line is folded
 * (starts with a space), on an easy handle reused after an ordinary
 * response. libcurl 7.88.1 keeps a pointer to the previous transfer's last
 * header (data->state.prevhead) across curl_easy_reset and appends the
 * folded line to that freed header: heap-use-after-free in
 * Curl_headers_push (curl/curl#11101, fixed in curl 8.1.0). redrive must
 * not reuse easy handles with such a libcurl. */
RD_TEST(regress_http_folded_first_header_after_reuse) {
  static const char *const answers[] = {
      "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}",
      "HTTP/1.1 200\n KOnC\rtth: ;\r\n\r\n\n",
      "HTTP/1.1 200 OK\r\n\tfolded: x\r\nContent-Length: 2\r\n\r\n{}",
      NULL,
  };
  tally t = {0};
  run_sequence(answers, 3, "HEAD", &t);
  ASSERT_INT_EQ(t.calls, 3);
  ASSERT(t.ok >= 1);
}

/* The seeds of fuzz/corpus/http that once misbehaved or are worth keeping:
 * truncated body, invalid chunking, invalid gzip, an HTTP/1.0 body up to
 * close, a huge header. Each ends with a callback, none crashes. */
RD_TEST(regress_http_garbage_answers_end_cleanly) {
  static char huge[70000];
  memcpy(huge, "HTTP/1.1 200 OK\r\nX-Big: ", 24);
  memset(huge + 24, 'a', 65536);
  strcpy(huge + 24 + 65536, "\r\nContent-Length: 2\r\n\r\n{}");
  const char *const answers[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
      "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n\x1f\x8b\x08garbage",
      "HTTP/1.0 200 OK\r\n\r\nbody until close",
      "garbage\r\n\r\n",
      "",
      huge,
      NULL,
  };
  tally t = {0};
  run_sequence(answers, 7, "GET", &t);
  ASSERT_INT_EQ(t.calls, 7);
}

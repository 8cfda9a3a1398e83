/* TLS verification is the default of a zeroed rd_http_req_t, against a real
 * TLS server the test starts: `openssl s_server` with a self-signed
 * certificate made for the test (Debian package openssl). */
#include "redrive.h"
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  pid_t pid;
  char url[128];
} tls_server;

/* Make a self-signed certificate for 127.0.0.1 and start s_server on a free
 * port; its "ACCEPT host:port" line says it listens (no sleeping). */
static void start_server(tls_server *s) {
  if (system("command -v openssl >/dev/null 2>&1") != 0) RD_SKIP("openssl is not installed");
  const char *dir = rd_test_tmpdir();
  char cmd[1024], cert[300], key[300];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout %s -out %s -days 1 -subj /CN=localhost "
           "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1",
           key, cert);
  ASSERT_INT_EQ(system(cmd), 0);
  int fd[2];
  ASSERT_OK(pipe(fd));
  s->pid = fork();
  ASSERT(s->pid >= 0);
  if (s->pid == 0) {
    dup2(fd[1], 1);
    int null = open("/dev/null", O_WRONLY); /* its TLS alerts are expected */
    if (null >= 0) dup2(null, 2);
    close(fd[0]);
    close(fd[1]);
    execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key",
           key, "-www", (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  FILE *f = fdopen(fd[0], "r");
  ASSERT(f != NULL);
  char line[256];
  const char *port = NULL;
  while (!port && fgets(line, sizeof line, f)) {
    if (strncmp(line, "ACCEPT ", 7) != 0) continue;
    char *colon = strrchr(line, ':');
    if (colon) port = colon + 1;
  }
  if (!port) RD__FAIL("openssl s_server did not start");
  snprintf(s->url, sizeof s->url, "https://127.0.0.1:%d/", atoi(port));
  fclose(f); /* s_server's later output goes nowhere: it writes little */
}

static void stop_server(tls_server *s) {
  kill(s->pid, SIGTERM);
  waitpid(s->pid, NULL, 0);
}

typedef struct {
  int calls, code;
  long status;
  char msg[512];
} outcome;

static void on_done(int status, rd_http_res_t *res, const rd_err *err, void *ud) {
  outcome *o = ud;
  o->calls++;
  o->code = status;
  if (status == 0) {
    o->status = res->status;
    rd_http_res_free(res);
  } else {
    snprintf(o->msg, sizeof o->msg, "%s", err->msg);
  }
}

/* One request on a fresh loop; the loop must close clean afterwards. */
static outcome fetch(const rd_http_req_t *req) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rd_http_t *h;
  ASSERT_OK(rd_http_new(&h, &loop, NULL, NULL));
  outcome o = {0};
  ASSERT_OK(rd_http_start(h, req, on_done, &o, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  rd_http_close(h);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(uv_loop_close(&loop), 0);
  ASSERT_INT_EQ(o.calls, 1);
  return o;
}

RD_TEST(tls_a_zeroed_request_verifies_the_certificate) {
  tls_server s;
  start_server(&s);
  rd_http_req_t req = {.url = s.url}; /* nothing said about TLS */
  outcome o = fetch(&req);
  ASSERT_INT_EQ(o.code, RD_ETLS);
  ASSERT_CONTAINS(o.msg, "127.0.0.1");
  rd_http_req_t insecure = {.url = s.url, .insecure = 1}; /* the opt-out, by name */
  o = fetch(&insecure);
  ASSERT_INT_EQ(o.code, 0);
  ASSERT_INT_EQ(o.status, 200);
  stop_server(&s);
}

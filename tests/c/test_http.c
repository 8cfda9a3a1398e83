/* The C HTTP API on a libuv loop, against the loopback test server. */
#include "redrive.h"
#include "test.h"

#include <uv.h>

typedef struct {
  int calls, ok, status_sum;
  int last_code;
  char last_msg[512];
} tally;

static void on_done(int status, rd_http_res_t *res, const rd_err *err, void *ud) {
  tally *t = ud;
  t->calls++;
  t->last_code = status;
  if (status == 0) {
    t->ok++;
    t->status_sum += (int)res->status;
    rd_http_res_free(res);
  } else {
    snprintf(t->last_msg, sizeof t->last_msg, "%s", err->msg);
  }
}

static void close_all(uv_loop_t *loop, rd_http_t *h) {
  rd_http_close(h);
  uv_run(loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(uv_loop_close(loop), 0); /* no handle left behind */
}

RD_TEST(http_many_concurrent_requests) {
  const char *base = rd_test_server();
  ASSERT(base != NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  rd_http_t *h;
  ASSERT_OK(rd_http_new(&h, &loop, NULL, NULL));
  char url[256];
  snprintf(url, sizeof url, "%s/ok", base);
  tally t = {0};
  for (int i = 0; i < 300; i++) {
    rd_http_req_t req = {.url = url};
    ASSERT_OK(rd_http_start(h, &req, on_done, &t, NULL, NULL));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(t.calls, 300);
  ASSERT_INT_EQ(t.ok, 300);
  ASSERT_INT_EQ(t.status_sum, 300 * 200);
  close_all(&loop, h);
}

RD_TEST(http_errors_are_classified) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rd_http_t *h;
  ASSERT_OK(rd_http_new(&h, &loop, NULL, NULL));
  tally t = {0};
  rd_http_req_t req = {.url = "http://127.0.0.1:1/nothing"};
  ASSERT_OK(rd_http_start(h, &req, on_done, &t, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(t.calls, 1);
  ASSERT_INT_EQ(t.last_code, RD_ECONNECT);
  ASSERT_CONTAINS(t.last_msg, "http: GET http://127.0.0.1:1/nothing");

  char url[256];
  snprintf(url, sizeof url, "%s/stall", rd_test_server());
  rd_http_req_t slow = {.url = url, .timeout_ms = 100};
  ASSERT_OK(rd_http_start(h, &slow, on_done, &t, NULL, NULL));
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(t.calls, 2);
  ASSERT_INT_EQ(t.last_code, RD_ETIMEOUT);
  close_all(&loop, h);
}

RD_TEST(http_start_rejects_bad_requests) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  rd_http_t *h;
  ASSERT_OK(rd_http_new(&h, &loop, NULL, NULL));
  rd_err err = {0};
  tally t = {0};
  rd_http_req_t req = {.url = NULL};
  ASSERT_INT_EQ(rd_http_start(h, &req, on_done, &t, NULL, &err), RD_EINVALID);
  ASSERT_CONTAINS(err.msg, "missing url");
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_INT_EQ(t.calls, 0); /* a failed start never calls back */
  close_all(&loop, h);
}

RD_TEST(http_cancel_in_flight_and_close) {
  char url[256];
  snprintf(url, sizeof url, "%s/stall", rd_test_server());
  uv_loop_t loop;
  uv_loop_init(&loop);
  rd_http_t *h;
  ASSERT_OK(rd_http_new(&h, &loop, NULL, NULL));
  tally t = {0};
  rd_http_op_t *op;
  rd_http_req_t req = {.url = url};
  ASSERT_OK(rd_http_start(h, &req, on_done, &t, &op, NULL));
  ASSERT_OK(rd_http_start(h, &req, on_done, &t, NULL, NULL));
  uv_run(&loop, UV_RUN_NOWAIT);
  rd_http_cancel(op);
  /* closing with one request still in flight cancels it without a callback */
  close_all(&loop, h);
  ASSERT_INT_EQ(t.calls, 0);
}

/* Internals shared by multi.c (loop glue) and request.c (one request). */
#ifndef RD_HTTP_HTTP_H
#define RD_HTTP_HTTP_H

#include "core/buf.h"
#include "redrive.h"

#include "http/curl_dl.h"

struct rd_http_op {
  rd_http_t *h;
  CURL *easy;
  struct curl_slist *hdrs;
  rd_buf body;
  rd_http_header_t *headers;
  size_t nheaders, capheaders;
  rd_http_cb cb;
  void *ud;
  char method[16];
  char url[256];           /* redacted, for messages */
  long timeout_ms;
  uint64_t max_body;       /* decoded body limit, enforced in on_body */
  size_t header_bytes;     /* header lines seen, every response of the request */
  int too_large;           /* 0, or which limit aborted the transfer */
  char errbuf[CURL_ERROR_SIZE];
  rd_http_op_t *prev, *next;
};

CURL *rd__http_easy_get(rd_http_t *h);
void rd__http_easy_put(rd_http_t *h, CURL *e);
int rd__http_add(rd_http_t *h, rd_http_op_t *op, CURL *e);
void rd__http_unlink(rd_http_t *h, rd_http_op_t *op);
void rd__http_remove(rd_http_t *h, CURL *e);
/* The transfer ended with rc: build the result, call back, free op. */
void rd__http_op_finish(rd_http_op_t *op, CURLcode rc);

#endif

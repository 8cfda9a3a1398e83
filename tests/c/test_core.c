/* Error codes, messages and buffers. */
#include "core/buf.h"
#include "redrive.h"
#include "test.h"

RD_TEST(err_names_are_stable) {
  ASSERT_STR_EQ(rd_err_name(RD_ENOT_FOUND), "not_found");
  ASSERT_STR_EQ(rd_err_name(RD_EINVALID), "invalid");
  ASSERT_STR_EQ(rd_err_name(RD_ETIMEOUT), "timeout");
  ASSERT_STR_EQ(rd_err_name(RD_ECONNECT), "connect");
  ASSERT_STR_EQ(rd_err_name(RD_ETLS), "tls");
  ASSERT_STR_EQ(rd_err_name(RD_EUNSUPPORTED), "unsupported");
  ASSERT_STR_EQ(rd_err_name(0), "ok");
  ASSERT_STR_EQ(rd_err_name(-999), "unknown");
  ASSERT_STR_EQ(rd_strerror(RD_ECONFLICT), "conflict");
}

RD_TEST(err_set_formats_and_returns_code) {
  rd_err e = {0};
  ASSERT_INT_EQ(rd_err_set(&e, RD_EIO, "store: cannot open '%s'", "/x"), RD_EIO);
  ASSERT_INT_EQ(e.code, RD_EIO);
  ASSERT_STR_EQ(e.msg, "store: cannot open '/x'");
  ASSERT_INT_EQ(rd_err_set(NULL, RD_EIO, "ignored"), RD_EIO);
  rd_err_clear(&e);
  ASSERT_INT_EQ(e.code, 0);
  ASSERT_STR_EQ(e.msg, "");
}

RD_TEST(buf_grows_and_steals) {
  rd_buf b = {0};
  for (int i = 0; i < 1000; i++) ASSERT_OK(rd__buf_printf(&b, "%d,", i));
  ASSERT(b.len > 3000);
  ASSERT(strncmp(b.data, "0,1,2,", 6) == 0);
  size_t len;
  char *p = rd__buf_steal(&b, &len);
  ASSERT_INT_EQ(strlen(p), len);
  ASSERT(b.data == NULL && b.len == 0);
  free(p);
  rd__buf_free(&b);
}

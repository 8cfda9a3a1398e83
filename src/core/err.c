/* Error codes and rd_err: the one place codes get their names. */
#include "redrive.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rd_err_name(int code) {
  switch (code) {
  case 0: return "ok";
#define XX(c, name, lname, msg) case RD_E##name: return lname;
    RD_ERR_MAP(XX)
#undef XX
  default: return "unknown";
  }
}

const char *rd_strerror(int code) {
  switch (code) {
  case 0: return "success";
#define XX(c, name, lname, msg) case RD_E##name: return msg;
    RD_ERR_MAP(XX)
#undef XX
  default: return "unknown error";
  }
}

int rd_err_set(rd_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void rd_err_clear(rd_err *err) {
  if (err) memset(err, 0, sizeof *err);
}

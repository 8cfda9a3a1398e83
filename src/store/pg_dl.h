/*
 * libpq, loaded on first use, as libcurl is (src/http/curl_dl.h): linking it
 * would make every start of the command map libpq and the ~25 libraries it
 * needs (OpenSSL, Kerberos, LDAP), which a SQLite user never uses. The
 * PostgreSQL backend calls libpq through this table, filled by
 * dlopen("libpq.so.5") when the first PostgreSQL store is opened.
 *
 * Include this instead of <libpq-fe.h>: the macros below make the usual PQ*
 * names resolve to the table, so call sites read as plain libpq.
 */
#ifndef RD_STORE_PG_DL_H
#define RD_STORE_PG_DL_H

#include <libpq-fe.h>

#include "redrive.h"

#define RD__PQ_FUNCS(XX)                                                          \
  XX(PQconninfoOption *, conninfoParse, (const char *, char **))                  \
  XX(void, conninfoFree, (PQconninfoOption *))                                    \
  XX(void, freemem, (void *))                                                     \
  XX(PGconn *, connectStartParams, (const char *const *, const char *const *, int)) \
  XX(PostgresPollingStatusType, connectPoll, (PGconn *))                          \
  XX(ConnStatusType, status, (const PGconn *))                                    \
  XX(char *, errorMessage, (const PGconn *))                                      \
  XX(int, socket, (const PGconn *))                                               \
  XX(void, finish, (PGconn *))                                                    \
  XX(int, setnonblocking, (PGconn *, int))                                        \
  XX(PQnoticeProcessor, setNoticeProcessor, (PGconn *, PQnoticeProcessor, void *)) \
  XX(int, connectionNeedsPassword, (const PGconn *))                              \
  XX(int, sendQuery, (PGconn *, const char *))                                    \
  XX(int, flush, (PGconn *))                                                      \
  XX(int, consumeInput, (PGconn *))                                               \
  XX(int, isBusy, (PGconn *))                                                     \
  XX(PGresult *, getResult, (PGconn *))                                           \
  XX(ExecStatusType, resultStatus, (const PGresult *))                            \
  XX(void, clear, (PGresult *))                                                   \
  XX(char *, resultErrorField, (const PGresult *, int))                           \
  XX(int, ntuples, (const PGresult *))                                            \
  XX(int, nfields, (const PGresult *))                                            \
  XX(int, getisnull, (const PGresult *, int, int))                                \
  XX(char *, getvalue, (const PGresult *, int, int))                              \
  XX(char *, cmdTuples, (PGresult *))                                             \
  XX(int, enterPipelineMode, (PGconn *))                                          \
  XX(int, pipelineSync, (PGconn *))                                               \
  XX(int, sendPrepare, (PGconn *, const char *, const char *, int, const Oid *))  \
  XX(int, sendQueryPrepared,                                                      \
     (PGconn *, const char *, int, const char *const *, const int *, const int *, int)) \
  XX(PGnotify *, notifies, (PGconn *))

typedef struct rd__pq_api {
#define RD__PQ_FIELD(ret, name, args) ret(*name) args;
  RD__PQ_FUNCS(RD__PQ_FIELD)
#undef RD__PQ_FIELD
} rd__pq_api;

extern rd__pq_api rd__pq;

/* Load libpq (once; thread-safe). 0, or RD_EUNSUPPORTED with a message
 * naming the library and the package to install. */
int rd__pq_load(rd_err *err);

#define PQconninfoParse rd__pq.conninfoParse
#define PQconninfoFree rd__pq.conninfoFree
#define PQfreemem rd__pq.freemem
#define PQconnectStartParams rd__pq.connectStartParams
#define PQconnectPoll rd__pq.connectPoll
#define PQstatus rd__pq.status
#define PQerrorMessage rd__pq.errorMessage
#define PQsocket rd__pq.socket
#define PQfinish rd__pq.finish
#define PQsetnonblocking rd__pq.setnonblocking
#define PQsetNoticeProcessor rd__pq.setNoticeProcessor
#define PQconnectionNeedsPassword rd__pq.connectionNeedsPassword
#define PQsendQuery rd__pq.sendQuery
#define PQflush rd__pq.flush
#define PQconsumeInput rd__pq.consumeInput
#define PQisBusy rd__pq.isBusy
#define PQgetResult rd__pq.getResult
#define PQresultStatus rd__pq.resultStatus
#define PQclear rd__pq.clear
#define PQresultErrorField rd__pq.resultErrorField
#define PQntuples rd__pq.ntuples
#define PQnfields rd__pq.nfields
#define PQgetisnull rd__pq.getisnull
#define PQgetvalue rd__pq.getvalue
#define PQcmdTuples rd__pq.cmdTuples
#define PQenterPipelineMode rd__pq.enterPipelineMode
#define PQpipelineSync rd__pq.pipelineSync
#define PQsendPrepare rd__pq.sendPrepare
#define PQsendQueryPrepared rd__pq.sendQueryPrepared
#define PQnotifies rd__pq.notifies

#endif

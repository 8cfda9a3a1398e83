/* The migrations of both backends (schema.c). */
#ifndef RD_STORE_SCHEMA_H
#define RD_STORE_SCHEMA_H

typedef struct rd__migration {
  const char *sqlite;  /* runs inside the opening transaction */
  const char *pg;      /* runs inside the migration transaction, lock held */
} rd__migration;

/* rd__migrations[i] takes the schema from version i to i + 1. */
extern const rd__migration rd__migrations[];
extern const int rd__schema_version;

/* Who may record a job's retry (the settle of rd_store_retry_done): beside
 * the holder of the item's lease, the runner of job JOB whose lease owner is
 * OWNER ("job:JOB:<runner>") when the ledger row says that runner started the
 * item (or settled it in doubt after it stalled), while the lease is free or
 * another runner's of the job: among a job's runners the started mark, not
 * the item lease, decides who acts (a stalled runner's expired lease may be
 * claimed by a sibling, which then does not act); a lease outside the job
 * still refuses it. JOB, OWNER, ID: SQL expressions (parameters). */
#define RD__SQL_JOB_HELD(OWNER, JOB, ID)                                                   \
  "(" JOB " IS NOT NULL AND (lease_owner IS NULL OR substr(lease_owner, 1,"                  \
  " length('job:' || " JOB " || ':')) = 'job:' || " JOB " || ':') AND EXISTS (SELECT 1"       \
  " FROM job_item j WHERE j.job_id = " JOB " AND j.item_id = " ID                           \
  " AND 'job:' || j.job_id || ':' || j.runner = " OWNER                                     \
  " AND (j.outcome = 'started' OR j.code = 'in_doubt')))"

#endif

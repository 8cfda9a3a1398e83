# Sourced by tests/run: starts a real PostgreSQL server for the store suites'
# PostgreSQL half (one suite, two backends). A fresh cluster in a temporary
# directory (initdb), listening only on a Unix socket in that directory (no
# TCP port), trust authentication for its own user, fsync off (a test server
# need not survive a power cut; what the store does is the same). As root it
# runs as an unprivileged user (postgres if the package made one, else
# nobody), which owns the directory. pg_ctl -w returns once the server
# accepts connections. Exports:
#   RD_TEST_PG       postgresql:///redrive?host=DIR&user=redrive (a database)
#   RD_TEST_PG_PSQL  psql with the socket and user set, for the tests' own SQL
#   RD_TEST_PG_PWUSER, RD_TEST_PG_PASSWORD  a role that must give a password
# and appends the server's stop and the directory's removal to EXTRA_CLEANUP.
# Without PostgreSQL (no initdb: scripts/deps --test installs it) nothing is
# exported and tests/run counts the PostgreSQL half as skipped.
rd_pg_start() {
  local bin dir as=() user
  bin=${RD_PGBIN:-}
  if [ -z "$bin" ]; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do bin=$d; done
  fi
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || ! command -v psql >/dev/null; then
    echo "pg: PostgreSQL not installed (scripts/deps --test); its half of the store suites is skipped" >&2
    return 0
  fi
  dir=$(mktemp -d /tmp/rd-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    user=nobody
    id postgres >/dev/null 2>&1 && user=postgres
    chown "$user" "$dir"
    as=(runuser -u "$user" --)
  fi
  chmod 700 "$dir"
  if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -U redrive -A trust -E UTF8 --locale=C \
         --no-sync --no-instructions >"$dir/initdb.log" 2>&1; then
    echo "pg: initdb failed (see below); the PostgreSQL half is skipped" >&2
    tail -5 "$dir/initdb.log" >&2
    rm -rf "$dir"
    return 0
  fi
  # one role signs in with a password (SCRAM), for the tests of password
  # handling; every other local connection is trusted
  printf 'local all rdpw scram-sha-256\nlocal all all trust\n' >"$dir/data/pg_hba.conf"
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
         -o "-c listen_addresses='' -k $dir -c fsync=off -c full_page_writes=off -c max_connections=200" \
         start >/dev/null 2>&1; then
    echo "pg: the server did not start; the PostgreSQL half is skipped" >&2
    tail -5 "$dir/server.log" >&2
    rm -rf "$dir"
    return 0
  fi
  EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }${as[*]} '$bin/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null 2>&1; rm -rf '$dir'"
  export RD_TEST_PG_PSQL="psql -X -q -v ON_ERROR_STOP=1 -h $dir -U redrive"
  if ! $RD_TEST_PG_PSQL -d postgres -c "CREATE DATABASE redrive" \
         -c "CREATE ROLE rdpw LOGIN PASSWORD 'rdpw-Secret-4711'" >/dev/null; then
    echo "pg: cannot create the test database; the PostgreSQL half is skipped" >&2
    unset RD_TEST_PG_PSQL
    return 0
  fi
  export RD_TEST_PG="postgresql:///redrive?host=$dir&user=redrive"
  export RD_TEST_PG_PWUSER=rdpw RD_TEST_PG_PASSWORD=rdpw-Secret-4711
  export RD_TEST_PG_PSQL="$RD_TEST_PG_PSQL -d redrive"
}
rd_pg_start

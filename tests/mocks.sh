# Sourced by tests/run: starts the four Prism contract mocks of the remote
# sources (shared/contracts/*.openapi.json) on free loopback ports, waits
# until they listen, exports RD_MOCK_MAKE / RD_MOCK_SAILPOINT / RD_MOCK_KAIZEN
# / RD_MOCK_N8N and appends their kill to EXTRA_CLEANUP. Without Prism
# (scripts/prism installs it) nothing is exported and the mock-based tests
# report themselves skipped. Prism is looked up in $PRISM, then the cache of
# scripts/prism, then PATH.
rd_mocks_start() {
  local prism=${PRISM:-} d
  if [ -z "$prism" ]; then
    for d in "${REDRIVE_PRISM_DIR:-}" /var/cache/redrive-prism "${XDG_CACHE_HOME:-$HOME/.cache}/redrive-prism"; do
      [ -n "$d" ] && [ -x "$d/node_modules/.bin/prism" ] && { prism=$d/node_modules/.bin/prism; break; }
    done
  fi
  [ -z "$prism" ] && prism=$(command -v prism 2>/dev/null || true)
  if [ -z "$prism" ] || [ ! -d "${RD_SHARED:-}/contracts" ]; then
    echo "mocks: Prism or shared/contracts not found; contract tests will be skipped" >&2
    return 0
  fi
  local logdir pids="" name file port var i ok
  logdir=$(mktemp -d /tmp/rd-mocks.XXXXXX)
  for name in make:make-dlq sailpoint:sailpoint-workflows kaizen:kaizen-executions n8n:n8n-executions; do
    file=$RD_SHARED/contracts/${name#*:}.openapi.json
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    "$prism" mock -h 127.0.0.1 -p "$port" "$file" >"$logdir/${name%%:*}.log" 2>&1 &
    pids="$pids $!"
    var=RD_MOCK_$(echo "${name%%:*}" | tr a-z A-Z)
    eval "$var=http://127.0.0.1:$port"
  done
  EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }kill$pids 2>/dev/null; rm -rf '$logdir'"
  for var in RD_MOCK_MAKE RD_MOCK_SAILPOINT RD_MOCK_KAIZEN RD_MOCK_N8N; do
    ok=0
    for i in $(seq 150); do
      if curl -s -o /dev/null "${!var}/" 2>/dev/null; then ok=1; break; fi
      sleep 0.1
    done
    if [ $ok = 1 ]; then export "$var"; else
      echo "mocks: $var did not start (see $logdir)" >&2; unset "$var"
    fi
  done
}
rd_mocks_start

# Sourced by tests/run: starts the four Prism contract mocks of the remote
# sources (shared/contracts/*.openapi.json) on free loopback ports, waits
# until they listen, exports RD_MOCK_MAKE / RD_MOCK_SAILPOINT / RD_MOCK_KAIZEN
# / RD_MOCK_N8N and appends their kill to EXTRA_CLEANUP. Without Prism
# (scripts/prism installs it) nothing is exported and the mock-based tests
# report each case skipped with the reason in RD_MOCKS_WHY (a mock that did
# not start: RD_MOCK_<NAME>_WHY). Prism is looked up in $PRISM, then the caches
# scripts/prism may use ($REDRIVE_PRISM_DIR, /var/cache/redrive-prism,
# ~/.cache/redrive-prism, build/prism, /tmp/redrive-prism), then PATH.
rd_mocks_start() {
  local prism=${PRISM:-} d
  if [ -z "$prism" ]; then
    for d in "${REDRIVE_PRISM_DIR:-}" /var/cache/redrive-prism "${XDG_CACHE_HOME:-$HOME/.cache}/redrive-prism" \
             "${RD_ROOT:-.}/build/prism" /tmp/redrive-prism; do
      [ -n "$d" ] && [ -x "$d/node_modules/.bin/prism" ] && { prism=$d/node_modules/.bin/prism; break; }
    done
  fi
  [ -z "$prism" ] && prism=$(command -v prism 2>/dev/null || true)
  if [ -z "$prism" ]; then
    export RD_MOCKS_WHY="Prism not installed: run scripts/prism"
  elif [ ! -d "${RD_SHARED:-}/contracts" ]; then
    export RD_MOCKS_WHY="the API contracts are missing: no ${RD_SHARED:-\$RD_SHARED}/contracts"
  fi
  if [ -n "${RD_MOCKS_WHY:-}" ]; then
    echo "mocks: $RD_MOCKS_WHY; contract tests will be skipped" >&2
    return 0
  fi
  local logdir name file var i ok attempt pid
  local -A pid_of=() file_of=()
  logdir=$(mktemp -d /tmp/rd-mocks.XXXXXX)
  rd_mock_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
  }
  rd_mock_launch() { # NAME FILE: start one mock on a fresh port
    local port
    port=$(rd_mock_port)
    "$prism" mock -h 127.0.0.1 -p "$port" "$2" >"$logdir/$1.log" 2>&1 &
    pid_of[$1]=$!
    eval "RD_MOCK_$(echo "$1" | tr a-z A-Z)=http://127.0.0.1:$port"
  }
  for name in make:make-dlq sailpoint:sailpoint-workflows kaizen:kaizen-executions n8n:n8n-executions; do
    file_of[${name%%:*}]=$RD_SHARED/contracts/${name#*:}.openapi.json
    rd_mock_launch "${name%%:*}" "${file_of[${name%%:*}]}"
  done
  for name in make sailpoint kaizen n8n; do
    var=RD_MOCK_$(echo "$name" | tr a-z A-Z)
    ok=0
    for attempt in 1 2; do
      for i in $(seq 200); do
        if curl -s -o /dev/null "${!var}/" 2>/dev/null; then ok=1; break; fi
        kill -0 "${pid_of[$name]}" 2>/dev/null || break # died (e.g. the port was taken): start again
        sleep 0.1
      done
      [ $ok = 1 ] && break
      kill "${pid_of[$name]}" 2>/dev/null
      [ $attempt = 1 ] && rd_mock_launch "$name" "${file_of[$name]}"
    done
    if [ $ok = 1 ]; then export "$var"; else
      echo "mocks: $var did not start (see $logdir/$name.log)" >&2; unset "$var"
      export "${var}_WHY=the Prism mock of $name did not start"
    fi
  done
  EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }kill ${pid_of[*]} 2>/dev/null; rm -rf '$logdir'"
  unset -f rd_mock_port rd_mock_launch
}
rd_mocks_start

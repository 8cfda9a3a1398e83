#!/usr/bin/env bash
# TLS from Lua against a real TLS server started here (openssl s_server, a
# self-signed certificate made for the test): rd.http.request verifies
# certificates unless told `verify = false`, and a refused certificate is
# the code "tls".
set -u
cd "$(dirname "$0")/../.."
R=${REDRIVE:-$PWD/build/redrive}
T=$(mktemp -d /tmp/rd-tls.XXXXXX)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; rm -rf "$T"' EXIT
export REDRIVE_DB=$T/default.db XDG_CONFIG_HOME=$T/config
. tests/sh/cli_lib.sh

if ! command -v openssl >/dev/null 2>&1; then
  skip_all "openssl is not installed: apt-get install openssl"; URL= OUT=
else
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/key.pem" \
  -out "$T/cert.pem" -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1
# s_server says "ACCEPT host:port" once it listens: read that line from a
# FIFO (a blocking read, no sleeping)
mkfifo "$T/fifo"
openssl s_server -accept 127.0.0.1:0 -cert "$T/cert.pem" -key "$T/key.pem" -www \
  >"$T/fifo" 2>/dev/null &
SPID=$!
exec 3<"$T/fifo"
port=
while read -r -t "${RD_TEST_DEADLINE:-120}" line <&3; do
  case $line in ACCEPT*) port=${line##*:}; break ;; esac
done
[ -n "$port" ] || { echo "FAIL tls: openssl s_server did not start"; echo "0 passed, 1 failed"; exit 1; }
# keep reading its output so that it never blocks on a full pipe
cat <&3 >/dev/null &
URL=https://127.0.0.1:$port/
fi

check "tls-1.1 the default verifies: nil, msg, \"tls\"" 0 "$R" --json -e "
  local r, msg, code = rd.http.request{url = '$URL'}
  return {r = r ~= nil, msg = msg, code = code}"
has "tls-1.2 ... code tls" "$(jq -r .code <<<"$OUT")" "tls"
has "tls-1.3 ... the message names the host" "$(jq -r .msg <<<"$OUT")" "127.0.0.1"
check "tls-1.4 verify = true is the same" 0 "$R" -e "
  local r, _, code = rd.http.request{url = '$URL', verify = true}
  assert(r == nil and code == 'tls', code)"
check "tls-1.5 verify = false reaches the server" 0 "$R" --json -e "
  local r = assert(rd.http.request{url = '$URL', verify = false})
  return r.status"
has "tls-1.6 ... status 200" "$OUT" "200"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# `make run`: the desktop app against a local sandbox taxd with fresh data in .demo/app.
# The first-run screen asks for the server and token printed below; taxd stops when the
# window closes (or on Ctrl+C). Under Xvfb or without a display, run it with xvfb-run.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/debug
DEMO=.demo/app
ADDR=${KAIPIAO_DEMO_ADDR:-127.0.0.1:8787}
TOKEN=demo-token

mkdir -p .demo && rm -rf "$DEMO" && mkdir -p "$DEMO"
: > "$DEMO/taxd.out"
$BIN/taxd --listen "$ADDR" --db "$DEMO/taxd.db" --enrollment-token "$TOKEN" \
  --offline-hours 72 --offline-amount-cap 50000.00 --single-invoice-cap 20000.00 \
  >> "$DEMO/taxd.out" 2> "$DEMO/taxd.err" &
TAXD=$!
stop() { kill "$TAXD" 2>/dev/null || true; wait "$TAXD" 2>/dev/null || true; }
trap stop EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q listening "$DEMO/taxd.out" 2>/dev/null && break
  kill -0 "$TAXD" 2>/dev/null || { cat "$DEMO/taxd.err"; echo "taxd did not start"; exit 1; }
  sleep 0.1
done
URL=$(grep -o 'http://[0-9.:]*' "$DEMO/taxd.out" | head -1)
cat <<MSG
Sandbox tax authority: $URL   enrolment token: $TOKEN
Data directory: $DEMO/shop (KAIPIAO_DATA). In the first-run screen use the address and
token above. To see the outage banner: curl -X PUT $URL/admin/faults -d '{"outage": true}'
MSG
KAIPIAO_DATA="$PWD/$DEMO/shop" $BIN/kaipiao-app

#!/usr/bin/env bash
# `make run`: the desktop app against a local sandbox taxd with fresh data in .demo/app,
# opened on a demo shop already set up and enrolled (with the CLI, against that taxd) and
# unlocked by KAIPIAO_PASSPHRASE, so issuing starts at once. An installed app, without
# KAIPIAO_DATA, starts at the real first-run setup instead. taxd stops when the window
# closes (or on Ctrl+C). Under Xvfb or without a display, run it with xvfb-run.
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
export KAIPIAO_DATA="$PWD/$DEMO/shop"
export KAIPIAO_PASSPHRASE=${KAIPIAO_PASSPHRASE:-demo-passphrase-not-for-real-use}
$BIN/kaipiao init --seller-name "杭州小店贸易有限公司" --seller-tax-id 91330100716105852F \
  --seller-address "杭州市西湖区文三路 100 号 0571-88886666" \
  --seller-bank "招商银行杭州分行 571900000000001" --device-name "前台收银 1" >/dev/null
$BIN/kaipiao enroll --server "$URL" --token "$TOKEN" >/dev/null
cat <<MSG
Sandbox tax authority: $URL   enrolment token: $TOKEN
Demo shop: $DEMO/shop (KAIPIAO_DATA), set up, enrolled and unlocked (KAIPIAO_PASSPHRASE):
type a buyer and a line and press Ctrl+Enter. PDFs: target/debug/kaipiao pdf NUMBER --out F
To see the outage banner: curl -X PUT $URL/admin/faults -d '{"outage": true}'
MSG
$BIN/kaipiao-app

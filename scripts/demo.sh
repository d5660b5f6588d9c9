#!/usr/bin/env bash
# `make run`: the whole Kaipiao story in a terminal, against a local sandbox taxd.
# A shop sets up, the authority goes down, the clerk keeps issuing, the authority comes
# back, one sync files everything exactly once, and the ledger verifies independently.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/debug
DEMO=.demo
ADDR=127.0.0.1:8787
URL=http://$ADDR
export KAIPIAO_DATA=$DEMO/shop
export KAIPIAO_PASSPHRASE=${KAIPIAO_PASSPHRASE:-demo-passphrase-not-for-real-use}

say()  { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }
run()  { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

stop_taxd() {
  if [ -f $DEMO/taxd.pid ]; then
    kill "$(cat $DEMO/taxd.pid)" 2>/dev/null || true
    while kill -0 "$(cat $DEMO/taxd.pid)" 2>/dev/null; do sleep 0.1; done
    rm -f $DEMO/taxd.pid
  fi
}

start_taxd() {
  : > $DEMO/taxd.out
  $BIN/taxd --listen $ADDR --db $DEMO/taxd.db --enrollment-token demo-token \
    --offline-hours 72 --offline-amount-cap 50000.00 --single-invoice-cap 20000.00 \
    --request-log $DEMO/taxd-requests.jsonl >> $DEMO/taxd.out 2>> $DEMO/taxd.err &
  echo $! > $DEMO/taxd.pid
  # Wait for the line taxd prints once it is listening.
  for _ in $(seq 1 100); do
    grep -q "listening" $DEMO/taxd.out 2>/dev/null && { cat $DEMO/taxd.out; return 0; }
    kill -0 "$(cat $DEMO/taxd.pid)" 2>/dev/null || { cat $DEMO/taxd.err; echo "taxd did not start"; exit 1; }
    sleep 0.1
  done
  echo "taxd did not report listening"; exit 1
}

trap stop_taxd EXIT
stop_taxd
rm -rf $DEMO && mkdir -p $DEMO

say "1. The sandbox tax authority (taxd) starts on $URL with fresh data"
start_taxd

say "2. The shop sets up this computer as an invoicing device and enrols it"
run $BIN/kaipiao init --seller-name "杭州小店贸易有限公司" --seller-tax-id 91330100716105852F \
  --seller-address "杭州市西湖区文三路 100 号" --device-name "前台收银 1"
run $BIN/kaipiao enroll --server $URL --token demo-token

say "3. The authority goes down (like the 2023 outage)"
stop_taxd
echo "taxd stopped."

say "4. The clerk keeps issuing invoices offline"
run $BIN/kaipiao issue --file scripts/demo-drafts/ordinary.json > /dev/null
run $BIN/kaipiao issue --file scripts/demo-drafts/special.json > /dev/null
run $BIN/kaipiao issue --file scripts/demo-drafts/inclusive.json > /dev/null
FIRST=$($BIN/kaipiao list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["number"])')
sed "s/ORIGINAL/$FIRST/" scripts/demo-drafts/credit.json > $DEMO/credit.json
run $BIN/kaipiao issue --file $DEMO/credit.json > /dev/null

say "5. A bad draft is refused, naming the field; nothing is written"
run $BIN/kaipiao issue --file scripts/demo-drafts/bad-rate.json || echo "(exit $? — refused as it should be)"

say "6. What the clerk sees: the ledger, one invoice, the offline limits"
run $BIN/kaipiao list
run $BIN/kaipiao show "$FIRST"
run $BIN/kaipiao status

say "7. Sync while the authority is down: nothing is lost, the work waits (exit 3)"
run $BIN/kaipiao sync || echo "(exit $? — the authority is unreachable; invoices stay pending)"

say "8. The authority comes back; one sync files everything exactly once"
start_taxd
run $BIN/kaipiao sync
run $BIN/kaipiao list
run $BIN/kaipiao status

say "9. Audit: the ledger verifies, and an independent verifier checks the export"
run $BIN/kaipiao verify
run $BIN/kaipiao export --out $DEMO/export.jsonl
KEY=$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["public_key"])' $URL/v1/authority)
run python3 tools/verify_export.py $DEMO/export.jsonl --authority-key "$KEY"

say "Done. The demo data is in $DEMO/ (shop ledger, taxd database, request log)."

#!/usr/bin/env bash
# `make run`: localstripe on 127.0.0.1:$LOCALSTRIPE_PORT, a migrated SQLite database with the demo
# price list, a demo invoice to pay, and the service under gunicorn on 127.0.0.1:$PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-5000}"
LOCALSTRIPE_PORT="${LOCALSTRIPE_PORT:-8420}"
BIN=.venv/bin
mkdir -p instance

# Development settings; anything already set in the environment wins.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
export STRIPE_SECRET_KEY="${STRIPE_SECRET_KEY:-sk_test_localstripe}"
export STRIPE_PUBLISHABLE_KEY="${STRIPE_PUBLISHABLE_KEY:-pk_test_localstripe}"
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_localstripe_dev}"
export STRIPE_API_BASE="${STRIPE_API_BASE:-http://127.0.0.1:$LOCALSTRIPE_PORT}"
export STRIPE_JS_URL="${STRIPE_JS_URL:-http://127.0.0.1:$LOCALSTRIPE_PORT/js.stripe.com/v3/}"
export BOOKING_WEBHOOK_SECRET="${BOOKING_WEBHOOK_SECRET:-whsec_booking_dev}"
export BILLING_INSECURE_COOKIES=1  # plain http on 127.0.0.1

"$BIN/python" -m devtools.localstripe_dev --port "$LOCALSTRIPE_PORT" --store instance/localstripe.pickle &
LOCALSTRIPE_PID=$!
WORKER_PID=
trap 'kill $LOCALSTRIPE_PID $WORKER_PID 2>/dev/null || true' EXIT INT TERM
"$BIN/python" - "$STRIPE_API_BASE" "http://127.0.0.1:$PORT/api/v1/webhooks/stripe" "$STRIPE_WEBHOOK_SECRET" <<'PY'
import json, sys, time, urllib.request
base, url, secret = sys.argv[1:]
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/js.stripe.com/v3/", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"localstripe did not start at {base}")
# localstripe signs and sends its events here (its /_config/webhooks API).
urllib.request.urlopen(urllib.request.Request(base + "/_config/webhooks/billing", method="POST",
    data=json.dumps({"url": url, "secret": secret}).encode(), headers={"Content-Type": "application/json"}))
PY

"$BIN/flask" --app wsgi db upgrade
"$BIN/flask" --app wsgi billing seed-demo
DEMO=$("$BIN/flask" --app wsgi billing demo-invoice | tail -n 1)
# The outbox worker: cancels stale PaymentIntents and sends refunds owed (one is enough on SQLite).
"$BIN/flask" --app wsgi billing worker >instance/worker.log 2>&1 &
WORKER_PID=$!

cat <<TXT

  Infusion Billing on http://127.0.0.1:$PORT/
    health:        http://127.0.0.1:$PORT/healthz
    API docs:      http://127.0.0.1:$PORT/api/docs
    staff login:   admin@clinic.example / demo-admin-password
    pay a demo invoice (card 4242 4242 4242 4242, any future date, any CVC):
                   $DEMO
    an API key:    $BIN/flask --app wsgi billing create-api-key NAME
    a booking:     BOOKING_WEBHOOK_SECRET=$BOOKING_WEBHOOK_SECRET $BIN/flask --app wsgi billing send-test-event infusion.completed
    Stripe (fake): localstripe on $STRIPE_API_BASE
    outbox worker: running; its log is instance/worker.log

TXT
"$BIN/gunicorn" --workers 2 --bind "127.0.0.1:$PORT" --no-control-socket wsgi:app

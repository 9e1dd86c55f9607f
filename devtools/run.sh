#!/usr/bin/env bash
# `make run`: localstripe on 127.0.0.1:$LOCALSTRIPE_PORT, a migrated SQLite database with the demo
# price list, a demo invoice to pay, and the service under gunicorn on 127.0.0.1:$PORT.
# One line per step; each step's own output goes to instance/run.log (shown if it fails).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-5000}"
LOCALSTRIPE_PORT="${LOCALSTRIPE_PORT:-8420}"
MAIL_PORT="${MAIL_PORT:-8025}"
BIN=.venv/bin
mkdir -p instance
LOG=instance/run.log
: >"$LOG"

step() { echo "== $*"; }
# Run a step's command with its output in $LOG; on failure, show the end of it and stop.
quietly() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "   failed: $*; the end of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}

# Development settings; anything already set in the environment wins.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
export STRIPE_SECRET_KEY="${STRIPE_SECRET_KEY:-sk_test_localstripe}"
export STRIPE_PUBLISHABLE_KEY="${STRIPE_PUBLISHABLE_KEY:-pk_test_localstripe}"
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_localstripe_dev}"
export STRIPE_API_BASE="${STRIPE_API_BASE:-http://127.0.0.1:$LOCALSTRIPE_PORT}"
export STRIPE_JS_URL="${STRIPE_JS_URL:-http://127.0.0.1:$LOCALSTRIPE_PORT/js.stripe.com/v3/}"
export BOOKING_WEBHOOK_SECRET="${BOOKING_WEBHOOK_SECRET:-whsec_booking_dev}"
export SMTP_URL="${SMTP_URL:-smtp://127.0.0.1:$MAIL_PORT}"
export MAIL_FROM="${MAIL_FROM:-Riverside Clinic <billing@clinic.example>}"
export BILLING_INSECURE_COOKIES=1  # plain http on 127.0.0.1: the session cookie can't be Secure

step "starting localstripe (a fake Stripe) on $STRIPE_API_BASE; its log is instance/localstripe.log"
"$BIN/python" -m devtools.localstripe_dev --port "$LOCALSTRIPE_PORT" --store instance/localstripe.pickle \
  >instance/localstripe.log 2>&1 &
LOCALSTRIPE_PID=$!
WORKER_PID=
MAIL_PID=
trap 'kill $LOCALSTRIPE_PID $WORKER_PID $MAIL_PID 2>/dev/null || true' EXIT INT TERM
step "starting a local mail server on $SMTP_URL; what it catches goes to instance/mail/*.eml"
"$BIN/python" -m devtools.mailcatcher --port "$MAIL_PORT" --folder instance/mail >instance/mail.log 2>&1 &
MAIL_PID=$!
if ! "$BIN/python" -c "
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(('127.0.0.1', $MAIL_PORT), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)" || ! kill -0 "$MAIL_PID" 2>/dev/null; then
  echo "   failed: the mail server did not start on 127.0.0.1:$MAIL_PORT (MAIL_PORT=… to move it):" >&2
  tail -n 5 instance/mail.log >&2
  exit 1
fi
quietly "$BIN/python" - "$STRIPE_API_BASE" "http://127.0.0.1:$PORT/api/v1/webhooks/stripe" "$STRIPE_WEBHOOK_SECRET" <<'PY'
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

step "migrating the database"
quietly "$BIN/flask" --app wsgi db upgrade
step "loading the demo price list and staff user"
quietly "$BIN/flask" --app wsgi billing seed-demo
step "issuing a demo invoice"
if ! DEMO=$("$BIN/flask" --app wsgi billing demo-invoice 2>>"$LOG"); then
  echo "   failed: flask billing demo-invoice; the end of $LOG:" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi
DEMO=$(printf '%s\n' "$DEMO" | tail -n 1)  # its last line is the payment link
step "preparing the PDF fonts (the first time only: a few seconds)"
quietly "$BIN/python" -c "from wsgi import app; from billing.pdf import prepare_fonts; app.app_context().push(); prepare_fonts()"
# The outbox worker: emails, events, and Stripe's part (cancels stale PaymentIntents, sends refunds
# owed); one is enough on SQLite.
step "starting the outbox worker; its log is instance/worker.log"
"$BIN/flask" --app wsgi billing worker >instance/worker.log 2>&1 &
WORKER_PID=$!

cat <<TXT

  Infusion Billing on http://127.0.0.1:$PORT/
    staff sign-in: http://127.0.0.1:$PORT/login  as admin@clinic.example / demo-admin-password
    health:        http://127.0.0.1:$PORT/healthz
    API docs:      http://127.0.0.1:$PORT/api/docs
    OpenAPI:       http://127.0.0.1:$PORT/api/openapi.json
    pay a demo invoice (card 4242 4242 4242 4242, any future date, any CVC):
                   $DEMO
    an API key:    $BIN/flask --app wsgi billing create-api-key NAME
    a booking:     BOOKING_WEBHOOK_SECRET=$BOOKING_WEBHOOK_SECRET $BIN/flask --app wsgi billing send-test-event infusion.completed
    Stripe (fake): localstripe on $STRIPE_API_BASE
    outbox worker: running; its log is instance/worker.log
    emails:        caught by a local SMTP server ($SMTP_URL) into instance/mail/*.eml
    reminders:     $BIN/flask --app wsgi billing send-reminders [--on YYYY-MM-DD]

TXT
step "serving on http://127.0.0.1:$PORT/ (gunicorn, 2 workers; Ctrl-C stops everything)"
"$BIN/gunicorn" --workers 2 --bind "127.0.0.1:$PORT" --no-control-socket wsgi:app

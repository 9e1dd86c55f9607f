"""Messages (issue 12), on PostgreSQL:

- what the outbox costs finalize: the same concurrent finalize run with messages off, then on
  (an event and an invoice email queued in each finalize's transaction), alternated three
  times, medians compared (target: ≤ 10% slower);
- what one worker delivers: `flask billing worker` as its own process, against a local receiver
  that verifies every Standard Webhooks signature (target ≥ 200 events/s), and against a local
  aiosmtpd server (receipts: target ≥ 50 emails/s; invoice emails, each with its PDF, shown too).
Rates are taken from the rows' own sent_at times, first to last, so start-up is not counted.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, text

from .invoices import BODY, _api, _clone_drafts
from .pg import fresh_database
from .servers import ROOT, gunicorn, post_concurrently, service_env

DRAFTS = 1500
CLIENTS = 8
ROUNDS = 3
EVENTS = 3000
EMAILS = 1000
PDF_EMAILS = 200
SECRET = "whsec_" + base64.b64encode(b"bench-booking-notify-secret-32by").decode()


@contextmanager
def _receiver_and_mail() -> Iterator[tuple[object, object, str, str]]:
    sys.path.insert(0, str(ROOT))
    from devtools.mailcatcher import Catcher, start
    from tests.servers import BookingReceiver, free_port

    receiver = BookingReceiver(SECRET).start()
    catcher, port = Catcher(), free_port()
    controller = start(catcher, port)
    try:
        yield receiver, catcher, receiver.url, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
        receiver.stop()


def _messages_env(env: dict[str, str], notify_url: str, smtp_url: str) -> dict[str, str]:
    return {**env, "BOOKING_NOTIFY_URL": notify_url, "BOOKING_NOTIFY_SECRET": SECRET, "SMTP_URL": smtp_url,
            "PUBLIC_BASE_URL": "http://127.0.0.1:9", "MAIL_FROM": "Bench Clinic <billing@clinic.example>"}


def _finalize_rate(url: str, env: dict[str, str], key: str) -> float:
    with gunicorn("wsgi:app", env, "/healthz") as base:
        body = {**BODY, "patient": {**BODY["patient"], "email": "patient@example.org"}}
        template = _api(base, key, "POST", "/api/v1/invoices", body)["id"]
        _clone_drafts(url, template, DRAFTS - 1)
        engine = create_engine(url)
        with engine.connect() as conn:
            ids = list(conn.execute(text("SELECT id FROM invoices WHERE status = 'draft'")).scalars())
        engine.dispose()
        auth = {"Authorization": f"Bearer {key}"}
        seconds, statuses, _ = post_concurrently(base, [(f"/api/v1/invoices/{i}/finalize", b"", auth) for i in ids],
                                                 CLIENTS)
        assert all(s == 200 for s in statuses), set(statuses)
        return len(ids) / seconds


def finalize_overhead() -> None:
    with _receiver_and_mail() as (_, _, notify_url, smtp_url):
        rates: dict[str, list[float]] = {"off": [], "on": []}
        queued: list[int] = []
        for _ in range(ROUNDS):
            for mode in ("off", "on"):
                url = fresh_database()
                with service_env(url) as (env, key):
                    run_env = _messages_env(env, notify_url, smtp_url) if mode == "on" else env
                    rates[mode].append(_finalize_rate(url, run_env, key))
                    if mode == "on":
                        engine = create_engine(url)
                        with engine.connect() as conn:
                            queued.append(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one())
                        engine.dispose()
        off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
        print(f"finalize, PostgreSQL, {CLIENTS} clients, {DRAFTS} invoices, median of {ROUNDS} alternated runs: "
              f"messages off {off:,.0f}/s, on {on:,.0f}/s ({(off - on) / off * 100:+.1f}% slower; "
              f"{queued[-1]} messages queued per run)  (target ≤ 10%)")
        print(f"  runs off: {', '.join(f'{r:,.0f}' for r in rates['off'])}; on: {', '.join(f'{r:,.0f}' for r in rates['on'])}")


def _queue(url: str, rows: list[dict]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (id, kind, topic, invoice_seq, payload, status, attempts, available_at, created_at) "
            "VALUES (:id, :kind, :topic, :invoice_seq, CAST(:payload AS json), 'pending', 0, now(), now())"), rows)
    engine.dispose()


def _drain(url: str, env: dict[str, str], count: int) -> tuple[float, int]:
    """Start one worker, wait until `count` rows are sent (or 120 s), stop it; (rate from sent_at, failed)."""
    engine = create_engine(url)
    log = open(os.path.join(env["BILLING_INSTANCE_PATH"], "worker.log"), "w")
    worker = subprocess.Popen([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "billing", "worker",
                               "--poll", "0.2"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM outbox WHERE status <> 'pending'")).scalar_one()
            if done >= count:
                break
            time.sleep(0.5)
        with engine.connect() as conn:
            first, last, sent, failed = conn.execute(text(
                "SELECT min(sent_at), max(sent_at), count(sent_at), count(*) FILTER (WHERE status <> 'sent') "
                "FROM outbox")).one()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()
        engine.dispose()
    seconds = max((last - first).total_seconds(), 1e-3) if sent > 1 else float("inf")
    return (sent - 1) / seconds, failed


def worker_rates() -> None:
    with _receiver_and_mail() as (receiver, catcher, notify_url, smtp_url):
        url = fresh_database()
        with service_env(url) as (env, key):
            env = _messages_env(env, notify_url, smtp_url)
            body = json.dumps({"type": "invoice.paid", "timestamp": "2026-12-01T09:00:00Z",
                               "data": {"invoice_id": "inv_bench", "number": "INV-2026-000001", "total": 203000}})
            _queue(url, [{"id": f"msg_bench_event_{n:06d}", "kind": "event", "topic": "invoice.paid", "invoice_seq": None,
                          "payload": json.dumps({"to": notify_url, "body": json.loads(body)})} for n in range(EVENTS)])
            rate, failed = _drain(url, env, EVENTS)
            print(f"one worker, events to a local receiver (each signature verified): {rate:,.0f}/s "
                  f"({len(receiver.received)} received, {failed} not sent)  (target ≥ 200/s)")

        url = fresh_database()
        with service_env(url) as (env, key):
            env = _messages_env(env, notify_url, smtp_url)
            with gunicorn("wsgi:app", env, "/healthz") as base:
                body = {**BODY, "patient": {**BODY["patient"], "email": "patient@example.org"}}
                invoice = _api(base, key, "POST", "/api/v1/invoices", body)["id"]
                _api(base, key, "POST", f"/api/v1/invoices/{invoice}/finalize")
                _api(base, key, "POST", f"/api/v1/invoices/{invoice}/payments", {"amount": 1000, "method": "cash"})
            engine = create_engine(url)
            with engine.begin() as conn:
                seq, payment = conn.execute(text("SELECT invoices.seq, payments.id FROM invoices JOIN payments "
                                                 "ON payments.invoice_seq = invoices.seq")).one()
                conn.execute(text("DELETE FROM outbox"))
            engine.dispose()
            before = len(catcher.messages)
            _queue(url, [{"id": f"msg_bench_mail_{n:06d}", "kind": "email", "topic": "email.receipt", "invoice_seq": seq,
                          "payload": json.dumps({"to": "patient@example.org", "invoice_id": invoice,
                                                 "payment_id": payment, "amount_due": 202000})}
                         for n in range(EMAILS)])
            rate, failed = _drain(url, env, EMAILS)
            print(f"one worker, receipts to a local SMTP server: {rate:,.0f}/s "
                  f"({len(catcher.messages) - before} caught, {failed} not sent)  (target ≥ 50/s)")
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM outbox"))
            engine.dispose()
            before = len(catcher.messages)
            _queue(url, [{"id": f"msg_bench_pdf_{n:06d}", "kind": "email", "topic": "email.invoice_issued",
                          "invoice_seq": seq, "payload": json.dumps({"to": "patient@example.org", "invoice_id": invoice,
                                                                     "amount_due": 202000})}
                         for n in range(PDF_EMAILS)])
            rate, failed = _drain(url, env, PDF_EMAILS)
            print(f"one worker, invoice emails with the PDF attached: {rate:,.0f}/s "
                  f"({len(catcher.messages) - before} caught, {failed} not sent)")


def main() -> None:
    finalize_overhead()
    worker_rates()


if __name__ == "__main__":
    main()

"""Signed infusion.booked events for distinct bookings, PostgreSQL, gunicorn -w 2.

Target (issue 5): at least 300 events/s, p99 under 50 ms, none lost or doubled.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import create_engine, text

from billing.webhooks import sign

from .pg import fresh_database
from .servers import gunicorn, post_concurrently, service_env

EVENTS = 3000
CLIENTS = 8
SECRET = "whsec_bench"


def booked_events(count: int, prefix: str = "bench", offset: int = 0) -> list[bytes]:
    """`count` signed-to-be infusion.booked bodies, each for its own booking (ids `<prefix>_<n>`)."""
    now = int(time.time())
    return [json.dumps({
        "id": f"evt_{prefix}_{offset + i}", "type": "infusion.booked", "created": now,
        "data": {"booking_id": f"bk_{prefix}_{offset + i}", "patient": {"id": f"pt_{i % 700}", "name": "Bench Patient"},
                 "product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": str(50 + i % 60)},
                 "duration_minutes": 120 + i % 180, "service_date": "2026-12-01",
                 "other_items": [{"code": "NKA", "description": "NK cell assay",
                                  "category": "fertility_investigation"}]},
    }).encode() for i in range(count)]


def main() -> None:
    url = fresh_database()
    with service_env(url) as (env, _key):
        env = {**env, "BOOKING_WEBHOOK_SECRET": SECRET}
        with gunicorn("wsgi:app", env, "/healthz") as base:
            requests = [("/api/v1/webhooks/booking", body, {"Content-Type": "application/json",
                                                           "Booking-Signature": sign(SECRET, body)})
                        for body in booked_events(EVENTS)]
            seconds, statuses, latencies = post_concurrently(base, requests, CLIENTS)

    engine = create_engine(url)
    with engine.connect() as conn:
        invoices = conn.execute(text("SELECT count(*), count(DISTINCT booking_id) FROM invoices")).one()
        created = conn.execute(text("SELECT count(*) FROM booking_events WHERE outcome = 'created'")).scalar_one()
    engine.dispose()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"signed infusion.booked, PostgreSQL, gunicorn -w 2, {CLIENTS} clients: {EVENTS / seconds:,.0f} events/s, "
          f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99:.1f} ms  (target ≥ 300/s, p99 < 50 ms)")
    print(f"answers 200: {statuses.count(200)} of {EVENTS}; invoices {invoices[0]} for {invoices[1]} bookings; "
          f"events recorded as created: {created}  (lost: {EVENTS - invoices[1]}, doubled: {invoices[0] - invoices[1]})")

"""Soak: 100,000 mixed requests at a steady rate against gunicorn -w 2 on PostgreSQL; each
worker's resident memory every 10,000 requests.

The mix, per client and round of 20 requests: 8 quotes, 3 draft invoices, 2 finalizes, 2
payments (each paying an invoice it finalized in full), 3 signed booking events, 2 staff
pages (the dashboard and the invoice list, signed in). Clients keep to SOAK_RATE requests a
second in all (default 150, which a busy 2-core machine keeps up), each on its own schedule.

Fails (exit status 1) when a worker's last reading is more than 10% over its reading at
10,000 requests, when any worker is over 150 MB, or when any answer is a 5xx or no answer.
SOAK_REQUESTS (default 100,000), SOAK_RATE and SOAK_EVERY (default 10,000) change the load and
the readings; BENCH_DATABASE_NAME the database (created afresh, on BENCH_POSTGRES_SERVER).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
import time
from urllib.parse import urlparse

import requests

from billing.webhooks import sign

from .http_quotes import QUOTE
from .invoices import BODY
from .pg import fresh_database
from .servers import BIN, ROOT, gunicorn, service_env, worker_rss_by_pid

TOTAL = int(os.environ.get("SOAK_REQUESTS", "100000"))
RATE = float(os.environ.get("SOAK_RATE", "150"))
CLIENTS = 8
EVERY = int(os.environ.get("SOAK_EVERY", "10000"))
GROWTH_LIMIT = 1.10
MB_LIMIT = 150.0
SECRET = "whsec_bench_soak"
PASSWORD = "soak password 1"
AGENT = "billing-soak/1"


class Soak:
    def __init__(self, base: str, key: str, cookie: str) -> None:
        self.base, self.key, self.cookie = base, key, cookie
        self.lock = threading.Lock()
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.failures = 0  # 5xx or no answer
        self.readings: list[tuple[int, float, dict[int, float]]] = []  # (requests, seconds, {pid: MB})
        self.started = time.monotonic()

    def _count(self, status: int) -> bool:
        """Count one answer; False once the total is reached."""
        with self.lock:
            if self.sent >= TOTAL:
                return False
            self.sent += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 500 or status == 0:
                self.failures += 1
            due = self.sent % EVERY == 0
            sent = self.sent
        if due:
            reading = worker_rss_by_pid(self.base)
            elapsed = time.monotonic() - self.started
            with self.lock:
                self.readings.append((sent, elapsed, reading))
            print(f"{sent:>7,} requests, {elapsed:6.0f} s ({sent / elapsed:,.0f}/s): worker RSS "
                  + ", ".join(f"pid {pid} {mb:.1f} MB" for pid, mb in reading.items())
                  + f"  (answers: {dict(sorted(self.statuses.items()))})", flush=True)
        return True

    def client(self, number: int) -> None:
        host = urlparse(self.base)
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        api = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json", "User-Agent": AGENT}
        staff = {"Cookie": self.cookie, "User-Agent": AGENT}
        interval = CLIENTS / RATE
        next_at = time.monotonic() + number * interval / CLIENTS
        drafts: list[str] = []
        finalized: list[tuple[str, int]] = []
        serial = 0

        def call(method: str, path: str, body: object | bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
            nonlocal next_at, conn
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = max(next_at + interval, time.monotonic() - 1.0)  # steady: a late start isn't made up in a burst
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            try:
                conn.request(method, path, body=data, headers={**(headers or api), "Content-Length": str(len(data or b""))})
                response = conn.getresponse()
                raw = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
                status, raw = 0, b""
            if not self._count(status):
                raise StopIteration
            try:
                return status, json.loads(raw) if raw and raw[:1] in b"{[" else {}
            except ValueError:
                return status, {}

        try:
            while True:
                for _ in range(8):
                    call("POST", "/api/v1/quotes", QUOTE)
                for _ in range(3):
                    serial += 1
                    status, body = call("POST", "/api/v1/invoices",
                                        {**BODY, "patient": {"id": f"pt_{number}_{serial % 500}", "name": "Soak Patient"}})
                    if status == 201:
                        drafts.append(body["id"])
                for _ in range(2):
                    if drafts:
                        status, body = call("POST", f"/api/v1/invoices/{drafts.pop(0)}/finalize")
                        if status == 200:
                            finalized.append((body["id"], body["amount_due"]))
                for _ in range(2):
                    if finalized:
                        invoice_id, due = finalized.pop(0)
                        call("POST", f"/api/v1/invoices/{invoice_id}/payments",
                             {"amount": due, "method": "card_terminal", "reference": f"soak {serial}"})
                for _ in range(3):
                    serial += 1
                    event = json.dumps({
                        "id": f"evt_soak_{number}_{serial}", "type": "infusion.booked", "created": int(time.time()),
                        "data": {"booking_id": f"bk_soak_{number}_{serial}",
                                 "patient": {"id": f"pt_{serial % 700}", "name": "Soak Patient"},
                                 "product_code": "IVIG10-5-10-20",
                                 "dose": {"grams_per_kg": "0.4", "weight_kg": str(50 + serial % 60)},
                                 "duration_minutes": 120 + serial % 180, "service_date": "2026-12-01"},
                    }).encode()
                    call("POST", "/api/v1/webhooks/booking", event,
                         {"Content-Type": "application/json", "Booking-Signature": sign(SECRET, event), "User-Agent": AGENT})
                call("GET", "/", headers=staff)
                call("GET", "/invoices", headers=staff)
        except StopIteration:
            pass
        finally:
            conn.close()


def _sign_in(base: str) -> str:
    """A staff session's Cookie header (the login form, its CSRF token, the password)."""
    session = requests.Session()
    session.headers["User-Agent"] = AGENT
    page = session.get(base + "/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    session.post(base + "/login", data={"email": "soak@clinic.example", "password": PASSWORD,
                                        "csrf_token": token}).raise_for_status()
    if session.get(base + "/invoices", allow_redirects=False).status_code != 200:
        raise SystemExit("the soak's staff user could not sign in")
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def verdict(readings: list[tuple[int, float, dict[int, float]]]) -> list[str]:
    """What is wrong with the memory readings; nothing when the soak stayed flat."""
    if len(readings) < 2:
        return ["fewer than two readings: the soak did not run long enough"]
    problems = []
    first, last = readings[0][2], readings[-1][2]
    for pid, mb in last.items():
        if pid not in first:
            problems.append(f"worker {pid} was not there at {readings[0][0]:,} requests (a worker restarted)")
        elif mb > first[pid] * GROWTH_LIMIT:
            problems.append(f"worker {pid} grew from {first[pid]:.1f} MB to {mb:.1f} MB "
                            f"(+{(mb / first[pid] - 1) * 100:.1f}%, limit +{(GROWTH_LIMIT - 1) * 100:.0f}%)")
    for requests_, _seconds, reading in readings:
        for pid, mb in reading.items():
            if mb > MB_LIMIT:
                problems.append(f"worker {pid} used {mb:.1f} MB at {requests_:,} requests (limit {MB_LIMIT:.0f} MB)")
    return problems


def main() -> None:
    url = fresh_database()
    with service_env(url) as (env, key):
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "billing", "create-user", "soak@clinic.example",
                        "--role", "viewer", "--password", PASSWORD], cwd=ROOT, env=env, check=True, capture_output=True)
        env = {**env, "BOOKING_WEBHOOK_SECRET": SECRET, "BILLING_INSECURE_COOKIES": "1"}
        with gunicorn("wsgi:app", env, "/healthz") as base:
            soak = Soak(base, key, _sign_in(base))
            print(f"soak: {TOTAL:,} mixed requests at {RATE:,.0f}/s, {CLIENTS} clients, gunicorn -w 2, PostgreSQL; "
                  f"worker RSS at start {', '.join(f'{mb:.1f}' for mb in worker_rss_by_pid(base).values())} MB")
            threads = [threading.Thread(target=soak.client, args=(n,)) for n in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - soak.started
    print(f"{soak.sent:,} requests in {elapsed:.0f} s ({soak.sent / elapsed:,.0f}/s); answers "
          f"{dict(sorted(soak.statuses.items()))}; 5xx or no answer: {soak.failures}")
    problems = verdict(soak.readings)
    if soak.failures:
        problems.append(f"{soak.failures} answers were a 5xx or none")
    if problems:
        print("SOAK FAILED: " + "; ".join(problems))
        raise SystemExit(1)
    first, last = soak.readings[0], soak.readings[-1]
    print(f"soak flat: worker RSS at {first[0]:,} requests {', '.join(f'{m:.1f}' for m in first[2].values())} MB, "
          f"at {last[0]:,} {', '.join(f'{m:.1f}' for m in last[2].values())} MB  (limits +10%, {MB_LIMIT:.0f} MB)")


if __name__ == "__main__":
    main()

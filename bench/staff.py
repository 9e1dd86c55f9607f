"""Staff pages with 100,000 invoices in PostgreSQL: the invoice list and the dashboard.

Target (issue 7): each renders in under 150 ms (figures are SQL aggregates).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time

import requests
from sqlalchemy import create_engine, text

from .invoices import BODY, _api
from .pg import fresh_database
from .servers import BIN, ROOT, gunicorn, service_env

INVOICES = 100_000
PASSWORD = "bench password 1"


def _fill(url: str, template_id: str) -> None:
    """100,000 invoices over the last year: a third open (some overdue), most paid, a few void."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO invoices (id, number, status, currency, service_date, patient_id, patient_name, charge, inputs,
                price_list_id, price_list_version, lines, excluded_items, statement, product_amount, service_amount,
                subtotal, tax, total, amount_paid, amount_refunded, issued_at, issued_on, due_date,
                created_at, updated_at, revision, stripe_attempt)
            SELECT 'inv_' || left(md5(n::text), 24), 'INV-B-' || lpad(n::text, 7, '0'),
                   CASE WHEN n % 10 < 3 THEN 'open' WHEN n % 10 = 9 THEN 'void' ELSE 'paid' END,
                   currency, CURRENT_DATE - (n % 365), 'pt_' || (n % 5000), 'Patient ' || (n % 5000), charge, inputs,
                   price_list_id, price_list_version, lines, excluded_items, statement, product_amount, service_amount,
                   subtotal, tax, total, CASE WHEN n % 10 BETWEEN 3 AND 8 THEN total ELSE 0 END, 0,
                   now() - make_interval(days => n % 365), CURRENT_DATE - (n % 365), CURRENT_DATE - (n % 365) + 14,
                   now(), now(), 0, 0
            FROM invoices, generate_series(1, :count) AS n WHERE invoices.id = :template
        """), {"count": INVOICES, "template": template_id})
    # As autovacuum would soon: the visibility map lets PostgreSQL answer from covering indexes.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE invoices"))
    engine.dispose()


def _timed(session: requests.Session, url: str, rounds: int = 30) -> tuple[float, float]:
    for _ in range(3):
        session.get(url).raise_for_status()
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = session.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(timings), max(timings)


def main() -> None:
    url = fresh_database()
    with service_env(url) as (env, key):
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "billing", "create-user", "bench@clinic.example",
                        "--role", "viewer", "--password", PASSWORD], cwd=ROOT, env=env, check=True, capture_output=True)
        env = {**env, "BILLING_INSECURE_COOKIES": "1"}
        with gunicorn("wsgi:app", env, "/healthz") as base:
            template = _api(base, key, "POST", "/api/v1/invoices", BODY)["id"]
            _fill(url, template)
            session = requests.Session()
            page = session.get(base + "/login").text
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
            session.post(base + "/login", data={"email": "bench@clinic.example", "password": PASSWORD,
                                                "csrf_token": token}).raise_for_status()
            for name, path in (("invoice list", "/invoices"), ("invoice list, open only", "/invoices?status=open"),
                               ("dashboard", "/"), ("reports", "/reports")):
                median, worst = _timed(session, base + path)
                print(f"{name:<26} with {INVOICES:,} invoices: median {median:.0f} ms, worst {worst:.0f} ms "
                      f"(target < 150 ms)")

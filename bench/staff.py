"""Staff pages with 100,000 invoices, on PostgreSQL and on SQLite: the invoice list (filters,
search, sort), the dashboard and the reports.

Target (issues 7 and 17): each renders in under 150 ms (figures are SQL aggregates; the search
box is answered from an index of `invoices.search_text`).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time

import requests
from sqlalchemy import create_engine, text

from .invoices import BODY, _api
from .pg import fresh_database
from .servers import BIN, ROOT, gunicorn, service_env

INVOICES = 100_000
PASSWORD = "bench password 1"
# A database of its own name (BENCH_STAFF_DATABASE), so two people benchmarking at once don't collide.
DATABASE = os.environ.get("BENCH_STAFF_DATABASE", "billing_bench")

# The pages timed: (name, path). Searches: a number's part, a name, a payer reference and a
# booking id (each rare), and two letters that match nothing (no trigram helps: the worst case).
PAGES = (
    ("invoice list", "/invoices"),
    ("open only", "/invoices?status=open"),
    ("overdue (dashboard card)", "/invoices?status=overdue&sort=due_date"),
    ("overdue, newest first", "/invoices?status=overdue"),
    ("part paid", "/invoices?status=part_paid"),
    ("sorted by total, largest", "/invoices?sort=-total"),
    ("sorted by due date", "/invoices?sort=due_date"),
    ("search number part", "/invoices?q=0012345"),
    ("search patient name", "/invoices?q=patient+4242"),
    ("search payer reference", "/invoices?q=pol-77776"),
    ("search booking id", "/invoices?q=bk_b0054320"),
    ("search 2 letters, none", "/invoices?q=zq"),
    ("search + open + sort", "/invoices?q=insurer+7&status=open&sort=-total"),
    ("aged debt 31-60 drill", "/invoices?age=31-60"),
    ("payer drill-down", "/invoices?age=owing&payer=Insurer+7"),
    ("dashboard", "/"),
    ("reports", "/reports"),
)

# Every invoice: a third open (n % 10 == 2 part paid; most older than 14 days overdue), most paid,
# a few void; every 4th billed to one of 50 insurers with a policy reference; every other one
# for a booking. search_text as billing/invoice_search.search_text builds it (all ASCII here).
_POSTGRES_FILL = """
    INSERT INTO invoices (id, number, status, currency, service_date, booking_id, patient_id, patient_name, bill_to,
        payer_name, search_text, charge, inputs, price_list_id, price_list_version, lines, excluded_items, statement,
        product_amount, service_amount, subtotal, tax, total, amount_paid, amount_refunded, issued_at, issued_on,
        due_date, created_at, updated_at, revision, stripe_attempt)
    SELECT 'inv_' || left(md5(n::text), 24), v.number, v.status, currency, CURRENT_DATE - (n % 365), v.booking,
           v.patient_id, v.patient_name,
           CASE WHEN v.payer IS NULL THEN NULL ELSE json_build_object('name', v.payer, 'reference', v.reference) END,
           v.payer, lower(concat_ws(E'\\n', v.number, v.patient_id, v.patient_name, v.payer, v.reference, v.booking)),
           charge, inputs, price_list_id, price_list_version, lines, excluded_items, statement,
           product_amount, service_amount, subtotal, tax, total,
           CASE WHEN n % 10 BETWEEN 3 AND 8 THEN total WHEN n % 10 = 2 THEN 10000 ELSE 0 END, 0,
           now() - make_interval(days => n % 365), CURRENT_DATE - (n % 365), CURRENT_DATE - (n % 365) + 14,
           now(), now(), 0, 0
    FROM invoices, generate_series(1, :count) AS n,
         LATERAL (SELECT 'INV-B-' || lpad(n::text, 7, '0') AS number,
                         CASE WHEN n % 10 < 3 THEN 'open' WHEN n % 10 = 9 THEN 'void' ELSE 'paid' END AS status,
                         CASE WHEN n % 2 = 0 THEN 'bk_b' || lpad(n::text, 7, '0') END AS booking,
                         'pt_' || (n % 5000) AS patient_id, 'Patient ' || (n % 5000) AS patient_name,
                         CASE WHEN n % 4 = 0 THEN 'Insurer ' || (n % 50) END AS payer,
                         CASE WHEN n % 4 = 0 THEN 'POL-' || n END AS reference) AS v
    WHERE invoices.id = :template
"""

_SQLITE_FILL = """
    WITH RECURSIVE counter(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counter WHERE n < :count),
    v AS (SELECT n, 'INV-B-' || printf('%07d', n) AS number,
                 CASE WHEN n % 10 < 3 THEN 'open' WHEN n % 10 = 9 THEN 'void' ELSE 'paid' END AS status,
                 CASE WHEN n % 2 = 0 THEN 'bk_b' || printf('%07d', n) END AS booking,
                 'pt_' || (n % 5000) AS patient_id, 'Patient ' || (n % 5000) AS patient_name,
                 CASE WHEN n % 4 = 0 THEN 'Insurer ' || (n % 50) END AS payer,
                 CASE WHEN n % 4 = 0 THEN 'POL-' || n END AS reference FROM counter)
    INSERT INTO invoices (id, number, status, currency, service_date, booking_id, patient_id, patient_name, bill_to,
        payer_name, search_text, charge, inputs, price_list_id, price_list_version, lines, excluded_items, statement,
        product_amount, service_amount, subtotal, tax, total, amount_paid, amount_refunded, issued_at, issued_on,
        due_date, created_at, updated_at, revision, stripe_attempt)
    SELECT printf('inv_bench%015d', v.n), v.number, v.status, currency, date('now', printf('-%d days', v.n % 365)),
           v.booking, v.patient_id, v.patient_name,
           CASE WHEN v.payer IS NULL THEN NULL ELSE json_object('name', v.payer, 'reference', v.reference) END,
           v.payer,
           lower(v.number || char(10) || v.patient_id || char(10) || v.patient_name
                 || coalesce(char(10) || v.payer, '') || coalesce(char(10) || v.reference, '')
                 || coalesce(char(10) || v.booking, '')),
           charge, inputs, price_list_id, price_list_version, lines, excluded_items, statement,
           product_amount, service_amount, subtotal, tax, total,
           CASE WHEN v.n % 10 BETWEEN 3 AND 8 THEN total WHEN v.n % 10 = 2 THEN 10000 ELSE 0 END, 0,
           strftime('%Y-%m-%d %H:%M:%S.000000', 'now', printf('-%d days', v.n % 365)),
           date('now', printf('-%d days', v.n % 365)), date('now', printf('%+d days', 14 - v.n % 365)),
           strftime('%Y-%m-%d %H:%M:%S.000000', 'now'), strftime('%Y-%m-%d %H:%M:%S.000000', 'now'), 0, 0
    FROM invoices, v WHERE invoices.id = :template
"""


def _fill(url: str, template_id: str) -> None:
    engine = create_engine(url)
    postgres = url.startswith("postgresql")
    with engine.begin() as conn:
        conn.execute(text(_POSTGRES_FILL if postgres else _SQLITE_FILL), {"count": INVOICES, "template": template_id})
    # As autovacuum would soon: the visibility map lets PostgreSQL answer from covering indexes.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE invoices" if postgres else "ANALYZE"))
    engine.dispose()


def _timed(session: requests.Session, url: str, rounds: int = 20) -> tuple[float, float]:
    for _ in range(3):
        session.get(url).raise_for_status()
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = session.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(timings), max(timings)


def _run(url: str, label: str) -> None:
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
            for name, path in PAGES:
                median, worst = _timed(session, base + path)
                print(f"{label:<10} {name:<26} with {INVOICES:,} invoices: median {median:.0f} ms, "
                      f"worst {worst:.0f} ms (target < 150 ms)", flush=True)


def main() -> None:
    _run(fresh_database(DATABASE), "PostgreSQL")
    with tempfile.TemporaryDirectory(prefix="billing-bench-sqlite-") as tmp:
        _run(f"sqlite:///{tmp}/bench.sqlite3", "SQLite")

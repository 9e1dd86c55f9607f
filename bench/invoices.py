"""Invoices on PostgreSQL: concurrent finalize, list pages at two table sizes, PDF rendering.

Targets (issue 4): finalize ≥ 200 invoices/s with 8 concurrent clients; a list page with
1,000,000 invoices no more than 1.5× slower than with 10,000; a PDF ≤ 30 ms on average.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from urllib.parse import urlparse

from sqlalchemy import create_engine, text

from .pg import fresh_database
from .servers import gunicorn, post_concurrently, service_env, wrk

DRAFTS = 2000
CLIENTS = 8
BODY = {
    "product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
    "duration_minutes": 180, "service_date": "2026-12-01", "patient": {"id": "pt_1", "name": "Bench"},
}


def _clone_drafts(url: str, template_id: str, count: int, status: str = "draft") -> None:
    """Copy one real draft `count` times in SQL: the table fills in seconds, not hours."""
    engine = create_engine(url)
    columns = ("status, currency, service_date, booking_id, patient_id, patient_name, patient_email, "
               "patient_address, bill_to, charge, inputs, price_list_id, price_list_version, lines, "
               "excluded_items, statement, product_amount, service_amount, subtotal, tax, total, amount_paid, "
               "amount_refunded, created_at, updated_at, revision")
    select_columns = columns.replace("status,", ":status,", 1).replace("patient_id,", "'pt_' || (n % 5000),", 1)
    with engine.begin() as conn:
        conn.execute(text(
            f"INSERT INTO invoices (id, {columns}) "
            f"SELECT 'inv_' || left(md5(random()::text || n::text), 24), {select_columns} "
            "FROM invoices, generate_series(1, :count) AS n WHERE invoices.id = :template"
        ), {"count": count, "template": template_id, "status": status})
        conn.execute(text("ANALYZE invoices"))
    engine.dispose()


def _api(base: str, key: str, method: str, path: str, body: object | None = None) -> dict:
    host = urlparse(base)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read() or b"null")
    conn.close()
    return data


def finalize_and_pdf() -> None:
    url = fresh_database()
    with service_env(url) as (env, key):
        with gunicorn("wsgi:app", env, "/healthz") as base:
            template = _api(base, key, "POST", "/api/v1/invoices", BODY)["id"]
            _clone_drafts(url, template, DRAFTS - 1)
            engine = create_engine(url)
            with engine.connect() as conn:
                ids = list(conn.execute(text("SELECT id FROM invoices WHERE status = 'draft'")).scalars())
            auth = {"Authorization": f"Bearer {key}"}
            seconds, statuses, _ = post_concurrently(
                base, [(f"/api/v1/invoices/{i}/finalize", b"", auth) for i in ids], CLIENTS)
            with engine.connect() as conn:
                numbers = sorted(conn.execute(text("SELECT number FROM invoices WHERE number IS NOT NULL")).scalars())
            engine.dispose()
            expected = [f"INV-{numbers[0][4:8]}-{n:06d}" for n in range(1, len(ids) + 1)] if numbers else []
            print(f"finalize, PostgreSQL, {CLIENTS} clients: {len(ids) / seconds:,.0f} invoices/s "
                  f"({len(ids)} in {seconds:.1f} s; non-200 answers: {sum(s != 200 for s in statuses)}; "
                  f"numbers 1..{len(ids)} without gaps: {numbers == expected})  (target ≥ 200/s)")

            host = urlparse(base)
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)

            def pdf_timings(invoice_ids: list[str]) -> list[float]:
                timings = []
                for invoice_id in invoice_ids:
                    started = time.perf_counter()
                    conn.request("GET", f"/api/v1/invoices/{invoice_id}/pdf", headers={"Authorization": f"Bearer {key}"})
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, response.status
                    timings.append(time.perf_counter() - started)
                return timings

            # The first PDF a service makes prepares the fonts once (instance/fonts/) and each worker
            # parses them once: counted apart, then every worker has made one before the timings.
            first = pdf_timings(ids[-1:])[0]
            pdf_timings(ids[-9:-1])
            timings = pdf_timings(ids[:200])
            print(f"PDF over HTTP: mean {statistics.mean(timings) * 1000:.1f} ms, "
                  f"p95 {sorted(timings)[int(len(timings) * 0.95)] * 1000:.1f} ms  (target mean ≤ 30 ms; "
                  f"the service's first PDF, fonts prepared: {first * 1000:.0f} ms)")
            # Patients' names in every script the PDF covers, no two alike: each worker has made one
            # of each script before the timings (its first loads the script's font, once).
            _name_patients(url, ids[200:432])
            pdf_timings(ids[200:232])
            timings = pdf_timings(ids[232:432])
            print(f"PDF over HTTP, 200 patients named in {len(NAMES)} scripts: mean {statistics.mean(timings) * 1000:.1f} ms, "
                  f"p95 {sorted(timings)[int(len(timings) * 0.95)] * 1000:.1f} ms")
            conn.close()


# First names and surnames in each script the PDF covers (Noto Sans, Noto Sans Arabic
# and Devanagari, CJK when installed), combined so that the invoices' texts differ.
NAMES = (
    (("Łukasz", "Zoë", "Siobhán", "José", "Ştefan"), ("Wiśniewski", "Ó Briain", "Núñez", "Brontë", "Popescu")),
    (("Alex", "Sam", "Priya", "Tom", "Amara"), ("Example", "Smith", "Patel", "Jones", "Okafor")),
    (("Дмитрий", "Анна", "Ольга", "Сергей", "Іван"), ("Иванов", "Петрова", "Смирнова", "Кузнецов", "Шевченко")),
    (("Ελένη", "Γιώργος", "Μαρία", "Νίκος", "Σοφία"), ("Παπαδοπούλου", "Οικονόμου", "Γεωργίου", "Νικολάου", "Ιωάννου")),
    (("محمد", "فاطمة", "علي", "مريم", "يوسف"), ("عبد الله", "الحسن", "خان", "إبراهيم", "السيد")),
    (("अनन्या", "राहुल", "प्रिया", "अर्जुन", "स्नेहा"), ("शर्मा", "वर्मा", "गुप्ता", "सिंह", "पटेल")),
    (("李", "王", "张", "刘", "陈"), ("雷", "芳", "伟", "静", "明")),  # surname, given name
)


def _name_patients(url: str, invoice_ids: list[str]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for n, invoice_id in enumerate(invoice_ids):
            firsts, lasts = NAMES[n % len(NAMES)]
            space = "" if firsts[0] == "李" else " "  # Chinese names: surname first, no space
            name = f"{firsts[n // len(NAMES) % 5]}{space}{lasts[n // len(NAMES) // 5 % 5]}"
            conn.execute(text("UPDATE invoices SET patient_name = :name WHERE id = :id"), {"name": name, "id": invoice_id})
    engine.dispose()


def list_pages() -> None:
    url = fresh_database()
    results = {}
    with service_env(url) as (env, key):
        with gunicorn("wsgi:app", env, "/healthz") as base:
            template = _api(base, key, "POST", "/api/v1/invoices", BODY)["id"]
            headers = {"Authorization": f"Bearer {key}"}
            total = 1
            for size in (10_000, 1_000_000):
                # a third of the table open, the rest paid or draft, as in a clinic's books
                for status, share in (("open", 3), ("paid", 6)):
                    _clone_drafts(url, template, (size - total) * share // 10, status)
                _clone_drafts(url, template, size - _count(url), "draft")
                total = _count(url)
                page = wrk(base + "/api/v1/invoices?status=open&limit=20", headers=headers, seconds=5, connections=4)
                results[size] = page
                print(f"GET /api/v1/invoices?status=open&limit=20 with {total:>9,} invoices: "
                      f"{page['rps']:,.0f} req/s, p50 {page['p50_ms']:.1f} ms, p99 {page['p99_ms']:.1f} ms")
    ratio = results[1_000_000]["p50_ms"] / results[10_000]["p50_ms"]
    print(f"median latency 1,000,000 / 10,000: {ratio:.2f}×  (target ≤ 1.5×)")


def _count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM invoices")).scalar_one()
    engine.dispose()
    return n


def main() -> None:
    finalize_and_pdf()
    list_pages()

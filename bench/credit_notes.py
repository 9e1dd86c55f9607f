"""Issuing a credit note against recording a manual payment, PostgreSQL, gunicorn -w 2.

Target (issue 11): a credit note costs no more than 1.5× a manual payment (each locks the
invoice row; a credit note also takes a number from its own locked counter row).
"""

from __future__ import annotations

import json
import statistics

from sqlalchemy import create_engine, text

from .invoices import BODY, _api, _clone_drafts
from .pg import fresh_database
from .servers import gunicorn, post_concurrently, service_env

INVOICES = 1000
CLIENTS = 8


def main() -> None:
    url = fresh_database()
    with service_env(url) as (env, key):
        with gunicorn("wsgi:app", env, "/healthz") as base:
            template = _api(base, key, "POST", "/api/v1/invoices", BODY)["id"]
            _clone_drafts(url, template, 2 * INVOICES - 1)
            engine = create_engine(url)
            with engine.connect() as conn:
                ids = list(conn.execute(text("SELECT id FROM invoices ORDER BY seq")).scalars())
            engine.dispose()
            auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            post_concurrently(base, [(f"/api/v1/invoices/{i}/finalize", b"", auth) for i in ids], CLIENTS)
            payment = json.dumps({"amount": 1000, "method": "cash"}).encode()
            credit = json.dumps({"reason": "order_change",
                                 "lines": [{"category": "infusion_service", "amount": 1000}]}).encode()
            results = {}
            for name, path, body, chosen in (("manual payment", "payments", payment, ids[:INVOICES]),
                                             ("credit note", "credit-notes", credit, ids[INVOICES:])):
                seconds, statuses, latencies = post_concurrently(
                    base, [(f"/api/v1/invoices/{i}/{path}", body, auth) for i in chosen], CLIENTS)
                ok = sum(s == 201 for s in statuses)
                results[name] = len(chosen) / seconds
                print(f"{name}, PostgreSQL, {CLIENTS} clients: {results[name]:,.0f}/s, "
                      f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
                      f"p99 {sorted(latencies)[int(len(latencies) * 0.99)] * 1000:.1f} ms ({ok} of {len(chosen)} 201)")
            ratio = results["manual payment"] / results["credit note"]
            print(f"a credit note costs {ratio:.2f}× a manual payment  (target ≤ 1.5×)")

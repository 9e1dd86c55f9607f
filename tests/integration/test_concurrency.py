"""Concurrent requests through real connections: numbers stay gap-free, money never overpays,
a key applies once. Runs on SQLite and on PostgreSQL (where row locks do the work)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from billing.cli import DEMO_PRICE_LIST
from billing.extensions import db
from billing.invoicing import create_invoice, today_at_clinic
from billing.models import Invoice
from billing.price_lists import create_price_list
from billing.pricing.documents import request_from_json
from tests.factories import infusion

THREADS = 8


@pytest.fixture
def drafts(app):
    def make(count: int) -> list[str]:
        with app.app_context():
            create_price_list(DEMO_PRICE_LIST, "tests")
            request = request_from_json({**infusion(), "other_items": []})
            ids = [create_invoice(request, {"id": f"pt_{i}", "name": "P"}, "tests").id for i in range(count)]
            db.session.commit()
            return ids
    return make


def run_together(app, headers, calls):
    """Each call is (method, path, json); all start at the same moment, THREADS at a time."""
    barrier = threading.Barrier(min(THREADS, len(calls)))

    def one(call):
        method, path, body, extra = call
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return client.open(path, method=method, json=body, headers={**headers, **extra})

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(one, calls))


def test_200_concurrent_finalizes_take_numbers_1_to_200_without_gaps(app, api, drafts):
    ids = drafts(200)
    responses = run_together(app, api.headers, [("POST", f"/api/v1/invoices/{i}/finalize", None, {}) for i in ids])
    assert [r.status_code for r in responses] == [200] * 200
    year = today_at_clinic().year
    with app.app_context():
        numbers = sorted(db.session.scalars(select(Invoice.number)))
    assert numbers == [f"INV-{year}-{n:06d}" for n in range(1, 201)]


def test_two_payments_that_together_overpay_one_is_refused(app, api, drafts):
    for invoice_id in drafts(5):
        assert api.post(f"/api/v1/invoices/{invoice_id}/finalize").status_code == 200
        body = {"amount": 150000, "method": "card_terminal"}
        responses = run_together(app, api.headers, [("POST", f"/api/v1/invoices/{invoice_id}/payments", body, {})] * 2)
        assert sorted(r.status_code for r in responses) == [201, 422]
        state = api.get(f"/api/v1/invoices/{invoice_id}").get_json()
        assert state["amount_paid"] == 150000 and len(state["payments"]) == 1


def test_the_same_idempotency_key_at_once_pays_once(app, api, drafts):
    (invoice_id,) = drafts(1)
    assert api.post(f"/api/v1/invoices/{invoice_id}/finalize").status_code == 200
    call = ("POST", f"/api/v1/invoices/{invoice_id}/payments", {"amount": 1000, "method": "cash"},
            {"Idempotency-Key": "same-moment"})
    responses = run_together(app, api.headers, [call] * THREADS)
    assert [r.status_code for r in responses] == [201] * THREADS
    bodies = {r.get_data(as_text=True) for r in responses}
    assert len(bodies) == 1
    state = api.get(f"/api/v1/invoices/{invoice_id}").get_json()
    assert state["amount_paid"] == 1000 and len(state["payments"]) == 1


def test_50_concurrent_credit_notes_take_cn_numbers_1_to_50_without_gaps(app, api, drafts):
    ids = drafts(50)
    for invoice_id in ids:
        assert api.post(f"/api/v1/invoices/{invoice_id}/finalize").status_code == 200
    body = {"reason": "order_change", "lines": [{"category": "infusion_service", "amount": 1000}]}
    responses = run_together(app, api.headers, [("POST", f"/api/v1/invoices/{i}/credit-notes", body, {}) for i in ids])
    assert [r.status_code for r in responses] == [201] * 50
    year = today_at_clinic().year
    numbers = sorted(r.get_json()["number"] for r in responses)
    assert numbers == [f"CN-{year}-{n:06d}" for n in range(1, 51)]


def test_credit_notes_at_once_on_one_invoice_never_credit_more_than_it_charged(app, api, drafts):
    (invoice_id,) = drafts(1)
    assert api.post(f"/api/v1/invoices/{invoice_id}/finalize").status_code == 200
    body = {"reason": "order_change", "lines": [{"category": "infusion_service", "amount": 10000}]}
    responses = run_together(app, api.headers, [("POST", f"/api/v1/invoices/{invoice_id}/credit-notes", body, {})] * 8)
    assert sorted(r.status_code for r in responses) == [201] * 3 + [422] * 5  # £350.00 holds three £100.00
    assert api.get(f"/api/v1/invoices/{invoice_id}").get_json()["amount_credited"] == 30000

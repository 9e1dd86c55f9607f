"""Idempotency-Key: a retried POST replays its first answer and changes nothing more."""

from __future__ import annotations

import pytest

from tests.conftest import row_counts
from tests.factories import invoice_body, price_list_document


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def test_a_retried_create_replays_the_first_answer(app, api):
    first = api.post("/api/v1/invoices", json=invoice_body(), headers={"Idempotency-Key": "create-1"})
    counts = row_counts(app)
    again = api.post("/api/v1/invoices", json=invoice_body(), headers={"Idempotency-Key": "create-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert row_counts(app) == counts
    assert len(api.get("/api/v1/invoices").get_json()["data"]) == 1


def test_the_same_key_with_another_body_is_409(api):
    api.post("/api/v1/invoices", json=invoice_body(), headers={"Idempotency-Key": "k"})
    other = api.post("/api/v1/invoices", json=invoice_body(duration_minutes=60), headers={"Idempotency-Key": "k"})
    assert other.status_code == 409
    assert other.mimetype == "application/problem+json"


def test_a_retried_payment_is_recorded_once(api):
    invoice = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    api.post(f"/api/v1/invoices/{invoice['id']}/finalize")
    body = {"amount": 50000, "method": "cash"}
    for _ in range(3):
        response = api.post(f"/api/v1/invoices/{invoice['id']}/payments", json=body, headers={"Idempotency-Key": "pay-1"})
        assert response.status_code == 201
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["amount_paid"] == 50000 and len(state["payments"]) == 1


def test_keys_belong_to_one_client(app, api, client):
    from billing.access import create_api_key

    with app.app_context():
        other_key = create_api_key("other").secret
    api.post("/api/v1/invoices", json=invoice_body(), headers={"Idempotency-Key": "shared"})
    other = client.post("/api/v1/invoices", json=invoice_body(duration_minutes=60),
                        headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "shared"})
    assert other.status_code == 201


def test_a_refused_request_is_not_remembered(api):
    invoice = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    pay = f"/api/v1/invoices/{invoice['id']}/payments"
    assert api.post(pay, json={"amount": 100, "method": "cash"}, headers={"Idempotency-Key": "p"}).status_code == 409
    api.post(f"/api/v1/invoices/{invoice['id']}/finalize")
    assert api.post(pay, json={"amount": 100, "method": "cash"}, headers={"Idempotency-Key": "p"}).status_code == 201


def test_the_change_its_key_and_its_answer_commit_together(app, api, monkeypatch):
    """A crash after the use case but before the answer is stored leaves nothing behind: the
    payment isn't recorded, the key isn't kept, and the retry records it once."""
    from billing import idempotency

    invoice = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    api.post(f"/api/v1/invoices/{invoice['id']}/finalize")
    pay = f"/api/v1/invoices/{invoice['id']}/payments"
    counts = row_counts(app)
    real_answer = idempotency.answer

    def crash(row, status, body):
        raise RuntimeError("the process fell over")

    monkeypatch.setattr(idempotency, "answer", crash)
    crashed = api.post(pay, json={"amount": 50000, "method": "cash"}, headers={"Idempotency-Key": "pay-2"})
    assert crashed.status_code == 500 and crashed.mimetype == "application/problem+json"
    assert row_counts(app) == counts
    monkeypatch.setattr(idempotency, "answer", real_answer)
    retried = api.post(pay, json={"amount": 50000, "method": "cash"}, headers={"Idempotency-Key": "pay-2"})
    assert retried.status_code == 201 and retried.get_json()["amount_paid"] == 50000
    assert len(retried.get_json()["payments"]) == 1

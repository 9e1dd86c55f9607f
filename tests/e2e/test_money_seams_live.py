"""The money-integrity reproductions end to end: the service over HTTP, localstripe with its own
signed webhooks, and the outbox delivered as the worker would (pay page open → void → the old
PaymentIntent confirmed: no money kept, invoice still void, flagged)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import stripe as stripe_sdk
from sqlalchemy import select

from billing import outbox
from billing.extensions import db
from billing.models import Invoice, StripeEvent
from tests import stripe_helpers as sh
from tests.factories import open_invoice, payment_link

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def online(paying_online):
    return paying_online


def open_pay_page(app, api, client) -> tuple[dict, str]:
    """An invoice whose pay page a patient has open: its PaymentIntent exists at localstripe."""
    invoice = open_invoice(api)
    page = client.get(urlsplit(payment_link(api, invoice["id"])).path)
    assert page.status_code == 200
    with app.app_context():
        intent_id = db.session.scalar(select(Invoice.stripe_payment_intent).where(Invoice.id == invoice["id"]))
    return invoice, intent_id


def deliver(app) -> None:
    with app.app_context():
        outbox.deliver_due()


def wait_for_payment_event(app, intent_id: str, seconds: float = 10) -> StripeEvent:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app.app_context():
            for found in db.session.scalars(select(StripeEvent).where(StripeEvent.type == "payment_intent.succeeded")):
                return found
        time.sleep(0.2)
    raise AssertionError(f"no payment_intent.succeeded for {intent_id} arrived")


def stripe_refunds(localstripe, intent_id: str) -> list[int]:
    return [r.amount for r in sh.client(localstripe.url).v1.refunds.list(params={"payment_intent": intent_id}).data]


def test_void_then_the_worker_cancels_the_intent_so_the_old_tab_cant_pay(app, api, client, stripe_on):
    invoice, intent_id = open_pay_page(app, api, client)
    assert api.post(f"/api/v1/invoices/{invoice['id']}/void").status_code == 200
    deliver(app)
    assert sh.client(stripe_on.url).v1.payment_intents.retrieve(intent_id).status == "canceled"
    with pytest.raises(stripe_sdk.InvalidRequestError):
        sh.pay_intent(stripe_on.url, intent_id)
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (state["status"], state["amount_paid"], state["payments"]) == ("void", 0, [])


def test_void_then_the_old_tab_pays_first_no_money_is_kept_and_staff_are_told(app, api, client, stripe_on):
    invoice, intent_id = open_pay_page(app, api, client)
    assert api.post(f"/api/v1/invoices/{invoice['id']}/void").status_code == 200
    assert sh.pay_intent(stripe_on.url, intent_id).status == "succeeded"  # before the worker ran
    assert wait_for_payment_event(app, intent_id).outcome == "payment_recorded"
    deliver(app)
    assert stripe_refunds(stripe_on, intent_id) == [203000]
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (state["status"], state["amount_paid"], state["amount_refunded"], state["amount_due"]) == \
        ("void", 203000, 203000, 0)
    assert [(r["amount"], r["status"]) for r in state["refunds"]] == [(203000, "succeeded")]
    assert "on a void invoice" in state["attention"]


def test_a_stale_tab_after_a_bank_transfer_is_refunded_the_excess(app, api, client, stripe_on):
    invoice, intent_id = open_pay_page(app, api, client)
    paid = api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 100000, "method": "bank_transfer"})
    assert paid.status_code == 201
    assert sh.pay_intent(stripe_on.url, intent_id).status == "succeeded"  # the tab still showed £2,030.00
    wait_for_payment_event(app, intent_id)
    deliver(app)
    assert stripe_refunds(stripe_on, intent_id) == [100000]
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (state["status"], state["amount_paid"], state["amount_refunded"], state["amount_due"]) == \
        ("paid", 303000, 100000, 0)


def test_a_refund_retried_with_the_same_key_goes_to_stripe_once(app, api, client, stripe_on):
    invoice, intent_id = open_pay_page(app, api, client)
    sh.pay_intent(stripe_on.url, intent_id)
    wait_for_payment_event(app, intent_id)
    path = f"/api/v1/invoices/{invoice['id']}/refunds"
    answers = [api.post(path, json={"amount": 20000, "reason": "shorter"}, headers={"Idempotency-Key": "re-1"})
               for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[2].headers["Idempotent-Replayed"] == "true"
    assert stripe_refunds(stripe_on, intent_id) == [20000]
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["amount_refunded"] == 20000

"""A patient pays in a real browser: Stripe.js (localstripe's double), the pay page, the
return path and localstripe's signed webhook, all for real."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from billing.extensions import db
from billing.models import StripeEvent
from tests.factories import open_invoice, payment_link

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def online(paying_online):
    return paying_online


def type_card(page, number: str) -> None:
    # localstripe's card Element is five plain inputs; real Stripe's is an iframe.
    for placeholder, value in (("number", number), ("exp_month", "12"), ("exp_year", "30"),
                               ("cvc", "123"), ("postal_code", "W1 1AA")):
        page.get_by_placeholder(placeholder, exact=True).fill(value)


def wait_for_event(app, type_: str, seconds: float = 10) -> StripeEvent:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app.app_context():
            found = db.session.scalar(select(StripeEvent).where(StripeEvent.type == type_))
            if found is not None:
                return found
        time.sleep(0.2)
    raise AssertionError(f"no {type_} webhook arrived")


def test_paying_with_a_good_card_shows_a_receipt_and_the_invoice_is_paid_once(app, api, page, artifacts):
    invoice = open_invoice(api)
    page.goto(payment_link(api, invoice["id"]))
    page.get_by_text("Immunoglobulin product").wait_for()
    page.screenshot(path=str(artifacts / "pay-page.png"), full_page=True)
    type_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay £2,030.00").click()
    page.get_by_role("heading", name="Payment received").wait_for(timeout=15000)
    page.screenshot(path=str(artifacts / "pay-receipt.png"), full_page=True)
    wait_for_event(app, "payment_intent.succeeded")  # localstripe's own signed webhook
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["status"] == "paid" and state["amount_due"] == 0
    assert [(p["amount"], p["method"]) for p in state["payments"]] == [(203000, "card_online")]


def test_a_declined_card_says_so_and_leaves_the_invoice_open_then_another_card_works(app, api, page):
    invoice = open_invoice(api)
    page.goto(payment_link(api, invoice["id"]))
    type_card(page, "4000000000000341")
    page.get_by_role("button", name="Pay £2,030.00").click()
    alert = page.get_by_role("alert")
    alert.filter(has_text="declined").wait_for(timeout=15000)
    assert "has not been charged" in alert.inner_text()
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (state["status"], state["payments"]) == ("open", [])
    wait_for_event(app, "payment_intent.payment_failed")
    trail = api.get(f"/api/v1/invoices/{invoice['id']}/audit").get_json()["data"]
    assert trail[-1]["action"] == "online_payment_failed"
    type_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay £2,030.00").click()
    page.get_by_role("heading", name="Payment received").wait_for(timeout=15000)
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["status"] == "paid"


def test_a_3d_secure_card_completes_through_the_challenge(api, page, artifacts):
    invoice = open_invoice(api)
    page.goto(payment_link(api, invoice["id"]))
    type_card(page, "4000002500003155")
    page.get_by_role("button", name="Pay £2,030.00").click()
    challenge = page.get_by_role("button", name="Complete authentication")
    challenge.wait_for(timeout=15000)
    page.screenshot(path=str(artifacts / "pay-3ds-challenge.png"), full_page=True)
    challenge.click()
    page.get_by_role("heading", name="Payment received").wait_for(timeout=15000)
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["status"] == "paid" and len(state["payments"]) == 1

"""Paying online through localstripe with the real SDK: links, the pay page, intents,
Stripe's webhook, refunds through Stripe, and Stripe being down."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from billing.extensions import db
from billing.models import Invoice, PaymentLink, StripeEvent, utcnow
from tests import stripe_helpers as sh
from tests.conftest import row_counts, use_stripe
from tests.factories import invoice_body, open_invoice, payment_link, price_list_document
from tests.servers import LocalStripe


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def path_of(url: str) -> str:
    return urlsplit(url).path


def stored(app, invoice_id: str) -> Invoice:
    with app.app_context():
        return db.session.scalar(select(Invoice).where(Invoice.id == invoice_id))


def post_stripe(client, event):
    body, header = sh.signed(event)
    return client.post("/api/v1/webhooks/stripe", data=body,
                       headers={"Content-Type": "application/json", "Stripe-Signature": header})


# --- links ------------------------------------------------------------------------------------

def test_a_payment_link_is_long_random_stored_hashed_and_expires(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://billing.clinic.example")
    invoice = open_invoice(api)
    # The host is PUBLIC_BASE_URL's, never the request's (anyone can send any Host header).
    response = api.post(f"/api/v1/invoices/{invoice['id']}/payment-link", headers={"Host": "evil.example"})
    assert response.status_code == 201
    body = response.get_json()
    token = path_of(body["url"]).rsplit("/", 1)[1]
    assert body["url"].startswith("https://billing.clinic.example/pay/") and len(token) >= 43  # 256 bits
    assert body["expires_at"][:10] == (utcnow() + timedelta(days=30)).date().isoformat()
    with app.app_context():
        (link,) = db.session.scalars(select(PaymentLink))
        assert token not in (link.token_hash, link.id)


def test_links_are_for_open_invoices_with_something_due(api):
    draft = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    assert api.post(f"/api/v1/invoices/{draft['id']}/payment-link").status_code == 409


def test_unknown_and_expired_links_look_the_same(app, api, client, stripe_on):
    url = payment_link(api, open_invoice(api)["id"])
    unknown = client.get("/pay/" + "x" * 43)
    with app.app_context():
        db.session.execute(update(PaymentLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    expired = client.get(path_of(url))
    assert unknown.status_code == expired.status_code == 404
    assert unknown.get_data() == expired.get_data()
    assert b"not valid or has expired" in expired.get_data()


def test_paid_and_void_invoices_say_so(api, client, stripe_on):
    paid = open_invoice(api)
    paid_url = payment_link(api, paid["id"])
    api.post(f"/api/v1/invoices/{paid['id']}/payments", json={"amount": 203000, "method": "cash"})
    assert b"has been paid" in client.get(path_of(paid_url)).get_data()
    void = open_invoice(api)
    void_url = payment_link(api, void["id"])
    api.post(f"/api/v1/invoices/{void['id']}/void")
    assert b"was cancelled" in client.get(path_of(void_url)).get_data()


# --- the pay page and its PaymentIntent -------------------------------------------------------

def test_the_pay_page_shows_the_two_fees_and_nothing_clinical(app, api, client, stripe_on):
    invoice = open_invoice(api, other_items=[{"code": "NKA", "description": "NK cell assay",
                                              "category": "fertility_investigation"}])
    page = client.get(path_of(payment_link(api, invoice["id"])))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for expected in (app.config["CLINIC_NAME"], invoice["number"], "Immunoglobulin product", "£1,680.00",
                     "Infusion service", "£350.00", "£2,030.00", 'id="card-element"', "Pay £2,030.00"):
        assert expected in html
    for clinical in ("IVIG", "10%", "dose", "vial", "27.4", "NK cell", "fertility", "minutes", "Alex"):
        assert clinical.lower() not in html.lower(), clinical
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' http://127.0.0.1" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert "<script>" not in html  # no inline script: every script has a src
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_one_intent_per_invoice_with_only_its_id_and_number_reused_until_the_amount_changes(app, api, client, stripe_on):
    invoice = open_invoice(api)
    path = path_of(payment_link(api, invoice["id"]))
    client.get(path)
    first = stored(app, invoice["id"])
    intent = sh.client(stripe_on.url).v1.payment_intents.retrieve(first.stripe_payment_intent)
    assert (intent.amount, intent.currency, intent.status) == (203000, "gbp", "requires_payment_method")
    assert intent.metadata.to_dict() == {"invoice_id": invoice["id"], "invoice_number": invoice["number"]}
    assert intent.client_secret in client.get(path).get_data(as_text=True)
    assert stored(app, invoice["id"]).stripe_payment_intent == first.stripe_payment_intent  # reused
    # staff take part of it by hand: the page asks Stripe for the rest, on a new intent
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 3000, "method": "cash"})
    client.get(path)
    second = stored(app, invoice["id"])
    assert second.stripe_payment_intent != first.stripe_payment_intent and second.stripe_attempt == 2
    replaced = sh.client(stripe_on.url).v1.payment_intents.retrieve(second.stripe_payment_intent)
    assert replaced.amount == 200000
    assert sh.client(stripe_on.url).v1.payment_intents.retrieve(first.stripe_payment_intent).status == "canceled"


def test_the_return_page_settles_a_payment_whose_webhook_was_lost(app, api, client, stripe_on):
    invoice = open_invoice(api)
    path = path_of(payment_link(api, invoice["id"]))
    client.get(path)
    intent_id = stored(app, invoice["id"]).stripe_payment_intent
    assert sh.pay_intent(stripe_on.url, intent_id).status == "succeeded"  # no webhook reaches us
    receipt = client.get(f"{path}/done?payment_intent={intent_id}")
    assert receipt.status_code == 200
    assert b"Payment received" in receipt.get_data() and b"\xc2\xa32,030.00" in receipt.get_data()
    client.get(f"{path}/done?payment_intent={intent_id}")  # a reload records nothing more
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["status"] == "paid" and state["amount_due"] == 0
    assert [(p["amount"], p["method"]) for p in state["payments"]] == [(203000, "card_online")]


# --- Stripe's webhook -------------------------------------------------------------------------

def test_a_bad_stripe_signature_is_400_and_records_nothing(app, client, stripe_on):
    before = row_counts(app)
    body = json.dumps(sh.event("payment_intent.succeeded", {"id": "pi_x"}, "evt_bad")).encode()
    for header in ("", "t=1,v1=abc", sh.signed({"x": 1})[1]):
        response = client.post("/api/v1/webhooks/stripe", data=body,
                               headers={"Content-Type": "application/json", "Stripe-Signature": header})
        assert response.status_code == 400
        assert response.mimetype == "application/problem+json"
    assert row_counts(app) == before


def _succeeded_intent(app, api, client, localstripe_url):
    invoice = open_invoice(api)
    client.get(path_of(payment_link(api, invoice["id"])))
    intent = sh.pay_intent(localstripe_url, stored(app, invoice["id"]).stripe_payment_intent)
    return invoice, intent


def test_payment_intent_succeeded_five_times_at_once_records_one_payment(app, api, client, stripe_on):
    invoice, intent = _succeeded_intent(app, api, client, stripe_on.url)
    body, header = sh.signed(sh.event("payment_intent.succeeded", intent.to_dict(), "evt_paid_1"))
    barrier = threading.Barrier(5)

    def deliver(_):
        c = app.test_client()
        barrier.wait(timeout=10)
        return c.post("/api/v1/webhooks/stripe", data=body,
                      headers={"Content-Type": "application/json", "Stripe-Signature": header})

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(deliver, range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert sorted(a.get_json()["outcome"] for a in answers) == ["duplicate"] * 4 + ["payment_recorded"]
    # and as a different event about the same intent (Stripe may send more than one)
    assert post_stripe(client, sh.event("payment_intent.succeeded", intent.to_dict(), "evt_paid_2")).status_code == 200
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["status"] == "paid" and len(state["payments"]) == 1 and state["amount_paid"] == 203000


def test_a_failed_payment_is_recorded_for_staff(api, client, stripe_on, app):
    invoice = open_invoice(api)
    obj = {"id": "pi_failed1", "object": "payment_intent", "amount": 203000, "currency": "gbp",
           "status": "requires_payment_method", "metadata": {"invoice_id": invoice["id"]},
           "last_payment_error": {"message": "Your card was declined."}}
    assert post_stripe(client, sh.event("payment_intent.payment_failed", obj, "evt_fail_1")).get_json()["outcome"] \
        == "payment_failed"
    trail = api.get(f"/api/v1/invoices/{invoice['id']}/audit").get_json()["data"]
    assert trail[-1]["action"] == "online_payment_failed"
    assert trail[-1]["detail"]["reason"] == "Your card was declined."
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["status"] == "open"


def test_unknown_stripe_events_are_answered_and_logged(app, client, stripe_on):
    response = post_stripe(client, sh.event("customer.created", {"id": "cus_1"}, "evt_other"))
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"
    with app.app_context():
        assert db.session.scalar(select(StripeEvent.type).where(StripeEvent.id == "evt_other")) == "customer.created"


def test_a_refund_made_in_stripes_dashboard_is_recorded_once(app, api, client, stripe_on):
    invoice, intent = _succeeded_intent(app, api, client, stripe_on.url)
    post_stripe(client, sh.event("payment_intent.succeeded", intent.to_dict(), "evt_p"))
    refund = sh.client(stripe_on.url).v1.refunds.create(params={"payment_intent": intent.id, "amount": 5000})
    charge = {"id": "ch_1", "object": "charge", "payment_intent": intent.id, "amount": 203000,
              "amount_refunded": 5000, "refunded": False,
              "refunds": {"object": "list", "data": [{"id": refund.id, "amount": 5000, "status": "succeeded"}]}}
    for event_id in ("evt_r1", "evt_r1", "evt_r2"):  # a redelivery, then another event saying the same
        assert post_stripe(client, sh.event("charge.refunded", charge, event_id)).status_code == 200
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["amount_refunded"] == 5000 and len(state["refunds"]) == 1


# --- refunds through Stripe -------------------------------------------------------------------

def test_refunding_a_card_payment_goes_through_stripe(app, api, client, stripe_on):
    invoice, intent = _succeeded_intent(app, api, client, stripe_on.url)
    post_stripe(client, sh.event("payment_intent.succeeded", intent.to_dict(), "evt_p"))
    response = api.post(f"/api/v1/invoices/{invoice['id']}/refunds", json={"amount": 20000, "reason": "shorter"})
    assert response.status_code == 201, response.get_json()
    refunds = sh.client(stripe_on.url).v1.refunds.list(params={"payment_intent": intent.id}).data
    assert [r.amount for r in refunds] == [20000]
    assert response.get_json()["amount_refunded"] == 20000


def test_a_refund_larger_than_what_remains_is_422_and_stripe_is_never_asked(app, api, client, stripe_on):
    invoice, intent = _succeeded_intent(app, api, client, stripe_on.url)
    post_stripe(client, sh.event("payment_intent.succeeded", intent.to_dict(), "evt_p"))
    api.post(f"/api/v1/invoices/{invoice['id']}/refunds", json={"amount": 200000, "reason": "most"})
    response = api.post(f"/api/v1/invoices/{invoice['id']}/refunds", json={"amount": 3001, "reason": "too much"})
    assert response.status_code == 422
    refunds = sh.client(stripe_on.url).v1.refunds.list(params={"payment_intent": intent.id}).data
    assert [r.amount for r in refunds] == [200000]


# --- Stripe down ------------------------------------------------------------------------------

def test_stripe_unreachable_is_503_changes_nothing_and_a_retry_works(app, api, client, monkeypatch, tmp_path):
    stripe = LocalStripe(tmp_path / "store.pickle")
    use_stripe(app, monkeypatch, stripe.url)  # configured, but not started yet: down
    invoice = open_invoice(api)
    path = path_of(payment_link(api, invoice["id"]))
    before = stored(app, invoice["id"])
    page = client.get(path)
    assert page.status_code == 503 and b"reach our card processor" in page.get_data()
    after = stored(app, invoice["id"])
    assert (after.stripe_payment_intent, after.stripe_attempt, after.revision) == (None, 0, before.revision)
    stripe.start()
    try:
        assert client.get(path).status_code == 200
        intent_id = stored(app, invoice["id"]).stripe_payment_intent
        sh.pay_intent(stripe.url, intent_id)
        post_stripe(client, sh.event("payment_intent.succeeded",
                                     sh.client(stripe.url).v1.payment_intents.retrieve(intent_id).to_dict(), "evt_ok"))
        # down again: a refund of the card payment is 503 and changes nothing
        stripe.stop()
        response = api.post(f"/api/v1/invoices/{invoice['id']}/refunds", json={"amount": 100, "reason": "x"})
        assert response.status_code == 503 and response.mimetype == "application/problem+json"
        state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
        assert (state["status"], state["amount_refunded"], len(state["payments"])) == ("paid", 0, 1)
        stripe.start()
        assert api.post(f"/api/v1/invoices/{invoice['id']}/refunds", json={"amount": 100, "reason": "x"}).status_code == 201
    finally:
        stripe.stop()
        app.extensions.pop("stripe_gateway", None)


def test_a_completed_booking_gets_a_payment_link_when_paying_online_is_on(app, api, client, stripe_on, monkeypatch):
    from billing.webhooks import sign
    from tests.factories import BOOKING_SECRET, booking_event

    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://billing.clinic.example")
    body = json.dumps(booking_event("infusion.completed", event_id="evt_done")).encode()
    answer = client.post("/api/v1/webhooks/booking", data=body, headers={
        "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, body)}).get_json()
    assert answer["result"] == "finalized" and answer["payment_url"].startswith("https://billing.clinic.example/pay/")
    page = client.get(path_of(answer["payment_url"]))
    assert page.status_code == 200 and b"Pay \xc2\xa31,770.00" in page.get_data()


def test_the_pdf_carries_the_current_payment_link(api, stripe_on):
    import io

    from pypdf import PdfReader

    invoice = open_invoice(api)
    url = payment_link(api, invoice["id"])
    pdf = api.get(f"/api/v1/invoices/{invoice['id']}/pdf").get_data()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "Pay online" in text and url in text

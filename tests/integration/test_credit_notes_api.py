"""Credit notes through the API (CONTRACT.md section 8), with exact pence: shapes, the limits,
the 409s, Idempotency-Key, a card refund through localstripe, the PDF, CSV and the booking
flag that suggests one."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from pypdf import PdfReader

from billing.webhooks import sign
from tests import stripe_helpers as sh
from tests.conftest import row_counts
from tests.factories import SHORTER, BOOKING_SECRET, booking_event, open_invoice, payment_link, price_list_document

@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def credit(api, invoice_id, body=SHORTER, **headers):
    return api.post(f"/api/v1/invoices/{invoice_id}/credit-notes", json=body, headers=headers or None)


def test_a_credit_note_before_payment_has_its_number_and_lowers_what_is_due(api):
    invoice = open_invoice(api)
    response = credit(api, invoice["id"])
    assert response.status_code == 201, response.get_json()
    note = response.get_json()
    assert re.fullmatch(r"CN-\d{4}-000001", note["number"]) and note["id"].startswith("cn_")
    assert (note["invoice_id"], note["invoice_number"], note["reason"]) == (invoice["id"], invoice["number"], "order_change")
    assert note["lines"] == [{"category": "infusion_service", "description": "Shorter infusion", "amount": 10000,
                              "tax_rate": "0", "tax_amount": 0}]
    assert (note["subtotal"], note["tax"], note["total"], note["pre_payment_amount"], note["post_payment_amount"]) == \
        (10000, 0, 10000, 10000, 0)
    after = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (after["total"], after["amount_credited"], after["amount_due"], after["credit_notes"]) == \
        (203000, 10000, 193000, [note["id"]])
    assert api.get(f"/api/v1/credit-notes/{note['id']}").get_json() == note
    listed = api.get(f"/api/v1/credit-notes?invoice_id={invoice['id']}").get_json()
    assert [n["id"] for n in listed["data"]] == [note["id"]] and listed["has_more"] is False
    trail = api.get(f"/api/v1/invoices/{invoice['id']}/audit").get_json()["data"]
    assert (trail[-1]["action"], trail[-1]["detail"]["credit_note_id"]) == ("credit_note_issued", note["id"])


def test_over_credit_is_422_saying_what_is_left_and_changes_nothing(app, api):
    invoice = open_invoice(api)
    credit(api, invoice["id"], {**SHORTER, "lines": [{"category": "infusion_service", "amount": 30000}]})
    before = row_counts(app)
    response = credit(api, invoice["id"], {**SHORTER, "lines": [{"category": "infusion_service", "amount": 6000}]})
    assert response.status_code == 422 and "£50.00 of infusion_service left" in response.get_json()["detail"]
    assert "lines.0.amount" in response.get_json()["errors"]
    assert row_counts(app) == before


def test_money_received_must_be_split_exactly(api):
    invoice = open_invoice(api)
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 203000, "method": "cash"})
    short = credit(api, invoice["id"], {**SHORTER, "out_of_band_amount": 9000})
    assert short.status_code == 422 and "£10.00 short" in short.get_json()["detail"]
    done = credit(api, invoice["id"], {**SHORTER, "out_of_band_amount": 10000})
    assert done.status_code == 201 and done.get_json()["out_of_band_amount"] == 10000
    after = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (after["status"], after["amount_refunded"], after["amount_due"]) == ("paid", 10000, 0)


def test_drafts_and_void_invoices_are_409(api):
    draft = api.post("/api/v1/invoices", json=__import__("tests.factories", fromlist=["invoice_body"]).invoice_body())
    assert credit(api, draft.get_json()["id"]).status_code == 409
    void = open_invoice(api)
    api.post(f"/api/v1/invoices/{void['id']}/void")
    response = credit(api, void["id"])
    assert response.status_code == 409 and "void" in response.get_json()["detail"]


def test_a_retry_with_the_same_key_issues_one_credit_note(api):
    invoice = open_invoice(api)
    first = credit(api, invoice["id"], **{"Idempotency-Key": "cn-1"})
    again = credit(api, invoice["id"], **{"Idempotency-Key": "cn-1"})
    assert (first.status_code, again.status_code) == (201, 201) and again.get_json() == first.get_json()
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["amount_credited"] == 10000


def test_after_a_card_payment_the_credit_is_refunded_through_localstripe(app, api, client, stripe_on):
    invoice = open_invoice(api)
    client.get(__import__("urllib.parse", fromlist=["urlsplit"]).urlsplit(payment_link(api, invoice["id"])).path)
    intent_id = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    with app.app_context():
        from billing.models import Invoice
        from billing.extensions import db
        from sqlalchemy import select

        intent_id = db.session.scalar(select(Invoice.stripe_payment_intent).where(Invoice.id == invoice["id"]))
    paid = sh.pay_intent(stripe_on.url, intent_id)
    body, header = sh.signed(sh.event("payment_intent.succeeded", paid.to_dict(), "evt_paid"))
    client.post("/api/v1/webhooks/stripe", data=body, headers={"Content-Type": "application/json", "Stripe-Signature": header})
    response = credit(api, invoice["id"], {**SHORTER, "refund_amount": 10000})
    assert response.status_code == 201, response.get_json()
    refunds = sh.client(stripe_on.url).v1.refunds.list(params={"payment_intent": intent_id}).data
    assert [r.amount for r in refunds] == [10000]
    after = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (after["amount_paid"], after["amount_refunded"], after["amount_credited"], after["amount_due"]) == \
        (203000, 10000, 10000, 0)


def test_the_pdf_is_headed_credit_note_and_cites_the_invoice(api):
    invoice = open_invoice(api)
    note = credit(api, invoice["id"], {**SHORTER, "lines": [
        {"category": "immunoglobulin_product", "amount": 56000, "description": "One 10 g vial unused"},
        {"category": "infusion_service", "amount": 10000, "description": "Shorter infusion"}]}).get_json()
    pdf = api.get(f"/api/v1/credit-notes/{note['id']}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.get_data())).pages).split())
    for expected in ("Credit note", note["number"], f"Corrects invoice {invoice['number']}",
                     "Immunoglobulin product: One 10 g vial unused", "£560.00", "Infusion service: Shorter infusion",
                     "£100.00", "Total credited £660.00"):
        assert expected in text, expected


def test_the_credit_notes_csv_is_neutralised_and_revenue_is_net(app, api, client):
    from billing.access import create_user

    invoice = open_invoice(api)
    credit(api, invoice["id"], {**SHORTER, "memo": "=HYPERLINK(\"http://x\")"})
    with app.app_context():
        create_user("viewer@clinic.example", "viewer", "correct horse battery")
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "viewer@clinic.example", "password": "correct horse battery", "csrf_token": csrf})
    rows = list(csv.DictReader(io.StringIO(client.get("/reports/credit-notes.csv").get_data(as_text=True))))
    assert [(r["invoice_number"], r["service"], r["total"], r["memo"]) for r in rows] == \
        [(invoice["number"], "100.00", "100.00", "'=HYPERLINK(\"http://x\")")]
    reports = client.get("/reports").get_data(as_text=True)
    assert "£250.00" in reports  # the service line: £350.00 invoiced less £100.00 credited


def test_a_booking_changed_after_issue_suggests_the_credit_note_and_issues_nothing(app, api, client, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])

    def deliver(event):
        body = json.dumps(event).encode()
        return client.post("/api/v1/webhooks/booking", data=body, headers={
            "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, body)}).get_json()

    done = deliver(booking_event("infusion.completed", event_id="evt_1", duration_minutes=180))
    later = deliver(booking_event("infusion.updated", event_id="evt_2", created=1764590000, duration_minutes=100))
    assert later["result"] == "ignored"
    assert "A credit note for £100.00 of infusion_service would reconcile it." in later["flag"]
    assert api.get(f"/api/v1/credit-notes?invoice_id={done['invoice_id']}").get_json()["data"] == []
    # finance staff see it on the invoice, with the credit note prefilled one click away
    from billing.access import create_user

    with app.app_context():
        create_user("finance@clinic.example", "finance", "correct horse battery")
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "finance@clinic.example", "password": "correct horse battery", "csrf_token": csrf})
    html = client.get(f"/invoices/{done['invoice_id']}").get_data(as_text=True)
    link = re.search(r'id="suggested-credit" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    form = client.get(link).get_data(as_text=True)
    assert 'value="100.00"' in form and "order_change" in link
    more = deliver(booking_event("infusion.updated", event_id="evt_3", created=1764590100, duration_minutes=300))
    assert "£100.00 higher: an extra invoice for that would reconcile it." in more["flag"]


def test_the_invoice_pdf_shows_the_credit_that_lowered_what_is_due(api):
    invoice = open_invoice(api)
    credit(api, invoice["id"])
    pdf = api.get(f"/api/v1/invoices/{invoice['id']}/pdf").get_data()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "Total £2,030.00" in text and "Credit notes -£100.00" in text and "Amount due £1,930.00" in text

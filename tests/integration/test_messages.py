"""Messages (CONTRACT.md section 9): each email reaches a real SMTP server (aiosmtpd on
127.0.0.1), each event a receiver that checks its Standard Webhooks signature, once, after
the change commits, and never for a change that rolled back."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing import outbox
from billing.extensions import db
from billing.models import Invoice, OutboxMessage, utcnow
from billing.unit_of_work import transaction
from tests.factories import invoice_body, price_list_document

CLINICAL = re.compile(r"g/kg|\bkg\b|dose|(?<!font-)weight|NK cell|fertility|waste|vial|diagnos", re.I)


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def deliver(app, now=None) -> int:
    with app.app_context():
        tried = outbox.deliver_due(now=now)
        db.session.remove()
        return tried


def issued(api, **changes) -> dict:
    body = invoice_body(other_items=[{"code": "NKA", "description": "NK cell assay",
                                      "category": "fertility_investigation"}], **changes)
    draft = api.post("/api/v1/invoices", json=body).get_json()
    response = api.post(f"/api/v1/invoices/{draft['id']}/finalize")
    assert response.status_code == 200
    return response.get_json()


def stored_messages(app, invoice_id: str) -> list[OutboxMessage]:
    with app.app_context():
        invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id))
        rows = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.invoice_seq == invoice.seq)
                                       .order_by(OutboxMessage.seq)))
        db.session.expunge_all()
        return rows


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


# --- email ------------------------------------------------------------------------------------

def test_an_issued_invoice_is_emailed_with_its_pdf_and_a_payment_link_that_opens_the_pay_page(
        app, api, client, mail, stripe_on):
    invoice = issued(api)
    assert mail.messages == []  # nothing leaves before the worker runs
    assert deliver(app) >= 1
    [email] = mail.wait_for(1)
    message = [m for m in stored_messages(app, invoice["id"]) if m.topic == "email.invoice_issued"][0]
    assert email["To"] == "alex@example.org"
    assert email["From"] == "Riverside Clinic <billing@clinic.example>"
    assert email["Subject"] == f"Invoice {invoice['number']} from Riverside Clinic"
    assert email["Message-ID"] == f"<{message.id}@clinic.example>"
    text, html = text_of(email), html_of(email)
    for body in (text, html):
        assert "£1,680.00" in body and "£350.00" in body and "£2,030.00" in body
        assert "Immunoglobulin product" in body and "Infusion service" in body
        assert not CLINICAL.search(body), CLINICAL.search(body)
    [attachment] = list(email.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{invoice['number']}.pdf"
    assert invoice["number"] in pdf_text(attachment.get_content())
    link = re.search(r"http://billing\.clinic\.example(/pay/[A-Za-z0-9_-]+)", text).group(1)
    assert link in html
    page = client.get(link)
    assert page.status_code == 200 and invoice["number"] in page.get_data(as_text=True)
    assert message.status == "sent" and message.attempts == 1


def test_the_payer_gets_the_email_when_the_invoice_names_one(app, api, mail):
    invoice = issued(api)
    with app.app_context():
        row = db.session.scalar(select(Invoice).where(Invoice.id == invoice["id"]))
        row.bill_to = {"name": "Acme Health Insurance", "email": "claims@acme.example"}
        db.session.commit()
    assert api.post(f"/api/v1/invoices/{invoice['id']}/payments",
                    json={"amount": 3000, "method": "bank_transfer"}).status_code == 201
    deliver(app)
    issued_email, receipt = mail.wait_for(2)
    assert issued_email["To"] == "alex@example.org"  # queued while the patient was the only address
    assert receipt["To"] == "claims@acme.example"
    assert "Dear Acme Health Insurance" in text_of(receipt)


@pytest.mark.parametrize("method, shown", [("card_terminal", "Card terminal"), ("bank_transfer", "Bank transfer"),
                                           ("cash", "Cash"), ("other", "Other")])
def test_every_payment_gets_a_receipt_saying_what_remains_due(app, api, mail, method, shown):
    invoice = issued(api)
    assert api.post(f"/api/v1/invoices/{invoice['id']}/payments",
                    json={"amount": 53000, "method": method, "received_on": "2026-11-20"}).status_code == 201
    deliver(app)
    receipt = [m for m in mail.wait_for(2) if m["Subject"].startswith("Payment received")][0]
    assert receipt["Subject"] == f"Payment received for invoice {invoice['number']}"
    text = text_of(receipt)
    assert f"we received £530.00 on 20 November 2026 ({shown}) for invoice {invoice['number']}" in text
    assert "£1,500.00 is still due on it." in text


def test_a_refund_and_a_credit_note_are_emailed_with_the_credit_notes_pdf(app, api, mail):
    invoice = issued(api)
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 203000, "method": "cash"})
    response = api.post(f"/api/v1/invoices/{invoice['id']}/credit-notes", json={
        "reason": "order_change", "lines": [{"category": "infusion_service", "amount": 5000}],
        "out_of_band_amount": 5000})
    assert response.status_code == 201, response.get_json()
    note = response.get_json()
    assert api.post(f"/api/v1/invoices/{invoice['id']}/refunds",
                    json={"amount": 12050, "reason": "goodwill"}).status_code == 201
    deliver(app)
    emails = {m["Subject"]: m for m in mail.wait_for(5)}
    assert set(emails) == {
        f"Invoice {invoice['number']} from Riverside Clinic", f"Payment received for invoice {invoice['number']}",
        f"Credit note {note['number']} for invoice {invoice['number']}", f"Refund for invoice {invoice['number']}"}
    credit = emails[f"Credit note {note['number']} for invoice {invoice['number']}"]
    [attachment] = list(credit.iter_attachments())
    assert attachment.get_filename() == f"{note['number']}.pdf" and note["number"] in pdf_text(attachment.get_content())
    assert f"credit note {note['number']} for £50.00, against invoice {invoice['number']}" in text_of(credit)
    # The credit note's money already received went back outside the service (its own refund
    # email, £50.00), then the £120.50 refund: two refund emails, one subject.
    refunds = [m for m in mail.messages if m["Subject"].startswith("Refund")]
    assert sorted(re.search(r"refunded (£[\d,.]+)", text_of(m)).group(1) for m in refunds) == ["£120.50", "£50.00"]


def test_no_address_means_no_email_and_no_error(app, api, mail):
    body = invoice_body(patient={"id": "pt_10", "name": "No Email"})
    draft = api.post("/api/v1/invoices", json=body).get_json()
    assert api.post(f"/api/v1/invoices/{draft['id']}/finalize").status_code == 200
    assert [m.kind for m in stored_messages(app, draft["id"])] == []
    assert deliver(app) == 0 and mail.messages == []


def test_a_rolled_back_change_sends_nothing(app, api, mail, receiver):
    invoice = issued(api)
    deliver(app)
    mail.wait_for(1)
    receiver.wait_for(1)
    from billing import invoicing

    with app.app_context():
        with pytest.raises(RuntimeError):
            with transaction():
                invoicing.record_payment(invoice["id"], 1000, "cash", "test")
                raise RuntimeError("the request failed after the payment")
        db.session.remove()
    assert deliver(app) == 0
    assert len(mail.messages) == 1 and len(receiver.received) == 1


# --- events to the booking system -------------------------------------------------------------

def test_each_change_sends_its_event_signed_so_standardwebhooks_verifies_it(app, api, receiver):
    invoice = issued(api, booking_id="bk_77")
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 203000, "method": "bank_transfer"})
    deliver(app)
    events = receiver.wait_for(3)
    assert receiver.refused == []
    assert [body["type"] for _, body in events] == ["invoice.finalized", "payment.recorded", "invoice.paid"]
    ids = {m.topic: m.id for m in stored_messages(app, invoice["id"])}
    assert [webhook_id for webhook_id, _ in events] == [ids["invoice.finalized"], ids["payment.recorded"],
                                                        ids["invoice.paid"]]
    payment_id = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["payments"][0]["id"]
    finalized, recorded, paid = (body for _, body in events)
    assert set(finalized) == {"type", "timestamp", "data"}
    assert finalized["data"] == {
        "invoice_id": invoice["id"], "number": invoice["number"], "booking_id": "bk_77", "patient_id": "pt_9",
        "status": "open", "currency": "GBP", "total": 203000, "amount_paid": 0, "amount_refunded": 0,
        "amount_credited": 0, "amount_due": 203000}
    assert recorded["data"] == {**finalized["data"], "status": "paid", "amount_paid": 203000, "amount_due": 0,
                                "payment_id": payment_id}
    assert paid["data"] == {**finalized["data"], "status": "paid", "amount_paid": 203000, "amount_due": 0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", paid["timestamp"])
    assert "Alex" not in str(events)  # ids and amounts only


def test_void_write_off_refund_and_credit_note_events(app, api, receiver):
    voided = issued(api)
    api.post(f"/api/v1/invoices/{voided['id']}/void")
    written_off = issued(api)
    api.post(f"/api/v1/invoices/{written_off['id']}/mark-uncollectible")
    paid = issued(api)
    api.post(f"/api/v1/invoices/{paid['id']}/payments", json={"amount": 203000, "method": "cash"})
    api.post(f"/api/v1/invoices/{paid['id']}/refunds", json={"amount": 1000, "reason": "goodwill"})
    note = api.post(f"/api/v1/invoices/{paid['id']}/credit-notes", json={
        "reason": "other", "lines": [{"category": "infusion_service", "amount": 2000}],
        "out_of_band_amount": 2000}).get_json()
    deliver(app)
    events = [body for _, body in receiver.wait_for(10)]
    by_invoice = {}
    for body in events:
        by_invoice.setdefault(body["data"]["invoice_id"], []).append(body["type"])
    assert by_invoice[voided["id"]] == ["invoice.finalized", "invoice.voided"]
    assert by_invoice[written_off["id"]] == ["invoice.finalized", "invoice.marked_uncollectible"]
    assert by_invoice[paid["id"]] == ["invoice.finalized", "payment.recorded", "invoice.paid", "refund.recorded",
                                      "credit_note.issued", "refund.recorded"]
    credit = [b for b in events if b["type"] == "credit_note.issued"][0]["data"]
    assert credit["credit_note_id"] == note["id"]
    assert (credit["amount_refunded"], credit["amount_credited"]) == (3000, 2000)
    refund_ids = [b["data"]["refund_id"] for b in events if b["type"] == "refund.recorded"]
    assert len(set(refund_ids)) == 2 and all(r.startswith("re_") for r in refund_ids)


def test_a_receiver_answering_503_twice_gets_the_event_on_the_third_try_with_the_same_id(
        app, api, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_RETRY_SECONDS", (5, 60, 300))
    receiver.fail_next = 2
    invoice = issued(api)
    assert deliver(app) == 1
    assert receiver.answers == [503]
    assert deliver(app) == 0  # not before its retry is due
    assert deliver(app, now=utcnow() + timedelta(seconds=6)) == 1
    assert deliver(app, now=utcnow() + timedelta(seconds=70)) == 1
    assert receiver.answers == [503, 503, 204]
    [(webhook_id, body)] = receiver.received
    [message] = stored_messages(app, invoice["id"])
    assert webhook_id == message.id and body["type"] == "invoice.finalized"
    assert (message.status, message.attempts, message.last_error) == ("sent", 3, None)


def test_an_event_that_keeps_failing_ends_failed_and_staff_can_resend_it(app, api, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_RETRY_SECONDS", (5,))
    receiver.fail_next = 2
    invoice = issued(api)
    deliver(app)
    deliver(app, now=utcnow() + timedelta(seconds=6))
    listed = api.get(f"/api/v1/invoices/{invoice['id']}/messages").get_json()["data"]
    assert [(m["kind"], m["topic"], m["status"], m["attempts"], m["to"]) for m in listed] == [
        ("event", "invoice.finalized", "failed", 2, receiver.url)]
    assert listed[0]["last_error"] == "NotDelivered: The booking system answered 503"
    response = api.post(f"/api/v1/messages/{listed[0]['id']}/resend")
    assert response.status_code == 202 and response.get_json()["status"] == "pending"
    assert api.post(f"/api/v1/messages/{listed[0]['id']}/resend").status_code == 409  # still queued
    deliver(app)
    assert [webhook_id for webhook_id, _ in receiver.received] == [listed[0]["id"]]
    # A sent one is copied under a new id, so the receiver doesn't drop it as a repeat.
    again = api.post(f"/api/v1/messages/{listed[0]['id']}/resend").get_json()
    assert again["id"] != listed[0]["id"] and again["status"] == "pending"
    deliver(app)
    assert [webhook_id for webhook_id, _ in receiver.received] == [listed[0]["id"], again["id"]]
    assert api.post("/api/v1/messages/msg_nope/resend").status_code == 404


def test_the_message_list_shows_emails_and_events_but_not_the_services_own_stripe_tasks(app, api, mail, receiver):
    invoice = issued(api)
    with app.app_context():
        with transaction():
            row = db.session.scalar(select(Invoice).where(Invoice.id == invoice["id"]))
            outbox.enqueue("stripe", "payment_intent.sync", {"invoice_id": invoice["id"]}, invoice_seq=row.seq)
        db.session.remove()
    listed = api.get(f"/api/v1/invoices/{invoice['id']}/messages").get_json()["data"]
    assert [(m["kind"], m["topic"], m["to"], m["status"]) for m in listed] == [
        ("event", "invoice.finalized", receiver.url, "pending"),
        ("email", "email.invoice_issued", "alex@example.org", "pending")]
    assert api.get("/api/v1/invoices/inv_nope/messages").status_code == 404


def test_links_never_take_their_host_from_the_request(app, api, mail):
    invoice = issued(api)
    response = api.post(f"/api/v1/invoices/{invoice['id']}/payment-link", headers={"Host": "evil.example"})
    assert response.status_code == 201
    assert response.get_json()["url"].startswith("http://billing.clinic.example/pay/")

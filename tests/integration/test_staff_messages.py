"""Messages on the staff pages: the invoice page lists its emails and events with their state,
last error and a resend button; the dashboard counts failed ones and links to them; the
per-invoice switch stops reminders."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from billing import outbox
from billing.extensions import db
from billing.messages.reminders import queue_reminders
from billing.models import Invoice, OutboxMessage, utcnow
from tests.factories import invoice_body, price_list_document
from tests.integration.test_staff_web import sign_in, token, users  # noqa: F401  (the users fixture)


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def issued(api) -> dict:
    draft = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    return api.post(f"/api/v1/invoices/{draft['id']}/finalize").get_json()


def deliver(app, now=None) -> None:
    with app.app_context():
        outbox.deliver_due(now=now)
        db.session.remove()


def test_a_failed_event_shows_on_the_invoice_and_the_dashboard_and_a_resend_delivers_it(
        app, api, client, users, receiver, mail, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_RETRY_SECONDS", (5,))
    receiver.fail_next = 2
    invoice = issued(api)
    deliver(app)
    deliver(app, now=utcnow() + timedelta(seconds=6))
    sign_in(client, "finance")
    dashboard = client.get("/").get_data(as_text=True)
    assert 'id="failed-messages-card"' in dashboard
    assert '<h2>Failed messages</h2><p class="big">1</p><p>one was not delivered: see them</p>' in dashboard
    listing = client.get("/messages").get_data(as_text=True)
    assert invoice["number"] in listing and "The booking system answered 503" in listing
    page = client.get(f"/invoices/{invoice['id']}")
    html = page.get_data(as_text=True)
    assert "Email: invoice" in html and "alex@example.org" in html and "sent" in html
    assert "Event: invoice.finalized" in html and "NotDelivered: The booking system answered 503" in html
    with app.app_context():
        failed = db.session.scalar(select(OutboxMessage).where(OutboxMessage.status == "failed"))
        failed_id = failed.id
    response = client.post(f"/messages/{failed_id}/resend", data={"csrf_token": token(page), "back": "invoice"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/invoices/{invoice['id']}#messages")
    deliver(app)
    assert [webhook_id for webhook_id, _ in receiver.received] == [failed_id]
    assert '<h2>Failed messages</h2><p class="big">0</p>' in client.get("/").get_data(as_text=True)


def test_a_viewer_sees_messages_but_cannot_resend(app, api, client, users, mail):
    invoice = issued(api)
    deliver(app)
    sign_in(client, "viewer")
    page = client.get(f"/invoices/{invoice['id']}")
    assert "Email: invoice" in page.get_data(as_text=True) and "Send again" not in page.get_data(as_text=True)
    with app.app_context():
        message_id = db.session.scalar(select(OutboxMessage.id))
    assert client.post(f"/messages/{message_id}/resend", data={"csrf_token": token(page)}).status_code == 403


def test_the_no_reminders_switch_stops_reminders_and_is_audited(app, api, client, users, mail):
    invoice = issued(api)
    sign_in(client, "finance")
    page = client.get(f"/invoices/{invoice['id']}")
    assert "Payment reminders: on" in page.get_data(as_text=True)
    response = client.post(f"/invoices/{invoice['id']}/reminders", data={"csrf_token": token(page), "reminders": "off"})
    assert response.status_code == 303
    page = client.get(f"/invoices/{invoice['id']}").get_data(as_text=True)
    assert "Payment reminders: off for this invoice." in page and "reminders turned off" in page
    with app.app_context():
        assert db.session.scalar(select(Invoice.reminders_off).where(Invoice.id == invoice["id"])) is True
        assert queue_reminders(date.fromisoformat(invoice["due_date"])) == 0
        db.session.remove()

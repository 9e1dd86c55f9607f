"""From the patient's inbox to a receipt: the invoice email's link opens the pay page in
Chromium, the card is paid through localstripe, and the outbox worker (running as it does in
production, in its own thread) emails the receipt to a real SMTP server."""

from __future__ import annotations

import re
import threading

import pytest

from billing import outbox
from tests.e2e.test_pay_page import type_card, wait_for_event
from tests.factories import open_invoice

pytestmark = pytest.mark.slow


@pytest.fixture
def worker(app):
    stop = threading.Event()

    def run() -> None:
        with app.app_context():
            outbox.run_worker(stop, poll_seconds=0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=20)


def test_the_emailed_link_pays_in_the_browser_and_a_receipt_follows(app, api, page, paying_online, mail, worker,
                                                                    artifacts):
    invoice = open_invoice(api)
    [issued] = mail.wait_for(1)
    assert issued["Subject"] == f"Invoice {invoice['number']} from Riverside Clinic"
    text = issued.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"http://127\.0\.0\.1:\d+/pay/[A-Za-z0-9_-]+", text).group(0)
    page.goto(link)
    page.get_by_text("Immunoglobulin product").wait_for()
    type_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay £2,030.00").click()
    page.get_by_role("heading", name="Payment received").wait_for(timeout=15000)
    page.screenshot(path=str(artifacts / "emailed-link-paid.png"), full_page=True)
    wait_for_event(app, "payment_intent.succeeded")
    issued_again, receipt = mail.wait_for(2, seconds=15)
    assert receipt["To"] == "alex@example.org"
    assert receipt["Subject"] == f"Payment received for invoice {invoice['number']}"
    body = receipt.get_body(preferencelist=("plain",)).get_content()
    assert "we received £2,030.00 on" in body and "(Card, online)" in body
    assert "The invoice is now paid in full." in body
    assert len(mail.messages) == 2  # one receipt, though Stripe's webhook and the return page both saw the payment

"""A finance officer's daily work in Chromium: no pence anywhere on the staff pages (errors
included), failed booking events dismissed with a note, Copy buttons, the key revoked only
after asking, and the live price in view."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest

from billing.access import create_user
from billing.cli import DEMO_PRICE_LIST
from billing.price_lists import create_price_list
from billing.webhooks import sign
from tests.e2e.conftest import STAFF_PASSWORD as PASSWORD, fill_new_invoice, sign_in
from tests.factories import BOOKING_SECRET, booking_event, days_ahead, open_invoice, payment_link

pytestmark = pytest.mark.slow
# A pence figure: a number of five or more digits standing alone (not part of an id such as
# INV-2026-000001, a date or a URL) within 40 characters of "due" or "paid"; and pounds without
# the thousands separator.
STANDALONE_NUMBER = re.compile(r"(?<![\w/.,-])\d{5,}(?![\w/-])")
MONEY_WORD = re.compile(r"\b(?:due|paid)\b", re.IGNORECASE)
UNSEPARATED_POUNDS = re.compile(r"£\d{4,}")


@pytest.fixture
def page(laptop):
    return laptop


@pytest.fixture(autouse=True)
def staff(app, live_server, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    with app.app_context():
        create_user("admin@clinic.example", "admin", PASSWORD)
        create_price_list(DEMO_PRICE_LIST, "tests")


def deliver(client, event) -> int:
    body = json.dumps(event).encode()
    return client.post("/api/v1/webhooks/booking", data=body, headers={
        "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, body)}).status_code


def pence_on(text: str) -> list[str]:
    near = [m.group(0) for m in STANDALONE_NUMBER.finditer(text)
            if MONEY_WORD.search(text, max(0, m.start() - 40), m.end() + 40)]
    return near + UNSEPARATED_POUNDS.findall(text)


def test_the_pence_check_finds_pence_and_passes_pounds():
    assert pence_on("300000 is more than the 153000 due.") == ["300000", "153000"]
    assert pence_on("Amount due\t203000") == ["203000"]
    assert pence_on("£3,000.00 is more than the £1,530.00 due. INV-2026-000001 paid 2026-11-27") == []
    assert pence_on("Outstanding £1120.00") == ["£1120"]


@pytest.fixture
def fixture_invoices(app, api):
    """One invoice in each state staff meet: paid, part paid, refunded, credited, void, overdue."""
    from sqlalchemy import update

    from billing.clock import today_at_clinic
    from billing.extensions import db
    from billing.models import Invoice

    def pay(invoice, amount, **extra):
        response = api.post(f"/api/v1/invoices/{invoice['id']}/payments",
                            json={"amount": amount, "method": "bank_transfer", "reference": "BACS", **extra})
        assert response.status_code == 201, response.get_json()

    made = {name: open_invoice(api, patient={"id": f"pt_{name}", "name": f"Pat {name.title()}"})
            for name in ("paid", "part_paid", "refunded", "credited", "void", "overdue")}
    pay(made["paid"], 203000)
    pay(made["part_paid"], 100000)
    pay(made["refunded"], 203000)
    assert api.post(f"/api/v1/invoices/{made['refunded']['id']}/refunds",
                    json={"amount": 12050, "reason": "Infusion finished early"}).status_code == 201
    assert api.post(f"/api/v1/invoices/{made['credited']['id']}/credit-notes", json={
        "reason": "order_change", "memo": "Shorter infusion", "refund_amount": 0, "out_of_band_amount": 0,
        "lines": [{"category": "infusion_service", "amount": 10000, "description": "Shorter infusion"}]},
    ).status_code == 201
    assert api.post(f"/api/v1/invoices/{made['void']['id']}/void").status_code == 200
    with app.app_context():
        db.session.execute(update(Invoice).where(Invoice.id == made["overdue"]["id"])
                           .values(due_date=today_at_clinic() - timedelta(days=40)))
        db.session.commit()
    payment_link(api, made["part_paid"]["id"])
    return made


def test_no_staff_page_shows_a_pence_figure_errors_included(app, client, api, page, live_server, artifacts,
                                                            fixture_invoices):
    base = live_server.url
    assert deliver(client, booking_event("infusion.booked", event_id="evt_fail", product_code="IVIG-GONE",
                                         service_date=days_ahead(3))) == 422
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    sign_in(page, base, "admin@clinic.example")

    # Every page a link leads to, from the dashboard on (GET only: actions stop at their confirmation).
    seen: set[str] = set()
    found: dict[str, list[str]] = {}
    queue = ["/", "/invoices/new", "/price-lists/quote", "/booking-events?outcome=failed"]
    queue += [f"/invoices/{inv['id']}/{action}" for inv in fixture_invoices.values()
              for action in ("payment", "refund", "credit-note", "void", "mark-uncollectible")]
    while queue and len(seen) < 150:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(base + path)
        assert response.status < 500, path
        if pence_on(page.locator("body").inner_text()):
            found[path] = pence_on(page.locator("body").inner_text())
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            target = urlsplit(urljoin(base + path, href))
            if (target.netloc == urlsplit(base).netloc and not target.path.endswith((".pdf", ".csv", "/pdf"))
                    and not target.path.startswith(("/static/", "/pay/", "/api/"))):
                queue.append(target.path + (f"?{target.query}" if target.query else ""))
    assert len(seen) >= 40, sorted(seen)
    assert {f"/invoices/{inv['id']}" for inv in fixture_invoices.values()} <= seen

    # The figures of the refunded invoice, in pounds, and why they add up.
    page.goto(f"{base}/invoices/{fixture_invoices['refunded']['id']}")
    assert page.locator("#amount-net").inner_text() == "£1,909.50"
    assert "Refunded £120.50" in page.locator("#money-relation").inner_text()
    page.screenshot(path=str(artifacts / "invoice-money-explained.png"), full_page=True)
    page.goto(f"{base}/invoices/{fixture_invoices['part_paid']['id']}")
    assert page.locator("h1 .status").inner_text() == "part paid"

    # An over-payment and an over-refund on the forms read in pounds.
    page.get_by_role("link", name="Record payment").click()
    page.get_by_label("Amount (£)").fill("3000.00")
    page.get_by_role("button", name="Record payment").click()
    page.get_by_text("£3,000.00 is more than the £1,030.00 due.").wait_for()
    assert pence_on(page.locator("body").inner_text()) == []
    page.goto(f"{base}/invoices/{fixture_invoices['part_paid']['id']}/refund")
    page.get_by_label("Amount (£)").fill("1,500.00")
    page.get_by_label("Reason").fill("Goodwill")
    page.get_by_role("button", name="Refund").click()
    page.get_by_text("£1,500.00 is more than the £1,000.00 that can still be refunded.").wait_for()
    assert pence_on(page.locator("body").inner_text()) == []
    page.screenshot(path=str(artifacts / "daily-work-error-in-pounds.png"), full_page=True)
    assert found == {}  # page → the pence figures (or unseparated pounds) it showed
    assert missing == [], missing  # no favicon (or anything else) missing on any page


def test_a_failed_booking_event_is_dismissed_with_a_note(app, client, page, live_server, artifacts):
    base = live_server.url
    event = booking_event("infusion.booked", event_id="evt_old_product", booking_id="bk_77",
                          product_code="IVIG-RETIRED", service_date=days_ahead(3),
                          patient={"id": "pt_77", "name": "Łucja Wróbel"})
    assert deliver(client, event) == 422
    sign_in(page, base, "admin@clinic.example")
    card = page.locator("#failed-events-card")
    assert card.locator(".big").inner_text() == "1"
    card.click()
    row = page.locator("tr", has_text="evt_old_product")
    assert "Łucja Wróbel" in row.inner_text()
    assert "ask an admin to add it (Price lists → new version), then Replay." in row.inner_text()
    row.get_by_label("Note").fill("Invoiced by hand: the product was retired")
    row.get_by_role("button", name="Dismiss").click()
    page.get_by_text("Event evt_old_product dismissed; your note is kept with it.").wait_for()
    assert page.locator("tr", has_text="evt_old_product").count() == 0
    page.get_by_role("link", name="Dismissed").click()
    dismissed = page.locator("tr", has_text="evt_old_product")
    assert "Dismissed by admin@clinic.example on" in dismissed.inner_text()
    assert "Invoiced by hand: the product was retired" in dismissed.inner_text()
    page.screenshot(path=str(artifacts / "booking-event-dismissed.png"), full_page=True)
    page.goto(base + "/")
    assert page.locator("#failed-events-card .big").inner_text() == "0"


def test_copy_buttons_link_expiry_and_a_key_revoked_only_after_asking(api, page, live_server):
    base = live_server.url
    invoice = open_invoice(api)
    url = payment_link(api, invoice["id"])
    sign_in(page, base, "admin@clinic.example")
    page.goto(f"{base}/invoices/{invoice['id']}")
    assert re.fullmatch(r"Works until \d{4}-\d{2}-\d{2} \d{2}:\d{2}\.", page.locator("#link-expires").inner_text())
    page.locator("[data-copy=payment-url]").click()
    page.locator("[data-copy=payment-url]", has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url

    page.goto(base + "/admin/api-keys")
    page.get_by_label("What the key is for").fill("Accounts export")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").input_value()
    page.locator("[data-copy=new-key]").click()
    page.locator("[data-copy=new-key]", has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_role("link", name="Revoke…").first.click()
    page.get_by_role("heading", name=re.compile("Revoke the key")).wait_for()
    assert page.request.get(f"{base}/api/v1/invoices", headers={"Authorization": f"Bearer {secret}"}).status == 200
    page.get_by_role("button", name="Yes, revoke this key").click()
    page.get_by_text("revoked.").wait_for()
    assert page.request.get(f"{base}/api/v1/invoices", headers={"Authorization": f"Bearer {secret}"}).status == 401


def test_the_live_price_stays_in_view_and_says_why_it_is_gone(page, live_server, artifacts):
    base = live_server.url
    sign_in(page, base, "admin@clinic.example")
    fill_new_invoice(page, base)
    total = page.locator("#quote-preview tfoot td.num")
    total.wait_for()
    assert re.fullmatch(r"£\d{1,3}(,\d{3})*\.\d{2}", total.inner_text())
    box = total.bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 900, box  # in view while typing
    page.get_by_label("Weight (kg)").fill("68,5")
    page.locator("#quote-preview").get_by_text("No price yet: Weight (kg): Enter a number, like 0.4 or 68.5.").wait_for()
    page.screenshot(path=str(artifacts / "live-price-why.png"))

"""Finance staff at work in a real browser, from sign-in to the CSV for the accounts."""

from __future__ import annotations

import csv
import io
import re

import pytest

from billing.access import create_user
from billing.cli import DEMO_PRICE_LIST
from billing.price_lists import create_price_list
from tests.e2e.conftest import STAFF_PASSWORD as PASSWORD, fill_new_invoice, sign_in
from tests.factories import days_ahead

pytestmark = pytest.mark.slow


@pytest.fixture
def page(laptop):
    return laptop


@pytest.fixture(autouse=True)
def staff(app, live_server):
    with app.app_context():
        create_user("admin@clinic.example", "admin", PASSWORD)
        create_user("viewer@clinic.example", "viewer", PASSWORD)
        create_price_list(DEMO_PRICE_LIST, "tests")


def test_a_finance_day_from_price_list_to_csv(page, live_server, artifacts):
    base = live_server.url
    sign_in(page, base, "admin@clinic.example")

    # A new price list version, with a mistake first, then fixed.
    page.goto(base + "/price-lists/new")
    page.get_by_label("Effective from").fill(days_ahead(0))  # a later version can't be backdated
    page.get_by_label("Service fee tiers: up to minutes = price (£), one a line").fill("120 = 260.00\n240 = abc")
    page.get_by_role("button", name="Save version").click()
    page.get_by_text("Some fields need attention").wait_for()
    assert page.get_by_text("Enter an amount in pounds, like 1234.56 or 1,234.56.").is_visible()
    assert page.get_by_label("Effective from").input_value() == days_ahead(0)  # nothing typed is lost
    page.get_by_label("Service fee tiers: up to minutes = price (£), one a line").fill("120 = 260.00\n240 = 360.00")
    page.get_by_role("button", name="Save version").click()
    page.get_by_text("Price list version 2 saved").wait_for()

    # The quote calculator.
    page.goto(base + "/price-lists/quote")
    page.get_by_label("Grams per kg").fill("0.4")
    page.get_by_label("Weight (kg)").fill("68.5")
    page.get_by_label("Service date").fill(days_ahead(7))
    page.get_by_role("button", name="Quote").click()
    quote = page.locator("#quote-preview")
    quote.get_by_text("Vials: 1 × 20 g, 1 × 10 g; dose 27.4 g; waste 2.6 g").wait_for()
    assert "£1,680.00" in quote.inner_text() and "£360.00" in quote.inner_text() and "£2,040.00" in quote.inner_text()

    # A new invoice, priced as it is filled in, then created and issued.
    fill_new_invoice(page, base)
    page.locator("#quote-preview").get_by_role("cell", name="£2,040.00").wait_for()  # priced as typed
    page.get_by_role("button", name="Create draft").click()
    page.get_by_text("Draft invoice created for Sam Example.").wait_for()
    page.get_by_role("link", name="Issue", exact=True).click()
    page.get_by_role("button", name="Yes, issue this invoice").click()
    heading = page.get_by_role("heading", name=re.compile(r"Invoice INV-\d{4}-000001"))
    heading.wait_for()

    # A partial payment, then the rest, then a refund.
    for amount in ("1000.00", "1040.00"):
        page.get_by_role("link", name="Record payment").click()
        page.get_by_label("Amount (£)").fill(amount)
        page.get_by_label("Method").select_option("bank_transfer")
        page.get_by_label("Reference").fill("BACS")
        page.get_by_role("button", name="Record payment").click()
        page.get_by_text(f"Payment of £{int(amount.split('.')[0]):,}.00 recorded.").wait_for()
    assert page.locator("#amount-due").inner_text() == "£0.00"
    assert "paid" in heading.inner_text()
    page.get_by_role("link", name="Refund").click()
    page.get_by_label("Amount (£)").fill("40.00")
    page.get_by_label("Reason").fill("Infusion finished early")
    page.get_by_role("button", name="Refund").click()
    page.get_by_text("Refund of £40.00 recorded.").wait_for()
    page.screenshot(path=str(artifacts / "invoice.png"), full_page=True)

    # The CSV for the accounting package.
    page.goto(base + "/reports")
    with page.expect_download() as download:
        page.get_by_role("link", name="Invoices CSV").click()
    # The page's link asks for the header row in words; utf-8-sig reads past the BOM Excel needs.
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8-sig").read())))
    assert [(r["Invoice number"][-6:], r["Patient"], r["Total"], r["Paid"], r["Refunded"], r["Amount due"])
            for r in rows] == [("000001", "Sam Example", "2040.00", "2040.00", "40.00", "0.00")]

    page.goto(base + "/")
    assert page.get_by_text("£2,000.00").count() >= 1  # paid this month: 2,040.00 received less 40.00 refunded
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)


def test_a_viewer_sees_no_actions_and_is_refused_when_posting_anyway(app, api, page, live_server):
    from tests.factories import open_invoice

    invoice = open_invoice(api)
    sign_in(page, live_server.url, "viewer@clinic.example")
    page.goto(f"{live_server.url}/invoices/{invoice['id']}")
    page.get_by_role("heading", name=re.compile("Invoice INV-")).wait_for()
    assert page.get_by_role("navigation", name="Invoice actions").count() == 0
    assert page.get_by_role("link", name="Record payment").count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.post(f"{live_server.url}/invoices/{invoice['id']}/finalize", form={"csrf_token": token})
    assert response.status == 403
    state = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert state["status"] == "open" and state["amount_paid"] == 0


def test_finance_issues_a_credit_note_from_the_invoice_page(app, api, page, live_server, artifacts):
    from tests.factories import open_invoice

    invoice = open_invoice(api)
    sign_in(page, live_server.url, "admin@clinic.example")
    page.goto(f"{live_server.url}/invoices/{invoice['id']}")
    page.get_by_role("link", name="Issue credit note").click()
    assert page.locator("#left-infusion_service").inner_text() == "£350.00"
    page.get_by_label("Infusion service to credit (£)").fill("400.00")  # more than it charged
    page.get_by_role("button", name="Issue credit note").click()
    page.get_by_text("£50.00 more than").or_(page.get_by_text("is more than the £350.00")).first.wait_for()
    page.get_by_label("Infusion service to credit (£)").fill("100.00")
    page.get_by_label("Note on the credit note").fill("Infusion stopped after 90 minutes")
    page.get_by_role("button", name="Issue credit note").click()
    page.get_by_text(re.compile(r"Credit note CN-\d{4}-000001 issued for £100\.00\.")).wait_for()
    assert page.locator("#amount-due").inner_text() == "£1,930.00"
    assert page.locator("#amount-credited").inner_text() == "£100.00"
    page.screenshot(path=str(artifacts / "credit-note.png"), full_page=True)
    page.goto(f"{live_server.url}/invoices")
    assert page.get_by_text("credited").count() == 1

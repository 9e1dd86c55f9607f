"""An insurer pays: staff bill it in the browser with its address, email and reference, and the
PDF they download says whom to bill, how to pay, and who the clinic is (read back with pypdf)."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from billing.access import create_user
from billing.cli import DEMO_PRICE_LIST
from billing.price_lists import create_price_list
from tests.e2e.conftest import STAFF_PASSWORD as PASSWORD, fill_new_invoice, sign_in

pytestmark = pytest.mark.slow
BANK = "Bank transfer to Riverside Clinic Ltd\nSort code 20-00-00, account 12345678"


@pytest.fixture
def page(laptop):
    return laptop


@pytest.fixture
def clinic(app, live_server, monkeypatch):
    monkeypatch.setitem(app.config, "CLINIC_VAT_NUMBER", "GB 123 4567 89")
    monkeypatch.setitem(app.config, "CLINIC_COMPANY_NUMBER", "09876543")
    monkeypatch.setitem(app.config, "PAYMENT_INSTRUCTIONS", BANK)
    with app.app_context():
        create_user("finance@clinic.example", "finance", PASSWORD)
        create_price_list(DEMO_PRICE_LIST, "tests")
    return live_server.url


def test_staff_bill_an_insurer_and_its_pdf_says_whom_how_and_who(page, clinic, artifacts):
    base = clinic
    sign_in(page, base, "finance@clinic.example")

    fill_new_invoice(page, base, "Łucja Wróbel", **{
        "Booking id": "bk_778", "Payer, if not the patient": "Zürich Gesundheit AG",
        "Payer address": "Claims Department\nMythenquai 2\n8002 Zürich", "Payer email": "claims@zurich.example",
        "Payer's reference (policy or PO number)": "POL-448812"})
    page.locator("#quote-preview").get_by_role("cell", name="£2,030.00").wait_for()  # priced as typed
    page.screenshot(path=str(artifacts / "payer-form.png"), full_page=True)
    page.get_by_role("button", name="Create draft").click()
    page.get_by_text("Draft invoice created for Łucja Wróbel.").wait_for()
    assert "Zürich Gesundheit AG" in page.locator("main").inner_text()
    page.get_by_role("link", name=re.compile(r"^(Issue|Finalize)$")).click()  # the verb is being unified
    page.get_by_role("button", name=re.compile("Yes, issue this invoice", re.I)).click()
    heading = page.get_by_role("heading", name=re.compile(r"Invoice INV-\d{4}-000001"))
    heading.wait_for()
    number = re.search(r"INV-\d{4}-000001", heading.inner_text()).group(0)
    page.screenshot(path=str(artifacts / "payer-invoice.png"), full_page=True)

    # The PDF link opens inline (Chromium shows it in its viewer): fetch it as the signed-in browser.
    pdf = page.request.get(base + page.get_by_role("link", name="PDF", exact=True).get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.body()))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    for expected in (
        "Bill to", "Zürich Gesundheit AG", "Claims Department", "Mythenquai 2", "8002 Zürich",
        "Your reference: POL-448812", "Łucja Wróbel", "Booking reference bk_778",
        "How to pay", "Bank transfer to Riverside Clinic Ltd", "Sort code 20-00-00, account 12345678",
        f"Please quote {number} as the payment reference.",
        "VAT registration number GB 123 4567 89", "Company number 09876543", "Amount due £2,030.00",
    ):
        assert expected in text, f"{expected!r} not in {text!r}"

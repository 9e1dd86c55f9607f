"""The PDF, read back with pypdf: what a UK invoice must say, and the two fees apart."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.factories import invoice_body, price_list_document


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def pdf_text(api, invoice_id: str) -> str:
    response = api.get(f"/api/v1/invoices/{invoice_id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(response.get_data()))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())  # wrapping aside


def test_an_issued_invoice_says_everything_it_must(api, app):
    invoice = api.post("/api/v1/invoices", json=invoice_body(
        patient={"id": "pt_9", "name": "Łucja Nowak-Brontë", "address": "2 High Street, Leeds"},
        bill_to={"name": "Sam Partner", "address": "3 Low Road, York"},
        other_items=[{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}],
    )).get_json()
    opened = api.post(f"/api/v1/invoices/{invoice['id']}/finalize").get_json()
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 3000, "method": "cash"})
    text = pdf_text(api, invoice["id"])
    for expected in (
        app.config["CLINIC_NAME"], "1 Clinic Street, London", "billing@clinic.example",
        f"Invoice {opened['number']}", "Invoice date", "Date of supply", "1 December 2026", "Due date",
        "Łucja Nowak-Brontë", "2 High Street, Leeds", "Bill to", "Sam Partner", "3 Low Road, York",
        "Human normal immunoglobulin 10%: 30 g in 2 vials", "£1,680.00", "1 x 20 g at £1,120.00",
        "1 x 10 g at £560.00", "Dose 27.4 g; unused 2.6 g",
        "Infusion service: 180 minutes", "£350.00", "Exempt",
        "Subtotal", "£2,030.00", "Paid", "-£30.00", "Amount due", "£2,000.00",
        "NK cell assay", "not included in this charge",
    ):
        assert expected in text, f"{expected!r} not in {text!r}"


def test_a_draft_says_it_is_not_issued(api):
    invoice = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    text = pdf_text(api, invoice["id"])
    assert "Draft invoice (not yet issued)" in text
    assert "£2,030.00" in text


# --- an insurer pays: its address and reference, how to pay, and who the clinic is ------------------

BANK = "Pay by bank transfer to Riverside Clinic Ltd\nSort code 20-00-00, account 12345678"


@pytest.fixture
def clinic_registered(app, monkeypatch):
    monkeypatch.setitem(app.config, "CLINIC_VAT_NUMBER", "GB 123 4567 89")
    monkeypatch.setitem(app.config, "CLINIC_COMPANY_NUMBER", "09876543")
    monkeypatch.setitem(app.config, "PAYMENT_INSTRUCTIONS", BANK)


INSURER = {"name": "Zürich Gesundheit AG", "address": "Claims Department\nMythenquai 2\n8002 Zürich",
           "email": "claims@zurich.example", "reference": "POL-448812"}


def test_an_insurer_billed_invoice_shows_the_payer_how_to_pay_and_the_clinic_s_numbers(api, clinic_registered):
    invoice = api.post("/api/v1/invoices", json=invoice_body(
        patient={"id": "pt_9", "name": "Łucja Wróbel", "address": "2 High Street, Leeds"},
        bill_to=INSURER, booking_id="bk_778")).get_json()
    opened = api.post(f"/api/v1/invoices/{invoice['id']}/finalize").get_json()
    text = pdf_text(api, invoice["id"])
    for expected in (
        "Bill to", "Zürich Gesundheit AG", "Claims Department", "Mythenquai 2", "8002 Zürich",
        "Your reference: POL-448812",
        "Patient", "Łucja Wróbel", "2 High Street, Leeds", "Booking reference bk_778",
        "How to pay", "Pay by bank transfer to Riverside Clinic Ltd", "Sort code 20-00-00, account 12345678",
        f"Please quote {opened['number']} as the payment reference.",
        "VAT registration number GB 123 4567 89", "Company number 09876543",
        "Amount due £2,030.00",
    ):
        assert expected in text, f"{expected!r} not in {text!r}"
    assert "claims@zurich.example" not in text  # the payer's email is where emails go, not printed


def test_how_to_pay_is_left_off_what_is_not_payable(api, clinic_registered):
    draft = api.post("/api/v1/invoices", json=invoice_body(bill_to=INSURER)).get_json()
    assert "How to pay" not in pdf_text(api, draft["id"])
    opened = api.post(f"/api/v1/invoices/{draft['id']}/finalize").get_json()
    assert api.post(f"/api/v1/invoices/{draft['id']}/payments",
                    json={"amount": 203000, "method": "bank_transfer"}).status_code == 201
    text = pdf_text(api, opened["id"])
    assert "Amount due £0.00" in text
    assert "How to pay" not in text and "Sort code" not in text
    assert "VAT registration number GB 123 4567 89" in text  # the clinic's numbers are on every invoice


def test_without_the_settings_nothing_of_them_prints(api):
    invoice = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    api.post(f"/api/v1/invoices/{invoice['id']}/finalize")
    text = pdf_text(api, invoice["id"])
    assert "£2,030.00" in text
    for absent in ("VAT registration number", "Company number", "How to pay", "Bill to", "Booking reference",
                   "Your reference"):
        assert absent not in text


def test_the_credit_note_shows_the_clinic_s_numbers_and_the_payer_s_reference(api, clinic_registered):
    invoice = api.post("/api/v1/invoices", json=invoice_body(bill_to=INSURER)).get_json()
    api.post(f"/api/v1/invoices/{invoice['id']}/finalize")
    note = api.post(f"/api/v1/invoices/{invoice['id']}/credit-notes", json={
        "reason": "order_change", "lines": [{"category": "infusion_service", "amount": 10000,
                                             "description": "Shorter infusion"}],
        "refund_amount": 0, "out_of_band_amount": 0}).get_json()
    response = api.get(f"/api/v1/credit-notes/{note['id']}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(response.get_data())).pages).split())
    for expected in ("VAT registration number GB 123 4567 89", "Company number 09876543", "Zürich Gesundheit AG",
                     "Your reference: POL-448812", "Total credited £100.00"):
        assert expected in text, f"{expected!r} not in {text!r}"
    assert "How to pay" not in text

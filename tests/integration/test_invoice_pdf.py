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

"""The staff new-invoice form's payer: an insurer's address, email and reference, held to the API's rules."""

from __future__ import annotations

import html
import re

import pytest

from billing.access import create_user
from tests.conftest import row_counts
from tests.factories import days_ahead, open_invoice, price_list_document

PASSWORD = "correct horse battery"


@pytest.fixture
def finance(app, api, client):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201
    with app.app_context():
        create_user("finance@clinic.example", "finance", PASSWORD)
    page = client.get("/login")
    client.post("/login", data={"email": "finance@clinic.example", "password": PASSWORD, "csrf_token": token(page)})
    return client


def token(response) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def new_invoice(client, **payer: str):
    form = {"csrf_token": token(client.get("/invoices/new")), "action": "create",
            "patient_id": "pt_42", "patient_name": "Sam Example", "product_code": "IVIG10-5-10-20",
            "dose_mode": "per_kg", "grams_per_kg": "0.4", "weight_kg": "68.5", "duration_minutes": "180",
            "service_date": days_ahead(7), **payer}
    return client.post("/invoices/new", data=form)


def only_invoice(api) -> dict:
    rows = api.get("/api/v1/invoices").get_json()["data"]
    assert len(rows) == 1
    return rows[0]


def test_an_insurer_with_address_email_and_reference_is_stored_as_the_api_would(finance, api):
    response = new_invoice(finance, payer_name=" Acme Health Insurance ",
                           payer_address="Claims Dept\r\n1 Way\r\nLeeds LS1 4AP\r\n",
                           payer_email="claims@acme.example", payer_reference=" POL-448812 ")
    assert response.status_code == 303, response.get_data(as_text=True)
    invoice = only_invoice(api)
    assert invoice["bill_to"] == {"name": "Acme Health Insurance", "address": "Claims Dept\n1 Way\nLeeds LS1 4AP",
                                  "email": "claims@acme.example", "reference": "POL-448812"}
    assert invoice["total"] == 203000  # the contract's price list: £1,680.00 + £350.00


def test_no_payer_is_no_bill_to(finance, api):
    assert new_invoice(finance, payer_name="", payer_address="  ", payer_reference="").status_code == 303
    assert only_invoice(api)["bill_to"] is None


@pytest.mark.parametrize("payer, field, message", [
    ({"payer_name": "Acme", "payer_email": "claims at acme"}, "payer_email", "Not a valid email address."),
    ({"payer_name": "Acme", "payer_reference": "POL\t1"}, "payer_reference", "Must be one line"),
    ({"payer_name": "Acme", "payer_reference": "P" * 101}, "payer_reference", "longer than 100 characters"),
    ({"payer_name": "Acme", "payer_address": "\n".join(["line"] * 11)}, "payer_address", "at most 10 lines"),
    ({"payer_name": "Acme", "payer_address": "x" * 501}, "payer_address", "longer than 500 characters"),
    ({"payer_name": "Acme", "payer_address": "1 Way\u202eLeeds"}, "payer_address", "direction overrides"),
    ({"payer_name": "Acme", "payer_address": "1 Way\x07Leeds"}, "payer_address", "control character"),
    ({"payer_reference": "POL-448812"}, "payer_name", "Enter the payer's name"),
])
def test_a_bad_payer_is_shown_on_its_field_and_nothing_is_made(finance, app, payer, field, message):
    before = row_counts(app)
    response = new_invoice(finance, **payer)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    errors = re.search(rf'<textarea[^>]*name="{field}"|<input[^>]*name="{field}"', page)
    assert errors, f"{field} missing"
    block = page[page.rfind('<div class="field', 0, errors.start()):page.find("</div>", errors.start())]
    assert "has-error" in block and message in html.unescape(block), block
    assert row_counts(app) == before


def test_the_payment_link_box_names_the_payer_when_there_is_one(finance, api):
    insured = open_invoice(api, bill_to={"name": "Acme Health Insurance"})
    patient_pays = open_invoice(api)
    for invoice in (insured, patient_pays):
        assert api.post(f"/api/v1/invoices/{invoice['id']}/payment-link").status_code == 201
    page = finance.get(f"/invoices/{insured['id']}").get_data(as_text=True)
    assert "Payment link for Acme Health Insurance" in page and "for the patient" not in page
    assert "Payment link for the patient" in finance.get(f"/invoices/{patient_pays['id']}").get_data(as_text=True)


def test_the_form_has_the_payer_s_fields(finance):
    page = finance.get("/invoices/new").get_data(as_text=True)
    for label in ("Payer, if not the patient", "Payer address", "Payer email", "Payer's reference (policy or PO number)"):
        assert label in html.unescape(page), label
    assert re.search(r'<textarea[^>]*name="payer_address"', page)


def test_making_a_payment_link_says_who_will_pay_through_it(finance, api, stripe_on):
    insured = open_invoice(api, bill_to={"name": "Acme Health Insurance"})
    patient_pays = open_invoice(api)
    page = finance.get(f"/invoices/{insured['id']}/payment-link").get_data(as_text=True)
    assert "Acme Health Insurance can pay the amount due by card through it." in html.unescape(page)
    page = finance.get(f"/invoices/{patient_pays['id']}/payment-link").get_data(as_text=True)
    assert "The patient can pay the amount due by card through it." in html.unescape(page)

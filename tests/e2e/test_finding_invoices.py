"""Finance staff finding invoices in a real browser (issue 17): the overdue ones from the dashboard
in one click, and any invoice by part of its number, its booking id or the payer's reference."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from billing.access import create_user
from billing.extensions import db
from billing.invoice_search import keep_searchable
from billing.invoicing import today_at_clinic
from billing.models import Invoice
from tests.e2e.conftest import STAFF_PASSWORD as PASSWORD, sign_in
from tests.factories import open_invoice, price_list_document

pytestmark = pytest.mark.slow


@pytest.fixture
def page(laptop):
    return laptop


@pytest.fixture
def invoices(app, api, live_server):
    """Three open invoices: one 20 days overdue, one billed to an insurer under a policy number,
    one for a booking."""
    with app.app_context():
        create_user("viewer@clinic.example", "viewer", PASSWORD)
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201
    late = open_invoice(api, patient={"id": "pt_1", "name": "Ada Late"})  # INV-…-000001, 203000
    insured = open_invoice(api, duration_minutes=60, patient={"id": "pt_2", "name": "Ben Insured"},
                           bill_to={"name": "Acme Health"})  # INV-…-000002, 193000
    booked = open_invoice(api, duration_minutes=300, patient={"id": "pt_3", "name": "Cy Booked"},
                          booking_id="bk_20261201_42")  # INV-…-000003
    with app.app_context():
        due = today_at_clinic() - timedelta(days=20)
        db.session.execute(update(Invoice).where(Invoice.id == late["id"])
                           .values(due_date=due, issued_on=due - timedelta(days=14)))
        row = db.session.scalar(select(Invoice).where(Invoice.id == insured["id"]))
        row.bill_to = {**(row.bill_to or {}), "name": "Acme Health", "reference": "POL-88-1234"}
        keep_searchable(row)  # as every change through the invoice core does
        db.session.commit()
    return {"late": late, "insured": insured, "booked": booked}


def numbers_listed(page) -> list[str]:
    return [link.inner_text() for link in page.locator("#invoice-list tbody tr td:first-child a").all()]


def test_an_overdue_invoice_is_one_click_from_the_dashboard(page, live_server, invoices, artifacts):
    sign_in(page, live_server.url, "viewer@clinic.example")
    card = page.locator("#overdue-card")
    assert "£2,030.00" in card.inner_text() and "1 past its due date" in card.inner_text()
    card.click()  # the one click
    page.get_by_role("heading", name="Invoices").wait_for()
    assert numbers_listed(page) == [invoices["late"]["number"]]
    row = page.locator("#invoice-list tbody tr").first
    assert "overdue" in row.inner_text() and "20 days late" in row.inner_text()
    assert (today_at_clinic() - timedelta(days=20)).isoformat() in row.inner_text()
    assert page.get_by_label("Status").input_value() == "overdue"
    page.screenshot(path=str(artifacts / "overdue-from-dashboard.png"), full_page=True)


@pytest.mark.parametrize("typed, which", [("000002", "insured"), ("bk_20261201_42", "booked"),
                                          ("pol-88-1234", "insured")])
def test_an_invoice_is_found_by_part_of_its_number_its_booking_or_the_payers_reference(
        page, live_server, invoices, typed, which):
    sign_in(page, live_server.url, "viewer@clinic.example")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    assert len(numbers_listed(page)) == 3
    page.get_by_label("Search").fill(typed)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=*")
    assert numbers_listed(page) == [invoices[which]["number"]]
    page.get_by_role("link", name=invoices[which]["number"]).click()
    page.wait_for_url(f"**/invoices/{invoices[which]['id']}")

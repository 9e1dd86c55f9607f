"""Finding invoices (issue 17): the list's overdue and part-paid filters, one search box, sortable
columns with stable pages, the list as CSV, aged debt by days past due with its drill-downs, and
the exports (BOM, tax label, refunds, human headers) — exact amounts, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from billing import reports
from billing.extensions import db
from billing.invoice_search import SORTS, InvoiceFilter, find_invoices, keep_searchable
from billing.invoicing import today_at_clinic
from billing.models import Invoice
from tests.factories import invoice_body, open_invoice, price_list_document
from tests.integration.test_staff_web import sign_in, users  # noqa: F401 (a fixture)


def due_days_ago(app, invoice_id: str, days: int) -> None:
    """As if it fell due `days` ago (issued 14 days before that)."""
    due = today_at_clinic() - timedelta(days=days)
    with app.app_context():
        db.session.execute(update(Invoice).where(Invoice.id == invoice_id)
                           .values(due_date=due, issued_on=due - timedelta(days=14)))
        db.session.commit()


def set_payer_reference(app, invoice_id: str, name: str, reference: str) -> None:
    """bill_to.reference set on the row, as the API would (then the search columns follow)."""
    with app.app_context():
        invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id))
        invoice.bill_to = {**(invoice.bill_to or {}), "name": name, "reference": reference}
        keep_searchable(invoice)
        db.session.commit()


def csv_rows(response) -> tuple[list[str], list[dict[str, str]]]:
    data = response.get_data()
    assert response.mimetype == "text/csv" and data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
    text = data.decode("utf-8-sig")
    return next(csv.reader(io.StringIO(text))), list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def ledger(app, api):
    """Six invoices: current, overdue (insurer), overdue and part paid, paid, draft, void."""
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201
    current = open_invoice(api, booking_id="bk_777")  # 203000, due in 14 days
    insurer = open_invoice(api, duration_minutes=60, patient={"id": "pt_5", "name": "Łucja Wróbel"},
                           bill_to={"name": "Acme Insurance"})  # 193000
    due_days_ago(app, insurer["id"], 10)
    set_payer_reference(app, insurer["id"], "Acme Insurance", "POL-123")
    part_paid = open_invoice(api, duration_minutes=300, patient={"id": "pt_7", "name": "Sam Example"})  # 213000
    due_days_ago(app, part_paid["id"], 45)
    assert api.post(f"/api/v1/invoices/{part_paid['id']}/payments",
                    json={"amount": 13000, "method": "cash", "reference": "RCPT-1"}).status_code == 201
    paid = open_invoice(api)
    assert api.post(f"/api/v1/invoices/{paid['id']}/payments", json={"amount": 203000, "method": "bank_transfer",
                                                                      "reference": "BACS-9"}).status_code == 201
    assert api.post(f"/api/v1/invoices/{paid['id']}/refunds",
                    json={"amount": 12050, "reason": "Infusion shortened"}).status_code == 201
    draft = api.post("/api/v1/invoices", json=invoice_body(duration_minutes=60)).get_json()
    void = open_invoice(api, duration_minutes=60)
    assert api.post(f"/api/v1/invoices/{void['id']}/void").status_code == 200
    return {"current": current, "insurer": insurer, "part_paid": part_paid, "paid": paid, "draft": draft,
            "void": void}


def listed(client, query: str) -> list[str]:
    """The invoice ids the staff list shows, in order."""
    page = client.get("/invoices" + query)
    assert page.status_code == 200
    return re.findall(r'href="/invoices/(inv_[A-Za-z0-9]+)"', page.get_data(as_text=True))


def test_overdue_and_part_paid_filters_and_the_due_date_column(client, users, ledger):
    sign_in(client, "viewer")
    ids = {name: invoice["id"] for name, invoice in ledger.items()}
    assert listed(client, "?status=overdue") == [ids["part_paid"], ids["insurer"]]  # newest first
    assert listed(client, "?status=overdue&sort=due_date") == [ids["part_paid"], ids["insurer"]]  # most overdue first
    assert listed(client, "?status=part_paid") == [ids["part_paid"]]
    page = client.get("/invoices?status=overdue").get_data(as_text=True)
    assert (today_at_clinic() - timedelta(days=45)).isoformat() in page and "45 days late" in page
    assert "£2,000.00" in page and "£1,930.00" in page  # due, with thousands separators
    assert "part paid" in page and "200000" not in page


@pytest.mark.parametrize("term, expected", [
    ("000002", ["insurer"]),              # any part of the number
    ("inv-", ["void", "paid", "part_paid", "insurer", "current"]),
    ("bk_777", ["current"]),              # booking id
    ("pol-123", ["insurer"]),             # payer reference, any case
    ("ACME", ["insurer"]),                # payer name, set through the API
    ("wróbel", ["insurer"]),              # patient name, beyond ASCII, any case
    ("pt_7", ["part_paid"]),              # patient id
    ("nobody", []),
    ("pt", []),                           # two letters: a whole number, patient id or booking id only
    ("%", []),                            # a wildcard is a character like any other
])
def test_one_search_box_finds_number_patient_payer_and_booking(client, users, ledger, term, expected):
    sign_in(client, "viewer")
    assert listed(client, f"?q={term}") == [ledger[name]["id"] for name in expected]


def test_every_sort_pages_through_every_invoice_once_in_a_stable_order(app, ledger):
    with app.app_context():
        for key in SORTS:
            for sort in (key, f"-{key}"):
                whole, more = find_invoices(InvoiceFilter(sort=sort), limit=100)
                assert not more and len(whole) == 6
                pages, after = [], None
                while True:
                    rows, more = find_invoices(InvoiceFilter(sort=sort), limit=2, after=after)
                    pages += [r.id for r in rows]
                    if not more:
                        break
                    after = rows[-1]
                assert pages == [r.id for r in whole], sort
        totals = [r.total for r in find_invoices(InvoiceFilter(sort="-total", status="open"), limit=10)[0]]
        assert totals == [213000, 203000, 193000]


def test_sort_links_and_unknown_sorts_fall_back_to_newest_first(client, users, ledger):
    sign_in(client, "viewer")
    page = client.get("/invoices?status=open&sort=total").get_data(as_text=True)
    assert 'href="/invoices?status=open&amp;sort=-total"' in page  # the same column again: the other way
    assert listed(client, "?sort=total;drop table") == listed(client, "")
    assert client.get("/invoices?status=bogus&age=bogus&after=").status_code == 200


def test_the_filtered_list_downloads_as_csv(client, users, ledger):
    sign_in(client, "viewer")
    header, rows = csv_rows(client.get("/invoices.csv?status=overdue&sort=due_date"))
    assert header[:3] == ["number", "status", "patient_id"]
    assert [(r["patient_name"], r["payer"], r["payer_reference"], r["days_overdue"], r["total"], r["paid"], r["due"])
            for r in rows] == [("Sam Example", "", "", "45", "2130.00", "130.00", "2000.00"),
                               ("Łucja Wróbel", "Acme Insurance", "POL-123", "10", "1930.00", "0.00", "1930.00")]
    human, _ = csv_rows(client.get("/invoices.csv?q=bk_777&headers=human"))
    assert human[:3] == ["Invoice number", "Status", "Patient id"]
    assert 'href="/invoices.csv?status=overdue&amp;headers=human"' in client.get("/invoices?status=overdue").get_data(
        as_text=True)


def test_aged_debt_by_days_past_due_and_by_payer_to_the_penny(app, client, users, ledger):
    with app.app_context():
        debt = reports.aged_debt()
    assert [(b.key, b.invoices, b.amount) for b in debt.buckets] == [
        ("current", 1, 203000), ("1-30", 1, 193000), ("31-60", 1, 200000), ("61-90", 0, 0), ("over-90", 0, 0)]
    assert debt.total == 596000
    assert [(p.name, p.payer, p.patient_id, p.invoices, p.total, p.by_age["1-30"]) for p in debt.payers] == [
        ("Alex Example", None, "pt_9", 1, 203000, 0), ("Sam Example", None, "pt_7", 1, 200000, 0),
        ("Acme Insurance", "Acme Insurance", None, 1, 193000, 193000)]
    sign_in(client, "viewer")
    page = client.get("/reports").get_data(as_text=True)
    for link in ('/invoices?age=1-30"', '/invoices?age=owing&amp;payer=Acme+Insurance"',
                 '/invoices?age=owing&amp;patient=pt_7"', '/invoices?age=31-60&amp;patient=pt_7"'):
        assert link in page
    ids = {name: invoice["id"] for name, invoice in ledger.items()}
    assert listed(client, "?age=current") == [ids["current"]]
    assert listed(client, "?age=1-30") == [ids["insurer"]]
    assert listed(client, "?age=31-60") == [ids["part_paid"]]
    assert listed(client, "?age=over-90") == []
    assert listed(client, "?age=owing&payer=Acme+Insurance") == [ids["insurer"]]
    assert listed(client, "?age=owing&patient=pt_9") == [ids["current"]]  # the paid one owes nothing
    assert listed(client, "?age=owing&patient=pt_5") == []  # Acme pays for this patient


def test_the_dashboard_overdue_card_is_one_click_to_the_overdue_list(client, users, ledger):
    sign_in(client, "viewer")
    page = client.get("/").get_data(as_text=True)
    card = re.search(r'<a class="card warn" id="overdue-card" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert card == "/invoices?status=overdue&sort=due_date"
    assert "£3,930.00" in page and "2 past their due date" in page and "3 open invoices" in page
    month = today_at_clinic()
    assert f">{month.strftime('%b')} {month.strftime('%y')}</text>" in page  # "Dec 25", not "25/12"


def test_exports_carry_a_bom_the_tax_label_refunds_and_human_headers_on_request(client, users, ledger):
    sign_in(client, "viewer")
    header, lines = csv_rows(client.get("/reports/lines.csv"))
    assert header[header.index("tax_rate") + 1] == "tax_label"
    assert {(r["category"], r["tax_rate"], r["tax_label"]) for r in lines} == {
        ("immunoglobulin_product", "0", "Exempt"), ("infusion_service", "0", "Exempt")}
    header, refunds = csv_rows(client.get("/reports/refunds.csv"))
    assert header == ["refund_date", "invoice_number", "currency", "amount", "method", "payment_reference", "reason",
                      "status"]
    assert refunds == [{"refund_date": today_at_clinic().isoformat(), "invoice_number": ledger["paid"]["number"],
                        "currency": "GBP", "amount": "120.50", "method": "bank_transfer",
                        "payment_reference": "BACS-9", "reason": "Infusion shortened", "status": "succeeded"}]
    tomorrow = (today_at_clinic() + timedelta(days=1)).isoformat()
    assert csv_rows(client.get(f"/reports/refunds.csv?from={tomorrow}"))[1] == []
    header, invoices = csv_rows(client.get("/reports/invoices.csv?headers=human"))
    assert header[:2] == ["Invoice number", "Invoice date"] and "Amount due" in header
    assert sorted(r["Patient"] for r in invoices) == sorted(["Alex Example", "Alex Example", "Łucja Wróbel",
                                                             "Sam Example", "Alex Example"])
    for path in ("/reports/payments.csv", "/reports/credit-notes.csv"):
        assert csv_rows(client.get(path + "?headers=human"))[0][0][0].isupper()
    reports_page = client.get("/reports").get_data(as_text=True)
    assert "/reports/refunds.csv?" in reports_page and "headers=human" in reports_page

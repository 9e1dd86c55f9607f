"""Dashboard figures and aged debt, computed in SQL, checked to the penny."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from billing import reports
from billing.extensions import db
from billing.invoicing import today_at_clinic
from billing.models import Invoice
from tests.factories import open_invoice, price_list_document


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def backdate(app, invoice_id: str, days: int) -> None:
    """As if issued `days` ago (and due 14 days after that)."""
    issued = today_at_clinic() - timedelta(days=days)
    with app.app_context():
        db.session.execute(update(Invoice).where(Invoice.id == invoice_id)
                           .values(issued_on=issued, due_date=issued + timedelta(days=14)))
        db.session.commit()


def test_dashboard_and_aged_debt_to_the_penny(app, api):
    open_invoice(api)  # 203000, issued today
    month_old = open_invoice(api, duration_minutes=60)  # 193000
    backdate(app, month_old["id"], 45)
    ancient = open_invoice(api, duration_minutes=300)  # 213000
    backdate(app, ancient["id"], 120)
    api.post(f"/api/v1/invoices/{ancient['id']}/payments", json={"amount": 13000, "method": "cash"})
    paid = open_invoice(api)
    api.post(f"/api/v1/invoices/{paid['id']}/payments", json={"amount": 203000, "method": "cash"})
    api.post(f"/api/v1/invoices/{paid['id']}/refunds", json={"amount": 3000, "reason": "r"})
    api.post(f"/api/v1/invoices/{open_invoice(api)['id']}/void")

    with app.app_context():
        figures = reports.dashboard()
        debt = reports.aged_debt()
    assert (figures.outstanding, figures.outstanding_count) == (203000 + 193000 + 200000, 3)
    assert (figures.overdue, figures.overdue_count) == (193000 + 200000, 2)
    assert figures.paid_this_month == 13000 + 203000 - 3000
    this_month = figures.months[-1]
    assert this_month.month == today_at_clinic().strftime("%Y-%m")
    assert len(figures.months) == 12
    # void and backdated ones aside: fresh and paid were issued this month
    assert (this_month.product, this_month.service) == (168000 * 2, 35000 * 2)
    # By days past the due date (issue 17): due in 14 days, 31 days late, 106 days late.
    assert [(b.key, b.invoices, b.amount) for b in debt.buckets] == [
        ("current", 1, 203000), ("1-30", 0, 0), ("31-60", 1, 193000), ("61-90", 0, 0), ("over-90", 1, 200000)]
    assert debt.total == 596000
    assert [(p.name, p.patient_id, p.invoices, p.total) for p in debt.payers] == [("Alex Example", "pt_9", 3, 596000)]

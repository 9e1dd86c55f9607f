"""A new invoice is written in one statement on PostgreSQL (invoice and audit event together,
billing/invoicing.py `_insert_with_audit`): the rows must be exactly those the ORM's own
INSERTs write (`_insert_by_orm`, the path SQLite takes), and the invoice must behave in the
session as one the ORM inserted: clean, readable, changeable, and gone from the session with
its values kept when the transaction rolls back."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from billing import booking, invoicing
from billing.extensions import db
from billing.models import AuditEvent, Invoice
from billing.quotes import build_request
from billing.unit_of_work import transaction
from tests.factories import invoice_body, price_list_document

# Differ between any two invoices, whoever writes them.
UNIQUE = {"seq", "id", "created_at", "updated_at"}
JSON_COLUMNS = [c.key for c in Invoice.__table__.columns if c.type.__class__.__name__ == "JSON"]

SHAPES: list[dict[str, Any]] = [
    invoice_body(),
    invoice_body(patient={"id": "pt_1", "name": "Ana"}),
    invoice_body(patient={"id": "pt_2", "name": "Bo Ng", "email": "bo@example.org", "address": "1 High St\nLeeds"}),
    invoice_body(bill_to={"name": "Acme Insurance", "email": "claims@acme.example", "address": "2 Low Rd",
                          "reference": "POL-1"}),
    invoice_body(bill_to={"name": "  Partner  ", "email": None, "address": None, "reference": None}),
    invoice_body(other_items=[{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"},
                              {"description": "Scan", "for": "partner"}]),
    invoice_body(vials_dispensed=[{"grams": "10", "count": 2}, {"grams": "5", "count": 1}]),
    invoice_body(dose={"grams": "25"}, duration_minutes=60),
    invoice_body(patient={"id": "PT_Ü", "name": "Zoë Ångström " + "x" * 150}),
]


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def _load(data: dict[str, Any]) -> dict[str, Any]:
    from billing.api.schemas import InvoiceCreateSchema

    return InvoiceCreateSchema().load(data)


def _create(data: dict[str, Any], *, booking_id: str | None = None, charge: str = "full") -> Invoice:
    loaded = _load(data)
    return invoicing.create_invoice(build_request(loaded), loaded["patient"], "api_key:test",
                                    booking_id=booking_id, bill_to=loaded["bill_to"], charge=charge)


def _rows(invoice_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The invoice's row and its audit rows as stored, JSON SQL NULL told apart from JSON null."""
    db.session.expire_all()
    table, audit = Invoice.__table__, AuditEvent.__table__
    row = dict(db.session.execute(select(table).where(table.c.id == invoice_id)).mappings().one())
    nulls = db.session.execute(select(*(table.c[k].is_(None) for k in JSON_COLUMNS))
                               .where(table.c.id == invoice_id)).one()
    row.update({f"{k} is NULL": v for k, v in zip(JSON_COLUMNS, nulls)})
    audits = []
    for a in db.session.execute(select(audit, audit.c.before.is_(None).label("before is NULL"),
                                       audit.c.detail.is_(None).label("detail is NULL"))
                                .where(audit.c.invoice_seq == row["seq"]).order_by(audit.c.seq)).mappings():
        audits.append({k: v for k, v in a.items() if k not in ("seq", "invoice_seq", "created_at")})
    return row, audits


def _same_but_unique(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in UNIQUE}


@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("charge", ["full", "product_only"])
def test_one_statement_writes_the_orms_rows(app, monkeypatch, shape, charge):
    """On PostgreSQL, the one statement against the ORM's INSERTs; on SQLite both are the ORM's,
    and what follows still holds: one audit row, its `before` JSON null, the times equal."""
    with app.app_context():
        data = SHAPES[shape]
        fast = _create(data, booking_id=f"bk_fast_{shape}", charge=charge)
        with monkeypatch.context() as m:
            m.setattr(invoicing, "_insert_with_audit", invoicing._insert_by_orm)
            slow = _create(data, booking_id=f"bk_fast_{shape}", charge=charge)
        fast_row, fast_audit = _rows(fast.id)
        slow_row, slow_audit = _rows(slow.id)
        assert _same_but_unique(fast_row) == _same_but_unique(slow_row)
        assert fast_row["created_at"] == fast_row["updated_at"]
        assert fast_audit == slow_audit and len(fast_audit) == 1
        assert fast_audit[0]["before"] is None and fast_audit[0]["before is NULL"] is False  # JSON null, as before


def test_the_new_invoice_is_clean_and_changeable(app):
    with app.app_context():
        invoice = _create(SHAPES[3])
        state = inspect(invoice)
        assert state.persistent and not state.modified and not state.expired_attributes
        assert invoice in db.session and db.session.get(Invoice, invoice.seq) is invoice
        assert invoice.search_text == "pt_9\nalex example\nacme insurance\npol-1"
        assert invoice.payer_name == "Acme Insurance" and invoice.amount_credited == 0 and invoice.revision == 0
        finalized = invoicing.finalize_invoice(invoice.id, "api_key:test")
        assert finalized is invoice and invoice.number
        db.session.expire_all()
        again = db.session.get(Invoice, invoice.seq)
        assert again.status == "open" and again.revision == 1 and again.search_text.startswith(invoice.number.lower())
        trail = invoicing.audit_trail(invoice.id)
        assert [e.action for e in trail] == ["created", "finalized"]


def test_a_rolled_back_invoice_leaves_the_session_with_its_values(app):
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Invoice))
        made: list[Invoice] = []
        with pytest.raises(ZeroDivisionError):
            with transaction():
                made.append(_create(SHAPES[1]))
                1 / 0
        invoice = made[0]
        assert invoice not in db.session
        assert inspect(invoice).transient
        assert invoice.patient_name == "Ana" and invoice.total > 0  # readable: no refresh from a row that is gone
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == before
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
        later = _create(SHAPES[1])  # the session carries on
        assert db.session.get(Invoice, later.seq) is later


def test_a_booking_invoice_is_remembered_and_locked(app):
    with app.app_context():
        with transaction():
            loaded = _load(SHAPES[0])
            invoice = booking.create_invoice(build_request(loaded), loaded["patient"], "api_key:test",
                                             booking_id="bk_1", bill_to=None)
            assert invoicing._lock(invoice.id) is invoice  # held: no second lock, no reload
        assert invoicing.get_invoice(invoice.id) is invoice

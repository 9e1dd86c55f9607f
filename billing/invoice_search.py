"""Finding invoices for staff: the list's filters (overdue, part paid, age of the debt, payer),
one search box, sortable columns, and the same list as CSV rows.

The search box matches any part of `Invoice.search_text`, which `keep_searchable` rebuilds on
every change to an invoice (the unit of work calls it): number, patient id and name, payer name
and reference, booking id, lower-cased in Python on both sides (SQLite's lower() knows ASCII
only). PostgreSQL answers it from a trigram index; SQLite scans a narrow index of that column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterator

from sqlalchemy import and_, or_, select

from .clock import today_at_clinic
from .extensions import db
from .models import Invoice
from .states import InvoiceStatus

SEARCH_TEXT_LENGTH = 600  # characters; far beyond any real name, and within PostgreSQL's index row limit

# What is still owed, before the floor at 0 (`Invoice.amount_due`): "something due" is > 0.
OWED = Invoice.total - Invoice.amount_paid - Invoice.credit_applied

# Status filters beyond the stored statuses.
OVERDUE, PART_PAID = "overdue", "part_paid"
STATUS_FILTERS = [s.value for s in InvoiceStatus] + [OVERDUE, PART_PAID]

# Aged debt: open invoices with something due, by days past their due date (None: no bound).
# "owing" is all of them together (a payer's drill-down).
AGES: dict[str, tuple[str, int | None, int | None]] = {
    "current": ("Not yet due", None, 0),
    "1-30": ("1–30 days", 1, 30),
    "31-60": ("31–60 days", 31, 60),
    "61-90": ("61–90 days", 61, 90),
    "over-90": ("Over 90 days", 91, None),
}
AGE_FILTERS = ["owing", *AGES]

# Sortable columns (a whitelist: the key in `?sort=`, "-" before it for descending).
SORTS: dict[str, Any] = {
    "number": Invoice.number, "patient": Invoice.patient_name, "service_date": Invoice.service_date,
    "due_date": Invoice.due_date, "total": Invoice.total, "status": Invoice.status,
}
# Each has an index (column, seq), walked either way; number and due date are empty on drafts.
NULLABLE_SORTS = {"number", "due_date"}
SHORTEST_PART = 3  # a shorter search matches a whole number, patient id or booking id (no trigram has 2 letters)


def search_text(invoice: Invoice) -> str:
    payer = invoice.bill_to or {}
    parts = (invoice.number, invoice.patient_id, invoice.patient_name, payer.get("name"), payer.get("reference"),
             invoice.booking_id)
    return "\n".join(str(p).strip().lower() for p in parts if p)[:SEARCH_TEXT_LENGTH]


def keep_searchable(invoice: Invoice) -> None:
    """Bring the invoice's denormalised search columns up to date (called on every change)."""
    invoice.payer_name = ((invoice.bill_to or {}).get("name") or None)
    text = search_text(invoice)
    if invoice.search_text != text:
        invoice.search_text = text


@dataclass(frozen=True)
class InvoiceFilter:
    status: str | None = None     # a stored status, OVERDUE or PART_PAID
    q: str | None = None          # any part of the number, patient id or name, payer name or reference, booking id
    date_from: date | None = None  # service dates
    date_to: date | None = None
    age: str | None = None        # an AGE_FILTERS key: open, something due, so many days past due
    payer: str | None = None      # exactly this payer (bill_to's name)
    patient: str | None = None    # this patient id, paying for themselves (no payer)
    sort: str | None = None       # a SORTS key, "-" first for descending; None: newest first


def age_condition(age: str, today: date):
    """Open invoices with something due, `age` days past due (an AGE_FILTERS key)."""
    condition = and_(Invoice.status == InvoiceStatus.OPEN, OWED > 0)
    if age == "owing":
        return condition
    _, low, high = AGES[age]
    if low is not None:  # at least `low` days past due: due on or before today - low
        condition = and_(condition, Invoice.due_date <= today - timedelta(days=low))
    if high is not None:
        condition = and_(condition, Invoice.due_date >= today - timedelta(days=high))
    return condition


def _where(query, f: InvoiceFilter, today: date):
    if f.status == OVERDUE:
        query = query.where(Invoice.status == InvoiceStatus.OPEN, Invoice.due_date < today, OWED > 0)
    elif f.status == PART_PAID:
        query = query.where(Invoice.status == InvoiceStatus.OPEN, Invoice.amount_paid > 0, OWED > 0)
    elif f.status:
        query = query.where(Invoice.status == f.status)
    term = (f.q or "").strip()
    if len(term) >= SHORTEST_PART:
        # As a subquery on seq: SQLite then scans the narrow index, not the wide rows.
        query = query.where(Invoice.seq.in_(
            select(Invoice.seq).where(Invoice.search_text.contains(term.lower(), autoescape=True))))
    elif term:
        query = query.where(or_(Invoice.number == term.upper(), Invoice.patient_id == term,
                                Invoice.booking_id == term))
    if f.date_from:
        query = query.where(Invoice.service_date >= f.date_from)
    if f.date_to:
        query = query.where(Invoice.service_date <= f.date_to)
    if f.age in AGE_FILTERS:
        query = query.where(age_condition(f.age, today))
    if f.payer:
        query = query.where(Invoice.payer_name == f.payer)
    if f.patient:
        query = query.where(Invoice.patient_id == f.patient, Invoice.payer_name.is_(None))
    return query


def _order(f: InvoiceFilter) -> tuple[Any, bool]:
    """The sort column and whether it descends; newest first when none (or an unknown one) is asked."""
    key = (f.sort or "").removeprefix("-")
    if key not in SORTS:
        return None, True
    return SORTS[key], (f.sort or "").startswith("-")


def _ordered(query, f: InvoiceFilter):
    """Each database's own place for empty values (PostgreSQL: above every value; SQLite: below),
    so an index (column, seq) gives the order read either way; seq breaks ties the same way."""
    column, descending = _order(f)
    if column is None:
        return query.order_by(Invoice.seq.desc())
    if descending:
        return query.order_by(column.desc(), Invoice.seq.desc())
    return query.order_by(column.asc(), Invoice.seq.asc())


def _after(f: InvoiceFilter, cursor: Invoice):
    """The rows after `cursor` in the list's order."""
    column, descending = _order(f)
    if column is None:
        return Invoice.seq < cursor.seq
    value = db.session.scalar(select(column).where(Invoice.seq == cursor.seq))
    beyond = (lambda a, b: a < b) if descending else (lambda a, b: a > b)
    next_in_line = or_(beyond(column, value), and_(column == value, beyond(Invoice.seq, cursor.seq)))
    if f.sort.removeprefix("-") not in NULLABLE_SORTS:
        return next_in_line
    empty_is_high = db.engine.dialect.name == "postgresql"
    empties_come_first = empty_is_high == descending
    if value is None:
        empties_after = and_(column.is_(None), beyond(Invoice.seq, cursor.seq))
        return or_(empties_after, column.is_not(None)) if empties_come_first else empties_after
    return next_in_line if empties_come_first else or_(next_in_line, column.is_(None))


def find_invoices(f: InvoiceFilter, *, limit: int, after: Invoice | None = None) -> tuple[list[Invoice], bool]:
    """One page of the list in a stable order (ties broken by seq), and whether more follow."""
    query = _where(select(Invoice), f, today_at_clinic())
    if after is not None:
        query = query.where(_after(f, after))
    rows = list(db.session.scalars(_ordered(query, f).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def all_invoices(f: InvoiceFilter) -> Iterator[Invoice]:
    """Every invoice the filter finds, in its order, read in batches (for the CSV)."""
    query = _ordered(_where(select(Invoice), f, today_at_clinic()), f)
    yield from db.session.scalars(query.execution_options(yield_per=500))

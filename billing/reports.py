"""Use cases for finance's figures: dashboard totals, aged debt, revenue by month, CSV rows.

Every figure is an aggregate computed by the database, never a loop over invoices here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable, Iterator

from sqlalchemy import case, func, select

from .clock import start_of_day, today_at_clinic
from .extensions import db
from .models import CreditNote, Invoice, Payment, PriceListVersion, Refund
from .money_format import major
from .states import ISSUED as _ISSUED
from .states import InvoiceStatus, RefundStatus

ISSUED = tuple(sorted(_ISSUED))  # invoices that count as revenue (not drafts, not void)


@dataclass(frozen=True)
class MonthRevenue:
    month: str  # "2026-11"
    product: int
    service: int

    @property
    def total(self) -> int:
        return self.product + self.service


@dataclass(frozen=True)
class Dashboard:
    currency: str
    outstanding: int
    outstanding_count: int
    overdue: int
    overdue_count: int
    paid_this_month: int
    months: list[MonthRevenue]


def _month(column):
    if db.engine.dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _months_back(today: date, count: int) -> list[str]:
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(out))


def revenue_by_month(start: date, end: date) -> dict[str, MonthRevenue]:
    """Product and service revenue (net of tax) by month, start..end inclusive: invoiced in
    the month of issue, less credit notes in the month they were issued."""
    month = _month(Invoice.issued_on)
    rows = db.session.execute(
        select(month, func.coalesce(func.sum(Invoice.product_amount), 0), func.coalesce(func.sum(Invoice.service_amount), 0))
        .where(Invoice.status.in_(ISSUED), Invoice.issued_on >= start, Invoice.issued_on <= end)
        .group_by(month)
    )
    found = {m: MonthRevenue(m, int(p), int(s)) for m, p, s in rows}
    credit_month = _month(CreditNote.issued_on)
    credited = db.session.execute(
        select(credit_month, func.sum(CreditNote.product_amount), func.sum(CreditNote.service_amount))
        .where(CreditNote.issued_on >= start, CreditNote.issued_on <= end).group_by(credit_month))
    for m, p, s in credited:
        was = found.get(m, MonthRevenue(m, 0, 0))
        found[m] = MonthRevenue(m, was.product - int(p), was.service - int(s))
    return found


def _clinic_currency(today: date) -> str:
    """The currency of the price list in effect (else the newest); GBP before any exists,
    when every figure is 0 anyway."""
    currency = db.session.scalar(select(PriceListVersion.currency).where(PriceListVersion.effective_from <= today)
                                 .order_by(PriceListVersion.effective_from.desc(), PriceListVersion.version.desc())
                                 .limit(1))
    currency = currency or db.session.scalar(select(PriceListVersion.currency)
                                             .order_by(PriceListVersion.version.desc()).limit(1))
    return currency or "GBP"


def dashboard() -> Dashboard:
    today = today_at_clinic()
    currency = _clinic_currency(today)
    outstanding, count, overdue, overdue_count = db.session.execute(
        select(func.coalesce(func.sum(Invoice.total - Invoice.amount_paid - Invoice.credit_applied), 0), func.count(),
               func.coalesce(func.sum(case((Invoice.due_date < today, Invoice.total - Invoice.amount_paid - Invoice.credit_applied), else_=0)), 0),
               func.coalesce(func.sum(case((Invoice.due_date < today, 1), else_=0)), 0))
        .where(Invoice.status == InvoiceStatus.OPEN)
    ).one()
    first = today.replace(day=1)
    paid = db.session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.received_on >= first))
    refunded = db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0))
                                 .where(Refund.created_at >= start_of_day(first),
                                        Refund.status == RefundStatus.SUCCEEDED))
    months = _months_back(today, 12)
    start = date(int(months[0][:4]), int(months[0][5:]), 1)
    found = revenue_by_month(start, today)
    return Dashboard(currency, int(outstanding), int(count), int(overdue), int(overdue_count),
                     int(paid) - int(refunded), [found.get(m, MonthRevenue(m, 0, 0)) for m in months])


@dataclass(frozen=True)
class AgedDebt:
    buckets: list[tuple[str, int, int]]  # (label, invoices, amount due)

    @property
    def total(self) -> int:
        return sum(amount for _, _, amount in self.buckets)


AGE_BUCKETS = (("0–30 days", 0, 30), ("31–60 days", 31, 60), ("61–90 days", 61, 90), ("over 90 days", 91, None))


def aged_debt() -> AgedDebt:
    """What open invoices still owe, by days since the invoice date."""
    today = today_at_clinic()
    due = Invoice.total - Invoice.amount_paid - Invoice.credit_applied
    columns = []
    for _, low, high in AGE_BUCKETS:
        newest = today - timedelta(days=low)
        condition = Invoice.issued_on <= newest
        if high is not None:
            condition = condition & (Invoice.issued_on >= today - timedelta(days=high))
        columns += [func.coalesce(func.sum(case((condition, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((condition, due), else_=0)), 0)]
    row = db.session.execute(select(*columns).where(Invoice.status == InvoiceStatus.OPEN)).one()
    return AgedDebt([(label, int(row[2 * i]), int(row[2 * i + 1])) for i, (label, _, _) in enumerate(AGE_BUCKETS)])


# --- CSV for the accounting package -------------------------------------------------------------

def _pounds(amount: int, currency: str) -> Decimal:
    return major(amount, currency)  # a number: written as "1234.50", never neutralised


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading ' (OWASP's rule)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def _csv(header: list[str], rows: Iterable[list[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([neutralise(cell) for cell in row])
        yield buffer.getvalue()


def _issued_between(start: date | None, end: date | None):
    query = select(Invoice).where(Invoice.status.in_(ISSUED + (InvoiceStatus.VOID,)), Invoice.issued_on.is_not(None))
    if start:
        query = query.where(Invoice.issued_on >= start)
    if end:
        query = query.where(Invoice.issued_on <= end)
    return query.order_by(Invoice.issued_on, Invoice.seq)


def invoices_csv(start: date | None, end: date | None) -> Iterator[str]:
    header = ["number", "invoice_date", "service_date", "due_date", "status", "patient_id", "patient_name",
              "payer", "currency", "product", "service", "subtotal", "tax", "total", "paid", "refunded", "due"]

    def rows():
        for inv in db.session.scalars(_issued_between(start, end).execution_options(yield_per=500)):
            c = inv.currency
            yield [inv.number, inv.issued_on.isoformat(), inv.service_date.isoformat(),
                   inv.due_date.isoformat() if inv.due_date else "", inv.status, inv.patient_id, inv.patient_name,
                   (inv.bill_to or {}).get("name", ""), c, _pounds(inv.product_amount, c), _pounds(inv.service_amount, c),
                   _pounds(inv.subtotal, c), _pounds(inv.tax, c), _pounds(inv.total, c), _pounds(inv.amount_paid, c),
                   _pounds(inv.amount_refunded, c), _pounds(inv.amount_due, c)]
    return _csv(header, rows())


def lines_csv(start: date | None, end: date | None) -> Iterator[str]:
    header = ["number", "invoice_date", "status", "category", "description", "quantity", "unit", "currency",
              "amount", "tax_rate", "tax", "gross"]

    def rows():
        for inv in db.session.scalars(_issued_between(start, end).execution_options(yield_per=500)):
            for line in inv.lines:
                yield [inv.number, inv.issued_on.isoformat(), inv.status, line["category"], line["description"],
                       line["quantity"], line["unit"], inv.currency, _pounds(line["amount"], inv.currency),
                       line["tax_rate"], _pounds(line["tax_amount"], inv.currency),
                       _pounds(line["amount"] + line["tax_amount"], inv.currency)]
    return _csv(header, rows())


def payments_csv(start: date | None, end: date | None) -> Iterator[str]:
    header = ["payment_id", "received_on", "invoice_number", "method", "reference", "currency", "amount", "refunded"]

    def rows():
        query = select(Payment, Invoice.number, Invoice.currency).join(Invoice, Invoice.seq == Payment.invoice_seq)
        if start:
            query = query.where(Payment.received_on >= start)
        if end:
            query = query.where(Payment.received_on <= end)
        for payment, number, currency in db.session.execute(query.order_by(Payment.received_on, Payment.seq)):
            yield [payment.id, payment.received_on.isoformat(), number, payment.method, payment.reference or "",
                   currency, _pounds(payment.amount, currency), _pounds(payment.amount_refunded, currency)]
    return _csv(header, rows())


def credit_notes_csv(start: date | None, end: date | None) -> Iterator[str]:
    header = ["number", "credit_note_date", "invoice_number", "invoice_date", "reason", "currency", "product",
              "service", "subtotal", "tax", "total", "pre_payment", "refunded", "returned_out_of_band", "memo"]

    def rows():
        query = select(CreditNote, Invoice.number, Invoice.issued_on).join(Invoice, Invoice.seq == CreditNote.invoice_seq)
        if start:
            query = query.where(CreditNote.issued_on >= start)
        if end:
            query = query.where(CreditNote.issued_on <= end)
        for note, number, invoice_date in db.session.execute(query.order_by(CreditNote.issued_on, CreditNote.seq)):
            c = note.currency
            yield [note.number, note.issued_on.isoformat(), number, invoice_date.isoformat(), note.reason, c,
                   _pounds(note.product_amount, c), _pounds(note.service_amount, c), _pounds(note.subtotal, c),
                   _pounds(note.tax, c), _pounds(note.total, c), _pounds(note.pre_payment_amount, c),
                   _pounds(note.refund_amount, c), _pounds(note.out_of_band_amount, c), note.memo or ""]
    return _csv(header, rows())

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

from .clock import CLINIC_TIME, start_of_day, today_at_clinic
from .extensions import db
from .invoice_search import AGES, OWED, InvoiceFilter, age_condition, all_invoices
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
class AgeBucket:
    key: str  # an invoice_search.AGES key, for the drill-down link
    label: str
    invoices: int
    amount: int  # still due


@dataclass(frozen=True)
class PayerDebt:
    """What one payer owes: bill_to's name (`payer`), else the patient paying for themselves."""
    payer: str | None
    patient_id: str | None
    name: str
    invoices: int
    by_age: dict[str, int]  # AGES key → amount due

    @property
    def total(self) -> int:
        return sum(self.by_age.values())


@dataclass(frozen=True)
class AgedDebt:
    buckets: list[AgeBucket]
    payers: list[PayerDebt]  # who owes most first, at most `TOP_PAYERS`
    payer_count: int

    @property
    def total(self) -> int:
        return sum(b.amount for b in self.buckets)


TOP_PAYERS = 25


def aged_debt() -> AgedDebt:
    """What open invoices still owe, by days past their due date (not yet due, 1–30, 31–60,
    61–90, over 90), in all and for each payer: one aggregate, grouped by payer."""
    today = today_at_clinic()
    conditions = [age_condition(key, today) for key in AGES]
    # A patient paying for themselves is one payer per patient id; a named payer is one by name.
    patient = case((Invoice.payer_name.is_(None), Invoice.patient_id), else_=None)
    columns = []
    for condition in conditions:
        columns += [func.coalesce(func.sum(case((condition, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((condition, OWED), else_=0)), 0)]
    groups = db.session.execute(
        select(Invoice.payer_name, patient, func.max(Invoice.patient_name), *columns)
        .where(age_condition("owing", today)).group_by(Invoice.payer_name, patient)
        .order_by(func.sum(OWED).desc(), Invoice.payer_name, patient)).all()
    counts = [[int(g[3 + 2 * i]) for g in groups] for i in range(len(AGES))]
    amounts = [[int(g[4 + 2 * i]) for g in groups] for i in range(len(AGES))]
    buckets = [AgeBucket(key, AGES[key][0], sum(counts[i]), sum(amounts[i])) for i, key in enumerate(AGES)]
    payers = [PayerDebt(g[0], g[1], g[0] or g[2], sum(counts[i][n] for i in range(len(AGES))),
                        {key: amounts[i][n] for i, key in enumerate(AGES)})
              for n, g in enumerate(groups[:TOP_PAYERS])]
    return AgedDebt(buckets, payers, len(groups))


# --- CSV for the accounting package -------------------------------------------------------------

def _pounds(amount: int, currency: str) -> Decimal:
    return major(amount, currency)  # a number: written as "1234.50", never neutralised


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading ' (OWASP's rule)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


BOM = "\ufeff"  # so Excel on Windows reads the file as UTF-8 ("Łucja Wróbel", not mojibake)


def _csv(columns: list[tuple[str, str]], rows: Iterable[list[object]], human: bool = False) -> Iterator[str]:
    """A BOM, one header row — the machine names (stable, documented), or with `human` the names
    people read — then the rows, formulas neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([people if human else machine for machine, people in columns])
    yield BOM + buffer.getvalue()
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


INVOICE_COLUMNS = [
    ("number", "Invoice number"), ("invoice_date", "Invoice date"), ("service_date", "Service date"),
    ("due_date", "Due date"), ("status", "Status"), ("patient_id", "Patient id"), ("patient_name", "Patient"),
    ("payer", "Payer"), ("currency", "Currency"), ("product", "Immunoglobulin product"),
    ("service", "Infusion service"), ("subtotal", "Subtotal"), ("tax", "Tax"), ("total", "Total"), ("paid", "Paid"),
    ("refunded", "Refunded"), ("due", "Amount due")]


def invoices_csv(start: date | None, end: date | None, *, human: bool = False) -> Iterator[str]:
    def rows():
        for inv in db.session.scalars(_issued_between(start, end).execution_options(yield_per=500)):
            c = inv.currency
            yield [inv.number, inv.issued_on.isoformat(), inv.service_date.isoformat(),
                   inv.due_date.isoformat() if inv.due_date else "", inv.status, inv.patient_id, inv.patient_name,
                   (inv.bill_to or {}).get("name", ""), c, _pounds(inv.product_amount, c), _pounds(inv.service_amount, c),
                   _pounds(inv.subtotal, c), _pounds(inv.tax, c), _pounds(inv.total, c), _pounds(inv.amount_paid, c),
                   _pounds(inv.amount_refunded, c), _pounds(inv.amount_due, c)]
    return _csv(INVOICE_COLUMNS, rows(), human)


LINE_COLUMNS = [
    ("number", "Invoice number"), ("invoice_date", "Invoice date"), ("status", "Status"), ("category", "Category"),
    ("description", "Description"), ("quantity", "Quantity"), ("unit", "Unit"), ("currency", "Currency"),
    ("amount", "Net amount"), ("tax_rate", "Tax rate"), ("tax_label", "Tax treatment"), ("tax", "Tax"),
    ("gross", "Gross amount")]


def lines_csv(start: date | None, end: date | None, *, human: bool = False) -> Iterator[str]:
    """One row per invoice line; `tax_label` says what a rate of 0 means (exempt or zero-rated)."""
    def rows():
        for inv in db.session.scalars(_issued_between(start, end).execution_options(yield_per=500)):
            for line in inv.lines:
                yield [inv.number, inv.issued_on.isoformat(), inv.status, line["category"], line["description"],
                       line["quantity"], line["unit"], inv.currency, _pounds(line["amount"], inv.currency),
                       line["tax_rate"], line.get("tax_label", ""), _pounds(line["tax_amount"], inv.currency),
                       _pounds(line["amount"] + line["tax_amount"], inv.currency)]
    return _csv(LINE_COLUMNS, rows(), human)


PAYMENT_COLUMNS = [
    ("payment_id", "Payment id"), ("received_on", "Received on"), ("invoice_number", "Invoice number"),
    ("method", "Method"), ("reference", "Reference"), ("currency", "Currency"), ("amount", "Amount"),
    ("refunded", "Refunded")]


def payments_csv(start: date | None, end: date | None, *, human: bool = False) -> Iterator[str]:
    def rows():
        query = select(Payment, Invoice.number, Invoice.currency).join(Invoice, Invoice.seq == Payment.invoice_seq)
        if start:
            query = query.where(Payment.received_on >= start)
        if end:
            query = query.where(Payment.received_on <= end)
        for payment, number, currency in db.session.execute(query.order_by(Payment.received_on, Payment.seq)):
            yield [payment.id, payment.received_on.isoformat(), number, payment.method, payment.reference or "",
                   currency, _pounds(payment.amount, currency), _pounds(payment.amount_refunded, currency)]
    return _csv(PAYMENT_COLUMNS, rows(), human)


REFUND_COLUMNS = [
    ("refund_date", "Refund date"), ("invoice_number", "Invoice number"), ("currency", "Currency"),
    ("amount", "Amount"), ("method", "Method"), ("payment_reference", "Payment reference"), ("reason", "Reason"),
    ("status", "Status")]


def refunds_csv(start: date | None, end: date | None, *, human: bool = False) -> Iterator[str]:
    """Every refund by the day it was made at the clinic (pending and failed ones too, saying so)."""
    def rows():
        query = (select(Refund, Invoice.number, Invoice.currency, Payment.method, Payment.reference)
                 .join(Invoice, Invoice.seq == Refund.invoice_seq).join(Payment, Payment.seq == Refund.payment_seq))
        if start:
            query = query.where(Refund.created_at >= start_of_day(start))
        if end:
            query = query.where(Refund.created_at < start_of_day(end + timedelta(days=1)))
        for refund, number, currency, method, reference in db.session.execute(
                query.order_by(Refund.created_at, Refund.seq)):
            yield [refund.created_at.astimezone(CLINIC_TIME).date().isoformat(), number or "", currency,
                   _pounds(refund.amount, currency), method, reference or "", refund.reason, refund.status]
    return _csv(REFUND_COLUMNS, rows(), human)


CREDIT_NOTE_COLUMNS = [
    ("number", "Credit note number"), ("credit_note_date", "Credit note date"), ("invoice_number", "Invoice number"),
    ("invoice_date", "Invoice date"), ("reason", "Reason"), ("currency", "Currency"),
    ("product", "Immunoglobulin product"), ("service", "Infusion service"), ("subtotal", "Subtotal"), ("tax", "Tax"),
    ("total", "Total"), ("pre_payment", "Reduced the amount due"), ("refunded", "Refunded"),
    ("returned_out_of_band", "Returned another way"), ("memo", "Memo")]


def credit_notes_csv(start: date | None, end: date | None, *, human: bool = False) -> Iterator[str]:
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
    return _csv(CREDIT_NOTE_COLUMNS, rows(), human)


LIST_COLUMNS = [
    ("number", "Invoice number"), ("status", "Status"), ("patient_id", "Patient id"), ("patient_name", "Patient"),
    ("payer", "Payer"), ("payer_reference", "Payer reference"), ("booking_id", "Booking id"),
    ("service_date", "Service date"), ("invoice_date", "Invoice date"), ("due_date", "Due date"),
    ("days_overdue", "Days overdue"), ("currency", "Currency"), ("total", "Total"), ("paid", "Paid"),
    ("credited", "Credited"), ("due", "Amount due")]


def invoice_list_csv(f: InvoiceFilter, *, human: bool = False) -> Iterator[str]:
    """The staff invoice list as filtered, searched and sorted, every page of it."""
    today = today_at_clinic()

    def rows():
        for inv in all_invoices(f):
            c = inv.currency
            late = (today - inv.due_date).days if (inv.status == InvoiceStatus.OPEN and inv.due_date
                                                   and inv.due_date < today and inv.amount_due) else ""
            payer = inv.bill_to or {}
            yield [inv.number or "", inv.status, inv.patient_id, inv.patient_name, payer.get("name") or "",
                   payer.get("reference") or "", inv.booking_id or "", inv.service_date.isoformat(),
                   inv.issued_on.isoformat() if inv.issued_on else "", inv.due_date.isoformat() if inv.due_date else "",
                   late, c, _pounds(inv.total, c), _pounds(inv.amount_paid, c), _pounds(inv.amount_credited, c),
                   _pounds(inv.amount_due, c)]
    return _csv(LIST_COLUMNS, rows(), human)

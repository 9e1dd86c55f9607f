"""Use cases for invoices: drafts priced like quotes, finalize with gap-free numbers, void,
uncollectible, manual payments and refunds, each with its audit event, each one transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, literal, or_, select, tuple_, update

from .errors import Invalid, NotFound, Unavailable, WrongState
from .extensions import db
from .ids import new_id
from .models import AuditEvent, Invoice, InvoiceCounter, Payment, Refund, utcnow
from .pricing import PRODUCT, SERVICE, InfusionRequest, Quote
from .pricing.documents import excluded_item_json, line_json, request_from_json, request_json
from .quotes import price_one

if TYPE_CHECKING:
    from .payments.gateway import StripeGateway

CLINIC_TIME = ZoneInfo("Europe/London")  # invoice dates and number years are the clinic's
MANUAL_METHODS = ("card_terminal", "bank_transfer", "cash", "other")


class InvoiceNotDraft(WrongState):
    pass


class InvoiceNotFound(NotFound):
    pass


class Overpayment(Invalid):
    pass


class RefundTooLarge(Invalid):
    pass


# --- reading ----------------------------------------------------------------------------------

def get_invoice(invoice_id: str) -> Invoice:
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id))
    if invoice is None:
        raise InvoiceNotFound(f"No invoice {invoice_id}.")
    return invoice


def list_invoices(
    *, limit: int, starting_after: str | None = None, status: str | None = None,
    patient_id: str | None = None, booking_id: str | None = None,
) -> tuple[list[Invoice], bool]:
    """Newest first; a page reads about `limit` index entries whatever the table's size.

    Each filter has an index (column, seq). Status has few values, and PostgreSQL, seeing
    `status = 'open'`, may walk the primary key backwards and filter instead, which reads
    every newer row of other statuses first (a second per page at a million invoices, in
    the benchmark). Written as a range with `(status, seq)` ordering, only the status index
    can give that order, so it is walked from the right place and stops after `limit` rows.
    """
    cursor = get_invoice(starting_after).seq if starting_after else None
    query = select(Invoice)
    if patient_id:
        query = query.where(Invoice.patient_id == patient_id)
    if booking_id:
        query = query.where(Invoice.booking_id == booking_id)
    if status:
        query = query.where(Invoice.status >= status, Invoice.status <= status)
        if cursor is not None:
            query = query.where(tuple_(Invoice.status, Invoice.seq) < tuple_(literal(status), literal(cursor)))
        query = query.order_by(Invoice.status.desc(), Invoice.seq.desc())
    else:
        if cursor is not None:
            query = query.where(Invoice.seq < cursor)
        query = query.order_by(Invoice.seq.desc())
    rows = list(db.session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def find_invoices(*, limit: int, starting_after: str | None = None, status: str | None = None,
                  search: str | None = None, date_from: date | None = None, date_to: date | None = None,
                  ) -> tuple[list[Invoice], bool]:
    """The staff list: status, service dates, and a search by number, patient id or name."""
    if not (search or date_from or date_to):
        return list_invoices(limit=limit, starting_after=starting_after, status=status)
    query = select(Invoice).order_by(Invoice.seq.desc())
    if status:
        query = query.where(Invoice.status == status)
    if search:
        term = search.strip()
        query = query.where(or_(Invoice.number == term.upper(), Invoice.patient_id == term,
                                func.lower(Invoice.patient_name).contains(term.lower(), autoescape=True)))
    if date_from:
        query = query.where(Invoice.service_date >= date_from)
    if date_to:
        query = query.where(Invoice.service_date <= date_to)
    if starting_after:
        query = query.where(Invoice.seq < get_invoice(starting_after).seq)
    rows = list(db.session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def children_of(invoices: list[Invoice]) -> dict[int, tuple[list[Payment], list[Refund]]]:
    """Payments and refunds of many invoices in two queries, keyed by invoice seq."""
    # Refunds come out of payments, so an invoice never paid has neither.
    seqs = [i.seq for i in invoices if i.amount_paid]
    found: dict[int, tuple[list[Payment], list[Refund]]] = {i.seq: ([], []) for i in invoices}
    if not seqs:
        return found
    for payment in db.session.scalars(select(Payment).where(Payment.invoice_seq.in_(seqs)).order_by(Payment.seq)):
        found[payment.invoice_seq][0].append(payment)
    for refund in db.session.scalars(select(Refund).where(Refund.invoice_seq.in_(seqs)).order_by(Refund.seq)):
        found[refund.invoice_seq][1].append(refund)
    return found


def payments_of(invoice: Invoice) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.invoice_seq == invoice.seq).order_by(Payment.seq)))


def refunds_of(invoice: Invoice) -> list[Refund]:
    return list(db.session.scalars(select(Refund).where(Refund.invoice_seq == invoice.seq).order_by(Refund.seq)))


def audit_trail(invoice_id: str) -> list[AuditEvent]:
    invoice = get_invoice(invoice_id)
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.invoice_seq == invoice.seq).order_by(AuditEvent.seq)))


# --- helpers ----------------------------------------------------------------------------------

def state(invoice: Invoice) -> dict[str, Any]:
    """What the audit trail records before and after a change: amounts and status, no names."""
    return {
        "status": invoice.status, "number": invoice.number, "currency": invoice.currency,
        "service_date": invoice.service_date.isoformat() if invoice.service_date else None,
        "price_list_version": invoice.price_list_version, "charge": invoice.charge,
        "product_amount": invoice.product_amount, "service_amount": invoice.service_amount,
        "subtotal": invoice.subtotal, "tax": invoice.tax, "total": invoice.total,
        "amount_paid": invoice.amount_paid, "amount_refunded": invoice.amount_refunded,
        "amount_due": invoice.amount_due,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
    }


def _audit(invoice: Invoice, actor: str, action: str, before: dict[str, Any] | None,
           detail: dict[str, Any] | None = None) -> None:
    db.session.add(AuditEvent(invoice_seq=invoice.seq, actor=actor, action=action, before=before,
                              after=state(invoice), detail=detail))


def _lock(invoice_id: str) -> Invoice:
    """The invoice, locked for this transaction.

    PostgreSQL: SELECT … FOR UPDATE. SQLite has no row locks; bumping `revision` first takes
    its database write lock before anything is read, so the read below is current and no
    other writer can slip in before commit."""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(update(Invoice).where(Invoice.id == invoice_id)
                           .values(revision=Invoice.revision + 1))
        invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id)
                                    .execution_options(populate_existing=True))
    else:
        invoice = db.session.scalar(select(Invoice).where(Invoice.id == invoice_id)
                                    .with_for_update().execution_options(populate_existing=True))
        if invoice is not None:
            invoice.revision += 1
    if invoice is None:
        raise InvoiceNotFound(f"No invoice {invoice_id}.")
    return invoice


def _lock_seq(seq: int) -> Invoice:
    invoice_id = db.session.scalar(select(Invoice.id).where(Invoice.seq == seq))
    if invoice_id is None:
        raise InvoiceNotFound(f"No invoice #{seq}.")
    return _lock(invoice_id)


def _apply_quote(invoice: Invoice, request: InfusionRequest, quote: Quote) -> None:
    invoice.inputs = request_json(request)
    invoice.currency = quote.currency
    invoice.service_date = request.service_date
    invoice.price_list_id = quote.price_list.id  # type: ignore[assignment]
    invoice.price_list_version = quote.price_list.version  # type: ignore[assignment]
    invoice.lines = [line_json(line) for line in quote.lines]
    invoice.excluded_items = [excluded_item_json(e) for e in quote.excluded_items]
    invoice.statement = quote.statement
    product, service = quote.line(PRODUCT), quote.line(SERVICE)
    invoice.product_amount = product.amount if product else 0
    invoice.service_amount = service.amount if service else 0
    invoice.subtotal = quote.subtotal.amount
    invoice.tax = quote.tax.amount
    invoice.total = quote.total.amount


def _price(request: InfusionRequest, charge: str) -> Quote:
    return price_one(request, include_service=(charge == "full"))


def today_at_clinic() -> date:
    return datetime.now(CLINIC_TIME).date()


# --- drafts -----------------------------------------------------------------------------------

def new_draft(request: InfusionRequest, patient: dict[str, Any], actor: str, *,
              booking_id: str | None = None, bill_to: dict[str, Any] | None = None,
              charge: str = "full") -> Invoice:
    """A priced draft, added to the session but not committed (callers commit)."""
    quote = _price(request, charge)
    invoice = Invoice(
        id=new_id("inv"), status="draft", booking_id=booking_id, charge=charge,
        patient_id=patient["id"], patient_name=patient["name"], patient_email=patient.get("email"),
        patient_address=patient.get("address"), bill_to=bill_to,
        amount_paid=0, amount_refunded=0, revision=0,
    )
    _apply_quote(invoice, request, quote)
    db.session.add(invoice)
    db.session.flush()  # assigns seq for the audit event
    _audit(invoice, actor, "created", None)
    return invoice


def create_invoice(request: InfusionRequest, patient: dict[str, Any], actor: str, *,
                   booking_id: str | None = None, bill_to: dict[str, Any] | None = None) -> Invoice:
    invoice = new_draft(request, patient, actor, booking_id=booking_id, bill_to=bill_to)
    db.session.commit()
    return invoice


def revise_draft(invoice: Invoice, changes: dict[str, Any], actor: str, *, action: str = "updated") -> None:
    """Re-price a locked draft with `changes` merged into its inputs (not committed)."""
    if invoice.status != "draft":
        raise InvoiceNotDraft(f"Invoice {invoice.number or invoice.id} is {invoice.status}; only a draft can change.")
    before = state(invoice)
    inputs = {**invoice.inputs, **{k: v for k, v in changes.items() if k in _INPUT_FIELDS}}
    request = request_from_json(inputs)
    _apply_quote(invoice, request, _price(request, changes.get("charge", invoice.charge)))
    if "charge" in changes:
        invoice.charge = changes["charge"]
    patient = changes.get("patient")
    if patient:
        invoice.patient_id = patient["id"]
        invoice.patient_name = patient["name"]
        invoice.patient_email = patient.get("email")
        invoice.patient_address = patient.get("address")
    if "bill_to" in changes:
        invoice.bill_to = changes["bill_to"]
    if "booking_id" in changes:
        invoice.booking_id = changes["booking_id"]
    invoice.updated_at = utcnow()
    _audit(invoice, actor, action, before)


_INPUT_FIELDS = ("product_code", "dose", "duration_minutes", "service_date", "other_items", "vials_dispensed")


def update_draft(invoice_id: str, changes: dict[str, Any], actor: str) -> Invoice:
    """`changes` holds JSON-form inputs (as request_json writes them) and/or patient, bill_to."""
    invoice = _lock(invoice_id)
    revise_draft(invoice, changes, actor)
    db.session.commit()
    return invoice


# --- state changes ----------------------------------------------------------------------------

def finalize_locked(invoice: Invoice, actor: str) -> None:
    """draft → open on a locked invoice: number, issue and due dates; lines frozen from here."""
    if invoice.status != "draft":
        raise InvoiceNotDraft(f"Invoice {invoice.number or invoice.id} is {invoice.status}; only a draft can be finalized.")
    before = state(invoice)
    now = utcnow()
    issued_on = now.astimezone(CLINIC_TIME).date()
    invoice.status = "open"
    invoice.issued_at = now
    invoice.issued_on = issued_on
    invoice.due_date = issued_on + timedelta(days=current_app.config["INVOICE_DUE_DAYS"])
    invoice.updated_at = now
    if invoice.total == 0:
        invoice.status = "paid"
        invoice.paid_at = now
    # Last, so the counter row stays locked for as short a time as possible: from here to commit.
    invoice.number = _take_number(issued_on.year)
    _audit(invoice, actor, "finalized", before)


def finalize_invoice(invoice_id: str, actor: str) -> Invoice:
    invoice = _lock(invoice_id)
    finalize_locked(invoice, actor)
    db.session.commit()
    return invoice


def _take_number(year: int) -> str:
    """The next number of the year from the locked counter row. The UPDATE holds the row lock
    until commit, so concurrent finalizes queue here; a rollback returns the number unused."""
    counter = db.session.execute(
        update(InvoiceCounter).where(InvoiceCounter.year == year)
        .values(last_number=InvoiceCounter.last_number + 1)
        .returning(InvoiceCounter.last_number)
    ).scalar()
    if counter is None:
        _create_counter(year)
        return _take_number(year)
    prefix = current_app.config["INVOICE_PREFIX"]
    return f"{prefix}-{year}-{counter:06d}"


def _create_counter(year: int) -> None:
    table = InvoiceCounter.__table__
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        db.session.execute(pg_insert(table).values(year=year, last_number=0).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        db.session.execute(sqlite_insert(table).values(year=year, last_number=0).on_conflict_do_nothing())


def void_locked(invoice: Invoice, actor: str, *, reason: str | None = None) -> None:
    if invoice.status not in ("draft", "open"):
        raise WrongState(f"Invoice {invoice.number or invoice.id} is {invoice.status}; only a draft or open invoice can be voided.")
    if invoice.amount_paid:
        raise WrongState("This invoice has payments; refund them before voiding it.")
    before = state(invoice)
    invoice.status = "void"
    invoice.voided_at = invoice.updated_at = utcnow()
    _audit(invoice, actor, "voided", before, {"reason": reason} if reason else None)


def void_invoice(invoice_id: str, actor: str) -> Invoice:
    invoice = _lock(invoice_id)
    void_locked(invoice, actor)
    db.session.commit()
    return invoice


def mark_uncollectible(invoice_id: str, actor: str) -> Invoice:
    invoice = _lock(invoice_id)
    if invoice.status != "open":
        raise WrongState(f"Invoice {invoice.number or invoice.id} is {invoice.status}; only an open invoice can be written off.")
    before = state(invoice)
    invoice.status = "uncollectible"
    invoice.uncollectible_at = invoice.updated_at = utcnow()
    _audit(invoice, actor, "marked_uncollectible", before)
    db.session.commit()
    return invoice


# --- money ------------------------------------------------------------------------------------

def add_payment(invoice: Invoice, amount: int, method: str, actor: str, *, reference: str | None = None,
                received_on: date | None = None, stripe_payment_intent: str | None = None) -> Payment:
    """Record a payment on a locked invoice (not committed); paid when nothing is left due.

    A card payment taken online has already moved money, so it is recorded whatever the
    invoice's state, and anything odd (overpaid, void) is flagged in the audit trail."""
    online = stripe_payment_intent is not None
    flag = None
    if amount <= 0:
        raise Invalid("A payment must be more than 0.", field="amount")
    if invoice.status not in ("open", "uncollectible"):
        if not online:
            raise WrongState(f"Invoice {invoice.number or invoice.id} is {invoice.status}; payments go on open invoices.")
        flag = f"Card payment received on a {invoice.status} invoice: refund it or apply it elsewhere."
    elif amount > invoice.amount_due:
        if not online:
            raise Overpayment(f"{amount} is more than the {invoice.amount_due} due.", field="amount")
        flag = f"Overpaid by {amount - invoice.amount_due}: refund the difference."
    before = state(invoice)
    payment = Payment(id=new_id("pay"), invoice_seq=invoice.seq, amount=amount, amount_refunded=0,
                      method=method, reference=reference, received_on=received_on or today_at_clinic(),
                      stripe_payment_intent=stripe_payment_intent, created_by=actor)
    db.session.add(payment)
    invoice.amount_paid += amount
    invoice.updated_at = utcnow()
    if invoice.status in ("open", "uncollectible") and invoice.amount_due <= 0:
        invoice.status = "paid"
        invoice.paid_at = invoice.updated_at
    db.session.flush()
    detail: dict[str, Any] = {"payment_id": payment.id, "amount": amount, "method": method}
    if flag:
        detail["flag"] = flag
    _audit(invoice, actor, "payment_recorded", before, detail)
    return payment


def record_payment(invoice_id: str, amount: int, method: str, actor: str, *,
                   reference: str | None = None, received_on: date | None = None) -> Invoice:
    if method not in MANUAL_METHODS:
        raise Invalid(f"Method must be one of {', '.join(MANUAL_METHODS)}.", field="method")
    invoice = _lock(invoice_id)
    add_payment(invoice, amount, method, actor, reference=reference, received_on=received_on)
    db.session.commit()
    return invoice


def refundable(invoice: Invoice) -> int:
    return invoice.amount_paid - invoice.amount_refunded


def plan_refund(invoice: Invoice, amount: int) -> list[tuple[Payment, int]]:
    """Which payments a refund of `amount` comes out of: the newest first."""
    if amount <= 0:
        raise Invalid("A refund must be more than 0.", field="amount")
    if amount > refundable(invoice):
        raise RefundTooLarge(f"{amount} is more than the {refundable(invoice)} that can still be refunded.",
                             field="amount")
    plan: list[tuple[Payment, int]] = []
    left = amount
    for payment in reversed(payments_of(invoice)):
        share = min(left, payment.amount - payment.amount_refunded)
        if share > 0:
            plan.append((payment, share))
            left -= share
        if left == 0:
            break
    return plan


def add_refund(invoice: Invoice, payment: Payment, amount: int, reason: str, actor: str, *,
               stripe_refund: str | None = None) -> Refund:
    before = state(invoice)
    refund = Refund(id=new_id("re"), invoice_seq=invoice.seq, payment_seq=payment.seq, amount=amount,
                    reason=reason, stripe_refund=stripe_refund, created_by=actor)
    db.session.add(refund)
    payment.amount_refunded += amount
    invoice.amount_refunded += amount
    invoice.updated_at = utcnow()
    db.session.flush()
    _audit(invoice, actor, "refunded", before, {"refund_id": refund.id, "payment_id": payment.id, "amount": amount})
    return refund


def refund(invoice_id: str, amount: int, reason: str, actor: str, gateway: "StripeGateway | None") -> Invoice:
    """Refund part or all of what was paid, newest payment first. Card payments taken online
    are refunded through Stripe; how much remains refundable is checked here, before Stripe
    is asked, under the invoice's row lock, so two refunds can't both take the last pound."""
    invoice = _lock(invoice_id)
    if invoice.status in ("draft", "void") and invoice.amount_paid == 0:
        raise WrongState(f"Invoice {invoice.number or invoice.id} is {invoice.status}; it has nothing to refund.")
    plan = plan_refund(invoice, amount)
    done = len(refunds_of(invoice))
    for i, (payment, share) in enumerate(plan):
        stripe_refund = None
        if payment.stripe_payment_intent:
            if gateway is None:
                raise Unavailable("This payment was taken online, and paying online is not configured.")
            # attempt = the refund's place among this invoice's refunds: the same on a retry
            # (nothing was recorded), so Stripe sees the same idempotency key and refunds once.
            stripe_refund = gateway.refund(payment_intent=payment.stripe_payment_intent, amount=share,
                                           invoice_id=invoice.id, attempt=done + i + 1).id
        add_refund(invoice, payment, share, reason, actor, stripe_refund=stripe_refund)
    db.session.commit()
    return invoice

"""The invoice core: every change to an invoice goes through one unit of work, `invoice_change`.

It locks the invoice row, keeps the state before, lets the use case change the invoice through
the state machine (billing/states.py), then writes the audit event and the outbox messages that
must follow, in the same transaction, and commits once (or joins the caller's transaction).
The use cases below — drafts, finalize, void, write-off, payments by hand and by card, refunds,
the pay page's PaymentIntent — are the only way other modules change an invoice.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterator

from flask import current_app
from sqlalchemy import bindparam, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.orm import make_transient_to_detached

from . import messages, outbox
from .clock import CLINIC_TIME, today_at_clinic
from .errors import DomainProblem, Invalid, NotFound, Unavailable, WrongState
from .extensions import db
from .ids import new_id
from .invoice_search import keep_searchable
from .models import AuditEvent, CreditNote, CreditNoteCounter, Invoice, InvoiceCounter, Payment, Refund, utcnow
from .money_format import show
from .pricing import PRODUCT, SERVICE, InfusionRequest, Quote
from .pricing.documents import excluded_item_json, line_json, request_from_json, request_json
from .quotes import price_one
from .states import (
    MANUAL_METHODS,
    TAKES_PAYMENT,
    IllegalMove,
    InvoiceStatus,
    Move,
    PaymentMethod,
    RefundStatus,
    next_status,
)
from .unit_of_work import in_transaction, inserted_now, locked, transaction

if TYPE_CHECKING:
    from .payments.gateway import StripeGateway

__all__ = ["CLINIC_TIME", "today_at_clinic", "MANUAL_METHODS"]

STRIPE_ACTOR = "stripe"

# Outbox topics the invoice core writes; billing/payments/tasks.py delivers them.
SYNC_INTENT = "payment_intent.sync"        # make the live PaymentIntent match what is due, or cancel it
CANCEL_INTENT = "payment_intent.cancel"    # an intent that never became the invoice's
SEND_REFUND = "refund.send"                # a pending refund row, to Stripe
REFUND_UNBOOKED = "payment.refund_unbooked"  # card money that is not the invoice's (another currency)


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


def credit_note_ids(invoices: list[Invoice]) -> dict[int, list[str]]:
    """The ids of many invoices' credit notes in one query (none when nothing was credited)."""
    found: dict[int, list[str]] = {i.seq: [] for i in invoices}
    seqs = [i.seq for i in invoices if i.amount_credited]
    if seqs:
        for seq, note_id in db.session.execute(select(CreditNote.invoice_seq, CreditNote.id)
                                               .where(CreditNote.invoice_seq.in_(seqs)).order_by(CreditNote.seq)):
            found[seq].append(note_id)
    return found


def payments_of(invoice: Invoice) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.invoice_seq == invoice.seq).order_by(Payment.seq)))


def refunds_of(invoice: Invoice) -> list[Refund]:
    return list(db.session.scalars(select(Refund).where(Refund.invoice_seq == invoice.seq).order_by(Refund.seq)))


def audit_trail(invoice_id: str) -> list[AuditEvent]:
    invoice = get_invoice(invoice_id)
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.invoice_seq == invoice.seq).order_by(AuditEvent.seq)))


def state(invoice: Invoice) -> dict[str, Any]:
    """What the audit trail records before and after a change: amounts and status, no names."""
    return {
        "status": invoice.status, "number": invoice.number, "currency": invoice.currency,
        "service_date": invoice.service_date.isoformat() if invoice.service_date else None,
        "price_list_version": invoice.price_list_version, "charge": invoice.charge,
        "product_amount": invoice.product_amount, "service_amount": invoice.service_amount,
        "subtotal": invoice.subtotal, "tax": invoice.tax, "total": invoice.total,
        "amount_paid": invoice.amount_paid, "amount_refunded": invoice.amount_refunded,
        "amount_credited": invoice.amount_credited, "amount_due": invoice.amount_due,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
    }


# --- the unit of work -------------------------------------------------------------------------

class InvoiceChange:
    """What a use case may do inside `invoice_change`: change the locked invoice, move its status
    through the state table, and say what the audit trail, staff and the outbox must hear."""

    def __init__(self, invoice: Invoice, actor: str, action: str, before: dict[str, Any] | None) -> None:
        self.invoice = invoice
        self.actor = actor
        self.action = action
        self.before = before
        self.detail: dict[str, Any] = {}
        self.flags: list[str] = []
        self.happened: list[tuple[str, dict[str, str]]] = []
        self.number_year: int | None = None
        self.quiet = False

    def move(self, move: Move) -> None:
        self.invoice.status = next_status(self.invoice.status, move)

    def note(self, **detail: Any) -> None:
        self.detail.update(detail)

    def flag(self, text: str) -> None:
        """Something finance staff must look at: kept on the invoice and in its audit event."""
        self.flags.append(text)

    def emit(self, topic: str, payload: dict[str, Any], *, once_key: str | None = None) -> None:
        """A message to deliver once this change commits (never if it rolls back)."""
        outbox.enqueue("stripe", topic, payload, invoice_seq=self.invoice.seq, once_key=once_key)

    def tell(self, event_type: str, **ids: str) -> None:
        """Something the booking system and the payer hear about once this change commits
        (billing/messages: an event, and the email that follows it). Status moves tell
        themselves: finalized, paid, voided, written off."""
        self.happened.append((event_type, ids))

    def give_number(self, year: int) -> None:
        """Give the invoice the next number of `year`, as the very last thing before commit: the
        counter row stays locked from then until commit, so everything else is written first."""
        self.number_year = year

    def unchanged(self) -> None:
        """Nothing happened after all (a duplicate, a retry): no audit event."""
        self.quiet = True


def _label(invoice: Invoice) -> str:
    return invoice.number or invoice.id


@contextmanager
def invoice_change(invoice_id: str, actor: str, action: str) -> Iterator[InvoiceChange]:
    """Lock the invoice, run the change, audit it and queue what follows, commit once.

    A move the state table doesn't allow is a WrongState (409) and changes nothing."""
    with transaction():
        invoice = _lock(invoice_id)
        change = InvoiceChange(invoice, actor, action, state(invoice))
        try:
            yield change
        except IllegalMove as error:
            raise WrongState(f"Invoice {_label(invoice)} {error}.") from None
        _finish(change)


def _new_invoice(invoice: Invoice, actor: str) -> None:
    """Write a new invoice and its "created" audit event (what `_finish` writes for it: a new
    draft moves no status, so it queues no message, takes no number and has no intent).

    The row is written whole, in one INSERT: its times and search columns are set first (an
    UPDATE after it would write the row and every index entry a second time). On PostgreSQL
    the invoice and its audit event go in one statement (the audit row takes the new seq from
    the INSERT's RETURNING), and the invoice joins the session as the row it now is."""
    with transaction():
        invoice.created_at = invoice.updated_at = utcnow()
        keep_searchable(invoice)
        change = InvoiceChange(invoice, actor, "created", None)
        if db.engine.dialect.name == "postgresql":
            _insert_with_audit(change)
        else:
            _insert_by_orm(change)
        locked("invoice")[invoice.id] = invoice  # nobody else can see it before commit


def _insert_by_orm(change: InvoiceChange) -> None:
    db.session.add(change.invoice)
    db.session.flush()  # assigns seq for the audit event
    _finish(change, touched=False)


def _insert_with_audit(change: InvoiceChange) -> None:
    """PostgreSQL: the same rows as `_insert_by_orm`, in one statement (a CTE)."""
    invoice = change.invoice
    params: dict[str, Any] = {}
    for column in Invoice.__table__.columns:
        if column.key == "seq":
            continue
        if column.key not in invoice.__dict__:  # what the ORM's INSERT would write: the default, else NULL
            default = column.default
            if default is not None and not default.is_scalar:
                raise RuntimeError(f"Invoice.{column.key} must be set before a new invoice is written")
            setattr(invoice, column.key, default.arg if default is not None else None)
        params[column.key] = invoice.__dict__[column.key]
    params.update({"audit_actor": change.actor, "audit_action": change.action, "audit_before": change.before,
                   "audit_after": state(invoice), "audit_detail": change.detail or None,
                   "audit_created_at": utcnow()})
    with db.session.no_autoflush:
        invoice.seq = db.session.execute(_invoice_with_audit(), params).scalar_one()
    make_transient_to_detached(invoice)  # every column loaded, nothing to flush
    db.session.add(invoice)
    inserted_now(invoice)


_AUDIT_COLUMNS = ("actor", "action", "before", "after", "detail", "created_at")


@cache
def _invoice_with_audit() -> Any:
    """INSERT the invoice RETURNING seq, and INSERT its audit event with that seq: one statement,
    built once (so SQLAlchemy keys its compiled form once), its values bound by name."""
    table, audit = Invoice.__table__, AuditEvent.__table__
    new_row = (insert(table).values({c.key: bindparam(c.key, type_=c.type) for c in table.columns if c.key != "seq"})
               .returning(table.c.seq).cte("new_invoice"))
    values = select(new_row.c.seq, *(bindparam(f"audit_{key}", type_=audit.c[key].type) for key in _AUDIT_COLUMNS))
    return insert(audit).from_select(["invoice_seq", *_AUDIT_COLUMNS], values).returning(audit.c.invoice_seq)


def _finish(change: InvoiceChange, *, touched: bool = True) -> None:
    """`touched`: the invoice changed since its row was written (False: a new invoice, written
    just now with its updated_at)."""
    if change.quiet:
        return
    invoice = change.invoice
    if touched:
        invoice.updated_at = utcnow()
    if change.flags:
        text = " ".join(change.flags)
        invoice.attention = f"{invoice.attention} {text}" if invoice.attention else text
        change.detail["flag"] = text
    after = state(invoice)
    first, last = messages.status_events(change.before and change.before["status"], after["status"])
    messages.queue_for_change(invoice, [(event, {}) for event in first] + change.happened
                              + [(event, {}) for event in last])
    if change.number_year is not None:
        # The messages are written already (billing/outbox.py writes at once); from here to
        # commit, the counter row is locked: only the invoice's row and the audit event follow.
        # (An event queued above carries number null; the worker fills it in: it never changes.)
        invoice.number = after["number"] = _take_number(change.number_year)
    keep_searchable(invoice)  # number, patient, payer or booking may have changed
    # A plain INSERT, now (as the outbox writes its rows): a fraction of the ORM's flush. The
    # invoice's own row is still written at commit, as before.
    with db.session.no_autoflush:
        db.session.execute(insert(AuditEvent.__table__), [{
            "invoice_seq": invoice.seq, "actor": change.actor, "action": change.action, "before": change.before,
            "after": after, "detail": change.detail or None, "created_at": utcnow()}])
    # At most one live PaymentIntent, for exactly what is due: when that stops being true,
    # the worker cancels it (a patient's stale tab can then no longer charge the card).
    if (invoice.stripe_payment_intent and change.before is not None
            and (change.before["status"], change.before["amount_due"]) != (after["status"], after["amount_due"])
            and not intent_matches(invoice)):
        change.emit(SYNC_INTENT, {"invoice_id": invoice.id, "payment_intent": invoice.stripe_payment_intent})


def intent_matches(invoice: Invoice) -> bool:
    """The live PaymentIntent is right for the invoice: it takes payment and owes exactly that."""
    return invoice.status in TAKES_PAYMENT and invoice.stripe_intent_amount == invoice.amount_due > 0


def _lock(invoice_id: str) -> Invoice:
    """The invoice, locked for this transaction (once: a second lock in it costs nothing).

    PostgreSQL: SELECT … FOR UPDATE. SQLite has no row locks; bumping `revision` first takes
    its database write lock before anything is read, so the read below is current and no
    other writer can slip in before commit."""
    held = locked("invoice")
    if invoice_id in held:
        return held[invoice_id]
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
    held[invoice_id] = invoice
    return invoice


def _invoice_id_of(seq: int) -> str:
    invoice_id = db.session.scalar(select(Invoice.id).where(Invoice.seq == seq))
    if invoice_id is None:
        raise InvoiceNotFound(f"No invoice #{seq}.")
    return invoice_id


def _fresh(model: type, seq: int) -> Any:
    return db.session.scalar(select(model).where(model.seq == seq).execution_options(populate_existing=True))


# --- drafts -----------------------------------------------------------------------------------

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


def create_invoice(request: InfusionRequest, patient: dict[str, Any], actor: str, *,
                   booking_id: str | None = None, bill_to: dict[str, Any] | None = None,
                   charge: str = "full") -> Invoice:
    """A draft priced exactly as a quote would be."""
    invoice = Invoice(
        id=new_id("inv"), status=InvoiceStatus.DRAFT, booking_id=booking_id, charge=charge,
        patient_id=patient["id"], patient_name=patient["name"], patient_email=patient.get("email"),
        patient_address=patient.get("address"), bill_to=bill_to,
        amount_paid=0, amount_refunded=0, revision=0,
    )
    _apply_quote(invoice, request, _price(request, charge))
    _new_invoice(invoice, actor)
    return invoice


_INPUT_FIELDS = ("product_code", "dose", "duration_minutes", "service_date", "other_items", "vials_dispensed")


def update_draft(invoice_id: str, changes: dict[str, Any], actor: str, *, action: str = "updated") -> Invoice:
    """Re-price a draft with `changes` (JSON-form inputs, as request_json writes them, and/or
    patient, bill_to, booking_id) merged into its inputs under the row lock."""
    with invoice_change(invoice_id, actor, action) as change:
        invoice = change.invoice
        change.move(Move.EDIT)
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
        if changes.get("booking_id", invoice.booking_id) != invoice.booking_id:
            if invoice.booking_id is not None:
                raise WrongState(f"Invoice {_label(invoice)} belongs to booking {invoice.booking_id}; "
                                 "a booking id can't change once set.")
            invoice.booking_id = changes["booking_id"]
    return invoice


def flag_invoice(invoice_id: str, actor: str, text: str, **detail: Any) -> None:
    """Something finance staff must look at, on the invoice and in its audit trail."""
    with invoice_change(invoice_id, actor, "flagged") as change:
        change.flag(text)
        change.note(**detail)


# --- status -----------------------------------------------------------------------------------

def finalize_invoice(invoice_id: str, actor: str) -> Invoice:
    """draft → open: number, issue and due dates; lines frozen from here (paid at once if 0)."""
    with invoice_change(invoice_id, actor, "finalized") as change:
        invoice = change.invoice
        change.move(Move.FINALIZE)
        now = utcnow()
        issued_on = now.astimezone(CLINIC_TIME).date()
        invoice.issued_at = now
        invoice.issued_on = issued_on
        invoice.due_date = issued_on + timedelta(days=current_app.config["INVOICE_DUE_DAYS"])
        if invoice.amount_due == 0:
            change.move(Move.SETTLE)
            invoice.paid_at = now
        change.give_number(issued_on.year)  # taken last of all, so the counter row is locked briefly
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


def void_invoice(invoice_id: str, actor: str, *, reason: str | None = None) -> Invoice:
    """draft|open → void, while nothing has been paid; a live PaymentIntent is cancelled."""
    with invoice_change(invoice_id, actor, "voided") as change:
        invoice = change.invoice
        change.move(Move.VOID)
        if invoice.amount_paid:
            raise WrongState("This invoice has payments; refund them before voiding it.")
        invoice.voided_at = utcnow()
        if reason:
            change.note(reason=reason)
    return invoice


def mark_uncollectible(invoice_id: str, actor: str, *, reason: str | None = None) -> Invoice:
    with invoice_change(invoice_id, actor, "marked_uncollectible") as change:
        change.move(Move.WRITE_OFF)
        change.invoice.uncollectible_at = utcnow()
        if reason:
            change.note(reason=reason)
    return change.invoice


# --- payments ---------------------------------------------------------------------------------

def record_payment(invoice_id: str, amount: int, method: str, actor: str, *,
                   reference: str | None = None, received_on: date | None = None) -> Invoice:
    """A payment taken by hand; more than is due is refused. Paid when nothing is left due."""
    if method not in MANUAL_METHODS:
        raise Invalid(f"Method must be one of {', '.join(MANUAL_METHODS)}.", field="method")
    if amount <= 0:
        raise Invalid("A payment must be more than 0.", field="amount")
    today = today_at_clinic()
    if received_on is not None and received_on > today + timedelta(days=1):
        raise Invalid("A payment can't be received later than tomorrow.", field="received_on")
    with invoice_change(invoice_id, actor, "payment_recorded") as change:
        invoice = change.invoice
        if invoice.status not in TAKES_PAYMENT:
            raise WrongState(f"Invoice {_label(invoice)} is {invoice.status}; payments go on open invoices.")
        earliest = invoice.created_at.astimezone(CLINIC_TIME).date() - timedelta(days=365)
        if received_on is not None and received_on < earliest:
            raise Invalid(f"A payment can't be received before {earliest.isoformat()}, a year before the invoice "
                          "was made.", field="received_on")
        if amount > invoice.amount_due:
            raise Overpayment("{amount} is more than the {due} due.", field="amount",
                              money={"amount": amount, "due": invoice.amount_due}, currency=invoice.currency)
        _add_payment(change, amount, method, reference=reference, received_on=received_on)
    return invoice


def _add_payment(change: InvoiceChange, amount: int, method: str, *, reference: str | None,
                 received_on: date | None, stripe_payment_intent: str | None = None) -> Payment:
    invoice = change.invoice
    payment = Payment(id=new_id("pay"), invoice_seq=invoice.seq, amount=amount, amount_refunded=0,
                      method=method, reference=reference, received_on=received_on or today_at_clinic(),
                      stripe_payment_intent=stripe_payment_intent, created_by=change.actor)
    db.session.add(payment)
    invoice.amount_paid += amount
    if invoice.status in TAKES_PAYMENT and invoice.amount_due == 0:
        change.move(Move.SETTLE)
        invoice.paid_at = utcnow()
    db.session.flush()
    change.note(payment_id=payment.id, amount=amount, method=method)
    change.tell(messages.PAYMENT_RECORDED, payment_id=payment.id)
    return payment


@dataclass(frozen=True)
class CardPayment:
    """What Stripe says arrived: a succeeded PaymentIntent (amounts in the minor unit)."""

    payment_intent: str
    invoice_id: str
    amount: int
    currency: str


def _payment_for_intent(intent_id: str) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.stripe_payment_intent == intent_id))


def book_card_payment(paid: CardPayment) -> Payment | None:
    """Book a succeeded PaymentIntent once, whoever reports it first (Stripe's webhook or the
    pay page's return). The card was charged, so the money is always accounted for:

    - on an open invoice, up to what is due, it is the payment;
    - beyond what is due, or on an invoice that takes no payment (void, paid), it is booked and
      the excess (or all of it) refunded through Stripe at once, keyed by the PaymentIntent;
    - in another currency it is never booked as the invoice's money: refunded in full.
    Each odd case is flagged for staff. Returns the payment, or None when nothing was booked."""
    existing = _payment_for_intent(paid.payment_intent)
    if existing is not None:
        return existing
    with invoice_change(paid.invoice_id, STRIPE_ACTOR, "payment_recorded") as change:
        invoice = change.invoice
        existing = _payment_for_intent(paid.payment_intent)  # again, under the lock
        if existing is not None:
            change.unchanged()
            return existing
        if paid.currency.upper() != invoice.currency:
            once_key = f"{REFUND_UNBOOKED}:{paid.payment_intent}"
            if outbox.queued(once_key):  # told before (a redelivery, or the pay page's return)
                change.unchanged()
                return None
            change.action = "card_payment_refunded"
            change.note(payment_intent=paid.payment_intent, amount=paid.amount, currency=paid.currency.upper())
            change.flag(f"A card payment of {show(paid.amount, paid.currency.upper())} arrived for this "
                        f"{invoice.currency} invoice. It was not booked and is being refunded in full.")
            change.emit(REFUND_UNBOOKED, {"payment_intent": paid.payment_intent, "amount": paid.amount,
                                          "invoice_id": invoice.id}, once_key=once_key)
            return None
        status_before = invoice.status
        due_before = invoice.amount_due if status_before in TAKES_PAYMENT else 0
        payment = _add_payment(change, paid.amount, PaymentMethod.CARD_ONLINE, reference=paid.payment_intent,
                               received_on=None, stripe_payment_intent=paid.payment_intent)
        excess = paid.amount - due_before
        if excess > 0:
            where = (f"beyond the {show(due_before, invoice.currency)} due" if status_before in TAKES_PAYMENT
                     else f"on a {status_before} invoice")
            refund = _new_refund(change, payment, excess, f"Card payment received {where}",
                                 stripe_key=f"{paid.payment_intent}:refund")
            change.flag(f"A card payment of {show(paid.amount, invoice.currency)} arrived {where}; "
                        f"{show(excess, invoice.currency)} is being refunded through Stripe.")
            change.emit(SEND_REFUND, {"refund_id": refund.id})
        return payment


def note_card_failure(invoice_id: str, intent_id: str, amount: int, reason: str) -> bool:
    """A failed card attempt, in the audit trail for staff. False if there's no such invoice."""
    try:
        with invoice_change(invoice_id, STRIPE_ACTOR, "online_payment_failed") as change:
            change.note(payment_intent=intent_id, amount=amount, reason=reason)
    except InvoiceNotFound:
        return False
    return True


# --- the pay page's PaymentIntent ---------------------------------------------------------------

def attach_intent(invoice_id: str, intent_id: str, amount: int, attempt: int, actor: str) -> bool:
    """Make a newly created PaymentIntent the invoice's, if it is still right for it: attempt
    `attempt` is the next one and the amount is what is due now. Otherwise it is cancelled
    through the outbox and False is returned (the page asks again)."""
    with invoice_change(invoice_id, actor, "payment_intent_created") as change:
        invoice = change.invoice
        if invoice.stripe_attempt >= attempt:  # another request stored this attempt's intent first
            change.unchanged()
            return invoice.stripe_payment_intent == intent_id
        if invoice.status not in TAKES_PAYMENT or invoice.amount_due != amount:
            change.unchanged()
            change.emit(CANCEL_INTENT, {"invoice_id": invoice.id, "payment_intent": intent_id, "attempt": attempt})
            return False
        invoice.stripe_attempt = attempt
        invoice.stripe_payment_intent = intent_id
        invoice.stripe_intent_amount = amount
        change.note(payment_intent=intent_id, amount=amount)
    return True


def forget_intent(invoice_id: str, intent_id: str, actor: str) -> None:
    """The invoice's PaymentIntent was cancelled at Stripe (or is finished): stop using it."""
    with invoice_change(invoice_id, actor, "payment_intent_cancelled") as change:
        invoice = change.invoice
        if invoice.stripe_payment_intent != intent_id:
            change.unchanged()
            return
        invoice.stripe_payment_intent = None
        invoice.stripe_intent_amount = None
        change.note(payment_intent=intent_id)


# --- refunds ----------------------------------------------------------------------------------

def _reserved(invoice: Invoice) -> dict[int, int]:
    """Pending refunds per payment: not refunded yet, but no longer refundable either."""
    rows = db.session.execute(select(Refund.payment_seq, func.sum(Refund.amount))
                              .where(Refund.invoice_seq == invoice.seq, Refund.status == RefundStatus.PENDING)
                              .group_by(Refund.payment_seq))
    return {seq: int(total) for seq, total in rows}


def refundable(invoice: Invoice) -> int:
    return invoice.amount_paid - invoice.amount_refunded - sum(_reserved(invoice).values())


def _plan_refund(invoice: Invoice, amount: int) -> list[tuple[Payment, int]]:
    """Which payments a refund of `amount` comes out of: the newest first."""
    if amount <= 0:
        raise Invalid("A refund must be more than 0.", field="amount")
    reserved = _reserved(invoice)
    payments = payments_of(invoice)
    left_in = {p.seq: p.amount - p.amount_refunded - reserved.get(p.seq, 0) for p in payments}
    available = sum(left_in.values())
    if amount > available:
        raise RefundTooLarge("{amount} is more than the {available} that can still be refunded.", field="amount",
                             money={"amount": amount, "available": available}, currency=invoice.currency)
    plan: list[tuple[Payment, int]] = []
    left = amount
    for payment in reversed(payments):
        share = min(left, left_in[payment.seq])
        if share > 0:
            plan.append((payment, share))
            left -= share
        if left == 0:
            break
    return plan


def _new_refund(change: InvoiceChange, payment: Payment, amount: int, reason: str, *,
                request_key: str | None = None, stripe_key: str | None = None) -> Refund:
    """A refund out of `payment`: pending until Stripe answers for card money taken online,
    done at once for money taken by hand."""
    refund = Refund(id=new_id("re"), invoice_seq=change.invoice.seq, payment_seq=payment.seq, amount=amount,
                    reason=reason, created_by=change.actor, request_key=request_key, status=RefundStatus.PENDING)
    db.session.add(refund)
    if payment.stripe_payment_intent:
        refund.stripe_key = stripe_key or refund.id
        change.detail.setdefault("refunds_requested", []).append(
            {"refund_id": refund.id, "payment_id": payment.id, "amount": amount})
    else:
        _complete_refund(change, refund, payment)
    return refund


def _complete_refund(change: InvoiceChange, refund: Refund, payment: Payment) -> None:
    refund.status = RefundStatus.SUCCEEDED
    refund.completed_at = utcnow()
    refund.error = None
    payment.amount_refunded += refund.amount
    change.invoice.amount_refunded += refund.amount
    change.note(refund_id=refund.id, payment_id=payment.id, amount=refund.amount)
    change.tell(messages.REFUND_RECORDED, refund_id=refund.id)


def refund(invoice_id: str, amount: int, reason: str, actor: str, gateway: "StripeGateway | None", *,
           request_key: str | None = None) -> Invoice:
    """Refund part or all of what was paid, newest payment first.

    Three steps, so money can't go out twice and the invoice is never locked while Stripe
    is asked: (1) under the lock, check what remains refundable and write the refund rows —
    card money taken online as `pending`, its id the Stripe idempotency key; (2) ask Stripe,
    holding nothing; (3) under the lock, record each answer. A retry of the same request
    (`request_key`) finds the rows of step 1 and repeats steps 2–3 with the same keys."""
    if in_transaction():
        raise RuntimeError("refund() commits between its steps; call it outside a transaction")
    with invoice_change(invoice_id, actor, "refunded") as change:
        invoice = change.invoice
        rows = _refunds_for_request(invoice, request_key)
        if rows:
            change.unchanged()
        else:
            if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID) and invoice.amount_paid == 0:
                raise WrongState(f"Invoice {_label(invoice)} is {invoice.status}; it has nothing to refund.")
            plan = _plan_refund(invoice, amount)
            if gateway is None and any(p.stripe_payment_intent for p, _ in plan):
                raise Unavailable("This payment was taken online, and paying online is not configured.")
            rows = [_new_refund(change, payment, share, reason, request_key=request_key) for payment, share in plan]
            if any(r.status == RefundStatus.PENDING for r in rows):
                change.action = "refund_requested" if all(r.status == RefundStatus.PENDING for r in rows) else "refunded"
        to_send = [r.id for r in rows if r.status != RefundStatus.SUCCEEDED]
    problems = [p for p in (send_refund(refund_id, gateway, actor) for refund_id in to_send) if p is not None]
    if problems:
        raise problems[0]
    return get_invoice(invoice_id)


def _refunds_for_request(invoice: Invoice, request_key: str | None) -> list[Refund]:
    if request_key is None:
        return []
    return list(db.session.scalars(select(Refund).where(Refund.invoice_seq == invoice.seq,
                                                        Refund.request_key == request_key)
                                   .order_by(Refund.seq).execution_options(populate_existing=True)))


class RefundRefused(WrongState):
    pass


def send_refund(refund_id: str, gateway: "StripeGateway | None", actor: str, *,
                retry_when_unreachable: bool = False) -> DomainProblem | None:
    """Steps 2 and 3 of a refund through Stripe, for one refund row; its answer is recorded.

    Returns the problem to report (Stripe refused, or couldn't be reached), or None when
    the refund is done. With `retry_when_unreachable` (the worker) an unreachable Stripe
    leaves the row pending and raises, so the delivery is tried again later."""
    from .payments.gateway import PaymentRefused, PaymentsUnavailable

    row = db.session.scalar(select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True))
    if row is None or row.status == RefundStatus.SUCCEEDED or row.stripe_key is None:
        return None
    payment = db.session.get(Payment, row.payment_seq)
    invoice_id = _invoice_id_of(row.invoice_seq)
    intent_id, amount, key = payment.stripe_payment_intent, row.amount, row.stripe_key
    db.session.commit()  # hold nothing while Stripe is asked
    problem: DomainProblem | None = None
    stripe_refund = None
    if gateway is None:
        problem = Unavailable("This payment was taken online, and paying online is not configured.")
    else:
        try:
            stripe_refund = gateway.refund(payment_intent=intent_id, amount=amount, invoice_id=invoice_id,
                                           refund_id=refund_id, idempotency_key=key)
        except PaymentsUnavailable as error:
            if retry_when_unreachable:
                raise
            problem = error
        except PaymentRefused as error:
            problem = RefundRefused(f"Stripe refused the refund: {error}")
    if stripe_refund is not None and stripe_refund.status in ("failed", "canceled"):
        problem = RefundRefused(f"Stripe refused the refund ({stripe_refund.status}).")
    with invoice_change(invoice_id, actor, "refunded") as change:
        row = _fresh(Refund, row.seq)
        if row.status == RefundStatus.SUCCEEDED:  # Stripe's charge.refunded got here first
            change.unchanged()
        elif problem is None:
            row.stripe_refund = stripe_refund.id
            _complete_refund(change, row, _fresh(Payment, row.payment_seq))
        else:
            row.status = RefundStatus.FAILED
            row.error = problem.detail
            change.action = "refund_failed"
            change.note(refund_id=row.id, amount=row.amount, reason=problem.detail)
    return problem


def record_stripe_refunds(intent_id: str, items: list[dict[str, Any]],
                          amount_refunded: int) -> tuple[str, int] | None:
    """Stripe's `charge.refunded`: refunds of a payment as Stripe knows them. Ours are matched
    by Stripe refund id, or by our refund id in their metadata (a pending row whose answer
    hasn't been recorded yet); any other is a refund made in Stripe's dashboard, recorded
    once. Returns the invoice id and the amount newly recorded, or None when the payment
    isn't ours."""
    payment = _payment_for_intent(intent_id)
    if payment is None:
        return None
    invoice_id = _invoice_id_of(payment.invoice_seq)
    with invoice_change(invoice_id, STRIPE_ACTOR, "refunded") as change:
        payment = _fresh(Payment, payment.seq)
        recorded = 0
        for item in items:
            if item.get("status") in ("failed", "canceled"):
                continue
            if db.session.scalar(select(Refund.id).where(Refund.stripe_refund == item["id"])) is not None:
                continue
            ours_id = (item.get("metadata") or {}).get("refund_id")
            ours = db.session.scalar(select(Refund).where(Refund.id == ours_id, Refund.payment_seq == payment.seq)
                                     .execution_options(populate_existing=True)) if ours_id else None
            if ours is not None and ours.status != RefundStatus.SUCCEEDED:
                ours.stripe_refund = item["id"]
                _complete_refund(change, ours, payment)
                recorded += ours.amount
                continue
            recorded += _dashboard_refund(change, payment, int(item["amount"]), item["id"])
        if not items:
            # No list on this event: take the difference between Stripe's total and ours.
            recorded += _dashboard_refund(change, payment, amount_refunded - payment.amount_refunded, None)
        if not recorded:
            change.unchanged()
    return invoice_id, recorded


def _dashboard_refund(change: InvoiceChange, payment: Payment, amount: int, stripe_refund: str | None) -> int:
    amount = min(amount, payment.amount - payment.amount_refunded)
    if amount <= 0:
        return 0
    refund = Refund(id=new_id("re"), invoice_seq=change.invoice.seq, payment_seq=payment.seq, amount=amount,
                    reason="Refunded in Stripe", created_by=change.actor, stripe_refund=stripe_refund)
    db.session.add(refund)
    _complete_refund(change, refund, payment)
    return amount


# --- credit notes -----------------------------------------------------------------------------

def credit_left(invoice: Invoice) -> dict[str, int]:
    """What each fee category can still be credited (net of tax): charged less credited."""
    charged = {line["category"]: line["amount"] for line in invoice.lines}
    for note in credit_notes_of(invoice):
        for line in note.lines:
            charged[line["category"]] = charged.get(line["category"], 0) - line["amount"]
    return charged


def credit_notes_of(invoice: Invoice) -> list[CreditNote]:
    return list(db.session.scalars(select(CreditNote).where(CreditNote.invoice_seq == invoice.seq)
                                   .order_by(CreditNote.seq)))


def get_credit_note(credit_note_id: str) -> CreditNote:
    note = db.session.scalar(select(CreditNote).where(CreditNote.id == credit_note_id))
    if note is None:
        raise NotFound(f"No credit note {credit_note_id}.")
    return note


def list_credit_notes(*, limit: int, starting_after: str | None = None,
                      invoice_id: str | None = None) -> tuple[list[CreditNote], bool]:
    query = select(CreditNote).order_by(CreditNote.seq.desc())
    if invoice_id:
        query = query.where(CreditNote.invoice_seq == get_invoice(invoice_id).seq)
    if starting_after:
        query = query.where(CreditNote.seq < get_credit_note(starting_after).seq)
    rows = list(db.session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


class CreditTooLarge(Invalid):
    pass


def issue_credit_note(invoice_id: str, actor: str, *, reason: str, memo: str | None, lines: list[dict[str, Any]],
                      refund_amount: int, out_of_band_amount: int, gateway: "StripeGateway | None",
                      request_key: str | None = None) -> CreditNote:
    """Correct an issued invoice without touching it: a numbered credit note citing it.

    Its total first reduces what is still due (pre-payment); the rest was money received and
    must be split into `refund_amount` — refunded through the normal refund path, card money
    through Stripe — and `out_of_band_amount`, returned some other way. No category is ever
    credited beyond what the invoice charged for it: checked under the invoice's row lock, so
    two credit notes at once can't beat it. A retry with the same `request_key` finds the
    note (and resumes its refund) instead of issuing another."""
    if in_transaction():
        raise RuntimeError("issue_credit_note() commits before it refunds; call it outside a transaction")
    with invoice_change(invoice_id, actor, "credit_note_issued") as change:
        invoice = change.invoice
        note = db.session.scalar(select(CreditNote).where(CreditNote.request_key == request_key)) if request_key else None
        if note is not None:
            change.unchanged()
        else:
            note = _new_credit_note(change, reason=reason, memo=memo, lines=lines, refund_amount=refund_amount,
                                    out_of_band_amount=out_of_band_amount, request_key=request_key, gateway=gateway)
        refund_ids = [r.id for r in _refunds_for_request(invoice, f"credit_note:{note.id}")
                      if r.status != RefundStatus.SUCCEEDED]
    for refund_id in refund_ids:
        problem = send_refund(refund_id, gateway, actor)
        if problem is not None:  # the credit note stands; the failed refund is on the invoice for staff
            flag_invoice(invoice_id, actor, f"The refund for credit note {note.number} failed: {problem.detail} "
                         "Retry the refund, or return the money another way.", credit_note_id=note.id)
    return note


def _new_credit_note(change: InvoiceChange, *, reason: str, memo: str | None, lines: list[dict[str, Any]],
                     refund_amount: int, out_of_band_amount: int, request_key: str | None,
                     gateway: "StripeGateway | None") -> CreditNote:
    from .pricing.money import round_half_up
    from .states import TAKES_CREDIT, CreditNoteReason

    invoice = change.invoice
    if invoice.status not in TAKES_CREDIT:
        why = "a draft is edited instead" if invoice.status == InvoiceStatus.DRAFT else "a void invoice owes nothing"
        raise WrongState(f"Invoice {_label(invoice)} is {invoice.status}: credit notes correct issued invoices; {why}.")
    if reason not in set(CreditNoteReason):
        raise Invalid(f"Reason must be one of {', '.join(CreditNoteReason)}.", field="reason")
    if not lines:
        raise Invalid("A credit note needs at least one line.", field="lines")
    if refund_amount < 0 or out_of_band_amount < 0:
        raise Invalid("Amounts can't be negative.", field="refund_amount" if refund_amount < 0 else "out_of_band_amount")
    invoice_lines = {line["category"]: line for line in invoice.lines}
    left = credit_left(invoice)
    note_lines: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        category, amount = line["category"], line["amount"]
        if category not in invoice_lines:
            raise Invalid(f"Invoice {_label(invoice)} has no {category} line to credit.", field=f"lines.{i}.category")
        if amount <= 0:
            raise Invalid("A credit line must be more than 0.", field=f"lines.{i}.amount")
        if amount > left[category]:
            raise CreditTooLarge(f"{show(amount, invoice.currency)} is more than the "
                                 f"{show(max(left[category], 0), invoice.currency)} of {category} left to credit.",
                                 field=f"lines.{i}.amount")
        left[category] -= amount
        rate = invoice_lines[category]["tax_rate"]
        note_lines.append({"category": category, "description": line.get("description") or invoice_lines[category]["description"],
                           "amount": amount, "tax_rate": rate,
                           "tax_amount": round_half_up(Decimal(amount) * Decimal(rate) / Decimal(100))})
    subtotal = sum(line["amount"] for line in note_lines)
    tax = sum(line["tax_amount"] for line in note_lines)
    total = subtotal + tax
    pre = min(total, invoice.amount_due)
    post = total - pre
    if refund_amount + out_of_band_amount != post:
        difference = refund_amount + out_of_band_amount - post
        raise Invalid(f"{show(post, invoice.currency)} of this credit note is money already received: refund_amount + "
                      f"out_of_band_amount must add up to it, and they are {show(abs(difference), invoice.currency)} "
                      f"{'over' if difference > 0 else 'short'}.", field="refund_amount")
    now = utcnow()
    issued_on = now.astimezone(CLINIC_TIME).date()
    note = CreditNote(id=new_id("cn"), invoice_seq=invoice.seq, reason=reason, memo=memo, currency=invoice.currency,
                      lines=note_lines, subtotal=subtotal, tax=tax, total=total,
                      product_amount=sum(line["amount"] for line in note_lines if line["category"] == PRODUCT),
                      service_amount=sum(line["amount"] for line in note_lines if line["category"] == SERVICE),
                      pre_payment_amount=pre, post_payment_amount=post, refund_amount=refund_amount,
                      out_of_band_amount=out_of_band_amount, issued_at=now, issued_on=issued_on, created_by=change.actor,
                      request_key=request_key)
    invoice.amount_credited += total
    invoice.credit_applied += pre
    change.tell(messages.CREDIT_NOTE_ISSUED, credit_note_id=note.id)
    if pre and invoice.status in TAKES_PAYMENT and invoice.amount_due == 0:
        change.move(Move.SETTLE)  # nothing left to pay: credit settled it
        invoice.paid_at = now
    # Money already received goes back: through the normal refund path, and by hand.
    refund_key = f"credit_note:{note.id}"
    if refund_amount:
        plan = _plan_refund(invoice, refund_amount)
        if gateway is None and any(p.stripe_payment_intent for p, _ in plan):
            raise Unavailable("This money was taken online, and paying online is not configured.")
        for payment, share in plan:
            _new_refund(change, payment, share, f"Credit note {reason}", request_key=refund_key)
    if out_of_band_amount:
        for payment, share in _plan_refund(invoice, out_of_band_amount):
            refund = Refund(id=new_id("re"), invoice_seq=invoice.seq, payment_seq=payment.seq, amount=share,
                            reason=f"Credit note {reason}: returned outside the service", created_by=change.actor,
                            request_key=f"{refund_key}:out_of_band")
            db.session.add(refund)
            _complete_refund(change, refund, payment)
    note.number = _take_credit_note_number(issued_on.year)  # last: the counter row is locked until commit
    db.session.add(note)
    db.session.flush()
    change.note(credit_note_id=note.id, number=note.number, reason=reason, total=total, pre_payment_amount=pre,
                refund_amount=refund_amount, out_of_band_amount=out_of_band_amount)
    return note


def _take_credit_note_number(year: int) -> str:
    counter = db.session.execute(
        update(CreditNoteCounter).where(CreditNoteCounter.year == year)
        .values(last_number=CreditNoteCounter.last_number + 1).returning(CreditNoteCounter.last_number)
    ).scalar()
    if counter is None:
        table = CreditNoteCounter.__table__
        if db.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        db.session.execute(insert(table).values(year=year, last_number=0).on_conflict_do_nothing())
        return _take_credit_note_number(year)
    return f"CN-{year}-{counter:06d}"


def invoice_of_credit_note(note: CreditNote) -> Invoice:
    return db.session.get(Invoice, note.invoice_seq)

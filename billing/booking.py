"""Use cases for the booking system's events: each booking keeps one matching invoice.

Every delivery is recorded. An event id is applied once (a unique row written in the same
transaction as its effects); per booking, an event older than the last one applied changes
nothing. Each infusion.* event carries the whole booking, so any one event is enough alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Callable

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from . import invoicing, payment_links
from .inputs import (
    DoseSchema,
    OtherItemSchema,
    PatientSchema,
    QuickLoad,
    is_one_line_text,
    flatten_errors,
    one_line,
    quick_booking,
    vials_dispensed_field,
)
from .errors import DomainProblem, Invalid, NotFound, WrongState
from .extensions import db
from .models import Booking, BookingEvent, Invoice, utcnow
from .pricing import PRODUCT, PricingError, implausible_dispensed
from .pricing.documents import request_json
from .money_format import show
from .quotes import build_request, price_list_for, price_one
from .states import TAKES_PAYMENT, BookingOutcome, InvoiceStatus
from .unit_of_work import transaction

log = logging.getLogger("billing.booking")
ACTOR = "booking_system"
_ABSENT = object()


class EventFailed(Invalid):
    """The event was recorded but can't be applied; finance staff can replay it once fixed."""

    def __init__(self, detail: str, event_id: str | None, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.event_id = event_id
        self.errors = errors


@dataclass(frozen=True)
class Outcome:
    event_id: str
    result: BookingOutcome
    invoice_id: str | None
    flag: str | None = None
    payment_url: str | None = None  # a new payment link, when an invoice was issued and paying online is on


def quick_envelope(data: Any) -> dict[str, Any] | None:
    """The envelope as EnvelopeSchema loads it, or None when it isn't of the usual, faultless shape
    (tests/unit/test_quick_booking.py holds the two to the same result)."""
    if type(data) is not dict:
        return None
    sent_id, sent_type, created = data.get("id"), data.get("type"), data.get("created")
    sent_data = data.get("data", _ABSENT)
    if not (is_one_line_text(sent_id, 100) and type(sent_type) is str and 1 <= len(sent_type) <= 64
            and type(created) is int and 0 <= created <= 10**11 and (sent_data is _ABSENT or type(sent_data) is dict)):
        return None
    # fields.Dict loads a copy of the mapping, and an absent one as {}.
    return {"id": sent_id, "type": sent_type, "created": created, "data": {} if sent_data is _ABSENT else dict(sent_data)}


class EnvelopeSchema(QuickLoad, Schema):
    class Meta:
        unknown = EXCLUDE  # senders add fields; we take what we know

    id = fields.String(required=True, validate=one_line(100))
    type = fields.String(required=True, validate=validate.Length(1, 64))
    created = fields.Integer(strict=True, required=True, validate=validate.Range(0, 10**11))
    data = fields.Dict(load_default=dict)

    quick = staticmethod(quick_envelope)  # the usual envelope, faultless (QuickLoad)


class BookingSchema(QuickLoad, Schema):
    class Meta:
        unknown = EXCLUDE

    booking_id = fields.String(required=True, validate=one_line(64))
    patient = fields.Nested(PatientSchema, required=True)
    product_code = fields.String(required=True, validate=validate.Length(1, 64))
    dose = fields.Nested(DoseSchema, required=True)
    duration_minutes = fields.Integer(strict=True, required=True)
    service_date = fields.Date(required=True)
    other_items = fields.List(fields.Nested(OtherItemSchema), load_default=list)
    vials_dispensed = vials_dispensed_field(load_default=None, allow_none=True)
    product_prepared = fields.Boolean(load_default=False)

    quick = staticmethod(quick_booking)  # the usual booking, faultless (QuickLoad)


_envelope = EnvelopeSchema()
_booking = BookingSchema()


# --- invoices made by hand for a booking -------------------------------------------------------

def create_invoice(request: Any, patient: dict[str, Any], actor: str, *, booking_id: str | None = None,
                   bill_to: dict[str, Any] | None = None) -> Invoice:
    """A draft made through the API or a staff page. With a booking id it *is* that booking's
    infusion invoice, which events then keep up to date: 409 while the booking has another."""
    if booking_id is None:
        return invoicing.create_invoice(request, patient, actor, bill_to=bill_to)
    with transaction():
        booking = _lock_booking(booking_id)
        _check_free(booking)
        invoice = invoicing.create_invoice(request, patient, actor, booking_id=booking_id, bill_to=bill_to)
        booking.invoice_id, booking.cancelled = invoice.id, False
    return invoice


def update_invoice(invoice_id: str, changes: dict[str, Any], actor: str) -> Invoice:
    """PATCH of a draft. Its booking id can be set once, when it has none and the booking has
    no other live infusion invoice; after that it never changes (409)."""
    booking_id = changes.get("booking_id")
    current = invoicing.get_invoice(invoice_id)
    if booking_id is None or booking_id == current.booking_id or current.booking_id is not None:
        return invoicing.update_draft(invoice_id, changes, actor)  # refuses a changed booking id
    with transaction():
        booking = _lock_booking(booking_id)  # booking row before invoice row, as events lock them
        _check_free(booking)
        invoice = invoicing.update_draft(invoice_id, changes, actor)
        booking.invoice_id, booking.cancelled = invoice.id, False
    return invoice


def _check_free(booking: Booking) -> None:
    current = None if booking.cancelled else current_invoice(booking)
    if current is not None and current.status != InvoiceStatus.VOID:
        raise WrongState(f"Booking {booking.id} already has invoice {current.number or current.id} "
                         f"({current.status}); change or void that one instead.")


# --- receiving --------------------------------------------------------------------------------

def receive_event(payload: Any, *, payment_base_url: str | None = None) -> Outcome:
    """Record and apply one delivery whose signature was already checked. With
    `payment_base_url`, an invoice issued by the event gets a payment link under it."""
    try:
        envelope = _envelope.load(payload if isinstance(payload, dict) else {})
    except ValidationError as error:
        raise EventFailed("The event is not a booking event: it needs id, type and created.",
                          None, _flat(error.messages)) from None
    event = BookingEvent(id=envelope["id"], type=envelope["type"], created=envelope["created"],
                         booking_id=_booking_id(envelope), body=payload, deliveries=1)
    try:
        # The work first, then the event row, in one transaction. A second delivery of the same
        # event queues on the booking's row lock, redoes the work, and then fails on the event
        # id's unique index at commit, so its transaction rolls back whole: applied once.
        return _apply_and_commit(event, new=True, payment_base_url=payment_base_url)
    except IntegrityError:
        db.session.rollback()
    existing = _event(envelope["id"])
    if existing is None or existing.outcome != BookingOutcome.FAILED:
        return _duplicate(existing)
    try:  # a retry of a delivery that failed: try it again
        return _apply_and_commit(existing, delivered=True, retry=True, payment_base_url=payment_base_url)
    except AlreadyApplied:
        return _duplicate(_event(envelope["id"]))


class AlreadyApplied(WrongState):
    pass


def replay_event(event_id: str, *, payment_base_url: str | None = None) -> Outcome:
    """Apply a failed event again. The event row is locked first and checked again under the
    lock, so two replays at once apply it at most once (the other is a 409)."""
    event = _event(event_id)
    if event is None:
        raise NotFound(f"No booking event {event_id}.")
    return _apply_and_commit(event, retry=True, payment_base_url=payment_base_url)


def _lock_failed_event(event: BookingEvent) -> BookingEvent:
    """The event's row, locked, if it is still failed; AlreadyApplied otherwise."""
    if db.engine.dialect.name == "sqlite":  # the write lock, taken before the read
        db.session.execute(update(BookingEvent).where(BookingEvent.seq == event.seq)
                           .values(deliveries=BookingEvent.deliveries))
        query = select(BookingEvent).where(BookingEvent.seq == event.seq)
    else:
        query = select(BookingEvent).where(BookingEvent.seq == event.seq).with_for_update()
    locked = db.session.scalar(query.execution_options(populate_existing=True))
    if locked.outcome != BookingOutcome.FAILED:
        raise AlreadyApplied(f"Event {locked.id} was applied already ({locked.outcome}); only failed events are "
                             "replayed.")
    return locked


def dismiss_event(event_id: str, actor: str, note: str) -> BookingEvent:
    """Finance staff decide a failed event won't be applied (the booking was invoiced by hand,
    say): it leaves the failed list, keeping who, when and their note. Locked and checked as a
    replay is, so a replay and a dismissal at once can't both happen."""
    note = (note or "").strip()
    if not note:
        raise Invalid("Write a note saying why this event is dismissed.", field="note")
    event = _event(event_id)
    if event is None:
        raise NotFound(f"No booking event {event_id}.")
    try:
        with transaction():
            event = _lock_failed_event(event)
            event.outcome = BookingOutcome.DISMISSED
            event.dismissed_by, event.dismissed_at, event.note = actor, utcnow(), note
    except AlreadyApplied:
        raise WrongState(f"Event {event_id} is {_event(event_id).outcome}; only a failed event can be dismissed.",
                         field="note") from None
    log.info("booking event dismissed", extra={"fields": {"event_id": event_id}})
    return event


def count_events(outcome: str) -> int:
    """How many events have this outcome (the dashboard counts the failed ones)."""
    return db.session.scalar(select(func.count()).select_from(BookingEvent).where(BookingEvent.outcome == outcome))


def list_events(*, limit: int, starting_after: str | None = None, outcome: str | None = None,
                booking_id: str | None = None) -> tuple[list[BookingEvent], bool]:
    query = select(BookingEvent).order_by(BookingEvent.seq.desc())
    if outcome:
        query = query.where(BookingEvent.outcome == outcome)
    if booking_id:
        query = query.where(BookingEvent.booking_id == booking_id)
    if starting_after:
        after = _event(starting_after)
        if after is None:
            raise NotFound(f"No booking event {starting_after}.")
        query = query.where(BookingEvent.seq < after.seq)
    rows = list(db.session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def _event(event_id: str) -> BookingEvent | None:
    return db.session.scalar(select(BookingEvent).where(BookingEvent.id == event_id)
                             .execution_options(populate_existing=True))


def _booking_id(envelope: dict[str, Any]) -> str | None:
    value = envelope["data"].get("booking_id")
    return value[:64] if isinstance(value, str) else None


def _duplicate(event: BookingEvent | None) -> Outcome:
    if event is None:  # the first delivery failed and rolled back in the meantime
        raise EventFailed("This event is being applied by another delivery; send it again.", None)
    outcome = Outcome(event.id, BookingOutcome.DUPLICATE, event.invoice_id, event.flag)
    db.session.execute(update(BookingEvent).where(BookingEvent.seq == event.seq)
                       .values(deliveries=BookingEvent.deliveries + 1))
    db.session.commit()
    return outcome


def _apply_and_commit(event: BookingEvent, *, new: bool = False, delivered: bool = False, retry: bool = False,
                      payment_base_url: str | None = None) -> Outcome:
    """The event's invoice changes and its own row, in one transaction (one commit)."""
    event_id = event.id
    try:
        with transaction():
            if retry:
                event = _lock_failed_event(event)
                if delivered:
                    event.deliveries += 1
            outcome = _apply(event)
            if payment_base_url and outcome.result == BookingOutcome.FINALIZED and outcome.invoice_id:
                invoice = invoicing.get_invoice(outcome.invoice_id)
                if invoice.status in TAKES_PAYMENT and invoice.amount_due > 0:
                    url, _ = payment_links.create_payment_link(invoice.id, ACTOR, payment_base_url)
                    outcome = replace(outcome, payment_url=url)
            event.outcome, event.invoice_id, event.flag = outcome.result, outcome.invoice_id, outcome.flag
            event.error = None
            event.applied_at = utcnow()
            if new:
                db.session.add(event)
    except AlreadyApplied:
        raise
    except (PricingError, DomainProblem, ValidationError) as error:
        detail, errors = _explain(error)
        recorded = _event(event_id)
        if recorded is not None and recorded.outcome == BookingOutcome.DISMISSED:
            return _duplicate(recorded)  # staff dismissed it: a redelivery changes nothing, and is answered so
        _record_failure(event_id, event, detail, delivered=delivered or new)
        log.info("booking event failed", extra={"fields": {"event_id": event_id, "reason": type(error).__name__}})
        raise EventFailed(detail, event_id, errors) from None
    return outcome


def _record_failure(event_id: str, event: BookingEvent, detail: str, *, delivered: bool) -> None:
    """After the rollback, keep the delivery and why it failed, so staff can see and replay it."""
    row = _event(event_id)
    if row is None:
        row = BookingEvent(id=event_id, type=event.type, created=event.created, booking_id=event.booking_id,
                           body=event.body, deliveries=1)
        db.session.add(row)
    elif delivered:
        row.deliveries += 1  # the rollback took back the count of this delivery
    row.outcome = BookingOutcome.FAILED
    row.error = detail
    try:
        db.session.commit()
    except IntegrityError:  # another delivery recorded it first
        db.session.rollback()


def _explain(error: Exception) -> tuple[str, dict[str, list[str]] | None]:
    if isinstance(error, ValidationError):
        errors = {f"data.{k}": v for k, v in _flat(error.messages).items()}
        return "The booking in this event is incomplete or invalid; see errors.", errors
    if isinstance(error, PricingError):
        return error.message, {f"data.{error.field}": [error.message]}
    return str(error), None


def _flat(messages: Any) -> dict[str, list[str]]:
    return flatten_errors(messages)


# --- applying ---------------------------------------------------------------------------------

def _apply(event: BookingEvent) -> Outcome:
    handler = _HANDLERS.get(event.type)
    if handler is None:
        return Outcome(event.id, BookingOutcome.IGNORED, None)
    data = _booking.load(event.body.get("data") or {})
    booking = _lock_booking(data["booking_id"])
    if event.created < booking.last_event_created:
        return Outcome(event.id, BookingOutcome.STALE, booking.invoice_id)
    cancelling = event.type == "infusion.cancelled"
    if booking.cancelled and cancelling:  # cancelled again: nothing more to do
        result, invoice, flag = BookingOutcome.IGNORED, None, None
    else:
        # After a cancellation, a newer booked or completed event is a rebooking: a new
        # infusion invoice, whatever became of the last one.
        invoice = None if booking.cancelled else current_invoice(booking)
        result, invoice, flag = handler(invoice, data)
        booking.cancelled = cancelling
    booking.last_event_created = event.created
    booking.last_event_id = event.id
    booking.invoice_id = invoice.id if invoice is not None else booking.invoice_id
    booking.updated_at = utcnow()
    if flag and invoice is not None:  # where staff look: the invoice's audit trail
        suggestion = suggested_credit(invoice, data) if invoice.status != InvoiceStatus.DRAFT and not cancelling else {}
        invoicing.flag_invoice(invoice.id, ACTOR, flag, event_id=event.id,
                               **({"suggested_credit": suggestion} if suggestion else {}))
    return Outcome(event.id, result, booking.invoice_id, flag)


def current_invoice(booking: Booking) -> Invoice | None:
    """The booking's infusion invoice now, whoever made it: events and the API (through
    create_invoice/update_invoice below) both record it on the booking's row; migration 0007
    recorded those made through the API before."""
    return invoicing.get_invoice(booking.invoice_id) if booking.invoice_id else None


def _lock_booking(booking_id: str) -> Booking:
    """The booking's row, locked: events for one booking apply one at a time, in the order
    event row → booking row → invoice row, the same in every path, so no two deadlock."""
    # One round trip: an upsert that touches the row locks it (PostgreSQL) and returns it.
    return db.session.scalars(_upsert(db.engine.dialect.name), {"booking_id": booking_id, "updated_at": utcnow()},
                              execution_options={"populate_existing": True}).one()


_upserts: dict[str, Any] = {}


def _upsert(dialect: str) -> Any:
    """_lock_booking's statement, built once per dialect (building it took ~150 µs a request, issue
    14): the same statement, with the booking id and the time as bound parameters."""
    statement = _upserts.get(dialect)
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        columns = Booking.__table__.c
        statement = insert(Booking).values(id=bindparam("booking_id", type_=columns.id.type), last_event_created=0,
                                           updated_at=bindparam("updated_at", type_=columns.updated_at.type))
        statement = statement.on_conflict_do_update(index_elements=[Booking.id], set_={"id": statement.excluded.id})
        _upserts[dialect] = statement = statement.returning(Booking)
    return statement


# Each handler reads the booking's invoice (the booking row lock keeps other events out) and
# changes it only through the invoice use cases, which lock it and check the move again.
Handled = tuple[BookingOutcome, Invoice | None, str | None]


def _changes(data: dict[str, Any]) -> dict[str, Any]:
    request = build_request(data)
    return {**request_json(request), "patient": data["patient"], "booking_id": data["booking_id"]}


def _issued_flag(invoice: Invoice, what: str, data: dict[str, Any] | None = None) -> str:
    """Why staff should look, and — when the booking as it now stands prices differently —
    what would reconcile it: a credit note for less, an extra invoice for more. Nothing is
    issued automatically."""
    text = (f"The booking was {what} after invoice {invoice.number} was {invoice.status}; "
            "the invoice was left as it is.")
    difference = _price_difference(invoice, data) if data is not None else None
    if difference is None:
        return text + " Check whether it needs a refund or a correction."
    lower = {category: amount for category, amount in difference.items() if amount > 0}
    higher = sum(-amount for amount in difference.values() if amount < 0)
    if higher:
        return text + (f" The booking now prices {show(higher, invoice.currency)} higher: an extra invoice for that "
                       "would reconcile it.")
    if lower:
        parts = ", ".join(f"{show(amount, invoice.currency)} of {category}" for category, amount in lower.items())
        return text + f" A credit note for {parts} would reconcile it."
    return text + " It still prices the same."


def _price_difference(invoice: Invoice, data: dict[str, Any]) -> dict[str, int] | None:
    """Per fee category, what the invoice charged less what the booking now prices (net)."""
    try:
        quote = price_one(build_request(data), include_service=invoice.charge == "full")
    except (PricingError, DomainProblem):
        return None
    now = {line.category: line.amount for line in quote.lines}
    return {line["category"]: line["amount"] - now.get(line["category"], 0) for line in invoice.lines}


def suggested_credit(invoice: Invoice, data: dict[str, Any]) -> dict[str, int]:
    """The credit note a flag suggests (category → net amount), within what is left to credit."""
    difference = _price_difference(invoice, data) or {}
    left = invoicing.credit_left(invoice)
    if any(amount < 0 for amount in difference.values()):
        return {}
    return {c: min(a, left.get(c, 0)) for c, a in difference.items() if a > 0 and left.get(c, 0) > 0}


def _new_draft(data: dict[str, Any], *, charge: str = "full", bill_to: dict[str, Any] | None = None) -> Invoice:
    return invoicing.create_invoice(build_request(data), data["patient"], ACTOR, booking_id=data["booking_id"],
                                    charge=charge, bill_to=bill_to)


def _booked(invoice: Invoice | None, data: dict[str, Any]) -> Handled:
    if invoice is None or invoice.status == InvoiceStatus.VOID:
        return BookingOutcome.CREATED, _new_draft(data), None
    if invoice.status == InvoiceStatus.DRAFT:
        invoicing.update_draft(invoice.id, _changes(data), ACTOR, action="booking_updated")
        return BookingOutcome.UPDATED, invoice, None
    return BookingOutcome.IGNORED, invoice, _issued_flag(invoice, "changed", data)


def _completed(invoice: Invoice | None, data: dict[str, Any]) -> Handled:
    if invoice is None or invoice.status == InvoiceStatus.VOID:
        invoice = _new_draft(data)
    elif invoice.status == InvoiceStatus.DRAFT:
        invoicing.update_draft(invoice.id, _changes(data), ACTOR, action="booking_completed")
    else:
        return BookingOutcome.IGNORED, invoice, _issued_flag(invoice, "completed again", data)
    too_much = _implausible(invoice, data)
    if too_much:  # brought up to date, but left for staff to check before it is issued
        return BookingOutcome.UPDATED, invoice, too_much
    invoicing.finalize_invoice(invoice.id, ACTOR)
    return BookingOutcome.FINALIZED, invoice, None


def _implausible(invoice: Invoice, data: dict[str, Any]) -> str | None:
    """Why the vials reported dispensed look wrong, or None."""
    if not data.get("vials_dispensed"):
        return None
    request = build_request(data)
    product = price_list_for(request).product(request.product_code)
    line = next(line for line in invoice.lines if line["category"] == PRODUCT)
    dose, dispensed = Decimal(line["dose_grams"]), Decimal(line["quantity"])
    if not implausible_dispensed(product, dose, dispensed):
        return None
    return (f"The vials reported dispensed come to {line['quantity']} g for a {line['dose_grams']} g dose, more "
            "than a whole spare vial: the invoice was left a draft. Check the vials, then finalize it.")


def _cancelled(invoice: Invoice | None, data: dict[str, Any]) -> Handled:
    if invoice is not None and invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        return BookingOutcome.IGNORED, invoice, _issued_flag(invoice, "cancelled")
    voided_now = invoice is not None and invoice.status == InvoiceStatus.DRAFT
    if voided_now:
        invoicing.void_invoice(invoice.id, ACTOR, reason="infusion cancelled")
    request = build_request(data)
    if data["product_prepared"] and price_list_for(request).charge_prepared_product:
        # The vials were opened: the product line alone is invoiced, the service is not,
        # to whoever was to pay for the infusion.
        charge = _new_draft(data, charge="product_only", bill_to=invoice.bill_to if invoice is not None else None)
        invoicing.finalize_invoice(charge.id, ACTOR)
        return BookingOutcome.FINALIZED, charge, None
    return (BookingOutcome.VOIDED if voided_now else BookingOutcome.IGNORED), invoice, None


_HANDLERS: dict[str, Callable[[Invoice | None, dict[str, Any]], Handled]] = {
    "infusion.booked": _booked,
    "infusion.updated": _booked,
    "infusion.completed": _completed,
    "infusion.cancelled": _cancelled,
}

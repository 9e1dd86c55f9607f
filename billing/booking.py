"""Use cases for the booking system's events: each booking keeps one matching invoice.

Every delivery is recorded. An event id is applied once (a unique row written in the same
transaction as its effects); per booking, an event older than the last one applied changes
nothing. Each infusion.* event carries the whole booking, so any one event is enough alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import invoicing, payment_links
from .inputs import DoseSchema, OtherItemSchema, PatientSchema, VialsDispensedSchema, flatten_errors
from .errors import DomainProblem, Invalid, NotFound, WrongState
from .extensions import db
from .models import Booking, BookingEvent, Invoice, utcnow
from .pricing import PricingError
from .pricing.documents import request_json
from .quotes import build_request, price_list_for
from .states import TAKES_PAYMENT, BookingOutcome, InvoiceStatus
from .unit_of_work import transaction

log = logging.getLogger("billing.booking")
ACTOR = "booking_system"


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


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # senders add fields; we take what we know

    id = fields.String(required=True, validate=validate.Length(1, 100))
    type = fields.String(required=True, validate=validate.Length(1, 64))
    created = fields.Integer(strict=True, required=True, validate=validate.Range(0, 10**11))
    data = fields.Dict(load_default=dict)


class BookingSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    booking_id = fields.String(required=True, validate=validate.Length(1, 64))
    patient = fields.Nested(PatientSchema, required=True)
    product_code = fields.String(required=True, validate=validate.Length(1, 64))
    dose = fields.Nested(DoseSchema, required=True)
    duration_minutes = fields.Integer(strict=True, required=True)
    service_date = fields.Date(required=True)
    other_items = fields.List(fields.Nested(OtherItemSchema), load_default=list)
    vials_dispensed = fields.List(fields.Nested(VialsDispensedSchema), load_default=None)
    product_prepared = fields.Boolean(load_default=False)


_envelope = EnvelopeSchema()
_booking = BookingSchema()


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
    existing.deliveries += 1  # a retry of a delivery that failed: try it again
    return _apply_and_commit(existing, delivered=True, payment_base_url=payment_base_url)


def replay_event(event_id: str, *, payment_base_url: str | None = None) -> Outcome:
    event = _event(event_id)
    if event is None:
        raise NotFound(f"No booking event {event_id}.")
    if event.outcome != BookingOutcome.FAILED:
        raise WrongState(f"Event {event_id} was applied already ({event.outcome}); only failed events are replayed.")
    return _apply_and_commit(event, payment_base_url=payment_base_url)


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


def _apply_and_commit(event: BookingEvent, *, new: bool = False, delivered: bool = False,
                      payment_base_url: str | None = None) -> Outcome:
    """The event's invoice changes and its own row, in one transaction (one commit)."""
    event_id = event.id
    try:
        with transaction():
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
    except (PricingError, DomainProblem, ValidationError) as error:
        detail, errors = _explain(error)
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
    invoice = invoicing.get_invoice(booking.invoice_id) if booking.invoice_id else None
    result, invoice, flag = handler(invoice, data)
    booking.last_event_created = event.created
    booking.last_event_id = event.id
    booking.invoice_id = invoice.id if invoice is not None else booking.invoice_id
    booking.updated_at = utcnow()
    return Outcome(event.id, result, booking.invoice_id, flag)


def _lock_booking(booking_id: str) -> Booking:
    """The booking's row, locked: events for one booking apply one at a time, in the order
    event row → booking row → invoice row, the same in every path, so no two deadlock."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # One round trip: an upsert that touches the row locks it (PostgreSQL) and returns it.
    statement = insert(Booking).values(id=booking_id, last_event_created=0, updated_at=utcnow())
    statement = statement.on_conflict_do_update(index_elements=[Booking.id], set_={"id": statement.excluded.id})
    return db.session.scalars(statement.returning(Booking), execution_options={"populate_existing": True}).one()


# Each handler reads the booking's invoice (the booking row lock keeps other events out) and
# changes it only through the invoice use cases, which lock it and check the move again.
Handled = tuple[BookingOutcome, Invoice | None, str | None]


def _changes(data: dict[str, Any]) -> dict[str, Any]:
    request = build_request(data)
    return {**request_json(request), "patient": data["patient"], "booking_id": data["booking_id"]}


def _issued_flag(invoice: Invoice, what: str) -> str:
    return (f"The booking was {what} after invoice {invoice.number} was {invoice.status}; "
            "the invoice was left as it is. Check whether it needs a refund or a correction.")


def _new_draft(data: dict[str, Any], *, charge: str = "full") -> Invoice:
    return invoicing.create_invoice(build_request(data), data["patient"], ACTOR, booking_id=data["booking_id"],
                                    charge=charge)


def _booked(invoice: Invoice | None, data: dict[str, Any]) -> Handled:
    if invoice is None or invoice.status == InvoiceStatus.VOID:
        return BookingOutcome.CREATED, _new_draft(data), None
    if invoice.status == InvoiceStatus.DRAFT:
        invoicing.update_draft(invoice.id, _changes(data), ACTOR, action="booking_updated")
        return BookingOutcome.UPDATED, invoice, None
    return BookingOutcome.IGNORED, invoice, _issued_flag(invoice, "changed")


def _completed(invoice: Invoice | None, data: dict[str, Any]) -> Handled:
    if invoice is None or invoice.status == InvoiceStatus.VOID:
        invoice = _new_draft(data)
    elif invoice.status == InvoiceStatus.DRAFT:
        invoicing.update_draft(invoice.id, _changes(data), ACTOR, action="booking_completed")
    else:
        return BookingOutcome.IGNORED, invoice, _issued_flag(invoice, "completed again")
    invoicing.finalize_invoice(invoice.id, ACTOR)
    return BookingOutcome.FINALIZED, invoice, None


def _cancelled(invoice: Invoice | None, data: dict[str, Any]) -> Handled:
    if invoice is not None and invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        return BookingOutcome.IGNORED, invoice, _issued_flag(invoice, "cancelled")
    voided_now = invoice is not None and invoice.status == InvoiceStatus.DRAFT
    if voided_now:
        invoicing.void_invoice(invoice.id, ACTOR, reason="infusion cancelled")
    request = build_request(data)
    if data["product_prepared"] and price_list_for(request).charge_prepared_product:
        # The vials were opened: the product line alone is invoiced, the service is not.
        charge = _new_draft(data, charge="product_only")
        invoicing.finalize_invoice(charge.id, ACTOR)
        return BookingOutcome.FINALIZED, charge, None
    return (BookingOutcome.VOIDED if voided_now else BookingOutcome.IGNORED), invoice, None


_HANDLERS: dict[str, Callable[[Invoice | None, dict[str, Any]], Handled]] = {
    "infusion.booked": _booked,
    "infusion.updated": _booked,
    "infusion.completed": _completed,
    "infusion.cancelled": _cancelled,
}

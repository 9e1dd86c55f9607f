"""Messages: what the service tells patients (email) and the booking system (events) after a
change to an invoice (CONTRACT.md section 9).

The invoice's unit of work calls `queue_for_change` inside the change's transaction, so each
message is an outbox row committed with the change, or not at all; the worker delivers it
(billing/messages/email.py, billing/messages/events.py). What is queued is decided here, once:

- an event for each thing that happened, while BOOKING_NOTIFY_URL is set;
- an email for the four that a payer hears about (issued, payment, refund, credit note) while
  SMTP_URL is set and the invoice has an address: bill_to.email, else the patient's.
Reminders are queued by `billing send-reminders` (billing/messages/reminders.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from .. import outbox
from ..errors import NotFound, WrongState
from ..extensions import db
from ..ids import new_id
from ..models import Invoice, OutboxMessage, utcnow
from ..states import InvoiceStatus, OutboxStatus
from ..unit_of_work import transaction

EMAIL = "email"
EVENT = "event"

# The events the booking system hears (CONTRACT.md section 9).
FINALIZED = "invoice.finalized"
PAID = "invoice.paid"
VOIDED = "invoice.voided"
WRITTEN_OFF = "invoice.marked_uncollectible"
PAYMENT_RECORDED = "payment.recorded"
REFUND_RECORDED = "refund.recorded"
CREDIT_NOTE_ISSUED = "credit_note.issued"
EVENT_TYPES = (FINALIZED, PAID, VOIDED, WRITTEN_OFF, PAYMENT_RECORDED, REFUND_RECORDED, CREDIT_NOTE_ISSUED)

# The emails: their outbox topics, and the event each follows.
INVOICE_ISSUED = "email.invoice_issued"
RECEIPT = "email.receipt"
REFUND_MADE = "email.refund"
CREDIT_NOTE = "email.credit_note"
REMINDER = "email.reminder"
EMAIL_TOPICS = (INVOICE_ISSUED, RECEIPT, REFUND_MADE, CREDIT_NOTE, REMINDER)
EMAIL_AFTER = {FINALIZED: INVOICE_ISSUED, PAYMENT_RECORDED: RECEIPT, REFUND_RECORDED: REFUND_MADE,
               CREDIT_NOTE_ISSUED: CREDIT_NOTE}

_ENDED = {InvoiceStatus.PAID: PAID, InvoiceStatus.VOID: VOIDED, InvoiceStatus.UNCOLLECTIBLE: WRITTEN_OFF}


def status_events(before: str | None, after: str) -> tuple[list[str], list[str]]:
    """The events a status move makes: (those that come before the change's own, those after).
    draft → paid (a zero invoice) is finalized, then paid."""
    if before is None or before == after:
        return [], []
    first = [FINALIZED] if before == InvoiceStatus.DRAFT and after != InvoiceStatus.VOID else []
    last = [_ENDED[after]] if after in _ENDED else []
    return first, last


def recipient(invoice: Invoice) -> str | None:
    """Who an invoice's emails go to: the payer's address, else the patient's; None for neither."""
    return (invoice.bill_to or {}).get("email") or invoice.patient_email or None


def event_data(invoice: Invoice) -> dict[str, Any]:
    """An event's `data`: ids and amounts only, never a name."""
    return {"invoice_id": invoice.id, "number": invoice.number, "booking_id": invoice.booking_id,
            "patient_id": invoice.patient_id, "status": invoice.status, "currency": invoice.currency,
            "total": invoice.total, "amount_paid": invoice.amount_paid, "amount_refunded": invoice.amount_refunded,
            "amount_credited": invoice.amount_credited, "amount_due": invoice.amount_due}


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def queue_for_change(invoice: Invoice, happened: list[tuple[str, dict[str, str]]]) -> None:
    """Queue the events and emails for what one change did to `invoice` (in its transaction)."""
    config = current_app.config
    notify_url = config["BOOKING_NOTIFY_URL"]
    to = recipient(invoice) if config["SMTP_URL"] else None
    if not happened or not (notify_url or to):
        return
    data = event_data(invoice)
    now = _timestamp(utcnow())
    rows = []
    for event_type, ids in happened:
        if notify_url:
            rows.append(outbox.message_row(EVENT, event_type, {"to": notify_url, "body": {
                "type": event_type, "timestamp": now, "data": {**data, **ids}}}, invoice_seq=invoice.seq))
        topic = EMAIL_AFTER.get(event_type)
        if to and topic:
            rows.append(outbox.message_row(EMAIL, topic, {"to": to, "invoice_id": invoice.id,
                                                          "amount_due": invoice.amount_due, **ids},
                                           invoice_seq=invoice.seq))
    outbox.enqueue_rows(rows)


# --- what staff and API clients see, and resend -----------------------------------------------

SHOWN_KINDS = (EMAIL, EVENT)  # the outbox's Stripe tasks are the service's own business


def messages_of(invoice: Invoice) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage)
                                   .where(OutboxMessage.invoice_seq == invoice.seq,
                                          OutboxMessage.kind.in_(SHOWN_KINDS))
                                   .order_by(OutboxMessage.seq)))


def message_json(message: OutboxMessage) -> dict[str, Any]:
    return {"id": message.id, "kind": message.kind, "topic": message.topic, "to": message.payload.get("to"),
            "status": message.status, "attempts": message.attempts, "last_error": message.last_error,
            "created_at": message.created_at, "sent_at": message.sent_at}


def failed_count() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.status == OutboxStatus.FAILED,
                                    OutboxMessage.kind.in_(SHOWN_KINDS))) or 0


class MessageNotFound(NotFound):
    pass


def resend(message_id: str) -> OutboxMessage:
    """Send an email or event again. One that failed or was skipped goes back in the queue as
    itself (same id: the receiver never saw it); one that was sent is copied under a new id,
    so the receiver doesn't drop it as a repeat. One still pending is a 409."""
    with transaction():
        message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id,
                                                                OutboxMessage.kind.in_(SHOWN_KINDS))
                                    .with_for_update())
        if message is None:
            raise MessageNotFound(f"No message {message_id}.")
        if message.status == OutboxStatus.PENDING:
            raise WrongState(f"Message {message_id} is still queued; the worker will deliver it.")
        if message.status == OutboxStatus.SENT:
            copy = OutboxMessage(id=new_id("msg"), kind=message.kind, topic=message.topic, payload=message.payload,
                                 invoice_seq=message.invoice_seq, status=OutboxStatus.PENDING, attempts=0,
                                 available_at=utcnow())
            db.session.add(copy)
            return copy
        message.status = OutboxStatus.PENDING
        message.attempts = 0
        message.available_at = utcnow()
        return message

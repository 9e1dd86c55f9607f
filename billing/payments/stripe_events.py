"""What Stripe tells us: each event recorded once, then handled through a {type: handler} table.

Handlers are idempotent on their own (a payment is unique per PaymentIntent, a refund per
Stripe refund id), so a redelivered or concurrent duplicate changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .. import invoicing
from ..extensions import db
from ..models import Payment, Refund, StripeEvent
from .checkout import ACTOR, settle
from .gateway import _intent, _plain

log = logging.getLogger("billing.stripe")


def handle(event: Any) -> str:
    """Apply one verified Stripe event; returns the outcome recorded for it."""
    event = _plain(event)
    obj = event["data"]["object"]
    invoice_id = (obj.get("metadata") or {}).get("invoice_id")
    record = StripeEvent(id=event["id"], type=event["type"], invoice_id=invoice_id, outcome="received")
    db.session.add(record)
    try:
        db.session.flush()  # the event id is unique: a concurrent redelivery waits, then stops here
    except IntegrityError:
        db.session.rollback()
        db.session.execute(update(StripeEvent).where(StripeEvent.id == event["id"])
                           .values(deliveries=StripeEvent.deliveries + 1))
        db.session.commit()
        return "duplicate"
    handler = _HANDLERS.get(event["type"])
    if handler is None:
        log.info("stripe event ignored", extra={"fields": {"event_id": event["id"], "type": event["type"]}})
        record.outcome = "ignored"
        db.session.commit()
        return "ignored"
    outcome, detail, invoice_id = handler(obj)
    # The handler may have committed (settle does); the record is re-read to finish it.
    record = db.session.scalar(select(StripeEvent).where(StripeEvent.id == event["id"]))
    record.outcome, record.detail = outcome, detail
    record.invoice_id = invoice_id or record.invoice_id
    db.session.commit()
    log.info("stripe event", extra={"fields": {"event_id": event["id"], "type": event["type"], "outcome": outcome}})
    return outcome


Handled = tuple[str, "str | None", "str | None"]


def _succeeded(obj: Any) -> Handled:
    intent = _intent(obj)
    payment = settle(intent)
    if payment is None:
        return "not_ours", None, intent.invoice_id
    return "payment_recorded", None, intent.invoice_id


def _failed(obj: Any) -> Handled:
    intent = _intent(obj)
    if not intent.invoice_id:
        return "not_ours", None, None
    try:
        invoice = invoicing._lock(intent.invoice_id)
    except invoicing.InvoiceNotFound:
        return "not_ours", None, intent.invoice_id
    reason = intent.last_error or "The card payment failed."
    invoicing._audit(invoice, ACTOR, "online_payment_failed", invoicing.state(invoice),
                     {"payment_intent": intent.id, "amount": intent.amount, "reason": reason})
    return "payment_failed", reason, intent.invoice_id


def _refunded(obj: Any) -> Handled:
    """A refund made in Stripe's dashboard (ours are recorded when made, and found here)."""
    intent_id = obj.get("payment_intent")
    payment = db.session.scalar(select(Payment).where(Payment.stripe_payment_intent == intent_id)) if intent_id else None
    if payment is None:
        return "not_ours", None, None
    invoice = invoicing._lock_seq(payment.invoice_seq)
    payment = db.session.scalar(select(Payment).where(Payment.seq == payment.seq)
                                .execution_options(populate_existing=True))
    refunds = ((obj.get("refunds") or {}).get("data")) or []
    known = set(db.session.scalars(select(Refund.stripe_refund).where(Refund.payment_seq == payment.seq)))
    recorded = 0
    for item in refunds:
        if item["id"] in known or item.get("status") in ("failed", "canceled"):
            continue
        amount = min(int(item["amount"]), payment.amount - payment.amount_refunded)
        if amount > 0:
            invoicing.add_refund(invoice, payment, amount, "Refunded in Stripe", ACTOR, stripe_refund=item["id"])
            recorded += amount
    if not refunds:
        # No list on this event: take the difference between Stripe's total and ours.
        missing = int(obj.get("amount_refunded") or 0) - payment.amount_refunded
        if missing > 0:
            invoicing.add_refund(invoice, payment, missing, "Refunded in Stripe", ACTOR)
            recorded += missing
    return ("refund_recorded" if recorded else "nothing_new"), None, invoice.id


_HANDLERS: dict[str, Callable[[Any], Handled]] = {
    "payment_intent.succeeded": _succeeded,
    "payment_intent.payment_failed": _failed,
    "charge.refunded": _refunded,
}


class BadSignature(Exception):
    pass


def verify(raw: bytes, header: str | None, secret: str) -> Any:
    """The event, if `header` signs the raw body with `secret` (within Stripe's 300 s)."""
    try:
        return stripe.Webhook.construct_event(raw, header, secret)
    except stripe.SignatureVerificationError as error:
        raise BadSignature(f"Stripe-Signature does not verify: {error.user_message or error}") from None
    except ValueError:
        raise BadSignature("The request body is not valid JSON.") from None

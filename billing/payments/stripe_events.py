"""What Stripe tells us: each event recorded once, then handled through a {type: handler} table.

The event's record and everything its handler changes are one transaction. Handlers are
idempotent on their own (a payment is unique per PaymentIntent, a refund per Stripe refund
id), so a redelivered or concurrent duplicate changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import stripe
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .. import invoicing
from ..extensions import db
from ..models import StripeEvent
from ..unit_of_work import transaction
from .checkout import settle
from .gateway import _intent, _plain

log = logging.getLogger("billing.stripe")

Handled = tuple[str, "str | None", "str | None"]  # outcome, detail, invoice id


def handle(event: Any) -> str:
    """Apply one verified Stripe event; returns the outcome recorded for it."""
    event = _plain(event)
    obj = event["data"]["object"]
    try:
        with transaction():
            record = StripeEvent(id=event["id"], type=event["type"], outcome="received",
                                 invoice_id=(obj.get("metadata") or {}).get("invoice_id"))
            db.session.add(record)
            db.session.flush()  # the event id is unique: a concurrent redelivery waits, then stops here
            handler = _HANDLERS.get(event["type"])
            outcome, detail, invoice_id = handler(obj) if handler else ("ignored", None, None)
            record.outcome, record.detail = outcome, detail
            record.invoice_id = invoice_id or record.invoice_id
    except IntegrityError:
        with transaction():
            db.session.execute(update(StripeEvent).where(StripeEvent.id == event["id"])
                               .values(deliveries=StripeEvent.deliveries + 1))
        return "duplicate"
    log.info("stripe event", extra={"fields": {"event_id": event["id"], "type": event["type"], "outcome": outcome}})
    return outcome


def _succeeded(obj: Any) -> Handled:
    intent = _intent(obj)
    payment = settle(intent)
    if payment is None:
        if intent.invoice_id and _exists(intent.invoice_id):
            return "refunded_unbooked", "Not the invoice's currency: refunded in full.", intent.invoice_id
        return "not_ours", None, intent.invoice_id
    return "payment_recorded", None, intent.invoice_id


def _exists(invoice_id: str) -> bool:
    try:
        invoicing.get_invoice(invoice_id)
    except invoicing.InvoiceNotFound:
        return False
    return True


def _failed(obj: Any) -> Handled:
    intent = _intent(obj)
    if not intent.invoice_id:
        return "not_ours", None, None
    reason = intent.last_error or "The card payment failed."
    if not invoicing.note_card_failure(intent.invoice_id, intent.id, intent.amount, reason):
        return "not_ours", None, intent.invoice_id
    return "payment_failed", reason, intent.invoice_id


def _refunded(obj: Any) -> Handled:
    """Refunds of a charge as Stripe knows them: ours are matched, others (made in Stripe's
    dashboard) recorded once."""
    intent_id = obj.get("payment_intent")
    if not intent_id:
        return "not_ours", None, None
    items = ((obj.get("refunds") or {}).get("data")) or []
    found = invoicing.record_stripe_refunds(intent_id, items, int(obj.get("amount_refunded") or 0))
    if found is None:
        return "not_ours", None, None
    invoice_id, recorded = found
    return ("refund_recorded" if recorded else "nothing_new"), None, invoice_id


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

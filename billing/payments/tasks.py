"""What the outbox worker does at Stripe after an invoice change (billing/outbox.py delivers).

Each task reads the invoice as it is when delivered, so running one twice, late, or after a
newer one does no harm; every call that moves money carries an idempotency key."""

from __future__ import annotations

from typing import Any

from .. import invoicing, outbox
from ..errors import Unavailable
from . import stripe_gateway
from .gateway import PaymentRefused

WORKER = outbox.WORKER


def _gateway():
    gateway = stripe_gateway()
    if gateway is None:
        raise Unavailable("Paying online is not configured; the message waits until it is.")
    return gateway


@outbox.handles(invoicing.SYNC_INTENT)
def sync_intent(payload: dict[str, Any]) -> None:
    """The invoice's live PaymentIntent no longer matches what is due (void, paid by other
    means, part-paid by hand): cancel it, so a stale tab can't charge the card. The pay page
    makes a new one for the new amount when it is next opened."""
    invoice = invoicing.get_invoice(payload["invoice_id"])
    intent_id = invoice.stripe_payment_intent
    if intent_id is None or invoicing.intent_matches(invoice):
        return
    _cancel(intent_id, invoice.id, invoice.stripe_attempt)
    invoicing.forget_intent(invoice.id, intent_id, WORKER)


@outbox.handles(invoicing.CANCEL_INTENT)
def cancel_intent(payload: dict[str, Any]) -> None:
    _cancel(payload["payment_intent"], payload["invoice_id"], payload["attempt"])


def _cancel(intent_id: str, invoice_id: str, attempt: int) -> None:
    try:
        _gateway().cancel_intent(intent_id, invoice_id=invoice_id, attempt=attempt)
    except PaymentRefused:
        # Already cancelled, or it succeeded first: then payment_intent.succeeded books the
        # money and refunds what isn't due.
        pass


@outbox.handles(invoicing.SEND_REFUND)
def send_refund(payload: dict[str, Any]) -> None:
    invoicing.send_refund(payload["refund_id"], _gateway(), WORKER, retry_when_unreachable=True)


@outbox.handles(invoicing.REFUND_UNBOOKED)
def refund_unbooked(payload: dict[str, Any]) -> None:
    """Card money that was never the invoice's (another currency): all of it goes back."""
    _gateway().refund(payment_intent=payload["payment_intent"], amount=payload["amount"],
                      invoice_id=payload["invoice_id"], refund_id=None,
                      idempotency_key=f"{payload['payment_intent']}:refund")

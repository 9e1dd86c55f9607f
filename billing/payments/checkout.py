"""Use cases of the pay page: the PaymentIntent an invoice is paid through, and settling it."""

from __future__ import annotations

from sqlalchemy import select

from .. import invoicing
from ..extensions import db
from ..models import Invoice, Payment
from .gateway import Intent, PaymentRefused, StripeGateway

REUSABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
ONLINE_METHOD = "card_online"
ACTOR = "stripe"


def intent_for(invoice: Invoice, gateway: StripeGateway) -> Intent:
    """The invoice's PaymentIntent for what is due now: the stored one while it is still
    usable for that amount, else a new one (the old one cancelled). Stripe is called
    outside any row lock; the new intent is stored only if no other request stored one first."""
    current = None
    if invoice.stripe_payment_intent:
        try:
            current = gateway.retrieve_intent(invoice.stripe_payment_intent)
        except PaymentRefused:
            current = None  # Stripe no longer knows it (another account or a test reset): start again
    if current is not None:
        if current.status == "succeeded":
            settle(current)
            return current
        if current.status in REUSABLE and current.amount == invoice.amount_due:
            return current
        if current.status in REUSABLE:
            try:
                gateway.cancel_intent(current.id, invoice_id=invoice.id, attempt=invoice.stripe_attempt)
            except PaymentRefused:
                pass  # already finished or cancelled on Stripe's side: nothing to undo
    attempt = invoice.stripe_attempt + 1
    intent = gateway.create_intent(invoice_id=invoice.id, invoice_number=invoice.number or invoice.id,
                                   amount=invoice.amount_due, currency=invoice.currency, attempt=attempt)
    locked = invoicing._lock(invoice.id)
    if locked.stripe_attempt == attempt - 1:
        locked.stripe_attempt = attempt
        locked.stripe_payment_intent = intent.id
        locked.stripe_intent_amount = intent.amount
    db.session.commit()
    return intent


def settle(intent: Intent) -> Payment | None:
    """Record a succeeded PaymentIntent as a payment, once, whoever reports it first (the
    webhook or the pay page's return). Returns the payment, or None if it isn't ours."""
    if intent.status != "succeeded" or not intent.invoice_id:
        return None
    try:
        invoice = invoicing._lock(intent.invoice_id)
    except invoicing.InvoiceNotFound:
        return None
    existing = db.session.scalar(select(Payment).where(Payment.stripe_payment_intent == intent.id))
    if existing is not None:
        db.session.commit()  # release the lock
        return existing
    payment = invoicing.add_payment(invoice, intent.amount_received or intent.amount, ONLINE_METHOD, ACTOR,
                                    reference=intent.id, stripe_payment_intent=intent.id)
    db.session.commit()
    return payment

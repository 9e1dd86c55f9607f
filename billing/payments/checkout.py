"""Use cases of the pay page: the PaymentIntent an invoice is paid through, and settling it."""

from __future__ import annotations

from .. import invoicing
from ..models import Invoice, Payment
from .gateway import Intent, PaymentRefused, StripeGateway

REUSABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
PAY_PAGE = "pay_page"


class IntentOutdated(Exception):
    """The invoice changed while its PaymentIntent was being made; ask again."""


def intent_for(invoice: Invoice, gateway: StripeGateway) -> Intent:
    """The invoice's PaymentIntent for what is due now: the stored one while it is still
    usable for that amount, else a new one. Stripe is called outside any row lock; the new
    intent becomes the invoice's only if the invoice still owes exactly that amount."""
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
    if not invoicing.attach_intent(invoice.id, intent.id, intent.amount, attempt, PAY_PAGE):
        raise IntentOutdated(invoice.id)
    return intent


def settle(intent: Intent) -> Payment | None:
    """Book a succeeded PaymentIntent, once, whoever reports it first (the webhook or the pay
    page's return). Returns the payment, or None if none was booked for it."""
    if intent.status != "succeeded" or not intent.invoice_id:
        return None
    try:
        return invoicing.book_card_payment(invoicing.CardPayment(
            payment_intent=intent.id, invoice_id=intent.invoice_id,
            amount=intent.amount_received or intent.amount, currency=intent.currency))
    except invoicing.InvoiceNotFound:
        return None

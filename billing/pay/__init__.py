"""The patient's pages: /pay/<token> shows the two fees and takes a card through Stripe.js.

Nothing here is clinical beyond the two fee names; the page carries a CSP that forbids
inline script, sends no referrer (the token is in the path) and is never cached.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, make_response, redirect, render_template, request, url_for

from .. import payment_links
from ..errors import Unavailable
from ..models import Invoice
from ..money_format import show
from ..payments import stripe_gateway
from ..payments.checkout import IntentOutdated, intent_for, settle
from ..payments.gateway import PaymentRefused
from ..pricing import PRODUCT
from ..states import InvoiceStatus

bp = Blueprint("pay", __name__, url_prefix="/pay")

LINE_NAMES = {PRODUCT: "Immunoglobulin product", "infusion_service": "Infusion service"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _secured(body: str, status: int = 200) -> Response:
    config = current_app.config
    js, api = _origin(config["STRIPE_JS_URL"]), _origin(config["STRIPE_API_BASE"])
    response = make_response(body, status)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {js}; connect-src 'self' {js} {api}; "
        f"frame-src {js} https://hooks.stripe.com; img-src 'self' data: {js}; "
        "style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _message(title: str, text: str, status: int = 200) -> Response:
    return _secured(render_template("pay/message.html", title=title, text=text), status)


def _invalid() -> Response:
    # One page for unknown and expired links alike: it says nothing of whether one existed.
    return _message("This payment link can't be used",
                    "The link is not valid or has expired. Please contact the clinic for a new one.", 404)


def fee_view(invoice: Invoice) -> dict:
    """The two fees, the total and what is due, as the pay page and the emails show them."""
    cur = invoice.currency
    return {
        "number": invoice.number,
        "lines": [(LINE_NAMES.get(line["category"], "Fee"), show(line["amount"] + line["tax_amount"], cur))
                  for line in invoice.lines],
        "total": show(invoice.total, cur),
        "paid": show(invoice.amount_paid, cur) if invoice.amount_paid else None,
        "due": show(invoice.amount_due, cur),
    }


@bp.get("/<token>")
def pay(token: str):
    invoice = payment_links.invoice_for_token(token)
    if invoice is None:
        return _invalid()
    if invoice.status == InvoiceStatus.PAID:
        return _message("This invoice has been paid", f"Invoice {invoice.number} is paid in full. Thank you.")
    if invoice.status == InvoiceStatus.VOID:
        return _message("This invoice was cancelled", f"Invoice {invoice.number} was cancelled; there is nothing to pay.")
    gateway = stripe_gateway()
    if gateway is None:
        return _message("Paying online isn't available",
                        "Please contact the clinic to pay this invoice.", 503)
    try:
        intent = intent_for(invoice, gateway)
    except Unavailable as error:
        return _message("We can't take card payments right now", error.detail, 503)
    except IntentOutdated:
        return redirect(url_for("pay.pay", token=token))  # the invoice changed meanwhile: show it as it is now
    except PaymentRefused:
        return _message("We can't take card payments for this invoice",
                        "Please contact the clinic to pay this invoice.", 409)
    if intent.status == "succeeded":
        return redirect(url_for("pay.done", token=token, payment_intent=intent.id))
    return _secured(render_template(
        "pay/pay.html", invoice=fee_view(invoice), client_secret=intent.client_secret,
        publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"], stripe_js=current_app.config["STRIPE_JS_URL"],
        return_url=url_for("pay.done", token=token),
    ))


@bp.get("/<token>/done")
def done(token: str):
    """Where the page goes after Stripe.js confirms: the PaymentIntent is fetched from Stripe
    and settled here too, so a lost webhook never leaves a paid invoice looking unpaid."""
    invoice = payment_links.invoice_for_token(token)
    if invoice is None:
        return _invalid()
    gateway = stripe_gateway()
    intent_id = request.args.get("payment_intent", "")
    if gateway is not None and intent_id.startswith("pi_") and len(intent_id) < 100:
        try:
            intent = gateway.retrieve_intent(intent_id)
        except Unavailable as error:
            return _message("We're confirming your payment", error.detail, 503)
        except PaymentRefused:  # Stripe knows no such PaymentIntent: show the invoice as it is
            intent = None
        if intent is not None and intent.invoice_id == invoice.id:
            if intent.status == "succeeded":
                settle(intent)
                invoice = payment_links.invoice_for_token(token)
                return _secured(render_template("pay/receipt.html", invoice=fee_view(invoice),
                                                amount=show(intent.amount_received or intent.amount, invoice.currency)))
            if intent.status == "processing":
                return _message("We're confirming your payment", "Your bank is confirming the payment. "
                                "This page will show it once it is done; you needn't pay again.")
    if invoice.status == InvoiceStatus.PAID:
        return _message("This invoice has been paid", f"Invoice {invoice.number} is paid in full. Thank you.")
    return redirect(url_for("pay.pay", token=token))

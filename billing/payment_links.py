"""Use cases for patients' payment links: unguessable, stored hashed, expiring, and dead once
the invoice is paid or void."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from .errors import WrongState
from .extensions import db
from .ids import new_id
from .invoicing import invoice_change
from .models import Invoice, PaymentLink, utcnow
from .states import TAKES_PAYMENT


def _token(link_id: str) -> str:
    """256 bits: an HMAC of the link's id under SECRET_KEY (recomputable for the PDF)."""
    mac = hmac.new(current_app.config["SECRET_KEY"].encode(), f"payment-link:{link_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(base_url: str, link: PaymentLink) -> str:
    return f"{base_url.rstrip('/')}/pay/{_token(link.id)}"


def create_payment_link(invoice_id: str, actor: str, base_url: str) -> tuple[str, datetime]:
    """A new link for an invoice that takes payment and has something due (409 otherwise)."""
    with invoice_change(invoice_id, actor, "payment_link_created") as change:
        invoice = change.invoice
        if invoice.status not in TAKES_PAYMENT or invoice.amount_due <= 0:
            raise WrongState(f"Invoice {invoice.number or invoice.id} is {invoice.status} with {{due}} due; payment "
                             "links are for open invoices with something due.", money={"due": invoice.amount_due},
                             currency=invoice.currency)
        link = PaymentLink(id=new_id("plink"), invoice_seq=invoice.seq, created_by=actor,
                           expires_at=utcnow() + timedelta(days=current_app.config["PAYMENT_LINK_DAYS"]))
        link.token_hash = _hash(_token(link.id))
        db.session.add(link)
        change.note(link_id=link.id, expires_at=link.expires_at.isoformat())
    return link_url(base_url, link), link.expires_at


def invoice_for_token(token: str) -> Invoice | None:
    """The invoice behind a live link; None for an unknown or expired one (told apart nowhere)."""
    if not 20 <= len(token) <= 100:
        return None
    link = db.session.scalar(select(PaymentLink).where(PaymentLink.token_hash == _hash(token)))
    if link is None or link.expires_at <= utcnow():
        return None
    return db.session.get(Invoice, link.invoice_seq)


def current_link_url(invoice: Invoice, base_url: str) -> str | None:
    """The newest live link of a payable invoice, for the PDF; None when there is none."""
    if invoice.status not in TAKES_PAYMENT:
        return None
    link = db.session.scalar(select(PaymentLink).where(PaymentLink.invoice_seq == invoice.seq,
                                                       PaymentLink.expires_at > utcnow())
                             .order_by(PaymentLink.seq.desc()).limit(1))
    return link_url(base_url, link) if link else None

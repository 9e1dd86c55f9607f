"""Emails to the payer, composed when delivered (from Jinja templates, plain text and HTML)
and sent through SMTP_URL: smtp:// (plain), smtp+starttls:// or smtps://, with a login when
the URL carries one. Each carries a Message-ID made from its outbox id, so a repeat of one
delivery is the same message to the receiving server and to mail clients.

Nothing clinical goes in them: the two fee names and amounts, the invoice number, dates and
what is due; never a dose, a weight or an excluded item."""

from __future__ import annotations

import smtplib
import ssl
import threading
from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Callable

from flask import current_app, render_template
from sqlalchemy import select
from sqlalchemy.engine import make_url

from .. import invoicing, outbox
from ..extensions import db
from ..models import Invoice, Payment, Refund
from ..money_format import show
from ..outbox import Claimed, Skip
from ..states import METHOD_NAMES, TAKES_PAYMENT, InvoiceStatus
from . import CREDIT_NOTE, INVOICE_ISSUED, RECEIPT, REFUND_MADE, REMINDER

ACTOR = outbox.WORKER
SMTP_TIMEOUT = 10  # seconds
_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


# --- sending ----------------------------------------------------------------------------------

class _Connections(threading.local):
    """One SMTP connection per worker thread, kept open between messages (a new connection and
    login per message would cost more than the message)."""

    url: str | None = None
    smtp: smtplib.SMTP | None = None


_open = _Connections()


def _connect(url: str) -> smtplib.SMTP:
    parts = make_url(url)
    host, port = parts.host or "127.0.0.1", parts.port or _PORTS[parts.drivername]
    smtp: smtplib.SMTP
    if parts.drivername == "smtps":
        smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
        if parts.drivername == "smtp+starttls":
            smtp.starttls(context=ssl.create_default_context())
    if parts.username:
        smtp.login(parts.username, parts.password or "")
    return smtp


def _close() -> None:
    if _open.smtp is not None:
        try:
            _open.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
    _open.smtp = _open.url = None


def send(message: EmailMessage) -> None:
    """Hand the message to the SMTP server; raises (and the outbox retries) if it isn't taken."""
    url = current_app.config["SMTP_URL"]
    if not url:
        raise RuntimeError("SMTP_URL is not set; the email waits until it is")
    if _open.url != url:
        _close()
    fresh = _open.smtp is None
    if fresh:
        _open.smtp, _open.url = _connect(url), url
    try:
        _open.smtp.send_message(message)
    except (smtplib.SMTPServerDisconnected, OSError):
        _close()
        if fresh:
            raise
        _open.smtp, _open.url = _connect(url), url  # the kept connection had gone stale: once more, anew
        _open.smtp.send_message(message)
    except smtplib.SMTPException:
        _close()  # refused: the outbox retries later, on a new connection
        raise


# --- composing --------------------------------------------------------------------------------

class Composed:
    def __init__(self, template: str, subject: str, **context: Any) -> None:
        self.template = template
        self.subject = subject
        self.context = context
        self.attachments: list[tuple[str, bytes]] = []


def _fees(invoice: Invoice) -> dict[str, Any]:
    from ..pay import fee_view

    return fee_view(invoice)


def _fresh_link(invoice: Invoice) -> str | None:
    """A new payment link for an invoice that can be paid online now; None otherwise."""
    from .. import payment_links
    from ..payments import public_base_url, stripe_gateway

    if stripe_gateway() is None or invoice.status not in TAKES_PAYMENT or invoice.amount_due <= 0:
        return None
    url, _ = payment_links.create_payment_link(invoice.id, ACTOR, public_base_url())
    return url


def _invoice_issued(invoice: Invoice, payload: dict[str, Any]) -> Composed:
    from ..payments import public_base_url
    from ..pdf import invoice_pdf

    if invoice.status == InvoiceStatus.VOID:
        raise Skip("The invoice was voided before its email went out.")
    link = _fresh_link(invoice)
    composed = Composed("invoice_issued", f"Invoice {invoice.number} from {current_app.config['CLINIC_NAME']}",
                        link=link, due_date=invoice.due_date)
    composed.attachments.append(invoice_pdf(invoice, public_base_url()))  # it prints the link just made
    return composed


def _receipt(invoice: Invoice, payload: dict[str, Any]) -> Composed:
    payment = db.session.scalar(select(Payment).where(Payment.id == payload["payment_id"]))
    return Composed("receipt", f"Payment received for invoice {invoice.number}",
                    amount=show(payment.amount, invoice.currency), received_on=payment.received_on,
                    method=METHOD_NAMES.get(payment.method, "Other"),
                    still_due=show(payload["amount_due"], invoice.currency), settled=payload["amount_due"] == 0)


def _refund(invoice: Invoice, payload: dict[str, Any]) -> Composed:
    refund = db.session.scalar(select(Refund).where(Refund.id == payload["refund_id"]))
    payment = db.session.get(Payment, refund.payment_seq)
    return Composed("refund", f"Refund for invoice {invoice.number}", amount=show(refund.amount, invoice.currency),
                    on=(refund.completed_at or refund.created_at).date(),
                    to_card=payment.method == "card_online")


def _credit_note(invoice: Invoice, payload: dict[str, Any]) -> Composed:
    from ..credit_note_pdf import credit_note_pdf

    note = invoicing.get_credit_note(payload["credit_note_id"])
    composed = Composed("credit_note", f"Credit note {note.number} for invoice {invoice.number}",
                        note_number=note.number, amount=show(note.total, invoice.currency),
                        still_due=show(payload["amount_due"], invoice.currency))
    composed.attachments.append(credit_note_pdf(note))
    return composed


def _reminder(invoice: Invoice, payload: dict[str, Any]) -> Composed:
    from .reminders import why_not

    reason = why_not(invoice)
    if reason:
        raise Skip(reason)
    step = int(payload["step"])
    due_date = invoice.due_date
    if step < 0:
        subject = f"Reminder: invoice {invoice.number} is due on {_day(due_date)}"
    elif step == 0:
        subject = f"Reminder: invoice {invoice.number} is due today"
    else:
        subject = f"Invoice {invoice.number} is overdue"
    return Composed("reminder", subject, step=step, due_date=due_date, link=_fresh_link(invoice))


COMPOSERS: dict[str, Callable[[Invoice, dict[str, Any]], Composed]] = {
    INVOICE_ISSUED: _invoice_issued, RECEIPT: _receipt, REFUND_MADE: _refund, CREDIT_NOTE: _credit_note,
    REMINDER: _reminder,
}


def _day(day: date | None) -> str:
    return f"{day.day} {day:%B %Y}" if day else ""


def build(message_id: str, topic: str, payload: dict[str, Any]) -> EmailMessage:
    """The email an outbox message stands for, as it is sent."""
    config = current_app.config
    invoice = invoicing.get_invoice(payload["invoice_id"])
    composed = COMPOSERS[topic](invoice, payload)
    payer = (invoice.bill_to or {}).get("name") if (invoice.bill_to or {}).get("email") else invoice.patient_name
    context = {"clinic": config["CLINIC_NAME"], "contact": config["CLINIC_CONTACT"], "number": invoice.number,
               "name": payer, "fees": _fees(invoice), "day": _day, **composed.context}
    email = EmailMessage()
    email["Subject"] = composed.subject
    email["From"] = config["MAIL_FROM"]
    email["To"] = payload["to"]
    email["Date"] = formatdate(localtime=False)
    domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    email["Message-ID"] = f"<{message_id}@{domain}>"
    email.set_content(render_template(f"email/{composed.template}.txt", **context))
    email.add_alternative(render_template(f"email/{composed.template}.html", **context), subtype="html")
    for filename, data in composed.attachments:
        email.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return email


@outbox.handles_message(INVOICE_ISSUED, RECEIPT, REFUND_MADE, CREDIT_NOTE, REMINDER)
def deliver_email(message: Claimed) -> None:
    email = build(message.id, message.topic, message.payload)
    db.session.commit()  # a payment link made for it is kept; nothing is held while sending
    send(email)

"""Messages on the staff pages: an invoice's emails and events with their delivery state and
a resend button (on the invoice page), the failed ones across all invoices, and the
per-invoice switch for payment reminders."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField

from .. import invoicing, messages
from ..errors import DomainProblem
from ..extensions import db
from ..messages.reminders import switch_reminders
from ..models import Invoice, OutboxMessage
from ..states import OutboxStatus
from . import bp, can, requires
from .invoices import actor, at_clinic

# How staff read each topic.
TOPIC_NAMES = {
    messages.INVOICE_ISSUED: "Email: invoice", messages.RECEIPT: "Email: receipt", messages.REFUND_MADE: "Email: refund",
    messages.CREDIT_NOTE: "Email: credit note", messages.REMINDER: "Email: reminder",
    **{event: f"Event: {event}" for event in messages.EVENT_TYPES},
}
PAGE = 100


class ResendForm(FlaskForm):
    back = HiddenField()  # "list" to come back to the failed messages; the invoice page otherwise


class RemindersForm(FlaskForm):
    pass


def message_rows(rows: list[OutboxMessage]) -> list[dict]:
    return [{**messages.message_json(m), "what": TOPIC_NAMES.get(m.topic, m.topic),
             "created": at_clinic(m.created_at), "sent": at_clinic(m.sent_at) if m.sent_at else None,
             "can_resend": m.status != OutboxStatus.PENDING} for m in rows]


def invoice_messages(inv: Invoice) -> list[dict]:
    """For the invoice page."""
    return message_rows(messages.messages_of(inv))


@bp.get("/messages")
@requires("viewer")
def failed_messages():
    rows = list(db.session.execute(
        select(OutboxMessage, Invoice.id, Invoice.number).outerjoin(Invoice, Invoice.seq == OutboxMessage.invoice_seq)
        .where(OutboxMessage.status == OutboxStatus.FAILED, OutboxMessage.kind.in_(messages.SHOWN_KINDS))
        .order_by(OutboxMessage.seq.desc()).limit(PAGE)))
    shown = message_rows([m for m, _, _ in rows])
    for row, (_, invoice_id, number) in zip(shown, rows):
        row["invoice_id"], row["invoice_number"] = invoice_id, (number or "(draft)") if invoice_id else None
    return render_template("messages.html", rows=shown, form=ResendForm(), total=messages.failed_count(), can=can)


@bp.post("/messages/<message_id>/resend")
@requires("finance")
def resend_message(message_id: str):
    form = ResendForm()
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id))
    invoice = db.session.get(Invoice, message.invoice_seq) if message is not None and message.invoice_seq else None
    back = (url_for("web.failed_messages") if form.back.data == "list" or invoice is None
            else url_for("web.invoice", invoice_id=invoice.id) + "#messages")
    if not form.validate_on_submit():
        flash("The form had expired; please try again.", "error")
        return redirect(back, code=303)
    try:
        messages.resend(message_id)
    except DomainProblem as error:
        flash(error.for_people(), "error")
    else:
        flash("The message is queued again; the worker sends it within a few seconds.")
    return redirect(back, code=303)


@bp.post("/invoices/<invoice_id>/reminders")
@requires("finance")
def reminders_switch(invoice_id: str):
    invoicing.get_invoice(invoice_id)  # 404 for an unknown invoice
    if RemindersForm().validate_on_submit():
        on = request.form.get("reminders") == "on"
        switch_reminders(invoice_id, actor(), on=on)
        flash("Payment reminders are on for this invoice." if on else "No payment reminders will be sent for this invoice.")
    return redirect(url_for("web.invoice", invoice_id=invoice_id), code=303)

"""Payment reminders, queued by `flask --app wsgi billing send-reminders` (daily, from cron or a
systemd timer): 3 days before an invoice's due date, on it, and 7 and 21 days after.

Each step is one outbox row with a unique `once_key` (reminder:<invoice>:<step>), inserted
with ON CONFLICT DO NOTHING, so running the command twice, or on two machines at once, queues
each step once. A run that was missed catches up with the latest step only (never a burst of
old ones), at most a week late. Whether a reminder still applies is checked when it is queued
and again when it is sent (billing/messages/email.py)."""

from __future__ import annotations

from datetime import date, timedelta

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..ids import new_id
from ..models import Invoice, OutboxMessage, utcnow
from ..states import InvoiceStatus, OutboxStatus
from . import EMAIL, REMINDER, recipient

STEPS = (-3, 0, 7, 21)  # days after the due date
CATCH_UP_DAYS = 6       # how late a missed step may still go out (less than the gap between steps)
BATCH = 500


def why_not(invoice: Invoice) -> str | None:
    """Why this invoice gets no reminder now; None when it does."""
    if invoice.status != InvoiceStatus.OPEN:
        return f"The invoice is {invoice.status}; reminders are for open invoices."
    if invoice.amount_due <= 0:
        return "Nothing is due on the invoice."
    if invoice.reminders_off:
        return "Staff turned reminders off for this invoice."
    return None


def switch_reminders(invoice_id: str, actor: str, *, on: bool) -> Invoice:
    """Staff's per-invoice switch; audited like every other change to an invoice."""
    from ..invoicing import invoice_change

    with invoice_change(invoice_id, actor, "reminders_turned_on" if on else "reminders_turned_off") as change:
        if change.invoice.reminders_off == (not on):
            change.unchanged()
        change.invoice.reminders_off = not on
    return change.invoice


def step_on(due_date: date, on: date) -> int | None:
    """The reminder step an invoice due on `due_date` has reached on `on`, if one is due."""
    reached = [step for step in STEPS if due_date + timedelta(days=step) <= on]
    if not reached or on - (due_date + timedelta(days=reached[-1])) > timedelta(days=CATCH_UP_DAYS):
        return None
    return reached[-1]


def _insert_once(values: dict) -> bool:
    table = OutboxMessage.__table__
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    inserted = db.session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=["once_key"])
                                  .returning(table.c.seq)).first()
    return inserted is not None


def queue_reminders(on: date) -> int:
    """Queue the reminders due on `on`; returns how many were newly queued."""
    if not current_app.config["SMTP_URL"]:
        return 0
    query = (select(Invoice).where(Invoice.status == InvoiceStatus.OPEN, Invoice.reminders_off.is_(False),
                                   Invoice.due_date >= on - timedelta(days=STEPS[-1] + CATCH_UP_DAYS),
                                   Invoice.due_date <= on - timedelta(days=STEPS[0]),
                                   Invoice.total > Invoice.amount_paid + Invoice.credit_applied)
             .order_by(Invoice.seq))
    queued = 0
    last_seq = 0
    while True:
        invoices = list(db.session.scalars(query.where(Invoice.seq > last_seq).limit(BATCH)))
        if not invoices:
            break
        for invoice in invoices:
            step, to = step_on(invoice.due_date, on), recipient(invoice)
            if step is None or to is None or why_not(invoice):
                continue
            now = utcnow()
            queued += _insert_once({
                "id": new_id("msg"), "kind": EMAIL, "topic": REMINDER, "once_key": f"reminder:{invoice.id}:{step}",
                "invoice_seq": invoice.seq, "status": OutboxStatus.PENDING, "attempts": 0, "available_at": now,
                "created_at": now,
                "payload": {"to": to, "invoice_id": invoice.id, "step": step, "due_date": invoice.due_date.isoformat()},
            })
        db.session.commit()
        last_seq = invoices[-1].seq
    return queued


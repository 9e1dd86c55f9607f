"""Payment reminders: 3 days before the due date, on it, 7 and 21 days after; each once per
invoice however often `billing send-reminders` runs; never for an invoice that is paid, void,
written off or credited to nothing, checked when queued and again when sent."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from billing import outbox
from billing.extensions import db
from billing.messages.reminders import queue_reminders, step_on
from billing.models import Invoice, OutboxMessage
from tests.factories import invoice_body, price_list_document


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def issued(api, **changes) -> dict:
    draft = api.post("/api/v1/invoices", json=invoice_body(**changes)).get_json()
    return api.post(f"/api/v1/invoices/{draft['id']}/finalize").get_json()


def due_date_of(invoice: dict) -> date:
    return date.fromisoformat(invoice["due_date"])


def run_on(app, day: date) -> int:
    with app.app_context():
        queued = queue_reminders(day)
        db.session.remove()
        return queued


def deliver(app) -> None:
    with app.app_context():
        outbox.deliver_due()
        db.session.remove()


def reminders(app) -> list[tuple[str, str, int]]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "email.reminder")
                                  .order_by(OutboxMessage.seq))
        found = [(m.payload["invoice_id"], m.status, m.payload["step"]) for m in rows]
        db.session.remove()
        return found


@pytest.mark.parametrize("days, step", [(-4, None), (-3, -3), (-1, -3), (0, 0), (6, 0), (7, 7), (13, 7), (14, None), (20, None),
                                        (21, 21), (27, 21), (28, None), (100, None)])
def test_the_step_an_invoice_has_reached(days, step):
    due = date(2026, 12, 11)
    assert step_on(due, due + timedelta(days=days)) == step


def test_each_step_is_sent_once_on_its_day_however_often_the_command_runs(app, api, mail):
    invoice = issued(api)
    due = due_date_of(invoice)
    deliver(app)
    mail.wait_for(1)  # the invoice itself
    sent_on = {}
    for offset in range(-5, 30):
        day = due + timedelta(days=offset)
        for _ in range(2):  # twice a day: the second run queues nothing
            run_on(app, day)
        deliver(app)
        if len(mail.messages) > 1 + len(sent_on):
            sent_on[offset] = mail.messages[-1]["Subject"]
    number = invoice["number"]
    assert sent_on == {-3: f"Reminder: invoice {number} is due on {due.day} {due:%B %Y}",
                       0: f"Reminder: invoice {number} is due today",
                       7: f"Invoice {number} is overdue", 21: f"Invoice {number} is overdue"}
    assert [(s, step) for _, s, step in reminders(app)] == [("sent", -3), ("sent", 0), ("sent", 7), ("sent", 21)]
    overdue = mail.messages[-1]
    text = overdue.get_body(preferencelist=("plain",)).get_content()
    assert f"Invoice {number} was due on {due.day} {due:%B %Y} and has not been paid in full yet." in text
    assert "To pay: £2,030.00" in text


def test_two_machines_running_it_at_once_queue_each_reminder_once(app, api, mail):
    from concurrent.futures import ThreadPoolExecutor

    invoices = [issued(api) for _ in range(5)]
    day = due_date_of(invoices[0])
    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(lambda _: run_on(app, day), range(4)))
    assert sum(counts) == 5
    assert sorted(i for i, _, _ in reminders(app)) == sorted(i["id"] for i in invoices)


def test_no_reminder_for_paid_void_written_off_credited_or_switched_off_invoices(app, api, mail):
    paid, void, written_off, credited, switched_off, part_paid = (issued(api) for _ in range(6))
    api.post(f"/api/v1/invoices/{paid['id']}/payments", json={"amount": 203000, "method": "cash"})
    api.post(f"/api/v1/invoices/{void['id']}/void")
    api.post(f"/api/v1/invoices/{written_off['id']}/mark-uncollectible")
    assert api.post(f"/api/v1/invoices/{credited['id']}/credit-notes", json={
        "reason": "order_change", "lines": [{"category": "immunoglobulin_product", "amount": 168000},
                                            {"category": "infusion_service", "amount": 35000}]}).status_code == 201
    api.post(f"/api/v1/invoices/{part_paid['id']}/payments", json={"amount": 3000, "method": "cash"})
    with app.app_context():
        db.session.scalar(select(Invoice).where(Invoice.id == switched_off["id"])).reminders_off = True
        db.session.commit()
    assert run_on(app, due_date_of(paid)) == 1
    assert [i for i, _, _ in reminders(app)] == [part_paid["id"]]


def test_an_invoice_paid_after_its_reminder_was_queued_gets_none(app, api, mail):
    invoice = issued(api)
    deliver(app)
    mail.wait_for(1)
    assert run_on(app, due_date_of(invoice)) == 1
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 203000, "method": "cash"})
    deliver(app)
    subjects = [m["Subject"] for m in mail.wait_for(2)]
    assert subjects == [f"Invoice {invoice['number']} from Riverside Clinic",
                        f"Payment received for invoice {invoice['number']}"]
    [(_, status, _)] = reminders(app)
    assert status == "skipped"
    listed = api.get(f"/api/v1/invoices/{invoice['id']}/messages").get_json()["data"]
    skipped = [m for m in listed if m["topic"] == "email.reminder"][0]
    assert skipped["last_error"] == "The invoice is paid; reminders are for open invoices."


def test_the_command_queues_and_says_how_many(app, api, mail):
    invoice = issued(api)
    runner = app.test_cli_runner()
    day = due_date_of(invoice).isoformat()
    first = runner.invoke(args=["billing", "send-reminders", "--on", day])
    second = runner.invoke(args=["billing", "send-reminders", "--on", day])
    assert first.output == f"Queued 1 reminders for {day}; the worker sends them.\n"
    assert second.output == f"Queued 0 reminders for {day}; the worker sends them.\n"


def test_without_smtp_the_command_queues_nothing_and_says_why(app, api):
    issued(api)
    result = app.test_cli_runner().invoke(args=["billing", "send-reminders"])
    assert result.output == "SMTP_URL is not set: reminders are emails, so none were queued.\n"
    assert reminders(app) == []

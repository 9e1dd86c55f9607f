"""`flask --app wsgi billing …`: users, API keys and the demo price list."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from . import access
from .extensions import db
from .models import PriceListVersion, User
from .states import InvoiceStatus

billing_cli = AppGroup("billing", help="Infusion Billing administration.")

DEMO_USER = "admin@clinic.example"
DEMO_PASSWORD = "demo-admin-password"

DEMO_PRICE_LIST = {
    "effective_from": "2026-01-01",
    "currency": "GBP",
    "statement": "Other fertility investigations, treatment or preservation services for either "
    "partner are not included in this charge.",
    "products": [
        {"code": "IVIG10-5-10-20", "name": "Human normal immunoglobulin 10%", "pricing": "per_vial",
         "gram_amount": None,
         "vials": [{"grams": "5", "unit_amount": 30000}, {"grams": "10", "unit_amount": 56000},
                   {"grams": "20", "unit_amount": 112000}]},
        {"code": "IVIG10-PER-GRAM", "name": "Human normal immunoglobulin 10%", "pricing": "per_gram",
         "gram_amount": 5500,
         "vials": [{"grams": "2.5", "unit_amount": None}, {"grams": "5", "unit_amount": None},
                   {"grams": "10", "unit_amount": None}]},
    ],
    "infusion_service": {"tiers": [{"up_to_minutes": 120, "amount": 25000},
                                   {"up_to_minutes": 240, "amount": 35000}],
                         "extra_per_30_minutes": 5000},
    "tax": {"immunoglobulin_product": {"rate": "0", "label": "Exempt"},
            "infusion_service": {"rate": "0", "label": "Exempt"}},
    "cancellation": {"charge_prepared_product": True},
}


@billing_cli.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice(access.ROLES), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_user(email: str, role: str, password: str) -> None:
    """Add a member of staff who signs in to the web pages."""
    try:
        user = access.create_user(email, role, password)
    except access.AccessError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.role} {user.email} ({user.id}).")


@billing_cli.command("set-password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password(email: str, password: str) -> None:
    """Give a member of staff a new password; their sessions end at once."""
    try:
        user = access.set_password(email, password)
    except access.AccessError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"New password set for {user.email}; their sessions have ended.")


@billing_cli.command("create-api-key")
@click.argument("name")
def create_api_key(name: str) -> None:
    """Create an API key; the key itself is shown once, on the last line."""
    try:
        issued = access.create_api_key(name)
    except access.AccessError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created API key {issued.id} ({issued.name}). Store it now; it is not shown again:")
    click.echo(issued.secret)


@billing_cli.command("revoke-api-key")
@click.argument("key_id")
def revoke_api_key(key_id: str) -> None:
    """Revoke an API key by its id (key_…); requests with it are refused from now on."""
    try:
        key = access.revoke_api_key(key_id)
    except access.AccessError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Revoked {key.id} ({key.name}).")


@billing_cli.command("seed-demo")
def seed_demo() -> None:
    """Load the contract's example price list and a demo admin, unless there are some already."""
    from .price_lists import create_price_list

    if db.session.scalar(select(PriceListVersion.id).limit(1)) is None:
        row = create_price_list(DEMO_PRICE_LIST, "cli:seed-demo")
        click.echo(f"Loaded the demo price list {row.id} (version {row.version}).")
    else:
        click.echo("A price list exists already; left as it is.")
    if db.session.scalar(select(User.id).limit(1)) is None:
        access.create_user(DEMO_USER, "admin", DEMO_PASSWORD)
        click.echo(f"Created the demo admin {DEMO_USER}.")


_TEST_EVENT_TYPES = ("infusion.booked", "infusion.updated", "infusion.completed", "infusion.cancelled")


@billing_cli.command("send-test-event")
@click.argument("event_type", type=click.Choice(_TEST_EVENT_TYPES))
@click.option("--url", default=None, help="Where the service runs (default http://127.0.0.1:$PORT).")
@click.option("--booking-id", default="bk_demo_1", show_default=True)
@click.option("--product-prepared", is_flag=True, help="For infusion.cancelled: the vials were opened.")
def send_test_event(event_type: str, url: str | None, booking_id: str, product_prepared: bool) -> None:
    """Send a signed sample booking event to a running service, as the booking system would."""
    import json
    import os
    import time
    import urllib.error
    import urllib.request

    from .ids import new_id
    from .webhooks import sign

    secrets = current_app.config["BOOKING_WEBHOOK_SECRETS"]
    if not secrets:
        raise click.ClickException("Set BOOKING_WEBHOOK_SECRET (the same value the service runs with).")
    data = {
        "booking_id": booking_id,
        "patient": {"id": "pt_demo", "name": "Demo Patient", "email": "patient@example.org"},
        "product_code": "IVIG10-5-10-20",
        "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
        "duration_minutes": 180,
        "service_date": time.strftime("%Y-%m-%d"),
        "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}],
    }
    if event_type == "infusion.completed":
        data["vials_dispensed"] = [{"grams": "20", "count": 1}, {"grams": "10", "count": 1}]
    if event_type == "infusion.cancelled":
        data["product_prepared"] = product_prepared
    body = json.dumps({"id": new_id("evt"), "type": event_type, "created": int(time.time()), "data": data}).encode()
    target = (url or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}").rstrip("/") + "/api/v1/webhooks/booking"
    request = urllib.request.Request(target, data=body, method="POST", headers={
        "Content-Type": "application/json", "Booking-Signature": sign(secrets[0], body)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            click.echo(f"{response.status} {response.read().decode()}")
    except urllib.error.HTTPError as error:
        click.echo(f"{error.code} {error.read().decode()}")
        raise SystemExit(1) from None
    except urllib.error.URLError as error:
        raise click.ClickException(f"Could not reach {target}: {error.reason}") from None


@billing_cli.command("demo-invoice")
def demo_invoice() -> None:
    """Issue an invoice for a demo patient (or reuse an open one) and print a new payment link."""
    from . import invoicing, payment_links
    from .models import Invoice
    from .payments import public_base_url
    from .pricing.documents import request_from_json

    invoice = db.session.scalar(select(Invoice).where(Invoice.patient_id == "pt_demo",
                                                      Invoice.status == InvoiceStatus.OPEN)
                                .order_by(Invoice.seq.desc()).limit(1))
    if invoice is None:
        request = request_from_json({
            "product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
            "duration_minutes": 180, "service_date": invoicing.today_at_clinic().isoformat(),
            "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}],
        })
        draft = invoicing.create_invoice(request, {"id": "pt_demo", "name": "Demo Patient", "email": "demo.patient@example.org"},
                                        "cli:demo-invoice")
        invoice = invoicing.finalize_invoice(draft.id, "cli:demo-invoice")
    url, _ = payment_links.create_payment_link(invoice.id, "cli:demo-invoice", public_base_url())
    click.echo(f"Invoice {invoice.number} ({invoice.id}), {invoice.amount_due} pence due. Pay it at:")
    click.echo(url)


@billing_cli.command("worker")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between looks at the outbox when it is empty.")
def worker(poll: float) -> None:
    """Deliver the outbox until stopped (SIGTERM or Ctrl-C finish the message in hand first)."""
    import signal
    import threading

    from .outbox import run_worker

    stop = threading.Event()

    def _stop(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo("Outbox worker started; SIGTERM or Ctrl-C stops it.")
    run_worker(stop, poll_seconds=poll)
    click.echo("Outbox worker stopped.")


@billing_cli.command("send-reminders")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day to send for (YYYY-MM-DD); today at the clinic by default.")
def send_reminders(on) -> None:
    """Queue payment reminders: 3 days before the due date, on it, 7 and 21 days after. Run it
    daily (cron or a systemd timer); running it twice, or on two machines, queues each once."""
    from .clock import today_at_clinic
    from .messages.reminders import queue_reminders

    day = on.date() if on else today_at_clinic()
    if not current_app.config["SMTP_URL"]:
        click.echo("SMTP_URL is not set: reminders are emails, so none were queued.")
        return
    click.echo(f"Queued {queue_reminders(day)} reminders for {day.isoformat()}; the worker sends them.")


@billing_cli.command("purge")
@click.option("--idempotency-days", default=7, show_default=True, type=click.IntRange(1, 3650),
              help="Keep Idempotency-Key answers this long (retries come within minutes).")
@click.option("--outbox-days", default=90, show_default=True, type=click.IntRange(30, 3650),
              help="Keep sent and skipped messages this long (at least 30 days: a reminder's or a Stripe "
                   "refund's row is what stops it being queued twice).")
def purge(idempotency_days: int, outbox_days: int) -> None:
    """Delete housekeeping rows that are no longer needed; run it daily (cron or a scheduler)."""
    from datetime import timedelta

    from sqlalchemy import delete

    from .models import IdempotencyKey, OutboxMessage, StaffSession, utcnow
    from .states import OutboxStatus
    from .staff_sessions import purge_attempts

    keys = db.session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at < utcnow() - timedelta(days=idempotency_days))).rowcount
    sessions = db.session.execute(delete(StaffSession).where(StaffSession.created_at < utcnow() - timedelta(days=30))
                                  ).rowcount
    messages = db.session.execute(delete(OutboxMessage).where(
        OutboxMessage.status.in_((OutboxStatus.SENT, OutboxStatus.SKIPPED)),
        OutboxMessage.created_at < utcnow() - timedelta(days=outbox_days))).rowcount
    db.session.commit()
    failures = purge_attempts(utcnow() - timedelta(hours=1))
    click.echo(f"Deleted {keys} idempotency keys, {sessions} old staff sessions, {failures} old sign-in counts "
               f"and {messages} delivered messages.")

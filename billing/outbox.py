"""The outbox: what must be told to the outside world after a change, delivered after commit.

`enqueue` writes a row in the caller's transaction, so a change never commits without its
message and a message is never sent for a change that rolled back. The worker
(`flask --app wsgi billing worker`) claims due rows one at a time — `FOR UPDATE SKIP LOCKED`
on PostgreSQL, then a conditional UPDATE that moves the row's `available_at` forward by a
lease, so two workers (or a worker and a test) never deliver one message at the same time —
calls the topic's handler holding no lock, and records the result in its own short
transaction: `sent`, or retried on OUTBOX_RETRY_SECONDS and then `failed`. Delivery is at
least once; handlers are idempotent (Stripe calls carry idempotency keys).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from flask import current_app
from sqlalchemy import select, update

from .extensions import db
from .ids import new_id
from .models import OutboxMessage, utcnow
from .outage import discard_session
from .states import OutboxStatus

log = logging.getLogger("billing.outbox")

LEASE_SECONDS = 120  # longer than any one delivery may take (Stripe calls time out well before)
DEFAULT_RETRY_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000)

Handler = Callable[[dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}


def handles(topic: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[topic] = handler
        return handler
    return register


def enqueue(kind: str, topic: str, payload: dict[str, Any], *, invoice_seq: int | None = None,
            once_key: str | None = None) -> OutboxMessage:
    """Add a message to the current transaction (the caller commits it with its change).
    A `once_key` makes it unique: check `queued(once_key)` first, under the caller's lock."""
    message = OutboxMessage(id=new_id("msg"), kind=kind, topic=topic, payload=payload, invoice_seq=invoice_seq,
                            once_key=once_key, status=OutboxStatus.PENDING, attempts=0, available_at=utcnow())
    db.session.add(message)
    return message


def queued(once_key: str) -> bool:
    """Whether the message with this `once_key` was ever queued."""
    return db.session.scalar(select(OutboxMessage.seq).where(OutboxMessage.once_key == once_key)) is not None


@dataclass(frozen=True)
class Claimed:
    id: str
    seq: int
    topic: str
    payload: dict[str, Any]
    attempts: int  # including this one


def retry_schedule() -> tuple[int, ...]:
    return tuple(current_app.config.get("OUTBOX_RETRY_SECONDS") or DEFAULT_RETRY_SECONDS)


def claim_next(now: datetime | None = None) -> Claimed | None:
    """Take the oldest due message for this worker, in its own short transaction."""
    now = now or utcnow()
    query = (select(OutboxMessage.seq).where(OutboxMessage.status == OutboxStatus.PENDING,
                                             OutboxMessage.available_at <= now)
             .order_by(OutboxMessage.available_at, OutboxMessage.seq).limit(5))
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    try:
        for seq in list(db.session.scalars(query)):
            row = db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.seq == seq, OutboxMessage.status == OutboxStatus.PENDING,
                       OutboxMessage.available_at <= now)
                .values(available_at=now + timedelta(seconds=LEASE_SECONDS), attempts=OutboxMessage.attempts + 1)
                .returning(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload, OutboxMessage.attempts)
            ).first()
            if row is not None:
                db.session.commit()
                return Claimed(row.id, seq, row.topic, row.payload, row.attempts)
        db.session.commit()
        return None
    except BaseException:
        db.session.rollback()
        raise


def deliver(message: Claimed) -> bool:
    """Run the message's handler and record the result; True when it was delivered."""
    handler = HANDLERS.get(message.topic)
    error: str | None = None
    try:
        if handler is None:
            raise LookupError(f"no handler for {message.topic}")
        handler(message.payload)
    except Exception as exc:  # any failure is recorded and retried; the worker carries on
        discard_session()  # a rollback on a connection that died can itself raise
        error = f"{type(exc).__name__}: {exc}"[:1000]
    _record(message, error)
    log.info("outbox delivery", extra={"fields": {"message_id": message.id, "topic": message.topic,
                                                  "attempt": message.attempts,
                                                  "outcome": "sent" if error is None else "retry"}})
    return error is None


def _record(message: Claimed, error: str | None) -> None:
    now = utcnow()
    if error is None:
        values: dict[str, Any] = {"status": OutboxStatus.SENT, "sent_at": now, "last_error": None}
    else:
        schedule = retry_schedule()
        if message.attempts > len(schedule):
            values = {"status": OutboxStatus.FAILED, "last_error": error}
        else:
            values = {"available_at": now + timedelta(seconds=schedule[message.attempts - 1]), "last_error": error}
    db.session.execute(update(OutboxMessage).where(OutboxMessage.seq == message.seq,
                                                   OutboxMessage.attempts == message.attempts).values(**values))
    db.session.commit()


def deliver_due(limit: int = 100, now: datetime | None = None) -> int:
    """Deliver what is due now, up to `limit` messages; returns how many were tried."""
    tried = 0
    while tried < limit:
        message = claim_next(now)
        if message is None:
            break
        deliver(message)
        tried += 1
    return tried


def run_worker(stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
    """Deliver until `stop` is set. A message being delivered is finished first; nothing else
    is held, so stopping releases everything at once."""
    while not stop.is_set():
        try:
            tried = deliver_due(limit=50)
        except Exception as exc:  # the database went away: wait and carry on, no restart needed
            discard_session()
            log.warning("outbox worker: %s", type(exc).__name__)
            tried = 0
        if not tried:
            stop.wait(poll_seconds)


def messages_for_invoice(invoice_seq: int) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.invoice_seq == invoice_seq)
                                   .order_by(OutboxMessage.seq)))

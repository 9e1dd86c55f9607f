"""The outbox: what must be told to the outside world after a change, delivered after commit.

`enqueue` writes a row in the caller's transaction, so a change never commits without its
message and a message is never sent for a change that rolled back. The worker
(`flask --app wsgi billing worker`) claims due rows a few at a time with one UPDATE that moves
their `available_at` forward by a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so two
workers (or a worker and a test) never deliver one message at the same time; it calls each
topic's handler holding no lock, and records the results in one short transaction: `sent`,
`skipped`, or retried on OUTBOX_RETRY_SECONDS and then `failed`. Delivery is at
least once; handlers are idempotent (Stripe calls carry idempotency keys).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from flask import current_app
from sqlalchemy import insert, select, update

from .extensions import db
from .ids import new_id
from .models import OutboxMessage, utcnow
from .outage import discard_session
from .states import OutboxStatus

log = logging.getLogger("billing.outbox")

WORKER = "worker"  # the actor in an invoice's audit trail for what the worker does (payment links, Stripe)
LEASE_SECONDS = 120  # longer than any one delivery may take (Stripe calls time out well before)
DEFAULT_RETRY_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000)

Handler = Callable[[dict[str, Any]], None]
HANDLERS: dict[str, Callable[["Claimed"], None]] = {}


def handles(topic: str) -> Callable[[Handler], Handler]:
    """Register the handler of a topic; it gets the message's payload."""
    def register(handler: Handler) -> Handler:
        HANDLERS[topic] = lambda message: handler(message.payload)
        return handler
    return register


def handles_message(*topics: str) -> Callable[[Callable[["Claimed"], None]], Callable[["Claimed"], None]]:
    """Register a handler that needs the whole message (its id: an email's Message-ID, an event's webhook-id)."""
    def register(handler: Callable[["Claimed"], None]) -> Callable[["Claimed"], None]:
        for topic in topics:
            HANDLERS[topic] = handler
        return handler
    return register


class Skip(Exception):
    """Raised by a handler when its message no longer applies (a reminder for an invoice paid
    since): recorded as `skipped` with the reason, never retried."""


def message_row(kind: str, topic: str, payload: dict[str, Any], *, invoice_seq: int | None = None,
                once_key: str | None = None) -> dict[str, Any]:
    now = utcnow()
    return {"id": new_id("msg"), "kind": kind, "topic": topic, "payload": payload, "invoice_seq": invoice_seq,
            "once_key": once_key, "status": OutboxStatus.PENDING, "attempts": 0, "available_at": now,
            "created_at": now}


def enqueue_rows(rows: list[dict[str, Any]]) -> None:
    """Write messages (`message_row`s) in the caller's transaction, now, in one statement (a plain
    INSERT costs a fraction of the ORM's flush, on a path every change takes), so they are
    written before a finalize locks the counter row."""
    if rows:
        with db.session.no_autoflush:  # the change's own rows are written with it, at commit: one UPDATE, not two
            db.session.execute(insert(OutboxMessage.__table__), rows)


def enqueue(kind: str, topic: str, payload: dict[str, Any], *, invoice_seq: int | None = None,
            once_key: str | None = None) -> str:
    """Add a message to the current transaction (the caller commits it with its change); its id.
    A `once_key` makes it unique: check `queued(once_key)` first, under the caller's lock."""
    row = message_row(kind, topic, payload, invoice_seq=invoice_seq, once_key=once_key)
    enqueue_rows([row])
    return row["id"]


def queued(once_key: str) -> bool:
    """Whether the message with this `once_key` was ever queued."""
    return db.session.scalar(select(OutboxMessage.seq).where(OutboxMessage.once_key == once_key)) is not None


@dataclass(frozen=True)
class Claimed:
    id: str
    seq: int
    kind: str
    topic: str
    payload: dict[str, Any]
    attempts: int  # including this one


def retry_schedule() -> tuple[int, ...]:
    return tuple(current_app.config.get("OUTBOX_RETRY_SECONDS") or DEFAULT_RETRY_SECONDS)


BATCH = 10  # messages one claim takes; their outcomes are recorded together too


def claim(now: datetime | None = None, limit: int = BATCH) -> list[Claimed]:
    """Take up to `limit` of the oldest due messages for this worker: one UPDATE … WHERE seq IN
    (the oldest due, FOR UPDATE SKIP LOCKED) … RETURNING that moves them forward by a lease,
    committed at once. On PostgreSQL rows another worker is claiming are skipped, not waited
    for; on SQLite the statement takes the write lock before it reads, so two workers queue
    for it instead of failing on a stale read."""
    now = now or utcnow()
    oldest_due = (select(OutboxMessage.seq)
                  .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.available_at <= now)
                  .order_by(OutboxMessage.available_at, OutboxMessage.seq).limit(limit)
                  .with_for_update(skip_locked=True))
    try:
        rows = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.seq.in_(oldest_due))
            .values(available_at=now + timedelta(seconds=LEASE_SECONDS), attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.seq, OutboxMessage.id, OutboxMessage.kind, OutboxMessage.topic,
                       OutboxMessage.payload, OutboxMessage.attempts)
            .execution_options(synchronize_session=False)
        ).all()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return sorted((Claimed(r.id, r.seq, r.kind, r.topic, r.payload, r.attempts) for r in rows), key=lambda m: m.seq)


def claim_next(now: datetime | None = None) -> Claimed | None:
    """Take the oldest due message (see `claim`)."""
    taken = claim(now, 1)
    return taken[0] if taken else None


@dataclass(frozen=True)
class Outcome:
    message: Claimed
    status: str  # sent, skipped, retry or failed
    error: str | None


def attempt(message: Claimed) -> Outcome:
    """Run the message's handler, holding no lock, and log the attempt (one JSON line, ids only;
    an error's text may name an address, so it is stored, not logged)."""
    handler = HANDLERS.get(message.topic)
    error: str | None = None
    skipped = False
    started = time.perf_counter()
    try:
        if handler is None:
            raise LookupError(f"no handler for {message.topic}")
        handler(message)
    except Skip as reason:
        discard_session()
        skipped, error = True, str(reason)[:1000]
    except Exception as exc:  # any failure is recorded and retried; the worker carries on
        discard_session()  # a rollback on a connection that died can itself raise
        error = f"{type(exc).__name__}: {exc}"[:1000]
    if error is None:
        status = OutboxStatus.SENT
    elif skipped:
        status = OutboxStatus.SKIPPED
    else:
        status = OutboxStatus.FAILED if message.attempts > len(retry_schedule()) else "retry"
    log.info("outbox delivery", extra={"fields": {
        "message_id": message.id, "topic": message.topic, "attempt": message.attempts, "outcome": status,
        "ms": round((time.perf_counter() - started) * 1000, 1)}})
    return Outcome(message, status, error)


def record(outcomes: list[Outcome]) -> None:
    """Store what happened to each message, in one short transaction. The attempts guard keeps
    a worker whose lease ran out from overwriting a newer attempt's outcome."""
    now = utcnow()
    schedule = retry_schedule()
    for outcome in outcomes:
        message = outcome.message
        values: dict[str, Any]
        if outcome.status == OutboxStatus.SENT:
            values = {"status": OutboxStatus.SENT, "sent_at": now, "last_error": None}
        elif outcome.status == "retry":
            values = {"available_at": now + timedelta(seconds=schedule[message.attempts - 1]),
                      "last_error": outcome.error}
        else:
            values = {"status": outcome.status, "last_error": outcome.error}
        db.session.execute(update(OutboxMessage).where(OutboxMessage.seq == message.seq,
                                                       OutboxMessage.attempts == message.attempts).values(**values))
    db.session.commit()


def release(messages: list[Claimed]) -> None:
    """Give back claimed messages not attempted (the worker is stopping): due again at once."""
    for message in messages:
        db.session.execute(update(OutboxMessage).where(OutboxMessage.seq == message.seq,
                                                       OutboxMessage.attempts == message.attempts)
                           .values(available_at=utcnow(), attempts=OutboxMessage.attempts - 1))
    db.session.commit()


def deliver(message: Claimed) -> bool:
    """Attempt one message and record the outcome; True when it was delivered."""
    outcome = attempt(message)
    record([outcome])
    return outcome.status == OutboxStatus.SENT


def deliver_due(limit: int = 100, now: datetime | None = None, stop: threading.Event | None = None) -> int:
    """Deliver what is due now, up to `limit` messages, a batch at a time; returns how many were
    tried. With `stop` set mid-batch, the message in hand is finished and the rest released."""
    tried = 0
    while tried < limit and not (stop and stop.is_set()):
        batch = claim(now, min(BATCH, limit - tried))
        if not batch:
            break
        outcomes: list[Outcome] = []
        try:
            for message in batch:
                if stop is not None and stop.is_set():
                    break
                outcomes.append(attempt(message))
        finally:
            record(outcomes)
            if len(outcomes) < len(batch):
                release(batch[len(outcomes):])
        tried += len(outcomes)
    return tried


def run_worker(stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
    """Deliver until `stop` is set: the message in hand is finished, what else was claimed is
    released, so stopping holds nothing back."""
    while not stop.is_set():
        try:
            tried = deliver_due(limit=50, stop=stop)
        except Exception as exc:  # the database went away: wait and carry on, no restart needed
            discard_session()
            log.warning("outbox worker: %s", type(exc).__name__)
            tried = 0
        if not tried:
            stop.wait(poll_seconds)


def messages_for_invoice(invoice_seq: int) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.invoice_seq == invoice_seq)
                                   .order_by(OutboxMessage.seq)))

"""Idempotency-Key records: a POST's key, a hash of the request, and the answer it got.

The row is added at the start of the request's transaction (its unique index makes a
concurrent duplicate wait for the first to finish) and its answer is written in the same
commit as the change, so a stored key always means the change happened, once, and its answer
is there to replay. A request whose use case commits in steps (a refund through Stripe)
claims its key in a commit of its own first and saves the answer at the end; a retry that
finds the key without an answer runs the use case again, which resumes from its own rows.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import IdempotencyKey


class KeyTaken(Exception):
    """Another request holds this key (committed, or committing now)."""


def find(actor: str, key: str) -> IdempotencyKey | None:
    """The stored key, read afresh; the read transaction is ended, so a poll sees new commits."""
    row = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
                            .execution_options(populate_existing=True))
    db.session.rollback()
    return row


def claim(actor: str, key: str, request_hash: str) -> IdempotencyKey:
    """Add the key to the current transaction; KeyTaken if another request has it."""
    row = IdempotencyKey(actor=actor, key=key, request_hash=request_hash)
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise KeyTaken(key) from None
    return row


def answer(row: IdempotencyKey, status: int, body: str) -> None:
    """The answer, in the current transaction (committed with the change)."""
    row.status, row.body = status, body


def save_answer(actor: str, key: str, status: int, body: str) -> None:
    """The answer of a request whose use case committed in steps, in a commit of its own."""
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
                       .values(status=status, body=body))
    db.session.commit()


def release(actor: str, key: str) -> None:
    """Forget a claimed key that got no answer (its request failed), so a retry starts afresh."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.key == key,
                                                    IdempotencyKey.status.is_(None)))
    db.session.commit()

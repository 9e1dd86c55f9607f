"""One transaction per use case: the outermost `transaction()` commits once, inner ones join it.

A use case opens `transaction()` around its work. Called alone (a staff page, the worker)
it commits on a clean exit and rolls back on an exception. Called inside another
transaction — a booking event applying several invoice changes, an API request whose
Idempotency-Key answer must be stored with the change — it commits nothing and the outer
one decides, so the whole request is one commit and a crash anywhere leaves nothing half done.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, make_transient

from .extensions import db

_DEPTH = "uow_depth"
LOCKED = "uow_locked"  # ids of rows this transaction has locked, so a second lock costs nothing
_INSERTED = "uow_inserted"  # objects written by a plain INSERT in this transaction (inserted_now)


@contextmanager
def transaction() -> Iterator[Any]:
    session = db.session
    info = session.info
    depth = info.get(_DEPTH, 0)
    info[_DEPTH] = depth + 1
    try:
        yield session
        if depth == 0:
            session.commit()
    except BaseException:
        if depth == 0:
            session.rollback()
        raise
    finally:
        info[_DEPTH] = depth


def in_transaction() -> bool:
    """True inside `transaction()`: the caller's outer unit of work will commit."""
    return db.session.info.get(_DEPTH, 0) > 0


def locked(kind: str) -> dict[str, Any]:
    """The `kind` rows locked by the current database transaction, by id."""
    return db.session.info.setdefault(LOCKED, {}).setdefault(kind, {})


def inserted_now(instance: Any) -> None:
    """`instance` was written by a plain INSERT in this transaction and then added to the session
    as persistent: if the transaction rolls back, it leaves the session as an object the ORM
    inserted itself would (transient, its values kept), not as a row that is gone."""
    db.session.info.setdefault(_INSERTED, []).append(instance)


@event.listens_for(Session, "after_rollback")
def _forget_inserted(session: Session) -> None:
    for instance in session.info.pop(_INSERTED, ()):
        make_transient(instance)


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the real transaction ended (commit or rollback): locks are gone
        session.info.pop(LOCKED, None)
        session.info.pop(_INSERTED, None)

"""Staff sign-in: sessions kept on the server, and attempts limited per account and address.

The session cookie holds only a random session id (signed by Flask); the session itself is
a row here. It ends at sign-out, when the user is deactivated or their password or role
changes, after 30 minutes idle, or 10 hours after sign-in — whichever comes first, at once
for every copy of the cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select, update

from .extensions import db
from .models import SignInAttempts, StaffSession, User, utcnow

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=10)
SEEN_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often, not per page

WINDOW = timedelta(minutes=1)
PER_ACCOUNT = 5  # wrong passwords for one account, from anywhere, in a minute
PER_ADDRESS = 30  # from one address, for any accounts: an attack, not colleagues mistyping


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User) -> str:
    """A new session for `user`; returns the id to put in the cookie."""
    token = secrets.token_urlsafe(32)
    db.session.add(StaffSession(token_hash=_hash(token), user_id=user.id))
    db.session.commit()
    return token


def resume(token: str | None, user_id: str) -> User | None:
    """The user of a live session, or None (ended, expired, someone else's, or deactivated)."""
    if not token or len(token) > 100:
        return None
    row = db.session.scalar(select(StaffSession).where(StaffSession.token_hash == _hash(token)))
    now = utcnow()
    if (row is None or row.user_id != user_id or row.ended_at is not None
            or now - row.last_seen_at > IDLE or now - row.created_at > ABSOLUTE):
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at > SEEN_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return user


def end(token: str | None) -> None:
    if token:
        db.session.execute(update(StaffSession).where(StaffSession.token_hash == _hash(token),
                                                      StaffSession.ended_at.is_(None)).values(ended_at=utcnow()))
        db.session.commit()


def end_all(user_id: str) -> None:
    """Every session of a user, in the caller's transaction (deactivated, new password or role)."""
    db.session.execute(update(StaffSession).where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
                       .values(ended_at=utcnow()))


# --- the sign-in limiter ----------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    keys: tuple[str, ...]
    allowed: bool
    retry_after: int  # seconds, when not allowed


def _count(key: str, now: datetime) -> tuple[int, datetime]:
    """Add one attempt to `key`'s current minute in one atomic upsert; (count, window start)."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    fresh = SignInAttempts.window_started_at < now - WINDOW
    statement = insert(SignInAttempts).values(key=key, window_started_at=now, count=1)
    statement = statement.on_conflict_do_update(index_elements=[SignInAttempts.key], set_={
        "count": case((fresh, 1), else_=SignInAttempts.count + 1),
        "window_started_at": case((fresh, now), else_=SignInAttempts.window_started_at),
    }).returning(SignInAttempts.count, SignInAttempts.window_started_at)
    count, started = db.session.execute(statement).one()
    if started.tzinfo is None:  # SQLite hands back naive UTC
        from datetime import timezone

        started = started.replace(tzinfo=timezone.utc)
    return count, started


def attempt(email: str, address: str | None) -> Attempt:
    """Count this sign-in attempt before the password is checked, in atomic upserts, so
    parallel guesses are counted, not raced: past 5 a minute for the account, it is refused;
    then past 30 a minute from the address (for any accounts: spraying), refused too. An
    attempt refused for its account doesn't count against its address, so one account under
    attack doesn't lock colleagues out who sign in from the same address."""
    now = utcnow()
    keys: tuple[str, ...] = ()
    for key, limit in ((f"account:{email.strip().lower()}", PER_ACCOUNT), (f"address:{address or 'unknown'}", PER_ADDRESS)):
        count, started = _count(key, now)
        keys += (key,)
        if count > limit:
            db.session.commit()
            return Attempt(keys, False, int((started + WINDOW - now).total_seconds()) + 1)
    db.session.commit()
    return Attempt(keys, True, 0)


def succeeded(attempt: Attempt) -> None:
    """A right password doesn't count against anyone."""
    db.session.execute(update(SignInAttempts).where(SignInAttempts.key.in_(attempt.keys), SignInAttempts.count > 0)
                       .values(count=SignInAttempts.count - 1))
    db.session.commit()


def purge_attempts(before: datetime) -> int:
    from sqlalchemy import delete

    removed = db.session.execute(delete(SignInAttempts).where(SignInAttempts.window_started_at < before)).rowcount
    db.session.commit()
    return removed

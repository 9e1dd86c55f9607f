"""Who may call: API keys for machines, staff users with argon2 passwords and roles."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select

from .extensions import db
from .ids import new_id
from .models import ApiKey, User, utcnow
from .recent import MISSING, Recent

ROLES = ("admin", "finance", "viewer")
KEY_PREFIX = "ibk_"

_hasher = PasswordHasher()


class AccessError(Exception):
    pass


@dataclass(frozen=True)
class IssuedKey:
    id: str
    name: str
    secret: str  # shown once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(name: str) -> IssuedKey:
    name = name.strip()
    if not name or len(name) > 100:
        raise AccessError("An API key needs a name of 1 to 100 characters.")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_id("key"), name=name, prefix=secret[:12], secret_hash=_digest(secret))
    db.session.add(key)
    db.session.commit()
    return IssuedKey(key.id, key.name, secret)


def revoke_api_key(key_id: str) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise AccessError(f"No API key {key_id}.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
        _recent_keys.clear()
    return key


def api_key_for(secret: str) -> str | None:
    """The id of the live key with this secret. The lookup is by SHA-256 through a unique
    index, so there is no timing signal worth a constant-time compare: an attacker can't
    choose the stored digest."""
    if not secret.startswith(KEY_PREFIX):
        return None
    digest = _digest(secret)
    known = _recent_keys.get(digest)
    if known is MISSING:
        known = _recent_keys.put(digest, db.session.connection().execute(_LIVE_KEY, {"digest": digest}).scalar())
    return known  # type: ignore[return-value]


# Every API request checks its key: remember answers for a few seconds. A revocation made in
# this process applies at once; one made elsewhere within KEY_MEMORY_SECONDS.
KEY_MEMORY_SECONDS = 5
_recent_keys: Recent[str | None] = Recent(KEY_MEMORY_SECONDS)


# Built once: this runs on every API request, through Core rather than the ORM.
_LIVE_KEY = select(ApiKey.id).where(ApiKey.secret_hash == bindparam("digest"), ApiKey.revoked_at.is_(None))


def create_user(email: str, role: str, password: str) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccessError(f"{email!r} is not an email address.")
    if role not in ROLES:
        raise AccessError(f"Role must be one of {', '.join(ROLES)}.")
    if len(password) < 10:
        raise AccessError("A password needs at least 10 characters.")
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        raise AccessError(f"A user {email} exists already.")
    user = User(id=new_id("usr"), email=email, role=role, password_hash=_hasher.hash(password))
    db.session.add(user)
    db.session.commit()
    return user


def set_password(email: str, password: str) -> User:
    """A new password; every session of the user ends (they sign in again with it)."""
    from .staff_sessions import end_all

    if len(password) < 10:
        raise AccessError("A password needs at least 10 characters.")
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AccessError(f"No user {email}.")
    user.password_hash = _hasher.hash(password)
    end_all(user.id)
    db.session.commit()
    return user


def authenticate_user(email: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        _hasher.hash(password)  # spend the same time, so a wrong email looks like a wrong password
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.session.commit()
    return user

"""Idempotency-Key for POSTs that create or move money (the contract, section 2).

The key row is written before the view runs and committed by the use case in the same
transaction as its change, so a stored key means the change happened, once. The answer is
saved right after and replayed to retries; a different body with the same key is a 409.
A concurrent duplicate waits on the key's unique index until the first one commits.
"""

from __future__ import annotations

import hashlib
import time
from functools import wraps
from typing import Any, Callable

from flask import Response, g, make_response, request
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import IdempotencyKey
from .problems import problem

HEADER = "Idempotency-Key"
_WAIT_FOR_FIRST_SECONDS = 5.0


def _digest() -> str:
    h = hashlib.sha256()
    h.update(request.method.encode())
    h.update(b"\0" + request.path.encode() + b"\0")
    h.update(request.get_data(cache=True))
    return h.hexdigest()


def _find(actor: str, key: str) -> IdempotencyKey | None:
    return db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
                             .execution_options(populate_existing=True))


def _replay(actor: str, key: str, digest: str) -> Response:
    deadline = time.monotonic() + _WAIT_FOR_FIRST_SECONDS
    while True:
        row = _find(actor, key)
        db.session.rollback()  # end the read so the next poll sees new commits
        if row is None:
            return problem(409, "Conflict", "A request with this Idempotency-Key failed part-way; send it again.",
                           slug="idempotency-retry")
        if row.request_hash != digest:
            return problem(409, "Conflict", f"This {HEADER} was used with a different request.",
                           slug="idempotency-key-reused")
        if row.status is not None:
            mimetype = "application/problem+json" if row.status >= 400 else "application/json"
            response = Response(row.body, status=row.status, mimetype=mimetype)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        if time.monotonic() > deadline:
            return problem(409, "Conflict", "A request with this Idempotency-Key was applied but its answer "
                           "is not available; fetch the resource to see its state.", slug="idempotency-in-progress")
        time.sleep(0.05)


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255:
            return problem(400, "Bad Request", f"{HEADER} must be 1 to 255 characters.")
        actor = g.actor
        digest = _digest()
        if _find(actor, key) is not None:
            return _replay(actor, key, digest)
        row = IdempotencyKey(actor=actor, key=key, request_hash=digest)
        db.session.add(row)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            return _replay(actor, key, digest)
        try:
            response = make_response(view(*args, **kwargs))
        except Exception:
            db.session.rollback()
            raise
        if inspect(row).detached or inspect(row).transient:
            return response  # the view rolled back: nothing happened, nothing to replay
        row.status = response.status_code
        row.body = response.get_data(as_text=True)
        db.session.commit()
        return response

    return wrapper

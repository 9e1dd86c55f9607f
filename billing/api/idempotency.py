"""Idempotency-Key for POSTs that create or move money (the contract, section 2).

The whole request is one transaction: the key (billing/idempotency.py), the use case's
change, and the answer commit together, so a retry either replays the stored answer or finds
nothing happened. A different body with the same key is a 409; a concurrent duplicate waits
for the first to finish, then replays it. Errors are not stored: a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import wraps
from typing import Any, Callable

from flask import Response, g, make_response, request

from .. import idempotency
from ..unit_of_work import transaction
from .problems import problem

HEADER = "Idempotency-Key"
_WAIT_FOR_FIRST_SECONDS = 5.0


def _digest() -> str:
    """The request's fingerprint: method, path and body — a JSON body in canonical form, so
    the same fields in another order or spacing are the same request."""
    h = hashlib.sha256()
    h.update(request.method.encode())
    h.update(b"\0" + request.path.encode() + b"\0")
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except ValueError:
        body = raw  # not JSON (or empty): the bytes themselves
    h.update(body)
    return h.hexdigest()


def request_key() -> str | None:
    """This request's "<actor>:<Idempotency-Key>", for use cases that remember it themselves."""
    key = request.headers.get(HEADER)
    return f"{g.actor}:{key}" if key else None


def _replay(actor: str, key: str, digest: str, resume: Callable[[], Any] | None) -> Any:
    deadline = time.monotonic() + _WAIT_FOR_FIRST_SECONDS
    while True:
        row = idempotency.find(actor, key)
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
            if resume is not None:
                return resume()  # the first try stopped between its steps: carry on from them
            return problem(409, "Conflict", "A request with this Idempotency-Key was applied but its answer "
                           "is not available; fetch the resource to see its state.", slug="idempotency-in-progress")
        time.sleep(0.05)


def idempotent(view: Callable[..., Any] | None = None, *, in_steps: bool = False) -> Any:
    """Honour Idempotency-Key on a view. `in_steps`: the use case commits between steps and
    resumes from its own rows (refunds), so the key is claimed first and the answer saved last."""
    if view is None:
        return lambda v: idempotent(v, in_steps=in_steps)

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255:
            return problem(400, "Bad Request", f"{HEADER} must be 1 to 255 characters.")
        actor, digest = g.actor, _digest()
        if in_steps:
            return _in_steps(view, args, kwargs, actor, key, digest)
        if idempotency.find(actor, key) is not None:
            return _replay(actor, key, digest, None)
        try:
            with transaction():
                row = idempotency.claim(actor, key, digest)
                response = make_response(view(*args, **kwargs))
                idempotency.answer(row, response.status_code, response.get_data(as_text=True))
        except idempotency.KeyTaken:
            return _replay(actor, key, digest, None)
        return response

    return wrapper


def _in_steps(view, args, kwargs, actor: str, key: str, digest: str) -> Any:
    def run() -> Response:
        try:
            response = make_response(view(*args, **kwargs))
        except Exception:
            # Refused or Stripe unreachable: the use case's own rows remember what was done,
            # and a retry with this key finds them.
            idempotency.release(actor, key)
            raise
        idempotency.save_answer(actor, key, response.status_code, response.get_data(as_text=True))
        return response

    if idempotency.find(actor, key) is not None:
        return _replay(actor, key, digest, run)
    try:
        with transaction():
            idempotency.claim(actor, key, digest)
    except idempotency.KeyTaken:
        return _replay(actor, key, digest, run)
    return run()

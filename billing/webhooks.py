"""Signatures on the booking system's webhooks: `Booking-Signature: t=<unix>,v1=<hex>[,v1=…]`.

The algorithm of stripe-python's `_webhook.py`: HMAC-SHA256 over "<t>.<raw body>", compared
in constant time, timestamps more than 300 s away refused. Several `v1` values, and several
configured secrets, are accepted so the secret can be rotated without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    pass


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender puts on `body` (used by tests and `billing send-test-event`)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(header: str | None, body: bytes, secrets: list[str], *, now: int | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> int:
    """Check the header against the raw body; return its timestamp or raise SignatureError."""
    if not header:
        raise SignatureError("The Booking-Signature header is missing.")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("The signature's timestamp is not a number.") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("The signature header needs t=<unix seconds> and at least one v1=<hex>.")
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"The signature's timestamp is more than {tolerance} s away from now.")
    for secret in secrets:
        expected = _mac(secret, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return timestamp
    raise SignatureError("No signature matches the body.")

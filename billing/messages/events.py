"""Events to the booking system: POSTed to BOOKING_NOTIFY_URL, signed with the Standard Webhooks
scheme by the `standardwebhooks` package (headers webhook-id, webhook-timestamp,
webhook-signature), the webhook-id being the outbox message's id, the same on every retry, so
the receiver can drop repeats. A 2xx answer is delivered; anything else, or none in 10 s, is
retried by the outbox."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import requests
from flask import current_app
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from .. import outbox
from ..extensions import db
from ..models import Invoice
from ..outbox import Claimed
from . import EVENT_TYPES

TIMEOUT_SECONDS = 10


class NotDelivered(Exception):
    pass


class _Sessions(threading.local):
    session: requests.Session | None = None


_local = _Sessions()


def _session() -> requests.Session:
    """One HTTP session per worker thread: the connection to the receiver is kept alive."""
    if _local.session is None:
        _local.session = requests.Session()
    return _local.session


def signed(message_id: str, body: bytes, secret: str, now: datetime | None = None) -> dict[str, str]:
    """The headers that carry the signature of `body`, sent at `now`."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, moment, body.decode())}


def _with_number(body: dict) -> dict:
    """An invoice.finalized event is queued before the number is taken (the counter row is
    locked only from then to commit): its number, which never changes once given, is filled in here."""
    data = body.get("data") or {}
    if "number" in data and data["number"] is None and data.get("invoice_id"):
        number = db.session.scalar(select(Invoice.number).where(Invoice.id == data["invoice_id"]))
        db.session.commit()
        return {**body, "data": {**data, "number": number}}
    return body


@outbox.handles_message(*EVENT_TYPES)
def deliver_event(message: Claimed) -> None:
    config = current_app.config
    url, secret = config["BOOKING_NOTIFY_URL"], config["BOOKING_NOTIFY_SECRET"]
    if not url or not secret:
        raise NotDelivered("BOOKING_NOTIFY_URL is not set; the event waits until it is")
    body = json.dumps(_with_number(message.payload["body"]), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "InfusionBilling/1",
               **signed(message.id, body, secret)}
    try:
        response = _session().post(url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as error:
        _local.session = None  # start afresh: the connection may be the problem
        raise NotDelivered(f"{type(error).__name__} posting to the booking system") from None
    response.close()
    if not 200 <= response.status_code < 300:
        raise NotDelivered(f"The booking system answered {response.status_code}")

"""Acting as Stripe would, against localstripe: confirm intents, and sign events ourselves
for what localstripe doesn't send (charge.* events) or can't (replays on demand)."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe

from tests.conftest import STRIPE_WEBHOOK_SECRET


def client(base_url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_billing", base_addresses={"api": base_url}, max_network_retries=0)


def pay_intent(base_url: str, intent_id: str, card: str = "4242424242424242") -> Any:
    """Confirm a PaymentIntent server-side. localstripe answers 500 to confirm(payment_method=…),
    so the method is set on the intent first, then it is confirmed."""
    c = client(base_url)
    method = c.v1.payment_methods.create(params={"type": "card", "card": {
        "number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    c.v1.payment_intents.update(intent_id, params={"payment_method": method.id})
    return c.v1.payment_intents.confirm(intent_id)


def signed(event: dict[str, Any], secret: str = STRIPE_WEBHOOK_SECRET) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, int(time.time()))
    return body, header


def event(type_: str, obj: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": type_, "created": int(time.time()),
            "api_version": "2017-08-15", "data": {"object": obj}}

"""The one module that calls Stripe, through the official SDK's StripeClient.

The same code talks to Stripe in production and to localstripe in development and tests
(STRIPE_API_BASE). Calls that create or move money carry an idempotency key derived from
what they do — invoice, operation, attempt; a refund's own row id — so a retry can never
charge or refund twice.
Stripe gets the invoice id, number and amount: no name, no clinical word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from ..errors import DomainProblem, Unavailable


class PaymentsUnavailable(Unavailable):
    """Stripe could not be reached or failed on its side; nothing was changed here."""


class PaymentRefused(DomainProblem):
    """Stripe refused the request itself (not a network problem): a 402 if it reaches a client."""

    status = 402
    title = "Payment Required"


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    amount: int
    amount_received: int
    currency: str
    client_secret: str
    invoice_id: str | None
    last_error: str | None


@dataclass(frozen=True)
class StripeRefund:
    id: str
    amount: int
    status: str


_UNREACHABLE = "We can't reach our card processor at the moment. Nothing has been charged; please try again in a few minutes."


def _plain(obj: Any) -> dict[str, Any]:
    """SDK objects as plain dicts (they stopped being dicts in stripe 15)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _intent(obj: Any) -> Intent:
    obj = _plain(obj)
    metadata = obj.get("metadata") or {}
    error = obj.get("last_payment_error") or {}
    return Intent(
        id=obj["id"], status=obj["status"], amount=int(obj["amount"]),
        amount_received=int(obj.get("amount_received") or 0), currency=obj["currency"].upper(),
        client_secret=obj.get("client_secret") or "", invoice_id=metadata.get("invoice_id"),
        last_error=error.get("message") if error else None,
    )


class StripeGateway:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.APIConnectionError as error:
            raise PaymentsUnavailable(_UNREACHABLE) from error
        except stripe.RateLimitError as error:
            raise PaymentsUnavailable(_UNREACHABLE) from error
        except stripe.APIError as error:  # 5xx on Stripe's side
            raise PaymentsUnavailable(_UNREACHABLE) from error
        except stripe.StripeError as error:
            raise PaymentRefused(error.user_message or str(error)) from error

    def create_intent(self, *, invoice_id: str, invoice_number: str, amount: int, currency: str,
                      attempt: int) -> Intent:
        obj = self._call(
            self.client.v1.payment_intents.create,
            params={"amount": amount, "currency": currency.lower(), "payment_method_types": ["card"],
                    "metadata": {"invoice_id": invoice_id, "invoice_number": invoice_number}},
            options={"idempotency_key": f"{invoice_id}:payment_intent:{attempt}"},
        )
        return _intent(obj)

    def retrieve_intent(self, intent_id: str) -> Intent:
        return _intent(self._call(self.client.v1.payment_intents.retrieve, intent_id))

    def cancel_intent(self, intent_id: str, *, invoice_id: str, attempt: int) -> None:
        self._call(self.client.v1.payment_intents.cancel, intent_id,
                   options={"idempotency_key": f"{invoice_id}:cancel_intent:{attempt}"})

    def refund(self, *, payment_intent: str, amount: int, invoice_id: str, refund_id: str | None,
               idempotency_key: str) -> StripeRefund:
        """Refund `amount` of a PaymentIntent. The key comes from a refund row written before
        this call (or from the PaymentIntent id), so a retry can never refund twice; our refund
        id rides in metadata, so Stripe's charge.refunded can be matched to the row."""
        metadata = {"invoice_id": invoice_id, **({"refund_id": refund_id} if refund_id else {})}
        obj = self._call(
            self.client.v1.refunds.create,
            params={"payment_intent": payment_intent, "amount": amount, "metadata": metadata},
            options={"idempotency_key": idempotency_key},
        )
        obj = _plain(obj)
        return StripeRefund(id=obj["id"], amount=int(obj["amount"]), status=obj.get("status") or "succeeded")


def gateway_from_config(config: dict[str, Any]) -> StripeGateway | None:
    """The app's gateway, or None while paying online is off (no keys set)."""
    if not (config.get("STRIPE_SECRET_KEY") and config.get("STRIPE_PUBLISHABLE_KEY")):
        return None
    client = stripe.StripeClient(
        config["STRIPE_SECRET_KEY"],
        base_addresses={"api": config["STRIPE_API_BASE"]},
        # Retries reuse the call's idempotency key, so they are safe; keep them few so an
        # outage answers 503 quickly.
        max_network_retries=1,
        # Connect fast, answer within 20 s: the SDK's 80 s default would hold a worker (and,
        # behind a pay page, a patient) far longer than an outage is worth waiting for.
        http_client=stripe.RequestsClient(timeout=(5, 20)),
    )
    return StripeGateway(client)

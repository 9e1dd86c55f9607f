"""A test double at the Stripe gateway boundary (never of the SDK): it counts calls and, like
Stripe, answers a repeated idempotency key with the first answer instead of moving money again."""

from __future__ import annotations

from typing import Any

from billing.payments.gateway import PaymentRefused, PaymentsUnavailable, StripeRefund


class CountingGateway:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refunds: dict[str, StripeRefund] = {}  # by idempotency key: what Stripe holds
        self.cancelled: list[str] = []
        self.down = False
        self.refuse: str | None = None

    def _check(self) -> None:
        if self.down:
            raise PaymentsUnavailable("We can't reach our card processor at the moment.")
        if self.refuse:
            raise PaymentRefused(self.refuse)

    def refund(self, *, payment_intent: str, amount: int, invoice_id: str, refund_id: str | None,
               idempotency_key: str) -> StripeRefund:
        self.calls.append(("refund", idempotency_key))
        self._check()
        if idempotency_key not in self.refunds:
            self.refunds[idempotency_key] = StripeRefund(id=f"re_stripe_{len(self.refunds) + 1}", amount=amount,
                                                         status="succeeded")
        return self.refunds[idempotency_key]

    def cancel_intent(self, intent_id: str, *, invoice_id: str, attempt: int) -> None:
        self.calls.append(("cancel_intent", intent_id))
        self._check()
        self.cancelled.append(intent_id)

    @property
    def refund_keys(self) -> list[str]:
        return [key for op, key in self.calls if op == "refund"]

    @property
    def refunded(self) -> int:
        """What left the clinic's Stripe account, in pence."""
        return sum(r.amount for r in self.refunds.values())

"""Money as an integer amount of the currency's minor unit, and the one rounding rule."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .errors import CurrencyMismatch

_WHOLE = Decimal(1)


def round_half_up(value: Decimal) -> int:
    """Round an exact amount of minor units to a whole one, halves away from zero.

    The contract's only rounding rule: every line is rounded once, like this.
    """
    return int(value.quantize(_WHOLE, rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise TypeError(f"Money amounts are whole minor units, not {type(self.amount).__name__}")

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(0, currency)

    def __add__(self, other: "Money") -> "Money":
        if not isinstance(other, Money):
            return NotImplemented
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot add {other.currency} to {self.currency}.")
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        if not isinstance(other, Money):
            return NotImplemented
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot subtract {other.currency} from {self.currency}.")
        return Money(self.amount - other.amount, self.currency)


def total(amounts: "list[Money] | tuple[Money, ...]", currency: str) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result

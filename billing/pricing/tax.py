"""Tax on one line: a percentage of its amount, rounded half up to the minor unit."""

from __future__ import annotations

from decimal import Decimal

from .catalogue import TaxRate
from .money import round_half_up


_PERCENT = Decimal(100)


def tax_amount(amount: int, rate: TaxRate) -> int:
    if not rate.rate:
        return 0  # exempt or zero-rated, as both IVIG lines usually are: nothing to work out
    return round_half_up(Decimal(amount) * rate.rate / _PERCENT)

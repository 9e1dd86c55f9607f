"""Amounts in minor units shown as people read them ("£1,680.00"), through Babel."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision

LOCALE = "en_GB"


def major(amount: int, currency: str) -> Decimal:
    """Minor units → the currency's major unit, exactly (168000 GBP → 1680.00)."""
    digits = get_currency_precision(currency)
    return Decimal(amount).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def show(amount: int, currency: str) -> str:
    return format_currency(major(amount, currency), currency, locale=LOCALE)

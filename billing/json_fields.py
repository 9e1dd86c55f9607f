"""Marshmallow fields for the contract's wire formats: decimals as strings, money as int pence."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import fields

from .pricing import Money, decimal_text


# For the OpenAPI document: the decimals a request may send, digits with an optional sign and
# decimal point, at most 40 characters. _deserialize accepts every one of them (answers write
# decimals so too, of any length), and also forms this leaves out and no client needs: an
# exponent ("1e3"), "_" among the digits, a leading "." (".5"), spaces around, other scripts' digits.
DECIMAL_PATTERN = r"^[+-]?[0-9]+(\.[0-9]*)?$"
DECIMAL = {"pattern": DECIMAL_PATTERN, "maxLength": 40}


class DecimalString(fields.Field):
    """A decimal quantity written as a JSON string ("12.5"); a JSON number with a fraction is
    refused, since it has already been through a binary float by the time we see it."""

    default_error_messages = {
        "invalid": 'Not a decimal number; write it as a string, like "12.5".',
        "float": 'Write decimals as strings, like "12.5": a JSON number may not be exact.',
        "special": "Not a finite number.",
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata", {})
        described = {"type": "string", "format": "decimal", "example": "12.5", **DECIMAL, **metadata}
        # metadata={"maxLength": None} leaves the limit out, for a decimal the service works out itself.
        super().__init__(metadata={k: v for k, v in described.items() if v is not None}, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return decimal_text(Decimal(value))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        number = read_decimal(value)
        if isinstance(number, str):
            raise self.make_error(number)
        return number


def read_decimal(value: Any) -> Decimal | str:
    """The Decimal a JSON value stands for, as DecimalString loads it; else the key of its
    message saying why not ("invalid", "float" or "special")."""
    if isinstance(value, bool):
        return "invalid"
    if isinstance(value, float):
        return "float"
    if not isinstance(value, (str, int)) or (isinstance(value, str) and len(value) > 40):
        return "invalid"
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return "invalid"
    if not number.is_finite():
        return "special"
    return number


class Amount(fields.Integer):
    """Whole minor units (pence). Dumps a Money as its amount."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strict", True)
        metadata = kwargs.pop("metadata", {})
        super().__init__(metadata={"description": "Integer amount in the currency's minor unit (pence).", **metadata}, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | None:
        if isinstance(value, Money):
            return value.amount
        return super()._serialize(value, attr, obj, **kwargs)


class ISODate(fields.Date):
    """A date; dumps a stored ISO string unchanged."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, date):
            return value.isoformat()
        return super()._serialize(value, attr, obj, **kwargs)

"""Domain errors of the pricing engine; each names the input field it is about."""

from __future__ import annotations


class PricingError(Exception):
    """An input the engine refuses to price. `field` is a dotted path into the request."""

    def __init__(self, message: str, field: str = "_schema") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def at(self, prefix: str) -> "PricingError":
        """The same error, its field nested under `prefix` (for courses)."""
        self.field = f"{prefix}.{self.field}" if self.field != "_schema" else prefix
        return self


class DoseOutOfRange(PricingError):
    pass


class DurationOutOfRange(PricingError):
    pass


class UnknownProduct(PricingError):
    pass


class UnknownVialSize(PricingError):
    pass


class DispensedOutOfRange(PricingError):
    pass


class CurrencyMismatch(PricingError):
    pass


class PriceListInvalid(PricingError):
    """A price list document that breaks a rule; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        first_field, messages = next(iter(errors.items()))
        super().__init__(messages[0], first_field)
        self.errors = errors

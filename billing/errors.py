"""Errors the use cases raise; each carries the HTTP status the API maps it to."""

from __future__ import annotations

from typing import Mapping


class DomainProblem(Exception):
    """`detail` is what the API says. A message about money is written with `{name}` places
    and `money` (minor units) and `currency`: the API's detail fills them in pence, as its
    fields are; staff pages ask `for_people()`, which writes them in pounds."""

    status = 409
    title = "Conflict"

    def __init__(self, detail: str, *, field: str | None = None, money: Mapping[str, int] | None = None,
                 currency: str | None = None) -> None:
        self.message = detail
        self.money = dict(money or {})
        self.currency = currency
        if self.money:
            detail = detail.format(**self.money)
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def for_people(self) -> str:
        """The detail with its amounts as people read them: "£3,000.00 is more than the £1,530.00 due."."""
        if not self.money or not self.currency:
            return self.detail
        from .money_format import show

        return self.message.format(**{name: show(amount, self.currency) for name, amount in self.money.items()})


class NotFound(DomainProblem):
    status = 404
    title = "Not Found"


class WrongState(DomainProblem):
    status = 409
    title = "Conflict"


class Invalid(DomainProblem):
    status = 422
    title = "Unprocessable Content"


class Unavailable(DomainProblem):
    status = 503
    title = "Service Unavailable"

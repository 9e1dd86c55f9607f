"""Errors the use cases raise; each carries the HTTP status the API maps it to."""

from __future__ import annotations


class DomainProblem(Exception):
    status = 409
    title = "Conflict"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


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

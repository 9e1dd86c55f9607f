"""The JSON API under /api/v1: flask-smorest blueprints, authenticated by API key."""

from __future__ import annotations

from flask import Flask


def register_api(app: Flask) -> None:
    from ..extensions import csrf
    from . import booking_events, invoices, price_lists, quotes, webhooks
    from .problems import ProblemApi

    api = ProblemApi(app)

    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearerAuth": []}]
    # Documented through a oneOf rather than a response decorator, so named here.
    api.spec.components.schema("Quote", schema=quotes.QuoteSchema)
    api.spec.components.schema("CourseQuote", schema=quotes.CourseQuoteSchema)
    for module in (price_lists, quotes, invoices, booking_events, webhooks):
        csrf.exempt(module.blp)  # API clients authenticate with keys or signatures, not cookies
        api.register_blueprint(module.blp)

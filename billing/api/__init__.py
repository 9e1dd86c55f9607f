"""The JSON API under /api/v1: flask-smorest blueprints, authenticated by API key."""

from __future__ import annotations

from flask import Flask


def register_api(app: Flask) -> None:
    from ..extensions import csrf
    from ..inputs import DoseSchema
    from . import booking_events, credit_notes, invoices, messages, price_lists, quotes, webhooks
    from .problems import ProblemApi
    from .schemas import DOSE_FORMS, QUOTE_FORMS, null_or_nested

    api = ProblemApi(app)
    api.ma_plugin.converter.add_attribute_function(null_or_nested)

    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearerAuth": []}]
    # Documented through a oneOf rather than a response decorator, so named here.
    api.spec.components.schema("Quote", schema=quotes.QuoteSchema)
    api.spec.components.schema("CourseQuote", schema=quotes.CourseQuoteSchema)
    # Their fields as the schemas say, and which of them go together.
    api.spec.components.schema("Dose", DOSE_FORMS, schema=DoseSchema)
    api.spec.components.schema("QuoteRequest", QUOTE_FORMS, schema=quotes.QuoteRequestSchema)
    for module in (price_lists, quotes, invoices, credit_notes, messages, booking_events, webhooks):
        csrf.exempt(module.blp)  # API clients authenticate with keys or signatures, not cookies
        api.register_blueprint(module.blp)

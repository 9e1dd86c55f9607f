"""Quotes: price one infusion or a course (a costed treatment plan). Nothing is stored."""

from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from .. import quotes
from ..pricing import CourseQuote
from .arguments import json_body
from .auth import api_blueprint
from ..pricing.documents import course_json, quote_json
from .schemas import CourseQuoteSchema, QuoteRequestSchema, QuoteSchema  # noqa: F401 (documented in register_api)
from .schemas import INFUSION_EXAMPLE

blp = api_blueprint("quotes", __name__, "Quotes and costed treatment plans")


@blp.route("/quotes")
class Quotes(MethodView):
    @json_body(blp, QuoteRequestSchema(), example=INFUSION_EXAMPLE)
    @blp.doc(responses={"200": {
        "description": "The quote (one infusion) or the costed plan (a course); both are estimates.",
        "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/Quote"}, {"$ref": "#/components/schemas/CourseQuote"}]}}},
    }})
    def post(self, data):
        """Price one infusion, or a course infusion by infusion, with a grand total."""
        result = quotes.quote(data)
        return jsonify(course_json(result) if isinstance(result, CourseQuote) else quote_json(result))

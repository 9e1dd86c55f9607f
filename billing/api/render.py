"""Quotes and their lines as JSON, written out by hand because every quote and invoice
response goes through here: about five times faster than dumping through the nested
marshmallow schemas. Those schemas (LineSchema, QuoteSchema, CourseQuoteSchema) remain
the documented shape, and tests/integration/test_render.py holds the two equal.
"""

from __future__ import annotations

from typing import Any

from ..pricing import PRODUCT, CourseQuote, Line, Quote, decimal_text


def line_json(line: Line) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": line.category,
        "description": line.description,
        "quantity": decimal_text(line.quantity),
        "unit": line.unit,
        "unit_amount": line.unit_amount,
        "amount": line.amount,
        "tax_rate": decimal_text(line.tax_rate),
        "tax_label": line.tax_label,
        "tax_amount": line.tax_amount,
    }
    if line.category == PRODUCT:
        body["dose_grams"] = None if line.dose_grams is None else decimal_text(line.dose_grams)
        body["waste_grams"] = None if line.waste_grams is None else decimal_text(line.waste_grams)
        body["vials"] = [
            {"grams": decimal_text(vc.vial.grams), "count": vc.count, "unit_amount": vc.vial.unit_amount}
            for vc in line.vials
        ]
    else:
        body["duration_minutes"] = line.duration_minutes
    return body


def quote_json(quote: Quote) -> dict[str, Any]:
    return {
        "estimate": True,
        "currency": quote.currency,
        "service_date": quote.service_date.isoformat(),
        "price_list": {"id": quote.price_list.id, "version": quote.price_list.version},
        "lines": [line_json(line) for line in quote.lines],
        "excluded_items": [
            {"code": e.code, "description": e.description, "category": e.category,
             "for": e.recipient, "reason": e.reason}
            for e in quote.excluded_items
        ],
        "statement": quote.statement,
        "subtotal": quote.subtotal.amount,
        "tax": quote.tax.amount,
        "total": quote.total.amount,
    }


def course_json(course: CourseQuote) -> dict[str, Any]:
    return {
        "estimate": course.estimate,
        "currency": course.currency,
        "infusions": [quote_json(q) for q in course.infusions],
        "subtotal": course.subtotal.amount,
        "tax": course.tax.amount,
        "total": course.total.amount,
    }

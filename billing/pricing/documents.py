"""Quotes, lines and infusion requests as JSON documents: the wire format of the API and
the form invoices store them in.

Written out by hand because every quote and invoice goes through here: about five times
faster than dumping through nested marshmallow schemas. Those schemas (api/schemas.py)
remain the documented shape, and tests/integration/test_documents.py holds the two equal.
"""

from __future__ import annotations

from typing import Any

from datetime import date
from decimal import Decimal

from .catalogue import PRODUCT, decimal_text
from .dose import Dose
from .exclusions import ExcludedItem, OtherItem
from .quote import CourseQuote, InfusionRequest, Line, Quote


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


def excluded_item_json(item: ExcludedItem) -> dict[str, Any]:
    return {"code": item.code, "description": item.description, "category": item.category,
            "for": item.recipient, "reason": item.reason}


def quote_json(quote: Quote) -> dict[str, Any]:
    return {
        "estimate": True,
        "currency": quote.currency,
        "service_date": quote.service_date.isoformat(),
        "price_list": {"id": quote.price_list.id, "version": quote.price_list.version},
        "lines": [line_json(line) for line in quote.lines],
        "excluded_items": [excluded_item_json(e) for e in quote.excluded_items],
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


def request_json(request: InfusionRequest) -> dict[str, Any]:
    """An infusion request as the API takes it: what an invoice stores to re-price a draft."""
    dose = {k: decimal_text(v) for k, v in (("grams", request.dose.grams),
                                            ("grams_per_kg", request.dose.grams_per_kg),
                                            ("weight_kg", request.dose.weight_kg)) if v is not None}
    return {
        "product_code": request.product_code,
        "dose": dose,
        "duration_minutes": request.duration_minutes,
        "service_date": request.service_date.isoformat(),
        "other_items": [{"code": i.code, "description": i.description, "category": i.category,
                         "for": i.recipient} for i in request.other_items],
        "vials_dispensed": None if request.vials_dispensed is None else [
            {"grams": decimal_text(g), "count": n} for g, n in request.vials_dispensed],
    }


def request_from_json(document: dict[str, Any]) -> InfusionRequest:
    """The inverse of request_json, for documents this service stored itself."""
    dose = document["dose"]
    dispensed = document.get("vials_dispensed")
    return InfusionRequest(
        product_code=document["product_code"],
        dose=Dose(*(Decimal(dose[k]) if dose.get(k) is not None else None
                    for k in ("grams", "grams_per_kg", "weight_kg"))),
        duration_minutes=document["duration_minutes"],
        service_date=date.fromisoformat(document["service_date"]),
        other_items=tuple(OtherItem(i["description"], i.get("code"), i.get("category"), i.get("for", "patient"))
                          for i in document.get("other_items") or ()),
        vials_dispensed=None if dispensed is None else tuple((Decimal(v["grams"]), v["count"]) for v in dispensed),
    )

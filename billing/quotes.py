"""Use case: price one infusion or a course at the price lists in effect on their dates.

Invoices price through `build_request` and `price_one` too: one code path for money.
"""

from __future__ import annotations

from typing import Any

from .price_lists import price_list_in_effect
from .pricing import (
    CourseQuote,
    Dose,
    InfusionRequest,
    OtherItem,
    PriceList,
    PricingError,
    Quote,
    price_course,
    price_infusion,
)


class NoPriceList(PricingError):
    pass


def build_request(data: dict[str, Any]) -> InfusionRequest:
    """An InfusionRequest from the validated JSON fields (see api.schemas InfusionInput)."""
    dose = data["dose"]
    dispensed = data.get("vials_dispensed")
    return InfusionRequest(
        product_code=data["product_code"],
        dose=Dose(dose.get("grams"), dose.get("grams_per_kg"), dose.get("weight_kg")),
        duration_minutes=data["duration_minutes"],
        service_date=data["service_date"],
        other_items=tuple(
            OtherItem(i["description"], i.get("code"), i.get("category"), i.get("for", "patient"))
            for i in data.get("other_items") or ()
        ),
        vials_dispensed=None if dispensed is None else tuple((v["grams"], v["count"]) for v in dispensed),
    )


def price_list_for(request: InfusionRequest) -> PriceList:
    price_list = price_list_in_effect(request.service_date)
    if price_list is None:
        raise NoPriceList(
            f"No price list is in effect on {request.service_date.isoformat()}.", "service_date"
        )
    return price_list


def price_one(request: InfusionRequest, *, include_service: bool = True) -> Quote:
    return price_infusion(price_list_for(request), request, include_service=include_service)


def quote(data: dict[str, Any]) -> Quote | CourseQuote:
    if "course" in data:
        requests = [build_request(item) for item in data["course"]]
        priced = []
        for i, request in enumerate(requests):
            try:
                priced.append((price_list_for(request), request))
            except PricingError as error:
                raise error.at(f"course.{i}")
        return price_course(priced)
    return price_one(build_request(data))

"""The hand-written quote JSON (billing.api.render) says exactly what the documented schemas say."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.api.render import course_json, quote_json
from billing.api.schemas import CourseQuoteSchema, QuoteSchema
from billing.pricing import Dose, InfusionRequest, OtherItem, price_course, price_infusion
from tests.unit.pricing.catalogues import contract_price_list

PRICE_LIST = contract_price_list(tax={"infusion_service": {"rate": "17.5", "label": "VAT"}})

requests = st.builds(
    InfusionRequest,
    product_code=st.sampled_from(["IVIG10-5-10-20", "IVIG10-PER-GRAM"]),
    dose=st.builds(Dose, grams=st.decimals(min_value=D("0.5"), max_value=D("200"), places=2)),
    duration_minutes=st.integers(min_value=1, max_value=720),
    service_date=st.just(date(2026, 12, 1)),
    other_items=st.lists(st.builds(OtherItem, description=st.text(min_size=1, max_size=20),
                                   code=st.none() | st.text(max_size=5),
                                   category=st.sampled_from([None, "fertility_treatment"]),
                                   recipient=st.sampled_from(["patient", "partner"])),
                         max_size=2).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(requests)
def test_quote_json_equals_the_schema_dump(request):
    quote = price_infusion(PRICE_LIST, request)
    assert quote_json(quote) == QuoteSchema().dump(quote)


@settings(max_examples=30, deadline=None)
@given(st.lists(requests, min_size=1, max_size=3))
def test_course_json_equals_the_schema_dump(requests_):
    course = price_course([(PRICE_LIST, r) for r in requests_])
    assert course_json(course) == CourseQuoteSchema().dump(course)

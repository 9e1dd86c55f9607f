"""The hand-written JSON documents (billing.pricing.documents) match the documented schemas:
dumping a document through its schema changes nothing, so no field is missing, extra or
formatted differently."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.api.schemas import CourseQuoteSchema, InfusionInputSchema, QuoteSchema
from billing.pricing import Dose, InfusionRequest, OtherItem, price_course, price_infusion
from billing.pricing.documents import course_json, quote_json, request_from_json, request_json
from tests.unit.pricing.catalogues import contract_price_list

PRICE_LIST = contract_price_list(tax={"infusion_service": {"rate": "17.5", "label": "VAT"}})

def one_line_text(max_size: int):
    """Text the inputs accept: one line, not blank, no control or direction-override characters."""
    overrides = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    return st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=max_size).filter(
        lambda t: t.strip() and not overrides & set(t))


requests = st.builds(
    InfusionRequest,
    product_code=st.sampled_from(["IVIG10-5-10-20", "IVIG10-PER-GRAM"]),
    dose=st.one_of(
        st.builds(Dose, grams=st.decimals(min_value=D("0.5"), max_value=D("200"), places=2)),
        st.builds(Dose, grams_per_kg=st.decimals(min_value=D("0.1"), max_value=D("1"), places=2),
                  weight_kg=st.decimals(min_value=D("40"), max_value=D("150"), places=1)),
    ),
    duration_minutes=st.integers(min_value=1, max_value=720),
    service_date=st.just(date(2026, 12, 1)),
    other_items=st.lists(st.builds(OtherItem, description=one_line_text(20),
                                   code=st.none() | one_line_text(5),
                                   category=st.sampled_from([None, "fertility_treatment"]),
                                   recipient=st.sampled_from(["patient", "partner"])),
                         max_size=2).map(tuple),
    vials_dispensed=st.none() | st.just(((D("10"), 2), (D("5"), 1))),
)


@settings(max_examples=100, deadline=None)
@given(requests)
def test_quote_json_is_what_the_quote_schema_describes(request):
    document = quote_json(price_infusion(PRICE_LIST, request))
    assert QuoteSchema().dump(document) == document


@settings(max_examples=30, deadline=None)
@given(st.lists(requests, min_size=1, max_size=3))
def test_course_json_is_what_the_course_schema_describes(requests_):
    document = course_json(price_course([(PRICE_LIST, r) for r in requests_]))
    assert CourseQuoteSchema().dump(document) == document


@settings(max_examples=100, deadline=None)
@given(requests)
def test_a_stored_request_loads_back_unchanged_through_json_and_the_schema(request):
    document = request_json(request)
    assert request_from_json(document) == request
    loaded = InfusionInputSchema().load(document)
    assert loaded["product_code"] == request.product_code
    assert loaded["duration_minutes"] == request.duration_minutes

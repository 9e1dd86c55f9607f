"""Quotes: the two separate lines, exclusions, tax and totals, and courses across price lists."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import (
    PRODUCT,
    SERVICE,
    CurrencyMismatch,
    Dose,
    InfusionRequest,
    OtherItem,
    UnknownProduct,
    price_course,
    price_infusion,
)
from billing.pricing.exclusions import REASON_FERTILITY

from .catalogues import contract_price_list

PRICE_LIST = contract_price_list()
BY_WEIGHT = Dose(grams_per_kg=D("0.4"), weight_kg=D("68.5"))


def request(**changes) -> InfusionRequest:
    fields = dict(product_code="IVIG10-5-10-20", dose=BY_WEIGHT, duration_minutes=180,
                  service_date=date(2026, 12, 1))
    fields.update(changes)
    return InfusionRequest(**fields)


def test_contract_example_per_vial_is_two_lines_to_the_penny():
    quote = price_infusion(PRICE_LIST, request())
    product, service = quote.lines
    assert (product.category, product.amount, product.quantity) == (PRODUCT, 168000, D("30"))
    assert (product.dose_grams, product.waste_grams, product.unit_amount) == (D("27.4"), D("2.6"), None)
    assert (service.category, service.amount, service.duration_minutes) == (SERVICE, 35000, 180)
    assert (quote.subtotal.amount, quote.tax.amount, quote.total.amount) == (203000, 0, 203000)


def test_contract_example_per_gram():
    quote = price_infusion(PRICE_LIST, request(product_code="IVIG10-PER-GRAM"))
    assert quote.line(PRODUCT).amount == 151250
    assert quote.line(PRODUCT).unit_amount == 5500
    assert quote.line(PRODUCT).waste_grams == D("0.1")
    assert quote.total.amount == 186250


def test_contract_example_300_minutes():
    assert price_infusion(PRICE_LIST, request(duration_minutes=300)).line(SERVICE).amount == 45000


def test_other_fertility_items_are_excluded_with_a_reason_and_the_statement_is_carried():
    quote = price_infusion(PRICE_LIST, request(other_items=(
        OtherItem("NK cell assay", "NKA", "fertility_investigation"),)))
    assert [e.code for e in quote.excluded_items] == ["NKA"]
    assert quote.excluded_items[0].reason == REASON_FERTILITY
    assert len(quote.lines) == 2 and quote.total.amount == 203000
    assert "not included" in quote.statement


def test_per_gram_amount_is_rounded_half_up_once():
    doc_list = contract_price_list()
    product = doc_list.product("IVIG10-PER-GRAM")
    from dataclasses import replace
    odd = replace(product, gram_amount=5555)  # 27.5 g × 5555 = 152762.5
    priced = replace(doc_list, products=(odd,))
    assert price_infusion(priced, request(product_code="IVIG10-PER-GRAM")).line(PRODUCT).amount == 152763


def test_tax_is_charged_per_line_and_added_to_the_total():
    taxed = contract_price_list(tax={"infusion_service": {"rate": "20", "label": "VAT 20%"}})
    quote = price_infusion(taxed, request())
    assert quote.line(SERVICE).tax_amount == 7000
    assert quote.line(PRODUCT).tax_amount == 0
    assert (quote.subtotal.amount, quote.tax.amount, quote.total.amount) == (203000, 7000, 210000)


def test_the_product_alone_for_a_prepared_cancellation():
    quote = price_infusion(PRICE_LIST, request(), include_service=False)
    assert [line.category for line in quote.lines] == [PRODUCT]
    assert quote.total.amount == 168000


def test_an_unknown_product_names_the_field():
    with pytest.raises(UnknownProduct) as caught:
        price_infusion(PRICE_LIST, request(product_code="NOPE"))
    assert caught.value.field == "product_code"


def test_a_course_prices_each_infusion_at_its_own_price_list():
    newer = contract_price_list(effective_from="2027-01-01",
                                infusion_service={"tiers": [{"up_to_minutes": 240, "amount": 40000}]})
    course = price_course([(PRICE_LIST, request()),
                           (newer, request(service_date=date(2027, 1, 5)))])
    assert [q.total.amount for q in course.infusions] == [203000, 208000]
    assert course.total.amount == 411000
    assert course.estimate is True


def test_a_course_in_two_currencies_is_refused():
    euros = contract_price_list(currency="EUR")
    with pytest.raises(CurrencyMismatch) as caught:
        price_course([(PRICE_LIST, request()), (euros, request())])
    assert caught.value.field == "course.1.service_date"


def test_an_error_in_a_course_names_the_infusion():
    with pytest.raises(UnknownProduct) as caught:
        price_course([(PRICE_LIST, request()), (PRICE_LIST, request(product_code="NOPE"))])
    assert caught.value.field == "course.1.product_code"


@settings(max_examples=200, deadline=None)
@given(
    product_code=st.sampled_from(["IVIG10-5-10-20", "IVIG10-PER-GRAM"]),
    grams=st.decimals(min_value=D("0.1"), max_value=D("200"), places=2),
    minutes=st.integers(min_value=1, max_value=720),
    product_rate=st.sampled_from(["0", "5", "17.5", "20"]),
    service_rate=st.sampled_from(["0", "5", "17.5", "20"]),
)
def test_totals_are_sums_of_rounded_lines(product_code, grams, minutes, product_rate, service_rate):
    price_list = contract_price_list(tax={
        "immunoglobulin_product": {"rate": product_rate, "label": "t"},
        "infusion_service": {"rate": service_rate, "label": "t"},
    })
    quote = price_infusion(price_list, request(product_code=product_code, dose=Dose(grams=grams),
                                               duration_minutes=minutes))
    assert [line.category for line in quote.lines] == [PRODUCT, SERVICE]
    for line in quote.lines:
        assert type(line.amount) is int and type(line.tax_amount) is int
        expected_tax = (D(line.amount) * line.tax_rate / 100).to_integral_value(rounding="ROUND_HALF_UP")
        assert line.tax_amount == int(expected_tax)
    assert quote.subtotal.amount == sum(line.amount for line in quote.lines)
    assert quote.tax.amount == sum(line.tax_amount for line in quote.lines)
    assert quote.total.amount == quote.subtotal.amount + quote.tax.amount

import pytest

from billing.pricing import PriceListInvalid, price_list_from_document
from tests.factories import price_list_document


def errors_of(document) -> dict[str, list[str]]:
    with pytest.raises(PriceListInvalid) as caught:
        price_list_from_document(document)
    return caught.value.errors


def test_the_contract_example_is_a_valid_price_list():
    price_list = price_list_from_document(price_list_document())
    assert price_list.currency == "GBP"
    assert [p.code for p in price_list.products] == ["IVIG10-5-10-20", "IVIG10-PER-GRAM"]
    assert price_list.charge_prepared_product is True


def test_vial_sizes_must_be_positive_and_unique():
    doc = price_list_document()
    doc["products"][0]["vials"] = [{"grams": "0", "unit_amount": 1}, {"grams": "10", "unit_amount": 1},
                                   {"grams": "10.0", "unit_amount": 2}]
    errors = errors_of(doc)
    assert "products.0.vials.0.grams" in errors
    assert "products.0.vials.2.grams" in errors


def test_amounts_must_be_non_negative_whole_pence():
    doc = price_list_document()
    doc["products"][0]["vials"][0]["unit_amount"] = -1
    doc["products"][1]["gram_amount"] = "55.00"
    errors = errors_of(doc)
    assert set(errors) == {"products.0.vials.0.unit_amount", "products.1.gram_amount"}


def test_tiers_must_ascend():
    doc = price_list_document()
    doc["infusion_service"]["tiers"] = [{"up_to_minutes": 240, "amount": 1}, {"up_to_minutes": 120, "amount": 1}]
    assert set(errors_of(doc)) == {"infusion_service.tiers.1.up_to_minutes"}


def test_duplicate_product_codes_and_bad_currency_are_refused():
    doc = price_list_document(currency="gbp")
    doc["products"][1]["code"] = doc["products"][0]["code"]
    assert set(errors_of(doc)) == {"currency", "products.1.code"}


def test_tax_rate_is_a_percentage_between_0_and_100():
    doc = price_list_document(tax={"infusion_service": {"rate": "120", "label": "VAT"}})
    assert set(errors_of(doc)) == {"tax.infusion_service.rate"}
    ok = price_list_from_document(price_list_document(tax={"infusion_service": {"rate": "20", "label": "VAT 20%"}}))
    assert str(ok.tax["infusion_service"].rate) == "20"
    assert ok.tax["immunoglobulin_product"].label == "Exempt"

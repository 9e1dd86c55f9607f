"""Quotes through the API: the contract's worked examples to the penny, and every refusal."""

from __future__ import annotations

import pytest

from tests.conftest import row_counts
from tests.factories import days_ahead, infusion, price_list_document


@pytest.fixture
def price_list(api):
    response = api.post("/api/v1/price-lists", json=price_list_document())
    assert response.status_code == 201
    return response.get_json()


def quote(api, body):
    response = api.post("/api/v1/quotes", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_contract_example_per_vial(api, price_list):
    body = quote(api, infusion(other_items=[
        {"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}]))
    product, service = body["lines"]
    assert product == {
        "category": "immunoglobulin_product",
        "description": "Human normal immunoglobulin 10%: 30 g in 2 vials",
        "quantity": "30", "unit": "g", "unit_amount": None, "amount": 168000,
        "tax_rate": "0", "tax_label": "Exempt", "tax_amount": 0,
        "dose_grams": "27.4", "waste_grams": "2.6",
        "vials": [{"grams": "20", "count": 1, "unit_amount": 112000},
                  {"grams": "10", "count": 1, "unit_amount": 56000}],
    }
    assert service == {
        "category": "infusion_service", "description": "Infusion service: 180 minutes",
        "quantity": "1", "unit": "session", "unit_amount": 35000, "amount": 35000,
        "tax_rate": "0", "tax_label": "Exempt", "tax_amount": 0, "duration_minutes": 180,
    }
    assert (body["subtotal"], body["tax"], body["total"], body["currency"]) == (203000, 0, 203000, "GBP")
    assert body["price_list"] == {"id": price_list["id"], "version": 1}
    assert body["excluded_items"][0]["code"] == "NKA"
    assert body["excluded_items"][0]["reason"].endswith("not included in this charge.")
    assert body["statement"] == price_list["statement"]
    assert body["estimate"] is True


def test_contract_example_per_gram(api, price_list):
    body = quote(api, infusion(product_code="IVIG10-PER-GRAM"))
    assert body["lines"][0]["amount"] == 151250
    assert body["lines"][0]["quantity"] == "27.5"
    assert [(v["grams"], v["count"]) for v in body["lines"][0]["vials"]] == [("10", 2), ("5", 1), ("2.5", 1)]
    assert body["total"] == 186250


def test_contract_example_300_minutes_and_fixed_dose(api, price_list):
    body = quote(api, infusion(dose={"grams": "25"}, duration_minutes=300))
    assert [line["amount"] for line in body["lines"]] == [142000, 45000]
    assert body["total"] == 187000


def test_vials_reported_as_dispensed_override_the_choice(api, price_list):
    body = quote(api, infusion(vials_dispensed=[{"grams": "10", "count": 3}]))
    assert body["lines"][0]["amount"] == 168000
    assert body["lines"][0]["vials"] == [{"grams": "10", "count": 3, "unit_amount": 56000}]


def test_a_course_uses_the_price_list_of_each_date(api, price_list):
    newer = price_list_document(effective_from=days_ahead(60))
    newer["infusion_service"] = {"tiers": [{"up_to_minutes": 240, "amount": 40000}], "extra_per_30_minutes": None}
    assert api.post("/api/v1/price-lists", json=newer).status_code == 201
    body = quote(api, {"course": [infusion(), infusion(service_date=days_ahead(64))]})
    assert [q["total"] for q in body["infusions"]] == [203000, 208000]
    assert [q["price_list"]["version"] for q in body["infusions"]] == [1, 2]
    assert (body["subtotal"], body["tax"], body["total"]) == (411000, 0, 411000)
    assert body["estimate"] is True


@pytest.mark.parametrize(
    "body, field",
    [
        (infusion(dose={"grams": "0"}), "dose.grams"),
        (infusion(dose={"grams": "250"}), "dose.grams"),
        (infusion(dose={"grams_per_kg": "2.5", "weight_kg": "60"}), "dose.grams_per_kg"),
        (infusion(dose={"grams_per_kg": "0.4", "weight_kg": "-1"}), "dose.weight_kg"),
        (infusion(dose={"grams_per_kg": "0.4", "weight_kg": "301"}), "dose.weight_kg"),
        (infusion(dose={"grams_per_kg": "0.4"}), "dose"),
        (infusion(dose={}), "dose"),
        (infusion(dose={"grams": "abc"}), "dose.grams"),
        (infusion(dose={"grams": "NaN"}), "dose.grams"),
        (infusion(duration_minutes=0), "duration_minutes"),
        (infusion(duration_minutes=721), "duration_minutes"),
        (infusion(product_code="NOPE"), "product_code"),
        (infusion(service_date="2025-06-01"), "service_date"),
        (infusion(service_date="yesterday"), "service_date"),
        (infusion(vials_dispensed=[{"grams": "7", "count": 1}]), "vials_dispensed.0.grams"),
        (infusion(vials_dispensed=[{"grams": "10", "count": 0}]), "vials_dispensed.0.count"),
        (infusion(other_items=[{"code": "X"}]), "other_items.0.description"),
        ({"course": []}, "course"),
        ({"course": [infusion(), infusion(dose={"grams": "-1"})]}, "course.1.dose.grams"),
        ({"course": [infusion(product_code="NOPE")]}, "course.0.product_code"),
        ({**infusion(), "course": [infusion()]}, "product_code"),
        ({**infusion(), "surprise": 1}, "surprise"),
    ],
)
def test_every_refused_input_is_422_naming_the_field_and_stores_nothing(app, api, price_list, body, field):
    before = row_counts(app)
    response = api.post("/api/v1/quotes", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"], response.get_json()
    assert row_counts(app) == before

"""Price list versions through the API: stored whole, numbered, immutable, chosen by date."""

from __future__ import annotations

from tests.conftest import row_counts
from tests.factories import days_ahead, infusion, price_list_document


def create(api, **changes):
    response = api.post("/api/v1/price-lists", json=price_list_document(**changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_created_version_comes_back_as_sent_with_id_and_version(api):
    body = create(api)
    assert body["id"].startswith("pl_") and body["version"] == 1
    sent = price_list_document()
    for key in ("effective_from", "currency", "statement", "infusion_service", "tax", "cancellation"):
        assert body[key] == sent[key]
    assert body["products"][0]["vials"] == [
        {"grams": "5", "unit_amount": 30000}, {"grams": "10", "unit_amount": 56000},
        {"grams": "20", "unit_amount": 112000}]
    assert api.get(f"/api/v1/price-lists/{body['id']}").get_json() == body


def test_versions_number_in_order_of_creation_and_list_newest_first(api):
    ids = [create(api, effective_from=date)["id"] for date in ("2026-01-01", days_ahead(1), days_ahead(2))]
    page = api.get("/api/v1/price-lists?limit=2").get_json()
    assert [p["version"] for p in page["data"]] == [3, 2] and page["has_more"] is True
    rest = api.get(f"/api/v1/price-lists?limit=2&starting_after={ids[1]}").get_json()
    assert [p["id"] for p in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_versions_cannot_be_changed(api):
    body = create(api)
    assert api.patch(f"/api/v1/price-lists/{body['id']}", json={"currency": "EUR"}).status_code == 405
    assert api.client.put(f"/api/v1/price-lists/{body['id']}", headers=api.headers, json={}).status_code == 405


def test_current_is_the_version_in_effect_on_the_date(api):
    v1 = create(api, effective_from="2026-01-01")
    v2 = create(api, effective_from=days_ahead(40))
    assert api.get(f"/api/v1/price-lists/current?date={days_ahead(39)}").get_json()["id"] == v1["id"]
    assert api.get(f"/api/v1/price-lists/current?date={days_ahead(40)}").get_json()["id"] == v2["id"]
    missing = api.get("/api/v1/price-lists/current?date=2025-06-01")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_a_later_version_for_the_same_date_supersedes(api):
    create(api, effective_from="2026-01-01")
    create(api, effective_from=days_ahead(10))
    fix = create(api, effective_from=days_ahead(10))
    assert api.get(f"/api/v1/price-lists/current?date={days_ahead(11)}").get_json()["id"] == fix["id"]


def test_a_later_version_cant_take_effect_before_today(app, api):
    create(api, effective_from="2026-01-01")
    before = row_counts(app)
    response = api.post("/api/v1/price-lists", json=price_list_document(effective_from=days_ahead(-1)))
    assert response.status_code == 422 and "effective_from" in response.get_json()["errors"]
    assert "credit note" in response.get_json()["errors"]["effective_from"][0]
    assert row_counts(app) == before
    assert api.post("/api/v1/price-lists", json=price_list_document(effective_from=days_ahead(0))).status_code == 201


def test_an_unknown_id_is_404(api):
    assert api.get("/api/v1/price-lists/pl_nope").status_code == 404


def test_invalid_price_lists_are_422_with_fields_and_store_nothing(app, api):
    before = row_counts(app)
    doc = price_list_document(currency="XYZ")
    doc["products"][0]["vials"].append({"grams": "5", "unit_amount": 1})
    doc["infusion_service"]["tiers"][1]["up_to_minutes"] = 60
    response = api.post("/api/v1/price-lists", json=doc)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"currency"}  # schema errors come first
    doc["currency"] = "GBP"
    response = api.post("/api/v1/price-lists", json=doc)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"products.0.vials.3.grams", "infusion_service.tiers.1.up_to_minutes"}
    bad_amount = price_list_document()
    bad_amount["products"][0]["vials"][0]["unit_amount"] = 300.5
    assert set(api.post("/api/v1/price-lists", json=bad_amount).get_json()["errors"]) == {
        "products.0.vials.0.unit_amount"}
    assert row_counts(app) == before


# These two run in this order: the second must not see what the first left in the process's
# memory of "the version in effect" (the tables are emptied between tests, so is the memory).
def test_a_version_in_effect_is_found_and_remembered(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201
    assert api.get("/api/v1/price-lists/current?date=2026-12-01").status_code == 200


def test_with_no_price_list_nothing_is_in_effect_even_after_a_test_that_had_one(api):
    assert api.get("/api/v1/price-lists/current?date=2026-12-01").status_code == 404
    quote = api.post("/api/v1/quotes", json=infusion())
    assert quote.status_code == 422, quote.get_json()

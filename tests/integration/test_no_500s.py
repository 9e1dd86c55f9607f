"""No input ever gets a 500: arbitrary JSON at every endpoint that takes a body answers a
clear 4xx problem (or a 2xx), never a server error, and never HTML."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.webhooks import sign
from tests.factories import BOOKING_SECRET, booking_event, days_ahead, infusion, invoice_body, price_list_document

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["0", "-1", "1e309", "NaN", "Infinity", "25", "2026-12-01",
                                                           "IVIG10-5-10-20", "", "   "]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=20)


def mutations(base: dict) -> st.SearchStrategy:
    """The valid body with one field (at any depth) replaced by anything, or dropped."""
    paths = []

    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                paths.append(path + (k,))
                walk(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                paths.append(path + (i,))
                walk(v, path + (i,))
    walk(base, ())

    def apply(path, replacement, drop):
        body = json.loads(json.dumps(base))
        target = body
        for key in path[:-1]:
            target = target[key]
        if drop and isinstance(target, dict):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = replacement
        return body
    return st.builds(apply, st.sampled_from(paths), json_values, st.booleans())


def bodies(base: dict) -> st.SearchStrategy:
    return st.one_of(json_values, mutations(base))


@pytest.fixture(autouse=True)
def world(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def assert_clean(response):
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"


FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=bodies(infusion()))
def test_quotes(api, body):
    assert_clean(api.post("/api/v1/quotes", json=body))


@FUZZ
@given(body=bodies({"course": [infusion(), infusion(service_date="2027-01-05")]}))
def test_courses(api, body):
    assert_clean(api.post("/api/v1/quotes", json=body))


@FUZZ
@given(body=bodies(price_list_document()))
def test_price_lists(api, body):
    assert_clean(api.post("/api/v1/price-lists", json=body))


@FUZZ
@given(body=bodies(invoice_body(bill_to={"name": "Sam", "email": "s@example.org"})))
def test_invoices(api, body):
    assert_clean(api.post("/api/v1/invoices", json=body))


@FUZZ
@given(body=bodies({"amount": 1000, "method": "cash", "reference": "r", "received_on": days_ahead(0)}),
       refund=bodies({"amount": 100, "reason": "r"}), patch=bodies(infusion()))
def test_money_and_edits(api, body, refund, patch):
    draft = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    assert_clean(api.patch(f"/api/v1/invoices/{draft['id']}", json=patch))
    api.post(f"/api/v1/invoices/{draft['id']}/finalize")
    assert_clean(api.post(f"/api/v1/invoices/{draft['id']}/payments", json=body))
    assert_clean(api.post(f"/api/v1/invoices/{draft['id']}/refunds", json=refund))


@FUZZ
@given(body=bodies(booking_event("infusion.completed", event_id="evt_fuzz", vials_dispensed=[{"grams": "10", "count": 3}])))
def test_signed_booking_events(client, body):
    raw = json.dumps(body).encode()
    assert_clean(client.post("/api/v1/webhooks/booking", data=raw, headers={
        "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, raw)}))


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["limit", "starting_after", "status", "patient_id", "booking_id", "date"]),
                             st.text(max_size=20), max_size=4))
def test_list_queries(api, query):
    for path in ("/api/v1/invoices", "/api/v1/price-lists", "/api/v1/price-lists/current", "/api/v1/booking-events"):
        assert_clean(api.client.get(path, query_string=query, headers=api.headers))


@pytest.fixture
def staff_client(app, client):
    import re

    from billing.access import create_user

    with app.app_context():
        create_user("fuzz@clinic.example", "admin", "fuzzing password")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/login", data={"email": "fuzz@clinic.example", "password": "fuzzing password", "csrf_token": token})
    assert client.get("/").status_code == 200  # signed in: the pages below are really rendered
    return client, token


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["product_code", "dose_mode", "grams_per_kg", "weight_kg", "grams",
                                              "duration_minutes", "service_date", "status", "q", "date_from",
                                              "date_to", "after", "from", "to", "outcome"]),
                             st.one_of(st.text(max_size=15), st.sampled_from(["0.4", "68.5", "grams", "per_kg", "2026-12-01",
                                                                              "IVIG10-5-10-20", "-1", "1e999", "180"])),
                             max_size=8))
def test_staff_pages_with_any_query(staff_client, query):
    client, _ = staff_client
    for path in ("/price-lists/quote", "/invoices", "/reports", "/reports/invoices.csv", "/booking-events"):
        response = client.get(path, query_string=query)
        assert response.status_code < 500, (path, query)


@FUZZ
@given(form=st.dictionaries(st.sampled_from(["effective_from", "currency", "statement", "tiers", "extra_per_30",
                                             "product_tax_rate", "product_tax_label", "service_tax_rate",
                                             "service_tax_label", "products-0-code", "products-0-name",
                                             "products-0-pricing", "products-0-gram_price", "products-0-vials"]),
                            st.one_of(st.text(max_size=20), st.sampled_from(["2026-12-01", "GBP", "per_gram", "5 = x",
                                                                             "120 = 250.00", "abc = 1", "1e9", "-5"])),
                            max_size=10))
def test_the_price_list_form_with_anything(staff_client, form):
    client, token = staff_client
    response = client.post("/price-lists/new", data={**form, "csrf_token": token})
    assert response.status_code < 500, form

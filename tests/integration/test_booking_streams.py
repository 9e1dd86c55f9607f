"""Real senders retry, duplicate and reorder: the invoice comes out the same regardless."""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.webhooks import sign
from tests.factories import BOOKING_SECRET, booking_event, price_list_document

URL = "/api/v1/webhooks/booking"
_bookings = itertools.count()


@pytest.fixture(autouse=True)
def configured(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def post(client, event):
    body = json.dumps(event).encode()
    return client.post(URL, data=body, headers={"Content-Type": "application/json",
                                                "Booking-Signature": sign(BOOKING_SECRET, body)})


def stream(booking_id: str) -> list[dict]:
    """booked, updated ×3, completed: each carrying the whole booking as it then stood."""
    e = lambda i, type_, **changes: booking_event(  # noqa: E731
        type_, event_id=f"{booking_id}_evt_{i}", booking_id=booking_id, created=1000 + i * 10, **changes)
    return [
        e(0, "infusion.booked"),
        e(1, "infusion.updated", duration_minutes=200),
        e(2, "infusion.updated", duration_minutes=200, dose={"grams_per_kg": "0.4", "weight_kg": "68.5"}),
        e(3, "infusion.updated", duration_minutes=260, dose={"grams_per_kg": "0.4", "weight_kg": "68.5"},
          other_items=[{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}]),
        e(4, "infusion.completed", duration_minutes=250, dose={"grams_per_kg": "0.4", "weight_kg": "68.5"},
          vials_dispensed=[{"grams": "20", "count": 1}, {"grams": "5", "count": 2}],
          other_items=[{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}]),
    ]


def final_invoice(api, booking_id: str) -> dict:
    (invoice,) = api.get(f"/api/v1/invoices?booking_id={booking_id}").get_json()["data"]
    return {k: invoice[k] for k in ("status", "lines", "excluded_items", "subtotal", "tax", "total")}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(5)), repeats=st.lists(st.integers(0, 4), max_size=5), data=st.data())
def test_a_shuffled_stream_with_duplicates_ends_in_the_same_invoice(api, client, order, repeats, data):
    ordered_id, shuffled_id = f"bk_o{next(_bookings)}", f"bk_s{next(_bookings)}"
    for event in stream(ordered_id):
        assert post(client, event).status_code == 200
    events = stream(shuffled_id)
    deliveries = [events[i] for i in order]
    for i in repeats:  # duplicates, anywhere in the stream
        deliveries.insert(data.draw(st.integers(0, len(deliveries))), events[i])
    answers = [post(client, event) for event in deliveries]
    assert all(a.status_code == 200 for a in answers)
    expected = final_invoice(api, ordered_id)
    assert expected["status"] == "open" and expected["total"] == 172000 + 40000  # 20 g + 2 × 5 g vials; 250 minutes
    assert final_invoice(api, shuffled_id) == expected


def test_20_concurrent_deliveries_of_one_event_make_one_invoice(app, api):
    event = booking_event("infusion.booked", event_id="evt_storm", booking_id="bk_storm")
    body = json.dumps(event).encode()
    barrier = threading.Barrier(20)

    def deliver(_):
        client = app.test_client()
        barrier.wait(timeout=10)
        return client.post(URL, data=body, headers={"Content-Type": "application/json",
                                                    "Booking-Signature": sign(BOOKING_SECRET, body)})

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(deliver, range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    bodies = [a.get_json() for a in answers]
    assert sorted(b["result"] for b in bodies) == ["created"] + ["duplicate"] * 19
    assert len({b["invoice_id"] for b in bodies}) == 1
    invoices = api.get("/api/v1/invoices?booking_id=bk_storm").get_json()["data"]
    assert len(invoices) == 1 and invoices[0]["id"] == bodies[0]["invoice_id"]
    (recorded,) = api.get("/api/v1/booking-events?booking_id=bk_storm").get_json()["data"]
    assert recorded["deliveries"] == 20

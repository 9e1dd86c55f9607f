"""The booking system's webhook: signed, applied once, in order, each effect as the contract says."""

from __future__ import annotations

import json
import time

import pytest

from billing.webhooks import sign
from tests.conftest import row_counts
from tests.factories import BOOKING_SECRET, booking_event, days_ahead, price_list_document

URL = "/api/v1/webhooks/booking"


@pytest.fixture(autouse=True)
def configured(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def deliver(client, event, *, secret=BOOKING_SECRET, header=None, raw=None):
    body = raw if raw is not None else json.dumps(event).encode()
    signature = header if header is not None else sign(secret, body)
    return client.post(URL, data=body, headers={"Content-Type": "application/json", "Booking-Signature": signature})


def ok(client, event) -> dict:
    response = deliver(client, event)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def invoice(api, invoice_id):
    return api.get(f"/api/v1/invoices/{invoice_id}").get_json()


# --- signatures -------------------------------------------------------------------------------

def _bad_signatures():
    """Each case's header is made when its test runs, from the clock then: made at collection,
    a timestamp 400 s ahead was within the tolerance by the time a slow suite reached it."""
    event = booking_event("infusion.booked", event_id="evt_sig")
    body = json.dumps(event).encode()
    return [
        ("missing", body, lambda now: ""),
        ("malformed", body, lambda now: "v1=abc"),
        ("no v1", body, lambda now: f"t={now}"),
        ("wrong secret", body, lambda now: sign("not-the-secret", body)),
        ("old timestamp", body, lambda now: sign(BOOKING_SECRET, body, now - 400)),
        ("future timestamp", body, lambda now: sign(BOOKING_SECRET, body, now + 400)),
        ("tampered body", body.replace(b"25", b"35"), lambda now: sign(BOOKING_SECRET, body)),
    ]


@pytest.mark.parametrize("name, body, header", _bad_signatures(), ids=[c[0] for c in _bad_signatures()])
def test_a_bad_signature_is_401_and_changes_nothing(app, client, name, body, header):
    before = row_counts(app)
    response = deliver(client, None, raw=body, header=header(int(time.time())))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert row_counts(app) == before


def test_rotated_secrets_are_accepted(app, client, monkeypatch):
    event = booking_event("infusion.booked", event_id="evt_rot")
    body = json.dumps(event).encode()
    t = int(time.time())
    old, new = sign("old-secret", body, t), sign(BOOKING_SECRET, body, t)
    # The sender signs with both during the rotation …
    both = f"{old},v1={new.split('v1=')[1]}"
    assert deliver(client, None, raw=body, header=both).status_code == 200
    # … and we may hold both secrets while the sender switches.
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", ["new-secret", BOOKING_SECRET])
    second = booking_event("infusion.updated", event_id="evt_rot2", created=event["created"] + 1)
    assert deliver(client, second).status_code == 200


def test_without_a_secret_the_endpoint_is_503(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [])
    assert deliver(client, booking_event("infusion.booked", event_id="evt_x")).status_code == 503


def test_a_signed_body_that_is_not_json_is_400(client):
    assert deliver(client, None, raw=b"{nope").status_code == 400


# --- effects ----------------------------------------------------------------------------------

def test_booked_creates_a_draft_and_updated_reprices_it(api, client):
    created = ok(client, booking_event("infusion.booked", event_id="evt_1", other_items=[
        {"code": "ET", "description": "Embryo transfer", "category": "fertility_treatment"}]))
    assert created["result"] == "created" and created["event_id"] == "evt_1"
    draft = invoice(api, created["invoice_id"])
    assert (draft["status"], draft["booking_id"], draft["total"]) == ("draft", "bk_123", 177000)
    assert [e["code"] for e in draft["excluded_items"]] == ["ET"]
    assert [line["category"] for line in draft["lines"]] == ["immunoglobulin_product", "infusion_service"]
    updated = ok(client, booking_event("infusion.updated", event_id="evt_2", created=1764576100,
                                       duration_minutes=300))
    assert (updated["result"], updated["invoice_id"]) == ("updated", created["invoice_id"])
    assert invoice(api, created["invoice_id"])["total"] == 142000 + 45000


def test_completed_applies_the_vials_used_and_finalizes(api, client):
    booked = ok(client, booking_event("infusion.booked", event_id="evt_1"))
    done = ok(client, booking_event("infusion.completed", event_id="evt_2", created=1764580000,
                                    vials_dispensed=[{"grams": "10", "count": 3}], duration_minutes=200))
    assert (done["result"], done["invoice_id"]) == ("finalized", booked["invoice_id"])
    issued = invoice(api, done["invoice_id"])
    assert issued["status"] == "open" and issued["number"].startswith("INV-")
    assert issued["lines"][0]["vials"] == [{"grams": "10", "count": 3, "unit_amount": 56000}]
    assert (issued["lines"][0]["amount"], issued["lines"][1]["amount"], issued["total"]) == (168000, 35000, 203000)


def test_completed_alone_creates_and_finalizes(api, client):
    done = ok(client, booking_event("infusion.completed", event_id="evt_only"))
    assert done["result"] == "finalized"
    assert invoice(api, done["invoice_id"])["status"] == "open"


def test_cancelled_without_prepared_product_voids_the_draft(api, client):
    booked = ok(client, booking_event("infusion.booked", event_id="evt_1"))
    cancelled = ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=1764576100,
                                         product_prepared=False))
    assert (cancelled["result"], cancelled["invoice_id"]) == ("voided", booked["invoice_id"])
    assert invoice(api, booked["invoice_id"])["status"] == "void"


def test_cancelled_with_prepared_product_invoices_the_product_alone(api, client):
    booked = ok(client, booking_event("infusion.booked", event_id="evt_1",
                                      dose={"grams_per_kg": "0.4", "weight_kg": "68.5"}))
    cancelled = ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=1764576100,
                                         dose={"grams_per_kg": "0.4", "weight_kg": "68.5"}, product_prepared=True))
    assert cancelled["result"] == "finalized"
    assert cancelled["invoice_id"] != booked["invoice_id"]
    assert invoice(api, booked["invoice_id"])["status"] == "void"
    charge = invoice(api, cancelled["invoice_id"])
    assert charge["status"] == "open"
    assert [(line["category"], line["amount"]) for line in charge["lines"]] == [("immunoglobulin_product", 168000)]
    assert (charge["subtotal"], charge["total"]) == (168000, 168000)


def test_prepared_product_is_not_charged_when_the_price_list_says_so(api, client):
    no_charge = price_list_document(effective_from=days_ahead(0), cancellation={"charge_prepared_product": False})
    assert api.post("/api/v1/price-lists", json=no_charge).status_code == 201
    booked = ok(client, booking_event("infusion.booked", event_id="evt_1", service_date=days_ahead(7)))
    cancelled = ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=1764576100,
                                         product_prepared=True, service_date=days_ahead(7)))
    assert (cancelled["result"], cancelled["invoice_id"]) == ("voided", booked["invoice_id"])


def test_an_event_for_a_paid_invoice_changes_nothing_and_is_flagged(api, client):
    done = ok(client, booking_event("infusion.completed", event_id="evt_1"))
    api.post(f"/api/v1/invoices/{done['invoice_id']}/payments", json={"amount": 177000, "method": "card_terminal"})
    paid = invoice(api, done["invoice_id"])
    later = ok(client, booking_event("infusion.updated", event_id="evt_2", created=1764590000, duration_minutes=400))
    assert later["result"] == "ignored" and "paid" in later["flag"]
    after = invoice(api, done["invoice_id"])
    assert after.pop("attention") == later["flag"]  # told where staff look: on the invoice …
    assert paid.pop("attention") is None and after == paid  # nothing else changed
    trail = api.get(f"/api/v1/invoices/{done['invoice_id']}/audit").get_json()["data"]
    assert (trail[-1]["action"], trail[-1]["detail"]["flag"]) == ("flagged", later["flag"])  # … and in its trail
    events = api.get("/api/v1/booking-events?booking_id=bk_123").get_json()["data"]
    assert events[0]["flag"] == later["flag"]


# --- once, in order ---------------------------------------------------------------------------

def test_the_same_event_twice_applies_once(app, api, client):
    event = booking_event("infusion.booked", event_id="evt_dup")
    first = ok(client, event)
    counts = row_counts(app)
    again = ok(client, event)
    assert again == {**first, "result": "duplicate"}
    assert {k: v for k, v in row_counts(app).items()} == counts
    assert api.get("/api/v1/booking-events").get_json()["data"][0]["deliveries"] == 2


def test_an_older_event_after_a_newer_one_is_stale(api, client):
    ok(client, booking_event("infusion.booked", event_id="evt_1", created=100))
    ok(client, booking_event("infusion.updated", event_id="evt_3", created=300, duration_minutes=300))
    stale = ok(client, booking_event("infusion.updated", event_id="evt_2", created=200, duration_minutes=60))
    assert stale["result"] == "stale"
    assert invoice(api, stale["invoice_id"])["lines"][1]["duration_minutes"] == 300


def test_unknown_types_are_acknowledged_and_recorded(api, client):
    result = ok(client, {"id": "evt_u", "type": "patient.merged", "created": 5, "data": {"x": 1}})
    assert (result["result"], result["invoice_id"]) == ("ignored", None)
    assert api.get("/api/v1/booking-events").get_json()["data"][0]["type"] == "patient.merged"


def test_an_unknown_product_is_422_recorded_and_replayable_once_fixed(app, api, client):
    event = booking_event("infusion.booked", event_id="evt_bad", product_code="IVIG-NEW", service_date=days_ahead(7))
    response = deliver(client, event)
    assert response.status_code == 422
    body = response.get_json()
    assert "IVIG-NEW" in body["detail"] and body["event_id"] == "evt_bad"
    assert "data.product_code" in body["errors"]
    failed = api.get("/api/v1/booking-events?outcome=failed").get_json()["data"]
    assert [(e["id"], e["outcome"]) for e in failed] == [("evt_bad", "failed")]
    assert "IVIG-NEW" in failed[0]["error"]
    assert api.get("/api/v1/invoices").get_json()["data"] == []
    # finance fixes the price list, then replays
    fixed = price_list_document(effective_from=days_ahead(0))
    fixed["products"][0]["code"] = "IVIG-NEW"
    assert api.post("/api/v1/price-lists", json=fixed).status_code == 201
    replayed = api.post("/api/v1/booking-events/evt_bad/replay").get_json()
    assert replayed["result"] == "created" and invoice(api, replayed["invoice_id"])["total"] == 177000
    assert api.post("/api/v1/booking-events/evt_bad/replay").status_code == 409


def test_an_incomplete_booking_is_422_naming_the_fields(client):
    event = booking_event("infusion.booked", event_id="evt_inc")
    del event["data"]["dose"]
    response = deliver(client, event)
    assert response.status_code == 422
    assert "data.dose" in response.get_json()["errors"]


def test_an_event_without_an_id_is_422(client):
    response = deliver(client, {"type": "infusion.booked", "created": 1})
    assert response.status_code == 422
    assert "id" in response.get_json()["errors"]


def test_a_failed_event_retried_by_the_sender_is_tried_again_and_counted(api, client):
    event = booking_event("infusion.booked", event_id="evt_retry", product_code="IVIG-LATER", service_date=days_ahead(7))
    assert deliver(client, event).status_code == 422
    assert deliver(client, event).status_code == 422
    (recorded,) = api.get("/api/v1/booking-events").get_json()["data"]
    assert (recorded["outcome"], recorded["deliveries"]) == ("failed", 2)
    fixed = price_list_document(effective_from=days_ahead(0))
    fixed["products"][0]["code"] = "IVIG-LATER"
    api.post("/api/v1/price-lists", json=fixed)
    assert ok(client, event)["result"] == "created"
    (recorded,) = api.get("/api/v1/booking-events").get_json()["data"]
    assert (recorded["outcome"], recorded["deliveries"], recorded["error"]) == ("created", 3, None)

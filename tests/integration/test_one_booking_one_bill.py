"""One booking, one bill: each seam found between booking events and invoices, as a test
(CONTRACT.md section 5), through the signed webhook and the API."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest

from tests.conftest import row_counts
from tests.factories import BOOKING_SECRET, booking_event, invoice_body, open_invoice, payment_link, price_list_document
from tests.integration.test_booking_webhook import deliver, invoice, ok


@pytest.fixture(autouse=True)
def configured(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def invoices_of(api, booking_id: str) -> list[dict]:
    return api.get(f"/api/v1/invoices?booking_id={booking_id}").get_json()["data"]


def later(n: int) -> int:
    return 1764576000 + n * 100


# --- a booking's invoice is found by its booking id, whoever made it ---------------------------

def test_an_invoice_made_through_the_api_is_the_bookings_and_is_never_doubled(api, client):
    made = api.post("/api/v1/invoices", json=invoice_body(booking_id="bk_1")).get_json()
    api.post(f"/api/v1/invoices/{made['id']}/finalize")
    answer = ok(client, booking_event("infusion.completed", event_id="evt_1", booking_id="bk_1"))
    assert (answer["result"], answer["invoice_id"]) == ("ignored", made["id"])
    assert "completed again" in answer["flag"]
    assert [i["id"] for i in invoices_of(api, "bk_1")] == [made["id"]]


def test_events_bring_an_api_made_draft_up_to_date_and_issue_it(api, client):
    made = api.post("/api/v1/invoices", json=invoice_body(booking_id="bk_1")).get_json()
    answer = ok(client, booking_event("infusion.completed", event_id="evt_1", booking_id="bk_1"))
    assert (answer["result"], answer["invoice_id"]) == ("finalized", made["id"])
    issued = invoice(api, made["id"])
    assert (issued["status"], issued["total"]) == ("open", 177000)  # the booking's 25 g, not the draft's 27.4 g
    assert len(invoices_of(api, "bk_1")) == 1


def test_a_second_invoice_for_a_booking_with_a_live_one_is_409(app, api, client):
    ok(client, booking_event("infusion.booked", event_id="evt_1", booking_id="bk_1"))
    before = row_counts(app)
    second = api.post("/api/v1/invoices", json=invoice_body(booking_id="bk_1"))
    assert second.status_code == 409 and "already has invoice" in second.get_json()["detail"]
    assert row_counts(app) == before


# --- booking_id is immutable once set ----------------------------------------------------------

def test_a_drafts_booking_id_cant_change_so_bookings_cant_split(app, api, client):
    a = ok(client, booking_event("infusion.booked", event_id="evt_a", booking_id="A"))
    moved = api.patch(f"/api/v1/invoices/{a['invoice_id']}", json={"booking_id": "B"})
    assert moved.status_code == 409 and "can't change" in moved.get_json()["detail"]
    ok(client, booking_event("infusion.booked", event_id="evt_b", booking_id="B"))
    done = ok(client, booking_event("infusion.completed", event_id="evt_a2", booking_id="A", created=later(1),
                                    dose={"grams": "40"}))
    assert done["invoice_id"] == a["invoice_id"]
    assert invoice(api, a["invoice_id"])["booking_id"] == "A" and invoice(api, a["invoice_id"])["total"] == 259000
    assert [len(invoices_of(api, b)) for b in ("A", "B")] == [1, 1]


def test_a_draft_without_a_booking_can_be_given_one_once(api, client):
    draft = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    assert api.patch(f"/api/v1/invoices/{draft['id']}", json={"booking_id": "bk_9"}).status_code == 200
    answer = ok(client, booking_event("infusion.completed", event_id="evt_1", booking_id="bk_9"))
    assert answer["invoice_id"] == draft["id"]
    other = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    taken = api.patch(f"/api/v1/invoices/{other['id']}", json={"booking_id": "bk_9"})
    assert taken.status_code == 409


# --- rebookings --------------------------------------------------------------------------------

def test_a_rebooking_after_a_prepared_cancellation_is_billed_anew(api, client):
    ok(client, booking_event("infusion.booked", event_id="evt_1"))
    cancelled = ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=later(1),
                                         product_prepared=True))
    product_only = invoice(api, cancelled["invoice_id"])
    rebooked = ok(client, booking_event("infusion.booked", event_id="evt_3", created=later(2)))
    assert rebooked["result"] == "created" and rebooked["invoice_id"] != cancelled["invoice_id"]
    done = ok(client, booking_event("infusion.completed", event_id="evt_4", created=later(3)))
    assert (done["result"], done["invoice_id"]) == ("finalized", rebooked["invoice_id"])
    assert invoice(api, done["invoice_id"])["total"] == 177000
    assert invoice(api, cancelled["invoice_id"]) == product_only  # stays as it was


def test_a_rebooking_after_a_plain_cancellation_is_billed_anew(api, client):
    booked = ok(client, booking_event("infusion.booked", event_id="evt_1"))
    ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=later(1)))
    again = ok(client, booking_event("infusion.completed", event_id="evt_3", created=later(2)))
    assert again["result"] == "finalized" and again["invoice_id"] != booked["invoice_id"]
    assert invoice(api, booked["invoice_id"])["status"] == "void"


def test_a_repeated_cancellation_changes_nothing(api, client):
    ok(client, booking_event("infusion.booked", event_id="evt_1"))
    first = ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=later(1), product_prepared=True))
    again = ok(client, booking_event("infusion.cancelled", event_id="evt_3", created=later(2), product_prepared=True))
    assert again["result"] == "ignored" and "flag" not in again
    assert invoice(api, first["invoice_id"])["attention"] is None


# --- dispensed vials ---------------------------------------------------------------------------

@pytest.mark.parametrize("dispensed, field", [
    ([], "data.vials_dispensed"),
    ([{"grams": "20", "count": 100}], "data.vials_dispensed"),
    ([{"grams": "5", "count": 1}] * 21, "data.vials_dispensed"),
    ([{"grams": "20", "count": 0}], "data.vials_dispensed.0.count"),
    ([{"grams": "7", "count": 1}], "data.vials_dispensed.0.grams"),
])
def test_dispensed_vials_are_checked_on_the_webhook_as_on_the_api(app, api, client, dispensed, field):
    before = row_counts(app)
    for type_, extra in (("infusion.completed", {}), ("infusion.cancelled", {"product_prepared": True})):
        response = deliver(client, booking_event(type_, event_id=f"evt_{type_}", vials_dispensed=dispensed, **extra))
        assert response.status_code == 422, response.get_json()
        assert field in response.get_json()["errors"], response.get_json()
    assert api.get("/api/v1/invoices").get_json()["data"] == []
    assert row_counts(app)["invoices"] == before["invoices"]
    by_api = api.post("/api/v1/invoices", json=invoice_body(vials_dispensed=dispensed))
    assert by_api.status_code == 422 and field.removeprefix("data.") in by_api.get_json()["errors"], by_api.get_json()


def test_more_dispensed_than_a_spare_vial_stays_a_draft_flagged_for_staff(api, client):
    answer = ok(client, booking_event("infusion.completed", event_id="evt_1", vials_dispensed=[{"grams": "20", "count": 3}]))
    assert answer["result"] == "updated" and "left a draft" in answer["flag"]
    draft = invoice(api, answer["invoice_id"])
    assert (draft["status"], draft["lines"][0]["quantity"], draft["total"]) == ("draft", "60", 371000)
    assert draft["attention"] == answer["flag"]
    # a plausible count (one spare 10 g vial short of the next size) is issued as usual
    fine = ok(client, booking_event("infusion.completed", event_id="evt_2", booking_id="bk_2",
                                    vials_dispensed=[{"grams": "20", "count": 1}, {"grams": "10", "count": 1}]))
    assert fine["result"] == "finalized" and invoice(api, fine["invoice_id"])["total"] == 203000


# --- replays -----------------------------------------------------------------------------------

def test_replays_racing_apply_an_event_at_most_once(app, api, client):
    done = ok(client, booking_event("infusion.completed", event_id="evt_done"))
    failed = deliver(client, booking_event("infusion.booked", event_id="evt_bad", booking_id="bk_2",
                                           product_code="IVIG-NEW", service_date=_today(7)))
    assert failed.status_code == 422
    api.post("/api/v1/price-lists", json={**price_list_document(effective_from=_today(0)),
                                          "products": [{**price_list_document()["products"][0], "code": "IVIG-NEW"}]})
    for event_id, expected in (("evt_done", [409, 409, 409]), ("evt_bad", [200, 409, 409])):
        barrier = threading.Barrier(3)
        answers = []

        def replay():
            c = app.test_client()
            barrier.wait(timeout=10)
            answers.append(c.post(f"/api/v1/booking-events/{event_id}/replay", headers=api.headers).status_code)

        threads = [threading.Thread(target=replay) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(answers) == expected, event_id
    events = {e["id"]: e for e in api.get("/api/v1/booking-events").get_json()["data"]}
    assert (events["evt_done"]["outcome"], events["evt_bad"]["outcome"]) == ("finalized", "created")
    assert invoice(api, done["invoice_id"])["attention"] is None
    assert len(invoices_of(api, "bk_2")) == 1


def _today(days: int) -> str:
    from tests.factories import days_ahead

    return days_ahead(days)


# --- the payer, and Stripe's refusals -----------------------------------------------------------

def test_a_product_only_invoice_keeps_the_payer(api, client):
    booked = ok(client, booking_event("infusion.booked", event_id="evt_1"))
    payer = {"name": "Acme Health Insurance", "email": "claims@acme.example", "address": "1 Way, Leeds"}
    assert api.patch(f"/api/v1/invoices/{booked['invoice_id']}", json={"bill_to": payer}).status_code == 200
    cancelled = ok(client, booking_event("infusion.cancelled", event_id="evt_2", created=later(1), product_prepared=True))
    assert invoice(api, cancelled["invoice_id"])["bill_to"] == {**payer, "reference": None}


def test_an_unknown_payment_intent_on_the_return_page_is_not_a_500(api, client, stripe_on):
    for voided in (False, True):
        made = open_invoice(api)
        path = urlsplit(payment_link(api, made["id"])).path
        if voided:
            api.post(f"/api/v1/invoices/{made['id']}/void")
        response = client.get(f"{path}/done?payment_intent=pi_doesnotexist")
        assert response.status_code in (200, 302, 303), response.status_code
        assert response.status_code != 500


def test_a_refund_stripe_refuses_is_a_409_problem(app, api):
    from billing import invoicing
    from tests.doubles import CountingGateway

    made = open_invoice(api)
    with app.app_context():
        invoicing.book_card_payment(invoicing.CardPayment("pi_1", made["id"], 203000, "GBP"))
    gateway = CountingGateway()
    gateway.refuse = "Charge ch_1 has already been refunded."
    app.extensions["stripe_gateway"] = gateway
    try:
        response = api.post(f"/api/v1/invoices/{made['id']}/refunds", json={"amount": 1000, "reason": "x"})
    finally:
        app.extensions.pop("stripe_gateway", None)
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert "already been refunded" in response.get_json()["detail"]
    state = invoice(api, made["id"])
    assert (state["amount_refunded"], [r["status"] for r in state["refunds"]]) == (0, ["failed"])

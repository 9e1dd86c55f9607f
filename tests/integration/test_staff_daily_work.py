"""A finance officer's day on the staff pages: money in pounds (errors too), what an invoice's
figures mean, the reason for voiding or writing off, one verb for issuing, and failed booking
events that say what to do and can be dismissed with a note."""

from __future__ import annotations

import re
from html import unescape

import pytest

from billing.access import create_api_key
from billing.clock import today_at_clinic
from tests.conftest import row_counts
from tests.factories import SHORTER, booking_event, days_ahead, invoice_body, open_invoice, price_list_document
from tests.integration.test_booking_webhook import deliver
from tests.integration.test_staff_web import sign_in, token
from tests.integration.test_staff_web import users  # noqa: F401  (the fixture)

@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def text_of(response) -> str:
    """The page's words, tags dropped and spaces collapsed, as a reader sees them."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def post_form(client, path: str, *, page: str | None = None, **data):
    """POST `data` with the CSRF token of the page the form is on (`page`, else `path` itself)."""
    return client.post(path, data={"csrf_token": token(client.get(page or path)), **data})


# --- amounts in pounds, errors included ---------------------------------------------------------

def test_an_overpayment_on_the_staff_page_reads_in_pounds_and_the_api_keeps_pence(app, client, api, users):
    invoice = open_invoice(api)  # 203000 due
    sign_in(client, "finance")
    before = row_counts(app)
    response = post_form(client, f"/invoices/{invoice['id']}/payment", amount="3000.00", method="cash",
                         received_on=today_at_clinic().isoformat())
    assert response.status_code == 422
    assert "£3,000.00 is more than the £2,030.00 due." in text_of(response)
    assert row_counts(app) == before
    problem = api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 300000, "method": "cash"})
    assert problem.status_code == 422
    assert problem.get_json()["detail"] == "300000 is more than the 203000 due."
    assert problem.get_json()["errors"] == {"amount": ["300000 is more than the 203000 due."]}


def test_a_refund_larger_than_what_was_paid_reads_in_pounds(client, api, users):
    invoice = open_invoice(api)
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 100000, "method": "cash"})
    sign_in(client, "finance")
    response = post_form(client, f"/invoices/{invoice['id']}/refund", amount="2,000.00", reason="Goodwill")
    assert response.status_code == 422
    assert "£2,000.00 is more than the £1,000.00 that can still be refunded." in text_of(response)


# --- what the invoice's figures mean --------------------------------------------------------------

def test_after_a_refund_the_invoice_page_explains_total_paid_refunded_net_and_due(client, api, users):
    invoice = open_invoice(api)
    api.post(f"/api/v1/invoices/{invoice['id']}/payments",
             json={"amount": 203000, "method": "bank_transfer", "reference": "BACS 7781"})
    sign_in(client, "finance")
    assert post_form(client, f"/invoices/{invoice['id']}/refund", amount="120.50",
                     reason="Infusion finished early").status_code == 303
    page = client.get(f"/invoices/{invoice['id']}")
    html, words = page.get_data(as_text=True), text_of(page)
    figures = {name: re.search(rf'id="{name}">([^<]+)<', html).group(1)
               for name in ("amount-total", "amount-paid", "amount-refunded", "amount-net", "amount-due")}
    assert figures == {"amount-total": "£2,030.00", "amount-paid": "£2,030.00", "amount-refunded": "£120.50",
                       "amount-net": "£1,909.50", "amount-due": "£0.00"}
    assert ("Due £0.00 = Total £2,030.00 − Paid £2,030.00. Refunds give back money already received without "
            "making it due again: Net received £1,909.50 = Paid £2,030.00 − Refunded £120.50.") in words
    today = today_at_clinic().isoformat()
    refund_row = re.search(r'<table id="refunds">.*?</table>', html, re.S).group(0)
    assert "By hand (Bank transfer)" in refund_row and today in refund_row
    assert f"Bank transfer of £2,030.00 on {today}, reference BACS 7781" in refund_row
    assert "pay_" not in html  # the payment is named by its reference, never its internal id
    assert "user:" not in html and "finance@clinic.example" in html  # the audit trail names the person


def test_a_part_paid_invoice_says_part_paid(client, api, users):
    invoice = open_invoice(api)
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 100000, "method": "cash"})
    sign_in(client, "viewer")
    html = client.get(f"/invoices/{invoice['id']}").get_data(as_text=True)
    heading = re.search(r"<h1>(.*?)</h1>", html, re.S).group(1)
    assert 'class="status open part-paid">part paid</span>' in heading
    assert re.search(r'id="amount-due">£1,030.00<', html)


def test_credit_notes_applied_are_part_of_the_explanation(client, api, users):
    invoice = open_invoice(api)
    assert api.post(f"/api/v1/invoices/{invoice['id']}/credit-notes", json=SHORTER).status_code == 201
    api.post(f"/api/v1/invoices/{invoice['id']}/payments", json={"amount": 50000, "method": "cash"})
    sign_in(client, "viewer")
    words = text_of(client.get(f"/invoices/{invoice['id']}"))
    assert "Due £1,430.00 = Total £2,030.00 − Paid £500.00 − credit notes applied £100.00." in words
    assert "Net received £500.00 = Paid £500.00 − Refunded £0.00." in words


# --- void and write-off ask why; issuing is "Issue" ---------------------------------------------

@pytest.mark.parametrize("action, status, label", [("void", "void", "voided"),
                                                    ("mark-uncollectible", "uncollectible", "written off")])
def test_void_and_write_off_ask_for_a_reason_kept_in_the_audit_trail(app, client, api, users, action, status, label):
    invoice = open_invoice(api)
    sign_in(client, "finance")
    path = f"/invoices/{invoice['id']}/{action}"
    assert "Reason (kept in the audit trail)" in client.get(path).get_data(as_text=True)
    before = row_counts(app)
    assert post_form(client, path, reason="   ").status_code == 422
    assert row_counts(app) == before
    done = post_form(client, path, reason="Patient moved to another clinic")
    assert done.status_code == 303
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["status"] == status
    trail = api.get(f"/api/v1/invoices/{invoice['id']}/audit").get_json()["data"]
    assert trail[-1]["detail"]["reason"] == "Patient moved to another clinic"
    words = text_of(client.get(f"/invoices/{invoice['id']}"))
    assert f"{label}: Patient moved to another clinic" in words
    assert ("Invoice voided." if action == "void" else "Invoice written off.") in words


def test_issuing_says_issue_on_the_link_the_confirmation_and_the_message(client, api, users):
    draft = api.post("/api/v1/invoices", json=invoice_body()).get_json()
    sign_in(client, "finance")
    page = client.get(f"/invoices/{draft['id']}").get_data(as_text=True)
    assert ">Issue</a>" in page and "Finalize" not in page
    confirm = client.get(f"/invoices/{draft['id']}/finalize").get_data(as_text=True)
    assert "Yes, issue this invoice" in confirm
    response = post_form(client, f"/invoices/{draft['id']}/finalize")
    assert response.status_code == 303
    issued = text_of(client.get(response.headers["Location"]))
    assert "Invoice issued." in issued and "issued draft → open" in issued and "finalized" not in issued


# --- admin: revoking a key asks first ---------------------------------------------------------------

def test_revoking_an_api_key_asks_for_confirmation_first(app, client, api, users):
    with app.app_context():
        key = create_api_key("Accounts export")
    sign_in(client, "admin")
    keys_page = client.get("/admin/api-keys").get_data(as_text=True)
    assert f'href="/admin/api-keys/{key.id}/revoke"' in keys_page
    confirm = client.get(f"/admin/api-keys/{key.id}/revoke")
    assert confirm.status_code == 200 and "Yes, revoke this key" in confirm.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {key.secret}"}
    assert client.get("/api/v1/invoices", headers=headers).status_code == 200  # asking revoked nothing
    assert client.post(f"/admin/api-keys/{key.id}/revoke", data={"csrf_token": token(confirm)}).status_code == 303
    assert client.get("/api/v1/invoices", headers=headers).status_code == 401


def test_staff_pages_link_a_favicon_that_exists(client, users):
    sign_in(client, "viewer")
    html = client.get("/").get_data(as_text=True)
    href = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', html).group(1)
    icon = client.get(href)
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert f'href="{href}"' in client.get("/login").get_data(as_text=True)


def test_the_live_price_says_why_it_is_missing(client, users):
    sign_in(client, "finance")
    page = client.get("/invoices/new")
    assert "The price appears here as you fill in the infusion." in page.get_data(as_text=True)
    preview = client.post("/invoices/new", headers={"X-Preview": "1"}, data={
        "csrf_token": token(page), "action": "preview", "product_code": "IVIG10-5-10-20", "dose_mode": "per_kg",
        "grams_per_kg": "0.4", "weight_kg": "68,5", "duration_minutes": "180", "service_date": days_ahead(7)})
    assert "No price yet: Weight (kg): Enter a number, like 0.4 or 68.5." in text_of(preview)


# --- failed booking events ------------------------------------------------------------------------

@pytest.fixture
def booking_webhook(app, monkeypatch):
    from tests.factories import BOOKING_SECRET

    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])


def failed_events(client) -> dict[str, str]:
    """Event id → its row's words, on the failed list."""
    html = client.get("/booking-events?outcome=failed").get_data(as_text=True)
    return {m.group(1): re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", m.group(2))))
            for m in re.finditer(r'<tr id="event-([^"]+)">(.*?)</tr>', html, re.S)}


def test_each_failure_says_what_to_do_and_the_row_names_the_patient(client, api, users, booking_webhook):
    unknown = booking_event("infusion.booked", event_id="evt_product", booking_id="bk_1", product_code="IVIG-NEW",
                            service_date=days_ahead(7))
    too_early = booking_event("infusion.booked", event_id="evt_date", booking_id="bk_2", service_date="2020-01-01")
    incomplete = booking_event("infusion.booked", event_id="evt_incomplete", booking_id="bk_3")
    del incomplete["data"]["dose"]
    too_much = booking_event("infusion.booked", event_id="evt_dose", booking_id="bk_4", dose={"grams": "500"},
                             patient={"id": "pt_4", "name": "Łucja Wróbel"})
    for event in (unknown, too_early, incomplete, too_much):
        assert deliver(client, event).status_code == 422, event["id"]
    sign_in(client, "finance")
    rows = failed_events(client)
    assert set(rows) == {"evt_product", "evt_date", "evt_incomplete", "evt_dose"}
    assert "What to do: The product isn't on the price list in effect on the service date: ask an admin to add " \
           "it (Price lists → new version), then Replay." in rows["evt_product"]
    assert "What to do: No price list covers the service date: ask an admin to add a price list version" \
        in rows["evt_date"]
    assert "have it corrected there" in rows["evt_incomplete"]
    assert "What to do: The dose or the vials can't be billed as sent" in rows["evt_dose"]
    assert "Alex Example" in rows["evt_product"] and "Łucja Wróbel" in rows["evt_dose"]


def test_a_failed_event_is_dismissed_with_a_note_and_leaves_the_failed_list(app, client, api, users,
                                                                             booking_webhook):
    event = booking_event("infusion.booked", event_id="evt_gone", product_code="IVIG-OLD", service_date=days_ahead(7))
    assert deliver(client, event).status_code == 422
    sign_in(client, "finance")
    dashboard = client.get("/").get_data(as_text=True)
    card = re.search(r'<a class="card warn" id="failed-events-card" href="([^"]+)">.*?class="big">(\d+)<', dashboard,
                     re.S)
    assert card.groups() == ("/booking-events?outcome=failed", "1")
    before = row_counts(app)
    refused = post_form(client, "/booking-events/evt_gone/dismiss", page="/booking-events", note="  ")
    assert refused.status_code == 303 and row_counts(app) == before
    assert "evt_gone" in failed_events(client)
    done = post_form(client, "/booking-events/evt_gone/dismiss", page="/booking-events", note="Invoiced by hand as INV-2026-000123")
    assert done.status_code == 303
    assert failed_events(client) == {}
    dismissed = text_of(client.get("/booking-events?outcome=dismissed"))
    assert "Dismissed by finance@clinic.example on" in dismissed
    assert "Invoiced by hand as INV-2026-000123" in dismissed
    assert re.search(r'id="failed-events-card".*?class="big">0<', client.get("/").get_data(as_text=True), re.S)
    (recorded,) = api.get("/api/v1/booking-events").get_json()["data"]
    assert recorded["outcome"] == "dismissed"
    # Dismissed is final: neither replayed nor dismissed again, and a redelivery is a duplicate.
    assert api.post("/api/v1/booking-events/evt_gone/replay").status_code == 409
    again = post_form(client, "/booking-events/evt_gone/dismiss", page="/booking-events", note="again")
    assert "only a failed event can be dismissed" in text_of(client.get(again.headers["Location"]))
    assert deliver(client, event).status_code == 200
    assert api.get("/api/v1/invoices").get_json()["data"] == []


def test_a_viewer_cant_dismiss(client, api, users, booking_webhook):
    event = booking_event("infusion.booked", event_id="evt_v", product_code="IVIG-OLD", service_date=days_ahead(7))
    deliver(client, event)
    sign_in(client, "viewer")
    page = client.get("/booking-events?outcome=failed")
    assert "/dismiss" not in page.get_data(as_text=True) and "What to do:" in page.get_data(as_text=True)
    assert client.post("/booking-events/evt_v/dismiss", data={"csrf_token": token(page), "note": "x"}).status_code == 403
    assert "evt_v" in failed_events(client)

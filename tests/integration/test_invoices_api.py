"""The invoice lifecycle through the API, with exact amounts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from billing.extensions import db
from billing.invoicing import today_at_clinic
from billing.models import InvoiceCounter
from tests.conftest import row_counts
from tests.factories import days_ahead, invoice_body, price_list_document

YEAR = today_at_clinic().year


@pytest.fixture(autouse=True)
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def create(api, **changes) -> dict:
    response = api.post("/api/v1/invoices", json=invoice_body(**changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def act(api, invoice, action, status=200, **kwargs) -> dict:
    response = api.post(f"/api/v1/invoices/{invoice['id']}/{action}", **kwargs)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def pay(api, invoice, amount, status=201, method="bank_transfer") -> dict:
    return act(api, invoice, "payments", status,
               json={"amount": amount, "method": method, "reference": "BACS 123", "received_on": days_ahead(-1)})


def test_a_draft_is_priced_like_a_quote_with_the_patient_and_payer(api):
    invoice = create(api, bill_to={"name": "Sam Partner", "email": "sam@example.org"}, booking_id="bk_123")
    assert invoice["id"].startswith("inv_")
    assert (invoice["status"], invoice["number"], invoice["issued_at"]) == ("draft", None, None)
    assert [line["amount"] for line in invoice["lines"]] == [168000, 35000]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"], invoice["amount_due"]) == (203000, 0, 203000, 203000)
    assert invoice["patient"] == {"id": "pt_9", "name": "Alex Example", "email": "alex@example.org", "address": None}
    assert invoice["bill_to"] == {"name": "Sam Partner", "email": "sam@example.org", "address": None, "reference": None}
    assert invoice["booking_id"] == "bk_123"
    assert invoice["price_list"]["version"] == 1
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json() == invoice


def test_patch_reprices_a_draft(api):
    invoice = create(api)
    response = api.patch(f"/api/v1/invoices/{invoice['id']}", json={"dose": {"grams": "25"}, "duration_minutes": 300})
    assert response.status_code == 200, response.get_json()
    changed = response.get_json()
    assert [line["amount"] for line in changed["lines"]] == [142000, 45000]
    assert changed["total"] == 187000
    assert changed["lines"][0]["dose_grams"] == "25"


def test_finalize_numbers_dates_and_freezes_the_invoice(api, app):
    invoice = create(api)
    opened = act(api, invoice, "finalize")
    assert opened["status"] == "open"
    assert opened["number"] == f"INV-{YEAR}-000001"
    issued = date.fromisoformat(opened["issued_at"][:10])
    assert opened["due_date"] == (today_at_clinic() + timedelta(days=14)).isoformat()
    assert abs((issued - today_at_clinic()).days) <= 1
    assert act(api, create(api), "finalize")["number"] == f"INV-{YEAR}-000002"
    # frozen: no edits, no second finalize, and a new price list changes nothing
    assert api.patch(f"/api/v1/invoices/{invoice['id']}", json={"duration_minutes": 60}).status_code == 409
    act(api, invoice, "finalize", 409)
    cheaper = price_list_document(effective_from=days_ahead(0))
    cheaper["infusion_service"]["tiers"] = [{"up_to_minutes": 240, "amount": 1000}]
    assert api.post("/api/v1/price-lists", json=cheaper).status_code == 201
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["total"] == 203000


def test_partial_then_full_payment_marks_it_paid(api):
    invoice = act(api, create(api), "finalize")
    part = pay(api, invoice, 100000)
    assert (part["status"], part["amount_paid"], part["amount_due"]) == ("open", 100000, 103000)
    assert part["payments"][0]["method"] == "bank_transfer"
    assert part["payments"][0]["received_on"] == days_ahead(-1)
    full = pay(api, invoice, 103000, method="card_terminal")
    assert (full["status"], full["amount_paid"], full["amount_due"]) == ("paid", 203000, 0)
    assert full["paid_at"] is not None
    pay(api, invoice, 1, status=409)


def test_overpayment_is_refused_and_changes_nothing(api, app):
    invoice = act(api, create(api), "finalize")
    before = row_counts(app)
    body = act(api, invoice, "payments", 422, json={"amount": 203001, "method": "cash"})
    assert "amount" in body["errors"]
    assert row_counts(app) == before
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["amount_paid"] == 0


@pytest.mark.parametrize("payment", [
    {"amount": 0, "method": "cash"}, {"amount": -5, "method": "cash"}, {"amount": 10.5, "method": "cash"},
    {"amount": "100", "method": "cash"}, {"amount": 100, "method": "cheque"}, {"amount": 100},
])
def test_bad_payments_are_422(api, payment):
    invoice = act(api, create(api), "finalize")
    act(api, invoice, "payments", 422, json=payment)


def test_payments_on_a_draft_or_void_invoice_are_409(api):
    draft = create(api)
    pay(api, draft, 100, status=409)
    act(api, draft, "void")
    pay(api, draft, 100, status=409)


def test_refunds_up_to_what_was_paid_newest_payment_first(api):
    invoice = act(api, create(api), "finalize")
    pay(api, invoice, 3000)
    paid = pay(api, invoice, 200000)
    first, second = paid["payments"]
    act(api, invoice, "refunds", 422, json={"amount": 203001, "reason": "too much"})
    refunded = act(api, invoice, "refunds", 201, json={"amount": 201000, "reason": "Infusion shortened"})
    assert (refunded["status"], refunded["amount_paid"], refunded["amount_refunded"]) == ("paid", 203000, 201000)
    assert [(r["payment_id"], r["amount"]) for r in refunded["refunds"]] == [(second["id"], 200000), (first["id"], 1000)]
    act(api, invoice, "refunds", 422, json={"amount": 2001, "reason": "more"})
    last = act(api, invoice, "refunds", 201, json={"amount": 2000, "reason": "the rest"})
    assert last["amount_refunded"] == 203000
    assert [p["amount_refunded"] for p in last["payments"]] == [3000, 200000]


def test_void_draft_or_open_without_payments_only(api):
    draft = create(api)
    assert act(api, draft, "void")["status"] == "void"
    opened = act(api, create(api), "finalize")
    voided = act(api, opened, "void")
    assert (voided["status"], voided["number"]) == ("void", f"INV-{YEAR}-000001")  # the number is kept
    with_payment = act(api, create(api), "finalize")
    pay(api, with_payment, 100)
    act(api, with_payment, "void", 409)
    act(api, voided, "void", 409)


def test_uncollectible_only_from_open_and_still_payable(api):
    act(api, create(api), "mark-uncollectible", 409)
    opened = act(api, create(api), "finalize")
    written_off = act(api, opened, "mark-uncollectible")
    assert written_off["status"] == "uncollectible" and written_off["uncollectible_at"]
    assert pay(api, opened, 203000)["status"] == "paid"


def test_audit_trail_records_who_did_what_with_before_and_after(api):
    invoice = create(api)
    api.patch(f"/api/v1/invoices/{invoice['id']}", json={"duration_minutes": 300})
    act(api, invoice, "finalize")
    pay(api, invoice, 5000)
    trail = api.get(f"/api/v1/invoices/{invoice['id']}/audit").get_json()["data"]
    assert [e["action"] for e in trail] == ["created", "updated", "finalized", "payment_recorded"]
    assert all(e["actor"].startswith("api_key:key_") for e in trail)
    assert trail[0]["before"] is None and trail[0]["after"]["total"] == 203000
    assert (trail[1]["before"]["total"], trail[1]["after"]["total"]) == (203000, 213000)
    assert (trail[2]["before"]["status"], trail[2]["after"]["status"]) == ("draft", "open")
    assert trail[3]["detail"]["amount"] == 5000 and trail[3]["after"]["amount_due"] == 208000
    assert "Alex" not in str(trail)


def test_lists_filter_and_page_newest_first(api):
    a = create(api, patient={"id": "pt_1", "name": "A"}, booking_id="bk_1")
    b = create(api, patient={"id": "pt_2", "name": "B"}, booking_id="bk_2")
    c = create(api, patient={"id": "pt_1", "name": "A"}, booking_id="bk_3")
    act(api, b, "finalize")
    ids = lambda page: [i["id"] for i in page["data"]]  # noqa: E731
    assert ids(api.get("/api/v1/invoices").get_json()) == [c["id"], b["id"], a["id"]]
    assert ids(api.get("/api/v1/invoices?status=open").get_json()) == [b["id"]]
    assert ids(api.get("/api/v1/invoices?patient_id=pt_1").get_json()) == [c["id"], a["id"]]
    assert ids(api.get("/api/v1/invoices?booking_id=bk_2").get_json()) == [b["id"]]
    page = api.get("/api/v1/invoices?limit=2").get_json()
    assert ids(page) == [c["id"], b["id"]] and page["has_more"] is True
    rest = api.get(f"/api/v1/invoices?limit=2&starting_after={b['id']}").get_json()
    assert ids(rest) == [a["id"]] and rest["has_more"] is False
    assert api.get("/api/v1/invoices?status=bogus").status_code == 422
    assert api.get("/api/v1/invoices?limit=101").status_code == 422


def test_unknown_invoice_is_404(api):
    assert api.get("/api/v1/invoices/inv_nope").status_code == 404
    assert api.post("/api/v1/invoices/inv_nope/finalize").status_code == 404


@pytest.mark.parametrize("body, field", [
    (invoice_body(patient=None), "patient"),
    ({k: v for k, v in invoice_body().items() if k != "patient"}, "patient"),
    (invoice_body(patient={"id": "pt_1"}), "patient.name"),
    (invoice_body(patient={"id": "pt_1", "name": "A", "email": "not-an-email"}), "patient.email"),
    (invoice_body(dose={"grams": "0"}), "dose.grams"),
    (invoice_body(product_code="NOPE"), "product_code"),
    (invoice_body(course=[]), "course"),
])
def test_invalid_drafts_are_422_and_store_nothing(app, api, body, field):
    before = row_counts(app)
    response = api.post("/api/v1/invoices", json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"], response.get_json()
    assert row_counts(app) == before


def test_a_crash_in_finalize_leaves_a_draft_and_the_counter_unmoved(app, api, monkeypatch):
    from billing import invoicing

    invoice = create(api)
    real_finish = invoicing._finish

    def crash_after_numbering(change):
        if change.action == "finalized":
            assert change.invoice.number == f"INV-{YEAR}-000001"  # the number was taken …
            raise RuntimeError("power cut")  # … and then the process fell over
        return real_finish(change)

    monkeypatch.setattr(invoicing, "_finish", crash_after_numbering)
    response = api.post(f"/api/v1/invoices/{invoice['id']}/finalize")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    after = api.get(f"/api/v1/invoices/{invoice['id']}").get_json()
    assert (after["status"], after["number"]) == ("draft", None)
    with app.app_context():
        assert db.session.scalar(select(InvoiceCounter.last_number).where(InvoiceCounter.year == YEAR)) in (None, 0)
    monkeypatch.setattr(invoicing, "_finish", real_finish)
    assert act(api, invoice, "finalize")["number"] == f"INV-{YEAR}-000001"


def test_paging_through_one_status_visits_each_invoice_once_newest_first(api):
    opened = [act(api, create(api), "finalize")["id"] for _ in range(4)]
    create(api)  # a draft in between, not listed
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/invoices?status=open&limit=1" + (f"&starting_after={cursor}" if cursor else "")).get_json()
        seen += [i["id"] for i in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == list(reversed(opened))


# --- the payer (bill_to): an insurer with an address, an email and its own reference ------------

INSURER = {"name": "Acme Health Insurance", "address": "Claims Dept\n1 Way\nLeeds LS1 4AP",
           "email": "claims@acme.example", "reference": "POL-448812"}


def test_the_payer_s_address_email_and_reference_round_trip(api):
    invoice = create(api, bill_to=INSURER)
    assert invoice["bill_to"] == INSURER
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["bill_to"] == INSURER
    changed = {**INSURER, "address": "Claims\r\n2 Way, York", "reference": "PO 2026/118", "email": None}
    response = api.patch(f"/api/v1/invoices/{invoice['id']}", json={"bill_to": changed})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["bill_to"] == changed
    assert response.get_json()["total"] == 203000
    assert api.patch(f"/api/v1/invoices/{invoice['id']}", json={"bill_to": None}).get_json()["bill_to"] is None


def test_a_payer_without_a_reference_has_a_null_one_like_its_other_fields(api):
    invoice = create(api, bill_to={"name": "Sam Partner", "reference": None})
    assert invoice["bill_to"] == {"name": "Sam Partner", "email": None, "address": None, "reference": None}
    assert create(api, bill_to={"name": "Sam Partner"})["bill_to"] == {"name": "Sam Partner", "email": None,
                                                                       "address": None, "reference": None}


@pytest.mark.parametrize("payer, field", [
    ({"reference": ""}, "bill_to.reference"),
    ({"reference": "   "}, "bill_to.reference"),
    ({"reference": "POL\n1"}, "bill_to.reference"),
    ({"reference": "POL\u202e1"}, "bill_to.reference"),
    ({"reference": "P" * 101}, "bill_to.reference"),
    ({"reference": 448812}, "bill_to.reference"),
    ({"email": "claims at acme"}, "bill_to.email"),
    ({"email": "a@" + "b" * 250 + ".uk"}, "bill_to.email"),
    ({"address": "Claims\tDept"}, "bill_to.address"),
    ({"address": "\n".join(["line"] * 11)}, "bill_to.address"),
    ({"address": "x" * 501}, "bill_to.address"),
    ({"address": "1 Way\u2066Leeds"}, "bill_to.address"),
    ({"name": ""}, "bill_to.name"),
    ({"name": None}, "bill_to.name"),
])
def test_a_bad_payer_is_a_422_that_names_the_field_and_changes_nothing(api, app, payer, field):
    draft = create(api, bill_to=INSURER)
    before = row_counts(app)
    response = api.post("/api/v1/invoices", json=invoice_body(bill_to={**INSURER, **payer}))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    response = api.patch(f"/api/v1/invoices/{draft['id']}", json={"bill_to": {**INSURER, **payer}})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert row_counts(app) == before
    assert api.get(f"/api/v1/invoices/{draft['id']}").get_json()["bill_to"] == INSURER


def test_an_address_of_ten_lines_and_a_long_reference_are_taken(api):
    payer = {"name": "Łucja Wróbel", "address": "\n".join(f"Line {n}" for n in range(10)), "reference": "R" * 100}
    assert create(api, bill_to=payer)["bill_to"] == {**payer, "email": None}


def test_the_openapi_document_tells_the_payer_s_rules(client):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    bill_to = schemas["BillTo"]["properties"]
    assert set(bill_to) == {"name", "address", "email", "reference"}
    assert (bill_to["reference"]["minLength"], bill_to["reference"]["maxLength"]) == (1, 100)
    assert bill_to["address"]["maxLength"] == 500 and "pattern" in bill_to["address"]
    assert set(schemas["StoredBillTo"]["properties"]) == {"name", "address", "email", "reference"}

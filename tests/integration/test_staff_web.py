"""Staff pages through the test client: sign-in limits, CSRF, roles, and CSV against the API."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest

from billing.access import create_user
from tests.conftest import row_counts
from tests.factories import days_ahead, invoice_body, open_invoice, price_list_document

PASSWORD = "correct horse battery"


@pytest.fixture
def users(app):
    with app.app_context():
        for role in ("admin", "finance", "viewer"):
            create_user(f"{role}@clinic.example", role, PASSWORD)


def token(response) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def sign_in(client, role: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post("/login", data={"email": f"{role}@clinic.example", "password": password,
                                       "csrf_token": token(page)})


def test_pages_need_a_signed_in_user(client):
    response = client.get("/invoices")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_sixth_wrong_password_in_a_minute_is_429(client, users):
    answers = [sign_in(client, "finance", "wrong password!").status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]
    assert sign_in(client, "finance").status_code == 429  # even the right one, for now
    assert b"Too many attempts" in sign_in(client, "finance").get_data()


def test_a_post_without_a_csrf_token_is_400_and_changes_nothing(app, client, api, users):
    api.post("/api/v1/price-lists", json=price_list_document())
    invoice = open_invoice(api)
    assert sign_in(client, "finance").status_code == 302
    before = row_counts(app)
    response = client.post(f"/invoices/{invoice['id']}/payment", data={"amount": "100.00", "method": "cash",
                                                                       "received_on": days_ahead(0)})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert row_counts(app) == before


def test_one_csrf_hook_runs_ours_in_place_of_flask_wtfs(app, client, users, monkeypatch):
    """Flask-WTF's own hook (a no-op with WTF_CSRF_CHECK_DEFAULT off) is dropped; ours checks
    staff forms and only them."""
    hooks = [f"{hook.__module__}.{hook.__name__}" for hook in app.before_request_funcs[None]]
    assert "flask_wtf.csrf.csrf_protect" not in hooks and hooks.count("billing._check_csrf") == 1
    protect = app.extensions["csrf"].protect
    calls = []
    monkeypatch.setattr(app.extensions["csrf"], "protect", lambda **kw: calls.append(kw) or protect(**kw))
    assert client.post("/login", data={"email": "x@clinic.example", "password": "x"}).status_code == 400
    assert calls == [{"apply_exemptions": True}]
    client.get("/login")
    client.post("/api/v1/quotes", json={})
    assert len(calls) == 2  # the GET, through protect's own method rule; never the API


def test_roles_limit_what_each_person_can_do(app, client, api, users):
    api.post("/api/v1/price-lists", json=price_list_document())
    invoice = open_invoice(api)
    sign_in(client, "viewer")
    page = client.get(f"/invoices/{invoice['id']}")
    assert page.status_code == 200 and b"Record payment" not in page.get_data()
    forbidden = client.post(f"/invoices/{invoice['id']}/payment", data={
        "csrf_token": token(page), "amount": "100.00", "method": "cash", "received_on": days_ahead(0)})
    assert forbidden.status_code == 403 and b"Forbidden" in forbidden.get_data()
    assert client.get("/admin/users").status_code == 403
    client.post("/logout", data={"csrf_token": token(page)})
    sign_in(client, "finance")
    assert client.get("/price-lists/new").status_code == 403
    assert client.get(f"/invoices/{invoice['id']}/payment").status_code == 200


def test_the_csv_totals_equal_the_apis_totals(app, client, api, users):
    api.post("/api/v1/price-lists", json=price_list_document())
    ids = [open_invoice(api, duration_minutes=minutes)["id"] for minutes in (60, 180, 300)]
    api.post(f"/api/v1/invoices/{ids[0]}/payments", json={"amount": 5000, "method": "cash", "received_on": days_ahead(-2)})
    api.post(f"/api/v1/invoices/{ids[1]}/void")
    api.post("/api/v1/invoices", json=invoice_body())  # a draft: not in the books
    sign_in(client, "viewer")
    data = client.get("/reports/invoices.csv").get_data()
    assert data.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM Excel needs; parsers read it with utf-8-sig
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    api_invoices = [i for i in api.get("/api/v1/invoices?limit=100").get_json()["data"] if i["number"]]
    assert sorted(r["number"] for r in rows) == sorted(i["number"] for i in api_invoices)
    csv_total = sum(Decimal(r["total"]) for r in rows)
    api_total = Decimal(sum(i["total"] for i in api_invoices)) / 100
    # £1,680.00 of product each, plus £250.00, £350.00 (voided, but its number stays in the books), £450.00
    assert csv_total == api_total == Decimal("6090.00")
    assert all(re.fullmatch(r"\d+\.\d\d", r["total"]) and re.fullmatch(r"\d{4}-\d\d-\d\d", r["invoice_date"]) for r in rows)
    payments = list(csv.DictReader(io.StringIO(client.get("/reports/payments.csv").get_data().decode("utf-8-sig"))))
    assert [(p["amount"], p["received_on"], p["method"]) for p in payments] == [("50.00", days_ahead(-2), "cash")]


def test_behind_a_proxy_sign_in_limits_count_per_client_address(monkeypatch, tmp_path):
    from billing import create_app

    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    proxied = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "p.sqlite3"),
                          "SESSION_COOKIE_SECURE": False})
    from flask_migrate import upgrade

    from billing.access import create_user as add_user

    with proxied.app_context():
        upgrade()
        add_user("finance@clinic.example", "finance", PASSWORD)
    client = proxied.test_client()

    def attempt(address: str, password: str) -> int:
        page = client.get("/login", headers={"X-Forwarded-For": address})
        return client.post("/login", headers={"X-Forwarded-For": address}, data={
            "email": "someone@clinic.example", "password": password, "csrf_token": token(page)}).status_code

    assert [attempt("203.0.113.7", "guess guess") for _ in range(5)] == [401] * 5
    # The attacker's address is blocked; the same email from elsewhere is too (the email key),
    # but a colleague at another address signing in as herself is not.
    assert attempt("203.0.113.7", "guess guess") == 429
    page = client.get("/login", headers={"X-Forwarded-For": "198.51.100.2"})
    ok = client.post("/login", headers={"X-Forwarded-For": "198.51.100.2"}, data={
        "email": "finance@clinic.example", "password": PASSWORD, "csrf_token": token(page)})
    assert ok.status_code == 302


def test_the_invoice_page_shows_staff_what_needs_attention_and_each_refunds_state(app, client, api, users):
    from billing import invoicing
    from tests.doubles import CountingGateway

    api.post("/api/v1/price-lists", json=price_list_document())
    invoice = open_invoice(api)
    api.post(f"/api/v1/invoices/{invoice['id']}/void")
    with app.app_context():  # a stale pay tab's card payment arrives after the void
        invoicing.book_card_payment(invoicing.CardPayment("pi_late", invoice["id"], 203000, "GBP"))
    sign_in(client, "viewer")
    html = client.get(f"/invoices/{invoice['id']}").get_data(as_text=True)
    assert 'id="attention"' in html
    assert "A card payment of £2,030.00 arrived on a void invoice; £2,030.00 is being refunded through Stripe." in html
    assert "<td>pending</td>" in html
    app.extensions["stripe_gateway"] = CountingGateway()
    try:
        with app.app_context():
            from billing import outbox

            outbox.deliver_due()
    finally:
        app.extensions.pop("stripe_gateway", None)
    assert "<td>succeeded</td>" in client.get(f"/invoices/{invoice['id']}").get_data(as_text=True)

"""The service's edges as an attacker and a careless client probe them: one test per finding of
the hardening issue (staff sessions, redirects, CSV, body size, bad input, headers, sign-in
limits, amounts, junk, idempotency), each written against the behaviour that was wrong."""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from billing.access import create_user
from billing.extensions import db
from billing.models import StaffSession, utcnow
from billing.webhooks import sign
from tests.conftest import row_counts
from tests.factories import (
    BOOKING_SECRET,
    booking_event,
    days_ahead,
    infusion,
    invoice_body,
    open_invoice,
    price_list_document,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def staff(app, api):
    with app.app_context():
        for role in ("admin", "finance", "viewer"):
            create_user(f"{role}@clinic.example", role, PASSWORD)
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


def token(response) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def sign_in(client, who: str, password: str = PASSWORD, next_: str | None = None, address: str | None = None):
    page = client.get("/login")
    headers = {"X-Forwarded-For": address} if address else None
    url = "/login" + (f"?next={next_}" if next_ is not None else "")
    return client.post(url, data={"email": who, "password": password, "csrf_token": token(page)},
                       headers=headers)


def signed_in_client(app, who: str):
    client = app.test_client()
    assert sign_in(client, who).status_code == 302
    return client


def opens(client, path: str = "/invoices") -> bool:
    return client.get(path).status_code == 200


# --- sessions ---------------------------------------------------------------------------------

def test_a_deactivated_user_is_signed_out_at_once(app, staff, api):
    invoice = open_invoice(api)
    finance = signed_in_client(app, "finance@clinic.example")
    admin = signed_in_client(app, "admin@clinic.example")
    page = finance.get(f"/invoices/{invoice['id']}/payment")
    users = admin.get("/admin/users")
    assert users.status_code == 200, (users.status_code, users.headers.get("Location"))
    user_id = re.search(r'/admin/users/(usr_\w+)/active', users.get_data(as_text=True).split("finance@clinic.example", 1)[1])
    assert admin.post(f"/admin/users/{user_id.group(1)}/active", data={"csrf_token": token(users)}).status_code == 303
    assert not opens(finance)
    paid = finance.post(f"/invoices/{invoice['id']}/payment", data={
        "csrf_token": token(page), "amount": "100.00", "method": "cash", "received_on": days_ahead(0)})
    assert paid.status_code == 302 and "/login" in paid.headers["Location"]
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["amount_paid"] == 0


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(app, staff):
    client = signed_in_client(app, "admin@clinic.example")
    cookie = client.get_cookie("session").value
    copy = app.test_client()
    copy.set_cookie("session", cookie)
    assert opens(copy, "/admin/api-keys")
    page = client.get("/invoices")
    client.post("/logout", data={"csrf_token": token(page)})
    assert not opens(copy) and not opens(copy, "/admin/api-keys")


@pytest.mark.parametrize("field, age", [("last_seen_at", timedelta(minutes=31)), ("created_at", timedelta(hours=10, seconds=1))])
def test_sessions_end_after_30_minutes_idle_or_10_hours_in_all(app, staff, field, age):
    client = signed_in_client(app, "viewer@clinic.example")
    assert opens(client)
    with app.app_context():
        db.session.execute(update(StaffSession).values({field: utcnow() - age}))
        db.session.commit()
    assert not opens(client)


def test_a_new_password_or_role_ends_the_users_sessions(app, staff):
    from billing.access import set_password

    client = signed_in_client(app, "finance@clinic.example")
    with app.app_context():
        set_password("finance@clinic.example", "a brand new password")
    assert not opens(client)
    client = signed_in_client(app, "viewer@clinic.example")
    admin = signed_in_client(app, "admin@clinic.example")
    users = admin.get("/admin/users")
    user_id = re.search(r'/admin/users/(usr_\w+)/role', users.get_data(as_text=True).split("viewer@clinic.example", 1)[1])
    admin.post(f"/admin/users/{user_id.group(1)}/role", data={"csrf_token": token(users), "role": "finance"})
    assert not opens(client)


# --- redirects --------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/%09/evil.example/phish", "//evil.example", "https://evil.example/",
                                    "/\\evil.example", "/%0d%0a/x", "/%5cevil.example", "javascript:alert(1)"])
def test_after_sign_in_only_a_path_of_our_own_is_followed(app, staff, target):
    response = sign_in(app.test_client(), "viewer@clinic.example", next_=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_a_path_of_our_own_is_followed(app, staff):
    assert sign_in(app.test_client(), "viewer@clinic.example", next_="/invoices?status=open").headers["Location"] \
        == "/invoices?status=open"


# --- CSV ---------------------------------------------------------------------------------------

def test_csv_cells_that_would_run_as_formulas_are_neutralised(app, api, staff):
    names = ['=HYPERLINK("http://x")', "=1+1", "+SUM(1,2)", "@cmd", "-2+3"]
    for i, name in enumerate(names):
        made = open_invoice(api, patient={"id": f"pt_{i}", "name": name})
        api.post(f"/api/v1/invoices/{made['id']}/payments", json={"amount": 1000, "method": "cash", "reference": "=cmd|' /C calc'!A0"})
    client = signed_in_client(app, "viewer@clinic.example")
    invoices = list(csv.DictReader(io.StringIO(client.get("/reports/invoices.csv").get_data(as_text=True))))
    assert sorted(r["patient_name"] for r in invoices) == sorted("'" + n for n in names)
    assert {r["total"] for r in invoices} == {"2030.00"} and {r["paid"] for r in invoices} == {"10.00"}
    payments = list(csv.DictReader(io.StringIO(client.get("/reports/payments.csv").get_data(as_text=True))))
    assert {p["reference"] for p in payments} == {"'=cmd|' /C calc'!A0"} and {p["amount"] for p in payments} == {"10.00"}


# --- body size ---------------------------------------------------------------------------------

def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024


@pytest.mark.slow
def test_a_huge_unauthenticated_body_is_refused_before_it_is_read(tmp_path):
    """Under gunicorn, as in production: 1 GB announced, 64 MB pushed, the worker grows < 20 MB."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from tests.servers import ROOT, free_port

    port = free_port()
    env = {**os.environ, "BILLING_INSTANCE_PATH": str(tmp_path), "BOOKING_WEBHOOK_SECRET": BOOKING_SECRET}
    env.pop("DATABASE_URL", None)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    master = subprocess.Popen([gunicorn, "--workers", "1", "--bind", f"127.0.0.1:{port}", "--no-control-socket",
                               "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline and master.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
        worker = int(open(f"/proc/{master.pid}/task/{master.pid}/children").read().split()[0])
        before = _rss_mb(worker)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/api/v1/webhooks/booking")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Booking-Signature", "t=1,v1=junk")
        conn.putheader("Content-Length", str(1024 ** 3))  # 1 GB announced
        conn.endheaders()
        chunk = b"x" * 1024 * 1024
        try:
            for _ in range(64):  # push up to 64 MB of it; the worker stops listening long before
                conn.send(chunk)
        except OSError:
            pass
        response = conn.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/problem+json"
        conn.close()
        assert _rss_mb(worker) - before < 20
    finally:
        master.terminate()
        master.wait(timeout=20)


def test_a_body_without_a_length_is_cut_off_at_1_mib(api, api_key, live_server):
    big = json.dumps({**invoice_body(), "padding": "x" * (1024 * 1024)}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    conn.request("POST", "/api/v1/invoices", body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                 headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
                 encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and response.getheader("Content-Type") == "application/problem+json", response.read()
    conn.close()


# --- bad input: 400/422, never 500 ------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deep_json_is_400_on_the_api_and_on_a_signed_webhook(app, api, client, staff, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    before = row_counts(app)
    for path in ("/api/v1/quotes", "/api/v1/invoices"):
        response = api.client.post(path, data=DEEP, headers={**api.headers, "Content-Type": "application/json"})
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
        assert "deeper than 32" in response.get_json()["detail"]
    event = json.dumps(booking_event("infusion.booked", event_id="evt_deep", other_items="DEEP")).encode()
    body = event.replace(b'"DEEP"', DEEP)
    response = client.post("/api/v1/webhooks/booking", data=body, headers={
        "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, body)})
    assert response.status_code == 400 and "deeper than 32" in response.get_json()["detail"]
    assert row_counts(app) == before


def test_a_lone_surrogate_or_a_control_character_is_422_by_field(app, api, client, staff, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    before = row_counts(app)
    for name in ("\ud800", "Alex\x07", "Alex\x1b[31m"):
        body = json.dumps(invoice_body(patient={"id": "pt_1", "name": name}))  # ensure_ascii keeps \ud800 as text
        response = api.client.post("/api/v1/invoices", data=body, headers={**api.headers, "Content-Type": "application/json"})
        assert response.status_code == 422 and "patient.name" in response.get_json()["errors"], response.get_json()
        event = json.dumps(booking_event("infusion.booked", event_id="evt_s", patient={"id": "pt_1", "name": name})).encode()
        answer = client.post("/api/v1/webhooks/booking", data=event, headers={
            "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, event)})
        assert answer.status_code == 422 and "data.patient.name" in answer.get_json()["errors"], answer.get_json()
    assert row_counts(app) == before


@pytest.mark.parametrize("name", ["Alex\u202eelpmaxE", "Alex\nExample", "   ", "\t"])
def test_names_are_one_line_of_plain_text(api, staff, name):
    response = api.post("/api/v1/invoices", json=invoice_body(patient={"id": "pt_1", "name": name}))
    assert response.status_code == 422 and "patient.name" in response.get_json()["errors"]


def test_an_event_id_with_an_escape_character_is_refused(app, client, staff, monkeypatch):
    monkeypatch.setitem(app.config, "BOOKING_WEBHOOK_SECRETS", [BOOKING_SECRET])
    event = json.dumps(booking_event("infusion.booked", event_id="evt_\x1b[2J")).encode()
    answer = client.post("/api/v1/webhooks/booking", data=event, headers={
        "Content-Type": "application/json", "Booking-Signature": sign(BOOKING_SECRET, event)})
    assert answer.status_code == 422


def test_a_sign_in_redirect_with_a_line_break_is_not_a_500(app, staff):
    response = sign_in(app.test_client(), "viewer@clinic.example", next_="/%0d%0a/x")
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("amount", ["1e30", "1e-2", "£1,2,3", "1,2,3", "12.345", "-5", "NaN", "Infinity",
                                    "99999999999999999999"])
def test_staff_amounts_are_parsed_strictly(app, api, staff, amount):
    invoice = open_invoice(api)
    client = signed_in_client(app, "finance@clinic.example")
    page = client.get(f"/invoices/{invoice['id']}/payment")
    response = client.post(f"/invoices/{invoice['id']}/payment", data={
        "csrf_token": token(page), "amount": amount, "method": "cash", "received_on": days_ahead(0)})
    assert response.status_code == 422
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["amount_paid"] == 0


@pytest.mark.parametrize("amount, pence", [("1234.56", 123456), ("1,234.56", 123456), ("20", 2000), ("0.5", 50)])
def test_staff_amounts_take_plain_and_grouped_pounds(app, api, staff, amount, pence):
    invoice = open_invoice(api)
    client = signed_in_client(app, "finance@clinic.example")
    page = client.get(f"/invoices/{invoice['id']}/payment")
    assert client.post(f"/invoices/{invoice['id']}/payment", data={
        "csrf_token": token(page), "amount": amount, "method": "cash", "received_on": days_ahead(0)}).status_code == 303
    assert api.get(f"/api/v1/invoices/{invoice['id']}").get_json()["amount_paid"] == pence


def test_a_payment_date_must_be_sane(api, staff):
    invoice = open_invoice(api)
    for when in ("9999-12-31", days_ahead(2), days_ahead(-400)):
        response = api.post(f"/api/v1/invoices/{invoice['id']}/payments",
                            json={"amount": 100, "method": "cash", "received_on": when})
        assert response.status_code == 422 and "received_on" in response.get_json()["errors"], when
    assert api.post(f"/api/v1/invoices/{invoice['id']}/payments",
                    json={"amount": 100, "method": "cash", "received_on": days_ahead(1)}).status_code == 201


def test_a_dose_under_a_hundredth_of_a_gram_is_refused(api, staff):
    response = api.post("/api/v1/quotes", json=infusion(dose={"grams": "0.0000000000000000000000001"}))
    assert response.status_code == 422 and "dose.grams" in response.get_json()["errors"]
    assert api.post("/api/v1/quotes", json=infusion(dose={"grams": "0.01"})).status_code == 200


# --- headers ------------------------------------------------------------------------------------

def test_staff_pages_cant_be_framed_sniffed_or_cached(app, api, staff):
    invoice = open_invoice(api)
    client = signed_in_client(app, "finance@clinic.example")
    for path in ("/login", "/", f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/void", "/reports/invoices.csv",
                 "/nowhere"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Referrer-Policy"], path


# --- the sign-in limiter ------------------------------------------------------------------------

def test_parallel_guesses_are_counted_not_raced(app, staff):
    barrier = threading.Barrier(20)
    answers: list[tuple[int, str | None]] = []

    def guess():
        client = app.test_client()
        page = client.get("/login")
        barrier.wait(timeout=20)
        response = client.post("/login", data={"email": "finance@clinic.example", "password": "wrong wrong",
                                               "csrf_token": token(page)})
        answers.append((response.status_code, response.headers.get("Retry-After")))

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(status for status, _ in answers)
    assert statuses == [401] * 5 + [429] * 15  # exactly five passwords were checked
    assert all(0 < int(after) <= 61 for status, after in answers if status == 429)
    # the account is locked for now, but a colleague at the same address signs in as herself
    assert sign_in(app.test_client(), "finance@clinic.example").status_code == 429
    assert sign_in(app.test_client(), "viewer@clinic.example").status_code == 302


# --- idempotency --------------------------------------------------------------------------------

def test_the_same_fields_in_another_order_are_the_same_request(api, staff):
    body = invoice_body()
    first = api.client.post("/api/v1/invoices", data=json.dumps(body), headers={
        **api.headers, "Content-Type": "application/json", "Idempotency-Key": "k1"})
    again = api.client.post("/api/v1/invoices", data=json.dumps(dict(reversed(list(body.items()))), indent=2), headers={
        **api.headers, "Content-Type": "application/json", "Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json()["id"] == first.get_json()["id"]


@pytest.mark.parametrize("name", ["Alex\x1bExample", "Alex\nExample", "   ", "Alex\u202eelpmaxE"])
def test_the_staff_form_refuses_what_the_api_refuses_in_names(app, api, staff, name):
    client = signed_in_client(app, "finance@clinic.example")
    page = client.get("/invoices/new")
    response = client.post("/invoices/new", data={
        "csrf_token": token(page), "action": "create", "patient_id": "pt_1", "patient_name": name,
        "product_code": "IVIG10-5-10-20", "dose_mode": "grams", "grams": "25", "duration_minutes": "180",
        "service_date": days_ahead(7)})
    assert response.status_code == 422
    assert api.get("/api/v1/invoices").get_json()["data"] == []

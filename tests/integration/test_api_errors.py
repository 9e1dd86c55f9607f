"""Every API error is problem+json with the right status; none is HTML, none is a 500."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    return body


def test_no_key_is_401(client):
    body = assert_problem(client.get("/api/v1/price-lists"), 401)
    assert "Bearer" in body["detail"]


def test_a_wrong_key_is_401(client):
    response = client.get("/api/v1/price-lists", headers={"Authorization": "Bearer ibk_not-a-real-key"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_is_401(app, client, api_key):
    from billing.access import api_key_for, revoke_api_key

    headers = {"Authorization": f"Bearer {api_key}"}
    assert client.get("/api/v1/price-lists", headers=headers).status_code == 200
    with app.app_context():
        revoke_api_key(api_key_for(api_key))
    assert_problem(client.get("/api/v1/price-lists", headers=headers), 401)


def test_malformed_json_is_400(api):
    response = api.client.post("/api/v1/quotes", data="{not json",
                               headers={**api.headers, "Content-Type": "application/json"})
    body = assert_problem(response, 400)
    assert "JSON" in body["detail"]


def test_an_unknown_route_is_404(api):
    assert_problem(api.get("/api/v1/no-such-thing"), 404)


def test_a_wrong_method_is_405_with_allow(api):
    response = api.client.delete("/api/v1/quotes", headers=api.headers)
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_validation_errors_are_422_per_field(api):
    response = api.post("/api/v1/quotes", json={"dose": {"grams": 25.5}, "duration_minutes": "long"})
    body = assert_problem(response, 422)
    assert body["errors"]["dose.grams"] == ['Write decimals as strings, like "12.5": a JSON number may not be exact.']
    assert body["errors"]["duration_minutes"] == ["Not a valid integer."]
    assert body["errors"]["product_code"] == ["Missing data for required field."]
    assert body["errors"]["service_date"] == ["Missing data for required field."]


def test_a_json_array_instead_of_an_object_is_422(api):
    assert_problem(api.post("/api/v1/quotes", json=[1, 2]), 422)


def test_staff_pages_get_html_errors_not_json(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_a_nul_character_anywhere_is_400_not_a_database_error(api):
    assert_problem(api.get("/api/v1/invoices", query_string={"starting_after": "\x00"}), 400)
    body = '{"product_code": "IVIG\\u0000", "dose": {"grams": "25"}}'
    response = api.client.post("/api/v1/quotes", data=body, headers={**api.headers, "Content-Type": "application/json"})
    assert "NUL" in assert_problem(response, 400)["detail"]

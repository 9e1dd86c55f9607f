"""The OpenAPI document comes from the schemas and validates; the docs page works offline."""

from openapi_spec_validator import validate


def test_openapi_document_is_valid_openapi_3(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/quotes" in spec["paths"] and "/api/v1/price-lists" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_docs_page_loads_swagger_ui_from_the_service_itself(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert "cdn" not in page.lower()
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/api/docs/static/{asset}" in page
        response = client.get(f"/api/docs/static/{asset}")
        assert response.status_code == 200
        assert len(response.get_data()) > 1000

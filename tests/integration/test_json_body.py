"""api.arguments.json_body: the usual quote or draft-invoice body goes to the view without webargs'
parse, and answers exactly as webargs and marshmallow alone would; anything else goes through them.

The reference is the service with the quick loaders switched off (every body then goes through
webargs and marshmallow, field by field): each case must answer the same, status and body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask_smorest import Blueprint

from billing.api.schemas import InvoiceCreateSchema, QuoteRequestSchema
from tests.factories import infusion, invoice_body, price_list_document

USUAL_QUOTE = infusion(other_items=[{"code": "NKA", "description": "NK cell assay",
                                     "category": "fertility_investigation"}])
QUOTE_TEXT = json.dumps(USUAL_QUOTE)

# (body bytes, Content-Type): what the short road takes, and what it must leave to webargs.
CASES = {
    "usual": (QUOTE_TEXT.encode(), "application/json"),
    "usual, with a charset": (QUOTE_TEXT.encode(), "application/json; charset=utf-8"),
    "a course": (json.dumps({"course": [infusion(), infusion(service_date="2026-12-08")]}).encode(), "application/json"),
    "an unknown field": (json.dumps({**USUAL_QUOTE, "colour": "blue"}).encode(), "application/json"),
    "a dose as a number": (json.dumps(infusion(dose={"grams": 25.5})).encode(), "application/json"),
    "a date that isn't": (json.dumps(infusion(service_date="2026-02-30")).encode(), "application/json"),
    "no product": (json.dumps({k: v for k, v in USUAL_QUOTE.items() if k != "product_code"}).encode(), "application/json"),
    "a list": (b"[1, 2]", "application/json"),
    "null": (b"null", "application/json"),
    "a number": (b"42", "application/json"),
    "not JSON": (b'{"product_code": ', "application/json"),
    "empty": (b"", "application/json"),
    "a UTF-8 byte-order mark": (b"\xef\xbb\xbf" + QUOTE_TEXT.encode(), "application/json"),
    "UTF-16": (QUOTE_TEXT.encode("utf-16"), "application/json"),
    "Latin-1 bytes": (json.dumps(infusion(other_items=[{"description": "caf\u00e9"}]), ensure_ascii=False).encode("latin-1"),
                      "application/json"),
    "a +json type": (QUOTE_TEXT.encode(), "application/vnd.clinic+json"),
    "text/plain": (QUOTE_TEXT.encode(), "text/plain"),
    "no type": (QUOTE_TEXT.encode(), ""),
}
SHORT_ROAD = {"usual", "usual, with a charset"}


@pytest.fixture
def price_list(api):
    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The locations webargs parses, one entry a parse."""
    parser = Blueprint.ARGUMENTS_PARSER
    seen: list[str] = []
    real = parser.parse

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("location", "json"))
        return real(*args, **kwargs)

    monkeypatch.setattr(parser, "parse", counting)
    return seen


def _post(client, api_key: str, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {api_key}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(path, data=body, headers=headers)
    assert response.status_code < 500
    answer = response.get_json()
    if isinstance(answer, dict):
        answer.pop("request_id", None)  # each request's own
    return response.status_code, answer


def _without_quick_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    for schema in (QuoteRequestSchema, InvoiceCreateSchema):
        monkeypatch.setattr(schema, "quick", staticmethod(lambda data: None))


@pytest.mark.parametrize("case", CASES)
def test_a_quote_answers_as_webargs_and_marshmallow_alone(client, api_key, price_list, parses, monkeypatch, case):
    body, content_type = CASES[case]
    answer = _post(client, api_key, "/api/v1/quotes", body, content_type)
    assert len(parses) == (0 if case in SHORT_ROAD else 1)

    _without_quick_loaders(monkeypatch)
    assert _post(client, api_key, "/api/v1/quotes", body, content_type) == answer
    assert len(parses) == (1 if case in SHORT_ROAD else 2)  # the reference went through webargs
    if case in SHORT_ROAD:
        assert answer[0] == 200 and answer[1]["total"] == 203000
    elif case == "a course":
        assert answer[0] == 200 and answer[1]["total"] == 406000
    elif case == "a +json type":  # JSON to webargs too, by its own rule
        assert answer[0] == 200 and answer[1]["total"] == 203000
    else:
        assert answer[0] in (400, 415, 422)


def _invoice_fields(answer: tuple[int, Any]) -> tuple[int, Any]:
    status, body = answer
    made = {"id", "created_at", "updated_at", "number", "issued_at"}
    return status, {key: value for key, value in body.items() if key not in made}


def test_a_draft_invoice_answers_as_webargs_and_marshmallow_alone(client, api_key, price_list, parses, monkeypatch):
    body = json.dumps(invoice_body(bill_to={"name": "Acme Health", "reference": "PO-7"})).encode()
    answer = _post(client, api_key, "/api/v1/invoices", body, "application/json")
    assert parses == []  # the short road
    assert answer[0] == 201 and answer[1]["total"] == 203000 and answer[1]["bill_to"]["reference"] == "PO-7"

    _without_quick_loaders(monkeypatch)
    reference = _post(client, api_key, "/api/v1/invoices", body, "application/json")
    assert parses == ["json"]
    assert answer[1]["id"] != reference[1]["id"]
    assert _invoice_fields(answer) == _invoice_fields(reference)


def test_a_refused_draft_invoice_goes_through_webargs(client, api_key, price_list, parses):
    body = json.dumps(invoice_body(patient={"id": "pt_9"})).encode()  # no name
    status, problem = _post(client, api_key, "/api/v1/invoices", body, "application/json")
    assert parses == ["json"]
    assert status == 422 and problem["errors"] == {"patient.name": ["Missing data for required field."]}


def test_only_a_json_body_read_as_the_schema_reads_it_may_take_the_short_road():
    from billing.api.arguments import json_body
    from billing.api.quotes import blp

    for wrong in ({"location": "query"}, {"as_kwargs": True}, {"unknown": "exclude"}, {"validate": lambda args: True}):
        with pytest.raises(TypeError, match="json_body"):
            json_body(blp, QuoteRequestSchema(), **wrong)

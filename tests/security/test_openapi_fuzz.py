"""The API against its own OpenAPI document (/api/openapi.json), fuzzed with schemathesis.

Every documented operation is called with requests generated from the document, valid and
invalid, and each answer must be: not a 500; of a documented status, content type and body;
and, for a request the document calls valid, not a refusal of its shape, only of what a schema
can't state (an id that names nothing, an invoice in the wrong state, a business rule). So a
client generated from the document never sends what the service then refuses for its shape
(CONTRACT.md section 10). Below it, quick tests that the document's patterns say what the
service accepts, and that every error is documented as problem+json.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.inputs import NOT_BLANK_TEXT_PATTERN, ONE_LINE_PATTERN, TEXT_PATTERN, check_one_line
from billing.json_fields import DECIMAL_PATTERN, DecimalString
from billing.request_guard import _BAD_CHARACTER
from tests.conftest import ApiClient
from tests.factories import invoice_body, open_invoice, price_list_document

PROBLEM_TYPE = "https://billing.invalid/problems/"


@schemathesis.check
def refused_only_for_business_rules(ctx, response, case):
    """A request the document calls valid may be refused only by a rule no schema can state (a
    product not in the price list, a date with no price list, more than is due…), never for
    its shape: not by the schema validation (unprocessable-content) nor the request guard."""
    if case.meta is None or response.status_code != 422 or not all(
            component.mode.is_positive for component in (case.meta.generation, *case.meta.components.values())):
        return None
    kind = response.json()["type"].removeprefix(PROBLEM_TYPE)
    if kind in ("unprocessable-content", "characters-not-allowed"):
        raise AssertionError(f"A request the document calls valid was refused for its shape ({kind}): "
                             f"{response.json().get('errors')}")
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance, refused_only_for_business_rules]

# Refusals by rules that depend on data, not on the request's shape: a valid request to these
# operations may still be a 422. (404 and 409, for an id that names nothing or an invoice in
# the wrong state, are already expected of valid requests, and are documented.)
BUSINESS_RULES_422 = [
    # the versions' rules across fields: tiers in ascending order, each code and vial size once,
    # a per_vial product with unit amounts and a per_gram one without, vial sizes and tax rates
    # within bounds a decimal string can't state, no new version before today
    ("POST", "/api/v1/price-lists"),
    # the price list in effect on service_date (there may be none), its products, its tiers and
    # vial sizes; a dose within bounds a decimal string can't state
    ("POST", "/api/v1/quotes"),
    ("POST", "/api/v1/invoices"),
    ("PATCH", "/api/v1/invoices/{invoice_id}"),
    # more than is due; a payment received after tomorrow or a year before the invoice
    ("POST", "/api/v1/invoices/{invoice_id}/payments"),
    # more than was paid and not yet refunded
    ("POST", "/api/v1/invoices/{invoice_id}/refunds"),
    # more than is left to credit in a category; refund + out-of-band not equal to the part
    # after payment (which depends on what was paid)
    ("POST", "/api/v1/invoices/{invoice_id}/credit-notes"),
]

CONFIG = SchemathesisConfig.from_dict({
    "operations": [
        {"include-name": f"{method} {path}",  # one filter: several would each select operations
         "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]}}}
        for method, path in BUSINESS_RULES_422
    ],
})


def _document() -> dict:
    """The document as the service serves it. It comes from the schemas alone, so an app made
    here, before the test database exists, serves the same one as the tests' app."""
    from billing import create_app

    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}).test_client().get(
        "/api/openapi.json").get_json()


# (schemathesis.pytest.from_fixture would load it from the `app` fixture instead, but it sets
# Function._nodeid, which pytest 9 no longer has.)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG).exclude(
    # The webhooks are signed by their senders, not called with an API key: a generated request
    # can't carry a valid signature. tests/integration covers them.
    path_regex=r"^/api/v1/webhooks/",
)


@pytest.fixture
def existing(app, api_key):
    """What the generated requests work on: the contract's example price list (in effect from
    2026-01-01, so an infusion on a later date can be priced), a draft invoice, and an open
    invoice with part of it paid (203000 due, 100000 paid)."""
    api = ApiClient(app.test_client(), api_key)
    price_list = api.post("/api/v1/price-lists", json=price_list_document())
    assert price_list.status_code == 201, price_list.get_json()
    draft = api.post("/api/v1/invoices", json=invoice_body())
    assert draft.status_code == 201, draft.get_json()
    opened = open_invoice(api, patient={"id": "pt_10", "name": "Sam Example"})
    paid = api.post(f"/api/v1/invoices/{opened['id']}/payments", json={"amount": 100000, "method": "cash"})
    assert paid.status_code == 201, paid.get_json()
    return {"price_list_id": price_list.get_json()["id"], "draft": draft.get_json()["id"], "open": opened["id"]}


# An id in the path that names nothing is a 404 (and negative cases still try that); a valid
# request goes to what exists: a draft for what only a draft allows, else the open invoice.
FOR_A_DRAFT = {"PATCH /api/v1/invoices/{invoice_id}", "POST /api/v1/invoices/{invoice_id}/finalize",
               "POST /api/v1/invoices/{invoice_id}/void"}


def _to_what_exists(case, existing) -> None:
    path = case.meta.components.get(ParameterLocation.PATH) if case.meta else None
    if path is None or not path.mode.is_positive:
        return
    if "invoice_id" in case.path_parameters:
        case.path_parameters["invoice_id"] = existing["draft" if case.operation.label in FOR_A_DRAFT else "open"]
    if "price_list_id" in case.path_parameters:
        case.path_parameters["price_list_id"] = existing["price_list_id"]


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, app, api_key, existing):
    _to_what_exists(case, existing)
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)


# --- the document itself -------------------------------------------------------------------

def test_every_error_response_is_documented_as_problem_json():
    document = _document()
    shared = document["components"]["responses"]
    errors = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                response = shared[response["$ref"].rsplit("/", 1)[-1]] if "$ref" in response else response
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"}, (method, path, status)
                errors += 1
            assert "default" not in operation["responses"], (method, path)  # each error is listed
    assert errors > 50


# --- its patterns say what the service accepts ------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.from_regex(DECIMAL_PATTERN, fullmatch=True).filter(lambda t: len(t) <= 40))
def test_every_decimal_the_pattern_allows_is_accepted(text):
    DecimalString().deserialize(text)


def _guard_allows(text: str) -> bool:
    return not _BAD_CHARACTER.search(text)


def _one_line_allows(text: str) -> bool:
    try:
        check_one_line(text)
    except Exception:
        return False
    return _guard_allows(text)


# Lone surrogates (Cs), refused too, are left out of the patterns (see billing/inputs.py).
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=8) | st.text(
    st.sampled_from("a \t\n\r\x00\x01\x0b\x1c\x7f\x85\x9f\xa0\u2028\u202a\u202f\u2066\u3000\U0001f600"), max_size=6)


@settings(max_examples=500, deadline=None)
@given(texts)
def test_the_text_patterns_say_exactly_what_is_accepted(text):
    assert bool(re.fullmatch(TEXT_PATTERN, text)) == _guard_allows(text)
    assert bool(re.fullmatch(NOT_BLANK_TEXT_PATTERN, text)) == (_guard_allows(text) and bool(text.strip()))
    assert bool(re.fullmatch(ONE_LINE_PATTERN, text)) == _one_line_allows(text)

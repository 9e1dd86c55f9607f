"""The orjson provider writes what Flask's own provider writes, value for value."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from billing.json_provider import OrjsonProvider
from billing.states import InvoiceStatus


@dataclass
class Vial:
    grams: Decimal
    count: int


class Markup:
    def __html__(self) -> str:
        return "<b>safe</b>"


_APP = Flask(__name__)  # the providers hold their app weakly


@pytest.fixture
def providers() -> tuple[OrjsonProvider, DefaultJSONProvider]:
    return OrjsonProvider(_APP), DefaultJSONProvider(_APP)


SAMPLES = [
    {"amount": 203000, "quantity": Decimal("27.40"), "tax_rate": Decimal("0"), "currency": "GBP"},
    {"lines": [{"grams": Decimal("20"), "count": 1, "unit_amount": 112000}], "paid_at": None, "estimate": True},
    {"z": 1, "a": {"y": 2, "b": [3, {"d": 4, "c": 5}]}},
    {"name": "Zoë Łukasz 李雷 محمد", "statement": "Other services → not included", "emoji": "😀"},
    {"service_date": date(2026, 12, 1), "issued_at": datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)},
    {"vial": Vial(Decimal("10"), 2), "html": Markup(), "status": InvoiceStatus.OPEN},
    {"big": 2**70, "negative": -(2**65)},  # past 64 bits: Flask's own provider writes them
    {2: "integer keys", 1: "which orjson leaves to Flask's provider"},
    ["a list", 1, None, False],
    "just a string",
    {"lone surrogate": "\ud800"},  # orjson refuses it; Flask's provider escapes it
]


def _body(provider, value) -> bytes:
    with _APP.app_context():
        return provider.response(value).get_data()


@pytest.mark.parametrize("value", SAMPLES)
def test_responses_carry_the_same_json_and_headers(providers, value):
    fast, flask = providers
    with _APP.app_context():
        ours, theirs = fast.response(value), flask.response(value)
    assert ours.mimetype == theirs.mimetype == "application/json"
    assert ours.get_data().endswith(b"\n")
    assert json.loads(ours.get_data()) == json.loads(theirs.get_data())


def test_decimals_stay_strings_and_amounts_integers(providers):
    fast, _ = providers
    body = _body(fast, {"quantity": Decimal("27.4"), "amount": 168000, "tax_rate": Decimal("0.00")})
    assert body == b'{"amount":168000,"quantity":"27.4","tax_rate":"0.00"}\n'


def test_keys_are_sorted_and_compact_as_flask_writes_them(providers):
    fast, flask = providers
    value = {"total": 203000, "currency": "GBP", "lines": [{"category": "x", "amount": 1}]}
    assert _body(fast, value) == _body(flask, value) == \
        b'{"currency":"GBP","lines":[{"amount":1,"category":"x"}],"total":203000}\n'


def test_dates_are_written_as_flask_writes_them(providers):
    fast, flask = providers
    value = {"d": date(2026, 12, 1), "t": datetime(2026, 12, 1, 9, 30, 5, tzinfo=timezone.utc)}
    assert _body(fast, value) == _body(flask, value) == \
        b'{"d":"Tue, 01 Dec 2026 00:00:00 GMT","t":"Tue, 01 Dec 2026 09:30:05 GMT"}\n'


def test_what_flask_cannot_write_is_refused_the_same_way(providers):
    fast, flask = providers
    with pytest.raises(TypeError):
        _body(flask, {"x": object()})
    with pytest.raises(TypeError):
        _body(fast, {"x": object()})


def test_text_written_with_dumps_is_flasks_own(providers):
    fast, flask = providers
    value = {"detail": "Zoë → 1", "status": 422, "errors": {"dose.grams": ["Too much."]}}
    assert fast.dumps(value) == flask.dumps(value)


def test_the_service_answers_through_the_orjson_provider(app):
    assert isinstance(app.json, OrjsonProvider)


def test_a_quote_over_the_api_reads_the_same(api):
    from tests.factories import infusion, price_list_document

    assert api.post("/api/v1/price-lists", json=price_list_document()).status_code == 201
    response = api.post("/api/v1/quotes", json=infusion(dose={"grams_per_kg": "0.4", "weight_kg": "68.5"}))
    assert response.status_code == 200
    body = response.get_json()
    product, service = body["lines"]
    assert (product["amount"], product["quantity"], product["dose_grams"]) == (168000, "30", "27.4")
    assert (service["amount"], body["total"]) == (35000, 203000)
    # Byte for byte what Flask's provider writes, but for non-ASCII characters written as UTF-8
    with api.client.application.app_context():
        flask_body = DefaultJSONProvider(api.client.application).response(body).get_data()
    assert response.get_data() == json.dumps(json.loads(flask_body), ensure_ascii=False, sort_keys=True,
                                             separators=(",", ":")).encode() + b"\n"

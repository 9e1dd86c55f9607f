"""One structured line per request, with its request id, and nothing personal in it."""

from __future__ import annotations

import json
import logging

import pytest

from tests.factories import infusion, price_list_document


@pytest.fixture
def caplog(caplog):
    # The billing logger doesn't propagate to the root (it writes its own JSON lines),
    # so hand it pytest's capturing handler directly.
    logger = logging.getLogger("billing")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def request_lines(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "billing.request"]


def test_one_line_per_request_with_the_request_id_echoed(api, caplog):
    caplog.set_level(logging.INFO, logger="billing.request")
    response = api.get("/api/v1/price-lists", headers={"X-Request-Id": "req-12345678"})
    (line,) = request_lines(caplog)
    assert response.headers["X-Request-Id"] == "req-12345678"
    assert line["request_id"] == "req-12345678"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/v1/price-lists", 200)
    assert line["actor"].startswith("api_key:key_")


def test_the_log_line_carries_no_request_body(api, caplog):
    api.post("/api/v1/price-lists", json=price_list_document())
    caplog.set_level(logging.INFO, logger="billing.request")
    api.post("/api/v1/quotes", json=infusion(dose={"grams_per_kg": "0.4", "weight_kg": "68.5"},
                                             other_items=[{"description": "Jane Doe's semen analysis"}]))
    line = request_lines(caplog)[-1]
    assert line["route"] == "/api/v1/quotes"
    text = json.dumps(line)
    assert "68.5" not in text and "Jane" not in text and "semen" not in text
    assert line["status"] == 200

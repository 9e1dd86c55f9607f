"""One structured line per request, with its request id, and nothing personal in it."""

from __future__ import annotations

import json
import logging

import pytest

from billing.request_log import JsonFormatter

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


def test_a_database_error_is_logged_without_the_values_it_quotes(app, caplog):
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from billing.api.problems import log_unexpected
    from billing.extensions import db

    with app.test_request_context("/api/v1/invoices"):
        try:
            db.session.execute(text("INSERT INTO users (id) VALUES (:name)"), {"name": "Alex Example"})
        except SQLAlchemyError as error:
            db.session.rollback()
            log_unexpected(error)
    (record,) = [r for r in caplog.records if r.name == "billing.errors"]
    logged = JsonFormatter().format(record)
    line = json.loads(logged)
    assert "Alex Example" not in logged
    assert (line["error"], line["database_error"]) in (("IntegrityError", "IntegrityError"),
                                                      ("IntegrityError", "NotNullViolation"))
    assert "test_request_log.py" in line["where"][-1]

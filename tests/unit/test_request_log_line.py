"""The request log's line: made without Logger.info's stack walk, formatted by the handler."""

from __future__ import annotations

import io
import json
import logging

from billing.request_log import JsonFormatter


def _record(created: float, **fields) -> logging.LogRecord:
    record = logging.getLogger("billing.request").makeRecord("billing.request", logging.INFO, __file__, 0,
                                                             "request", (), None)
    record.created = created
    record.fields = fields
    return record


def test_one_json_line_with_the_time_as_formattime_writes_it():
    formatter = JsonFormatter()
    first = _record(1_800_000_000.25, request_id="a" * 32, route="/api/v1/quotes", status=200, ms=1.5)
    line = json.loads(formatter.format(first))
    assert line == {"ts": formatter.formatTime(first, "%Y-%m-%dT%H:%M:%S"), "level": "info",
                    "logger": "billing.request", "msg": "request", "request_id": "a" * 32,
                    "route": "/api/v1/quotes", "status": 200, "ms": 1.5}


def test_the_time_follows_the_clock_from_one_second_to_the_next():
    formatter = JsonFormatter()
    for created in (1_800_000_000.1, 1_800_000_000.9, 1_800_000_001.0, 1_799_999_999.5):
        record = _record(created)
        assert json.loads(formatter.format(record))["ts"] == formatter.formatTime(record, "%Y-%m-%dT%H:%M:%S")


def test_a_request_writes_one_line_through_the_handler(api):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("billing")
    logger.addHandler(handler)
    try:
        response = api.get("/api/v1/price-lists", headers={"X-Request-Id": "req-abcdefgh"})
    finally:
        logger.removeHandler(handler)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines() if '"billing.request"' in text]
    assert response.headers["X-Request-Id"] == "req-abcdefgh"
    assert (line["request_id"], line["method"], line["route"], line["status"]) == \
        ("req-abcdefgh", "GET", "/api/v1/price-lists", 200)
    assert line["actor"].startswith("api_key:key_") and isinstance(line["ms"], float)


def test_a_request_without_a_usable_id_gets_a_fresh_one(api):
    first = api.get("/api/v1/price-lists", headers={"X-Request-Id": "no spaces allowed"})
    second = api.get("/api/v1/price-lists")
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(ids) == 2 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)

"""The request log's line: made without Logger.info's stack walk, formatted by the handler."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time

import pytest

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


def test_a_line_is_compact_ascii_json_whatever_its_fields_hold():
    """orjson writes the usual line; what it can't write as json.dumps would (a big integer, a
    key that isn't text, a lone surrogate) and anything outside ASCII goes through json.dumps,
    escaped, so the same fields always read back the same and the line is plain ASCII."""
    from datetime import date, datetime, timezone

    formatter = JsonFormatter()
    cases = [
        ({"route": "/api/v1/quotes", "status": 200, "ms": 1.25}, None),
        ({"detail": "Clinic £ café — 患者"}, None),
        ({"big": 2 ** 70}, None),
        ({"when": datetime(2026, 11, 27, 9, 30, tzinfo=timezone.utc), "day": date(2026, 11, 27)},
         {"when": "2026-11-27 09:30:00+00:00", "day": "2026-11-27"}),
        ({"odd": "\ud800"}, None),
        ({"nested": {1: "one"}}, {"nested": {"1": "one"}}),
    ]
    for fields, expected in cases:
        text = formatter.format(_record(1_800_000_000.0, **fields))
        assert text.isascii() and "\n" not in text and text.startswith('{"ts":"'), text
        line = json.loads(text)
        assert {k: line[k] for k in fields} == (expected or fields), text
        assert (line["level"], line["logger"], line["msg"]) == ("info", "billing.request", "request")
    plain = formatter.format(_record(1_800_000_000.0, route="/api/v1/quotes", status=200))
    assert plain.endswith('"route":"/api/v1/quotes","status":200}')


def test_an_error_line_carries_its_traceback():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.getLogger("billing.request").makeRecord(
            "billing.request", logging.ERROR, __file__, 0, "failed", (), sys.exc_info())
    line = json.loads(formatter.format(record))
    assert line["level"] == "error" and line["msg"] == "failed"
    assert line["exc"].startswith("Traceback") and line["exc"].endswith("ValueError: boom")


def test_the_request_line_is_a_whole_log_record_made_now():
    """Made from a copy kept per process, it has every attribute LogRecord.__init__ gives, with
    the same values, its own time and thread, so any handler or formatter reads it as any other."""
    from billing.request_log import _RequestLine

    before = time.time()
    line = _RequestLine.make({"route": "/api/v1/quotes"})
    after = time.time()
    made = _RequestLine.made()
    assert type(line) is logging.LogRecord
    assert line.__dict__.keys() == made.__dict__.keys() | {"fields"}
    varying = {"created", "msecs", "relativeCreated"}
    assert {k: v for k, v in line.__dict__.items() if k not in varying | {"fields"}} == \
        {k: v for k, v in made.__dict__.items() if k not in varying}
    assert before <= line.created <= after and line.msecs == int((line.created - int(line.created)) * 1000)
    assert line.relativeCreated == pytest.approx((line.created - logging._startTime) * 1000)  # type: ignore[attr-defined]
    assert (line.process, line.thread) == (os.getpid(), threading.get_ident())
    assert line.fields == {"route": "/api/v1/quotes"} and line.getMessage() == "request"
    # as the standard Formatter writes any record
    assert logging.Formatter("%(process)d %(threadName)s %(levelname)s %(name)s %(message)s").format(line) == \
        f"{os.getpid()} {threading.current_thread().name} INFO billing.request request"


def test_a_forked_worker_writes_its_own_process_id():
    """gunicorn forks its workers after the app is loaded: the kept copy is the parent's until a
    child makes its first line."""
    from billing.request_log import _RequestLine

    _RequestLine.make({})  # the parent's copy is kept
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's result goes through the pipe)
        try:
            os.write(writer, str(_RequestLine.make({}).process).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as answer:
        assert int(answer.read()) == child
    os.waitpid(child, 0)
    assert _RequestLine.make({}).process == os.getpid()


def test_a_record_factory_of_someone_else_makes_every_line():
    """A tracing library's factory adds its ids to each record: no line may carry a copy of an
    earlier one's."""
    from billing.request_log import _RequestLine

    made = iter(range(1, 100))
    default = logging.getLogRecordFactory()

    def traced(*args, **kwargs):
        record = default(*args, **kwargs)
        record.span = next(made)
        return record

    _RequestLine.make({})  # a copy is kept from the default factory's record
    logging.setLogRecordFactory(traced)
    try:
        assert [_RequestLine.make({"n": n}).span for n in range(3)] == [1, 2, 3]
        assert _RequestLine.make({"n": 4}).fields == {"n": 4}
    finally:
        logging.setLogRecordFactory(default)
    assert not hasattr(_RequestLine.make({}), "span")

"""One structured log line per request, with a request id; never a name, dose or token.

The route's pattern (`/pay/<token>`) is logged, not the path, so ids and tokens stay out.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any

import orjson
from flask import Flask, Response, g, request

log = logging.getLogger("billing.request")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_INFO = logging.INFO
# Dates and dataclasses go to `default=str`, as json.dumps(default=str) wrote them.
_LINE_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class _RequestLine:
    """The request line's LogRecord, made from a copy of one kept per process.

    A record's `__init__` works out some twenty attributes, of which all but the time and the
    thread are the same for every request line of a process: where it was logged, the level's
    name, the process id (a system call) and the multiprocessing name. Made inside a request
    that took about 4.4 µs of a quote's 130, 2.6 times what it takes in a tight loop. A full
    record is made once per process (and again in a forked child, whose id differs) and each
    line copies its attributes, sets the time and thread as `LogRecord.__init__` would, and
    goes to the handlers as a plain LogRecord: any handler, filter or formatter sees every
    attribute a record has."""

    _fixed: dict[str, Any] = {}

    @classmethod
    def forget(cls) -> None:
        cls._fixed = {}

    @staticmethod
    def made() -> logging.LogRecord:
        """A request line's record as the logger makes one (Logger.info's, less its stack walk)."""
        return log.makeRecord(log.name, _INFO, __file__, 0, "request", (), None)

    @classmethod
    def make(cls, fields: dict[str, Any]) -> logging.LogRecord:
        if logging.getLogRecordFactory() is not _LogRecord:
            # Someone's own record factory (a tracing library's, adding the span's ids) may set
            # attributes of its own per record: it makes every line, as it would any record.
            record = cls.made()
            record.fields = fields
            return record
        fixed = cls._fixed
        if not fixed:
            made = cls.made()
            fixed = cls._fixed = {key: value for key, value in made.__dict__.items() if key not in _PER_LINE}
        record = _LogRecord.__new__(_LogRecord)
        attributes = record.__dict__
        attributes.update(fixed)
        now = time.time()
        attributes["created"] = now
        attributes["msecs"] = int((now - int(now)) * 1000) + 0.0  # as LogRecord.__init__ (gh-89047)
        attributes["relativeCreated"] = (now - _STARTED) * 1000
        if logging.logThreads:
            attributes["thread"] = threading.get_ident()
            attributes["threadName"] = threading.current_thread().name
        else:
            attributes["thread"] = attributes["threadName"] = None
        attributes["fields"] = fields
        return record


_LogRecord = logging.LogRecord
_PER_LINE = frozenset({"created", "msecs", "relativeCreated", "thread", "threadName"})
_STARTED = logging._startTime  # type: ignore[attr-defined]  (what relativeCreated counts from)
os.register_at_fork(after_in_child=_RequestLine.forget)


class JsonFormatter(logging.Formatter):
    """Each record as one compact JSON line of ASCII; the handler formats it, so a request only
    hands over its fields.

    orjson writes it: json.dumps, building an encoder per call, was about half of the request
    line's cost inside a quote (issue 14). What orjson can't write as json.dumps would (an integer
    past 64 bits, a key that isn't text, a lone surrogate) and any line with characters outside
    ASCII go through json.dumps, which escapes them, so every line stays plain ASCII whatever the
    stream's encoding."""

    _second = -1
    _stamp = ""

    def _ts(self, record: logging.LogRecord) -> str:
        # The time to the second, as formatTime writes it; worked out once a second, not per line.
        second = int(record.created)
        if second != self._second:
            self._stamp, self._second = self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        try:
            text = orjson.dumps(line, default=str, option=_LINE_OPTIONS).decode()
            if text.isascii():
                return text
        except TypeError:  # orjson.JSONEncodeError
            pass
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging() -> None:
    root = logging.getLogger("billing")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False


def init_request_log(app: Flask) -> None:
    """Register first of the hooks, so every answer (a refusal before the view included)
    carries the request id, and the line is made last, timing the whole request."""

    @app.before_request
    def _start() -> None:
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        state = g._get_current_object()  # type: ignore[attr-defined]  (one proxy lookup, not two)
        state.request_id = incoming if incoming and _SAFE_ID.match(incoming) else os.urandom(16).hex()
        state.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        state = g._get_current_object()  # type: ignore[attr-defined]
        request_id = state.get("request_id") or os.urandom(16).hex()
        response.headers["X-Request-Id"] = request_id
        if not log.isEnabledFor(_INFO):
            return response
        started = state.get("started")
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule
        # The record is made and handed to the handlers directly: Logger.info would also walk the
        # stack to find the caller, which this line never shows. Formatting is the handler's.
        log.handle(_RequestLine.make({
            "request_id": request_id,
            "method": req.method,
            "route": rule.rule if rule is not None else "<unmatched>",
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "actor": state.get("actor"),
        }))
        return response

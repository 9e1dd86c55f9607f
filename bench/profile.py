"""Where a request's time goes, in process (Flask test client, no HTTP): the work itself beside
the framework around it, for a quote, a draft invoice and a signed booking event.

Each column is the time spent inside one seam, per request, in µs:

- work: the use case alone (`quotes.quote`; `booking.create_invoice` with its pricing and
  database writes; `booking.receive_event`);
- body: loading the body (webargs/marshmallow through flask-smorest; for the booking webhook,
  `check_json` after the signature);
- before: `Flask.preprocess_request` (every before-request hook: size, NUL and JSON guards,
  request-log start, the API-key check);
- after: `Flask.process_response` (after-request hooks: the request-log line, session);
- out: turning the answer into a JSON response (`app.json.response`, and flask-smorest's
  schema dump for invoices);
- rest: everything else inside `app.wsgi_app` (routing, request context, teardown).

`total` is the time inside `app.wsgi_app`; the test client's own work is outside it. The figures
are those of the fastest batch of 100 requests (other processes on a shared machine only ever
add time; the fastest batch is the one they disturbed least). The log
line is written to /dev/null (as a real handler would, formatting included). Runs on SQLite
by default; BENCH_DATABASE_URL picks another database. `python -m bench profile`; also
`python -m bench.profile` (so it runs against an older checkout too).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from typing import Any, Callable, Iterator

from .http_quotes import QUOTE
from .servers import service_env

QUOTES = 2000
INVOICES = 1000
EVENTS = 1000
SECRET = "whsec_profile"
COLUMNS = ("work", "body", "before", "after", "out")

INVOICE = {**QUOTE, "patient": {"id": "pt_1", "name": "Bench Patient"}}


class Seams:
    """Time spent inside wrapped callables, by column, exclusive: a seam entered inside another
    (a schema dump inside the use case) counts to its own column, not to both. A callable that
    calls itself again counts once."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [column, started, time of the seams inside it]
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, column: str) -> None:
        # what the class itself holds (a function), so the wrapper binds as the original did
        if isinstance(owner, type):
            owner = next(c for c in owner.__mro__ if name in c.__dict__)
            raw = owner.__dict__[name]
        else:
            raw = getattr(owner, name)
        if isinstance(raw, (staticmethod, classmethod)):
            raise TypeError(f"{name}: wrap the function, not a {type(raw).__name__}")
        spent, stack = self.spent, self._stack

        def timed(*args: Any, **kwargs: Any) -> Any:
            if stack and stack[-1][0] == column:
                return raw(*args, **kwargs)
            frame = [column, time.perf_counter(), 0.0]
            stack.append(frame)
            try:
                return raw(*args, **kwargs)
            finally:
                stack.pop()
                elapsed = time.perf_counter() - frame[1]
                spent[column] += elapsed - frame[2]
                if stack:
                    stack[-1][2] += elapsed

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, raw))

    def reset(self) -> None:
        self.spent.clear()

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()


def _measure(app: Any, seams: Seams, count: int, send: Callable[[int], Any], batch: int = 100) -> dict[str, float]:
    """Per-request µs in each column, after a warm-up of 200 requests: from the fastest batch of
    `batch` requests, since on a shared machine other processes only ever add time."""
    wsgi = app.wsgi_app
    total = [0.0]

    def timed_wsgi(environ: Any, start_response: Any) -> Any:
        started = time.perf_counter()
        try:
            return wsgi(environ, start_response)
        finally:
            total[0] += time.perf_counter() - started

    app.wsgi_app = timed_wsgi
    best: dict[str, float] | None = None
    try:
        for i in range(200):
            send(-1 - i)
        for first in range(0, count, batch):
            seams.reset()
            total[0] = 0.0
            for i in range(first, first + batch):
                send(i)
            row = {column: seams.spent[column] / batch * 1e6 for column in COLUMNS}
            row["total"] = total[0] / batch * 1e6
            row["rest"] = row["total"] - sum(row[c] for c in COLUMNS)
            if best is None or row["total"] < best["total"]:
                best = row
    finally:
        app.wsgi_app = wsgi
    assert best is not None
    return best


def _check(response: Any, expected: int) -> None:
    if response.status_code != expected:
        raise SystemExit(f"unexpected answer {response.status_code}: {response.get_data(as_text=True)[:500]}")


def profile() -> dict[str, dict[str, float]]:
    with service_env(os.environ.get("BENCH_DATABASE_URL")) as (env, key):
        saved = dict(os.environ)
        os.environ.update(env)
        os.environ["BOOKING_WEBHOOK_SECRET"] = SECRET
        try:
            return _profile_app(key)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _profile_app(key: str) -> dict[str, dict[str, float]]:
    import flask
    import marshmallow
    from webargs.flaskparser import FlaskParser

    from billing import booking, create_app, quotes
    from billing.api import webhooks
    from billing.webhooks import sign

    app = create_app()
    # The request log writes where a real handler would, formatting and all, but not to the screen.
    request_logger = logging.getLogger("billing")
    saved_handlers = request_logger.handlers[:]
    sink = open(os.devnull, "w")
    for handler in request_logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)

    seams = Seams()
    seams.wrap(quotes, "quote", "work")
    seams.wrap(booking, "create_invoice", "work")
    seams.wrap(booking, "receive_event", "work")
    seams.wrap(FlaskParser, "parse", "body")
    seams.wrap(webhooks, "check_json", "body")
    seams.wrap(flask.Flask, "preprocess_request", "before")
    seams.wrap(flask.Flask, "process_response", "after")
    seams.wrap(type(app.json), "response", "out")
    seams.wrap(marshmallow.Schema, "dump", "out")

    headers = {"Authorization": f"Bearer {key}"}
    results: dict[str, dict[str, float]] = {}
    client = app.test_client()
    try:
        quote_body = json.dumps(QUOTE).encode()

        def send_quote(i: int) -> None:
            _check(client.post("/api/v1/quotes", data=quote_body, headers=headers,
                               content_type="application/json"), 200)

        results["POST /api/v1/quotes"] = _measure(app, seams, QUOTES, send_quote)

        def send_invoice(i: int) -> None:
            body = json.dumps({**INVOICE, "patient": {"id": f"pt_{i % 700}", "name": "Bench Patient"}}).encode()
            _check(client.post("/api/v1/invoices", data=body, headers=headers, content_type="application/json"), 201)

        results["POST /api/v1/invoices"] = _measure(app, seams, INVOICES, send_invoice)

        now = int(time.time())
        run = os.urandom(4).hex()  # a run of its own: a database kept from an earlier run has seen those ids

        def send_event(i: int) -> None:
            body = json.dumps({
                "id": f"evt_profile_{run}_{i}", "type": "infusion.booked", "created": now,
                "data": {"booking_id": f"bk_profile_{run}_{i}",
                         "patient": {"id": f"pt_{i % 700}", "name": "Bench Patient"},
                         "product_code": "IVIG10-5-10-20",
                         "dose": {"grams_per_kg": "0.4", "weight_kg": str(50 + i % 60)},
                         "duration_minutes": 120 + i % 180, "service_date": "2026-12-01",
                         "other_items": [{"code": "NKA", "description": "NK cell assay",
                                          "category": "fertility_investigation"}]},
            }).encode()
            _check(client.post("/api/v1/webhooks/booking", data=body, content_type="application/json",
                               headers={"Booking-Signature": sign(SECRET, body)}), 200)

        results["POST /api/v1/webhooks/booking (signed)"] = _measure(app, seams, EVENTS, send_event)
    finally:
        seams.restore()
        request_logger.handlers[:] = saved_handlers
        for handler in saved_handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(__import__("sys").stderr)
        sink.close()
        from billing.extensions import db

        with app.app_context():
            db.engine.dispose()
    return results


def table(results: dict[str, dict[str, float]]) -> Iterator[str]:
    yield f"{'µs per request':<40}{'work':>8}{'body':>8}{'before':>8}{'after':>8}{'out':>8}{'rest':>8}{'total':>8}"
    for name, row in results.items():
        yield (f"{name:<40}" + "".join(f"{row[c]:>8.0f}" for c in (*COLUMNS, "rest", "total")))


def main() -> None:
    for line in table(profile()):
        print(line)


if __name__ == "__main__":
    main()

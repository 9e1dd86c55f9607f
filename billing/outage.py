"""When the database can't be reached: a 503 with Retry-After, never a 500.

A request that needs the database while it is stopped, restarting, refusing connections or
out of pooled connections answers 503 — problem+json under /api and for /healthz, an HTML
page elsewhere — with `Retry-After`, logs one line of ids, and leaves the session clean for
the next request. Nothing needs restarting when the database is back: new connections are
made as usual, and a pooled one that the database closed meanwhile (a restart, a failover,
`pg_terminate_backend`, an idle timeout) is noticed when it is taken from the pool and
replaced, so no request fails on it (`DropClosedPool`, used by billing/__init__.py).

Only errors that mean "unreachable" become 503s. A genuine bug (ProgrammingError,
IntegrityError, a deadlock, …) still goes to the catch-all in billing/api/problems.py: 500,
logged with where it happened.
"""

from __future__ import annotations

import logging
import select
import sqlite3
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool

from .api.problems import html_error, log_unexpected, problem, wants_problem_json
from .extensions import db

log = logging.getLogger("billing.outage")

RETRY_AFTER_SECONDS = 5  # about what a PostgreSQL restart or a failover takes

# PostgreSQL error codes that mean "the server can't serve us now", not "this query is wrong":
# class 08 (connection exception), and the server shutting down, crashed, starting up, or full.
_PG_CLASSES = ("08",)
_PG_CODES = frozenset({
    "57P01",  # admin_shutdown: "terminating connection due to administrator command"
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: "the database system is starting up / shutting down"
    "53300",  # too_many_connections
})
# SQLite: busy or locked past the busy timeout, or the file can't be opened.
_SQLITE_CODES = frozenset({5, 6, 14})  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN
_SQLITE_MESSAGES = ("database is locked", "database table is locked", "unable to open database file")


class DropClosedPool(QueuePool):
    """A QueuePool that, on checkout, replaces a connection the server has closed.

    When PostgreSQL ends a session (a restart or fast shutdown, a failover, an idle timeout,
    `pg_terminate_backend`) it sends a last message and closes the socket, so a pooled
    connection it closed has a hang-up waiting on its socket. One `poll()` with no wait
    (about 1 µs) sees it, and SQLAlchemy then opens a fresh connection in its place; without
    this the first request on each such connection would fail. It does what `pool_pre_ping`
    does for these cases without pre-ping's round trip on every checkout (measured on the
    2-core machine: ~100 µs, +8%, per GET /api/v1/price-lists/current; see README). A server
    that vanished without closing anything (a pulled cable) is not seen — pre-ping would
    hang there too — and the request fails as a 503.
    """


# SQLAlchemy names a pool's logger after its class; keep ours as quiet as its own (warnings).
logging.getLogger(f"{__name__}.DropClosedPool").setLevel(logging.WARNING)

_HUNG_UP = getattr(select, "POLLRDHUP", 0) | getattr(select, "POLLHUP", 0) | getattr(select, "POLLERR", 0)


@event.listens_for(DropClosedPool, "checkout")
def _drop_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    if getattr(dbapi_connection, "closed", False):
        raise DisconnectionError("the connection was closed")
    if not hasattr(select, "poll"):  # pragma: no cover - not on Linux or macOS
        return
    try:
        fileno = dbapi_connection.fileno()
    except Exception:  # noqa: BLE001 - psycopg: "the connection is closed"
        raise DisconnectionError("the connection was closed") from None
    poller = select.poll()
    poller.register(fileno, _HUNG_UP)
    if poller.poll(0):  # the server hung up (its last words, if any, are unread): replace it
        raise DisconnectionError("the database closed this pooled connection")


def _driver_error_unreachable(error: BaseException | None) -> bool:
    if error is None:
        return False
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_CODES
        return str(error).startswith(_SQLITE_MESSAGES)
    if type(error).__module__.startswith("psycopg"):
        import psycopg

        state = getattr(error, "sqlstate", None)
        if state:
            return state.startswith(_PG_CLASSES) or state in _PG_CODES
        # No SQLSTATE: libpq's own failures — "connection refused", "server closed the
        # connection unexpectedly", "the connection is closed/lost", a connect timeout.
        return isinstance(error, psycopg.OperationalError)
    return False


def database_unreachable(error: BaseException) -> bool:
    """Whether `error` means the database can't be reached now (a 503), rather than a bug."""
    if isinstance(error, PoolTimeoutError):  # every pooled connection busy past pool_timeout
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or _driver_error_unreachable(error.orig)
    return _driver_error_unreachable(error)


def discard_session() -> None:
    """Roll back and drop this request's session, so the next one starts on a clean one.
    Either step may itself fail on a dead connection; the pool replaces it either way."""
    for step in (db.session.rollback, db.session.remove):
        try:
            step()
        except Exception:  # noqa: BLE001 - the connection is gone; nothing more to undo
            pass


_PAGE_CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
             "frame-ancestors 'none'")


def unavailable() -> Response:
    """The 503 answer: problem+json for the API and /healthz, an HTML page elsewhere."""
    # No promise that nothing changed: a connection lost during COMMIT leaves that unknown.
    # A retry with the same Idempotency-Key is safe either way.
    detail = "The database can't be reached just now; try again shortly."
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
    if wants_problem_json():
        return problem(503, "Service Unavailable", detail, slug="database-unavailable", headers=headers)
    try:
        body = html_error(503, "Service unavailable",
                          "The service can't reach its records just now. Please try again in a minute.")
    except Exception:  # noqa: BLE001 - a template that needed the database: plain text will do
        body = "<!doctype html><title>503 Service unavailable</title><h1>Service unavailable</h1>"
    response = Response(body, status=503, mimetype="text/html")
    response.headers.update(headers)
    # Staff and patient pages alike (the pay pages' own headers are not reached): the error page
    # needs only its stylesheet, and on /pay/<token> the token is in the address, so no referrer.
    response.headers["Content-Security-Policy"] = _PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _log_outage(error: BaseException) -> None:
    original = getattr(error, "orig", None) or error
    # Ids and kinds only: the message can quote the statement (and host names); no parameters.
    log.warning("database unreachable", extra={"fields": {
        "request_id": getattr(g, "request_id", None),
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else "<unmatched>",
        "error": type(error).__name__,
        "database_error": type(original).__name__,
        "sqlstate": getattr(original, "sqlstate", None),
        "invalidated": getattr(error, "connection_invalidated", None),
    }})


def _as_unexpected(error: Exception) -> Any:
    """A database error that is a bug: whatever the app's catch-all (problems.py) answers."""
    handler = current_app.error_handler_spec.get(None, {}).get(None, {}).get(Exception)
    if handler is not None:
        return handler(error)
    log_unexpected(error)
    if not wants_problem_json():
        return html_error(500, "Internal Server Error", "Something went wrong on our side."), 500
    return problem(500, "Internal Server Error", "Something went wrong on our side; it has been logged.")


def register_outage_handlers(app: Flask) -> None:
    """Error handlers for a database that went away. Flask picks the handler of the most
    specific class, so these come before problems.py's catch-all for Exception."""

    def _database_error(error: Exception) -> Any:
        if not database_unreachable(error):
            return _as_unexpected(error)
        _log_outage(error)
        discard_session()
        return unavailable()

    @app.teardown_request
    def _close_session(error: BaseException | None) -> None:
        # Close the request's session here, before Flask-SQLAlchemy's own teardown would: its
        # rollback of a reading request's open transaction raises when the database went away
        # after the answer was made, and from a teardown that turns a good answer into the WSGI
        # server's 500. The server has dropped that transaction anyway; nothing is lost.
        if not db.session.registry.has():
            return  # no session was opened (a quote, a page with no database work): nothing to close
        try:
            db.session.remove()
        except Exception as failure:
            if not database_unreachable(failure):
                raise
            log.warning("database unreachable after the answer", extra={"fields": {
                "request_id": getattr(g, "request_id", None), "error": type(failure).__name__}})
            discard_session()

    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(PoolTimeoutError, _database_error)
    app.register_error_handler(sqlite3.OperationalError, _database_error)  # never wrapped: belt and braces
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg ships with the service
        return
    app.register_error_handler(psycopg.OperationalError, _database_error)

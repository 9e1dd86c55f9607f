"""Infusion Billing: prices and bills IVIG infusions, and takes payment.

`create_app()` is the application factory: settings, extensions, blueprints, error handlers.
"""

from __future__ import annotations

import os
from pathlib import Path
from inspect import iscoroutinefunction
from types import FunctionType, MethodType
from typing import Any, Callable, Mapping

import flask_swagger_ui
from flask import Blueprint, Flask, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import ConfigError, check_settings, load_settings
from .json_provider import OrjsonProvider

__all__ = ["create_app", "ConfigError"]

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _engine_options(url: str) -> dict[str, Any]:
    # hide_parameters: a database error's message would otherwise carry the statement's values
    # (names, emails) into the logs.
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}, "hide_parameters": True}
    # DropClosedPool: a pooled connection the database closed (a restart, a failover) is seen
    # on checkout with one poll() on its socket, ~1 µs, and replaced, so no request fails on it
    # once the database is back. Not pool_pre_ping: its round trip added ~100 µs (+8%) to every
    # request here (README, "Running in production"). pool_recycle bounds how old one can get;
    # connect_timeout how long a request waits on a database that doesn't answer (then a 503).
    from .outage import DropClosedPool

    return {"poolclass": DropClosedPool, "pool_recycle": 1800, "connect_args": {"connect_timeout": 5},
            "hide_parameters": True}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLite leaves foreign keys off and readers blocking writers unless asked.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


class BillingFlask(Flask):
    """Flask, remembering which functions are plain (not `async def`): Flask asks of each hook,
    view and wrapper in turn on every request, about 14 times for a quote, and inspect's answer
    costs about a µs each time. The answer is remembered per function (for a bound method, its
    function: the method made afresh per request has the same one), at most a few thousand, so
    a function made per request can't grow the memory."""

    _SYNC_MEMORY = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: dict[FunctionType, bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        target = func.__func__ if type(func) is MethodType else func
        if type(target) is not FunctionType:
            return super().ensure_sync(func)
        plain = self._plain.get(target)
        if plain is None:
            plain = not iscoroutinefunction(func)
            if len(self._plain) < self._SYNC_MEMORY:
                self._plain[target] = plain
        return func if plain else super().ensure_sync(func)


class StaffOnlySessions(SecureCookieSessionInterface):
    """No cookie session under /api: API clients authenticate per request, and not opening
    one saves work on every API call."""

    def open_session(self, app: Flask, request: Any):
        if request.path.startswith("/api/"):
            return self.null_session_class()
        return super().open_session(app, request)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    instance = Path(os.environ.get("BILLING_INSTANCE_PATH") or _PROJECT_ROOT / "instance")
    app = BillingFlask(__name__, instance_path=str(instance))
    app.session_interface = StaffOnlySessions()
    app.json = OrjsonProvider(app)  # the same JSON, written faster
    app.config.update(load_settings(os.environ, instance))
    app.config.update(
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        API_TITLE="Infusion Billing",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from the flask-swagger-ui package, not a CDN the clinic's network may block.
        OPENAPI_SWAGGER_UI_URL="/api/docs/static/",
        # Bodies over 1 MiB are refused (413) before they are read; nothing here needs more.
        MAX_CONTENT_LENGTH=1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        # CSRF is checked by _check_csrf below, Flask-WTF's own hook less its work on API calls.
        WTF_CSRF_CHECK_DEFAULT=False,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not os.environ.get("BILLING_INSECURE_COOKIES"),
        REMEMBER_COOKIE_SECURE=not os.environ.get("BILLING_INSECURE_COOKIES"),
    )
    if config:
        app.config.update(config)
    check_settings(app.config)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))
    if app.config["TRUSTED_PROXIES"]:
        # Behind a TLS proxy: take the client's address and scheme from its X-Forwarded-* headers,
        # so sign-in limits count per person, not per proxy, and links say https.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from . import models  # noqa: F401  (tables registered before migrate sees the metadata)
    from .payments import tasks  # noqa: F401  (the outbox's Stripe handlers)
    from .messages import email, events  # noqa: F401  (the outbox's email and event handlers)
    from .api import register_api
    from .api.problems import register_error_handlers
    from .outage import register_outage_handlers
    from .cli import billing_cli
    from .extensions import csrf, db, login_manager, migrate
    from .health import bp as health_bp
    from .pay import bp as pay_bp
    from .web import bp as web_bp
    from .request_log import configure_logging, init_request_log

    configure_logging()
    init_request_log(app)  # first: its request id is in every answer, its line times everything
    db.init_app(app)
    migrate.init_app(app, db, directory=str(_PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    # Flask-WTF's own hook does nothing with WTF_CSRF_CHECK_DEFAULT off: _check_csrf takes its
    # place, so it is dropped rather than called, to return at once, on every request.
    app.before_request_funcs[None] = [
        hook for hook in app.before_request_funcs.get(None, [])
        if not (hook.__module__ == "flask_wtf.csrf" and hook.__name__ == "csrf_protect")]

    @app.before_request
    def _check_csrf() -> None:
        # What Flask-WTF's default hook does (its documented way to run it from one's own), but
        # not for /api/: every API blueprint is exempt (keys and signatures, not cookies), and
        # finding that out cost each API call a few µs of blueprint and view lookups.
        if app.config["WTF_CSRF_ENABLED"] and not request.path.startswith("/api/"):
            csrf.protect(apply_exemptions=True)

    login_manager.init_app(app)
    # Flask-Login refreshes its remember-me cookie after every request. Only the staff pages sign
    # anyone in or out, so it runs after theirs alone, not after each API call (issue 14).
    remember = getattr(login_manager, "_update_remember_cookie", None)
    if remember in app.after_request_funcs.get(None, []):
        app.after_request_funcs[None].remove(remember)
        app.after_request_funcs.setdefault(web_bp.name, []).append(remember)
    register_api(app)
    register_error_handlers(app)
    register_outage_handlers(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(pay_bp)
    app.register_blueprint(web_bp)
    login_manager.login_view = "web.login"
    login_manager.session_protection = "strong"
    app.register_blueprint(Blueprint(
        "swagger_ui_files", __name__,
        static_folder=str(Path(flask_swagger_ui.__file__).parent / "dist"),
        static_url_path="/api/docs/static",
    ))
    # /api/docs/, as people type it, is the Swagger UI at /api/docs (flask-smorest serves no slash).
    from flask import redirect

    app.add_url_rule("/api/docs/", "api_docs_slash", lambda: redirect("/api/docs", 308))
    app.cli.add_command(billing_cli)

    @login_manager.user_loader
    def _load_user(user_id: str):
        # Only a live server-side session signs anyone in (billing/staff_sessions.py).
        from flask import session

        from .staff_sessions import resume

        return resume(session.get("staff_session"), user_id)

    return app

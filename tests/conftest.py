"""Fixtures: one migrated database per run (SQLite by default, TEST_DATABASE_URL to choose),
emptied after each test along with the process's caches, and API clients holding a real key.

Tests that need committed data seen by other connections (threads, a second process) work
the same way, which an outer-transaction rollback could not give; the tables are small, so
emptying them is as fast.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text

from billing import create_app
from billing.access import create_api_key
from billing.extensions import db
from billing.recent import forget_remembered

DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
# Every app the tests create keeps its generated files out of the working tree.
os.environ["BILLING_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="billing-test-instance-")


def _fresh_postgres(url: str) -> None:
    """Drop whatever an earlier run left, so migrations start from nothing; only ever in a
    database whose name says it is for tests."""
    name = make_url(url).database or ""
    if "test" not in name.lower():
        pytest.exit(f"TEST_DATABASE_URL names the database {name!r}; the tests drop its schema, so they only "
                    "run against a database whose name contains 'test'.", returncode=2)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if DATABASE_URL:
        from billing.config import database_url as normalise

        url = normalise(DATABASE_URL, Path("."))
        _fresh_postgres(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                      # the tests speak plain http to 127.0.0.1
                      "SESSION_COOKIE_SECURE": False, "REMEMBER_COOKIE_SECURE": False})
    with app.app_context():
        upgrade()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    forget_remembered()  # a cached answer about rows this test made must not reach the next
    if "app" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("app")
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api_key(app: Flask) -> str:
    with app.app_context():
        return create_api_key("tests").secret


class ApiClient:
    """A test client that sends the API key and JSON, and returns (status, body)."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any):
        return self.client.get(path, headers={**self.headers, **(headers or {})}, **kwargs)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None, **kwargs: Any):
        return self.client.post(path, json=json, headers={**self.headers, **(headers or {})}, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any):
        return self.client.patch(path, json=json, headers=self.headers, **kwargs)


@pytest.fixture
def api(client: FlaskClient, api_key: str) -> ApiClient:
    return ApiClient(client, api_key)


def row_counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        with db.engine.connect() as conn:
            return {
                t.name: conn.execute(text(f"SELECT COUNT(*) FROM {t.name}")).scalar_one()
                for t in db.metadata.sorted_tables
            }


# --- Stripe through localstripe, and the app over HTTP ---------------------------------------

STRIPE_WEBHOOK_SECRET = "whsec_test_billing"


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory):
    from tests.servers import LocalStripe

    server = LocalStripe(tmp_path_factory.mktemp("localstripe") / "store.pickle").start()
    yield server
    server.stop()


def use_stripe(app: Flask, monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """Point the app's Stripe settings at a localstripe, with a fresh gateway."""
    for key, value in {
        "STRIPE_SECRET_KEY": "sk_test_billing", "STRIPE_PUBLISHABLE_KEY": "pk_test_billing",
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET, "STRIPE_API_BASE": base_url,
        "STRIPE_JS_URL": f"{base_url}/js.stripe.com/v3/",
    }.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.delitem(app.extensions, "stripe_gateway", raising=False)


@pytest.fixture
def stripe_on(app: Flask, localstripe, monkeypatch: pytest.MonkeyPatch):
    use_stripe(app, monkeypatch, localstripe.url)
    yield localstripe
    app.extensions.pop("stripe_gateway", None)


@pytest.fixture(scope="session")
def live_server(app: Flask):
    from tests.servers import LiveServer

    server = LiveServer(app).start()
    yield server
    server.stop()


# --- Messages: a real SMTP server and the booking system's receiver, both on 127.0.0.1 ----------

NOTIFY_SECRET = "whsec_" + __import__("base64").b64encode(b"booking-notify-secret-for-tests-32b").decode()


@pytest.fixture
def mail(app: Flask, monkeypatch: pytest.MonkeyPatch):
    """An aiosmtpd server catching the app's email (SMTP_URL points at it)."""
    from devtools.mailcatcher import Catcher, start
    from tests.servers import free_port

    catcher = Catcher()
    port = free_port()
    controller = start(catcher, port)
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setitem(app.config, "MAIL_FROM", "Riverside Clinic <billing@clinic.example>")
    if not app.config["PUBLIC_BASE_URL"]:
        monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "http://billing.clinic.example")
    yield catcher
    from billing.messages.email import _close

    _close()
    controller.stop()


@pytest.fixture
def receiver(app: Flask, monkeypatch: pytest.MonkeyPatch):
    """The booking system's end of outbound events (BOOKING_NOTIFY_URL points at it)."""
    from tests.servers import BookingReceiver

    server = BookingReceiver(NOTIFY_SECRET).start()
    monkeypatch.setitem(app.config, "BOOKING_NOTIFY_URL", server.url)
    monkeypatch.setitem(app.config, "BOOKING_NOTIFY_SECRET", NOTIFY_SECRET)
    yield server
    server.stop()

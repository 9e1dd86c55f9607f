"""SMTP_URL's three ways to reach a mail server — plain, STARTTLS and SMTPS, each with a login —
against a real aiosmtpd server on 127.0.0.1 with a certificate made for the test."""

from __future__ import annotations

import ssl
import subprocess
from email.message import EmailMessage

import pytest

from billing.messages.email import _close, send
from devtools.mailcatcher import Catcher, authenticator, start
from tests.servers import free_port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def trusted(certificate, monkeypatch):
    """The client trusts the test's certificate, as it would a real CA's (SSL_CERT_FILE)."""
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def email() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "billing@clinic.example", "pat@example.org", "Hello"
    message.set_content("Hello")
    return message


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        _close()


def serve(ctx, monkeypatch, url_scheme: str, **smtp):
    catcher, port = Catcher(), free_port()
    controller = start(catcher, port, authenticator=authenticator("clinic", "s3cret"), auth_required=True, **smtp)
    monkeypatch.setitem(ctx.config, "SMTP_URL", f"{url_scheme}://clinic:s3cret@127.0.0.1:{port}")
    return catcher, controller


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps", "smtp"])
def test_each_scheme_logs_in_and_delivers(ctx, monkeypatch, trusted, scheme):
    options = {"smtp+starttls": {"tls_context": trusted, "require_starttls": True},
               # aiosmtpd counts only STARTTLS as TLS for AUTH; this connection is TLS from its first byte.
               "smtps": {"ssl_context": trusted, "server_hostname": "127.0.0.1", "auth_require_tls": False},
               "smtp": {"auth_require_tls": False}}[scheme]
    catcher, controller = serve(ctx, monkeypatch, scheme, **options)
    try:
        send(email())
        send(email())  # on the kept connection
        assert [m["To"] for m in catcher.wait_for(2)] == ["pat@example.org", "pat@example.org"]
    finally:
        _close()
        controller.stop()


def test_a_wrong_password_is_an_error_the_outbox_retries(ctx, monkeypatch, trusted):
    catcher, controller = serve(ctx, monkeypatch, "smtp+starttls", tls_context=trusted, require_starttls=True)
    monkeypatch.setitem(ctx.config, "SMTP_URL", ctx.config["SMTP_URL"].replace("s3cret", "wrong"))
    try:
        with pytest.raises(Exception) as raised:
            send(email())
        assert "535" in str(raised.value) and catcher.messages == []
    finally:
        controller.stop()


def test_a_server_that_went_away_and_came_back_is_reached_again_without_a_restart(ctx, monkeypatch):
    catcher, port = Catcher(), free_port()
    controller = start(catcher, port)
    monkeypatch.setitem(ctx.config, "SMTP_URL", f"smtp://127.0.0.1:{port}")
    send(email())
    controller.stop()
    with pytest.raises(OSError):
        send(email())  # the kept connection is dead and nothing listens: the outbox retries later
    controller = start(catcher, port)
    try:
        send(email())
        assert len(catcher.wait_for(2)) == 2
    finally:
        _close()
        controller.stop()

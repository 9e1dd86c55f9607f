"""Settings read once from the environment, with safe defaults for a first run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(Exception):
    """A setting that stops start-up; its message is one line for the operator."""


def _secret_key(instance: Path) -> str:
    """The session signing key: generated once into instance/ and kept there."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def database_url(raw: str | None, instance: Path) -> str:
    if not raw:
        return f"sqlite:///{instance / 'billing.sqlite3'}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("DATABASE_URL is not a database URL (expected sqlite:///path or postgresql://…)") from None
    backend = url.get_backend_name()
    if backend == "postgres" or (backend == "postgresql" and url.drivername in ("postgres", "postgresql")):
        # psycopg 3 is the driver we ship; accept the plain scheme that hosting platforms hand out.
        url = url.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"DATABASE_URL names {backend}; only sqlite and postgresql are supported")
    return url.render_as_string(hide_password=False)


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value


def _seconds_list(environ: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be whole seconds separated by commas, like 5,300,1800") from None
    if not values or any(not 0 < v <= 7 * 86400 for v in values) or len(values) > 50:
        raise ConfigError(f"{name} must list 1 to 50 waits, each from 1 second to 7 days")
    return values


# Debian's fonts-noto-cjk: the CJK face PDFs use when PDF_CJK_FONT is not set and it is installed.
DEBIAN_CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
_FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


def _cjk_font(environ: Mapping[str, str]) -> str | None:
    """PDF_CJK_FONT: a font file (`….ttc#2` picks a face of a collection; the first by default)."""
    raw = (environ.get("PDF_CJK_FONT") or "").strip()
    if not raw:
        return DEBIAN_CJK_FONT if os.path.isfile(DEBIAN_CJK_FONT) else None
    path, _, number = raw.partition("#")
    if not path.lower().endswith(_FONT_SUFFIXES) or (number and not number.isdigit()):
        raise ConfigError("PDF_CJK_FONT must be a .ttf, .otf, .ttc or .otc file, optionally with #N for a face "
                          "of a collection")
    if not os.path.isfile(path):
        raise ConfigError(f"PDF_CJK_FONT names no file: {path}")
    return raw


SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


def _smtp_url(environ: Mapping[str, str]) -> str | None:
    """SMTP_URL: smtp://host:25 (plain), smtp+starttls://user:pass@host:587, smtps://user:pass@host:465."""
    raw = (environ.get("SMTP_URL") or "").strip()
    if not raw:
        return None
    try:
        url = make_url(raw)
    except ArgumentError:
        url = None
    if url is None or url.drivername not in SMTP_SCHEMES or not url.host:
        raise ConfigError("SMTP_URL must look like smtp://host:25, smtp+starttls://user:password@host:587 "
                          "or smtps://user:password@host:465")
    return raw


def _mail_from(environ: Mapping[str, str], clinic: str) -> str:
    from email.headerregistry import Address
    from email.utils import formataddr, parseaddr

    raw = (environ.get("MAIL_FROM") or "").strip()
    if not raw:
        return formataddr((clinic, "billing@localhost"))
    name, address = parseaddr(raw)
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError):
        address = ""
    if "@" not in address or any(c in raw for c in "\r\n"):
        raise ConfigError("MAIL_FROM must be an email address, optionally with a name: Clinic <billing@clinic.example>")
    return formataddr((name or clinic, address))


def _notify_secret(environ: Mapping[str, str]) -> str | None:
    """BOOKING_NOTIFY_SECRET: a Standard Webhooks secret, whsec_ and base64 of 24 or more random bytes."""
    import base64
    import binascii

    raw = (environ.get("BOOKING_NOTIFY_SECRET") or "").strip()
    if not raw:
        return None
    try:
        key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 24:
        raise ConfigError("BOOKING_NOTIFY_SECRET must be whsec_ followed by base64 of at least 24 random bytes "
                          "(python -c \"import base64,os; print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")")
    return raw


def _http_url(environ: Mapping[str, str], name: str) -> str | None:
    from urllib.parse import urlsplit

    raw = (environ.get(name) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in raw):
        raise ConfigError(f"{name} must be an http:// or https:// address")
    return raw


def _printed_text(environ: Mapping[str, str], name: str, *, max_length: int, max_lines: int = 1) -> str | None:
    """Text the clinic prints on its documents. Where more than one line is allowed, a line
    breaks at a newline or at the two characters \\n (an env file holds one line per setting)."""
    raw = (environ.get(name) or "").replace("\r\n", "\n")
    if max_lines > 1:
        raw = raw.replace("\\n", "\n")
    text = "\n".join(line.strip() for line in raw.strip().split("\n"))
    if not text:
        return None
    if (len(text) > max_length or text.count("\n") >= max_lines
            or any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)):
        shape = "one line" if max_lines == 1 else f"at most {max_lines} lines"
        raise ConfigError(f"{name} must be {shape} of plain text, at most {max_length} characters")
    return text


def check_settings(config: Mapping[str, Any]) -> None:
    """Settings that only make sense together, checked once the app's config is final.

    Links in emails and on PDFs start with PUBLIC_BASE_URL, never with a request's Host header:
    once paying online or email is on, it must be set."""
    if config.get("BOOKING_NOTIFY_URL") and not config.get("BOOKING_NOTIFY_SECRET"):
        raise ConfigError("BOOKING_NOTIFY_SECRET must be set with BOOKING_NOTIFY_URL: events are signed with it")
    if not config.get("PUBLIC_BASE_URL") and (config.get("STRIPE_SECRET_KEY") or config.get("SMTP_URL")):
        raise ConfigError("PUBLIC_BASE_URL must be set (e.g. https://billing.clinic.example) once paying online "
                          "(STRIPE_SECRET_KEY) or email (SMTP_URL) is on: payment links start with it")


def load_settings(environ: Mapping[str, str], instance: Path) -> dict[str, Any]:
    instance.mkdir(parents=True, exist_ok=True)
    clinic = environ.get("CLINIC_NAME") or "Riverside Clinic"
    return {
        "SECRET_KEY": environ.get("SECRET_KEY") or _secret_key(instance),
        "SQLALCHEMY_DATABASE_URI": database_url(environ.get("DATABASE_URL"), instance),
        # Comma-separated: during a rotation both the old and the new secret are accepted.
        "BOOKING_WEBHOOK_SECRETS": [s.strip() for s in (environ.get("BOOKING_WEBHOOK_SECRET") or "").split(",")
                                    if s.strip()],
        "STRIPE_SECRET_KEY": environ.get("STRIPE_SECRET_KEY") or None,
        "STRIPE_PUBLISHABLE_KEY": environ.get("STRIPE_PUBLISHABLE_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": environ.get("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_API_BASE": environ.get("STRIPE_API_BASE") or "https://api.stripe.com",
        "STRIPE_JS_URL": environ.get("STRIPE_JS_URL") or "https://js.stripe.com/v3/",
        "PUBLIC_BASE_URL": (_http_url(environ, "PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "CLINIC_NAME": clinic,
        "CLINIC_ADDRESS": environ.get("CLINIC_ADDRESS") or "1 Clinic Street, London, W1 1AA",
        "CLINIC_CONTACT": environ.get("CLINIC_CONTACT") or "billing@clinic.example, 020 7946 0000",
        "INVOICE_PREFIX": environ.get("INVOICE_PREFIX") or "INV",
        "INVOICE_DUE_DAYS": _int(environ, "INVOICE_DUE_DAYS", 14, 0, 365),
        "TRUSTED_PROXIES": _int(environ, "TRUSTED_PROXIES", 0, 0, 5),
        "PAYMENT_LINK_DAYS": _int(environ, "PAYMENT_LINK_DAYS", 30, 1, 365),
        # How long the outbox worker waits before each retry of a failed delivery; then `failed`.
        "OUTBOX_RETRY_SECONDS": _seconds_list(environ, "OUTBOX_RETRY_SECONDS", (5, 300, 1800, 7200, 18000, 36000, 36000)),
        # Messages (billing/messages/): email through SMTP_URL, events to the booking system.
        "SMTP_URL": _smtp_url(environ),
        "MAIL_FROM": _mail_from(environ, clinic),
        "BOOKING_NOTIFY_URL": _http_url(environ, "BOOKING_NOTIFY_URL"),
        "BOOKING_NOTIFY_SECRET": _notify_secret(environ),
        # A CJK font for names in Chinese, Japanese or Korean on PDFs (billing/pdf.py).
        "PDF_CJK_FONT": _cjk_font(environ),
        # Printed on invoices and credit notes (billing/pdf.py); none of them printed when unset.
        "CLINIC_VAT_NUMBER": _printed_text(environ, "CLINIC_VAT_NUMBER", max_length=40),
        "CLINIC_COMPANY_NUMBER": _printed_text(environ, "CLINIC_COMPANY_NUMBER", max_length=40),
        "PAYMENT_INSTRUCTIONS": _printed_text(environ, "PAYMENT_INSTRUCTIONS", max_length=1000, max_lines=12),
    }

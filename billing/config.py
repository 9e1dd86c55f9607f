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


def load_settings(environ: Mapping[str, str], instance: Path) -> dict[str, Any]:
    instance.mkdir(parents=True, exist_ok=True)
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
        "PUBLIC_BASE_URL": (environ.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "CLINIC_NAME": environ.get("CLINIC_NAME") or "Riverside Clinic",
        "CLINIC_ADDRESS": environ.get("CLINIC_ADDRESS") or "1 Clinic Street, London, W1 1AA",
        "CLINIC_CONTACT": environ.get("CLINIC_CONTACT") or "billing@clinic.example, 020 7946 0000",
        "INVOICE_PREFIX": environ.get("INVOICE_PREFIX") or "INV",
        "INVOICE_DUE_DAYS": _int(environ, "INVOICE_DUE_DAYS", 14, 0, 365),
        "TRUSTED_PROXIES": _int(environ, "TRUSTED_PROXIES", 0, 0, 5),
        "PAYMENT_LINK_DAYS": _int(environ, "PAYMENT_LINK_DAYS", 30, 1, 365),
        # How long the outbox worker waits before each retry of a failed delivery; then `failed`.
        "OUTBOX_RETRY_SECONDS": _seconds_list(environ, "OUTBOX_RETRY_SECONDS", (5, 300, 1800, 7200, 18000, 36000, 36000)),
        # A CJK font for names in Chinese, Japanese or Korean on PDFs (billing/pdf.py).
        "PDF_CJK_FONT": _cjk_font(environ),
    }

"""The finance staff's pages: server-rendered, every form a plain HTML form with CSRF.

Roles: a viewer reads; finance also issues, voids and takes payments and refunds; an admin
also edits price lists, users and API keys.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, abort, request
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError
from wtforms.fields.choices import SelectChoice

bp = Blueprint("web", __name__, template_folder="../templates/web")

RANKS = {"viewer": 0, "finance": 1, "admin": 2}


# Staff pages: own scripts and styles only, never framed (a confirmation page can't be
# clickjacked), never sniffed, and — they show patient data — never cached.
STAFF_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@bp.after_app_request
def _staff_page_headers(response):
    path = request.path
    if path.startswith(("/api/", "/pay/")) or path == "/healthz":
        return response  # the API answers JSON; the pay pages set their own (Stripe.js) policy
    response.headers.setdefault("Content-Security-Policy", STAFF_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype in ("text/html", "text/csv", "application/pdf"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_errorhandler(CSRFError)
def _csrf_failed(error):
    """A form refused for its CSRF token. Over plain http with the Secure cookie on, the
    session cookie never comes back: the page says so (error.html), and so does the log."""
    from flask import current_app, g

    from ..api.problems import html_error, problem, wants_problem_json

    if wants_problem_json():
        return problem(400, "Bad Request", error.description)
    if (not request.is_secure and current_app.config["SESSION_COOKIE_SECURE"]
            and current_app.config["SESSION_COOKIE_NAME"] not in request.cookies):
        logging.getLogger("billing.web").warning(
            "form refused: the Secure session cookie can't come back over plain http; "
            "serve HTTPS or set BILLING_INSECURE_COOKIES=1 (127.0.0.1 only)",
            extra={"fields": {"request_id": getattr(g, "request_id", None)}})
    return html_error(400, "Bad Request", error.description), 400


def can(role: str) -> bool:
    return current_user.is_authenticated and RANKS.get(current_user.role, -1) >= RANKS[role]


def requires(role: str) -> Callable:
    """The view needs a signed-in user of at least `role`; others get a 403 page."""
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not can(role):
                abort(403, description=f"Your role ({current_user.role}) can't do this; it needs {role}.")
            return view(*args, **kwargs)
        return wrapper
    return decorate


def choices(pairs: list[tuple[str, str]]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


_AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?")
MAX_FORM_AMOUNT = 10_000_000_00  # £10 million: no single payment or refund here comes near it


def pence(text: str | None) -> int:
    """"1234.56" or "1,234.56" → 123456; anything looser ("£1,2,3", "1e-2", "12.345") is a
    ValueError with a message for the form."""
    cleaned = (text or "").strip()
    if not _AMOUNT.fullmatch(cleaned):
        raise ValueError("Enter an amount in pounds, like 1234.56 or 1,234.56.")
    value = int(Decimal(cleaned.replace(",", "")) * 100)
    if value > MAX_FORM_AMOUNT:
        raise ValueError("That is more than any payment here can be.")
    return value


def pounds(amount: int | None) -> str:
    """123450 → "1234.50" (for prefilling inputs)."""
    if amount is None:
        return ""
    return f"{Decimal(amount) / 100:.2f}"


from . import admin, auth, booking_events, dashboard, invoices, messages, price_lists, reports  # noqa: E402,F401

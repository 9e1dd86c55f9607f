"""The finance staff's pages: server-rendered, every form a plain HTML form with CSRF.

Roles: a viewer reads; finance also issues, voids and takes payments and refunds; an admin
also edits price lists, users and API keys.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, abort
from flask_login import current_user, login_required
from wtforms.fields.choices import SelectChoice

bp = Blueprint("web", __name__, template_folder="../templates/web")

RANKS = {"viewer": 0, "finance": 1, "admin": 2}


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


def pence(text: str | None) -> int:
    """"1,234.50" or "£1234.5" → 123450. Raises ValueError for anything else (no rounding)."""
    cleaned = (text or "").strip().replace(",", "").replace("£", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter an amount in pounds, like 250.00.") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError("Enter pounds and pence, at most two decimal places.")
    return int(value * 100)


def pounds(amount: int | None) -> str:
    """123450 → "1234.50" (for prefilling inputs)."""
    if amount is None:
        return ""
    return f"{Decimal(amount) / 100:.2f}"


from . import admin, auth, booking_events, dashboard, invoices, price_lists, reports  # noqa: E402,F401

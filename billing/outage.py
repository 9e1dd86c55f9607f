"""When the database can't be reached: a 503 with Retry-After, never a 500 (filled in below)."""

from __future__ import annotations

from flask import Flask


def register_outage_handlers(app: Flask) -> None:
    """Error handlers for a database that went away (a stub until they are written)."""

"""API key authentication for every /api/v1 blueprint except the signed webhooks."""

from __future__ import annotations

from flask import g, request
from flask_smorest import Blueprint

from ..access import api_key_for
from .problems import problem


def authenticate():
    """Every API route needs `Authorization: Bearer <key>`; webhooks opt out and sign instead."""
    # The header straight from the WSGI environ (what request.headers reads, less its lookup);
    # the key itself is a SHA-256 and a dict lookup in access.api_key_for's memory of recent keys.
    scheme, _, secret = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    key_id = api_key_for(secret.strip()) if scheme.lower() == "bearer" and secret else None
    if key_id is None:
        return problem(401, "Unauthorized", "A valid API key is required: send Authorization: Bearer <key>.",
                       headers={"WWW-Authenticate": 'Bearer realm="billing"'})
    g.actor = f"api_key:{key_id}"
    return None


def api_blueprint(name: str, import_name: str, description: str) -> Blueprint:
    blp = Blueprint(name, import_name, url_prefix="/api/v1", description=description)
    blp.before_request(authenticate)
    return blp

"""GET /healthz: 200 when the database answers, 503 when it doesn't."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .api.problems import problem
from .extensions import db

bp = Blueprint("health", __name__)
log = logging.getLogger("billing.health")


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("database unreachable: %s", type(error).__name__)
        db.session.rollback()
        return problem(503, "Service Unavailable", "The database does not answer.")
    return jsonify(status="ok")

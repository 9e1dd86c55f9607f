"""GET /healthz: 200 when the database answers, 503 (with Retry-After) when it doesn't."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .api.problems import problem
from .extensions import db
from .outage import RETRY_AFTER_SECONDS, discard_session

bp = Blueprint("health", __name__)
log = logging.getLogger("billing.health")


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:  # whatever the reason, the database does not answer
        log.warning("database unreachable: %s", type(error).__name__)
        discard_session()
        return problem(503, "Service Unavailable", "The database does not answer.",
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})
    return jsonify(status="ok")

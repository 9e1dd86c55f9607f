"""POST /api/v1/webhooks/booking: signed by the booking system instead of an API key."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from .. import booking
from ..payments import payment_base_url, stripe_events
from ..request_guard import check_json
from ..webhooks import SignatureError, verify
from .problems import problem

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                description="Events from the booking system (and, later, Stripe)")
log = logging.getLogger("billing.webhooks")

SIGNED = {"security": [], "parameters": [{
    "in": "header", "name": "Booking-Signature", "required": True, "schema": {"type": "string"},
    "description": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>; several v1 allowed.",
}]}


@blp.route("/booking")
class BookingWebhook(MethodView):
    @blp.doc(**SIGNED, requestBody={"content": {"application/json": {"schema": {"type": "object"}}}},
             responses={"200": {"description": '{"event_id", "result", "invoice_id"}: what happened.'},
                        "401": {"description": "Bad or missing signature; nothing applied."},
                        "422": {"description": "Recorded, but can't be applied; says why."},
                        "503": {"description": "BOOKING_WEBHOOK_SECRET is not set."}})
    def post(self):
        """One booking event. The same id twice applies once; older events than the last applied change nothing."""
        secrets = current_app.config["BOOKING_WEBHOOK_SECRETS"]
        if not secrets:
            return problem(503, "Service Unavailable", "Booking webhooks are off: BOOKING_WEBHOOK_SECRET is not set.")
        raw = request.get_data(cache=True)
        try:
            verify(request.headers.get("Booking-Signature"), raw, secrets)
        except SignatureError as error:
            log.info("booking webhook refused", extra={"fields": {"reason": str(error)}})
            return problem(401, "Unauthorized", str(error), slug="bad-signature")
        payload = check_json(raw)  # depth and characters, now that the sender is known
        if payload is None:
            return problem(400, "Bad Request", "The request body is not valid JSON.")
        try:
            outcome = booking.receive_event(payload, payment_base_url=payment_base_url())
        except booking.EventFailed as failure:
            return problem(422, "Unprocessable Content", failure.detail, errors=failure.errors,
                           slug="booking-event-failed", event_id=failure.event_id, result="failed")
        body = {"event_id": outcome.event_id, "result": outcome.result, "invoice_id": outcome.invoice_id}
        if outcome.flag:
            body["flag"] = outcome.flag
        if outcome.payment_url:
            body["payment_url"] = outcome.payment_url
        return jsonify(body)


@blp.route("/stripe")
class StripeWebhook(MethodView):
    @blp.doc(security=[], requestBody={"content": {"application/json": {"schema": {"type": "object"}}}},
             responses={"200": {"description": '{"received": true, "outcome": …}'},
                        "400": {"description": "Bad Stripe-Signature; nothing recorded."},
                        "503": {"description": "STRIPE_WEBHOOK_SECRET is not set."}})
    def post(self):
        """Stripe events: payment_intent.succeeded / .payment_failed, charge.refunded; others logged."""
        secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
        if not secret:
            return problem(503, "Service Unavailable", "Stripe webhooks are off: STRIPE_WEBHOOK_SECRET is not set.")
        try:
            # The raw body, verified before anything is parsed.
            event = stripe_events.verify(request.get_data(cache=True), request.headers.get("Stripe-Signature"), secret)
        except stripe_events.BadSignature as error:
            log.info("stripe webhook refused", extra={"fields": {"reason": "signature"}})
            return problem(400, "Bad Request", str(error), slug="bad-signature")
        return jsonify(received=True, outcome=stripe_events.handle(event))

"""What the booking system sent, what became of it, and replay of what failed."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .. import booking
from ..payments import payment_base_url
from .auth import api_blueprint
from .problems import problem_response
from .schemas import PaginationSchema

blp = api_blueprint("booking_events", __name__, "Booking events as received")


class BookingEventQuerySchema(PaginationSchema):
    outcome = fields.String(validate=validate.OneOf(
        ["created", "updated", "finalized", "voided", "stale", "ignored", "failed", "dismissed"]))
    booking_id = fields.String(validate=validate.Length(1, 64))


class BookingEventSchema(Schema):
    id = fields.String()
    type = fields.String()
    booking_id = fields.String(allow_none=True)
    created = fields.Integer()
    outcome = fields.String()
    error = fields.String(allow_none=True)
    flag = fields.String(allow_none=True)
    invoice_id = fields.String(allow_none=True)
    deliveries = fields.Integer()
    received_at = fields.DateTime()
    applied_at = fields.DateTime(allow_none=True)
    body = fields.Dict()


class BookingEventPageSchema(Schema):
    data = fields.List(fields.Nested(BookingEventSchema))
    has_more = fields.Boolean()


class ReplayResultSchema(Schema):
    event_id = fields.String()
    result = fields.String()
    invoice_id = fields.String(allow_none=True)
    flag = fields.String(allow_none=True)
    payment_url = fields.String(allow_none=True)


@blp.route("/booking-events")
class BookingEvents(MethodView):
    @blp.arguments(BookingEventQuerySchema(), location="query")
    @blp.response(200, BookingEventPageSchema)
    def get(self, args):
        """Booking events newest first; `outcome=failed` lists what needs attention."""
        rows, has_more = booking.list_events(**args)
        return {"data": rows, "has_more": has_more}


@blp.route("/booking-events/<event_id>/replay")
class ReplayBookingEvent(MethodView):
    @blp.response(200, ReplayResultSchema)
    @blp.doc(responses={"404": problem_response("No booking event has this id."),
                        "409": problem_response("The event is not a failed one: it was applied already."),
                        "422": problem_response("The event failed again; the detail says why.")})
    def post(self, event_id):
        """Apply a failed event again (after, say, the price list was fixed)."""
        return booking.replay_event(event_id, payment_base_url=payment_base_url())

"""Messages about an invoice (CONTRACT.md section 9): its emails and events, with delivery
state, and resending one."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from .. import invoicing, messages
from ..states import OutboxStatus
from .auth import api_blueprint
from .idempotency import idempotent
from .invoices import idempotency_doc
from .problems import problem_response

blp = api_blueprint("messages", __name__, "Messages: emails to payers and events to the booking system")


class MessageSchema(Schema):
    id = fields.String(metadata={"example": "msg_…"})
    kind = fields.String(metadata={"enum": list(messages.SHOWN_KINDS)})
    topic = fields.String(metadata={"description": "The event type (invoice.paid, …) or the email "
                                                   "(email.invoice_issued, email.receipt, email.refund, "
                                                   "email.credit_note, email.reminder).",
                                    "example": "invoice.finalized"})
    to = fields.String(allow_none=True, metadata={"description": "The email address, or the booking system's URL."})
    status = fields.String(metadata={"enum": list(OutboxStatus), "description":
                                     "skipped: it no longer applied when its turn came (a reminder for an "
                                     "invoice paid meanwhile), so it was not sent."})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class MessageListSchema(Schema):
    data = fields.List(fields.Nested(MessageSchema))


@blp.route("/invoices/<invoice_id>/messages")
class InvoiceMessages(MethodView):
    @blp.response(200, MessageListSchema)
    @blp.doc(responses={"404": problem_response("No such invoice.")})
    def get(self, invoice_id):
        """The emails and events about an invoice, oldest first, with their delivery state."""
        invoice = invoicing.get_invoice(invoice_id)
        return {"data": [messages.message_json(m) for m in messages.messages_of(invoice)]}


@blp.route("/messages/<message_id>/resend")
class ResendMessage(MethodView):
    @idempotent
    @blp.response(202, MessageSchema)
    @blp.doc(**idempotency_doc("The message is still queued."))
    @blp.doc(responses={"404": problem_response("No such message.")})
    def post(self, message_id):
        """Send a message again: a failed or skipped one goes back in the queue under its own id; a
        sent one is copied under a new id (so the receiver doesn't drop it as a repeat)."""
        return messages.message_json(messages.resend(message_id))

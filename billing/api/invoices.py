"""Invoices: drafts, finalize, void, uncollectible, payments, refunds, audit trail."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView
from marshmallow import Schema, fields

from .. import booking, invoicing, payment_links
from ..models import Invoice, Payment, Refund
from ..pdf import invoice_pdf
from ..payments import public_base_url, stripe_gateway
from ..quotes import build_request
from .arguments import json_body
from .auth import api_blueprint
from .idempotency import idempotent, request_key
from .problems import problem_response
from .schemas import (
    INVOICE_EXAMPLE,
    AuditTrailSchema,
    InvoiceCreateSchema,
    InvoiceListQuerySchema,
    InvoicePageSchema,
    InvoiceSchema,
    InvoiceUpdateSchema,
    PaymentCreateSchema,
    RefundCreateSchema,
)

blp = api_blueprint("invoices", __name__, "Invoices, payments and refunds")
_update_schema = InvoiceUpdateSchema()

def idempotency_doc(conflict: str) -> dict[str, Any]:
    """The Idempotency-Key header, and the answers it adds: 400 for a key that isn't 1 to 255
    characters, 409 for one used with another request. `conflict`: when else this is a 409."""
    return {
        "parameters": [{
            "in": "header", "name": "Idempotency-Key", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Retry safely: the same key with the same body replays the first answer.",
        }],
        "responses": {
            "400": problem_response("Malformed: a body that is not JSON or nests deeper than 32 levels, a NUL "
                                    "character (\\u0000) anywhere in the request, or an Idempotency-Key that is "
                                    "not 1 to 255 characters."),
            "409": problem_response(f"{conflict} Or the Idempotency-Key was used with a different request, or "
                                    "its first request is unfinished or failed part-way (send it again)."),
        },
    }


_NOT_FOUND = {"404": problem_response("No invoice has this id.")}


def invoice_view(invoice: Invoice, payments: list[Payment], refunds: list[Refund],
                 credit_notes: list[str] | None = None) -> dict[str, Any]:
    payment_ids = {p.seq: p.id for p in payments}
    return {
        "id": invoice.id, "number": invoice.number, "status": invoice.status, "currency": invoice.currency,
        "service_date": invoice.service_date, "booking_id": invoice.booking_id,
        "patient": {"id": invoice.patient_id, "name": invoice.patient_name, "email": invoice.patient_email,
                    "address": invoice.patient_address},
        "bill_to": invoice.bill_to,
        "price_list": {"id": invoice.price_list_id, "version": invoice.price_list_version},
        "lines": invoice.lines, "excluded_items": invoice.excluded_items, "statement": invoice.statement,
        "subtotal": invoice.subtotal, "tax": invoice.tax, "total": invoice.total,
        "amount_paid": invoice.amount_paid, "amount_refunded": invoice.amount_refunded,
        "amount_credited": invoice.amount_credited, "credit_notes": credit_notes or [],
        "amount_due": invoice.amount_due,
        "issued_at": invoice.issued_at, "due_date": invoice.due_date, "paid_at": invoice.paid_at,
        "voided_at": invoice.voided_at, "uncollectible_at": invoice.uncollectible_at,
        "created_at": invoice.created_at,
        "payments": payments,
        "refunds": [{"id": r.id, "payment_id": payment_ids.get(r.payment_seq), "amount": r.amount,
                     "reason": r.reason, "status": r.status, "created_at": r.created_at} for r in refunds],
        "attention": invoice.attention,
    }


def one(invoice: Invoice) -> dict[str, Any]:
    payments, refunds = invoicing.children_of([invoice])[invoice.seq]
    return invoice_view(invoice, payments, refunds, invoicing.credit_note_ids([invoice])[invoice.seq])


@blp.route("/invoices")
class Invoices(MethodView):
    @blp.arguments(InvoiceListQuerySchema(), location="query")
    @blp.response(200, InvoicePageSchema)
    def get(self, args):
        """List invoices newest first; filter by status, patient_id, booking_id."""
        rows, has_more = invoicing.list_invoices(**args)
        children, notes = invoicing.children_of(rows), invoicing.credit_note_ids(rows)
        return {"data": [invoice_view(r, *children[r.seq], notes[r.seq]) for r in rows], "has_more": has_more}

    @idempotent
    @json_body(blp, InvoiceCreateSchema(), example=INVOICE_EXAMPLE)
    @blp.response(201, InvoiceSchema)
    @blp.doc(**idempotency_doc("The booking (booking_id) already has a live invoice."))
    def post(self, data):
        """A draft invoice for one infusion, priced exactly as a quote."""
        invoice = booking.create_invoice(build_request(data), data["patient"], g.actor,
                                         booking_id=data["booking_id"], bill_to=data["bill_to"])
        return one(invoice)


@blp.route("/invoices/<invoice_id>")
class InvoiceById(MethodView):
    @blp.response(200, InvoiceSchema)
    @blp.doc(responses=_NOT_FOUND)
    def get(self, invoice_id):
        """One invoice with its payments and refunds."""
        return one(invoicing.get_invoice(invoice_id))

    @blp.arguments(_update_schema)
    @blp.response(200, InvoiceSchema)
    @blp.doc(responses={**_NOT_FOUND, "409": problem_response(
        "The invoice is not a draft, or it already belongs to another booking, or the booking already has "
        "a live invoice.")})
    def patch(self, changes, invoice_id):
        """Change a draft's inputs; it is re-priced. 409 unless the invoice is a draft."""
        # Back to the JSON form the invoice stores its inputs in; merged under the row lock.
        return one(booking.update_invoice(invoice_id, _update_schema.dump(changes), g.actor))


def _action(name: str, use_case, summary: str, conflict: str) -> None:
    class Action(MethodView):
        @idempotent
        @blp.response(200, InvoiceSchema)
        @blp.doc(summary=summary, **idempotency_doc(conflict))
        @blp.doc(responses=_NOT_FOUND)
        def post(self, invoice_id):
            return one(use_case(invoice_id, g.actor))

    Action.__name__ = f"Invoice{name.title().replace('-', '')}"
    blp.route(f"/invoices/<invoice_id>/{name}")(Action)


_action("finalize", invoicing.finalize_invoice, "draft → open: number, due date, lines frozen",
        "The invoice is not a draft.")
_action("void", invoicing.void_invoice, "draft or open, with no payments → void",
        "The invoice is not a draft or open, or it has payments.")
_action("mark-uncollectible", invoicing.mark_uncollectible, "open → uncollectible (written off)",
        "The invoice is not open.")


@blp.route("/invoices/<invoice_id>/payments")
class InvoicePayments(MethodView):
    @idempotent
    @blp.arguments(PaymentCreateSchema())
    @blp.response(201, InvoiceSchema)
    @blp.doc(**idempotency_doc("The invoice is not open or uncollectible."))
    @blp.doc(responses=_NOT_FOUND)
    def post(self, data, invoice_id):
        """Record a payment taken by hand; more than is due is refused (422)."""
        return one(invoicing.record_payment(invoice_id, data["amount"], data["method"], g.actor,
                                            reference=data["reference"], received_on=data["received_on"]))


@blp.route("/invoices/<invoice_id>/refunds")
class InvoiceRefunds(MethodView):
    @idempotent(in_steps=True)
    @blp.arguments(RefundCreateSchema())
    @blp.response(201, InvoiceSchema)
    @blp.doc(**idempotency_doc("The invoice has nothing to refund, or Stripe refused the refund."))
    @blp.doc(responses={**_NOT_FOUND,
                        "503": problem_response("The money was paid online and Stripe is not configured or "
                                                "could not be reached; nothing was refunded.")})
    def post(self, data, invoice_id):
        """Refund part or all of what was paid; more than remains is refused (422).

        Card money goes back through Stripe; a retry with the same Idempotency-Key reuses
        the refund it started, so it can never refund twice."""
        return one(invoicing.refund(invoice_id, data["amount"], data["reason"], g.actor, stripe_gateway(),
                                    request_key=request_key()))


class PaymentLinkSchema(Schema):
    url = fields.String(metadata={"example": "https://billing.example/pay/…"})
    expires_at = fields.DateTime()


@blp.route("/invoices/<invoice_id>/payment-link")
class InvoicePaymentLink(MethodView):
    @idempotent
    @blp.response(201, PaymentLinkSchema)
    @blp.doc(**idempotency_doc("The invoice is not open (or uncollectible) with something due."))
    @blp.doc(responses=_NOT_FOUND)
    def post(self, invoice_id):
        """A new payment link for the patient (open invoices with something due; 409 otherwise)."""
        url, expires_at = payment_links.create_payment_link(invoice_id, g.actor, public_base_url())
        return {"url": url, "expires_at": expires_at}


@blp.route("/invoices/<invoice_id>/pdf")
class InvoicePdf(MethodView):
    @blp.doc(responses={"200": {"description": "The invoice as a PDF.",
                                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                        **_NOT_FOUND})
    def get(self, invoice_id):
        """The invoice as a PDF: supplier, patient and payer, both fee lines, totals, exclusions."""
        name, body = invoice_pdf(invoicing.get_invoice(invoice_id), public_base_url())
        response = Response(body, mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
        return response


@blp.route("/invoices/<invoice_id>/audit")
class InvoiceAudit(MethodView):
    @blp.response(200, AuditTrailSchema)
    @blp.doc(responses=_NOT_FOUND)
    def get(self, invoice_id):
        """Who did what to this invoice, when, with the state before and after, oldest first."""
        return {"data": invoicing.audit_trail(invoice_id)}

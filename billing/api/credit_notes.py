"""Credit notes (CONTRACT.md section 8): issue one against an invoice, list, read, PDF."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .. import invoicing
from ..inputs import TEXT, one_line
from ..json_fields import Amount, ISODate
from ..models import CreditNote
from ..payments import stripe_gateway
from ..states import CreditNoteReason
from .auth import api_blueprint
from .idempotency import idempotent, request_key
from .invoices import idempotency_doc
from .problems import problem_response
from .schemas import PaginationSchema

blp = api_blueprint("credit_notes", __name__, "Credit notes: corrections of issued invoices")

CATEGORIES = ["immunoglobulin_product", "infusion_service"]


MAX_AMOUNT = 10**12  # far beyond any invoice here; keeps every amount a 64-bit integer


class CreditLineInputSchema(Schema):
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    amount = Amount(required=True, validate=validate.Range(1, MAX_AMOUNT), metadata={
        "description": "Net of tax, in the minor unit; its tax is the invoice line's rate on it. At most what "
                       "is left to credit in that category."})
    description = fields.String(load_default=None, allow_none=True, validate=one_line(200))


class CreditNoteCreateSchema(Schema):
    reason = fields.String(required=True, validate=validate.OneOf(list(CreditNoteReason)))
    memo = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500), metadata=TEXT)
    lines = fields.List(fields.Nested(CreditLineInputSchema), required=True, validate=validate.Length(1, 2))
    refund_amount = Amount(load_default=0, validate=validate.Range(0, MAX_AMOUNT), metadata={
        "description": "Of the part after payment: refunded through the normal refund path (card through Stripe)."})
    out_of_band_amount = Amount(load_default=0, validate=validate.Range(0, MAX_AMOUNT), metadata={
        "description": "Of the part after payment: money returned some other way."})


class CreditLineSchema(Schema):
    category = fields.String()
    description = fields.String()
    amount = Amount()
    tax_rate = fields.String()
    tax_amount = Amount()


class CreditNoteSchema(Schema):
    id = fields.String(metadata={"example": "cn_…"})
    number = fields.String(metadata={"example": "CN-2026-000001"})
    invoice_id = fields.String()
    invoice_number = fields.String()
    reason = fields.String(metadata={"enum": list(CreditNoteReason)})
    memo = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(CreditLineSchema))
    subtotal = Amount()
    tax = Amount()
    total = Amount()
    pre_payment_amount = Amount()
    post_payment_amount = Amount()
    refund_amount = Amount()
    out_of_band_amount = Amount()
    currency = fields.String()
    issued_at = fields.DateTime()
    issued_on = ISODate()


class CreditNotePageSchema(Schema):
    data = fields.List(fields.Nested(CreditNoteSchema))
    has_more = fields.Boolean()


class CreditNoteQuerySchema(PaginationSchema):
    invoice_id = fields.String(validate=validate.Length(1, 32), metadata=TEXT)


def credit_note_view(note: CreditNote) -> dict[str, Any]:
    invoice = invoicing.invoice_of_credit_note(note)
    return {**{c: getattr(note, c) for c in (
        "id", "number", "reason", "memo", "lines", "subtotal", "tax", "total", "pre_payment_amount",
        "post_payment_amount", "refund_amount", "out_of_band_amount", "currency", "issued_at", "issued_on")},
        "invoice_id": invoice.id, "invoice_number": invoice.number}


_NOT_FOUND = {"404": problem_response("No such invoice or credit note.")}


@blp.route("/invoices/<invoice_id>/credit-notes")
class InvoiceCreditNotes(MethodView):
    @idempotent(in_steps=True)
    @blp.arguments(CreditNoteCreateSchema())
    @blp.response(201, CreditNoteSchema)
    @blp.doc(**idempotency_doc("The invoice is a draft (edit it) or void (nothing is owed)."))
    @blp.doc(responses={**_NOT_FOUND, "422": problem_response(
        "A line credits more than is left in its category, or refund_amount + out_of_band_amount is not the "
        "part after payment (the detail says by how much), or the refund can't be made."),
        "503": problem_response("The refund needs Stripe, and paying online is not configured.")})
    def post(self, data, invoice_id):
        """Issue a credit note: credit first reduces what is due; the rest must be split into
        refund_amount and out_of_band_amount (422 otherwise). 409 for drafts and void invoices."""
        note = invoicing.issue_credit_note(
            invoice_id, g.actor, reason=data["reason"], memo=data["memo"], lines=data["lines"],
            refund_amount=data["refund_amount"], out_of_band_amount=data["out_of_band_amount"],
            gateway=stripe_gateway(), request_key=request_key())
        return credit_note_view(note)


@blp.route("/credit-notes")
class CreditNotes(MethodView):
    @blp.arguments(CreditNoteQuerySchema(), location="query")
    @blp.response(200, CreditNotePageSchema)
    @blp.doc(responses=_NOT_FOUND)
    def get(self, args):
        """Credit notes newest first; `invoice_id` for one invoice's."""
        rows, has_more = invoicing.list_credit_notes(**args)
        return {"data": [credit_note_view(n) for n in rows], "has_more": has_more}


@blp.route("/credit-notes/<credit_note_id>")
class CreditNoteById(MethodView):
    @blp.response(200, CreditNoteSchema)
    @blp.doc(responses=_NOT_FOUND)
    def get(self, credit_note_id):
        """One credit note."""
        return credit_note_view(invoicing.get_credit_note(credit_note_id))


@blp.route("/credit-notes/<credit_note_id>/pdf")
class CreditNotePdf(MethodView):
    @blp.doc(responses={"200": {"description": "The credit note as a PDF.",
                                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                        **_NOT_FOUND})
    def get(self, credit_note_id):
        """The credit note as a PDF: headed "Credit note", citing the invoice, the two fees apart."""
        from ..credit_note_pdf import credit_note_pdf

        name, body = credit_note_pdf(invoicing.get_credit_note(credit_note_id))
        return Response(body, mimetype="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})

"""The JSON shapes of the API; these schemas are also the OpenAPI document."""

from __future__ import annotations

from typing import Any

from babel.numbers import list_currencies
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..pricing import PRODUCT, SERVICE
from ..inputs import DoseSchema, OtherItemSchema, PatientSchema, PayerSchema, one_line, vials_dispensed_field
from ..json_fields import Amount, DecimalString, ISODate
from ..states import MANUAL_METHODS, InvoiceStatus, PaymentMethod, RefundStatus

_CURRENCIES = frozenset(list_currencies())


def _known_currency(value: str) -> None:
    if value not in _CURRENCIES:
        raise ValidationError("Not an ISO 4217 currency code.")


class PaginationSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    starting_after = fields.String(load_default=None, validate=validate.Length(max=64))


# --- price lists ----------------------------------------------------------------------------

class VialSchema(Schema):
    grams = DecimalString(required=True)
    unit_amount = Amount(allow_none=True, load_default=None)


class ProductSchema(Schema):
    code = fields.String(required=True, metadata={"example": "IVIG10-5-10-20"})
    name = fields.String(required=True)
    pricing = fields.String(required=True, validate=validate.OneOf(["per_vial", "per_gram"]))
    gram_amount = Amount(allow_none=True, load_default=None)
    vials = fields.List(fields.Nested(VialSchema), required=True)


class TierSchema(Schema):
    up_to_minutes = fields.Integer(strict=True, required=True)
    amount = Amount(required=True)


class ServiceFeeSchema(Schema):
    tiers = fields.List(fields.Nested(TierSchema), required=True)
    extra_per_30_minutes = Amount(allow_none=True, load_default=None)


class TaxRateSchema(Schema):
    rate = DecimalString(required=True, metadata={"description": "A percentage: \"20\" is 20 %."})
    label = fields.String(required=True, metadata={"example": "Exempt"})


class TaxSchema(Schema):
    immunoglobulin_product = fields.Nested(TaxRateSchema)
    infusion_service = fields.Nested(TaxRateSchema)


class CancellationSchema(Schema):
    charge_prepared_product = fields.Boolean(load_default=True)


class PriceListInputSchema(Schema):
    effective_from = ISODate(required=True)
    currency = fields.String(required=True, validate=_known_currency, metadata={"example": "GBP"})
    statement = fields.String(validate=validate.Length(1, 1000))
    products = fields.List(fields.Nested(ProductSchema), required=True)
    infusion_service = fields.Nested(ServiceFeeSchema, required=True)
    tax = fields.Nested(TaxSchema)
    cancellation = fields.Nested(CancellationSchema)


class PriceListSchema(PriceListInputSchema):
    id = fields.String(dump_only=True, metadata={"example": "pl_4f1c…"})
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class PriceListPageSchema(Schema):
    data = fields.List(fields.Nested(PriceListSchema))
    has_more = fields.Boolean()


class CurrentPriceListQuerySchema(Schema):
    date = fields.Date(load_default=None, metadata={"description": "Defaults to today."})


# --- quotes ---------------------------------------------------------------------------------

class ExcludedItemSchema(OtherItemSchema):
    reason = fields.String()


_INFUSION_FIELDS = ("product_code", "dose", "duration_minutes", "service_date")


def _infusion_fields(required: bool) -> dict[str, fields.Field]:
    return {
        "product_code": fields.String(required=required, validate=validate.Length(1, 64)),
        "dose": fields.Nested(DoseSchema, required=required),
        "duration_minutes": fields.Integer(strict=True, required=required),
        "service_date": fields.Date(required=required),
        "other_items": fields.List(fields.Nested(OtherItemSchema), load_default=list,
                                   validate=validate.Length(max=50)),
        "vials_dispensed": vials_dispensed_field(load_default=None),
    }


InfusionInputSchema = Schema.from_dict(_infusion_fields(True), name="InfusionInput")


class QuoteRequestSchema(Schema.from_dict(_infusion_fields(False), name="_QuoteFields")):  # type: ignore[misc]
    """One infusion (its fields at the top level) or a course (`course`: a list of infusions)."""

    course = fields.List(fields.Nested(InfusionInputSchema), validate=validate.Length(1, 52),
                         metadata={"description": "A costed treatment plan: one entry per infusion."})

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_or_course(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        sent = original if isinstance(original, dict) else {}
        if "course" in sent:
            extra = [f for f in _INFUSION_FIELDS if f in sent]
            if extra:
                raise ValidationError("Send either one infusion or a course, not both.", extra[0])
            return
        missing = {f: ["Missing data for required field."] for f in _INFUSION_FIELDS if f not in sent}
        if missing:
            raise ValidationError(missing)


class VialLineSchema(Schema):
    grams = DecimalString()
    count = fields.Integer()
    unit_amount = Amount(allow_none=True)


class LineSchema(Schema):
    category = fields.String(metadata={"enum": [PRODUCT, SERVICE]})
    description = fields.String()
    quantity = DecimalString()
    unit = fields.String()
    unit_amount = Amount(allow_none=True)
    amount = Amount()
    tax_rate = DecimalString()
    tax_label = fields.String()
    tax_amount = Amount()
    dose_grams = DecimalString(metadata={"description": "Product line only."})
    waste_grams = DecimalString(metadata={"description": "Product line only."})
    vials = fields.List(fields.Nested(VialLineSchema), metadata={"description": "Product line only."})
    duration_minutes = fields.Integer(metadata={"description": "Service line only."})



class PriceListRefSchema(Schema):
    id = fields.String()
    version = fields.Integer()


class PricedSchema(Schema):
    """What quotes and invoices share: the two lines, the exclusions, the totals."""

    currency = fields.String()
    service_date = ISODate()
    price_list = fields.Nested(PriceListRefSchema)
    lines = fields.List(fields.Nested(LineSchema))
    excluded_items = fields.List(fields.Nested(ExcludedItemSchema))
    statement = fields.String()
    subtotal = Amount()
    tax = Amount()
    total = Amount()


class QuoteSchema(PricedSchema):
    estimate = fields.Boolean()


class CourseQuoteSchema(Schema):
    estimate = fields.Boolean()
    currency = fields.String()
    infusions = fields.List(fields.Nested(QuoteSchema))
    subtotal = Amount()
    tax = Amount()
    total = Amount()


# --- invoices -------------------------------------------------------------------------------

_invoice_extras = {
    "patient": fields.Nested(PatientSchema, required=True),
    "booking_id": fields.String(allow_none=True, load_default=None, validate=one_line(64)),
    "bill_to": fields.Nested(PayerSchema, allow_none=True, load_default=None),
}

InvoiceCreateSchema = Schema.from_dict({**_infusion_fields(True), **_invoice_extras}, name="InvoiceCreate")


class InvoiceUpdateSchema(Schema):
    """Any of the draft's inputs; what is sent replaces what was there, then it is re-priced."""

    product_code = fields.String(validate=validate.Length(1, 64))
    dose = fields.Nested(DoseSchema)
    duration_minutes = fields.Integer(strict=True)
    service_date = fields.Date()
    other_items = fields.List(fields.Nested(OtherItemSchema), validate=validate.Length(max=50))
    vials_dispensed = vials_dispensed_field(allow_none=True)
    patient = fields.Nested(PatientSchema)
    booking_id = fields.String(allow_none=True, validate=one_line(64))
    bill_to = fields.Nested(PayerSchema, allow_none=True)


class InvoiceListQuerySchema(PaginationSchema):
    status = fields.String(validate=validate.OneOf(list(InvoiceStatus)))
    patient_id = fields.String(validate=validate.Length(1, 64))
    booking_id = fields.String(validate=validate.Length(1, 64))


class PaymentCreateSchema(Schema):
    amount = Amount(required=True)
    method = fields.String(required=True, validate=validate.OneOf(list(MANUAL_METHODS)))
    reference = fields.String(allow_none=True, load_default=None, validate=one_line(200))
    received_on = fields.Date(load_default=None, metadata={"description": "Defaults to today."})


class RefundCreateSchema(Schema):
    amount = Amount(required=True)
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class PaymentSchema(Schema):
    id = fields.String()
    amount = Amount()
    amount_refunded = Amount()
    method = fields.String(metadata={"enum": list(PaymentMethod)})
    reference = fields.String(allow_none=True)
    received_on = ISODate()
    created_at = fields.DateTime()


class RefundSchema(Schema):
    id = fields.String()
    payment_id = fields.String()
    amount = Amount()
    reason = fields.String()
    status = fields.String(metadata={
        "enum": list(RefundStatus),
        "description": "A refund through Stripe is pending until Stripe answers; only succeeded ones count."})
    created_at = fields.DateTime()


class InvoiceSchema(PricedSchema):
    id = fields.String(metadata={"example": "inv_…"})
    number = fields.String(allow_none=True, metadata={"example": "INV-2026-000042"})
    status = fields.String(metadata={"enum": list(InvoiceStatus)})
    booking_id = fields.String(allow_none=True)
    patient = fields.Nested(PatientSchema)
    bill_to = fields.Nested(PayerSchema, allow_none=True)
    amount_paid = Amount()
    amount_refunded = Amount()
    amount_due = Amount()
    issued_at = fields.DateTime(allow_none=True)
    due_date = ISODate(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    voided_at = fields.DateTime(allow_none=True)
    uncollectible_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    payments = fields.List(fields.Nested(PaymentSchema))
    refunds = fields.List(fields.Nested(RefundSchema))
    attention = fields.String(allow_none=True, metadata={
        "description": "Set when money arrived where it should not have (a void or paid invoice, more than "
                       "was due, another currency) and was refunded: for finance staff to look at."})


class InvoicePageSchema(Schema):
    data = fields.List(fields.Nested(InvoiceSchema))
    has_more = fields.Boolean()


class AuditEventSchema(Schema):
    actor = fields.String(metadata={"example": "api_key:key_…"})
    action = fields.String(metadata={"example": "finalized"})
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    detail = fields.Dict(allow_none=True)
    created_at = fields.DateTime()


class AuditTrailSchema(Schema):
    data = fields.List(fields.Nested(AuditEventSchema))

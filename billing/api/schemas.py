"""The JSON shapes of the API; these schemas are also the OpenAPI document."""

from __future__ import annotations

import copy
import re
from typing import Any

from babel.numbers import list_currencies
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..pricing import PRODUCT, SERVICE
from ..pricing.catalogue import MAX_AMOUNT, MAX_VIAL_GRAMS
from ..pricing.service_fee import MAX_DURATION_MINUTES
from ..inputs import (
    _NOT_ON_ONE_LINE,
    NOT_BLANK_TEXT_PATTERN,
    TEXT,
    DoseSchema,
    OtherItemSchema,
    PatientSchema,
    PayerSchema,
    QuickLoad,
    is_one_line_text,
    one_line,
    quick_infusion,
    quick_patient,
    vials_dispensed_field,
)
from ..json_fields import Amount, DecimalString, ISODate
from ..states import MANUAL_METHODS, InvoiceStatus, PaymentMethod, RefundStatus

_CURRENCIES = frozenset(list_currencies())


def _known_currency(value: str) -> None:
    if value not in _CURRENCIES:
        raise ValidationError("Not an ISO 4217 currency code.")


# Field metadata for the OpenAPI document, where a rule is checked beyond the field's validators:
PRICE = {"minimum": 0, "maximum": MAX_AMOUNT}  # every amount in a price list (pricing/catalogue.py)
WORKED_OUT = {"maxLength": None}  # a decimal the service works out: as long as it comes


_REQUEST_RULES = ("pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "enum")
_answered: dict[type[Schema], type[Schema]] = {}


def answered(schema: type[Schema]) -> type[Schema]:
    """`schema` as an answer shows it: the same fields, dumped the same, without the rules only a
    request is held to (validators; patterns, lengths, ranges; an email's format). An answer shows
    what is stored, which may have come in through a staff page, with checks of its own, instead
    of this API. Documented as Stored<Name>."""
    if schema not in _answered:
        declared = {name: _answered_field(field) for name, field in schema._declared_fields.items()}
        _answered[schema] = Schema.from_dict(declared, name="Stored" + schema.__name__.removesuffix("Schema"))
    return _answered[schema]


def _answered_field(field: fields.Field) -> fields.Field:
    if isinstance(field, fields.Email):  # dumped as any string; a staff page takes any text
        field = fields.String(data_key=field.data_key, attribute=field.attribute, allow_none=field.allow_none,
                              required=field.required, metadata=field.metadata)
    field = copy.copy(field)  # the input's field stays as it is (marshmallow copies fields so too)
    field.validators = []
    field.metadata = {k: v for k, v in field.metadata.items() if k not in _REQUEST_RULES}
    if isinstance(field, fields.List):
        field.inner = _answered_field(field.inner)
    elif isinstance(field, fields.Nested) and isinstance(field.nested, type):
        field.nested = answered(field.nested)
    return field


def null_or_nested(converter: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An apispec attribute function (register_api adds it). apispec documents a nested field
    that may be null as "any object, or null; or the nested schema", which lets any object
    through; this makes it "null, or the nested schema" (OpenAPI 3.0 has no null type: an
    object that may be null and can only be null)."""
    loose = {"type": "object", "nullable": True}
    if isinstance(field, fields.Nested) and field.allow_none and loose in ret.get("anyOf", ()):
        return {"anyOf": [{**loose, "enum": [None]} if option == loose else option for option in ret["anyOf"]]}
    return {}


class PaginationSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    starting_after = fields.String(load_default=None, validate=validate.Length(max=64))


# --- price lists ----------------------------------------------------------------------------

class VialSchema(Schema):
    grams = DecimalString(required=True, metadata={
        "description": f"More than 0 and at most {MAX_VIAL_GRAMS} g, to two decimal places; each size once."})
    unit_amount = Amount(allow_none=True, load_default=None, metadata={
        **PRICE, "description": "In pence, per vial: required for a product priced per_vial, absent for per_gram."})


class ProductSchema(Schema):
    code = fields.String(required=True, metadata={
        "example": "IVIG10-5-10-20", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "maxLength": 64,
        "description": "Letters, digits, '.', '_' or '-'; once in a price list."})
    name = fields.String(required=True, metadata={"minLength": 1, "maxLength": 200, "pattern": NOT_BLANK_TEXT_PATTERN})
    pricing = fields.String(required=True, validate=validate.OneOf(["per_vial", "per_gram"]))
    gram_amount = Amount(allow_none=True, load_default=None, metadata={
        **PRICE, "description": "In pence, per gram: required for a product priced per_gram, absent for per_vial."})
    vials = fields.List(fields.Nested(VialSchema), required=True, metadata={"minItems": 1})


class TierSchema(Schema):
    up_to_minutes = fields.Integer(strict=True, required=True, metadata={
        "minimum": 1, "maximum": 24 * 60, "description": "Tiers go in ascending order of minutes."})
    amount = Amount(required=True, metadata=PRICE)


class ServiceFeeSchema(Schema):
    tiers = fields.List(fields.Nested(TierSchema), required=True, metadata={"minItems": 1})
    extra_per_30_minutes = Amount(allow_none=True, load_default=None, metadata=PRICE)


class TaxRateSchema(Schema):
    rate = DecimalString(required=True, metadata={"description": "A percentage from 0 to 100: \"20\" is 20 %."})
    label = fields.String(required=True, metadata={
        "example": "Exempt", "minLength": 1, "maxLength": 40, "pattern": NOT_BLANK_TEXT_PATTERN})


class TaxSchema(Schema):
    immunoglobulin_product = fields.Nested(TaxRateSchema)
    infusion_service = fields.Nested(TaxRateSchema)


class CancellationSchema(Schema):
    charge_prepared_product = fields.Boolean(load_default=True)


class PriceListInputSchema(Schema):
    effective_from = ISODate(required=True, metadata={
        "description": "Today or later, once there is a version: a correction for the past is a credit note."})
    currency = fields.String(required=True, validate=_known_currency,
                             metadata={"example": "GBP", "enum": sorted(_CURRENCIES)})
    statement = fields.String(validate=validate.Length(1, 1000), metadata={"pattern": NOT_BLANK_TEXT_PATTERN})
    products = fields.List(fields.Nested(ProductSchema), required=True, metadata={"minItems": 1})
    infusion_service = fields.Nested(ServiceFeeSchema, required=True)
    tax = fields.Nested(TaxSchema)
    cancellation = fields.Nested(CancellationSchema)


class PriceListSchema(answered(PriceListInputSchema)):  # type: ignore[misc]
    id = fields.String(dump_only=True, metadata={"example": "pl_4f1c…"})
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class PriceListPageSchema(Schema):
    data = fields.List(fields.Nested(PriceListSchema))
    has_more = fields.Boolean()


class CurrentPriceListQuerySchema(Schema):
    date = fields.Date(load_default=None, metadata={"description": "Defaults to today."})


# --- quotes ---------------------------------------------------------------------------------

class ExcludedItemSchema(answered(OtherItemSchema)):  # type: ignore[misc]
    reason = fields.String()


_INFUSION_FIELDS = ("product_code", "dose", "duration_minutes", "service_date")


def _infusion_fields(required: bool) -> dict[str, fields.Field]:
    return {
        "product_code": fields.String(required=required, validate=validate.Length(1, 64), metadata={
            **TEXT, "example": "IVIG10-5-10-20", "description": "A product of the price list in effect."}),
        "dose": fields.Nested(DoseSchema, required=required),
        "duration_minutes": fields.Integer(strict=True, required=required, metadata={
            "minimum": 1, "maximum": MAX_DURATION_MINUTES, "example": 180,
            "description": "Past the price list's last tier only if it prices extra time."}),
        "service_date": fields.Date(required=required, metadata={
            "example": "2026-12-01", "description": "A price list must be in effect on it."}),
        "other_items": fields.List(fields.Nested(OtherItemSchema), load_default=list,
                                   validate=validate.Length(max=50)),
        "vials_dispensed": vials_dispensed_field(load_default=None),
    }


InfusionInputSchema = Schema.from_dict(_infusion_fields(True), name="InfusionInput")


class QuoteRequestSchema(QuickLoad, Schema.from_dict(_infusion_fields(False), name="_QuoteFields")):  # type: ignore[misc]
    """One infusion (its fields at the top level) or a course (`course`: a list of infusions)."""

    course = fields.List(fields.Nested(InfusionInputSchema), validate=validate.Length(1, 52),
                         metadata={"description": "A costed treatment plan: one entry per infusion."})

    quick = staticmethod(quick_infusion)  # one infusion, usual and faultless (QuickLoad)

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


# The contract's example infusion, and a draft invoice for it: the document's request examples.
INFUSION_EXAMPLE = {"product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
                    "duration_minutes": 180, "service_date": "2026-12-01"}
INVOICE_EXAMPLE = {**INFUSION_EXAMPLE, "patient": {"id": "pt_9", "name": "Alex Example", "email": "alex@example.org"}}

# Which fields go together, which a schema can't say field by field: added to the document's
# Dose and QuoteRequest (register_api). A dose is in grams, or per kg with a weight; a quote is
# one infusion (its fields at the top level) or a course, not both.
DOSE_FORMS = {"oneOf": [{"required": ["grams"], "maxProperties": 1},
                        {"required": ["grams_per_kg", "weight_kg"], "maxProperties": 2}]}
QUOTE_FORMS = {"oneOf": [{"required": list(_INFUSION_FIELDS), "not": {"required": ["course"]}},
                         {"required": ["course"], "properties": {f: {"not": {}} for f in _INFUSION_FIELDS}}]}


class VialLineSchema(Schema):
    grams = DecimalString(metadata=WORKED_OUT)
    count = fields.Integer()
    unit_amount = Amount(allow_none=True)


class LineSchema(Schema):
    category = fields.String(metadata={"enum": [PRODUCT, SERVICE]})
    description = fields.String()
    quantity = DecimalString(metadata=WORKED_OUT)
    unit = fields.String()
    unit_amount = Amount(allow_none=True)
    amount = Amount()
    tax_rate = DecimalString(metadata=WORKED_OUT)
    tax_label = fields.String()
    tax_amount = Amount()
    dose_grams = DecimalString(metadata={**WORKED_OUT, "description": "Product line only."})
    waste_grams = DecimalString(metadata={**WORKED_OUT, "description": "Product line only."})
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

def _lines(max_length: int, max_lines: int) -> validate.Validator:
    """Text of at most `max_lines` lines (broken by \\n or \\r\\n), each line as one_line allows (no
    tabs or direction overrides), at most `max_length` characters in all: an address as the PDF prints it."""
    line = f"[^{_NOT_ON_ONE_LINE}]*"
    regex = re.compile(f"^{line}(?:\\r?\\n{line}){{0,{max_lines - 1}}}$")

    def check(value: str) -> None:
        if not regex.fullmatch(value):
            raise ValidationError(f"Must be at most {max_lines} lines of plain text: no tabs or direction overrides.")

    validator = validate.And(validate.Length(max=max_length), check)
    # What apispec reads off a validator for the document (as off validate.Length and validate.Regexp).
    validator.min, validator.max, validator.equal = None, max_length, None  # type: ignore[attr-defined]
    validator.regex = regex  # type: ignore[attr-defined]
    return validator


class BillToSchema(PayerSchema):
    """The payer, when it isn't the patient (an insurer, an employer, a partner): printed on the
    PDF, with their own reference; the invoice's emails go to `email`."""

    address = fields.String(allow_none=True, load_default=None, validate=_lines(500, 10),
                            metadata={"description": "Printed on the PDF as it is broken into lines (at most 10)."})
    reference = fields.String(allow_none=True, load_default=None, validate=one_line(100), metadata={
        "description": "The payer's reference for this invoice (a policy or purchase-order number), printed on "
                       "the PDF.", "example": "POL-448812"})


_invoice_extras = {
    "patient": fields.Nested(PatientSchema, required=True),
    "booking_id": fields.String(allow_none=True, load_default=None, validate=one_line(64)),
    "bill_to": fields.Nested(BillToSchema, allow_none=True, load_default=None),
}

_INVOICE_EXTRAS = frozenset(_invoice_extras)
_BILL_TO_KEYS = frozenset({"name", "email", "address", "reference"})
_bill_to_fields = BillToSchema().fields  # its email and address fields' own rules, not copies of them


def _quick_bill_to(bill_to: Any) -> dict[str, Any] | None:
    if type(bill_to) is not dict or not bill_to.keys() <= _BILL_TO_KEYS:
        return None
    name, email, address, reference = (bill_to.get("name"), bill_to.get("email"), bill_to.get("address"),
                                       bill_to.get("reference"))
    if not is_one_line_text(name, 200) or (reference is not None and not is_one_line_text(reference, 100)):
        return None
    try:
        email = None if email is None else _bill_to_fields["email"].deserialize(email)
        address = None if address is None else _bill_to_fields["address"].deserialize(address)
    except ValidationError:
        return None
    return {"name": name, "email": email, "address": address, "reference": reference}  # the schema's field order


def quick_invoice_create(data: Any) -> dict[str, Any] | None:
    """A draft invoice's body as InvoiceCreateSchema loads it, or None when it isn't of the usual,
    faultless shape (then the schema loads it and writes the messages)."""
    if type(data) is not dict:
        return None
    infusion: dict[str, Any] = {}
    for key, value in data.items():
        if key in _INVOICE_EXTRAS:
            continue
        infusion[key] = value  # an unknown key too: quick_infusion then stands aside
    loaded = quick_infusion(infusion)
    if loaded is None:
        return None
    patient = quick_patient(data.get("patient"))
    booking_id, bill_to = data.get("booking_id"), data.get("bill_to")
    if patient is None or (booking_id is not None and not is_one_line_text(booking_id, 64)):
        return None
    if bill_to is not None:
        bill_to = _quick_bill_to(bill_to)
        if bill_to is None:
            return None
    return {**loaded, "patient": patient, "booking_id": booking_id, "bill_to": bill_to}


class InvoiceCreateSchema(QuickLoad, Schema.from_dict({**_infusion_fields(True), **_invoice_extras},  # type: ignore[misc]
                                                      name="_InvoiceCreateFields")):
    quick = staticmethod(quick_invoice_create)


class InvoiceUpdateSchema(Schema):
    """Any of the draft's inputs; what is sent replaces what was there, then it is re-priced."""

    _infusion = _infusion_fields(False)
    product_code = _infusion["product_code"]
    dose = fields.Nested(DoseSchema)
    duration_minutes = _infusion["duration_minutes"]
    service_date = _infusion["service_date"]
    other_items = fields.List(fields.Nested(OtherItemSchema), validate=validate.Length(max=50))
    vials_dispensed = vials_dispensed_field(allow_none=True)
    patient = fields.Nested(PatientSchema)
    booking_id = fields.String(allow_none=True, validate=one_line(64))
    bill_to = fields.Nested(BillToSchema, allow_none=True)


class InvoiceListQuerySchema(PaginationSchema):
    status = fields.String(validate=validate.OneOf(list(InvoiceStatus)))
    patient_id = fields.String(validate=validate.Length(1, 64))
    booking_id = fields.String(validate=validate.Length(1, 64))


class PaymentCreateSchema(Schema):
    amount = Amount(required=True, metadata={
        "minimum": 1, "description": "In pence: more than 0, at most what is due."})
    method = fields.String(required=True, validate=validate.OneOf(list(MANUAL_METHODS)))
    reference = fields.String(allow_none=True, load_default=None, validate=one_line(200))
    received_on = fields.Date(load_default=None, metadata={
        "description": "Defaults to today; not later than tomorrow, nor more than a year before the invoice was made."})


class RefundCreateSchema(Schema):
    amount = Amount(required=True, metadata={
        "minimum": 1, "description": "In pence: more than 0, at most what was paid and not yet refunded."})
    reason = fields.String(required=True, validate=validate.Length(1, 500), metadata=TEXT)


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
    patient = fields.Nested(answered(PatientSchema))
    bill_to = fields.Nested(answered(BillToSchema), allow_none=True)
    amount_paid = Amount()
    amount_refunded = Amount()
    amount_credited = Amount(metadata={"description": "The total of the credit notes against this invoice."})
    credit_notes = fields.List(fields.String(), metadata={"description": "Their ids, oldest first."})
    amount_due = Amount(metadata={"description": "total − amount_paid − credit applied before payment; never below 0."})
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

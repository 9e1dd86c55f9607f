"""JSON input shapes shared by the API and the booking system's events: the parts of an
infusion and the people on an invoice, and how their validation messages are reported."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from .json_fields import DecimalString


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested {"json": {"dose": {"grams": [...]}}} → {"dose.grams": [...]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if not prefix and key in ("json", "query", "form", "headers", "view_args", "path"):
                flat.update(flatten_errors(value, ""))
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for i, item in enumerate(messages):
            flat.update(flatten_errors(item, f"{prefix}.{i}" if prefix else str(i)))
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


# Line breaks, tabs and the bidirectional overrides that can make a name read backwards
# (U+202A-U+202E, U+2066-U+2069) have no place in a name, an id or a reference.
_NOT_ONE_LINE = re.compile("[\t\n\r\u202a-\u202e\u2066-\u2069]")


def check_one_line(value: str) -> None:
    if _NOT_ONE_LINE.search(value):
        raise ValidationError("Must be one line of plain text: no line breaks, tabs or direction overrides.")
    if not value.strip():
        raise ValidationError("Must not be blank.")


# For the OpenAPI document, the texts these rules and the request guard (billing/request_guard.py)
# leave, as patterns ECMA 262 and Python read alike. The guard refuses C0 controls but tab, line
# feed and carriage return, DEL and C1 controls in any JSON text (a NUL as a 400, the rest as a
# 422), and lone surrogates, which no pattern every tool compiles can name: those are only told.
_REFUSED = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
_NOT_ON_ONE_LINE = r"\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069"  # _REFUSED and _NOT_ONE_LINE
_SPACES = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # str.strip()'s
TEXT_PATTERN = f"^[^{_REFUSED}]*$"
NOT_BLANK_TEXT_PATTERN = f"^[^{_REFUSED}]*[^{_REFUSED}{_SPACES}][^{_REFUSED}]*$"
ONE_LINE_PATTERN = f"^[^{_NOT_ON_ONE_LINE}]*[^{_NOT_ON_ONE_LINE}{_SPACES}][^{_NOT_ON_ONE_LINE}]*$"
TEXT = {"pattern": TEXT_PATTERN}  # field metadata: text the request guard lets through


def one_line(max_length: int) -> validate.Validator:
    """A short text on one line: 1 to `max_length` characters, not blank."""
    validator = validate.And(validate.Length(1, max_length), check_one_line)
    # What apispec reads off a validator for the document (as off validate.Length and validate.Regexp).
    validator.min, validator.max, validator.equal = 1, max_length, None  # type: ignore[attr-defined]
    validator.regex = re.compile(ONE_LINE_PATTERN)  # type: ignore[attr-defined]
    return validator


class DoseSchema(Schema):
    grams = DecimalString(metadata={"description": "The dose in grams: at least 0.01, at most 200."})
    grams_per_kg = DecimalString(metadata={"description": "More than 0, at most 2; with weight_kg."})
    weight_kg = DecimalString(metadata={"description": "More than 0, at most 300; with grams_per_kg."})


class OtherItemSchema(Schema):
    code = fields.String(allow_none=True, load_default=None, validate=one_line(64))
    description = fields.String(required=True, validate=one_line(500))
    category = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64), metadata=TEXT)
    recipient = fields.String(
        data_key="for", attribute="for", load_default="patient", validate=validate.OneOf(["patient", "partner"]),
        metadata={"description": "Whom the item is for: the patient or the partner."},
    )


class VialsDispensedSchema(Schema):
    grams = DecimalString(required=True)
    count = fields.Integer(strict=True, required=True, validate=validate.Range(1, 100))


def vials_dispensed_field(**options: Any) -> fields.List:
    """The vials the pharmacy reports, validated the same on the API and on booking events:
    1 to 20 entries (catalogue sizes and at most 200 g in all are checked when priced)."""
    return fields.List(fields.Nested(VialsDispensedSchema), validate=validate.Length(1, 20), metadata={
        "description": "The vials actually used, 1 to 20 entries of catalogue sizes, at most 200 g in all; "
                       "overrides the computed choice."}, **options)


class PayerSchema(Schema):
    """Who pays, when it isn't the patient: a partner or a third party."""

    name = fields.String(required=True, validate=one_line(200))
    # At most 254 characters (RFC 5321), as the patient_email column holds: longer was a 500 on PostgreSQL.
    email = fields.Email(allow_none=True, load_default=None, validate=validate.Length(max=254))
    address = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=500), metadata=TEXT)


class PatientSchema(PayerSchema):
    id = fields.String(required=True, validate=one_line(64), metadata={"example": "pt_9"})

"""JSON input shapes shared by the API and the booking system's events: the parts of an
infusion and the people on an invoice, and how their validation messages are reported."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable

from marshmallow import Schema, ValidationError, fields, validate

from .json_fields import DecimalString, read_decimal


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


# --- the common case, loaded without the schema's bookkeeping ---------------------------------
# marshmallow spends ~45 µs walking a quote's ~20 fields through its per-field machinery, most
# of a quote's own work (issue 14). quick_infusion loads a body of the usual shape, with nothing
# wrong in it, to exactly what the schema would; for anything else it answers None and the
# schema loads the body and writes the messages. tests/unit/test_quick_inputs.py holds the two
# to the same result over generated bodies, right and wrong.

class QuickLoad:
    """Put before Schema in a schema's bases, with `quick` a function: a body of the usual,
    faultless shape loads through it, to the very dict the schema would give; for anything else
    `quick` answers None and marshmallow loads the body and writes the messages."""

    quick: Callable[[Any], dict[str, Any] | None]
    unknown: str

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None, unknown: str | None = None) -> Any:
        if many is None and partial is None and (unknown is None or unknown == self.unknown):
            loaded = type(self).quick(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)  # type: ignore[misc]


_INFUSION_KEYS = frozenset({"product_code", "dose", "duration_minutes", "service_date", "other_items",
                            "vials_dispensed"})
_DOSE_KEYS = frozenset({"grams", "grams_per_kg", "weight_kg"})
_ITEM_KEYS = frozenset({"code", "description", "category", "for"})
_VIAL_KEYS = frozenset({"grams", "count"})
_RECIPIENTS = ("patient", "partner")
_ABSENT = object()


def is_one_line_text(value: Any, max_length: int) -> bool:
    """What one_line(max_length) lets through (Length, then check_one_line)."""
    return (type(value) is str and 1 <= len(value) <= max_length
            and _NOT_ONE_LINE.search(value) is None and bool(value.strip()))


def _quick_dose(dose: Any) -> dict[str, Any] | None:
    if type(dose) is not dict or not dose.keys() <= _DOSE_KEYS:
        return None
    loaded = {}
    for key, value in dose.items():
        number = read_decimal(value)
        if isinstance(number, str):
            return None
        loaded[key] = number
    return loaded


def _quick_item(item: Any) -> dict[str, Any] | None:
    if type(item) is not dict or not item.keys() <= _ITEM_KEYS:
        return None
    description = item.get("description")
    code = item.get("code")
    category = item.get("category")
    recipient = item.get("for", "patient")
    if (not is_one_line_text(description, 500)
            or (code is not None and not is_one_line_text(code, 64))
            or (category is not None and (type(category) is not str or len(category) > 64))
            or type(recipient) is not str or recipient not in _RECIPIENTS):
        return None
    return {"code": code, "description": description, "category": category, "for": recipient}


def _quick_vial(vial: Any) -> dict[str, Any] | None:
    if type(vial) is not dict or vial.keys() != _VIAL_KEYS:
        return None
    grams, count = read_decimal(vial["grams"]), vial["count"]
    if isinstance(grams, str) or type(count) is not int or not 1 <= count <= 100:
        return None
    return {"grams": grams, "count": count}


def quick_infusion(data: Any) -> dict[str, Any] | None:
    """One infusion's fields (InfusionInput's, or a quote's for one infusion) as the schema
    loads them, or None when the body isn't of the usual, faultless shape."""
    if type(data) is not dict or not data.keys() <= _INFUSION_KEYS:
        return None
    product_code, minutes, day = data.get("product_code"), data.get("duration_minutes"), data.get("service_date")
    if (type(product_code) is not str or not 1 <= len(product_code) <= 64
            or type(minutes) is not int or type(day) is not str or not day):
        return None
    try:
        service_date = date.fromisoformat(day)  # as marshmallow's Date reads "iso"
    except ValueError:
        return None
    dose = _quick_dose(data.get("dose"))
    if dose is None:
        return None
    items: list[dict[str, Any]] = []
    sent_items = data.get("other_items", _ABSENT)
    if sent_items is not _ABSENT:
        if type(sent_items) is not list or len(sent_items) > 50:
            return None
        for sent in sent_items:
            item = _quick_item(sent)
            if item is None:
                return None
            items.append(item)
    vials: list[dict[str, Any]] | None = None
    sent_vials = data.get("vials_dispensed")
    if sent_vials is not None:
        if type(sent_vials) is not list or not 1 <= len(sent_vials) <= 20:
            return None
        vials = []
        for sent in sent_vials:
            vial = _quick_vial(sent)
            if vial is None:
                return None
            vials.append(vial)
    return {"product_code": product_code, "dose": dose, "duration_minutes": minutes, "service_date": service_date,
            "other_items": items, "vials_dispensed": vials}


# --- a booking event's data, loaded the same way (issue 14) -----------------------------------
# quick_booking gives exactly what booking.BookingSchema loads (unknown keys at the top level
# left out, as its Meta says; the patient's own unknown keys refused, so left to the schema),
# or None for anything else. tests/unit/test_quick_booking.py holds it to the schema's result.

_PATIENT_KEYS = frozenset({"name", "email", "address", "id"})
_EMAIL = PatientSchema().fields["email"]  # marshmallow's own Email field: its rules, not a copy of them


def quick_patient(patient: Any) -> dict[str, Any] | None:
    """A patient as PatientSchema loads it, or None when it isn't of the usual, faultless shape."""
    if type(patient) is not dict or not patient.keys() <= _PATIENT_KEYS:
        return None
    name, email, address, patient_id = patient.get("name"), patient.get("email"), patient.get("address"), patient.get("id")
    if (not is_one_line_text(name, 200) or not is_one_line_text(patient_id, 64)
            or (address is not None and (type(address) is not str or len(address) > 500))):
        return None
    if email is not None:
        try:
            email = _EMAIL.deserialize(email)
        except ValidationError:
            return None
    return {"name": name, "email": email, "address": address, "id": patient_id}  # the schema's field order


def quick_booking(data: Any) -> dict[str, Any] | None:
    """A booking event's data as booking.BookingSchema loads it, or None when it isn't of the
    usual, faultless shape (then the schema loads it and writes the messages)."""
    if type(data) is not dict:
        return None
    booking_id, prepared = data.get("booking_id"), data.get("product_prepared", False)
    if not is_one_line_text(booking_id, 64) or type(prepared) is not bool:  # a Boolean takes "true", 1…: the schema's
        return None
    patient = quick_patient(data.get("patient"))
    if patient is None:
        return None
    infusion = quick_infusion({key: value for key, value in data.items() if key in _INFUSION_KEYS})
    if infusion is None:
        return None
    return {"booking_id": booking_id, "patient": patient, **infusion, "product_prepared": prepared}

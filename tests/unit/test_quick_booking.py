"""inputs.quick_booking (behind booking.BookingSchema.load) and EnvelopeSchema.load's quick path
load the usual booking event without marshmallow's per-field work. Each must give exactly what
the schema gives — the same values, in the same order — or stand aside and let the schema load
the body and write the messages: never a different result, never a body the schema refuses."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from billing.booking import BookingSchema, EnvelopeSchema
from billing.inputs import quick_booking, quick_patient

from .test_quick_inputs import EDGES as INFUSION_EDGES
from .test_quick_inputs import edge_bodies, json_values, scalars, valid_infusion, vary

BOOKING_SCHEMA = BookingSchema()
ENVELOPE_SCHEMA = EnvelopeSchema()


def _schema_load(schema: Schema, body: Any) -> Any:
    """What the schema itself loads (its quick path bypassed), or ValidationError."""
    try:
        return Schema.load(schema, body)
    except ValidationError:
        return ValidationError


def _same(quick: Any, loaded: Any, where: Any = None) -> None:
    """Equal, and in the same key order at the top and in the patient (what is stored)."""
    assert quick == loaded, where
    assert list(quick) == list(loaded), where
    if isinstance(quick, dict) and isinstance(quick.get("patient"), dict):
        assert list(quick["patient"]) == list(loaded["patient"]), where


def _check_booking(body: Any, where: Any = None) -> bool:
    quick = quick_booking(body)
    if quick is None:
        return False
    _same(quick, _schema_load(BOOKING_SCHEMA, body), where)
    return True


emails = st.one_of(st.none(), st.sampled_from(["alex@example.org", "a.b+c@mail.example.co.uk", "x@localhost",
                                                 "user@[127.0.0.1]", "é@example.org"]))
valid_patient = st.fixed_dictionaries(
    {"id": st.sampled_from(["pt_9", "p", "p" * 64]), "name": st.sampled_from(["Alex Example", "N", "é ü 漢字", "n" * 200])},
    optional={"email": emails, "address": st.one_of(st.none(), st.sampled_from(["", "1 High St\nLeeds", "a" * 500]))})


@st.composite
def valid_booking(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(draw(valid_infusion))  # near_valid_* change what they draw
    body["booking_id"] = draw(st.sampled_from(["bk_1", "b", "b" * 64, "é"]))
    body["patient"] = draw(valid_patient)
    if draw(st.booleans()):
        body["product_prepared"] = draw(st.booleans())
    if draw(st.booleans()):  # senders add fields: the schema leaves them out
        body[draw(st.sampled_from(["sender", "course", "note"]))] = draw(json_values)
    return body


KEYS = ["booking_id", "patient", "product_code", "dose", "duration_minutes", "service_date", "other_items",
        "vials_dispensed", "product_prepared", "id", "name", "email", "address", "grams", "grams_per_kg",
        "weight_kg", "code", "description", "category", "for", "count", "extra", ""]


@st.composite
def near_valid_booking(draw: st.DrawFn) -> Any:
    """A valid booking with one part replaced, dropped, or joined by a key."""
    return vary(draw, draw(valid_booking()), [(), ("patient",), ("dose",), ("other_items", 0), ("vials_dispensed", 0)],
                KEYS, st.one_of(scalars, json_values, emails))


@settings(max_examples=400, deadline=None)
@given(valid_booking())
def test_a_valid_booking_loads_quickly_to_what_the_schema_loads(body):
    assert _check_booking(body)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(near_valid_booking(), json_values))
def test_the_quick_booking_is_the_schemas_or_stands_aside(body):
    _check_booking(body)


# Each field in turn set to each of these, or left out: the infusion's edges and the patient's.
EDGES = [*INFUSION_EDGES, "a" * 200, "a" * 201, "a" * 254, "alex@example.org", "not an email", "@example.org",
         "a" * 250 + "@x.org", "user@[127.0.0.1]", "é@example.org", "true", "false", 1, 0, "yes"]
BASE = {"booking_id": "bk_1", "patient": {"id": "pt_9", "name": "Alex Example", "email": "alex@example.org",
                                          "address": "1 High St\nLeeds"},
        "product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
        "duration_minutes": 180, "service_date": "2026-12-01",
        "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "c", "for": "partner"}],
        "vials_dispensed": [{"grams": "10", "count": 3}], "product_prepared": False}
WHERE = [((), k) for k in (*BASE, "course", "sender")] \
    + [(("patient",), k) for k in ("id", "name", "email", "address", "x")] \
    + [(("dose",), k) for k in ("grams", "grams_per_kg", "weight_kg", "x")] \
    + [(("other_items", 0), k) for k in ("code", "description", "category", "for", "x")] \
    + [(("vials_dispensed", 0), k) for k in ("grams", "count", "x")]


def _edge_bodies(base: dict[str, Any], where: list[tuple[tuple[Any, ...], str]], edges: list[Any] = EDGES):
    return edge_bodies(base, where, edges)


def test_every_booking_field_at_every_edge_loads_as_the_schema_loads_it():
    quick_count = sum(_check_booking(body, where) for where, body in _edge_bodies(BASE, WHERE))
    assert quick_count > 150  # the quick load did take a good share of them


def test_the_booking_schema_takes_the_quick_load_and_gives_the_schemas_messages_otherwise():
    body = {**BASE, "sender": "booking-system v2"}
    loaded = BOOKING_SCHEMA.load(body)
    assert quick_booking(body) is not None and "sender" not in loaded
    _same(loaded, _schema_load(BOOKING_SCHEMA, body))
    assert loaded["patient"] == {"name": "Alex Example", "email": "alex@example.org", "address": "1 High St\nLeeds",
                                 "id": "pt_9"} == quick_patient(BASE["patient"])
    wrong = {**BASE, "patient": {"id": "pt_9", "name": "Alex", "email": "not an email"}, "product_prepared": "yes"}
    assert quick_booking(wrong) is None
    assert BOOKING_SCHEMA.load({**BASE, "product_prepared": "yes"})["product_prepared"] is True  # the schema's rule
    try:
        BOOKING_SCHEMA.load(wrong)
    except ValidationError as error:
        assert error.messages == {"patient": {"email": ["Not a valid email address."]}}
    else:
        raise AssertionError("a malformed email was accepted")


# --- the envelope -------------------------------------------------------------------------------

ENVELOPE = {"id": "evt_1", "type": "infusion.booked", "created": 1_790_000_000, "data": {"booking_id": "bk_1"}}


def _check_envelope(body: Any, where: Any = None) -> dict[str, Any] | None:
    """EnvelopeSchema.load (quick path and all) gives the schema's own result, or its messages."""
    try:
        quick = ENVELOPE_SCHEMA.load(body)
    except ValidationError as error:
        try:
            Schema.load(ENVELOPE_SCHEMA, body)
        except ValidationError as schema_error:
            assert error.messages == schema_error.messages, where
            return None
        raise AssertionError(where) from None
    _same(quick, _schema_load(ENVELOPE_SCHEMA, body), where)
    return quick


def test_every_envelope_field_at_every_edge_loads_as_the_schema_loads_it():
    for where, body in _edge_bodies(ENVELOPE, [((), k) for k in (*ENVELOPE, "extra")]):
        quick = _check_envelope(body, where)
        if quick is not None:
            assert quick["data"] is not body.get("data"), where  # a copy, as fields.Dict loads it


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["evt_1", "e" * 100, "e" * 101, " ", "a\nb"]), st.text(max_size=5)),
     "type": st.one_of(st.sampled_from(["infusion.booked", "t" * 64, "t" * 65, ""]), scalars),
     "created": st.one_of(st.integers(-1, 2), st.sampled_from([10**11, 10**11 + 1]), scalars)},
    optional={"data": st.one_of(st.dictionaries(st.text(max_size=3), scalars, max_size=2), json_values),
              "extra": json_values}), json_values))
def test_the_quick_envelope_is_the_schemas_or_its_messages(body):
    _check_envelope(body)


# --- a draft invoice's body (POST /api/v1/invoices) ---------------------------------------------

from billing.api.schemas import BillToSchema, InvoiceCreateSchema, quick_invoice_create  # noqa: E402

INVOICE_SCHEMA = InvoiceCreateSchema()
VALID_ADDRESSES = ["", "\n", "Acme Health", "a" * 500, "line 1\nline 2", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10", "a\r\nb",
                   "a\n\nb"]
BILL_TO_EDGES = ["Acme Health", "a" * 500, "a" * 501, "line 1\nline 2", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10",
                 "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11", "a\r\nb", "a\rb", "a\n\nb", "\n", "POL-448812"]


def _check_invoice(body: Any, where: Any = None) -> bool:
    quick = quick_invoice_create(body)
    if quick is None:
        return False
    loaded = _schema_load(INVOICE_SCHEMA, body)
    _same(quick, loaded, where)
    if isinstance(quick.get("bill_to"), dict):
        assert list(quick["bill_to"]) == list(loaded["bill_to"]), where
    return True


valid_bill_to = st.fixed_dictionaries(
    {"name": st.sampled_from(["Acme Health", "n" * 200])},
    optional={"email": emails, "address": st.one_of(st.none(), st.sampled_from(VALID_ADDRESSES)),
              "reference": st.one_of(st.none(), st.sampled_from(["POL-1", "r" * 100]))})


@st.composite
def valid_invoice(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(draw(valid_infusion))  # near_valid_* change what they draw
    body["patient"] = draw(valid_patient)
    if draw(st.booleans()):
        body["booking_id"] = draw(st.one_of(st.none(), st.sampled_from(["bk_1", "b" * 64])))
    if draw(st.booleans()):
        body["bill_to"] = draw(st.one_of(st.none(), valid_bill_to))
    return body


@st.composite
def near_valid_invoice(draw: st.DrawFn) -> Any:
    return vary(draw, draw(valid_invoice()), [(), ("patient",), ("bill_to",), ("dose",), ("other_items", 0)],
                [*KEYS, "bill_to", "reference"], st.one_of(scalars, json_values, emails, st.sampled_from(BILL_TO_EDGES)))


@settings(max_examples=400, deadline=None)
@given(valid_invoice())
def test_a_valid_draft_loads_quickly_to_what_the_schema_loads(body):
    assert _check_invoice(body)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(near_valid_invoice(), json_values))
def test_the_quick_draft_is_the_schemas_or_stands_aside(body):
    _check_invoice(body)


INVOICE_BASE = {**{k: v for k, v in BASE.items() if k not in ("booking_id", "product_prepared")},
                "booking_id": "bk_1",
                "bill_to": {"name": "Acme Health", "email": "claims@acme.example", "address": "1 High St\nLeeds",
                            "reference": "POL-448812"}}
INVOICE_WHERE = [((), k) for k in (*INVOICE_BASE, "course", "product_prepared", "extra")] \
    + [(("patient",), k) for k in ("id", "name", "email", "address", "x")] \
    + [(("bill_to",), k) for k in ("name", "email", "address", "reference", "x")] \
    + [(("dose",), k) for k in ("grams", "grams_per_kg", "weight_kg", "x")] \
    + [(("other_items", 0), k) for k in ("code", "description", "category", "for", "x")] \
    + [(("vials_dispensed", 0), k) for k in ("grams", "count", "x")]


def test_every_draft_field_at_every_edge_loads_as_the_schema_loads_it():
    quick_count = sum(_check_invoice(body, where)
                      for where, body in _edge_bodies(INVOICE_BASE, INVOICE_WHERE, [*EDGES, *BILL_TO_EDGES]))
    assert quick_count > 150


def test_the_draft_schema_takes_the_quick_load_and_gives_the_schemas_messages_otherwise():
    body = {"product_code": "IVIG10-5-10-20", "dose": {"grams": "30"}, "duration_minutes": 180,
            "service_date": "2026-12-01", "patient": {"id": "pt_9", "name": "Alex Example"},
            "bill_to": {"name": "Acme Health", "address": "1 High St\nLeeds"}}
    assert quick_invoice_create(body) is not None
    _same(INVOICE_SCHEMA.load(body), {
        "product_code": "IVIG10-5-10-20", "dose": {"grams": Decimal("30")}, "duration_minutes": 180,
        "service_date": date(2026, 12, 1), "other_items": [], "vials_dispensed": None,
        "patient": {"name": "Alex Example", "email": None, "address": None, "id": "pt_9"}, "booking_id": None,
        "bill_to": {"name": "Acme Health", "email": None, "address": "1 High St\nLeeds", "reference": None}})
    wrong = {**body, "bill_to": {"name": "Acme", "address": "a\tb"}, "product_prepared": True}
    assert quick_invoice_create(wrong) is None
    try:
        INVOICE_SCHEMA.load(wrong)
    except ValidationError as error:
        assert error.messages == {
            "bill_to": {"address": ["Must be at most 10 lines of plain text: no tabs or direction overrides."]},
            "product_prepared": ["Unknown field."]}
    else:
        raise AssertionError("a tab in an address and an unknown field were accepted")
    assert BillToSchema  # the schema the quick bill_to repeats

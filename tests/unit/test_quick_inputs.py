"""inputs.quick_infusion loads the usual infusion body without marshmallow's per-field work.
It must give exactly what the schema gives, or stand aside (None) and let the schema load the
body and write the messages: never a different result, never a body the schema refuses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from billing.api.schemas import InfusionInputSchema, QuoteRequestSchema
from billing.inputs import quick_infusion

QUOTE_SCHEMA = QuoteRequestSchema()
INFUSION_SCHEMA = InfusionInputSchema()

# Values a JSON body can hold, weighted towards the ones a field might take or nearly take.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.integers(), st.floats(allow_nan=True),
    st.sampled_from([0, 1, 20, 21, 50, 51, 100, 101]),
    st.sampled_from(["", " ", "0.4", "68.5", " 12 ", "1e3", "NaN", "-1", "x" * 41, "1" * 40, "2026-12-01",
                     "2026-13-01", "20261201", "2026-W48-5", "IVIG10-5-10-20", "patient", "partner", "someone",
                     "NK cell assay", "two\nlines", "\u202eevil", "a" * 64, "a" * 65, "a" * 500, "a" * 501]),
    st.text(max_size=12),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)

decimal_texts = st.one_of(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(300), places=2).map(str),
                          st.integers(1, 300))
valid_item = st.fixed_dictionaries(
    {"description": st.sampled_from(["NK cell assay", "Egg freezing", "é ü 漢字"])},
    optional={"code": st.one_of(st.none(), st.sampled_from(["NKA", "X" * 64])),
              "category": st.one_of(st.none(), st.sampled_from(["", "fertility_investigation", "c" * 64])),
              "for": st.sampled_from(["patient", "partner"])})
valid_vial = st.fixed_dictionaries({"grams": st.sampled_from(["5", "10", "20", 5]), "count": st.integers(1, 100)})
valid_dose = st.one_of(st.fixed_dictionaries({"grams": decimal_texts}),
                       st.fixed_dictionaries({"grams_per_kg": decimal_texts, "weight_kg": decimal_texts}),
                       st.builds(dict))  # a new {} each time: near_valid changes what it draws
valid_infusion = st.fixed_dictionaries(
    {"product_code": st.sampled_from(["IVIG10-5-10-20", "P", "p" * 64]), "dose": valid_dose,
     "duration_minutes": st.integers(-10, 2000),
     "service_date": st.dates(date(2000, 1, 1), date(2100, 1, 1)).map(date.isoformat)},
    optional={"other_items": st.lists(valid_item, max_size=50),
              "vials_dispensed": st.one_of(st.none(), st.lists(valid_vial, min_size=1, max_size=20))})


def _schema_load(schema: Any, body: Any) -> Any:
    try:
        return schema.load(body) if schema is not QUOTE_SCHEMA else super(QuoteRequestSchema, schema).load(body)
    except ValidationError:
        return ValidationError


# Every key any level takes, and two none does: "adding" one sets it, to anything.
KEYS = ["product_code", "dose", "duration_minutes", "service_date", "other_items", "vials_dispensed", "course",
        "grams", "grams_per_kg", "weight_kg", "code", "description", "category", "for", "count", "extra", ""]


def vary(draw: st.DrawFn, body: Any, paths: list[tuple[Any, ...]], keys: list[str], values: st.SearchStrategy) -> Any:
    """`body` with one part, in the dict at one of `paths`, replaced by one of `values`, dropped,
    or joined by one of `keys` (set to one of `values`)."""
    target: Any = body
    for step in draw(st.sampled_from(paths)):
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return body
    if not isinstance(target, dict):
        return body
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "add":
        target[draw(st.sampled_from(keys))] = draw(values)
    elif target:
        key = draw(st.sampled_from(sorted(target)))
        if how == "drop":
            del target[key]
        else:
            target[key] = draw(values)
    return body


@st.composite
def near_valid(draw: st.DrawFn) -> Any:
    """A valid infusion with one part replaced, dropped, or joined by an unknown key."""
    return vary(draw, draw(valid_infusion), [(), ("dose",), ("other_items", 0), ("vials_dispensed", 0)], KEYS,
                st.one_of(scalars, json_values))


@settings(max_examples=400, deadline=None)
@given(valid_infusion)
def test_a_valid_infusion_loads_quickly_to_what_the_schema_loads(body):
    quick = quick_infusion(body)
    assert quick is not None
    assert quick == _schema_load(QUOTE_SCHEMA, body) == _schema_load(INFUSION_SCHEMA, body)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(near_valid(), json_values))
def test_the_quick_load_is_the_schemas_or_stands_aside(body):
    quick = quick_infusion(body)
    if quick is not None:
        assert quick == _schema_load(QUOTE_SCHEMA, body) == _schema_load(INFUSION_SCHEMA, body)


def test_the_quote_schema_takes_the_quick_load_and_gives_the_schemas_messages_otherwise():
    body = {"product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
            "duration_minutes": 180, "service_date": "2026-12-01",
            "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation"}]}
    assert QUOTE_SCHEMA.load(body) == {
        "product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": Decimal("0.4"), "weight_kg": Decimal("68.5")},
        "duration_minutes": 180, "service_date": date(2026, 12, 1), "vials_dispensed": None,
        "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "fertility_investigation",
                         "for": "patient"}]}
    wrong = {**body, "dose": {"grams_per_kg": 0.4, "weight_kg": "68.5"}, "colour": "red"}
    try:
        QUOTE_SCHEMA.load(wrong)
    except ValidationError as error:
        assert error.messages == {
            "dose": {"grams_per_kg": ['Write decimals as strings, like "12.5": a JSON number may not be exact.']},
            "colour": ["Unknown field."]}
    else:
        raise AssertionError("a float dose and an unknown field were accepted")


# Each field in turn set to each of these (or left out): the edges of every rule the quick load
# repeats — lengths, ranges, types, null, one line, decimals — checked one by one, not by chance.
EDGES = [None, True, 0, 1, 20, 21, 50, 51, 100, 101, -1, 2**70, 0.5, 1.0, "", " ", "0.4", " 7 ", "1e3", "NaN",
         "Infinity", "x", "1" * 40, "1" * 41, "2026-12-01", "2026-02-30", "20261201", "2026-W48-5", "patient",
         "partner", "Patient", "two\nlines", "tab\there", "\u202eevil", "a" * 64, "a" * 65, "a" * 500, "a" * 501,
         [], [{}], {}, {"grams": "5"}, [{"grams": "5", "count": 1}] * 21, [{"description": "x"}] * 51]
BASE = {"product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
        "duration_minutes": 180, "service_date": "2026-12-01",
        "other_items": [{"code": "NKA", "description": "NK cell assay", "category": "c", "for": "partner"}],
        "vials_dispensed": [{"grams": "10", "count": 3}]}
WHERE = [((), k) for k in (*BASE, "course", "extra")] + [(("dose",), k) for k in ("grams", "grams_per_kg", "weight_kg", "x")] \
    + [(("other_items", 0), k) for k in ("code", "description", "category", "for", "x")] \
    + [(("vials_dispensed", 0), k) for k in ("grams", "count", "x")]
_GONE = object()


def edge_bodies(base: dict[str, Any], where: list[tuple[tuple[Any, ...], str]], edges: list[Any]):
    """(where, body): `base` with one field at a time left out or set to each of `edges`."""
    import copy

    for path, key in where:
        for value in [_GONE, *edges]:
            body = copy.deepcopy(base)
            target: Any = body
            for step in path:
                target = target[step]
            if value is _GONE:
                target.pop(key, None)
            else:
                target[key] = copy.deepcopy(value)
            yield (path, key, value), body


def test_every_field_at_every_edge_loads_as_the_schema_loads_it():
    quick_count = 0
    for where, body in edge_bodies(BASE, WHERE, EDGES):
        quick = quick_infusion(body)
        if quick is not None:
            quick_count += 1
            assert quick == _schema_load(QUOTE_SCHEMA, body) == _schema_load(INFUSION_SCHEMA, body), where
    assert quick_count > 100  # the quick load did take a good share of them

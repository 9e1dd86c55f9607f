"""The request guard's look at the raw bytes: a body it passes unparsed is one check_json
would have passed, and every body check_json refuses is looked at in full."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.request_guard import MAX_JSON_DEPTH, BadJson, _plainly_fine, check_json

# Texts that mix the characters the guard refuses with ones it takes (tab, newline, £, é, 😀).
_CHARS = st.characters(codec=None, exclude_categories=()) | st.sampled_from(
    ["\x00", "\x01", "\x1f", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\t", "\n", "£", "é", "😀", "\\", '"'])
_TEXT = st.text(_CHARS, max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=40,
)


def _refused(raw: bytes) -> bool:
    try:
        check_json(raw)
    except BadJson:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(_JSON, st.booleans(), st.booleans())
def test_a_body_passed_unparsed_is_one_check_json_passes(value, ascii_only, indented):
    raw = json.dumps(value, ensure_ascii=ascii_only, indent=2 if indented else None).encode("utf-8", "surrogatepass")
    if _plainly_fine(raw):
        assert not _refused(raw)
        assert check_json(raw) == json.loads(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_raw_bytes_passed_unparsed_are_never_refused(raw):
    if _plainly_fine(raw):
        assert not _refused(raw)


@pytest.mark.parametrize("raw", [
    b'{"a": "\\u0000"}', b'{"a": "\\u001F"}', b'{"a": "\\u007f"}', b'{"a": "\\u0085"}', b'{"a": "\\uD800"}',
    b'{"a": "\\udfff"}', b'{"\\u0001": 1}', '{"a": "\x7f"}'.encode(), '{"a": "\x85"}'.encode(),
    b'{"a": "\xed\xa0\x80"}', b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
])
def test_what_check_json_refuses_is_never_passed_unparsed(raw):
    assert _refused(raw)
    assert not _plainly_fine(raw)


@pytest.mark.parametrize("raw", [
    json.dumps({"product_code": "IVIG10-5-10-20", "dose": {"grams_per_kg": "0.4", "weight_kg": "68.5"},
                "other_items": [{"description": "NK cell assay"}]}).encode(),
    json.dumps({"patient": {"name": "Zoë Ó Briain £ 李雷 😀"}}, ensure_ascii=False).encode(),
    json.dumps({"note": "tab\tand\nnewline"}, indent=2).encode(),
])
def test_ordinary_bodies_pass_without_being_parsed(raw):
    assert _plainly_fine(raw)


def test_a_body_in_another_encoding_is_looked_at_in_full():
    assert not _plainly_fine('{"a": 1}'.encode("utf-16"))
    assert not _plainly_fine(b'\xef\xbb\xbf{"a": 1}')


def test_the_api_still_refuses_a_control_character_by_field(api):
    response = api.post("/api/v1/quotes", json={"product_code": "IVIG\x7f", "dose": {"grams": "25"}})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "product_code": ["Contains a control character or an unpaired surrogate, which is not allowed."]}


def test_the_api_still_refuses_a_body_nested_too_deep(api):
    body = "[" * 40 + "]" * 40
    response = api.client.post("/api/v1/quotes", data=body, content_type="application/json", headers=api.headers)
    assert response.status_code == 400
    assert response.get_json()["detail"] == f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."

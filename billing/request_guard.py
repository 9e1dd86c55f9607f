"""Limits every request meets before a view reads it: the body's size, and a JSON body's depth
and characters. Each refusal is a clear 400/413/422 problem (an HTML page off the API), never
a 500 from a RecursionError or an encoding error deep inside.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.utils import get_content_length

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32

# Never meaningful in any text we take: C0 controls but tab, newline and carriage return; DEL;
# C1 controls; lone surrogates (they can't be encoded, so they can't be stored or logged).
_BAD_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def has_bad_character(text: str) -> bool:
    """Whether `text` holds a character no text here may (see _BAD_CHARACTER)."""
    return _BAD_CHARACTER.search(text) is not None


class BadJson(Exception):
    def __init__(self, status: int, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors


# Raw bytes that are, or in UTF-8 begin, a character _BAD_CHARACTER names: control bytes but
# tab, newline and carriage return, and DEL; C2 80-9F (a C1 control), ED A0-BF (a surrogate,
# which json.loads lets through). And the \u escapes that could write one: a control character
# or a surrogate (with a few harmless ones, \u0009, \u0070…, looked at all the same).
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_MAYBE_BAD = re.compile(rb"\\u(?:00[0189]|007|[dD][89a-fA-F])|\xc2[\x80-\x9f]|\xed[\xa0-\xbf]")


def _plainly_fine(raw: bytes) -> bool:
    """Whether a JSON body, unparsed, can't nest deeper than MAX_JSON_DEPTH (it has no more
    brackets than that in all) nor hold a character that isn't allowed: found at C speed, by
    counting, one translate and (only when a backslash-u, C2 or ED byte is there) one regular
    expression. A body that doesn't open with a bracket or a space, or any doubt, and check_json
    parses it and looks at every text."""
    return (raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH
            and len(raw.translate(None, _CONTROL_BYTES)) == len(raw)
            and not ((b"\\u" in raw or b"\xc2" in raw or b"\xed" in raw) and _MAYBE_BAD.search(raw))
            # UTF-8, as json.loads would read it: no byte-order mark, no NUL (ruled out above)
            and raw[:1] in b"{[ \t\r\n")


def check_json(raw: bytes) -> Any:
    """The parsed body, or BadJson: 400 for what isn't JSON or nests deeper than 32 levels,
    422 (by field) for a text with a character that isn't allowed."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadJson(400, f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError):
        return None  # the view's own parser says what is wrong with it
    if isinstance(raw, bytes) and _plainly_fine(raw):
        return value
    errors: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise BadJson(400, f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _BAD_CHARACTER.search(key):
                    errors[child_path] = ["This name contains a character that is not allowed."]
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, str) and _BAD_CHARACTER.search(item):
            errors[path or "_schema"] = ["Contains a control character or an unpaired surrogate, which is not allowed."]
    if errors:
        raise BadJson(422, "Some text contains characters that are not allowed; see errors.", errors)
    return value


_NUL_ESCAPE = re.compile(rb"\\u0000", re.IGNORECASE)
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class NulCharacter(Exception):
    """A NUL character in the path, query string, a form field or a body's JSON escape: it can't
    be stored in a PostgreSQL text column and is never meaningful here (answered as a 400)."""


def guard_request() -> None:
    """Every limit, in one before-request hook and in this order: the body's size from the
    headers alone (413), a NUL character anywhere (400), then a JSON body's depth and characters
    (400/422). The webhooks' JSON is left to their views, which check it after the signature
    (the booking webhook's calls check_json; Stripe's events come signed by Stripe).

    One hook, reading the WSGI environ where it can: before-request hooks and request-proxy
    lookups are a measurable share of a quote's time (issue 14)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    wsgi_environ = req.environ  # (a bare `environ` is taken for settings by test_config)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    # request.content_length's own rule, read straight off the environ (its headers view costs more)
    length = get_content_length(wsgi_environ.get("CONTENT_LENGTH"), wsgi_environ.get("HTTP_TRANSFER_ENCODING"))
    chunked = length is None and wsgi_environ.get("wsgi.input_terminated")
    if length is not None and length > limit:
        raise RequestEntityTooLarge(f"The request body is over {limit} bytes.")
    # A body with no Content-Length (chunked) is read at most to the limit — werkzeug stops
    # there quietly, so reaching it means there was more — and refused too.
    raw = req.get_data(cache=True) if length or chunked else b""
    if chunked and len(raw) >= limit:
        raise RequestEntityTooLarge(f"The request body is over {limit} bytes.")
    mimetype = req.mimetype if raw else ""
    if (b"%00" in req.query_string or "\x00" in req.path
            or (mimetype in _FORMS and any("\x00" in v for v in req.form.values()))
            or ((b"\\u" in raw or b"\\U" in raw) and _NUL_ESCAPE.search(raw) is not None)):
        raise NulCharacter()
    if not raw or (mimetype != "application/json" and not mimetype.endswith("+json")):
        return
    if req.path.startswith("/api/v1/webhooks/"):
        return
    if not _plainly_fine(raw):
        check_json(raw)  # parsed and walked only when the raw bytes can't rule a refusal out

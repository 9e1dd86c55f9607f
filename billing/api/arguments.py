"""A JSON body argument: flask-smorest's `@blp.arguments`, with a short road for the usual body.

`@json_body(blp, SchemaWithQuickLoad(), ...)` is `@blp.arguments(schema, ...)` (the same
OpenAPI document, the same webargs and marshmallow behind it) plus one thing: a body that
webargs would read as JSON and that the schema's `quick` loader takes goes straight to the
function webargs would have called, with the dict `schema.load` would have made (QuickLoad's
promise, tested field by field). webargs' parse (the loader lookup, the location and `unknown`
settings, the validator list, the error hooks) was about 7 µs of a quote's 130 in process
(issue 14).

Anything else (another content type, bytes that aren't UTF-8, JSON that doesn't parse, a body
`quick` stands aside for) goes through the `@blp.arguments` view untouched, so every refusal is
the one webargs and marshmallow make.
"""

from __future__ import annotations

import json
from functools import wraps
from typing import Any, Callable

from flask import request
from flask_smorest import Blueprint
from marshmallow import RAISE
from webargs.core import _UNKNOWN_DEFAULT_PARAM

from ..inputs import QuickLoad


def json_body(blp: Blueprint, schema: QuickLoad, **arguments: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    parser = blp.ARGUMENTS_PARSER
    # What the short road assumes of webargs, checked once at import rather than trusted: the
    # loaded body is appended to the positional arguments, there is no validator beyond the
    # schema, and webargs loads a JSON body with the `unknown` QuickLoad.load asks `quick` under
    # (none given, or the schema's own), as Parser._process_location_data works it out.
    unknown = parser.unknown if parser.unknown != _UNKNOWN_DEFAULT_PARAM else parser.DEFAULT_UNKNOWN_BY_LOCATION.get("json")
    if (arguments.get("location", "json") != "json" or not parser.USE_ARGS_POSITIONAL
            or {"as_kwargs", "arg_name", "unknown", "validate"} & arguments.keys()
            or unknown not in (None, schema.unknown) or schema.unknown != RAISE):  # type: ignore[attr-defined]
        raise TypeError("json_body: only for a JSON body, loaded positionally as the schema loads it")
    loads = type(schema)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        view = blp.arguments(schema, **arguments)(func)
        inner = view.__wrapped__  # type: ignore[attr-defined]  (what webargs calls with the body)

        @wraps(view)  # its __dict__ too: flask-smorest's _apidoc, so the document is unchanged
        def usual_or_parsed(*args: Any, **kwargs: Any) -> Any:
            req = request._get_current_object()  # type: ignore[attr-defined]
            if req.mimetype == "application/json":
                try:
                    # as webargs.core.parse_json reads it: UTF-8 only, so no byte-order mark
                    body = json.loads(req.get_data(cache=True).decode())
                except ValueError:  # not UTF-8, not JSON: webargs says so, in its words
                    body = None
                loaded = loads.quick(body) if type(body) is dict else None
                if loaded is not None:
                    return inner(*args, loaded, **kwargs)
            return view(*args, **kwargs)

        return usual_or_parsed

    return decorator

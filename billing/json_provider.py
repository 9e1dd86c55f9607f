"""Flask's JSON provider with orjson writing the response bodies: the same JSON, made faster.

Only `response` is orjson's (jsonify, and flask-smorest's answers through it); `dumps` stays
Flask's, so problem+json bodies, templates' tojson and whatever else is written as text are
exactly as before. A response body means exactly what Flask's provider writes: keys sorted,
compact, and each value Flask's provider turns into text (a Decimal, a date, a dataclass, an
object with __html__) turned into the same text by Flask's own rules. Amounts stay integers,
decimals stay strings. The one difference in the bytes: characters outside ASCII are written
as UTF-8 rather than as \\u escapes, which JSON reads alike.

What orjson can't write exactly as Flask would (an integer past 64 bits, a key that isn't a
string, a lone surrogate; indented output in debug mode) goes through Flask's own provider.
Reading JSON stays Flask's (the standard library's): every message about a malformed body is
unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider, _default

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_UNSORTED = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonProvider(DefaultJSONProvider):
    """DefaultJSONProvider, with orjson doing the writing. Register with `app.json = OrjsonProvider(app)`."""

    def _fast(self, obj: Any) -> bytes | None:
        # Dates, datetimes and dataclasses are passed through to Flask's own _default (a date as
        # an HTTP date, as Flask writes it), so nothing is written differently.
        try:
            return orjson.dumps(obj, default=_default, option=_SORTED if self.sort_keys else _UNSORTED)
        except TypeError:  # orjson.JSONEncodeError: a big integer, a non-string key, an unknown type
            return None

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented, as Flask does in debug mode
        obj = self._prepare_response_obj(args, kwargs)
        fast = self._fast(obj)
        if fast is None:
            return super().response(obj)
        return self._app.response_class(fast + b"\n", mimetype=self.mimetype)

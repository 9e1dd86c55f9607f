"""Every error as RFC 9457 problem+json under /api, and as an HTML page elsewhere.

flask-smorest registers one handler for every HTTPException app-wide; ProblemApi
replaces it once, so staff pages keep HTML errors and the API never answers HTML.
"""

from __future__ import annotations

import logging
import re
import traceback
from http import HTTPStatus
from typing import Any, Mapping

from apispec import BasePlugin
from flask import Flask, Response, g, json, render_template, request
from flask_smorest import Api
from marshmallow import INCLUDE, Schema, fields
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ..errors import DomainProblem
from ..inputs import flatten_errors  # noqa: F401  (re-exported for the API modules)

log = logging.getLogger("billing.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://billing.invalid/problems/"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    errors: Mapping[str, list[str]] | None = None,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if errors:
        body["errors"] = dict(errors)
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def wants_problem_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


_DETAILS = {
    400: "The request body is not valid JSON.",
    401: "A valid API key is required: send Authorization: Bearer <key>.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    422: "The request has invalid fields; see errors.",
}


_TITLES = {422: "Unprocessable Content"}  # RFC 9110's name; werkzeug still says "Entity"


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class ProblemSchema(Schema):
    """How every error under /api is answered, as application/problem+json (for the document;
    problem() writes the bodies)."""

    class Meta:
        unknown = INCLUDE  # a problem may carry more members (the booking webhook's event_id, result)

    type = fields.String(required=True, metadata={"example": TYPE_BASE + "not-found"})
    title = fields.String(required=True, metadata={"example": "Not Found"})
    status = fields.Integer(required=True, metadata={"example": 404})
    detail = fields.String(required=True, metadata={"example": "No invoice inv_123."})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "Invalid input: the messages for each field, by its dotted path in the request "
                       "(\"dose.grams\"; \"_schema\" for the whole).",
        "example": {"dose.grams": ["The dose must be more than 0 g."]}})
    request_id = fields.String(metadata={"description": "This request's id, as in the service's logs."})


# What the shared error responses say, where the status alone says too little.
_RESPONSE_DESCRIPTIONS = {
    400: "Malformed: a body that is not JSON or nests deeper than 32 levels, or a NUL character (\\u0000) "
         "anywhere in the request.",
    401: "No valid API key: send Authorization: Bearer <key>.",
    404: "The id in the path (or starting_after) names nothing.",
    413: "The body is over 1 MiB; refused before it is read.",
    422: "Invalid input; errors says what, by field. Text holding a control character or an unpaired "
         "surrogate is refused so too.",
}


_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def problem_response(description: str) -> dict[str, Any]:
    """An error response for an operation's own doc: `@blp.doc(responses={"409": problem_response(…)})`."""
    return {"description": description, "content": _PROBLEM_CONTENT}


_NO_NUL = "^[^\\u0000]*$"


class _WhatEveryRequestMeets(BasePlugin):
    """Documents on every operation what any request meets whatever its view: a NUL character
    (request_guard.guard_request; so every text parameter says it takes none) or a body that isn't
    JSON (400, request_guard), the API key (401, unless the operation is signed instead), a body
    over 1 MiB (413), and an id in the path or in starting_after that names nothing (404).
    (flask-smorest adds the 422 of each operation that takes arguments.) An error response
    documented without a body is given the problem body."""

    def path_helper(self, parameters: list | None = None, **kwargs: Any) -> None:
        _refuse_nul(parameters or [])

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            _refuse_nul(operation.get("parameters", []))
            responses = operation.setdefault("responses", {})
            present = {str(code) for code in responses}

            def add(status: int) -> None:
                if str(status) not in present:
                    responses[str(status)] = HTTPStatus(status).name

            add(400)
            if operation.get("security") != []:
                add(401)
            if "requestBody" in operation:
                add(413)
            names = {p.get("name") for p in operation.get("parameters", []) if isinstance(p, dict)}
            if "{" in (path or "") or "starting_after" in names:
                add(404)
            for code, response in responses.items():
                if str(code).startswith(("4", "5")) and isinstance(response, dict) and "content" not in response:
                    response["content"] = _PROBLEM_CONTENT


def _refuse_nul(parameters: list) -> None:
    for parameter in parameters:
        schema = parameter.get("schema") if isinstance(parameter, dict) else None
        if parameter.get("in") in ("path", "query") and isinstance(schema, dict) \
                and schema.get("type") == "string" and not {"pattern", "enum", "format"} & set(schema):
            schema["pattern"] = _NO_NUL


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema
    # No catch-all "default" response: each operation lists the errors it can answer.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _init_spec(self, *, extra_plugins=None, **options: Any) -> None:  # type: ignore[override]
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), _WhatEveryRequestMeets()], **options)
        self.spec.components.schema("Problem", schema=ProblemSchema)

    def _register_responses(self) -> None:
        """flask-smorest's shared responses, one per status, each answered as problem+json."""
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": _RESPONSE_DESCRIPTIONS.get(status, status.phrase)}
            if status >= 400:
                response["content"] = _PROBLEM_CONTENT
            self.spec.components.response(status.name, response, lazy=True)

    def handle_http_exception(self, error: HTTPException):  # type: ignore[override]
        code = error.code or 500
        data = getattr(error, "data", None) or {}
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        headers.update(data.get("headers") or {})
        if not wants_problem_json():
            return html_error(code, error.name, error.description), code, headers
        errors = None
        messages = data.get("errors") or data.get("messages")
        if messages:
            errors = flatten_errors(messages)
        detail = data.get("message") or _DETAILS.get(code) or error.description
        if code == 400 and errors:
            # webargs reports a body it could not parse as {"json": ["Invalid JSON body."]}
            detail = "; ".join(m for ms in errors.values() for m in ms)
            errors = None
        return problem(code, _TITLES.get(code, error.name), detail, errors=errors, headers=headers)


def html_error(code: int, title: str, description: str | None) -> str:
    return render_template("error.html", code=code, title=title, description=description)


def log_unexpected(error: BaseException) -> None:
    """Log an unhandled error. A database error's message can quote row values (PostgreSQL's
    "Failing row contains (…)"), so for those only the kind of error and where it happened are
    logged: patient data never reaches the logs."""
    fields = {"request_id": getattr(g, "request_id", None), "error": type(error).__name__}
    if isinstance(error, SQLAlchemyError):
        original = getattr(error, "orig", None)
        fields.update(database_error=type(original).__name__ if original else None,
                      sqlstate=getattr(original, "sqlstate", None),
                      where=[f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(error.__traceback__)
                             if "site-packages" not in f.filename][-3:])
        log.error("unhandled database error", extra={"fields": fields})
    else:
        log.error("unhandled error", exc_info=error, extra={"fields": fields})


def register_error_handlers(app: Flask) -> None:
    from ..pricing import PricingError, PriceListInvalid
    from ..request_guard import BadJson, NulCharacter, guard_request

    # The size from the headers alone, then what reading the body may find (one hook).
    app.before_request(guard_request)

    @app.errorhandler(NulCharacter)
    def _nul_character(error: NulCharacter):
        if wants_problem_json():
            return problem(400, "Bad Request", "The request contains a NUL character (\\u0000), which is not allowed.")
        return html_error(400, "Bad Request", "The request contains a character that is not allowed."), 400

    @app.errorhandler(BadJson)
    def _bad_json(error: BadJson):
        title = "Bad Request" if error.status == 400 else "Unprocessable Content"
        if not wants_problem_json():
            return html_error(error.status, title, error.detail), error.status
        return problem(error.status, title, error.detail, errors=error.errors,
                       slug="json-too-deep" if error.status == 400 else "characters-not-allowed")

    @app.errorhandler(PriceListInvalid)
    def _price_list_invalid(error: PriceListInvalid):
        return problem(422, "Unprocessable Content", "The price list breaks a rule; see errors.",
                       errors=error.errors, slug="invalid-price-list")

    @app.errorhandler(PricingError)
    def _pricing_error(error: PricingError):
        return problem(422, "Unprocessable Content", error.message,
                       errors={error.field: [error.message]}, slug="cannot-price")

    @app.errorhandler(DomainProblem)
    def _domain_problem(error: DomainProblem):
        errors = {error.field: [error.detail]} if error.field else None
        if not wants_problem_json():
            return html_error(error.status, error.title, error.for_people()), error.status
        return problem(error.status, error.title, error.detail, errors=errors,
                       slug=_slug(type(error).__name__))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log_unexpected(error)
        if not wants_problem_json():
            return html_error(500, "Internal Server Error", "Something went wrong on our side."), 500
        return problem(500, "Internal Server Error", "Something went wrong on our side; it has been logged.")

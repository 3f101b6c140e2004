"""What every answer of the server shares: JSON bodies, errors as `{"error": "one line"}` with
their status, and request bodies and query strings checked against the JSON Schema their
endpoint declares (the same schema the OpenAPI document shows)."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from starlette.responses import Response

from glmtui.errors import BadInput, Conflict, EngineUnreachable, GlmtuiError, NotFound
from glmtui.plan.model import PlanInvalid
from glmtui.plan.values import kind_of
from glmtui.server.plans import ValueRefused

JSON = "application/json"


class ApiError(Exception):
    """An answer other than success: its status and one line."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes (config serve.max_body)")


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data).encode(), status_code=status, media_type=JSON, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": one_line(message)}, status, headers)


def one_line(text: str) -> str:
    return " ".join(text.split()) or "error"


def status_of(err: GlmtuiError) -> int:
    """The HTTP status of an error meant for the user."""
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Conflict):
        return 409
    if isinstance(err, ValueRefused):
        return 400
    if isinstance(err, (PlanInvalid, BadInput)):
        return 422
    if isinstance(err, EngineUnreachable):
        return 503
    return 500


def plan_problem(err: PlanInvalid) -> str:
    """A plan's problems on one line: FILE:LINE:COL: message; ..."""
    return "; ".join(str(error) for error in err.errors)


# --- checking what the client sent -----------------------------------------------------------------


def check(value: Any, schema: dict[str, Any], where: str) -> None:
    """ApiError 400 naming the first field of `value` that `schema` refuses."""
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise ApiError(400, _message(errors[0], where))


def _message(error: Any, where: str) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    field = f"{where} field {path!r}" if path else where
    kind, detail = error.validator, error.validator_value
    if kind == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(error.schema.get("properties", {})) or "none"
        name = f"{path}.{unknown[0]}" if path else unknown[0]
        return f"unknown {where} field {name!r} (the fields are {known})"
    if kind == "required":
        missing = next(name for name in detail if name not in error.instance)
        name = f"{path}.{missing}" if path else missing
        return f"{where} field {name!r} is required"
    if kind == "type":
        wanted = detail if isinstance(detail, str) else " or ".join(detail)
        return f"{field} must be {_article(wanted)}, not {kind_of(error.instance, mapping='an object')}"
    if kind == "enum":
        return f"{field} must be one of {', '.join(map(str, detail))}, not {error.instance!r}"
    if kind == "pattern":
        return f"{field}: {error.instance!r} does not match {detail}"
    if kind == "minItems":
        return f"{field} must have at least {detail} item{'s' if detail != 1 else ''}"
    if kind == "minLength":
        return f"{field} must not be empty"
    if kind in ("minimum", "maximum", "exclusiveMinimum"):
        return f"{field}: {error.instance!r} is out of range ({kind} {detail})"
    return f"{field}: {error.message}"


def _article(kind: str) -> str:
    return {"object": "an object", "array": "a list", "integer": "an integer"}.get(kind, f"a {kind}")


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "the request body is empty: send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text (JSON is)") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise ApiError(400, f"the request body is not JSON: {err}") from None


def parse_query(params: Any, schema: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The query string as its declared types: unknown or repeated names and wrong types are 400."""
    values: dict[str, Any] = {}
    for name in params.keys():
        if name not in schema:
            known = ", ".join(schema) or "none"
            raise ApiError(400, f"unknown query parameter {name!r} (the parameters are {known})")
        given = params.getlist(name)
        if len(given) > 1:
            raise ApiError(400, f"query parameter {name!r} is given {len(given)} times")
        values[name] = _typed(name, given[0], schema[name])
    return values


def _typed(name: str, text: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            value: Any = int(text)
        except ValueError:
            raise ApiError(400, f"query parameter {name!r} must be an integer, not {text!r}") from None
    elif kind == "boolean":
        if text.lower() not in ("true", "false", "1", "0"):
            raise ApiError(400, f"query parameter {name!r} must be true or false, not {text!r}")
        value = text.lower() in ("true", "1")
    else:
        value = text
    check(value, schema, f"query parameter {name!r}")
    return value

"""The OpenAPI 3.1 document of the API, made from the endpoint table the server routes by."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from glmtui import __version__

_PARAMETER = re.compile(r"{([a-z_]+)}")
ERROR = {"$ref": "#/components/responses/Error"}
# What each error status means here, for every endpoint that can answer it.
ERRORS = {
    "400": "Bad request: bad JSON, an unknown field, a wrong type (the line names the field).",
    "401": "No token, or a wrong one (webhooks: no signature, or a wrong one).",
    "404": "No such plan, run, step, environment, agent or execution.",
    "409": "Conflict with what is: the run has ended, the environment exists, a replayed delivery.",
    "413": "The request body is larger than serve.max_body.",
    "422": "Cannot be done as asked: the plan is not valid, asks for more than serve.allow, lacks a secret.",
    "500": "A bug: the serve log has the traceback.",
    "503": "No Docker engine answers, or the server is stopping.",
}


def document(endpoints: Iterable[Any], prefix: str, faces: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        operation: dict[str, Any] = {
            "operationId": ep.handler.__name__,
            "summary": ep.summary,
            "tags": [ep.path.split("/")[1]],
            "responses": {str(ep.status): _success(ep),
                          **{code: ERROR for code in ERRORS if code != "401" or not ep.public or ep.body is not None}},
        }
        if ep.description:
            operation["description"] = ep.description
        if ep.public:
            operation["security"] = []
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in _PARAMETER.findall(ep.path)]
        parameters += [{"name": name, "in": "query", "required": False, "schema": schema,
                        **({"description": schema["description"]} if "description" in schema else {})}
                       for name, schema in ep.query.items()]
        if parameters:
            operation["parameters"] = parameters
        if ep.body is not None:
            schema = {"type": "object", "description": "Any JSON the hook's sender signs."} if ep.body.get("raw") else ep.body
            operation["requestBody"] = {"required": bool(ep.body.get("required")) or bool(ep.body.get("raw")),
                                        "content": {"application/json": {"schema": schema}}}
        paths.setdefault(prefix + ep.path, {})[ep.method.lower()] = operation
    described = "; ".join(f"{what} at {path}" for path, what in faces)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "glmtui serve",
            "version": __version__,
            "description": "Plans, runs with live events, environments and saved agents of glmtui, over HTTP. "
                           "Every request needs the bearer token that `glmtui serve token` prints, but health and "
                           "webhooks." + (f" Also served, behind the same token: {described}." if described else ""),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "The token of `glmtui serve token`."}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                                  "properties": {"error": {"type": "string", "description": "One line: what, what to do."}}}},
            "responses": {"Error": {"description": "; ".join(f"{code}: {text}" for code, text in ERRORS.items()),
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
        "security": [{"bearer": []}],
    }


def _success(ep: Any) -> dict[str, Any]:
    if ep.produces == "text/event-stream":
        return {"description": "Server-Sent Events: each message's data one JSON event, its id the event's number.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    if ep.produces == "text/plain":
        return {"description": "Text.", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"description": ep.summary, "content": {"application/json": {"schema": {"type": "object"}}}}

"""The OpenAPI 3.1 document, generated from the route table and the models handlers use.

It says exactly what the server enforces: parameter types and bounds, request bodies and their
media types, every status each operation can answer with its body and headers, and the links a
client (or a fuzzer) can follow from one answer to the next operation.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from posintegrator import __version__
from posintegrator.api.problems import PROBLEM_TYPE, Problem
from posintegrator.api.routes import PATH_PARAMS, Body, Route

_REF = "#/components/schemas/{model}"

_DESCRIPTIONS = {
    101: "Switching to the WebSocket protocol",
    200: "OK",
    201: "Created",
    202: "Accepted for delivery",
    304: "Not modified since the ETag sent",
    400: "Malformed request: a parameter or the JSON body cannot be read",
    401: "Missing or wrong bearer token, or bad webhook signature",
    404: "Not found",
    409: "Conflict with an earlier request or the order's status",
    413: "Request body larger than this host accepts",
    415: "Request body is not application/json",
    422: "Invalid content, each invalid field named",
    429: "Too many requests from this client; retry after Retry-After seconds",
    503: "Not accepting this now; retry after Retry-After seconds",
}

_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {"description": "The menu's content hash, quoted.", "schema": {"type": "string"}},
    "X-Menu-Version": {
        "description": "The menu's version number.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Last-Modified": {"description": "When it was published.", "schema": {"type": "string"}},
    "Location": {"description": "Path of the order's view.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "true when this answers a repeat of an order accepted before.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before asking again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {"description": "The scheme to use.", "schema": {"type": "string"}},
}

#: What every authenticated route can answer, and every route taking a JSON body.
_AUTH_ERRORS: dict[int, tuple[str, ...]] = {401: ("WWW-Authenticate",), 429: ("Retry-After",)}
_BODY_ERRORS: tuple[int, ...] = (400, 413, 415, 422)


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI document describing ``routes``."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for route in routes:
        if route.request is not None:
            models.append((route.request, "validation"))
        for body in route.responses.values():
            models.extend((model, "serialization") for model in _models(body))
    unique = list(dict.fromkeys(models))
    refs, schemas = models_json_schema(unique, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "posintegrator Integrator API",
            "version": __version__,
            "description": "The cloud ordering platform's interface to a restaurant's POS "
            "systems. Errors are application/problem+json (RFC 9457) naming the field and the "
            "reason.",
        },
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "tags": [route.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name]}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    parameters += [
        {
            "name": param.name,
            "in": param.location,
            "required": False,
            "description": param.description,
            "schema": param.schema,
        }
        for param in route.params
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.request, "validation")]}},
        }
    elif route.raw_body:
        operation["requestBody"] = {
            "required": True,
            "description": "The POS's own webhook, exactly as it sends it.",
            "content": {"*/*": {"schema": {}}},
        }
    responses = dict(route.responses)
    headers = dict(route.headers)
    if route.auth:
        for status, names in _AUTH_ERRORS.items():
            responses.setdefault(status, Problem)
            headers.setdefault(status, names)
    if route.request is not None:
        for status in _BODY_ERRORS:
            responses.setdefault(status, Problem)
    if route.request is not None or route.raw_body:
        responses.setdefault(413, Problem)
    operation["responses"] = {
        str(status): _response(route, status, body, headers.get(status, ()), refs)
        for status, body in sorted(responses.items())
    }
    if not route.auth:
        operation["security"] = []
    return operation


def _response(
    route: Route, status: int, body: Body, header_names: tuple[str, ...], refs: dict[Any, Any]
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "Response")}
    bodies = _models(body)
    if bodies:
        media = PROBLEM_TYPE if bodies == (Problem,) else "application/json"
        schemas_of = [refs[(model, "serialization")] for model in bodies]
        schema = schemas_of[0] if len(schemas_of) == 1 else {"oneOf": schemas_of}
        response["content"] = {media: {"schema": schema}}
    elif status == 200 and route.path == "/metrics":
        response["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif status == 200:
        response["content"] = {"application/json": {"schema": {"type": "object"}}}
    if header_names:
        response["headers"] = {name: _HEADERS[name] for name in header_names}
    links = route.links.get(status, ())
    if links:
        response["links"] = {
            link.operation: {"operationId": link.operation, "parameters": link.parameters}
            for link in links
        }
    return response


def _models(body: Body) -> tuple[type[BaseModel], ...]:
    if body is None:
        return ()
    if isinstance(body, tuple):
        return body
    return (body,)

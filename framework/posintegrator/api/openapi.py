"""The OpenAPI 3.1 document, generated from the route table and the models handlers use."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from posintegrator import __version__
from posintegrator.api.routes import Body, Route

_REF = "#/components/schemas/{model}"


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI document describing ``routes``."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for route in routes:
        if route.request is not None:
            models.append((route.request, "validation"))
        for body in route.responses.values():
            models.extend((model, "serialization") for model in _models(body))
    unique = list(dict.fromkeys(models))
    refs, schemas = models_json_schema(unique, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "tags": [route.tag],
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, text in route.query.items()
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.request, "validation")]}},
            }
        for status, body in route.responses.items():
            response: dict[str, Any] = {"description": _describe(status)}
            bodies = _models(body)
            if bodies:
                problem = any(model.__name__ == "Problem" for model in bodies)
                media = "application/problem+json" if problem else "application/json"
                schemas_of = [refs[(model, "serialization")] for model in bodies]
                schema = schemas_of[0] if len(schemas_of) == 1 else {"oneOf": schemas_of}
                response["content"] = {media: {"schema": schema}}
            operation["responses"][str(status)] = response
        if not route.auth:
            operation["security"] = []
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "posintegrator Integrator API",
            "version": __version__,
            "description": "The cloud ordering platform's interface to a restaurant's POS "
            "systems. Errors are application/problem+json naming the field and the reason.",
        },
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _models(body: Body) -> tuple[type[BaseModel], ...]:
    if body is None:
        return ()
    if isinstance(body, tuple):
        return body
    return (body,)


def _describe(status: int) -> str:
    return {
        200: "OK",
        202: "Accepted for delivery",
        304: "Not modified since the ETag sent",
        400: "Malformed request",
        401: "Missing or wrong bearer token, or bad webhook signature",
        404: "Not found",
        409: "Conflict with an earlier request",
        422: "Invalid content",
        503: "Not accepting this now; retry later",
    }.get(status, "Response")

"""Reading request bodies within limits: media type, size and JSON nesting are checked before
anything is parsed or validated, so a hostile body costs little and gets a clear refusal."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from posintegrator.api.problems import FieldError, ProblemError, validation_problem
from posintegrator.poshttp import read_at_most

ModelT = TypeVar("ModelT", bound=BaseModel)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_limited(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, or a 413 as soon as it is known to be larger than ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
    body is read only up to the limit.
    """
    too_large = ProblemError(
        413,
        "Request body too large",
        f"this host reads at most {max_bytes} bytes here; send less (fewer lines, shorter notes)",
        [FieldError(field="body", reason=f"larger than {max_bytes} bytes")],
    )
    body = await read_at_most(request.content, request.content_length, max_bytes)
    if body is None:
        raise too_large
    return body


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``limit`` levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


async def read_json(request: web.Request, *, max_bytes: int, max_depth: int) -> Any:
    """The request's JSON body.

    :raises ProblemError: 415 for another media type, 413 for a body over ``max_bytes``, 400
        for a body that is not JSON or nests deeper than ``max_depth``.
    """
    if not _is_json(request.content_type):
        raise ProblemError(
            415,
            "Unsupported media type",
            f"send the body as application/json (got {request.content_type})",
            [FieldError(field="Content-Type", reason="must be application/json")],
            headers={"Accept-Post": "application/json"},
        )
    raw = await read_limited(request, max_bytes)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(
            400, "Body is not JSON", str(exc), [FieldError(field="body", reason=str(exc))]
        ) from None
    if json_depth_exceeds(data, max_depth):
        reason = f"arrays and objects nest deeper than {max_depth} levels"
        raise ProblemError(
            400, "Body nested too deeply", reason, [FieldError(field="body", reason=reason)]
        )
    return data


async def read_model(
    request: web.Request, model: type[ModelT], *, max_bytes: int, max_depth: int, title: str
) -> ModelT:
    """The request's JSON body validated as ``model`` (422 naming each invalid field)."""
    data = await read_json(request, max_bytes=max_bytes, max_depth=max_depth)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, title) from None

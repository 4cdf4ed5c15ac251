"""Errors as RFC 9457 ``application/problem+json``, naming the field and the reason.

Every answer of 400 and above the server gives goes through :func:`problem_middleware`: the
handlers' own refusals (:class:`ProblemError`), aiohttp's (no such route, method not allowed,
body too large) and, as the last resort, the server's own bugs (500, logged, never a client's
doing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from loguru import logger
from pydantic import BaseModel, Field, ValidationError

from posintegrator.settings import error_path

PROBLEM_TYPE = "application/problem+json"

#: Headers of an aiohttp exception that describe its own body, which the problem replaces.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


class FieldError(BaseModel):
    """One invalid field."""

    field: str = Field(description="Path of the field, e.g. lines[0].quantity.")
    reason: str
    code: str | None = Field(default=None, description="Machine-readable kind, when known.")


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str = Field(default="about:blank", description="Always about:blank: see title.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What happened and what to do next.")
    instance: str | None = Field(default=None, description="The path of the request.")
    errors: list[FieldError] = Field(default_factory=list)


class ProblemError(Exception):
    """Raise in a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(title=title, status=status, detail=detail, errors=errors or [])
        self.headers = headers or {}


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> web.Response:
    """The HTTP response for ``problem``."""
    return web.Response(
        status=problem.status,
        body=orjson.dumps(problem.model_dump(mode="json", exclude_none=True)),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


def validation_problem(error: ValidationError, title: str = "Invalid request body") -> ProblemError:
    """A 422 listing every invalid field of ``error``."""
    errors = [
        FieldError(field=error_path(tuple(item["loc"])) or "body", reason=item["msg"])
        for item in error.errors(include_url=False)
    ]
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors[:3])
    return ProblemError(422, title, detail, errors)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    """A problem document for one of aiohttp's own refusals, keeping its meaningful headers
    (``Allow`` of a 405) and dropping those of the plain-text body it would have sent."""
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    detail: str | None = None
    if isinstance(exc, web.HTTPNotFound):
        detail = f"no route for {request.method} {request.path}; the routes are in /openapi.json"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        detail = f"{request.method} is not allowed here; allowed: {allowed}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = "the request body is larger than this host accepts"
    problem = Problem(title=exc.reason, status=exc.status, detail=detail, instance=request.path)
    return problem_response(problem, headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn errors into problem documents; an unexpected error is logged and answered 500."""
    try:
        return await handler(request)
    except ProblemError as exc:
        problem = exc.problem.model_copy(update={"instance": request.path})
        return problem_response(problem, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except Exception:
        logger.exception("unexpected error in {} {}", request.method, request.path)
        return problem_response(
            Problem(
                title="Internal error",
                status=500,
                detail="the host failed to handle this request; it is logged. Try again later.",
                instance=request.path,
            )
        )

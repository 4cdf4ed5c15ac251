"""Errors as RFC 9457 ``application/problem+json``, naming the field and the reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from loguru import logger
from pydantic import BaseModel, Field, ValidationError

from posintegrator.settings import error_path

PROBLEM_TYPE = "application/problem+json"


class FieldError(BaseModel):
    """One invalid field."""

    field: str = Field(description="Path of the field, e.g. lines[0].quantity.")
    reason: str
    code: str | None = Field(default=None, description="Machine-readable kind, when known.")


class Problem(BaseModel):
    """An error answer."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn errors into problem documents; an unexpected error is logged and answered 500."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(exc.problem, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(Problem(title=exc.reason, status=exc.status), dict(exc.headers))
    except Exception:
        logger.exception("unexpected error in {} {}", request.method, request.path)
        return problem_response(
            Problem(
                title="Internal error",
                status=500,
                detail="the host failed to handle this request; it is logged. Try again later.",
            )
        )

"""JSON error and response helpers shared by every route.

The vendor API always answers with JSON, errors included, so all failures funnel through
:class:`ApiError` and are rendered by one middleware.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSONDict = dict[str, Any]


class ApiError(Exception):
    """A failure that maps to a JSON error body ``{"error": code, "message": ...}``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> JSONDict:
        """Return the JSON document sent to the client."""
        return {"error": self.code, "message": self.message, **self.extra}

    def to_response(self) -> web.Response:
        """Render the error as an aiohttp response."""
        return json_response(self.body(), status=self.status)


def json_response(data: Any, status: int = 200) -> web.Response:
    """Serialise ``data`` with orjson (fast, ISO dates) into a JSON response."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def invalid_order(message: str) -> ApiError:
    """Build the 422 error used for structurally invalid orders."""
    return ApiError(422, "invalid_order", message)

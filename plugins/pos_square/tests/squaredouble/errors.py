"""Square's error shape."""

from __future__ import annotations

from typing import Any

CATEGORY_FOR_STATUS = {
    401: "AUTHENTICATION_ERROR",
    403: "AUTHENTICATION_ERROR",
    429: "RATE_LIMIT_ERROR",
}


class SquareError(Exception):
    """An error answered the Square way: ``{"errors": [{category, code, detail, field}]}``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        category: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        if category is None:
            category = CATEGORY_FOR_STATUS.get(
                status, "API_ERROR" if status >= 500 else "INVALID_REQUEST_ERROR"
            )
        self.category = category
        self.headers = headers or {}

    def error(self) -> dict[str, Any]:
        """One Square ``Error``."""
        out: dict[str, Any] = {"category": self.category, "code": self.code, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        return out

    def body(self) -> dict[str, Any]:
        """The response body."""
        return {"errors": [self.error()]}

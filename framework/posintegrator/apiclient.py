"""A small client of the Integrator API, for the CLI's read commands."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson


class ApiError(Exception):
    """The API answered with an error; ``detail`` is its problem document's explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


async def get_json(url: str, token: str | None, path: str) -> Any:
    """GET ``path`` from the API at ``url`` and decode the JSON answer.

    :raises ApiError: for an error answer.
    :raises aiohttp.ClientError: when the API cannot be reached.
    """
    return await call_json("GET", url, token, path)


async def call_json(method: str, url: str, token: str | None, path: str, body: Any = None) -> Any:
    """Call the API at ``url`` and decode the JSON answer.

    :raises ApiError: for an error answer.
    :raises aiohttp.ClientError: when the API cannot be reached.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else orjson.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.request(method, url.rstrip("/") + path, headers=headers, data=data) as response,
    ):
        body = await response.read()
        if response.status >= 400:
            try:
                problem = orjson.loads(body)
                detail = problem.get("detail") or problem.get("title") or body.decode()
            except orjson.JSONDecodeError:
                detail = body.decode(errors="replace")
            raise ApiError(response.status, str(detail))
        return orjson.loads(body)

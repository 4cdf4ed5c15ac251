"""A thin HTTP client for the DemoPOS vendor API.

One method per vendor call, returning the decoded JSON document. Every transport or HTTP failure
leaves this module as one of the framework's errors, so the host can decide between retrying,
giving up, looking the order up, or pausing the connection without knowing DemoPOS:

* connection refused, HTTP 5xx, HTTP 429 -> :class:`RetryableError` (``Retry-After`` honoured);
* HTTP 401/403 -> :class:`AuthError`;
* any other HTTP 4xx (409 ``sold_out``, 422 ``invalid_order``...) -> :class:`PermanentError`
  carrying the POS's message as reason and its error code;
* a timeout or a dropped connection -> :class:`AmbiguousError` for ``POST /orders`` (the POS may
  have created the order), :class:`RetryableError` for reads.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from pos_demo.settings import DemoPosSettings
from posintegrator.errors import AuthError, PermanentError, RetryableError
from posintegrator.poshttp import DEFAULT_MAX_RESPONSE_BYTES, json_object, send

JSONDict = dict[str, Any]


class DemoPosClient:
    """Calls one DemoPOS installation through the host's shared HTTP session.

    :param http: the session to use; the client never creates or closes one.
    :param settings: where the POS is and how to authenticate.
    :param max_response_bytes: the largest answer read (the connection's limit).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        settings: DemoPosSettings,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._http = http
        self._max_bytes = max_response_bytes
        self._base_url = str(settings.base_url).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_seconds)
        self._headers = {"Accept": "application/json"}
        if settings.api_key is not None:
            self._headers["X-Api-Key"] = settings.api_key.get_secret_value()

    async def locations(self) -> list[JSONDict]:
        """``GET /locations``: the stores of the chain."""
        document = await self._request("GET", "/locations")
        return list(document["locations"])

    async def menu(self, location: str) -> JSONDict:
        """``GET /menu?location=``: the native menu document of one store."""
        return await self._request("GET", "/menu", params={"location": location})

    async def create_order(self, body: JSONDict, idempotency_key: str) -> JSONDict:
        """``POST /orders``: create an order, deduplicated by the POS on ``idempotency_key``.

        :returns: the POS's order document (201 when created, 200 when a resend of the same key).
        :raises AmbiguousError: on a timeout or dropped connection after the request was sent.
        """
        return await self._request(
            "POST",
            "/orders",
            body=body,
            headers={"Idempotency-Key": idempotency_key},
            ambiguous=True,
        )

    async def find_orders(self, reference: str) -> list[JSONDict]:
        """``GET /orders?reference=``: the POS's orders carrying our reference (usually 0 or 1)."""
        document = await self._request("GET", "/orders", params={"reference": reference})
        return list(document["orders"])

    async def events(self, after: int, limit: int) -> JSONDict:
        """``GET /events``: up to ``limit`` feed entries with ``seq > after``, plus ``last_seq``."""
        return await self._request("GET", "/events", params={"after": after, "limit": limit})

    async def cancel_order(self, order_id: str, reason: str) -> JSONDict:
        """``POST /orders/{id}/cancel``: cancel an order still in the kitchen's queue.

        Cancelling a cancelled order answers it again, so a resend after a timeout is safe.

        :raises PermanentError: code ``not_cancellable`` when the kitchen has started on it,
            ``not_found`` for an order the POS does not have.
        :raises AmbiguousError: on a timeout or dropped connection after the request was sent.
        """
        return await self._request(
            "POST", f"/orders/{order_id}/cancel", body={"reason": reason}, ambiguous=True
        )

    async def get_order(self, order_id: str) -> JSONDict:
        """``GET /orders/{id}``: one order by the POS's id (an unknown id is a PermanentError)."""
        return await self._request("GET", f"/orders/{order_id}")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: JSONDict | None = None,
        headers: dict[str, str] | None = None,
        ambiguous: bool = False,
    ) -> JSONDict:
        """Send one request and return its JSON object, or raise the matching framework error.

        :param ambiguous: whether a failure after sending leaves the outcome unknown (a write).
        """
        what = f"DemoPOS {method} {path}"
        reply = await send(
            self._http,
            method,
            self._base_url + path,
            what=what,
            write=ambiguous,
            timeout=self._timeout,
            max_bytes=self._max_bytes,
            params=params,
            json=body,
            headers={**self._headers, **(headers or {})},
        )
        status, raw, retry_after = reply.status, reply.body, reply.retry_after
        if reply.ok:
            return json_object(what, raw, write=ambiguous)
        error = _decode_error(raw)
        code = error.get("error")
        message = str(error.get("message") or code or f"HTTP {status}")
        detail = f"{what}: HTTP {status} {code or ''}: {message}"
        if status == 429 or status >= 500:
            raise RetryableError(detail, retry_after=retry_after)
        if status in (401, 403):
            raise AuthError(detail)
        raise PermanentError(detail, reason=message, code=None if code is None else str(code))


def _decode_error(raw: bytes) -> JSONDict:
    """The POS's ``{"error", "message"}`` document, or an empty one if the body is not that."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}

"""A thin client for Square's REST API (Catalog, Orders, Payments, Locations).

One method per Square call, returning the decoded JSON document. Every transport or HTTP failure
leaves this module as one of the framework's errors, read from Square's ``errors[]``
(``category``, ``code``, ``detail``, ``field``):

* HTTP 401, or codes ``UNAUTHORIZED``, ``ACCESS_TOKEN_EXPIRED``, ``ACCESS_TOKEN_REVOKED``,
  ``INSUFFICIENT_SCOPES`` (403), or category ``AUTHENTICATION_ERROR`` -> :class:`AuthError`;
* HTTP 429 / ``RATE_LIMITED`` -> :class:`RetryableError` honouring ``Retry-After`` (seconds or an
  HTTP date);
* HTTP 5xx, connection refused -> :class:`RetryableError`;
* a timeout or a dropped connection -> :class:`AmbiguousError` for the writes (CreateOrder,
  UpdateOrder, CreatePayment: Square may have acted), :class:`RetryableError` for reads;
* ``IDEMPOTENCY_KEY_REUSED`` on CreateOrder -> :class:`AmbiguousError`: the key was used before
  (with another body), so the order may exist: the host looks it up instead of resending;
* any other 4xx -> :class:`PermanentError` with a readable reason from ``detail`` (+ ``field``)
  and ``code``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from pos_square.settings import SquareSettings
from pos_square.tokens import AccessTokens, StaticToken
from posintegrator.errors import AmbiguousError, AuthError, PermanentError, RetryableError
from posintegrator.poshttp import DEFAULT_MAX_RESPONSE_BYTES, json_object, send

JSONDict = dict[str, Any]

AUTH_CODES = frozenset(
    {"UNAUTHORIZED", "ACCESS_TOKEN_EXPIRED", "ACCESS_TOKEN_REVOKED", "INSUFFICIENT_SCOPES"}
)
RETRYABLE_CODES = frozenset(
    {"RATE_LIMITED", "SERVICE_UNAVAILABLE", "GATEWAY_TIMEOUT", "INTERNAL_SERVER_ERROR"}
)
#: BatchRetrieveOrders takes at most 100 ids per request.
BATCH_ORDERS_MAX = 100


class SquareClient:
    """Calls the Square API of one seller through the host's shared HTTP session.

    :param http: the session to use; the client never creates or closes one.
    :param settings: where Square is and how to authenticate.
    :param max_response_bytes: the largest answer read (the connection's limit).
    :param tokens: the access token of each request (default: ``settings.access_token``);
        see :func:`pos_square.oauth.access_tokens` for OAuth tokens the plugin renews.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        settings: SquareSettings,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        tokens: AccessTokens | None = None,
    ) -> None:
        self._http = http
        self._max_bytes = max_response_bytes
        self._base_url = str(settings.base_url).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_seconds)
        self._tokens = tokens or StaticToken(settings.access_token)
        self._headers = {
            "Square-Version": settings.square_version,
            "Accept": "application/json",
        }

    async def list_catalog(self, types: Sequence[str], cursor: str | None = None) -> JSONDict:
        """``GET /v2/catalog/list``: one page of catalog objects of ``types``.

        A ``cursor`` is only valid with the query it came from, so pass the same ``types``.
        """
        params = {"types": ",".join(types)}
        if cursor is not None:
            params["cursor"] = cursor
        return await self._request("GET", "/v2/catalog/list", params=params)

    async def search_catalog(self, body: JSONDict) -> JSONDict:
        """``POST /v2/catalog/search``: one page of SearchCatalogObjects (a read).

        With ``begin_time``, only the objects changed after it; ``latest_time`` in the answer
        says when the catalog last changed. A ``cursor`` is only valid with the same body.
        """
        return await self._request("POST", "/v2/catalog/search", body=body)

    async def batch_retrieve_catalog(self, object_ids: Sequence[str]) -> JSONDict:
        """``POST /v2/catalog/batch-retrieve``: catalog objects by id (a read)."""
        return await self._request(
            "POST", "/v2/catalog/batch-retrieve", body={"object_ids": list(object_ids)}
        )

    async def retrieve_location(self, location_id: str) -> JSONDict:
        """``GET /v2/locations/{id}``: one location (currency, time zone)."""
        document = await self._request("GET", f"/v2/locations/{location_id}")
        location = document.get("location")
        if not isinstance(location, dict):
            raise PermanentError(f"Square GET /v2/locations/{location_id}: no location object")
        return location

    async def list_locations(self) -> list[JSONDict]:
        """``GET /v2/locations``: all the seller's locations."""
        document = await self._request("GET", "/v2/locations")
        return list(document.get("locations") or [])

    async def create_order(self, body: JSONDict) -> JSONDict:
        """``POST /v2/orders``: create an order; Square deduplicates on ``idempotency_key``.

        :returns: the created (or, for a resend of the same key and body, the same) ``Order``.
        :raises AmbiguousError: on a timeout or dropped connection, or ``IDEMPOTENCY_KEY_REUSED``.
        """
        document = await self._request(
            "POST", "/v2/orders", body=body, write=True, reused_key_ambiguous=True
        )
        return dict(document["order"])

    async def update_order(self, order_id: str, body: JSONDict) -> JSONDict:
        """``PUT /v2/orders/{order_id}``: change an order (its state, its fulfillments).

        :returns: the updated ``Order``.
        :raises AmbiguousError: on a timeout or dropped connection (Square may have updated it).
        """
        document = await self._request("PUT", f"/v2/orders/{order_id}", body=body, write=True)
        return dict(document["order"])

    async def create_payment(self, body: JSONDict) -> JSONDict:
        """``POST /v2/payments``: record a payment; deduplicated on ``idempotency_key``."""
        document = await self._request("POST", "/v2/payments", body=body, write=True)
        return dict(document["payment"])

    async def search_orders(self, body: JSONDict) -> JSONDict:
        """``POST /v2/orders/search``: one page of orders (a read)."""
        return await self._request("POST", "/v2/orders/search", body=body)

    async def batch_retrieve_orders(
        self, order_ids: Sequence[str], location_id: str | None = None
    ) -> list[JSONDict]:
        """``POST /v2/orders/batch-retrieve``: orders by id, 100 per request; unknown ids are
        left out."""
        orders: list[JSONDict] = []
        ids = list(order_ids)
        for start in range(0, len(ids), BATCH_ORDERS_MAX):
            body: JSONDict = {"order_ids": ids[start : start + BATCH_ORDERS_MAX]}
            if location_id is not None:
                body["location_id"] = location_id
            document = await self._request("POST", "/v2/orders/batch-retrieve", body=body)
            found = document.get("orders") or []
            if not isinstance(found, list):
                raise PermanentError("Square POST /v2/orders/batch-retrieve: orders is not a list")
            orders.extend(found)
        return orders

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: JSONDict | None = None,
        write: bool = False,
        reused_key_ambiguous: bool = False,
    ) -> JSONDict:
        """Send one request and return its JSON object, or raise the matching framework error.

        A request refused with ``ACCESS_TOKEN_EXPIRED`` is sent once more with a renewed token,
        when there is one: Square did nothing with it, so resending a write is safe too.

        :param write: whether a failure after sending leaves the outcome unknown.
        :param reused_key_ambiguous: whether ``IDEMPOTENCY_KEY_REUSED`` means "it may exist".
        """
        what = f"Square {method} {path}"
        token = await self._tokens.current()
        send_with = functools.partial(
            send,
            self._http,
            method,
            self._base_url + path,
            what=what,
            write=write,
            timeout=self._timeout,
            max_bytes=self._max_bytes,
            params=params,
            json=body,
        )
        reply = await send_with(headers={**self._headers, "Authorization": f"Bearer {token}"})
        if reply.status == 401 and _expired(reply.body):
            renewed = await self._tokens.renew(token)
            if renewed is not None:
                headers = {**self._headers, "Authorization": f"Bearer {renewed}"}
                reply = await send_with(headers=headers)
        if reply.ok:
            return json_object(what, reply.body, write=write)
        raise error_from_response(
            what,
            reply.status,
            reply.body,
            reply.retry_after,
            reused_key_ambiguous=reused_key_ambiguous,
        )


def error_from_response(
    what: str,
    status: int,
    raw: bytes,
    retry_after: float | None,
    *,
    reused_key_ambiguous: bool = False,
) -> Exception:
    """The framework error for a non-2xx Square answer (see the module docstring)."""
    errors = _errors(raw)
    first = errors[0] if errors else {}
    code = str(first.get("code") or f"HTTP_{status}")
    category = first.get("category")
    codes = {str(e.get("code")) for e in errors}
    reason = "; ".join(_describe(e) for e in errors) or f"HTTP {status}"
    message = f"{what}: HTTP {status} {code}: {reason}"
    if status == 401 or codes & AUTH_CODES or category == "AUTHENTICATION_ERROR":
        return AuthError(message)
    if status == 429 or "RATE_LIMITED" in codes:
        return RetryableError(message, retry_after=retry_after)
    if status >= 500 or codes & RETRYABLE_CODES:
        return RetryableError(message, retry_after=retry_after)
    if reused_key_ambiguous and "IDEMPOTENCY_KEY_REUSED" in codes:
        return AmbiguousError(f"{message}; an earlier request used this key")
    return PermanentError(message, reason=reason, code=code)


def _expired(raw: bytes) -> bool:
    """Whether Square refused the request because the access token has expired."""
    return any(error.get("code") == "ACCESS_TOKEN_EXPIRED" for error in _errors(raw))


def _describe(error: JSONDict) -> str:
    """``detail (field: x) [CODE]`` for one Square error."""
    text = str(error.get("detail") or error.get("code") or "error")
    if error.get("field"):
        text += f" (field: {error['field']})"
    if error.get("code"):
        text += f" [{error['code']}]"
    return text


def _errors(raw: bytes) -> list[JSONDict]:
    """Square's ``errors[]``, or an empty list when the body is not that."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(document, dict):
        return []
    errors = document.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

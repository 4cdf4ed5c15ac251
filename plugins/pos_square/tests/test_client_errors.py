"""SquareClient error mapping against a tiny fake Square on loopback with canned error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pos_square.client import SquareClient
from pos_square.settings import SquareSettings
from posintegrator.errors import AmbiguousError, AuthError, PermanentError, RetryableError
from posintegrator.poshttp import parse_retry_after

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def errors(status: int, *errs: dict[str, str], headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"errors": list(errs)}, status=status, headers=headers)

    return handler


def error(category: str, code: str, detail: str, field: str | None = None) -> dict[str, str]:
    e = {"category": category, "code": code, "detail": detail}
    if field is not None:
        e["field"] = field
    return e


class FakeSquare:
    """Routes answer what each test sets; requests are recorded."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            (request.method, request.path, dict(request.headers), await request.read())
        )
        handler = self.handlers.get((request.method, request.path))
        if handler is None:
            return web.json_response({"orders": []})
        return await handler(request)


@pytest.fixture
async def square() -> AsyncIterator[tuple[FakeSquare, str]]:
    fake = FakeSquare()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(http: aiohttp.ClientSession, base_url: str, **overrides: Any) -> SquareClient:
    values: dict[str, Any] = {
        "base_url": base_url,
        "access_token": "EAAA-secret",
        "request_timeout_seconds": 10.0,  # the hanging-Square tests set their own, shorter
    }
    values.update(overrides)
    return SquareClient(http, SquareSettings(**values))


ORDER_BODY = {"idempotency_key": "k", "order": {"location_id": "L1"}}


async def test_headers_and_success(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response({"order": {"id": "SQ1", "state": "OPEN"}})

    fake.handlers[("POST", "/v2/orders")] = ok
    created = await client(http, url).create_order(ORDER_BODY)
    assert created["id"] == "SQ1"
    method, path, headers, raw = fake.requests[0]
    assert (method, path) == ("POST", "/v2/orders")
    assert headers["Authorization"] == "Bearer EAAA-secret"
    assert headers["Square-Version"] == "2025-08-20"
    assert headers["Content-Type"] == "application/json"
    assert b'"idempotency_key":"k"' in raw


async def test_401_is_auth_error(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("GET", "/v2/locations")] = errors(
        401, error("AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized.")
    )
    with pytest.raises(AuthError, match="UNAUTHORIZED"):
        await client(http, url).list_locations()


async def test_expired_token_is_auth_error(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("GET", "/v2/catalog/list")] = errors(
        401, error("AUTHENTICATION_ERROR", "ACCESS_TOKEN_EXPIRED", "The access token has expired.")
    )
    with pytest.raises(AuthError, match="ACCESS_TOKEN_EXPIRED"):
        await client(http, url).list_catalog(["ITEM"])


async def test_403_insufficient_scopes_is_auth_error(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/payments")] = errors(
        403,
        error(
            "AUTHENTICATION_ERROR",
            "INSUFFICIENT_SCOPES",
            "The merchant has not given your application sufficient permissions.",
        ),
    )
    with pytest.raises(AuthError, match="INSUFFICIENT_SCOPES"):
        await client(http, url).create_payment({"idempotency_key": "p", "source_id": "EXTERNAL"})


async def test_429_honours_retry_after_seconds(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/orders/search")] = errors(
        429,
        error("RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limited."),
        headers={"Retry-After": "7"},
    )
    with pytest.raises(RetryableError) as caught:
        await client(http, url).search_orders({"location_ids": ["L1"]})
    assert caught.value.retry_after == 7.0
    assert not isinstance(caught.value, AmbiguousError)


async def test_429_on_a_write_is_retryable_not_ambiguous(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    fake.handlers[("POST", "/v2/orders")] = errors(
        429,
        error("RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limited."),
        headers={"Retry-After": when},
    )
    with pytest.raises(RetryableError) as caught:
        await client(http, url).create_order(ORDER_BODY)
    assert type(caught.value) is RetryableError
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120


async def test_500_is_retryable(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/orders")] = errors(
        500, error("API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error occurred.")
    )
    with pytest.raises(RetryableError) as caught:
        await client(http, url).create_order(ORDER_BODY)
    assert type(caught.value) is RetryableError


async def test_idempotency_key_reused_on_create_order_is_ambiguous(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/orders")] = errors(
        400,
        error(
            "INVALID_REQUEST_ERROR",
            "IDEMPOTENCY_KEY_REUSED",
            "The idempotency key can only be retried with the same request data.",
        ),
    )
    with pytest.raises(AmbiguousError, match="IDEMPOTENCY_KEY_REUSED"):
        await client(http, url).create_order(ORDER_BODY)


async def test_invalid_value_is_permanent_with_readable_reason(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/orders")] = errors(
        400,
        error(
            "INVALID_REQUEST_ERROR",
            "INVALID_VALUE",
            "Item variation with catalog object ID `VAR_GONE` not found.",
            field="order.line_items[0].catalog_object_id",
        ),
    )
    with pytest.raises(PermanentError) as caught:
        await client(http, url).create_order(ORDER_BODY)
    assert caught.value.code == "INVALID_VALUE"
    assert caught.value.reason == (
        "Item variation with catalog object ID `VAR_GONE` not found. "
        "(field: order.line_items[0].catalog_object_id) [INVALID_VALUE]"
    )


async def hang(request: web.Request) -> web.StreamResponse:
    """A Square that answers after the client's timeout."""
    await asyncio.sleep(1.5)
    return web.json_response({})


async def test_hanging_write_is_ambiguous(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/orders")] = hang
    fake.handlers[("POST", "/v2/payments")] = hang
    with pytest.raises(AmbiguousError, match="timed out"):
        await client(http, url, request_timeout_seconds=0.2).create_order(ORDER_BODY)
    with pytest.raises(AmbiguousError):
        await client(http, url, request_timeout_seconds=0.2).create_payment({"x": 1})


async def test_hanging_read_is_retryable(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    fake.handlers[("POST", "/v2/orders/batch-retrieve")] = hang
    with pytest.raises(RetryableError) as caught:
        await client(http, url, request_timeout_seconds=0.2).batch_retrieve_orders(["SQ1"])
    assert not isinstance(caught.value, AmbiguousError)


async def test_connection_refused_is_retryable(http: aiohttp.ClientSession) -> None:
    with pytest.raises(RetryableError) as caught:
        await client(http, "http://127.0.0.1:9").create_order(ORDER_BODY)
    assert not isinstance(caught.value, AmbiguousError)


async def test_list_catalog_sends_types_and_cursor(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    fake, url = square
    seen: list[dict[str, str]] = []

    async def page(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.query))
        return web.json_response({"objects": []})

    fake.handlers[("GET", "/v2/catalog/list")] = page
    await client(http, url).list_catalog(["ITEM", "TAX"], "CUR-2")
    assert seen == [{"types": "ITEM,TAX", "cursor": "CUR-2"}]


def answer(document: Any) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(document)

    return handler


async def test_a_location_answer_without_a_location_is_permanent(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    # dict(document["location"]) raised KeyError: a plugin bug to the host, retried forever.
    fake, url = square
    fake.handlers[("GET", "/v2/locations/L1")] = answer({"errors": []})
    with pytest.raises(PermanentError, match="GET /v2/locations/L1: no location object"):
        await client(http, url).retrieve_location("L1")


async def test_orders_that_are_not_a_list_are_permanent(
    square: tuple[FakeSquare, str], http: aiohttp.ClientSession
) -> None:
    # list.extend() of an object took its keys as orders; of a number it raised TypeError.
    fake, url = square
    fake.handlers[("POST", "/v2/orders/batch-retrieve")] = answer({"orders": {"SQ1": {}}})
    with pytest.raises(PermanentError, match="orders is not a list"):
        await client(http, url).batch_retrieve_orders(["SQ1"])


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("garbage") is None

"""Every error the API can give is a problem document with the right status, for the requests
a scanner, a misconfigured client or an attacker sends first; and nothing is stored for them.

docs/security.md lists each request tried here with its answer.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from helpers import demo_connection
from openapi_spec_validator import validate
from pydantic import SecretStr

from pos_demo.simulator import RunningSimulator
from posintegrator.errors import AmbiguousError, RetryableError
from posintegrator.plugins import PluginHost
from posintegrator.poshttp import send
from posintegrator.runtime.host import Host
from posintegrator.settings import ApiSettings, HostSettings, StoreSettings
from posintegrator.testing import HostHarness, running_host

PROBLEM = "application/problem+json"


async def _raw(
    harness: HostHarness,
    method: str,
    path: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: bool = True,
) -> tuple[int, dict[str, Any], Any]:
    """Send a request exactly as given; the status, headers and decoded problem."""
    session = harness.client if token else aiohttp.ClientSession()
    try:
        async with session.request(
            method, harness.url + path, data=data, headers=headers or {}
        ) as response:
            body = await response.json(content_type=None) if await response.read() else None
            assert response.status < 500, (method, path, response.status, body)
            if response.status >= 400:
                assert response.content_type == PROBLEM, (method, path, response.content_type)
                assert body["status"] == response.status and body["title"]
            return response.status, dict(response.headers), body
    finally:
        if not token:
            await session.close()


async def _order_count(harness: HostHarness) -> int:
    return sum(1 for _ in await harness.host.store.orders_by_status(_all_statuses(), 1000))


def _all_statuses() -> list[Any]:
    from posintegrator.model import OrderStatus

    return list(OrderStatus)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nonexistent", 404),
        ("GET", "/v1/nonexistent", 404),
        ("DELETE", "/v1/plugins", 405),
        ("TRACE", "/healthz", 405),
        ("PUT", "/v1/orders", 405),
        ("PATCH", "/v1/orders/x", 405),
        ("OPTIONS", "/v1/connections", 405),
        ("GET", "/pos/demo/webhook", 405),
        ("POST", "/pos/nope/webhook", 404),
    ],
)
async def test_unknown_paths_and_methods(
    demo_host: HostHarness, method: str, path: str, status: int
) -> None:
    got, headers, problem = await _raw(demo_host, method, path)
    assert got == status, problem
    if status == 405:
        assert headers["Allow"], "a 405 says which methods are allowed"
        assert method in problem["detail"] and headers["Allow"].split(",")[0] in problem["detail"]


async def test_wrong_media_type_is_415_and_stores_nothing(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    import orjson

    body = orjson.dumps(example_order)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        status, headers, problem = await _raw(
            demo_host, "POST", "/v1/orders", data=body, headers={"Content-Type": content_type}
        )
        assert status == 415, problem
        assert problem["errors"][0]["field"] == "Content-Type"
        assert headers.get("Accept-Post") == "application/json"
    status, _, _ = await _raw(
        demo_host,
        "POST",
        "/v1/orders/x/retry",
        data=b'{"operator": "a"}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    assert await _order_count(demo_host) == 0
    # The same body as JSON (with a charset, as browsers send it) is taken.
    status, _, _ = await _raw(
        demo_host,
        "POST",
        "/v1/orders",
        data=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 202


async def test_too_large_bodies_are_413_before_being_read(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    import orjson

    huge_note = copy.deepcopy(example_order)
    huge_note["customer_note"] = "x" * (20 * 1024 * 1024)
    many_lines = copy.deepcopy(example_order)
    many_lines["lines"] = example_order["lines"] * 5000
    json = {"Content-Type": "application/json"}
    for order in (huge_note, many_lines):
        status, _, problem = await _raw(
            demo_host, "POST", "/v1/orders", data=orjson.dumps(order), headers=json
        )
        assert status == 413, problem
        assert problem["errors"][0]["field"] == "body"

    # A chunked body (no Content-Length) is cut off at the limit too.
    async def chunks() -> Any:
        for _ in range(40):
            yield b" " * 65536

    async with demo_host.client.post(
        demo_host.url + "/v1/orders", data=chunks(), headers=json
    ) as response:
        assert response.status == 413
    status, _, _ = await _raw(
        demo_host, "POST", "/pos/demo/webhook", data=b"x" * (2 * 1024 * 1024), token=False
    )
    assert status == 413
    assert await _order_count(demo_host) == 0


async def test_malformed_and_too_deep_json_is_400(demo_host: HostHarness) -> None:
    json = {"Content-Type": "application/json"}
    for body in (b"{not json", b"", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000):
        status, _, problem = await _raw(demo_host, "POST", "/v1/orders", data=body, headers=json)
        assert status == 400, (body[:20], problem)
        assert problem["errors"][0]["field"] == "body"
    deep: Any = {"leaf": 1}
    for _ in range(40):
        deep = {"nested": deep}
    import orjson

    status, _, problem = await _raw(
        demo_host, "POST", "/v1/orders", data=orjson.dumps(deep), headers=json
    )
    assert status == 400 and "nest deeper than 32" in problem["detail"]


@pytest.mark.parametrize(
    "query",
    ["since=abc", "since=-1", "since=0", "since=%C2%B2", "since=99999999999999999999999", "since="],
)
async def test_bad_menu_version_is_400(demo_host: HostHarness, query: str) -> None:
    status, _, problem = await _raw(demo_host, "GET", f"/v1/locations/downtown/menu?{query}")
    assert status == 400, problem
    assert problem["errors"][0]["field"] == "since"


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=%C2%B2", "status=DONE"])
async def test_bad_list_parameters_are_400(demo_host: HostHarness, query: str) -> None:
    status, _, problem = await _raw(demo_host, "GET", f"/v1/orders?{query}")
    assert status == 400, problem
    assert problem["errors"][0]["field"] == query.split("=")[0]


async def test_order_size_limits_are_422_naming_the_field(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    limits = demo_host.host.settings.orders
    too_many = copy.deepcopy(example_order)
    too_many["lines"] = example_order["lines"] * (limits.max_lines + 1)
    too_many["total"] = example_order["total"] * (limits.max_lines + 1)  # still adds up
    too_many["payments"] = [{"mode": "PREPAID", "amount": too_many["total"]}]
    status, body = await demo_host.post_order(too_many)
    assert status == 422 and body["errors"][0]["field"] == "lines", body

    nested = copy.deepcopy(example_order)
    chain: dict[str, Any] = {"option_id": "cheese", "modifiers": []}
    for _ in range(limits.max_modifier_depth):
        chain = {"option_id": "cheese", "modifiers": [chain]}
    nested["lines"][0]["modifiers"] = [chain]
    status, body = await demo_host.post_order(nested)
    assert status == 422, body
    assert body["errors"][0]["field"].startswith("lines[0].modifiers[0].modifiers[0]")
    assert "nested" in body["errors"][0]["reason"]

    crowded = copy.deepcopy(example_order)
    crowded["lines"][0]["modifiers"] = [{"option_id": "cheese"}] * (
        limits.max_modifiers_per_line + 1
    )
    status, body = await demo_host.post_order(crowded)
    assert status == 422 and body["errors"][0]["field"] == "lines[0]", body

    for field, value in (("id", "a\nb"), ("id", "x" * 201), ("currency", "euro")):
        bad = {**example_order, field: value}
        status, body = await demo_host.post_order(bad)
        assert status == 422 and body["errors"][0]["field"] == field, body
    far = {**example_order, "pickup_time": "9999-12-31T23:59:59-23:59"}
    status, body = await demo_host.post_order(far)
    assert status == 422 and body["errors"][0]["field"] == "pickup_time", body
    assert await _order_count(demo_host) == 0


async def test_wrong_tokens_are_throttled_but_the_right_one_passes(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    async with running_host(tmp_path, [demo_connection(simulator)]) as harness:
        budget = harness.host.settings.api.auth_failures_per_minute
        statuses = []
        for _ in range(budget + 3):
            status, headers, _ = await _raw(
                harness, "GET", "/v1/plugins", headers={"Authorization": "Bearer guess"}
            )
            statuses.append(status)
        assert statuses[:budget] == [401] * budget
        assert statuses[budget:] == [429] * 3
        assert int(headers["Retry-After"]) >= 1
        status, _, _ = await _raw(harness, "GET", "/v1/plugins")
        assert status == 200, "a client with the right token is never locked out"


async def test_request_budget_per_client_is_429(tmp_path: Path) -> None:
    settings = HostSettings(
        api=ApiSettings(port=0, token=SecretStr("t"), requests_per_second=5),
        store=StoreSettings(path=tmp_path / "host.db"),
    )
    host = Host(settings, plugins=PluginHost.from_objects({}))
    await host.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session:

            async def call() -> tuple[int, str | None]:
                async with session.get(host.url + "/v1/plugins") as response:
                    return response.status, response.headers.get("Retry-After")

            # Five requests just before a whole second of the clock, seven more just after it:
            # a limiter counting per window of the clock would let one of the seven through.
            await asyncio.sleep((0.8 - time.time()) % 1)
            second = int(time.time()) + 1
            answers = await asyncio.gather(*(call() for _ in range(5)))
            await asyncio.sleep(max(0.0, second + 0.02 - time.time()))
            answers += await asyncio.gather(*(call() for _ in range(7)))
        statuses = sorted(status for status, _ in answers)
        assert statuses.count(200) == 5 and statuses.count(429) == 7
        assert all(int(wait or 0) >= 1 for status, wait in answers if status == 429)
    finally:
        await host.stop()


async def test_the_served_openapi_document_is_valid(demo_host: HostHarness) -> None:
    status, document = await demo_host.request("GET", "/openapi.json")
    assert status == 200
    validate(document)
    order_post = document["paths"]["/v1/orders"]["post"]
    assert set(order_post["responses"]) >= {"202", "400", "401", "409", "413", "415", "422", "429"}
    since = document["paths"]["/v1/locations/{location}/menu"]["get"]["parameters"]
    assert {"name": "since", "in": "query"}.items() <= next(
        p for p in since if p["name"] == "since"
    ).items()
    assert next(p for p in since if p["name"] == "since")["schema"]["type"] == "integer"
    assert "get_order" in order_post["responses"]["202"]["links"]


async def test_a_pos_answer_over_the_limit_is_cut_off_unread() -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 65536)
        return response

    app = web.Application()
    app.router.add_get("/menu", huge)
    app.router.add_post("/orders", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(RetryableError, match="larger than 1048576 bytes"):
                await send(
                    http, "GET", url + "/menu", what="menu", write=False, timeout=timeout,
                    max_bytes=1024 * 1024,
                )  # fmt: skip
            with pytest.raises(AmbiguousError, match="may have processed"):
                await send(
                    http, "POST", url + "/orders", what="order", write=True, timeout=timeout,
                    max_bytes=1024 * 1024,
                )  # fmt: skip
            reply = await send(
                http, "GET", url + "/menu", what="menu", write=False, timeout=timeout,
                max_bytes=8 * 1024 * 1024,
            )  # fmt: skip
            assert len(reply.body) == 64 * 65536
    finally:
        await runner.cleanup()

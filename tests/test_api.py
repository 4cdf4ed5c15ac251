"""The Integrator API over real loopback HTTP: auth, problems, orders, menus, OpenAPI."""

from __future__ import annotations

import asyncio
import copy
import gzip
from typing import Any

import aiohttp
import orjson
from helpers import pos_orders

from pos_demo.simulator import RunningSimulator
from posintegrator.api.routes import ROUTES
from posintegrator.model import OrderStatus
from posintegrator.testing import HostHarness


async def test_healthz_needs_no_token(demo_host: HostHarness) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(demo_host.url + "/healthz") as response,
    ):
        assert response.status == 200
        assert (await response.json())["status"] == "ok"


async def test_everything_else_needs_the_bearer_token(demo_host: HostHarness) -> None:
    paths = [r.path for r in ROUTES if r.auth and "{" not in r.path]
    assert "/v1/plugins" in paths
    async with aiohttp.ClientSession() as anonymous:
        for path in paths:
            async with anonymous.get(demo_host.url + path) as response:
                assert response.status == 401, path
                assert response.content_type == "application/problem+json"
                assert "Bearer" in (await response.json())["detail"]
        async with anonymous.get(
            demo_host.url + "/v1/plugins", headers={"Authorization": "Bearer wrong"}
        ) as response:
            assert response.status == 401


async def test_plugins_and_connections(demo_host: HostHarness) -> None:
    status, body = await demo_host.request("GET", "/v1/plugins")
    assert status == 200
    [plugin] = body["plugins"]
    assert plugin["name"] == "demo" and plugin["version"] == "0.1.0"
    assert plugin["capabilities"]["order_lookup"] is True
    status, body = await demo_host.request("GET", "/v1/connections")
    [connection] = body["connections"]
    assert connection["name"] == "demo" and connection["plugin"] == "demo"
    assert connection["locations"] == ["downtown", "airport"]
    assert connection["health"] == "ok"
    syncs = {s["location"]: (s["ok"], s["version"]) for s in connection["menu_syncs"]}
    assert syncs == {"airport": (True, 1), "downtown": (True, 1)}


async def test_menu_is_served_with_etag_and_304(demo_host: HostHarness) -> None:
    url = demo_host.url + "/v1/locations/downtown/menu"
    async with demo_host.client.get(url) as response:
        assert response.status == 200
        etag = response.headers["ETag"]
        menu = await response.json()
    assert response.headers["X-Menu-Version"] == "1"
    assert menu["location"] == "downtown" and len(menu["products"]) >= 40
    async with demo_host.client.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    status, body = await demo_host.request("GET", "/v1/locations/nowhere/menu")
    assert status == 404 and "nowhere" in body["detail"]


async def test_order_is_accepted_idempotently(
    demo_host: HostHarness, simulator: RunningSimulator, example_order: dict[str, Any]
) -> None:
    status, first = await demo_host.post_order(example_order)
    assert status == 202 and first == {"id": "demo-order-0001", "status": "RECEIVED"}
    # The same body, with keys in another order and other whitespace, is the same order.
    reordered = orjson.dumps(
        dict(reversed(list(example_order.items()))), option=orjson.OPT_INDENT_2
    )
    status, again = await demo_host.request("POST", "/v1/orders", raw=reordered)
    assert status == 202 and again == first
    await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    status, late = await demo_host.post_order(example_order)
    assert status == 202 and late == first
    assert len(await pos_orders(simulator, "demo-order-0001")) == 1


async def test_same_id_with_other_content_is_a_conflict(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    assert (await demo_host.post_order(example_order))[0] == 202
    changed = copy.deepcopy(example_order)
    changed["customer_note"] = "no napkins"
    status, problem = await demo_host.post_order(changed)
    assert status == 409
    assert problem["errors"] == [{"field": "id", "reason": "already used with different content"}]


async def test_invalid_orders_get_422_naming_each_field(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    bad = copy.deepcopy(example_order)
    bad["lines"][1]["quantity"] = 0
    bad["total"] = 19.9
    bad["pickup_time"] = "2026-12-01T12:00:00"  # naive: no timezone
    bad["surprise"] = True
    status, problem = await demo_host.post_order(bad)
    assert status == 422
    fields = {e["field"] for e in problem["errors"]}
    assert {"lines[1].quantity", "total", "pickup_time", "surprise"} <= fields
    assert problem["title"] == "Invalid order"


async def test_orders_the_deployment_cannot_serve_are_refused(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    elsewhere = {**example_order, "id": "x-1", "location": "moon"}
    status, problem = await demo_host.post_order(elsewhere)
    assert status == 422
    assert problem["errors"][0]["field"] == "location"
    unpaid = {**example_order, "id": "x-2", "payments": [{"mode": "PREPAID", "amount": 1}]}
    status, problem = await demo_host.post_order(unpaid)
    assert status == 422 and "add up to 1 but the total is 1990" in problem["detail"]
    assert problem["errors"][0]["field"] == "payments"
    aggregator = {**example_order, "id": "x-3", "channel": "deliveroo"}
    status, problem = await demo_host.post_order(aggregator)
    assert status == 422 and problem["errors"][0]["field"] == "channel"
    assert "unknown channel 'deliveroo'" in problem["errors"][0]["reason"]


async def test_malformed_json_is_400(demo_host: HostHarness) -> None:
    status, problem = await demo_host.request("POST", "/v1/orders", raw=b"{not json")
    assert status == 400
    assert problem["errors"][0]["field"] == "body"


async def test_order_view_has_status_and_history(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    await demo_host.post_order(example_order)
    view = await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    applied = [h["status"] for h in view["history"] if h["applied"]]
    assert applied == [
        "RECEIVED",
        "SUBMITTING",
        "ACCEPTED",
        "IN_PREPARATION",
        "READY",
        "COMPLETED",
    ]
    assert [h["sequence"] for h in view["history"] if h["applied"]] == [1, 2, 3, 4, 5, 6]
    assert view["pos_order_id"].startswith("D-")
    assert view["order"]["lines"][0]["components"][0]["product_id"] == "cheeseburger"
    status, problem = await demo_host.request("GET", "/v1/orders/unknown")
    assert status == 404 and problem["title"] == "Unknown order"


async def test_openapi_documents_every_route(demo_host: HostHarness) -> None:
    status, document = await demo_host.request("GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    served = {
        (route.method, route.resource.canonical)
        for route in demo_host.host._runner.app.router.routes()  # type: ignore[union-attr]
        if route.method != "HEAD"
        and route.resource is not None
        # The operator dashboard's pages are for people, deliberately not in the API document.
        and not route.resource.canonical.startswith("/ui")
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert served == documented
    order_schema = document["paths"]["/v1/orders"]["post"]["requestBody"]["content"]
    ref = order_schema["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "lines" in document["components"]["schemas"][ref]["properties"]


async def test_a_stopping_host_refuses_new_orders_with_503(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    demo_host.host.accepting = False  # what Host.stop() does first
    async with demo_host.client.post(demo_host.url + "/v1/orders", json=example_order) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
    assert await demo_host.host.store.get_order(example_order["id"]) is None
    _, body = await demo_host.request("GET", "/healthz")
    assert body["status"] == "stopping"


async def test_a_replay_is_answered_even_after_the_menu_changed(
    demo_host: HostHarness, simulator: RunningSimulator, example_order: dict[str, Any]
) -> None:
    assert (await demo_host.post_order(example_order))[0] == 202
    # 86'd on the POS since the order was accepted: the POS is the source of truth, so a
    # scheduled menu sync racing this test publishes the same thing.
    simulator.set_availability("downtown", item="vanilla_shake", available=False)
    async with asyncio.timeout(10):
        while True:
            live = await demo_host.host.live_menus.get("downtown")
            assert live is not None
            shake = next(p for p in live.menu.products if p.id == "vanilla_shake")
            if not shake.availability.available:
                break
            await asyncio.sleep(0.05)
    status, body = await demo_host.post_order(example_order)
    assert status == 202 and body == {"id": "demo-order-0001", "status": "RECEIVED"}
    fresh = {**example_order, "id": "demo-order-0002"}
    status, problem = await demo_host.post_order(fresh)
    assert status == 422 and problem["errors"][0]["code"] == "unavailable"


async def test_large_answers_are_gzipped_when_the_client_accepts_it(demo_host: HostHarness) -> None:
    url = demo_host.url + "/v1/locations/downtown/menu"
    auth = demo_host.client.headers["Authorization"]

    async def fetch(encoding: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"Authorization": auth, "Accept-Encoding": encoding}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as raw,
            raw.get(url, headers=headers) as response,
        ):
            return response.status, dict(response.headers), await response.read()

    _, headers, compressed = await fetch("gzip")
    assert headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in headers["Vary"]
    _, headers, plain = await fetch("identity")
    assert "Content-Encoding" not in headers
    for refusal in ("gzip;q=0", "gzip;q=zero"):
        status, headers, _ = await fetch(refusal)
        assert status == 200 and "Content-Encoding" not in headers
    assert gzip.decompress(compressed) == plain
    assert len(compressed) < len(plain) / 4


async def test_readiness_for_load_balancers(demo_host: HostHarness, tmp_path: Any) -> None:
    async with aiohttp.ClientSession() as anonymous:

        async def ready() -> tuple[int, dict[str, Any]]:
            async with anonymous.get(demo_host.url + "/readyz") as response:
                return response.status, await response.json()

        status, body = await ready()
        assert (status, body["status"], body["locations_without_menu"]) == (200, "ready", [])
        host = demo_host.host
        host.accepting = False
        assert (await ready())[1]["status"] == "starting"
        host.accepting = True
        # Someone holds the database's write lock: the host cannot take orders now.
        import sqlite3

        blocker = sqlite3.connect(host.settings.store.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            status, body = await ready()
            assert status == 503 and body["status"] == "store_unavailable"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await eventually_ready(ready)
        host.stopping = True
        try:
            status, body = await ready()
            assert status == 503 and body["status"] == "stopping"
        finally:
            host.stopping = False
        async with anonymous.get(demo_host.url + "/healthz") as response:
            assert response.status == 200, "liveness stays cheap and up"


async def eventually_ready(ready: Any) -> None:
    for _ in range(200):
        if (await ready())[0] == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the host never became ready again")

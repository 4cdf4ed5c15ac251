"""The Square plugin inside the real host, against the Square double, over loopback HTTP.

Every request the plugin sends is validated by the double against Square's OpenAPI spec (strict:
undeclared fields count), and every response the double sends is validated too; each test ends
by asserting that no request or response broke the spec.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from squaredouble import SIGNATURE_HEADER, SUBSCRIPTION_ID, RunningDouble, sign, start_double

from posintegrator.model import OrderStatus
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, running_host, sample_order
from posintegrator.testing.contract import PluginContract, PosBackend, WebhookSigning

FIXTURES = Path(__file__).parent / "fixtures"
SIGNATURE_KEY = "square-integration-signature-key"
NEXT_STATE = {"PROPOSED": "RESERVED", "RESERVED": "PREPARED", "PREPARED": "COMPLETED"}


def pickup_state(order: dict[str, Any]) -> str:
    return str(order["fulfillments"][0]["state"])


async def kitchen(double: RunningDouble, period: float = 0.1, held: set[str] | None = None) -> None:
    """Moves every order through the pickup states, as staff on Square's apps would; while
    ``held`` holds ``"all"``, new work waits (orders stay where they are)."""
    while True:
        await asyncio.sleep(period)
        if held and "all" in held:
            continue
        for order_id, order in list(double.state.orders.items()):
            state = pickup_state(order)
            if state in NEXT_STATE:
                double.double.advance_fulfillment(order_id, NEXT_STATE[state])


def square_orders(double: RunningDouble, reference: str) -> list[dict[str, Any]]:
    return [o for o in double.state.orders.values() if o.get("reference_id") == reference]


def settings_for(double: RunningDouble) -> dict[str, Any]:
    return {
        "base_url": double.url,
        "access_token": double.token,
        "webhook_signature_key": SIGNATURE_KEY,
        # Generous: the double checks every request and answer against Square's spec, which
        # takes a while on a busy machine; no test here waits for a timeout.
        "request_timeout_seconds": 10.0,
    }


class TestSquareContract(PluginContract):
    """The conformance kit with the Square plugin and the Square double."""

    plugin_name = "square"
    status_timeout = 30.0

    @pytest.fixture
    async def pos_backend(self, tmp_path: Path) -> AsyncIterator[PosBackend]:
        double = await start_double(signature_key=SIGNATURE_KEY)
        held: set[str] = set()
        cooking = asyncio.create_task(kitchen(double, held=held))

        async def hold_orders(hold: bool) -> None:
            if hold:
                held.add("all")
            else:
                held.discard("all")

        async def count_orders(order_id: str) -> int:
            return len(square_orders(double, order_id))

        async def on_host_started(webhook_url: str) -> None:
            double.double.webhooks.notification_url = webhook_url

        yield PosBackend(
            settings=settings_for(double),
            locations=list(double.location_ids),
            count_orders=count_orders,
            on_host_started=on_host_started,
            hold_orders=hold_orders,
            faults=double.double.faults,
            wrong_credentials={"access_token": "EAAAl-not-a-valid-square-token"},
            webhooks=WebhookSigning(
                sign=lambda url, body, key: {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(key, url, body),
                },
                secret=SIGNATURE_KEY,
                body=(FIXTURES / "webhook_catalog_version_updated.json").read_bytes(),
            ),
        )
        cooking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cooking
        double.assert_clean()
        await double.close()


def _square_connection(
    double: RunningDouble, plugin_settings: dict[str, Any] | None, **connection: Any
) -> ConnectionSettings:
    return ConnectionSettings(
        **{
            "name": "square",
            "plugin": "square",
            "locations": list(double.location_ids),
            "settings": {**settings_for(double), **(plugin_settings or {})},
            "menu_sync_seconds": 3600,
            **connection,
        }
    )


async def _point_webhooks(double: RunningDouble, host: Any) -> None:
    double.double.webhooks.notification_url = host.connections["square"].connection.ctx.webhook_url


@contextlib.asynccontextmanager
async def square_host(
    tmp_path: Path,
    double: RunningDouble,
    plugin_settings: dict[str, Any] | None = None,
    **connection: Any,
) -> AsyncIterator[HostHarness]:
    settings = _square_connection(double, plugin_settings, **connection)
    connect = functools.partial(_point_webhooks, double)
    async with running_host(tmp_path, [settings], after_start=connect) as harness:
        yield harness


@contextlib.asynccontextmanager
async def restarted_square_host(
    tmp_path: Path, double: RunningDouble, **connection: Any
) -> AsyncIterator[HostHarness]:
    """A host started a second time on the same store, whose scheduler syncs no menu by itself
    while the test runs: a restart spreads its first syncs over the whole (here very long) sync
    period, where a first start syncs within seconds, at a moment a slow machine shifts."""
    settings = _square_connection(double, None, menu_sync_seconds=1e9, **connection)
    connect = functools.partial(_point_webhooks, double)
    async with running_host(tmp_path, [settings], after_start=connect):
        pass  # publishes every menu
    async with running_host(tmp_path, [settings], after_start=connect) as harness:
        yield harness


async def test_a_1000_variation_catalog_over_many_pages(tmp_path: Path) -> None:
    double = await start_double(variations=1000, signature_key=SIGNATURE_KEY)
    try:
        async with square_host(tmp_path, double) as harness:
            counts = double.double.catalog.counts
            objects = double.double.catalog.objects
            menus = {loc: await harness.wait_for_menu(loc) for loc in double.location_ids}
            search_calls = [r for r in double.double.requests if r[1] == "/v2/catalog/search"]
            pages = -(-counts.top_level_objects // 1000)  # 1,000 objects per page
            # One read of every page serves both locations (several pages: test_chain_sync);
            # the scheduler's own first round may follow, reading one page of changes.
            assert len(search_calls) in (pages, pages + 1)
            for location, menu in menus.items():
                expected = _expected_variations(objects, location)
                assert sum(len(p.variants) for p in menu.products) == len(expected)
                assert {v.pos_id for p in menu.products for v in p.variants} == set(expected)
                prices = {v.pos_id: v.prices["square"] for p in menu.products for v in p.variants}
                assert prices == expected, f"per-location prices differ at {location}"
                sold_out = sum(
                    1 for p in menu.products for v in p.variants if not v.availability.available
                )
                assert sold_out == sum(1 for vid in expected if _sold_out(objects, vid, location))
            assert counts.variations >= 1000
            double.assert_clean()
    finally:
        await double.close()


def _present(obj: dict[str, Any], location: str) -> bool:
    if obj.get("is_deleted"):
        return False
    if obj.get("present_at_all_locations", True):
        return location not in (obj.get("absent_at_location_ids") or [])
    return location in (obj.get("present_at_location_ids") or [])


def _expected_variations(objects: list[dict[str, Any]], location: str) -> dict[str, int]:
    """Each fixed-price variation sold at ``location``, with its price there."""
    prices: dict[str, int] = {}
    for item in objects:
        if item["type"] != "ITEM" or not _present(item, location):
            continue
        for variation in item["item_data"].get("variations", []):
            data = variation["item_variation_data"]
            if not _present(variation, location) or data.get("pricing_type") != "FIXED_PRICING":
                continue
            price = data["price_money"]["amount"]
            for override in data.get("location_overrides") or []:
                if override["location_id"] == location and "price_money" in override:
                    price = override["price_money"]["amount"]
            prices[variation["id"]] = price
    return prices


def _sold_out(objects: list[dict[str, Any]], variation_id: str, location: str) -> bool:
    for item in objects:
        for variation in (item.get("item_data") or {}).get("variations", []):
            if variation["id"] == variation_id:
                overrides = variation["item_variation_data"].get("location_overrides") or []
                return any(o["location_id"] == location and o.get("sold_out") for o in overrides)
    return False


async def test_one_order_posted_three_times_through_faults_is_one_square_order(
    tmp_path: Path,
) -> None:
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with square_host(tmp_path, double) as harness:
            location = double.location_ids[0]
            menu = await harness.wait_for_menu(location)
            order = sample_order(menu, "sq-three-times")
            # 1st: Square creates the order, then the answer is lost (outcome unknown).
            double.double.faults.plan.update(
                {"commit_then_drop": 1.0, "paths": ["/v2/orders"], "methods": ["POST"]}
            )
            assert (await harness.post_order(order))[0] == 202
            await struck(double, "commit_then_drop")
            # 2nd: Square errors (then rate-limits: the next two requests) while the order is
            # posted again.
            double.double.faults.plan.update({"commit_then_drop": 0.0, "fail_5xx": 1.0})
            double.double.rate_limit(2, retry_after=1)
            assert (await harness.post_order(order))[0] == 202
            await struck(double, "fail_5xx")
            double.double.faults.plan.update({"fail_5xx": 0.0})
            assert (await harness.post_order(order))[0] == 202
            view = await harness.wait_for_status(
                order["id"], {OrderStatus.ACCEPTED, OrderStatus.IN_PREPARATION}, timeout=60
            )
            [square_order] = square_orders(double, order["id"])
            assert view["pos_order_id"] == square_order["id"]
            assert [status for *_, status in double.double.requests].count(429) == 2
            double.assert_clean()
    finally:
        await double.close()


async def struck(double: RunningDouble, fault: str) -> None:
    """Wait until the double's fault injection has struck with ``fault`` (a host attempt)."""
    async with asyncio.timeout(30):
        while True:
            if double.double.faults.counts[fault] >= 1:
                return
            await asyncio.sleep(0.05)


async def test_forged_webhooks_get_401_and_change_nothing(tmp_path: Path) -> None:
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with square_host(tmp_path, double) as harness:
            location = double.location_ids[0]
            menu = await harness.wait_for_menu(location)
            order = sample_order(menu, "sq-webhooks")
            await harness.post_order(order)
            await harness.wait_for_status(order["id"], {OrderStatus.ACCEPTED})
            # Square's own webhooks about the new order (recorded as duplicates) land first, so
            # they cannot be counted as changes made by the forgeries below.
            await double.double.webhooks.drain()
            history_before = len((await harness.order(order["id"]))["history"])
            url = harness.host.connections["square"].connection.ctx.webhook_url
            [square_order] = square_orders(double, order["id"])
            event = {
                "merchant_id": "ML7DOUBLE2X9Q",
                "type": "order.fulfillment.updated",
                "event_id": "forged-1",
                "created_at": "2030-01-01T00:00:00Z",
                "data": {
                    "type": "order_fulfillment_updated",
                    "id": square_order["id"],
                    "object": {
                        "order_fulfillment_updated": {
                            "order_id": square_order["id"],
                            "version": 99,
                            "location_id": location,
                            "state": "OPEN",
                            "fulfillment_update": [
                                {
                                    "fulfillment_uid": square_order["fulfillments"][0]["uid"],
                                    "old_state": "PROPOSED",
                                    "new_state": "COMPLETED",
                                }
                            ],
                        }
                    },
                },
            }
            body = orjson.dumps(event)

            def signature(over_url: str, over_body: bytes, key: str = SIGNATURE_KEY) -> str:
                digest = hmac.new(key.encode(), over_url.encode() + over_body, hashlib.sha256)
                return base64.b64encode(digest.digest()).decode()

            forgeries = {
                "wrong key": (body, signature(url, body, key="guessed")),
                "changed body": (body.replace(b"99", b"98"), signature(url, body)),
                "another URL": (body, signature("https://evil.example/hook", body)),
                "no signature": (body, None),
            }
            async with aiohttp.ClientSession() as session:
                for name, (payload, sig) in forgeries.items():
                    headers = {"Content-Type": "application/json"}
                    if sig is not None:
                        headers["x-square-hmacsha256-signature"] = sig
                    async with session.post(url, data=payload, headers=headers) as response:
                        assert response.status == 401, name
            after = await harness.order(order["id"])
            assert len(after["history"]) == history_before and after["status"] == "ACCEPTED"
            # The same event, correctly signed, is applied.
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "x-square-hmacsha256-signature": signature(url, body),
                    },
                ) as response,
            ):
                assert response.status == 200
            await harness.wait_for_status(order["id"], {OrderStatus.COMPLETED})
    finally:
        await double.close()


async def test_after_a_signature_key_rotation_either_key_passes(tmp_path: Path) -> None:
    """Square replaces its key at once (UpdateWebhookSubscriptionSignatureKey); with the new key
    in ``webhook_signature_key_next`` the host applies notifications signed with the new key and
    those still signed with the previous one, and refuses any other."""
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with (
            aiohttp.ClientSession(headers=double.headers) as square,
            square.post(
                f"{double.url}/v2/webhooks/subscriptions/{SUBSCRIPTION_ID}/signature-key",
                json={"idempotency_key": "rotate-2030-01"},
            ) as response,
        ):
            assert response.status == 200
            new_key = (await response.json())["signature_key"]
        rotating = {"webhook_signature_key_next": new_key}
        async with square_host(tmp_path, double, rotating, status_source="webhook") as harness:
            location = double.location_ids[0]
            order = sample_order(await harness.wait_for_menu(location), "sq-rotation")
            await harness.post_order(order)
            await harness.wait_for_status(order["id"], {OrderStatus.ACCEPTED})
            [square_order] = square_orders(double, order["id"])
            # Square now signs with the new key: its notification moves the order on.
            double.double.advance_fulfillment(square_order["id"], "RESERVED")
            await harness.wait_for_status(order["id"], {OrderStatus.IN_PREPARATION})
            await double.double.webhooks.drain()
            assert all(d.delivered for d in double.double.webhooks.deliveries)

            url = harness.host.connections["square"].connection.ctx.webhook_url
            fulfillment = square_order["fulfillments"][0]["uid"]

            async def notify(key: str, new_state: str, version: int) -> int:
                event = fulfillment_event(square_order["id"], location, fulfillment, version)
                update = event["data"]["object"]["order_fulfillment_updated"]
                update["fulfillment_update"][0]["new_state"] = new_state
                body = orjson.dumps(event)
                headers = {SIGNATURE_HEADER: sign(key, url, body)}
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(url, data=body, headers=headers) as response,
                ):
                    return response.status

            history = len((await harness.order(order["id"]))["history"])
            assert await notify("guessed-key", "COMPLETED", 97) == 401
            view = await harness.order(order["id"])
            assert view["status"] == "IN_PREPARATION" and len(view["history"]) == history
            # Signed before the switch, delivered after it: the previous key still passes.
            assert await notify(SIGNATURE_KEY, "PREPARED", 98) == 200
            await harness.wait_for_status(order["id"], {OrderStatus.READY})
            double.assert_clean()
    finally:
        await double.close()


def fulfillment_event(
    square_order_id: str, location: str, fulfillment_uid: str, version: int
) -> dict[str, Any]:
    """An ``order.fulfillment.updated`` notification as Square sends it."""
    return {
        "merchant_id": "ML7DOUBLE2X9Q",
        "type": "order.fulfillment.updated",
        "event_id": f"rotation-{version}",
        "created_at": "2030-01-01T00:00:00Z",
        "data": {
            "type": "order_fulfillment_updated",
            "id": square_order_id,
            "object": {
                "order_fulfillment_updated": {
                    "order_id": square_order_id,
                    "version": version,
                    "location_id": location,
                    "state": "OPEN",
                    "fulfillment_update": [
                        {
                            "fulfillment_uid": fulfillment_uid,
                            "old_state": "RESERVED",
                            "new_state": "PREPARED",
                        }
                    ],
                }
            },
        },
    }


async def test_catalog_change_webhook_triggers_a_resync(tmp_path: Path) -> None:
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with restarted_square_host(
            tmp_path, double, menu_resync_debounce_seconds=0.2
        ) as harness:
            location = double.location_ids[0]
            menu = await harness.wait_for_menu(location)
            variant = next(v for p in menu.products for v in p.variants if v.availability.available)
            assert variant.pos_id is not None
            # The scheduler syncs no menu by itself now: only the webhook can cause a sync.
            double.double.set_sold_out(variant.pos_id, location)  # sends catalog.version.updated

            async def sold_out() -> bool:
                latest = await harness.wait_for_menu(location)
                return any(
                    v.pos_id == variant.pos_id and not v.availability.available
                    for p in latest.products
                    for v in p.variants
                )

            async with asyncio.timeout(30):
                while True:
                    if await sold_out():  # the webhook led to a menu resync that shows the 86
                        break
                    await asyncio.sleep(0.1)
            double.assert_clean()
    finally:
        await double.close()


async def test_what_the_menu_leaves_out_is_in_the_menu_report(tmp_path: Path) -> None:
    double = await start_double(variations=12, signature_key=SIGNATURE_KEY)
    fixture = Path(__file__).parent / "fixtures" / "catalog_left_out.json"
    double.double.add_objects(orjson.loads(fixture.read_bytes())["objects"])
    location = double.location_ids[0]
    try:
        async with square_host(tmp_path, double) as harness:
            menu = await harness.wait_for_menu(location)
            status, report = await harness.request("GET", f"/v1/locations/{location}/menu/report")
            double.assert_clean()
    finally:
        await double.close()
    assert status == 200 and report["errors"] == 0
    assert menu.product("ITEM_FISH") is None and menu.product("ITEM_CAKE") is not None
    messages = {f["path"]: f["message"] for f in report["findings"] if f["code"] == "left_out"}
    assert messages["left_out[ITEM_FISH]"].startswith(
        "item 'Fish of the day' (ITEM_FISH) is not in the menu: priced at the till"
    )
    assert messages["left_out[ML_NAME]"].startswith(
        "text modifier list 'Name on the cake' (ML_NAME) is not in the menu: free text"
    )
    assert {"left_out[MOD_CANDLE_GOLD]", "left_out[PR_HAPPY]", "left_out[CAT_STAFF]"} <= set(
        messages
    )
    assert report["warnings"] >= len(messages) >= 6

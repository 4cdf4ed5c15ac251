"""End to end: an item 86'd on the POS reaches the live menu and the cloud without a menu fetch."""

from __future__ import annotations

import asyncio
from typing import Any

from pos_demo.simulator import RunningSimulator
from posintegrator.model import Menu
from posintegrator.runtime.scheduler import FIRST_SYNC_SPREAD_SECONDS
from posintegrator.testing import HostHarness


async def menu_with_version(harness: HostHarness, location: str) -> tuple[int, Menu]:
    """The live menu of ``location`` and its ``X-Menu-Version``."""
    async with harness.client.get(f"{harness.url}/v1/locations/{location}/menu") as response:
        assert response.status == 200, await response.text()
        version = int(response.headers["X-Menu-Version"])
        return version, Menu.model_validate_json(await response.read())


async def wait_for_version(
    harness: HostHarness, location: str, version: int, timeout: float = 10.0
) -> Menu:
    """Poll the live menu until it reaches ``version``."""
    async with asyncio.timeout(timeout):
        while True:
            current, menu = await menu_with_version(harness, location)
            if current >= version:
                assert current == version, f"expected version {version}, got {current}"
                return menu
            await asyncio.sleep(0.05)


async def settle(simulator: RunningSimulator, location: str) -> int:
    """Wait for the scheduler's own first menu sync; returns the POS's menu fetch count then.

    The harness syncs every menu once before the test, and the scheduler syncs again within
    ``FIRST_SYNC_SPREAD_SECONDS`` of the start (in either order). Waiting for that second,
    regular fetch (and a moment for the host to finish with it) keeps it from being mistaken
    for one caused by the 86, or from racing the fast path.
    """
    async with asyncio.timeout(FIRST_SYNC_SPREAD_SECONDS + 5):
        while True:
            if simulator.core.menu_requests[location] >= 2:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return simulator.core.menu_requests[location]


def published(harness: HostHarness, location: str, version: int) -> list[dict[str, Any]]:
    """The ``menu.published`` events the cloud received for one version."""
    return [
        e
        for e in harness.receiver.events
        if e["type"] == "menu.published" and e["location"] == location and e["version"] == version
    ]


def fries_order(order_id: str, menu: Menu) -> dict[str, Any]:
    """A prepaid web order of one medium fries, priced from the live menu."""
    price_list = next(pl for pl in menu.price_lists if not pl.channels or "web" in pl.channels)
    fries = next(p for p in menu.products if p.id == "fries")
    price = next(v for v in fries.variants if v.id == "medium").prices[price_list.id]
    return {
        "id": order_id,
        "location": "downtown",
        "channel": "web",
        "type": "TAKE_AWAY",
        "currency": "EUR",
        "lines": [
            {"product_id": "fries", "variant_id": "medium", "quantity": 1, "unit_price": price}
        ],
        "total": price,
        "payments": [{"mode": "PREPAID", "amount": price}],
    }


async def test_86_travels_the_fast_path(
    demo_host: HostHarness, simulator: RunningSimulator
) -> None:
    fetches = await settle(simulator, "downtown")
    _, report = await demo_host.request("GET", "/v1/locations/downtown/menu/report")
    version, menu = await menu_with_version(demo_host, "downtown")
    assert version == 1
    assert next(p for p in menu.products if p.id == "fries").availability.available

    simulator.set_availability("downtown", item="fries", available=False, reason="fryer broken")
    menu = await wait_for_version(demo_host, "downtown", 2)
    fries = next(p for p in menu.products if p.id == "fries")
    assert not fries.availability.available
    assert fries.availability.reason == "fryer broken"

    await demo_host.wait_for_events(lambda _: bool(published(demo_host, "downtown", 2)))
    [event] = published(demo_host, "downtown", 2)
    notice = event["notice"]
    assert notice["previous_version"] == 1
    assert [
        (
            c["location"],
            c["product_id"],
            c["availability"]["available"],
            c["availability"]["reason"],
        )
        for c in notice["availability"]
    ] == [("downtown", "fries", False, "fryer broken")]

    # The fast path did not fetch the POS's menu: no GET /menu, no new sync report.
    assert simulator.core.menu_requests["downtown"] == fetches
    _, report_after = await demo_host.request("GET", "/v1/locations/downtown/menu/report")
    assert report_after["checked_at"] == report["checked_at"]

    status, problem = await demo_host.post_order(fries_order("fries-86", menu))
    assert status == 422, problem
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [("lines[0]", "unavailable")]

    simulator.set_availability("downtown", item="fries", available=True)
    menu = await wait_for_version(demo_host, "downtown", 3)
    assert next(p for p in menu.products if p.id == "fries").availability.available
    await demo_host.wait_for_events(lambda _: bool(published(demo_host, "downtown", 3)))
    [event] = published(demo_host, "downtown", 3)
    assert event["notice"]["previous_version"] == 2
    assert [c["availability"]["available"] for c in event["notice"]["availability"]] == [True]
    assert simulator.core.menu_requests["downtown"] == fetches

    status, accepted = await demo_host.post_order(fries_order("fries-back", menu))
    assert status == 202, accepted

"""End to end: an item 86'd on the POS reaches the live menu and the cloud without a menu fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import NO_PERIODIC_SYNC, POS_WEBHOOK_SECRET, demo_connection, restarted_host

from pos_demo.simulator import RunningSimulator
from posintegrator.model import Menu
from posintegrator.runtime.host import Host
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


@pytest.fixture
async def quiet_host(tmp_path: Path, simulator: RunningSimulator) -> AsyncIterator[HostHarness]:
    """A host with the demo plugin whose scheduler fetches no menu by itself during the test
    (see :func:`restarted_host`): any fetch the test sees would be one the 86 caused."""

    async def connect(host: Host) -> None:
        simulator.set_webhook(
            host.connections["demo"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
        )

    connection = demo_connection(simulator, menu_sync_seconds=NO_PERIODIC_SYNC)
    async with restarted_host(tmp_path, [connection], after_start=connect) as harness:
        yield harness


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
    quiet_host: HostHarness, simulator: RunningSimulator
) -> None:
    fetches = simulator.core.menu_requests["downtown"]
    _, report = await quiet_host.request("GET", "/v1/locations/downtown/menu/report")
    version, menu = await menu_with_version(quiet_host, "downtown")
    assert version == 1
    assert next(p for p in menu.products if p.id == "fries").availability.available

    simulator.set_availability("downtown", item="fries", available=False, reason="fryer broken")
    menu = await wait_for_version(quiet_host, "downtown", 2)
    fries = next(p for p in menu.products if p.id == "fries")
    assert not fries.availability.available
    assert fries.availability.reason == "fryer broken"

    await quiet_host.wait_for_events(lambda _: bool(published(quiet_host, "downtown", 2)))
    [event] = published(quiet_host, "downtown", 2)
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
    _, report_after = await quiet_host.request("GET", "/v1/locations/downtown/menu/report")
    assert report_after["checked_at"] == report["checked_at"]

    status, problem = await quiet_host.post_order(fries_order("fries-86", menu))
    assert status == 422, problem
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [("lines[0]", "unavailable")]

    simulator.set_availability("downtown", item="fries", available=True)
    menu = await wait_for_version(quiet_host, "downtown", 3)
    assert next(p for p in menu.products if p.id == "fries").availability.available
    await quiet_host.wait_for_events(lambda _: bool(published(quiet_host, "downtown", 3)))
    [event] = published(quiet_host, "downtown", 3)
    assert event["notice"]["previous_version"] == 2
    assert [c["availability"]["available"] for c in event["notice"]["availability"]] == [True]
    assert simulator.core.menu_requests["downtown"] == fetches

    status, accepted = await quiet_host.post_order(fries_order("fries-back", menu))
    assert status == 202, accepted

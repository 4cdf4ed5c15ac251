"""Menu sync: publish on change only, keep the last good menu, run broadcast hooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakepos import ScriptedPos

from posintegrator.hookspecs import hookimpl
from posintegrator.menus.sync import MenuRejected
from posintegrator.model import Menu, OrderStatus, StatusEvent
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order


class DeliveryMarkup:
    """An extension plugin: adds 10 % to every price of the 'default' list."""

    @hookimpl
    def posintegrator_transform_menu(self, menu: Menu, location: str, connection: str) -> None:
        for product in menu.products:
            for variant in product.variants:
                variant.prices = {
                    name: amount * 11 // 10 for name, amount in variant.prices.items()
                }


class Observer:
    """An extension plugin that records status changes (async, as observers may be)."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []

    @hookimpl
    async def posintegrator_order_status_changed(
        self, order_id: str, old: OrderStatus, new: OrderStatus, event: StatusEvent
    ) -> None:
        self.changes.append((order_id, old.value, new.value))


def connection(**overrides: Any) -> ConnectionSettings:
    values: dict[str, Any] = {
        "name": "fake",
        "plugin": "fake",
        "locations": ["loc"],
        "status_source": "polling",
        "menu_sync_seconds": 3600,
    }
    values.update(overrides)
    return ConnectionSettings(**values)


@pytest.fixture
def fake() -> ScriptedPos:
    return ScriptedPos()


@pytest.fixture
async def host(tmp_path: Path, fake: ScriptedPos) -> AsyncIterator[HostHarness]:
    async with running_host(
        tmp_path, [connection()], plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        yield harness


async def test_publishes_only_when_the_menu_changes(host: HostHarness, fake: ScriptedPos) -> None:
    sync = host.host.connections["fake"].menusync
    first = await host.host.live_menus.get("loc")  # published when the host started
    assert first is not None and first.snapshot.version == 1
    assert await sync.sync("loc") is None, "same content: nothing to publish"
    changed = one_product_menu("loc")
    changed.products[0].variants[0].prices["default"] = 550
    fake.menus["loc"] = changed
    second = await sync.sync("loc")
    assert second is not None and second.version == 2
    menu = await host.wait_for_menu("loc")
    assert menu.products[0].variants[0].prices == {"default": 550}
    events = await host.wait_for_events(
        lambda evs: [e.get("version") for e in evs if e["type"] == "menu.published"] == [1, 2]
    )
    assert [e["content_hash"] for e in events if e["type"] == "menu.published"] == [
        first.snapshot.content_hash,
        second.content_hash,
    ]
    [notice] = [e["notice"] for e in events if e.get("version") == 2]
    assert notice["previous_version"] == 1
    assert notice["changes"] == {"added": 0, "removed": 0, "changed": 1}


async def test_an_invalid_menu_is_refused_and_the_last_good_one_stays(
    host: HostHarness, fake: ScriptedPos
) -> None:
    sync = host.host.connections["fake"].menusync
    broken = one_product_menu("loc")
    broken.products[0].modifier_group_ids = ["no-such-group"]
    fake.menus["loc"] = broken
    with pytest.raises(MenuRejected) as info:
        await sync.sync("loc")
    assert info.value.findings[0].path == "products[0].modifier_group_ids"
    menu = await host.wait_for_menu("loc")
    assert menu.products[0].modifier_group_ids == []
    _, body = await host.request("GET", "/v1/connections")
    [state] = body["connections"][0]["menu_syncs"]
    assert state["ok"] is False and state["version"] == 1
    assert "no-such-group" in state["error"]


async def test_periodic_sync_picks_up_changes_by_itself(tmp_path: Path) -> None:
    fake = ScriptedPos()
    async with running_host(
        tmp_path,
        [connection(menu_sync_seconds=0.2)],
        plugins=PluginHost.from_objects({"fake": fake}),
    ) as harness:
        await harness.wait_for_menu("loc")
        changed = one_product_menu("loc")
        changed.products[0].name = "Burger Deluxe"
        fake.menus["loc"] = changed
        await harness.wait_for_events(
            lambda evs: 2 in [e.get("version") for e in evs if e["type"] == "menu.published"]
        )
        assert (await harness.wait_for_menu("loc")).products[0].name == "Burger Deluxe"


async def test_broadcast_hooks_transform_menus_and_observe_status(tmp_path: Path) -> None:
    fake = ScriptedPos()
    observer = Observer()
    plugins = PluginHost.from_objects({"fake": fake, "markup": DeliveryMarkup(), "obs": observer})
    async with running_host(tmp_path, [connection()], plugins=plugins) as harness:
        await harness.host.connections["fake"].menusync.sync("loc")
        menu = await harness.wait_for_menu("loc")
        assert menu.products[0].variants[0].prices == {"default": 550}
        status, _ = await harness.post_order(sample_order(menu, "obs-1"))
        assert status == 202, "priced from the published (marked-up) menu"
        await harness.wait_for_status("obs-1", {OrderStatus.ACCEPTED})
        assert observer.changes[:2] == [
            ("obs-1", "RECEIVED", "SUBMITTING"),
            ("obs-1", "SUBMITTING", "ACCEPTED"),
        ]


async def test_menu_change_notices_are_debounced_into_one_sync(tmp_path: Path) -> None:
    fake = ScriptedPos()
    async with running_host(
        tmp_path,
        [connection(menu_resync_debounce_seconds=0.3)],
        plugins=PluginHost.from_objects({"fake": fake}),
    ) as harness:
        jobs = harness.host.connections["fake"]
        await asyncio.sleep(5.5)  # past the scheduler's own first sync
        before = fake.menu_fetches
        for _ in range(5):
            jobs.request_menu_sync(["loc"])
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.8)
        assert fake.menu_fetches == before + 1, "five notices in a burst, one sync"


async def test_after_a_restart_first_syncs_spread_over_the_period(tmp_path: Path) -> None:
    from posintegrator.runtime.scheduler import FIRST_SYNC_SPREAD_SECONDS, ConnectionJobs

    fake = ScriptedPos()
    settings = [connection(locations=[f"loc-{i}" for i in range(40)])]
    async with running_host(
        tmp_path, settings, plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        jobs: ConnectionJobs = harness.host.connections["fake"]
        await asyncio.sleep(FIRST_SYNC_SPREAD_SECONDS + 0.5)  # the host's own first syncs
        # Every location has its menu now: a restart's loop spreads its first syncs over the
        # whole period (2 s here) instead of firing them all at once.
        jobs.connection.settings.menu_sync_seconds = 2.0
        fake.menu_fetches = 0
        loop_task = asyncio.create_task(jobs.menu_loop())
        await asyncio.sleep(0.5)
        early = fake.menu_fetches
        await asyncio.sleep(1.8)
        loop_task.cancel()
        assert 0 < early < 25, f"{early} of 40 first syncs in the first quarter of the period"
        assert fake.menu_fetches >= 35

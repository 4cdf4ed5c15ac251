"""Menu sync: publish on change only, keep the last good menu, run broadcast hooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakepos import ScriptedPos
from helpers import NO_PERIODIC_SYNC, eventually, restarted_host

from posintegrator.context import ConnectionContext
from posintegrator.hookspecs import hookimpl
from posintegrator.menus.sync import MenuRejected
from posintegrator.model import LeftOut, Menu, OrderStatus, StatusEvent
from posintegrator.plugins import PluginHost
from posintegrator.runtime.scheduler import ConnectionJobs
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
    """A host whose scheduler syncs no menu during the test: only the test's syncs run."""
    async with restarted_host(
        tmp_path,
        [connection(menu_sync_seconds=NO_PERIODIC_SYNC)],
        plugins=PluginHost.from_objects({"fake": fake}),
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
    # (Version 1 was published by the host's first run, whose cloud may or may not have heard
    # of it before that run stopped; this run's cloud hears of version 2 once.)
    events = await host.wait_for_events(
        lambda evs: 2 in [e.get("version") for e in evs if e["type"] == "menu.published"]
    )
    [published] = [e for e in events if e["type"] == "menu.published" and e["version"] == 2]
    assert published["content_hash"] == second.content_hash != first.snapshot.content_hash
    notice = published["notice"]
    assert notice["previous_version"] == 1
    assert notice["changes"] == {"added": 0, "removed": 0, "changed": 1}


async def test_what_the_plugin_left_out_is_reported_but_never_published(
    host: HostHarness, fake: ScriptedPos
) -> None:
    sync = host.host.connections["fake"].menusync
    first = await host.host.live_menus.get("loc")
    assert first is not None
    menu = one_product_menu("loc")
    menu.left_out = [
        LeftOut(kind="item", pos_id="I-9", name="Fish of the day", reason="priced at the till"),
        LeftOut(kind="text modifier list", pos_id="T-1", reason="free text"),
    ]
    fake.menus["loc"] = menu
    assert await sync.sync("loc") is None, "what was left out changes nothing published"
    _, report = await host.request("GET", "/v1/locations/loc/menu/report")
    assert report["outcome"] == "unchanged" and report["errors"] == 0
    left_out = [f for f in report["findings"] if f["code"] == "left_out"]
    assert report["warnings"] == len(report["findings"]) >= 2
    assert [(f["severity"], f["code"], f["path"], f["message"]) for f in left_out] == [
        (
            "warning",
            "left_out",
            "left_out[I-9]",
            "item 'Fish of the day' (I-9) is not in the menu: priced at the till",
        ),
        (
            "warning",
            "left_out",
            "left_out[T-1]",
            "text modifier list 'T-1' is not in the menu: free text",
        ),
    ]
    _, served = await host.request("GET", "/v1/locations/loc/menu")
    assert "left_out" not in served and "I-9" not in str(served)
    # A menu the checks refuse still names what was left out, after the errors.
    menu.products[0].modifier_group_ids = ["no-such-group"]
    with pytest.raises(MenuRejected):
        await sync.sync("loc")
    _, report = await host.request("GET", "/v1/locations/loc/menu/report")
    codes = [f["code"] for f in report["findings"]]
    assert codes[0] == "unknown_reference" and codes[-2:] == ["left_out", "left_out"]


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
    settings = [
        connection(menu_sync_seconds=NO_PERIODIC_SYNC, menu_resync_debounce_seconds=2.0),
    ]
    async with restarted_host(
        tmp_path, settings, plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        jobs = harness.host.connections["fake"]
        before = fake.menu_fetches  # the scheduler syncs nothing by itself during this test
        # Five notices over about 0.1 s, well inside the 2 s debounce window.
        for _ in range(5):
            jobs.request_menu_sync(["loc"])
            await asyncio.sleep(0.02)

        async def synced() -> bool:
            return fake.menu_fetches > before

        await eventually(synced, timeout=20)
        # Without the debounce, each notice would have started its own sync at once.
        await asyncio.sleep(1.0)
        assert fake.menu_fetches == before + 1, "five notices in a burst, one sync"


async def test_a_change_notice_during_a_sync_leads_to_another_sync(tmp_path: Path) -> None:
    """A notice that arrives while a sync is fetching may be about a change that fetch missed:
    it must bring another sync, not wait for the next period."""
    fake = ScriptedPos()
    settings = [
        connection(menu_sync_seconds=NO_PERIODIC_SYNC, menu_resync_debounce_seconds=0.05),
    ]
    async with restarted_host(
        tmp_path, settings, plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        jobs = harness.host.connections["fake"]
        before = fake.menu_fetches
        fake.menu_gate = asyncio.Event()
        jobs.request_menu_sync(["loc"])

        async def fetching() -> bool:
            return fake.menu_fetches == before + 1

        await eventually(fetching)  # the sync has taken the menu; its answer is held
        changed = one_product_menu("loc")
        changed.products[0].name = "Burger Deluxe"
        fake.menus["loc"] = changed
        jobs.request_menu_sync(["loc"])
        fake.menu_gate.set()
        await harness.wait_for_events(
            lambda evs: 2 in [e.get("version") for e in evs if e["type"] == "menu.published"],
            timeout=20,
        )
        assert (await harness.wait_for_menu("loc")).products[0].name == "Burger Deluxe"
        assert fake.menu_fetches == before + 2


@dataclass(eq=False)
class ClockedPos(ScriptedPos):
    """The scripted POS, noting when (event loop time) it last served each location's menu."""

    fetched_at: dict[str, float] = field(default_factory=dict)

    @hookimpl
    async def pos_fetch_menu(self, ctx: ConnectionContext, location: str) -> Menu:
        self.fetched_at[location] = asyncio.get_running_loop().time()
        return await super().pos_fetch_menu(ctx, location)


async def test_after_a_restart_first_syncs_spread_over_the_period(tmp_path: Path) -> None:
    fake = ClockedPos()
    locations = [f"loc-{i}" for i in range(40)]
    settings = [connection(locations=locations, menu_sync_seconds=NO_PERIODIC_SYNC)]
    async with restarted_host(
        tmp_path, settings, plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        jobs: ConnectionJobs = harness.host.connections["fake"]
        # Every location has its menu: a restart's loop spreads its first syncs over the whole
        # period instead of firing them all at once. The host's own loop syncs nothing now;
        # a second one, with a 6 s period, plays the restart.
        period = 6.0
        jobs.connection.settings.menu_sync_seconds = period
        fake.fetched_at.clear()
        started = asyncio.get_running_loop().time()
        loop_task = asyncio.create_task(jobs.menu_loop())

        async def all_synced() -> bool:
            return len(fake.fetched_at) == len(locations)

        try:
            await eventually(all_synced, timeout=period + 30)
        finally:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        # A sync never runs before it is due, so a slow machine can only make these later.
        offsets = sorted(at - started for at in fake.fetched_at.values())
        early = sum(1 for offset in offsets if offset < period / 4)
        assert early < 25, f"{early} of 40 first syncs in the first quarter of the period"
        assert offsets[-1] >= period / 2, f"all 40 first syncs within {offsets[-1]:.2f} s"

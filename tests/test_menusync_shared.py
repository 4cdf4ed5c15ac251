"""Menus of several locations from one fetch (``pos_fetch_menus``): checked once, published
under each location, held once in memory; transforms still see each location on its own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import NO_PERIODIC_SYNC, eventually, restarted_host
from pydantic import BaseModel

from posintegrator.context import ConnectionContext
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import Capabilities, SharedMenu
from posintegrator.menus import sync as menusync
from posintegrator.menus.checked import CheckedMenu, ProductMemo, check_fetched, content_hash
from posintegrator.menus.sync import MenuRejected
from posintegrator.model import Menu, Product
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.store import MenuSnapshot
from posintegrator.testing import HostHarness, one_product_menu, running_host

LOCATIONS = ["north", "south", "east"]


class ChainSettings(BaseModel):
    """Settings of the chain POS (none needed)."""


@dataclass(eq=False)
class ChainPos:
    """A POS with one catalog for every location: one menu, shared by all of them."""

    fetches: list[list[str]] = field(default_factory=list)
    price: int = 500
    cover: list[str] | None = None  # answer for these locations instead (a buggy plugin)
    last: list[SharedMenu] | None = None
    unchanged: bool = False  # answer with the very objects of the last fetch

    @hookimpl
    def pos_settings_model(self) -> type[BaseModel]:
        return ChainSettings

    @hookimpl
    def pos_capabilities(self) -> Capabilities:
        return Capabilities(
            menu=True,
            orders=False,
            order_lookup=False,
            idempotent_submit=False,
            status_webhooks=False,
            status_polling=False,
        )

    @hookimpl
    async def pos_fetch_menu(self, ctx: ConnectionContext, location: str) -> Menu:
        raise AssertionError("the host must use pos_fetch_menus")

    @hookimpl
    async def pos_fetch_menus(
        self, ctx: ConnectionContext, locations: list[str]
    ) -> list[SharedMenu]:
        self.fetches.append(list(locations))
        if self.unchanged and self.last is not None:
            return self.last
        menu = one_product_menu(locations[0])
        menu.products[0].variants[0].prices = {"default": self.price}
        self.last = [SharedMenu(self.cover or list(locations), menu)]
        return self.last


class Exclaim:
    """An extension plugin whose change would pile up if it ever saw the same menu twice."""

    @hookimpl
    def posintegrator_transform_menu(self, menu: Menu, location: str, connection: str) -> None:
        for product in menu.products:
            product.name += "!"


class LocationTag:
    """An extension plugin naming the location in every product's description."""

    @hookimpl
    def posintegrator_transform_menu(self, menu: Menu, location: str, connection: str) -> None:
        for product in menu.products:
            product.description = f"at {location}"


def connection(**overrides: Any) -> ConnectionSettings:
    values: dict[str, Any] = {
        "name": "chain",
        "plugin": "chain",
        "locations": LOCATIONS,
        "menu_sync_seconds": NO_PERIODIC_SYNC,
    }
    values.update(overrides)
    return ConnectionSettings(**values)


@pytest.fixture
def pos() -> ChainPos:
    return ChainPos()


@pytest.fixture
async def host(tmp_path: Path, pos: ChainPos) -> AsyncIterator[HostHarness]:
    async with restarted_host(
        tmp_path, [connection()], plugins=PluginHost.from_objects({"chain": pos})
    ) as harness:
        yield harness


def test_a_body_for_each_location_is_the_canonical_json_of_its_menu() -> None:
    menu = one_product_menu("north")
    checked = CheckedMenu.of(menu, [])
    for location in ("north", "a-much-longer-location-id", 'quote"d'):
        expected = orjson.dumps(
            checked.menu_of(location).model_dump(mode="json"), option=orjson.OPT_SORT_KEYS
        )
        assert checked.shared_body().of(location) == expected


def three_products(prices: tuple[int, int, int]) -> Menu:
    """A menu of three products, built afresh (new objects) each time."""
    menu = one_product_menu("north")
    template = menu.products[0]
    menu.products = [
        template.model_copy(
            update={
                "id": f"p{n}",
                "variants": [template.variants[0].model_copy(update={"prices": {"default": p}})],
            },
            deep=True,
        )
        for n, p in enumerate(prices)
    ]
    return Menu.model_validate(menu.model_dump())


def test_products_equal_to_ones_checked_before_are_not_checked_again() -> None:
    memo = ProductMemo()
    first = check_fetched(three_products((100, 200, 300)), memo)
    memo.end_round()
    again = three_products((100, 201, 300))  # new objects; one price differs
    second = check_fetched(again, memo)
    reused = [a is b for a, b in zip(first.menu.products, second.menu.products, strict=True)]
    assert reused == [True, False, True]
    fresh = check_fetched(three_products((100, 201, 300)))
    assert second.dumped == fresh.dumped
    assert second.content_hash == fresh.content_hash == content_hash(again)
    assert second.shared_body().of("north") == fresh.shared_body().of("north")
    # Rounds that checked nothing forget nothing; two rounds without a product forget it.
    memo.end_round()
    memo.end_round()
    assert memo.checked(again.products[0].model_dump(mode="json")) is not None
    memo.end_round()
    for _ in range(2):
        check_fetched(one_product_menu("north"), memo)
        memo.end_round()
    assert memo.checked(again.products[0].model_dump(mode="json")) is None


def test_product_objects_a_plugin_hands_out_again_are_not_even_dumped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = ProductMemo()
    menu = three_products((100, 200, 300))
    first = check_fetched(menu, memo, unchanged_objects=True)
    memo.end_round()
    again = menu.model_copy(update={"products": list(menu.products)})  # the same products
    dumped: list[str] = []
    dump = Product.model_dump

    def spy(self: Product, *args: Any, **kwargs: Any) -> dict[str, Any]:
        dumped.append(self.id)
        return dump(self, *args, **kwargs)

    monkeypatch.setattr(Product, "model_dump", spy)
    second = check_fetched(again, memo, unchanged_objects=True)
    assert dumped == []
    assert all(a is b for a, b in zip(first.menu.products, second.menu.products, strict=True))
    assert second.content_hash == first.content_hash
    # Without that promise (a transform may have changed them), each is compared by its JSON.
    check_fetched(again, memo)
    assert sorted(dumped) == ["p0", "p1", "p2"]


def test_a_product_offered_differently_by_two_menus_is_kept_in_both_versions() -> None:
    memo = ProductMemo()
    shared = check_fetched(three_products((100, 200, 300)), memo)
    own = check_fetched(three_products((100, 999, 300)), memo)  # a location's own
    memo.end_round()
    again_shared = check_fetched(three_products((100, 200, 300)), memo)
    again_own = check_fetched(three_products((100, 999, 300)), memo)
    assert again_shared.menu.products[1] is shared.menu.products[1]
    assert again_own.menu.products[1] is own.menu.products[1]


def test_a_product_made_invalid_is_not_taken_for_the_valid_one_it_equalled() -> None:
    memo = ProductMemo()
    menu = three_products((100, 200, 300))
    check_fetched(menu, memo)
    # A transform writing past validation (as a buggy extension plugin can).
    menu.products[1].variants[0].__dict__["prices"] = {"default": -5}
    checked = check_fetched(menu, memo)
    assert checked.content_hash == ""
    assert [f.path for f in checked.findings if f.severity.name == "ERROR"] == [
        "products[1].variants[0].prices.default"
    ]


async def test_locations_sharing_a_menu_store_one_body_and_serve_their_own(
    tmp_path: Path, pos: ChainPos
) -> None:
    """One body per content, however many locations publish it, read back after a restart as
    each location's own canonical JSON."""
    async with restarted_host(
        tmp_path, [connection()], plugins=PluginHost.from_objects({"chain": pos})
    ) as harness:
        pos.price = 700
        results = await harness.host.connections["chain"].menusync.sync_locations(LOCATIONS)
        assert all(isinstance(r, MenuSnapshot) for r in results.values())
    with sqlite3.connect(tmp_path / "host.db") as db:
        # The first run's menu and the one at 700: two bodies for six versions.
        assert db.execute("SELECT COUNT(*) FROM menu_bodies").fetchone() == (2,)
        assert db.execute("SELECT COUNT(*) FROM menus").fetchone() == (6,)
        assert db.execute("SELECT MAX(length(body)) FROM menus").fetchone() == (0,)
    async with running_host(
        tmp_path, [connection()], plugins=PluginHost.from_objects({"chain": pos})
    ) as harness:
        for location in LOCATIONS:
            status, body = await harness.request("GET", f"/v1/locations/{location}/menu")
            assert status == 200
            menu = Menu.model_validate(body)
            assert menu.location == location
            assert menu.products[0].variants[0].prices == {"default": 700}
            live = await harness.host.live_menus.get(location)
            assert live is not None
            canonical = orjson.dumps(menu.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
            assert live.snapshot.body == canonical


async def test_one_fetch_publishes_every_location_with_its_own_id(
    host: HostHarness, pos: ChainPos
) -> None:
    pos.fetches.clear()
    pos.price = 700
    results = await host.host.connections["chain"].menusync.sync_locations(LOCATIONS)
    assert pos.fetches == [LOCATIONS]
    assert all(r is not None and not isinstance(r, MenuRejected) for r in results.values())
    lives = [await host.host.live_menus.get(location) for location in LOCATIONS]
    for location, live in zip(LOCATIONS, lives, strict=True):
        assert live is not None
        menu = await host.wait_for_menu(location)
        assert menu.location == location
        assert menu.products[0].variants[0].prices == {"default": 700}
        assert live.menu.location == location
        assert live.index.menu is live.menu
    # One content, one hash, one parsed copy of its entities for all three.
    assert len({live.snapshot.content_hash for live in lives if live}) == 1
    first = lives[0]
    assert first is not None
    assert all(live is not None and live.index.products is first.index.products for live in lives)
    assert first.snapshot.content_hash == content_hash(first.menu)


async def test_each_location_hears_what_changed_in_a_round_after_a_price_change(
    host: HostHarness, pos: ChainPos
) -> None:
    """The notice's counts, worked out from the JSON kept since the last round's checks."""
    sync = host.host.connections["chain"].menusync
    pos.price = 640
    await sync.sync_locations(LOCATIONS)
    pos.price = 650
    results = await sync.sync_locations(LOCATIONS)
    versions = {location: r.version for location, r in results.items() if r is not None}
    assert set(versions) == set(LOCATIONS)

    def published(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            e
            for e in events
            if e["type"] == "menu.published" and e["version"] == versions[e["location"]]
        ]

    events = await host.wait_for_events(lambda evs: len(published(evs)) == len(LOCATIONS))
    for event in published(events):
        assert event["notice"]["changes"] == {"added": 0, "removed": 0, "changed": 1}


async def test_the_locations_of_a_shared_menu_are_published_together(
    tmp_path: Path, pos: ChainPos
) -> None:
    """After the first location, the others' versions go to the store at once (it writes
    them in a few transactions, not one each)."""
    many = [f"loc-{n:02d}" for n in range(10)]
    async with restarted_host(
        tmp_path, [connection(locations=many)], plugins=PluginHost.from_objects({"chain": pos})
    ) as harness:
        store = harness.host.store
        publish = store.publish_menu
        pending = [0]
        most = [0]

        async def counting(*args: Any, **kwargs: Any) -> MenuSnapshot | None:
            pending[0] += 1
            most[0] = max(most[0], pending[0])
            try:
                return await publish(*args, **kwargs)
            finally:
                pending[0] -= 1

        store.publish_menu = counting  # type: ignore[method-assign]
        sync = harness.host.connections["chain"].menusync
        for price in (710, 720):
            pos.price = price
            most[0] = 0
            results = await sync.sync_locations(many)
            assert all(isinstance(r, MenuSnapshot) for r in results.values())
            assert list(results) == many
        assert most[0] == min(len(many) - 1, menusync._PUBLISHED_TOGETHER)
        for location in many:
            assert (await harness.wait_for_menu(location)).location == location


class SlowChainPos(ChainPos):
    """The chain POS, taking a moment to answer, counting how many calls overlap."""

    inside: int = 0
    most: int = 0

    @hookimpl
    async def pos_fetch_menus(
        self, ctx: ConnectionContext, locations: list[str]
    ) -> list[SharedMenu]:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await asyncio.sleep(0.02)
            return await super().pos_fetch_menus(ctx, locations)
        finally:
            self.inside -= 1


async def test_a_connections_rounds_run_one_at_a_time(tmp_path: Path) -> None:
    slow = SlowChainPos()
    async with restarted_host(
        tmp_path, [connection()], plugins=PluginHost.from_objects({"chain": slow})
    ) as harness:
        sync = harness.host.connections["chain"].menusync
        await asyncio.gather(sync.sync_locations(LOCATIONS), sync.sync("north"))
        assert slow.most == 1
        assert len(slow.fetches) >= 2


async def test_a_sync_round_of_the_scheduler_is_one_fetch(tmp_path: Path, pos: ChainPos) -> None:
    async with running_host(
        tmp_path,
        [connection(menu_sync_seconds=3600)],
        plugins=PluginHost.from_objects({"chain": pos}),
    ) as harness:
        for location in LOCATIONS:
            await harness.wait_for_menu(location)
        assert pos.fetches == [LOCATIONS]
        # A change notice for one location: one more round, still one fetch for all.
        harness.host.connections["chain"].request_menu_sync(["south"])

        async def fetched_again() -> bool:
            return len(pos.fetches) == 2

        await eventually(fetched_again)
        assert pos.fetches[1] == LOCATIONS


async def test_transforms_see_each_location_on_its_own(tmp_path: Path, pos: ChainPos) -> None:
    plugins = PluginHost.from_objects({"chain": pos, "tag": LocationTag()})
    async with restarted_host(tmp_path, [connection()], plugins=plugins) as harness:
        for location in LOCATIONS:
            menu = await harness.wait_for_menu(location)
            assert menu.products[0].description == f"at {location}"


async def test_menus_not_covering_the_locations_are_a_plugin_bug(
    host: HostHarness, pos: ChainPos
) -> None:
    pos.cover = ["north", "south"]
    pos.price = 900
    sync = host.host.connections["chain"].menusync
    with pytest.raises(Exception, match="asked for"):
        await sync.sync_locations(LOCATIONS)
    for location in LOCATIONS:  # nothing half-published
        menu = await host.wait_for_menu(location)
        assert menu.products[0].variants[0].prices != {"default": 900}
    status, report = await host.request("GET", "/v1/locations/east/menu/report")
    assert status == 200
    assert report["outcome"] == "fetch_failed"
    assert "asked for" in report["detail"]


async def test_the_same_menu_objects_again_are_not_checked_again(
    host: HostHarness, pos: ChainPos, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin answering a round with the very objects of its last answer (nothing changed),
    or with a menu equal to it, spares the host checking and hashing them; any other answer
    is checked."""
    checked: list[Menu] = []
    check = menusync.check_fetched

    def counting(menu: Menu, memo: ProductMemo | None = None, **options: Any) -> CheckedMenu:
        checked.append(menu)
        return check(menu, memo, **options)

    monkeypatch.setattr(menusync, "check_fetched", counting)
    sync = host.host.connections["chain"].menusync
    pos.price = 610
    await sync.sync_locations(LOCATIONS)
    assert len(checked) == 1
    pos.unchanged = True
    results = await sync.sync_locations(LOCATIONS)
    assert len(checked) == 1
    assert results == dict.fromkeys(LOCATIONS)  # nothing new published
    status, report = await host.request("GET", "/v1/locations/east/menu/report")
    assert (status, report["outcome"]) == (200, "unchanged")
    pos.unchanged = False
    pos.price = 620  # new objects: checked, and published
    results = await sync.sync_locations(LOCATIONS)
    assert len(checked) == 2
    for location in LOCATIONS:
        menu = await host.wait_for_menu(location)
        assert menu.products[0].variants[0].prices == {"default": 620}
    # New objects equal to the last (a full read of an unchanged catalog): not checked again.
    results = await sync.sync_locations(LOCATIONS)
    assert (len(checked), results) == (2, dict.fromkeys(LOCATIONS))


async def test_a_transform_never_changes_the_menu_the_plugin_returned(
    tmp_path: Path, pos: ChainPos
) -> None:
    """The plugin may return the same objects next round: transforms work on copies."""
    plugins = PluginHost.from_objects({"chain": pos, "exclaim": Exclaim()})
    pos.unchanged = True
    for locations in (["north"], LOCATIONS):  # a menu of one location, and a shared one
        pos.last = None
        settings = connection(locations=locations)
        async with restarted_host(tmp_path / locations[-1], [settings], plugins=plugins) as host:
            sync = host.host.connections["chain"].menusync
            for _ in range(2):
                await sync.sync_locations(locations)
            assert pos.last is not None
            assert not pos.last[0].menu.products[0].name.endswith("!")
            for location in locations:
                menu = await host.wait_for_menu(location)
                assert menu.products[0].name.count("!") == 1

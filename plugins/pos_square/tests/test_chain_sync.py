"""A chain's menus from one catalog read, and resyncs that read only what changed.

Against the Square double (every request and answer checked against Square's spec): a sync
round of a 3-location connection reads the catalog once, a price change costs one incremental
read, and after random sequences of catalog edits the menus from the kept catalog equal those
of a full read.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger
from spec import SquareSpec
from squaredouble import RunningDouble, start_double
from test_integration import SIGNATURE_KEY, _point_webhooks, _square_connection

from pos_square.kept_catalog import KEY
from pos_square.plugin import pos_fetch_menus
from pos_square.settings import SquareSettings
from posintegrator.context import ConnectionContext
from posintegrator.hooktypes import SharedMenu
from posintegrator.testing.harness import HostHarness, running_host

#: As tests/helpers.py: the scheduler syncs no menu by itself while the test runs.
NO_PERIODIC_SYNC = 1e9
LOCATIONS = ("L1NORTH", "L2SOUTH", "L3EAST")
SEARCH = "/v2/catalog/search"


class MemoryState:
    """The plugin state a host keeps for a connection, in memory."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads: list[str] = []

    async def get(self, key: str) -> str | None:
        self.reads.append(key)
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


def calls(double: RunningDouble, path: str) -> int:
    return sum(1 for _method, seen, _status in double.double.requests if seen == path)


def search_pages(double: RunningDouble) -> int:
    """The SearchCatalogObjects pages of one full read (1,000 objects a page)."""
    kinds = {"ITEM", "CATEGORY", "TAX", "MODIFIER_LIST", "IMAGE", "ITEM_OPTION"}
    live = [
        o for o in double.double.catalog.objects if o["type"] in kinds and not o.get("is_deleted")
    ]
    return -(-len(live) // 1000)


def variation_prices(menu: Any) -> dict[str, int]:
    return {v.pos_id: v.prices["square"] for p in menu.products for v in p.variants}


async def wait_for_price(
    harness: HostHarness, location: str, variation: str, amount: int, timeout: float = 300.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        menu = await harness.wait_for_menu(location)
        if variation_prices(menu).get(variation) == amount:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{location}: price of {variation} never became {amount}")
        await asyncio.sleep(0.05)


async def test_a_sync_round_reads_the_catalog_once_for_three_locations(tmp_path: Path) -> None:
    double = await start_double(variations=2500, locations=LOCATIONS, signature_key=SIGNATURE_KEY)
    # Generous: the double checks every 1,000-object page against Square's spec, which takes a
    # while on a busy machine; a timeout would make the plugin read again.
    settings = _square_connection(
        double, {"request_timeout_seconds": 300.0}, menu_sync_seconds=NO_PERIODIC_SYNC
    )
    connect = functools.partial(_point_webhooks, double)
    try:
        async with running_host(tmp_path, [settings], after_start=connect):
            pass  # publishes every menu; the scheduler then syncs only when told
        async with running_host(tmp_path, [settings], after_start=connect) as harness:
            jobs = harness.host.connections["square"]
            await jobs.connection.ctx.state.delete(KEY)  # nothing kept: a full read
            double.double.requests.clear()
            results = await jobs.menusync.sync_locations(list(LOCATIONS))
            assert all(not isinstance(r, Exception) for r in results.values())
            pages = search_pages(double)
            assert pages >= 2
            # One round: the pages of one full read, one ListLocations; nothing per location.
            assert calls(double, SEARCH) == pages
            assert calls(double, "/v2/locations") == 1
            assert len(double.double.requests) == pages + 1
            menus = {loc: await harness.wait_for_menu(loc) for loc in LOCATIONS}
            # The locations' menus differ where the catalog says so (presence, overrides).
            assert len({orjson.dumps(variation_prices(m)) for m in menus.values()}) > 1

            # A price change: Square's webhook starts a round, which reads only what changed.
            variation = next(iter(variation_prices(menus[LOCATIONS[0]])))
            double.double.set_price(variation, 4321)
            for location in LOCATIONS:
                if variation in variation_prices(menus[location]):
                    await wait_for_price(harness, location, variation, 4321)
            assert calls(double, SEARCH) == pages + 1
            assert calls(double, "/v2/locations") == 2
            double.assert_clean()
    finally:
        await double.close()


# ---------------------------------------------------------------------------------------------
# Incremental resync == full read, after random edits
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def double(square_spec: SquareSpec) -> AsyncIterator[RunningDouble]:
    running = await start_double(variations=80, locations=LOCATIONS, spec=square_spec)
    try:
        yield running
    finally:
        await running.close()


def context(
    http: aiohttp.ClientSession,
    double: RunningDouble,
    state: MemoryState,
    name: str = "square-chain",
) -> Any:
    return ConnectionContext(
        name=name,
        plugin="square",
        locations=(*LOCATIONS, "L4WEST"),
        settings=SquareSettings(
            base_url=double.url,
            access_token=next(iter(double.double.access_tokens)),
            location_ids={"L4WEST": LOCATIONS[2]},  # two of ours on one Square location
            request_timeout_seconds=60,
        ),
        http=http,
        log=logger,
        state=state,
        webhook_url="http://127.0.0.1/webhooks/square-chain",
    )


def as_data(menus: list[SharedMenu]) -> list[tuple[list[str], Any]]:
    return sorted((sorted(m.locations), m.menu.model_dump(mode="json")) for m in menus)


edits = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "price",
                "location_price",
                "sold_out",
                "back",
                "rename",
                "tax",
                "category",
                "modifier",
                "delete",
                "nothing",
            ]
        ),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(LOCATIONS),
    ),
    min_size=1,
    max_size=6,
)


def apply_edit(double: RunningDouble, edit: tuple[str, int, str]) -> None:
    kind, number, location = edit
    state = double.double.state
    variations = [
        o for o in state.by_id.values() if o["type"] == "ITEM_VARIATION" and not o.get("is_deleted")
    ]
    variation = variations[number % len(variations)]["id"]
    if kind == "price":
        double.double.set_price(variation, 100 + number)
    elif kind == "location_price":
        double.double.set_price(variation, 100 + number, location)
    elif kind in ("sold_out", "back"):
        double.double.set_sold_out(variation, location, kind == "sold_out")
    elif kind == "rename":  # a top-level object changes, none nested in it
        items = [o for o in state.objects if o["type"] == "ITEM" and not o.get("is_deleted")]
        item = items[number % len(items)]
        item["item_data"]["name"] = f"Renamed {number}"
        state.touch(item)
    elif kind == "tax":
        taxes = [o for o in state.objects if o["type"] == "TAX"]
        tax = taxes[number % len(taxes)]
        tax["tax_data"]["percentage"] = f"{number % 20}.5"
        state.touch(tax)
    elif kind == "category":  # context: every item in it moves
        categories = [
            o for o in state.objects if o["type"] == "CATEGORY" and not o.get("is_deleted")
        ]
        category = categories[number % len(categories)]
        category["category_data"]["name"] = f"{number} first"
        state.touch(category)
    elif kind == "modifier":  # a nested object of the context
        modifiers = [o for o in state.by_id.values() if o["type"] == "MODIFIER"]
        modifier = modifiers[number % len(modifiers)]
        modifier["modifier_data"]["price_money"] = {"amount": number, "currency": state.currency}
        state.touch(modifier)
    elif kind == "delete":
        items = [o for o in state.objects if o["type"] == "ITEM" and not o.get("is_deleted")]
        double.double.delete_object(items[number % len(items)]["id"])
    else:
        double.double.bump_catalog()


@settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=edits)
async def test_incremental_resyncs_equal_a_full_read(
    http: aiohttp.ClientSession, double: RunningDouble, edits: list[tuple[str, int, str]]
) -> None:
    kept = MemoryState()
    ctx = context(http, double, kept)
    last = await pos_fetch_menus(ctx, list(ctx.locations))
    for edit in edits:
        apply_edit(double, edit)
        searches = calls(double, SEARCH)
        incremental = await pos_fetch_menus(ctx, list(ctx.locations))
        if edit[0] not in ("delete",):
            assert calls(double, SEARCH) == searches + 1, "one incremental page per resync"
        fresh = context(http, double, MemoryState(), name="square-chain-full")
        full = await pos_fetch_menus(fresh, list(ctx.locations))
        assert as_data(incremental) == as_data(full), f"after {edit}"
        before = {id(p) for m in last for p in m.menu.products}
        products = [p for m in incremental for p in m.menu.products]
        reused = sum(id(p) in before for p in products)
        if edit[0] in ("price", "rename"):
            # One item changed: every other product is the very one made last time.
            assert len(products) - len(incremental) <= reused < len(products), f"after {edit}"
        elif edit[0] in ("location_price", "sold_out", "back"):
            # A location may now be named by the catalog: its menu is made afresh, not others.
            assert reused > 0, f"after {edit}"
        last = incremental
    assert KEY in kept.values
    double.assert_clean()


async def test_an_unchanged_catalog_gives_the_same_menus_without_reading_them(
    http: aiohttp.ClientSession, double: RunningDouble
) -> None:
    """Nothing changed since the last round: one incremental page, the kept catalog not even
    loaded, and the very same menu objects (the host then skips checking them)."""
    kept = MemoryState()
    ctx = context(http, double, kept)
    first = await pos_fetch_menus(ctx, list(ctx.locations))
    searches, kept.reads = calls(double, SEARCH), []
    again = await pos_fetch_menus(ctx, list(ctx.locations))
    assert again is first
    assert calls(double, SEARCH) == searches + 1
    assert kept.reads == [KEY]  # the kept catalog's description only, none of its chunks

    # Fewer locations, or the catalog changed: menus made anew, equal to a full read's.
    fewer = await pos_fetch_menus(ctx, list(LOCATIONS))
    assert fewer is not first
    assert sorted(loc for m in fewer for loc in m.locations) == sorted(LOCATIONS)
    variation = next(iter(variation_prices(first[0].menu)))
    double.double.set_price(variation, 777)
    changed = await pos_fetch_menus(ctx, list(LOCATIONS))
    assert changed is not fewer
    full = await pos_fetch_menus(context(http, double, MemoryState()), list(LOCATIONS))
    assert as_data(changed) == as_data(full)
    assert any(variation_prices(m.menu).get(variation) == 777 for m in changed)
    double.double.bump_catalog()  # a newer latest_time, no object changed: still right
    assert as_data(await pos_fetch_menus(ctx, list(LOCATIONS))) == as_data(full)
    double.assert_clean()

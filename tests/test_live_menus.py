"""The live menus: a stored menu is loaded off the event loop, a piece at a time, once for all
the locations asking for the same content at once, and equal to parsing it in one go."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pos_demo.simulator.menu import MenuCatalog
from pos_demo.translate import menu_from_pos
from posintegrator.menus import live
from posintegrator.menus.checked import hashed_menu
from posintegrator.menus.live import LOAD_PIECE, LiveMenus, loaded_menu
from posintegrator.model import Menu
from posintegrator.store import SQLiteStore

NOON = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
LOCATIONS = [f"store-{n}" for n in range(5)]


def big_menu(location: str) -> Menu:
    """The demo's menu with its products and modifier groups copied under new ids until each
    list is longer than two pieces of a load."""
    menu = menu_from_pos(
        MenuCatalog().menu_for("downtown", now=NOON - timedelta(hours=1)), location
    )
    products, groups = list(menu.products), list(menu.modifier_groups)
    copy = 0
    while len(products) <= 2 * LOAD_PIECE or len(groups) <= 2 * LOAD_PIECE:
        copy += 1
        products += [p.model_copy(update={"id": f"{p.id}-{copy}"}) for p in menu.products]
        groups += [g.model_copy(update={"id": f"{g.id}-{copy}"}) for g in menu.modifier_groups]
    return menu.model_copy(update={"products": products, "modifier_groups": groups})


def test_a_stored_menu_loaded_in_pieces_equals_one_parse() -> None:
    menu = big_menu("store-0")
    body = menu.model_dump_json().encode()
    loaded = loaded_menu(body)
    assert loaded == Menu.model_validate_json(body) == menu
    assert len(loaded.products) > 2 * LOAD_PIECE and len(loaded.modifier_groups) > 2 * LOAD_PIECE


def test_a_broken_stored_menu_is_refused_as_one_parse_refuses_it() -> None:
    body = big_menu("store-0").model_dump_json().encode()
    broken = body.replace(b'"currency":"EUR"', b'"currency":"euros"', 1)
    assert broken != body
    with pytest.raises(ValueError, match="currency"):
        loaded_menu(broken)
    with pytest.raises(ValueError):
        loaded_menu(b"{not json")


async def test_locations_asking_for_one_stored_menu_at_once_load_it_once_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    try:
        checked = hashed_menu(big_menu(LOCATIONS[0]))
        for location in LOCATIONS:
            published = await store.publish_menu(
                location, "demo", checked.content_hash, checked.shared_body()
            )
            assert published is not None
        loads: list[threading.Thread] = []
        real = live.loaded_menu

        def counted(body: bytes) -> Menu:
            loads.append(threading.current_thread())
            return real(body)

        monkeypatch.setattr(live, "loaded_menu", counted)
        menus = LiveMenus(store)  # as after a restart: nothing loaded yet
        found: list[Any] = await asyncio.gather(*(menus.get(loc) for loc in LOCATIONS))
    finally:
        await store.close()
    assert len(loads) == 1, "one load for the five locations"
    assert loads[0] is not threading.main_thread(), "loaded in a worker thread"
    assert [f.menu.location for f in found] == LOCATIONS
    assert [f.snapshot.location for f in found] == LOCATIONS
    first = found[0]
    assert all(f.menu.products is first.menu.products for f in found)  # shared, not copied
    assert all(f.index.products is first.index.products for f in found)
    assert all(f.index.menu is f.menu for f in found)
    assert first.menu == checked.menu_of(LOCATIONS[0])

"""The menus in force, parsed once per version: what order checks and the menu route read."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from posintegrator.model import Menu
from posintegrator.model.order_check import MenuIndex
from posintegrator.store import MenuSnapshot, Store


@dataclass(frozen=True)
class LiveMenu:
    """The published version of a location's menu, as stored, as a model, and indexed for
    order checks."""

    snapshot: MenuSnapshot
    menu: Menu
    index: MenuIndex


class LiveMenus:
    """A cache of each location's latest published menu.

    Menu sync publishes through :meth:`put`, so once a location is loaded the cache is always the
    latest version; the store is read only the first time a location is asked for. Locations
    offering the same menu (the same content hash: a chain's central catalog) share one parsed
    menu and one index, each with its own location id: 500 locations of one 20,000-variation
    catalog hold it once, not 500 times.

    Where several workers share the store, another worker may publish: then a cached menu is
    checked against the store's latest version when it is older than ``refresh_seconds`` (a new
    version is parsed, an unchanged one kept).
    """

    def __init__(self, store: Store, *, refresh_seconds: float | None = None) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._menus: dict[str, LiveMenu] = {}
        self._checked: dict[str, float] = {}

    async def get(self, location: str) -> LiveMenu | None:
        """The live menu of ``location``, or None before its first publication."""
        live = self._menus.get(location)
        if live is None or self._stale(location):
            snapshot = await self._store.latest_menu(location)
            self._checked[location] = time.monotonic()
            if snapshot is None:
                return None
            live = self._menus.get(location)  # put meanwhile
            if live is None or live.snapshot.version < snapshot.version:
                live = self._live(snapshot, None)
                self._menus[location] = live
        return live

    def _stale(self, location: str) -> bool:
        if self._refresh_seconds is None:
            return False
        return time.monotonic() - self._checked.get(location, 0.0) > self._refresh_seconds

    def put(self, snapshot: MenuSnapshot, menu: Menu) -> None:
        """A new version was published."""
        self._menus[snapshot.location] = self._live(snapshot, menu)
        self._checked[snapshot.location] = time.monotonic()

    def _live(self, snapshot: MenuSnapshot, menu: Menu | None) -> LiveMenu:
        """The live menu of a snapshot, sharing the parsed menu and index of another location
        with the same content when there is one."""
        twin = next(
            (
                live
                for live in self._menus.values()
                if live.snapshot.content_hash == snapshot.content_hash
            ),
            None,
        )
        if twin is None:
            menu = menu if menu is not None else Menu.model_validate_json(snapshot.body)
            return LiveMenu(snapshot, menu, MenuIndex.of(menu))
        if menu is None:
            menu = twin.menu.model_copy(update={"location": snapshot.location})
        return LiveMenu(snapshot, menu, dataclasses.replace(twin.index, menu=menu))

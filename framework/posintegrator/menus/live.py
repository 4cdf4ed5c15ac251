"""The menus in force, parsed once per version: what order checks and the menu route read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from posintegrator.model import Menu
from posintegrator.model.order_check import MenuIndex
from posintegrator.store import MenuSnapshot, Store


@dataclass(frozen=True)
class LiveMenu:
    """The published version of a location's menu, as stored, as a model, and indexed for
    order checks."""

    snapshot: MenuSnapshot
    menu: Menu
    index: MenuIndex = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", MenuIndex.of(self.menu))


class LiveMenus:
    """A cache of each location's latest published menu.

    Menu sync publishes through :meth:`put`, so with one process the cache, once loaded, is
    always the latest version and the store is read only the first time a location is asked for.
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
            live = self._menus.get(location)
            if live is None or live.snapshot.version < snapshot.version:
                self._menus[location] = LiveMenu(snapshot, Menu.model_validate_json(snapshot.body))
        return self._menus[location]

    def _stale(self, location: str) -> bool:
        if self._refresh_seconds is None:
            return False
        return time.monotonic() - self._checked.get(location, 0.0) > self._refresh_seconds

    def put(self, snapshot: MenuSnapshot, menu: Menu) -> None:
        """A new version was published."""
        self._menus[snapshot.location] = LiveMenu(snapshot, menu)
        self._checked[snapshot.location] = time.monotonic()

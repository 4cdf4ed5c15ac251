"""The menus in force, parsed once per version: what order checks and the menu route read."""

from __future__ import annotations

from dataclasses import dataclass

from posintegrator.model import Menu
from posintegrator.store import MenuSnapshot, Store


@dataclass(frozen=True)
class LiveMenu:
    """The published version of a location's menu, as stored and as a model."""

    snapshot: MenuSnapshot
    menu: Menu


class LiveMenus:
    """A cache of each location's latest published menu.

    Menu sync publishes through :meth:`put`, so once a location is loaded the cache is always the
    latest version; the store is read only the first time a location is asked for.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._menus: dict[str, LiveMenu] = {}

    async def get(self, location: str) -> LiveMenu | None:
        """The live menu of ``location``, or None before its first publication."""
        live = self._menus.get(location)
        if live is None:
            snapshot = await self._store.latest_menu(location)
            if snapshot is None:
                return None
            live = LiveMenu(snapshot, Menu.model_validate_json(snapshot.body))
            self._menus.setdefault(location, live)
        return self._menus[location]

    def put(self, snapshot: MenuSnapshot, menu: Menu) -> None:
        """A new version was published."""
        self._menus[snapshot.location] = LiveMenu(snapshot, menu)

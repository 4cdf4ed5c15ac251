"""The menus in force, parsed once per version: what order checks and the menu route read."""

from __future__ import annotations

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

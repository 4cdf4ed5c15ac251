"""The menus in force, parsed once per version: what order checks and the menu route read."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter

from posintegrator.menus.collector import collector_paused
from posintegrator.model import Menu
from posintegrator.model.menu import ModifierGroup, Product
from posintegrator.model.order_check import MenuIndex
from posintegrator.store import MenuSnapshot, Store

#: Products or modifier groups validated per call when a stored menu is loaded. The load runs
#: in a worker thread, but a call into the validator keeps the interpreter lock until it
#: returns: one call for a whole 20,000-variation menu held it (and so the API) for 0.8 s and
#: more; a piece at a time, the event loop runs in between.
LOAD_PIECE = 256

_PRODUCTS = TypeAdapter(list[Product])
_GROUPS = TypeAdapter(list[ModifierGroup])


def loaded_menu(body: bytes) -> Menu:
    """A stored menu's JSON as the model, validated a piece at a time (:data:`LOAD_PIECE`).

    :raises ValueError: the body is not JSON (``orjson.JSONDecodeError``) or not a valid menu
        (``pydantic.ValidationError``).
    """
    with collector_paused():
        data = orjson.loads(body)
        pieces: dict[str, list[Any]] = {}
        if isinstance(data, dict):
            for field, adapter in (("products", _PRODUCTS), ("modifier_groups", _GROUPS)):
                if isinstance(data.get(field), list):
                    items = data.pop(field)
                    pieces[field] = [
                        entity
                        for start in range(0, len(items), LOAD_PIECE)
                        for entity in adapter.validate_python(items[start : start + LOAD_PIECE])
                    ]
        menu = Menu.model_validate(data)  # the rest, and any part in the wrong shape
        for field, entities in pieces.items():
            setattr(menu, field, entities)  # (instances: checked by type, not validated again)
        return menu


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

    A stored version is parsed and indexed in a worker thread a piece at a time
    (:func:`loaded_menu`), once for all the locations asking for it at once: parsed in one call
    on the event loop, a 20,000-variation menu stopped the API for over a second
    (bench/menu_load.py).
    """

    def __init__(self, store: Store, *, refresh_seconds: float | None = None) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._menus: dict[str, LiveMenu] = {}
        self._checked: dict[str, float] = {}
        #: Stored menus being loaded, by content hash: locations asking for the same content
        #: at once (a chain's after a restart) wait for one load.
        self._loading: dict[str, asyncio.Task[LiveMenu]] = {}

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
                loaded = await self._loaded(snapshot)
                live = self._menus.get(location)  # put or loaded meanwhile
                if live is None or live.snapshot.version < snapshot.version:
                    live = loaded
                    self._menus[location] = live
        return live

    async def _loaded(self, snapshot: MenuSnapshot) -> LiveMenu:
        """The live menu of a stored snapshot: shared with a location of the same content when
        there is one, else parsed and indexed in a worker thread (once for all who ask)."""
        twin = self._twin(snapshot.content_hash)
        if twin is None:
            task = self._loading.get(snapshot.content_hash) or self._start_load(snapshot)
            twin = await asyncio.shield(task)
        return _sharing(snapshot, twin, None)

    def _start_load(self, snapshot: MenuSnapshot) -> asyncio.Task[LiveMenu]:
        """Load ``snapshot`` in a worker thread, for all who ask for its content meanwhile."""
        key = snapshot.content_hash
        task = asyncio.create_task(asyncio.to_thread(_load, snapshot))
        self._loading[key] = task
        task.add_done_callback(lambda done: self._loaded_done(key, done))
        return task

    def _loaded_done(self, key: str, done: asyncio.Task[LiveMenu]) -> None:
        self._loading.pop(key, None)
        if not done.cancelled():
            done.exception()  # marked as seen; whoever awaits it still gets it

    def _stale(self, location: str) -> bool:
        if self._refresh_seconds is None:
            return False
        return time.monotonic() - self._checked.get(location, 0.0) > self._refresh_seconds

    def put(self, snapshot: MenuSnapshot, menu: Menu) -> None:
        """A new version was published."""
        self._menus[snapshot.location] = self._live(snapshot, menu)
        self._checked[snapshot.location] = time.monotonic()

    def _live(self, snapshot: MenuSnapshot, menu: Menu) -> LiveMenu:
        """The live menu of a published snapshot, sharing the index of another location with
        the same content when there is one."""
        twin = self._twin(snapshot.content_hash)
        if twin is None:
            return LiveMenu(snapshot, menu, MenuIndex.of(menu))
        return _sharing(snapshot, twin, menu)

    def _twin(self, content_hash: str) -> LiveMenu | None:
        """A live menu with this content, if any location has one."""
        return next(
            (live for live in self._menus.values() if live.snapshot.content_hash == content_hash),
            None,
        )


def _load(snapshot: MenuSnapshot) -> LiveMenu:
    menu = loaded_menu(snapshot.body)
    return LiveMenu(snapshot, menu, MenuIndex.of(menu))


def _sharing(snapshot: MenuSnapshot, twin: LiveMenu, menu: Menu | None) -> LiveMenu:
    """The live menu of ``snapshot``, whose content is ``twin``'s: its parsed entities and
    index shared, under its own location (``menu`` when the caller has it already)."""
    if menu is None:
        if twin.menu.location == snapshot.location:
            return LiveMenu(snapshot, twin.menu, twin.index)
        menu = twin.menu.model_copy(update={"location": snapshot.location})
    return LiveMenu(snapshot, menu, dataclasses.replace(twin.index, menu=menu))

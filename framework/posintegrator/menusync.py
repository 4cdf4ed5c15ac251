"""Menu sync: fetch -> transform -> validate -> hash -> publish (only when something changed)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import orjson
from loguru import logger

from posintegrator.connection import Connection
from posintegrator.errors import AuthError, PosError
from posintegrator.health import MenuSyncInfo
from posintegrator.model import Menu, utcnow
from posintegrator.model.menu_check import Finding, Severity, check_menu, errors_in
from posintegrator.plugins import PluginHost
from posintegrator.store import MenuSnapshot, Store

#: Fields that say when the POS changed the menu, not what it is: left out of the hash.
_VOLATILE = {"source_updated_at"}


class MenuRejected(Exception):
    """A fetched menu failed validation; the last good menu stays published."""

    def __init__(self, location: str, findings: list[Finding]) -> None:
        super().__init__(
            f"menu of {location!r} not published: "
            + "; ".join(str(f) for f in findings[:5])
            + (f" (+{len(findings) - 5} more)" if len(findings) > 5 else "")
        )
        self.findings = findings


def menu_body(menu: Menu) -> bytes:
    """The menu as canonical JSON (sorted keys), as stored and served."""
    return orjson.dumps(menu.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def content_hash(menu: Menu) -> str:
    """A hash of what the menu offers; unchanged when only timestamps move."""
    canonical = orjson.dumps(
        menu.model_dump(mode="json", exclude=_VOLATILE), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


class MenuSync:
    """Syncs the menus of one connection's locations.

    :param on_publish: called after a new version is stored, to wake the cloud outbox.
    """

    def __init__(
        self,
        store: Store,
        plugins: PluginHost,
        connection: Connection,
        on_publish: Callable[[], None],
    ) -> None:
        self._store = store
        self._plugins = plugins
        self._conn = connection
        self._on_publish = on_publish

    async def sync(self, location: str) -> MenuSnapshot | None:
        """Fetch and publish the menu of ``location``.

        :returns: the new version, or None when the menu has not changed.
        :raises PosError: the POS could not give the menu (the last one stays live).
        :raises MenuRejected: the menu failed validation (the last one stays live).
        """
        conn = self._conn
        try:
            async with conn.limiter:
                menu = await conn.plugin.fetch_menu(conn.ctx, location)
        except PosError as exc:
            conn.health.failed(exc.message, auth=isinstance(exc, AuthError))
            self._record(location, ok=False, version=None, error=exc.message)
            raise
        conn.health.succeeded()
        try:
            if menu.location != location:
                wrong = f"the plugin returned the menu of {menu.location!r}"
                raise MenuRejected(location, [Finding(Severity.ERROR, "location", wrong)])
            await self._plugins.transform_menu(menu, location, conn.name)
            menu = Menu.model_validate(menu.model_dump())
            errors = errors_in(check_menu(menu))
            if errors:
                raise MenuRejected(location, errors)
        except MenuRejected as exc:
            self._record(location, ok=False, version=None, error=str(exc))
            raise
        snapshot = await self._store.publish_menu(
            location, conn.name, content_hash(menu), menu_body(menu)
        )
        if snapshot is None:
            latest = await self._store.latest_menu(location)
            self._record(location, ok=True, version=latest.version if latest else None)
        else:
            self._record(location, ok=True, version=snapshot.version)
        if snapshot is not None:
            logger.info("menu of {} published as version {}", location, snapshot.version)
            self._on_publish()
        return snapshot

    def _record(
        self, location: str, *, ok: bool, version: int | None, error: str | None = None
    ) -> None:
        previous = self._conn.health.menu_syncs.get(location)
        if version is None and previous is not None:
            version = previous.version
        self._conn.health.menu_syncs[location] = MenuSyncInfo(
            at=utcnow(), ok=ok, version=version, error=error
        )

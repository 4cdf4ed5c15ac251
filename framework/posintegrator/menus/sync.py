"""Menu sync: fetch -> transform -> validate -> hash -> publish (only when something changed).

Every check leaves a report (``GET /v1/locations/{location}/menu/report``): what was found, and
whether the menu was published, unchanged, or refused (the last good one then stays live).
Availability changes pushed by a POS take a fast path: applied to the live menu and published
without fetching the whole menu again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import orjson
from loguru import logger
from pydantic import BaseModel, ValidationError

from posintegrator.cloud.events import MenuChanges, MenuNotice
from posintegrator.errors import PosError
from posintegrator.menus.live import LiveMenus
from posintegrator.model import Menu, utcnow
from posintegrator.model.availability import AvailabilityChange, apply_availability
from posintegrator.model.menu_check import (
    Code,
    Finding,
    FindingView,
    Severity,
    check_menu,
    errors_in,
    left_out_findings,
)
from posintegrator.model.menu_diff import diff_menus
from posintegrator.plugins import PluginHost
from posintegrator.runtime.connection import Connection
from posintegrator.runtime.health import MenuSyncInfo
from posintegrator.settings import error_path
from posintegrator.store import MenuSnapshot, Store

#: Fields that say when the POS changed the menu, not what it is: left out of the hash.
_VOLATILE = {"source_updated_at"}

Outcome = Literal["published", "unchanged", "rejected", "fetch_failed"]


class MenuReport(BaseModel):
    """The result of the latest check of a location's menu."""

    location: str
    checked_at: datetime
    outcome: Outcome
    live_version: int | None
    errors: int
    warnings: int
    detail: str | None = None
    findings: list[FindingView]


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
        live: LiveMenus,
        on_publish: Callable[[], None],
    ) -> None:
        self._store = store
        self._plugins = plugins
        self._conn = connection
        self._live = live
        self._on_publish = on_publish

    async def sync(self, location: str) -> MenuSnapshot | None:
        """Fetch, check and publish the menu of ``location``.

        :returns: the new version, or None when the menu has not changed.
        :raises PosError: the POS could not give the menu (the last one stays live).
        :raises MenuRejected: the menu failed validation (the last one stays live).
        """
        conn = self._conn
        started = time.perf_counter()
        try:
            async with conn.calling():
                menu = await conn.plugin.fetch_menu(conn.ctx, location)
        except PosError as exc:
            await self._report(location, "fetch_failed", [], started, detail=exc.message)
            raise
        return await self.publish_fetched(location, menu, started=started)

    async def publish_fetched(
        self, location: str, menu: Menu, *, started: float | None = None
    ) -> MenuSnapshot | None:
        """Check and publish a menu fetched from the POS (here, or by a venue agent).

        :param started: when the sync began (``time.perf_counter()``), for its duration.
        :returns: the new version, or None when the menu has not changed.
        :raises MenuRejected: the menu failed validation (the last one stays live).
        """
        started = time.perf_counter() if started is None else started
        findings = await self._prepare(menu, location)
        errors = errors_in(findings)
        if errors:
            await self._report(location, "rejected", findings, started)
            raise MenuRejected(location, errors)
        checked = Menu.model_validate(menu.model_dump())
        snapshot = await self._publish(location, checked, [])
        outcome: Outcome = "published" if snapshot else "unchanged"
        await self._report(location, outcome, findings, started)
        return snapshot

    async def _prepare(self, menu: Menu, location: str) -> list[Finding]:
        """Transform the fetched menu in place and check it; what the plugin left out of it
        (``menu.left_out``) is reported as warnings after the checks' findings."""
        if menu.location != location:
            wrong = f"the plugin returned the menu of {menu.location!r}"
            return [Finding(Severity.ERROR, Code.INVALID_VALUE, "location", wrong)]
        await self._plugins.transform_menu(menu, location, self._conn.name)
        left_out = left_out_findings(menu)
        try:
            checked = Menu.model_validate(menu.model_dump())
        except ValidationError as exc:
            return [
                Finding(Severity.ERROR, Code.INVALID_VALUE, error_path(tuple(e["loc"])), e["msg"])
                for e in exc.errors(include_url=False)
            ] + left_out
        return check_menu(checked) + left_out

    async def apply_availability(
        self, location: str, changes: list[AvailabilityChange]
    ) -> MenuSnapshot | None:
        """Publish availability changes (86 and back) on the live menu, without a fetch.

        Changes naming entities the menu does not have are logged and skipped; before the first
        full sync of ``location`` there is nothing to apply them to, and the sync brings them.
        """
        live = await self._live.get(location)
        if live is None:
            logger.info("availability for {} ignored: no menu published yet", location)
            return None
        menu, unknown = apply_availability(live.menu, changes)
        if unknown:
            logger.warning("availability for {}: unknown {}", location, ", ".join(unknown))
        applied = [c for c in changes if c.describe() not in unknown]
        return await self._publish(location, menu, applied)

    async def _publish(
        self, location: str, menu: Menu, availability: list[AvailabilityChange]
    ) -> MenuSnapshot | None:
        new_hash = content_hash(menu)
        live = await self._live.get(location)
        if live is not None and live.snapshot.content_hash == new_hash:
            self._record(location, ok=True, version=live.snapshot.version)
            return None
        notice = MenuNotice()
        if live is not None:
            counts = diff_menus(live.menu, menu).counts()
            notice = MenuNotice(
                previous_version=live.snapshot.version,
                changes=MenuChanges(**counts),
                availability=availability,
            )
        snapshot = await self._store.publish_menu(
            location, self._conn.name, new_hash, menu_body(menu), notice
        )
        if snapshot is None:  # published meanwhile by another writer: reload next time
            return None
        self._live.put(snapshot, menu)
        self._record(location, ok=True, version=snapshot.version)
        logger.info("menu of {} published as version {}", location, snapshot.version)
        self._on_publish()
        return snapshot

    async def _report(
        self,
        location: str,
        outcome: Outcome,
        findings: list[Finding],
        started: float,
        detail: str | None = None,
    ) -> None:
        live = await self._live.get(location)
        errors = errors_in(findings)
        report = MenuReport(
            location=location,
            checked_at=utcnow(),
            outcome=outcome,
            live_version=live.snapshot.version if live else None,
            errors=len(errors),
            warnings=len(findings) - len(errors),
            detail=detail,
            findings=[FindingView.of(f) for f in findings],
        )
        await self._store.save_menu_report(location, report.model_dump_json().encode())
        failed = outcome in ("rejected", "fetch_failed")
        self._record(
            location,
            ok=not failed,
            version=report.live_version,
            error=(detail or str(MenuRejected(location, errors))) if failed else None,
            errors=report.errors,
            warnings=report.warnings,
        )
        if self._conn.metrics is not None:
            self._conn.metrics.menu_synced(time.perf_counter() - started, outcome)

    def _record(
        self,
        location: str,
        *,
        ok: bool,
        version: int | None,
        error: str | None = None,
        errors: int | None = None,
        warnings: int | None = None,
    ) -> None:
        """Note a sync in the connection's health; findings counts not given are kept."""
        now = utcnow()
        earlier = self._conn.health.menu_syncs.get(location)
        last_ok = now if ok else (earlier.last_ok_at if earlier is not None else None)
        if errors is None:
            errors = earlier.errors if earlier is not None else 0
        if warnings is None:
            warnings = earlier.warnings if earlier is not None else 0
        self._conn.health.menu_syncs[location] = MenuSyncInfo(
            at=now,
            ok=ok,
            version=version,
            error=error,
            errors=errors,
            warnings=warnings,
            last_ok_at=last_ok,
        )

"""Menu sync: fetch -> transform -> validate -> hash -> publish (only when something changed).

Every check leaves a report (``GET /v1/locations/{location}/menu/report``): what was found, and
whether the menu was published, unchanged, or refused (the last good one then stays live).
Availability changes pushed by a POS take a fast path: applied to the live menu and published
without fetching the whole menu again.

A plugin that implements ``pos_fetch_menus`` gives the menus of several locations in one call;
a menu several locations share is validated, checked and hashed once for all of them. The
CPU-bound steps (validation, checks, hashing, diffing, encoding) of a big menu run in a worker
thread, with the cyclic garbage collector paused (:mod:`posintegrator.menus.collector`), so the
event loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import orjson
from loguru import logger
from pydantic import BaseModel

from posintegrator.cloud.events import MenuChanges, MenuNotice
from posintegrator.errors import PosError
from posintegrator.hooktypes import SharedMenu
from posintegrator.menus.checked import (
    CheckedMenu,
    ProductMemo,
    check_fetched,
    dumped_menu,
    hashed_menu,
)
from posintegrator.menus.collector import collector_paused
from posintegrator.menus.live import LiveMenus
from posintegrator.menus.release import release_in_pieces
from posintegrator.model import Menu, utcnow
from posintegrator.model.availability import AvailabilityChange, apply_availability
from posintegrator.model.menu_check import (
    Code,
    Finding,
    FindingView,
    Severity,
    errors_in,
)
from posintegrator.model.menu_diff import diff_dumped
from posintegrator.plugins import PluginHost
from posintegrator.runtime.connection import Connection
from posintegrator.runtime.health import MenuSyncInfo
from posintegrator.store import MenuSnapshot, Store

#: Locations sharing a menu whose versions are published at once.
_PUBLISHED_TOGETHER = 32

#: Pairs of contents whose diff counts are kept (a round moves a few menus on, each for many
#: locations).
_DIFFS_KEPT = 64

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


def _diff_counts(old: Menu | dict[str, Any], new: dict[str, Any]) -> dict[str, int]:
    """How many entities changed from ``old`` (a menu, or one already dumped) to ``new``."""
    with collector_paused():
        before = old if isinstance(old, dict) else dumped_menu(old)
        return diff_dumped(before, new).counts()


def _wrong_location(location: str, menu: Menu) -> list[Finding]:
    wrong = f"the plugin returned the menu of {menu.location!r}"
    return [Finding(Severity.ERROR, Code.INVALID_VALUE, "location", wrong)]


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
        self._diffs: dict[tuple[str, str], dict[str, int]] = {}
        #: The last round's checked menus, by the identity of the menu the plugin returned,
        #: and this round's so far.
        self._checked: dict[int, tuple[Menu, CheckedMenu]] = {}
        self._checked_now: dict[int, tuple[Menu, CheckedMenu]] = {}
        self._products = ProductMemo()
        self._round = asyncio.Lock()
        self._findings_encoded: tuple[list[Finding], bytes] | None = None

    async def sync(self, location: str) -> MenuSnapshot | None:
        """Fetch, check and publish the menu of ``location``.

        :returns: the new version, or None when the menu has not changed.
        :raises PosError: the POS could not give the menu (the last one stays live).
        :raises MenuRejected: the menu failed validation (the last one stays live).
        """
        conn = self._conn
        if conn.plugin.implements("pos_fetch_menus"):
            results = await self.sync_locations([location])
            result = results[location]
            if isinstance(result, MenuRejected):
                raise result
            return result
        started = time.perf_counter()
        try:
            async with conn.calling():
                menu = await conn.plugin.fetch_menu(conn.ctx, location)
        except PosError as exc:
            await self._report(location, "fetch_failed", [], started, detail=exc.message)
            raise
        return await self.publish_fetched(location, menu, started=started)

    async def sync_locations(
        self, locations: list[str]
    ) -> dict[str, MenuSnapshot | MenuRejected | None]:
        """Fetch the menus of ``locations`` in one ``pos_fetch_menus`` call, check and publish
        each; a menu several locations share is checked and hashed once.

        Rounds of one connection run one at a time (a plugin may rely on it, and the checked
        menus kept between rounds are this object's).

        :returns: per location, its new version, None when its menu has not changed, or why
            its menu was refused (the last one stays live).
        :raises PosError: the POS could not give the menus (the last ones stay live).
        """
        # The whole round runs with the collector paused: a big catalog is millions of short-
        # lived containers (the plugin's read of it included), and a full collection started
        # by them walks every live object with the GIL held (seconds, for a chain's menus).
        async with self._round:
            with collector_paused():
                return await self._sync_locations(locations)

    async def _sync_locations(
        self, locations: list[str]
    ) -> dict[str, MenuSnapshot | MenuRejected | None]:
        conn = self._conn
        started = time.perf_counter()
        try:
            async with conn.calling():
                shared = await conn.plugin.fetch_menus(conn.ctx, locations)
        except PosError as exc:
            for location in locations:
                await self._report(location, "fetch_failed", [], started, detail=exc.message)
            raise
        results: dict[str, MenuSnapshot | MenuRejected | None] = {}
        self._checked_now = {}
        for group in shared:
            if self._plugins.transforms_menus():
                await self._publish_each(group, results, started)
                continue
            if group.menu.location not in group.locations:
                findings = _wrong_location(group.locations[0], group.menu)
                checked = CheckedMenu(group.menu, findings, "", {})
            else:
                checked = await self._checked_once(group.menu)
                self._checked_now[id(group.menu)] = (group.menu, checked)
            results.update(await self._publish_group(group.locations, checked, started))
        last_round = self._checked
        self._checked, self._checked_now = self._checked_now, {}
        forgotten = self._products.end_round()
        await asyncio.to_thread(release_in_pieces, last_round, *forgotten)
        return results

    async def _publish_group(
        self, locations: list[str], checked: CheckedMenu, started: float
    ) -> dict[str, MenuSnapshot | MenuRejected | None]:
        """Publish ``checked`` for each of ``locations``: the first alone (it makes the body and
        the diff the others share), then the others :data:`_PUBLISHED_TOGETHER` at a time, so
        that the store writes their versions and reports in a few transactions rather than two
        each (and the event loop, resuming that many at once, is not held for long).

        :raises Exception: the first error other than a refusal, once every location is done.
        """

        async def publish(location: str) -> MenuSnapshot | MenuRejected | None:
            try:
                return await self._publish_checked(location, checked, started)
            except MenuRejected as exc:
                return exc

        results = {location: await publish(location) for location in locations[:1]}
        for start in range(1, len(locations), _PUBLISHED_TOGETHER):
            some = locations[start : start + _PUBLISHED_TOGETHER]
            outcomes = await asyncio.gather(*map(publish, some), return_exceptions=True)
            for location, outcome in zip(some, outcomes, strict=True):
                if isinstance(outcome, BaseException) and not isinstance(outcome, MenuRejected):
                    raise outcome
                results[location] = outcome
        return results

    async def _checked_once(self, menu: Menu) -> CheckedMenu:
        """``menu`` checked; not again when the plugin returned this very object last round
        (it says so: a plugin never changes a menu it has returned, see ``pos_fetch_menus``),
        or a menu equal to one it returned (the comparison is quick when their products are
        the same objects, as after a full read of an unchanged catalog)."""
        last = self._checked.get(id(menu))
        if last is not None and last[0] is menu:
            return last[1]
        for earlier, checked in self._checked.values():
            if earlier.location == menu.location and earlier == menu:
                return checked
        return await asyncio.to_thread(
            functools.partial(check_fetched, menu, self._products, unchanged_objects=True)
        )

    async def _publish_each(
        self,
        group: SharedMenu,
        results: dict[str, MenuSnapshot | MenuRejected | None],
        started: float,
    ) -> None:
        """Publish a shared menu location by location (each may be transformed its own way).

        Each location's copy is deep: a transform changes it in place, and the plugin may hand
        the same menu object out again next round."""
        for location in group.locations:
            menu = group.menu.model_copy(update={"location": location}, deep=True)
            try:
                results[location] = await self.publish_fetched(location, menu, started=started)
            except MenuRejected as exc:
                results[location] = exc

    async def publish_fetched(
        self, location: str, menu: Menu, *, started: float | None = None
    ) -> MenuSnapshot | None:
        """Check and publish a menu fetched from the POS (here, or by a venue agent).

        :param started: when the sync began (``time.perf_counter()``), for its duration.
        :returns: the new version, or None when the menu has not changed.
        :raises MenuRejected: the menu failed validation (the last one stays live).
        """
        started = time.perf_counter() if started is None else started
        if menu.location != location:
            checked = CheckedMenu(menu, _wrong_location(location, menu), "", {})
        else:
            await self._plugins.transform_menu(menu, location, self._conn.name)
            checked = await asyncio.to_thread(check_fetched, menu, self._products)
            if forgotten := self._products.end_round():
                await asyncio.to_thread(release_in_pieces, *forgotten)
        return await self._publish_checked(location, checked, started)

    async def _publish_checked(
        self, location: str, checked: CheckedMenu, started: float
    ) -> MenuSnapshot | None:
        errors = errors_in(checked.findings)
        if errors:
            await self._report(location, "rejected", checked.findings, started)
            raise MenuRejected(location, errors)
        snapshot = await self._publish(location, checked, [])
        outcome: Outcome = "published" if snapshot else "unchanged"
        await self._report(location, outcome, checked.findings, started)
        return snapshot

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
        checked = await asyncio.to_thread(hashed_menu, menu)
        return await self._publish(location, checked, applied)

    async def _publish(
        self, location: str, checked: CheckedMenu, availability: list[AvailabilityChange]
    ) -> MenuSnapshot | None:
        new_hash = checked.content_hash
        live = await self._live.get(location)
        if live is not None and live.snapshot.content_hash == new_hash:
            self._record(location, ok=True, version=live.snapshot.version)
            return None
        notice = MenuNotice()
        if live is not None:
            counts = await self._diff_counts(live.snapshot.content_hash, live.menu, checked)
            notice = MenuNotice(
                previous_version=live.snapshot.version,
                changes=MenuChanges(**counts),
                availability=availability,
            )
        body = checked.made_body
        if body is None:
            body = await asyncio.to_thread(checked.shared_body)
        snapshot = await self._store.publish_menu(location, self._conn.name, new_hash, body, notice)
        if snapshot is None:  # published meanwhile by another writer: reload next time
            return None
        self._live.put(snapshot, checked.menu_of(location))
        self._record(location, ok=True, version=snapshot.version)
        logger.info("menu of {} published as version {}", location, snapshot.version)
        self._on_publish()
        return snapshot

    async def _diff_counts(self, old_hash: str, old: Menu, new: CheckedMenu) -> dict[str, int]:
        """What changed from ``old`` to ``new``, worked out once per pair of contents (the
        locations sharing a menu share its diff too), from the JSON of ``old`` kept since it
        was checked when there is one."""
        key = (old_hash, new.content_hash)
        counts = self._diffs.get(key)
        if counts is None:
            before = self._dumped_of(old_hash)
            counts = await asyncio.to_thread(
                _diff_counts, old if before is None else before, new.dumped
            )
            if len(self._diffs) >= _DIFFS_KEPT:
                self._diffs.clear()
            self._diffs[key] = counts
        return counts

    def _dumped_of(self, content_hash: str) -> dict[str, Any] | None:
        """The JSON of a menu with ``content_hash`` checked this round or the last."""
        for checked_by_id in (self._checked_now, self._checked):
            for _menu, checked in checked_by_id.values():
                if checked.content_hash == content_hash and checked.dumped:
                    return checked.dumped
        return None

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
            findings=[],
        )
        body = report.model_dump(mode="json")
        body["findings"] = orjson.Fragment(self._findings_json(findings))
        await self._store.save_menu_report(location, orjson.dumps(body))
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

    def _findings_json(self, findings: list[Finding]) -> bytes:
        """``findings`` as the report's JSON, encoded once for the locations sharing them (a
        big catalog's menu has hundreds, and a chain hundreds of locations)."""
        cached = self._findings_encoded
        if cached is None or cached[0] is not findings:
            views = [FindingView.of(f).model_dump(mode="json") for f in findings]
            cached = (findings, orjson.dumps(views))
            self._findings_encoded = cached
        return cached[1]

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

"""The asyncio jobs of one host: per connection, menu sync, order delivery and status polling;
for the whole host, the cloud outbox and upkeep (retention, the stuck-stream watch). Each job is
one task; stopping cancels them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from loguru import logger

from posintegrator.context import PluginState
from posintegrator.errors import AuthError, PosError
from posintegrator.menus.sync import MenuRejected, MenuSync
from posintegrator.runtime.connection import Connection
from posintegrator.runtime.shutdown import cancel_and_wait
from posintegrator.runtime.wakeup import wait_for_wakeup
from posintegrator.statuses.intake import StatusIntake
from posintegrator.store import OrderRecord, Store

#: The first menu sync of a connection starts after a random delay up to this many seconds (or
#: its sync period, if shorter), so many connections do not all hit their POS at start-up.
FIRST_SYNC_SPREAD_SECONDS = 5.0
#: How much longer than its job's period a lease lasts (see :meth:`ConnectionJobs.holds`).
LEASE_MARGIN_SECONDS = 10.0


class Delivery(Protocol):
    """What delivers a connection's orders: to its POS, or (at a hub) to its venue agent."""

    def wake(self) -> None:
        """Look for due orders now."""

    def offer(self, record: OrderRecord) -> None:
        """``record`` was just accepted: deliver it now if that can start at once, else look
        for due orders now (as :meth:`wake`)."""

    def is_in_flight(self, order_id: str) -> bool:
        """Whether an attempt for this order is under way."""
        ...

    async def run(self) -> None:
        """Deliver until cancelled."""

    async def drain(self, grace_seconds: float) -> int:
        """Let attempts under way finish (up to ``grace_seconds``); how many were cut short."""
        ...


class StateSavedLater:
    """A plugin's state whose writes are kept until :meth:`save`; reads see them meanwhile."""

    def __init__(self, state: PluginState) -> None:
        self._state = state
        self._writes: dict[str, str | None] = {}  # None: deleted

    async def get(self, key: str) -> str | None:
        """The value written meanwhile, or else the stored one."""
        if key in self._writes:
            return self._writes[key]
        return await self._state.get(key)

    async def set(self, key: str, value: str) -> None:
        """Keep ``value`` for :meth:`save`."""
        self._writes[key] = value

    async def delete(self, key: str) -> None:
        """Keep the deletion for :meth:`save`."""
        self._writes[key] = None

    async def save(self) -> None:
        """Store what was written, durably."""
        for key, value in self._writes.items():
            if value is None:
                await self._state.delete(key)
            else:
                await self._state.set(key, value)
        self._writes.clear()


class ConnectionJobs:
    """The jobs of one connection.

    :param streams: the streams of the connection that run in this process (see
        :func:`posintegrator.settings.streams_here`); all three by default.
    :param worker: this process's name in the leases of a store shared by several workers.
    """

    def __init__(
        self,
        store: Store,
        connection: Connection,
        menusync: MenuSync,
        delivery: Delivery,
        intake: StatusIntake,
        *,
        streams: frozenset[str] = frozenset({"menu", "orders", "statuses"}),
        worker: str = "local",
    ) -> None:
        self.connection = connection
        self.worker = worker
        self._held: set[str] = set()
        self.menusync = menusync
        self.delivery = delivery
        self.streams = streams
        self._store = store
        self._intake = intake
        self._menu_requests: set[str] = set()
        self._menu_wake = asyncio.Event()

    def request_menu_sync(self, locations: list[str]) -> None:
        """Sync these locations' menus soon (a webhook said they changed); repeats coalesce."""
        wanted = [loc for loc in locations if loc in self.connection.settings.locations]
        if wanted:
            self._menu_requests.update(wanted)
            self._menu_wake.set()

    async def menu_loop(self) -> None:
        """Sync each location's menu once per period, and soon after the POS says it changed.

        Each location keeps its own phase in the period, drawn at random at start: a location
        that already has a published menu (a restart) first syncs at a random moment within the
        whole period, so thousands of locations do not all hit their POS at once; a location
        without one (a new deployment, where orders wait for the menu) syncs within the first
        few seconds. A plugin that fetches many locations' menus at once (``pos_fetch_menus``)
        gets all of them in one call instead: its connection syncs in rounds (see
        :meth:`_round_loop`).
        """
        if self.connection.plugin.implements("pos_fetch_menus"):
            await self._round_loop()
            return
        period = self.connection.settings.menu_sync_seconds
        clock = asyncio.get_running_loop().time
        published = await self._store.menu_locations()
        due: dict[str, float] = {}
        for location in self.connection.settings.locations:
            window = period if location in published else min(period, FIRST_SYNC_SPREAD_SECONDS)
            due[location] = clock() + random.uniform(0, window)
        while True:
            wait = max(0.0, min(due.values()) - clock())
            if await self._woken(wait):
                for location in self._menu_requests:
                    due[location] = clock()
                self._menu_requests.clear()
            for location in sorted(due, key=due.__getitem__):
                if due[location] > clock():
                    break
                await self._sync_one(location)
                due[location] = clock() + period

    async def _round_loop(self) -> None:
        """Sync all of the connection's locations in one ``pos_fetch_menus`` call per round.

        A round runs once per period (the first at a random moment within it, or within the
        first few seconds while a location has no menu yet) and soon after the POS says a menu
        changed: a catalog shared by the locations is read once either way, and a round started
        by a notice restarts the period.
        """
        period = self.connection.settings.menu_sync_seconds
        clock = asyncio.get_running_loop().time
        locations = list(self.connection.settings.locations)
        published = await self._store.menu_locations()
        all_published = all(location in published for location in locations)
        window = period if all_published else min(period, FIRST_SYNC_SPREAD_SECONDS)
        due = clock() + random.uniform(0, window)
        while True:
            if await self._woken(max(0.0, due - clock())):
                self._menu_requests.clear()
            await self._sync_round(locations)
            due = clock() + period

    async def _woken(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds for a menu-change notice; whether one came."""
        if not await wait_for_wakeup(self._menu_wake, wait):
            return False
        # A POS often sends a burst of change notices for one edit: wait a moment so the
        # burst costs one sync, not one each.
        await asyncio.sleep(self.connection.settings.menu_resync_debounce_seconds)
        # Cleared only as the requests are taken: a notice arriving from here on (even during
        # the syncs that follow, whose fetch may have missed its change) wakes the next round
        # instead of being dropped until the next period.
        self._menu_wake.clear()
        return True

    async def _sync_round(self, locations: list[str]) -> None:
        period = self.connection.settings.menu_sync_seconds
        if not await self.holds(f"menus:{self.connection.name}", period):
            return  # another worker syncs this connection's menus
        try:
            results = await self.menusync.sync_locations(locations)
        except AuthError as exc:
            logger.error(
                "connection {}: menus refused: {} (check the connection's credentials)",
                self.connection.name,
                exc.message,
            )
            return
        except PosError as exc:
            logger.debug("connection {}: menus not synced: {}", self.connection.name, exc)
            return
        for result in results.values():
            if isinstance(result, MenuRejected):
                logger.error("connection {}: {}", self.connection.name, result)

    async def holds(self, job: str, period: float) -> bool:
        """Whether this worker is the one to run ``job`` now (it holds the job's lease).

        A store of one process (SQLite) has no other worker: always. On a shared store the
        holder renews the lease each time it runs the job, for a little over two periods, so a
        worker that dies hands the job over within about three periods.
        """
        if not self._store.shared:
            return True
        seconds = 2 * period + LEASE_MARGIN_SECONDS
        new = job not in self._held
        # Counted as held before the call: a stop that cancels the call after the database took
        # the lease still releases it, rather than leaving the job to wait for it to run out.
        self._held.add(job)
        if await self._store.acquire_lease(job, self.worker, seconds) is None:
            self._held.discard(job)
            return False
        if new:
            logger.info("worker {} now runs {}", self.worker, job)
        return True

    async def release_leases(self) -> None:
        """Give up this worker's leases (it stops): another worker may take the jobs at once."""
        for job in sorted(self._held):
            await self._store.release_lease(job, self.worker)
        self._held.clear()

    async def _sync_one(self, location: str) -> None:
        if not await self.holds(f"menu:{location}", self.connection.settings.menu_sync_seconds):
            return  # another worker syncs this location
        try:
            await self.menusync.sync(location)
        except MenuRejected as exc:
            logger.error("connection {}: {}", self.connection.name, exc)
        except AuthError as exc:
            logger.error(
                "connection {}: menu of {} refused: {} (check the connection's credentials)",
                self.connection.name,
                location,
                exc.message,
            )
        except PosError as exc:
            logger.debug(
                "connection {}: menu of {} not synced: {}", self.connection.name, location, exc
            )

    async def poll_loop(self) -> None:
        """Ask the POS for status changes of orders in flight, every ``status_poll_seconds``.

        What a poll writes to its plugin state (a feed's cursor) is kept back until the events
        it returned are stored: a process dying in between reads them again next time, rather
        than skipping them for good.
        """
        conn = self.connection
        while True:
            await asyncio.sleep(conn.settings.status_poll_seconds)
            if not await self.holds(f"poll:{conn.name}", conn.settings.status_poll_seconds):
                continue  # another worker polls this connection
            tracked = await self._store.orders_in_flight(conn.name)
            if not tracked:
                continue
            state = StateSavedLater(conn.ctx.state)
            try:
                async with conn.calling():
                    events = await conn.plugin.poll_status(replace(conn.ctx, state=state), tracked)
            except PosError:
                continue  # recorded in the connection's health; polled again next period
            for event in events:
                await self._intake.apply(conn.name, event)
            await state.save()

    def jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """This connection's jobs, named for logs."""
        name = self.connection.name
        jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        caps = self.connection.plugin.capabilities()
        if caps.menu and "menu" in self.streams:
            jobs.append((f"{name}:menu", self.menu_loop))
        if caps.orders:
            jobs.append((f"{name}:delivery", self.delivery.run))
        if "statuses" in self.streams and self.connection.uses_polling():
            jobs.append((f"{name}:status-poll", self.poll_loop))
        return jobs


class Scheduler:
    """Runs and stops the host's jobs."""

    def __init__(
        self,
        connections: list[ConnectionJobs],
        upstream: tuple[str, Callable[[], Awaitable[None]]],
        upkeep: list[tuple[str, Callable[[], Awaitable[None]]]] | None = None,
    ) -> None:
        """:param upstream: the named job that sends the store's events on: to the cloud, or
        from a venue agent to its hub.
        :param upkeep: named jobs that look after the host itself (pruning, watching)."""
        self.connections = {jobs.connection.name: jobs for jobs in connections}
        self.upstream = upstream
        self.upkeep = upkeep or []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every job."""
        named: list[tuple[str, Callable[[], Awaitable[None]]]] = [self.upstream, *self.upkeep]
        for jobs in self.connections.values():
            named.extend(jobs.jobs())
        for name, job in named:
            self._tasks.append(asyncio.create_task(_guarded(name, job), name=name))

    async def stop(self, grace_seconds: float) -> None:
        """Stop the jobs; give deliveries under way up to ``grace_seconds`` to finish."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        cancelled = 0
        for jobs in self.connections.values():
            cancelled += await jobs.delivery.drain(grace_seconds)
            await jobs.release_leases()
        if cancelled:
            logger.warning(
                "{} order submission(s) cut short; they will be looked up in the POS on the "
                "next start before any resend",
                cancelled,
            )


async def _guarded(name: str, job: Callable[[], Awaitable[None]]) -> None:
    """Run a job; if it crashes (a bug), log it and start it again after a pause."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("job {} crashed; restarting it in 1s", name)
            await asyncio.sleep(1.0)

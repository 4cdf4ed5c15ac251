"""Order delivery: each accepted order reaches the POS exactly once.

The rules (see docs/orders.md):

* An attempt is recorded durably *before* the POS is called, so after a crash the host knows the
  POS may have the order.
* Every submission of an order carries the same idempotency key, saved when it was accepted.
* When an earlier attempt's outcome is unknown, the next one first looks the order up in the POS
  and only submits when the POS does not have it; a POS with neither lookup nor idempotent
  submission gets the order parked as NEEDS_ATTENTION instead of a blind resend.
* One attempt per order at a time; retries wait with exponential backoff and jitter, at least as
  long as a ``Retry-After`` asks.

New orders are picked up at once (the API wakes the loop); retries wake it when they fall due.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from loguru import logger

from posintegrator.backoff import Backoff
from posintegrator.connection import Connection
from posintegrator.errors import (
    AmbiguousError,
    AuthError,
    PermanentError,
    PluginBugError,
    RetryableError,
)
from posintegrator.hooktypes import FoundOrder
from posintegrator.model import OrderStatus, StatusEvent, utcnow
from posintegrator.status_intake import StatusIntake
from posintegrator.store import OrderRecord, Store
from posintegrator.wakeup import wait_for_wakeup

#: How long an order's slot stays taken after the host itself failed to handle its attempt.
HOST_FAILURE_PAUSE_SECONDS = 5.0

NEEDS_ATTENTION_REASON = (
    "an earlier submission's outcome is unknown and this POS can neither look orders up nor "
    "deduplicate them: check the POS, then mark the order found or retry it"
)


class OrderDelivery:
    """The delivery loop of one connection."""

    def __init__(
        self,
        store: Store,
        connection: Connection,
        intake: StatusIntake,
        backoff: Backoff | None = None,
    ) -> None:
        self._store = store
        self._conn = connection
        self._intake = intake
        self._backoff = backoff or Backoff(base=1.0, cap=300.0)
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """Look for due orders now (a new order arrived, or an operator asked for a retry)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Attempts under way."""
        return len(self._in_flight)

    async def run(self) -> None:
        """Deliver due orders until cancelled."""
        capacity = self._conn.settings.max_concurrency
        name = self._conn.name
        while True:
            self._wake.clear()
            free = capacity - len(self._in_flight)
            started = 0
            if free > 0:
                due = await self._store.due_deliveries(
                    name, utcnow(), limit=free + len(self._in_flight)
                )
                for record in due:
                    if started >= free:
                        break
                    if record.order.id not in self._in_flight:
                        self._start(record)
                        started += 1
            timeout = None
            if free > 0 and started < free:
                next_at = await self._store.next_delivery_at(name)
                if next_at is not None:
                    timeout = max(0.0, (next_at - utcnow()).total_seconds())
                    if timeout == 0.0 and started == 0:
                        timeout = None  # everything due is in flight: wait for one to finish
            await wait_for_wakeup(self._wake, timeout)

    def _start(self, record: OrderRecord) -> None:
        order_id = record.order.id
        task = asyncio.create_task(self._deliver(record), name=f"deliver-{order_id}")
        self._in_flight[order_id] = task

        def _done(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(order_id, None)
            self._wake.set()

        task.add_done_callback(_done)

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to ``grace_seconds`` for attempts under way, then cancel the rest.

        A cancelled attempt stays recorded as possibly in the POS, so the next start looks it up
        before sending it again.

        :returns: how many attempts had to be cancelled.
        """
        tasks = list(self._in_flight.values())
        if not tasks:
            return 0
        _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    async def _deliver(self, record: OrderRecord) -> None:
        try:
            await self._attempt(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failure of the host itself (e.g. the store): the order stays due. Holding its
            # slot a moment keeps a persistent fault from turning into a tight retry loop.
            logger.exception("order {}: delivery attempt failed in the host", record.order.id)
            await asyncio.sleep(HOST_FAILURE_PAUSE_SECONDS)

    async def _attempt(self, record: OrderRecord) -> None:
        conn = self._conn
        order = record.order
        maybe_in_pos = record.maybe_in_pos
        caps = conn.plugin.capabilities()
        if record.status == OrderStatus.RECEIVED:
            await self._apply(order.id, OrderStatus.SUBMITTING, source="host")
        attempt = await self._store.begin_attempt(order.id)
        source = f"pos:{conn.plugin.name}"
        try:
            async with conn.limiter:
                if maybe_in_pos:
                    if caps.order_lookup:
                        found = await self._look_up(order.id, order.location)
                        if found is not None:
                            conn.health.succeeded()
                            await self._apply(
                                order.id,
                                found.status,
                                pos_order_id=found.pos_order_id,
                                source=f"{source}:lookup",
                                reason="found in the POS after an unknown outcome",
                            )
                            return
                        maybe_in_pos = False
                    elif not caps.idempotent_submit:
                        await self._apply(
                            order.id,
                            OrderStatus.NEEDS_ATTENTION,
                            source="host",
                            reason=NEEDS_ATTENTION_REASON,
                        )
                        return
                result = await conn.plugin.submit_order(conn.ctx, order, record.idempotency_key)
        except PermanentError as exc:
            conn.health.succeeded()
            await self._apply(order.id, OrderStatus.REJECTED, source=source, reason=exc.reason)
            return
        except AuthError as exc:
            conn.health.failed(exc.message, auth=True)
            await self._retry_later(attempt, exc.message, maybe_in_pos, retry_after=None)
            return
        except (AmbiguousError, PluginBugError) as exc:
            conn.health.failed(exc.message)
            await self._retry_later(attempt, exc.message, True, retry_after=None)
            return
        except RetryableError as exc:
            conn.health.failed(exc.message)
            await self._retry_later(attempt, exc.message, maybe_in_pos, retry_after=exc.retry_after)
            return
        conn.health.succeeded()
        await self._apply(order.id, result.status, pos_order_id=result.pos_order_id, source=source)

    async def _look_up(self, order_id: str, location: str) -> FoundOrder | None:
        """Ask the POS for the order; any refusal here means "cannot tell now", never "rejected"."""
        conn = self._conn
        try:
            return await conn.plugin.find_order(conn.ctx, order_id, location)
        except PermanentError as exc:
            raise AmbiguousError(f"lookup refused: {exc.message}") from exc

    async def _apply(
        self,
        order_id: str,
        status: OrderStatus,
        *,
        source: str,
        pos_order_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        event = StatusEvent(
            order_id=order_id,
            pos_order_id=pos_order_id,
            status=status,
            source=source,
            reason=reason,
        )
        await self._intake.apply(self._conn.name, event)

    async def _retry_later(
        self,
        record: OrderRecord,
        error: str,
        maybe_in_pos: bool,
        *,
        retry_after: float | None,
    ) -> None:
        delay = self._backoff.delay(record.attempts, retry_after)
        logger.info(
            "order {}: attempt {} failed ({}); next in {:.1f}s",
            record.order.id,
            record.attempts,
            error,
            delay,
        )
        await self._store.end_attempt(
            record.order.id,
            maybe_in_pos=maybe_in_pos,
            error=error,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )

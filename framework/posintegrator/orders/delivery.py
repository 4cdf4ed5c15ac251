"""Order delivery: each accepted order reaches the POS exactly once, or is clearly not there.

The rules (see docs/orders.md):

* An attempt is recorded durably *before* the POS is called, so after a crash the host knows the
  POS may have the order.
* Every submission of an order carries the same idempotency key, saved when it was accepted.
* When an earlier attempt's outcome is unknown, the next one first looks the order up in the POS
  and only submits when the POS does not have it; a POS with neither lookup nor idempotent
  submission, or whose lookup cannot settle it, gets the order parked as NEEDS_ATTENTION
  instead of a blind resend.
* One attempt per order at a time; retries wait with exponential backoff and jitter, at least as
  long as a ``Retry-After`` asks; no attempt starts while the connection's circuit is open.
* An order that cannot reach the POS by its deadline (its pickup time, or a maximum age for
  orders wanted as soon as possible) becomes FAILED with the reason, so the cloud can refund or
  call the customer; if the POS might have it after all, it is looked up first, and parked as
  NEEDS_ATTENTION when that cannot be settled.

New orders start at once (the intake offers each to the loop, which starts it when a slot is free);
retries wake the loop when they fall due.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from loguru import logger

from posintegrator.errors import (
    AmbiguousError,
    AuthError,
    NeedsAttentionError,
    PermanentError,
    PluginBugError,
    PosError,
    RetryableError,
)
from posintegrator.model import OrderStatus, utcnow
from posintegrator.orders.cancellation import OrderCancellation
from posintegrator.orders.steps import OrderSteps
from posintegrator.runtime.backoff import Backoff
from posintegrator.runtime.connection import CircuitOpenError, Connection
from posintegrator.runtime.shutdown import cancel_and_wait
from posintegrator.runtime.wakeup import wait_for_wakeup
from posintegrator.statuses.intake import StatusIntake
from posintegrator.store import OrderRecord, Store

#: How much longer an attempt's claim lasts than the attempt may take (store writes, a pause).
ATTEMPT_LEASE_MARGIN_SECONDS = 10.0

#: How long an order's slot stays taken after the host itself failed to handle its attempt.
HOST_FAILURE_PAUSE_SECONDS = 5.0

NEEDS_ATTENTION_REASON = (
    "an earlier submission's outcome is unknown and this POS can neither look orders up nor "
    "deduplicate them: check the POS, then mark the order found or missing"
)


class OrderDelivery:
    """The delivery loop of one connection.

    :param max_age: how long an order wanted as soon as possible may take to reach the POS.
    """

    def __init__(
        self,
        store: Store,
        connection: Connection,
        intake: StatusIntake,
        *,
        max_age: timedelta,
        backoff: Backoff | None = None,
    ) -> None:
        self._store = store
        self._conn = connection
        self._steps = OrderSteps(connection, intake)
        self._max_age = max_age
        self._backoff = backoff or Backoff(base=1.0, cap=300.0)
        self._cancellation = OrderCancellation(store, connection, self._steps, self._backoff)
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        # The attempts holding one of the connection's ``max_concurrency`` slots: from the
        # claim until the POS has answered. What an attempt records afterwards needs no slot,
        # so a busy store does not keep the next order from the POS.
        self._slotted: set[str] = set()
        self._running = False

    def wake(self) -> None:
        """Look for due orders now (a new order arrived, or an operator asked for a retry)."""
        self._wake.set()

    def offer(self, record: OrderRecord) -> None:
        """Start a just-accepted order at once when a slot is free: the loop would only find
        it due in the store. Otherwise (no slot, the circuit open, the loop stopped) wake the
        loop. An order is never started twice here: what is in flight is skipped, and in a
        shared store the attempt's claim decides between workers."""
        slot_free = len(self._slotted) < self._conn.settings.max_concurrency
        if (
            self._running
            and slot_free
            and record.order.id not in self._in_flight
            and not self._conn.health.blocked_for(utcnow())
        ):
            self._start(record)
        else:
            self.wake()

    def is_in_flight(self, order_id: str) -> bool:
        """Whether an attempt for this order is under way."""
        return order_id in self._in_flight

    def deadline(self, record: OrderRecord) -> datetime:
        """When the order must have reached the POS."""
        return record.order.pickup_time or record.created_at + self._max_age

    async def run(self) -> None:
        """Deliver due orders until cancelled."""
        capacity = self._conn.settings.max_concurrency
        name = self._conn.name
        self._running = True
        try:
            await self._loop(capacity, name)
        finally:
            self._running = False

    async def _loop(self, capacity: int, name: str) -> None:
        while True:
            self._wake.clear()
            now = utcnow()
            blocked = self._conn.health.blocked_for(now)
            free = capacity - len(self._slotted)
            started = 0
            timeout: float | None = None
            if free > 0:
                limit = free + len(self._in_flight)
                due = await self._store.due_deliveries(name, now, limit)
                for record in due.records:
                    if len(self._slotted) >= capacity:  # (an offer may have taken one)
                        break
                    if record.order.id in self._in_flight:
                        continue
                    if blocked and now < self.deadline(record):
                        continue  # the circuit is open: only expire orders, call nothing
                    self._start(record)
                    started += 1
                if len(due.records) == limit and started > 0:
                    timeout = 0.0  # more may be due than this look could return
                elif due.next_at is not None:
                    timeout = max(0.0, (due.next_at - utcnow()).total_seconds())
            # With every slot taken, or everything due in flight, the end of an attempt wakes
            # the loop (and it looks again then).
            if blocked:
                timeout = blocked
            await wait_for_wakeup(self._wake, timeout)

    def _start(self, record: OrderRecord) -> None:
        order_id = record.order.id
        task = asyncio.create_task(self._deliver(record), name=f"deliver-{order_id}")
        self._in_flight[order_id] = task
        self._slotted.add(order_id)

        def _done(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(order_id, None)
            self._free_slot(order_id)
            self._wake.set()

        task.add_done_callback(_done)

    def _free_slot(self, order_id: str) -> None:
        """The attempt no longer needs the POS: another order may take its slot."""
        if order_id in self._slotted:
            self._slotted.discard(order_id)
            self._wake.set()

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
        await cancel_and_wait(pending)
        return len(pending)

    async def _deliver(self, record: OrderRecord) -> None:
        try:
            if record.cancel_pending:
                await self._cancellation.run(record)
            elif utcnow() >= self.deadline(record):
                await self._expire(record)
            else:
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
        # The claim's lease outlasts the attempt's longest run (a lookup and a submission, each
        # cut off at the call timeout): only a worker that died loses its claim.
        lease = 2 * conn.settings.call_timeout_seconds + ATTEMPT_LEASE_MARGIN_SECONDS
        attempt = await self._store.begin_attempt(order.id, lease_seconds=lease)
        if attempt is None:
            return  # cancelled since it was found due (or a cancellation waits): not sent
        if record.status == OrderStatus.RECEIVED:
            await self._steps.apply(order.id, OrderStatus.SUBMITTING, source="host")
        metrics = conn.metrics
        if attempt == 1 and metrics is not None:
            metrics.picked_up((utcnow() - record.created_at).total_seconds())
        source = self._steps.source
        try:
            try:
                if maybe_in_pos:
                    if caps.order_lookup:
                        found = await self._steps.look_up(order.id, order.location)
                        if found is not None:
                            await self._steps.found(order.id, found)
                            await self._finish(order.id, attempt, "found in the POS")
                            return
                        maybe_in_pos = False
                    elif not caps.idempotent_submit:
                        await self._steps.apply(
                            order.id,
                            OrderStatus.NEEDS_ATTENTION,
                            source="host",
                            reason=NEEDS_ATTENTION_REASON,
                        )
                        await self._finish(order.id, attempt, OrderStatus.NEEDS_ATTENTION.value)
                        return
                async with conn.calling():
                    submitting = time.perf_counter()
                    result = await conn.plugin.submit_order(conn.ctx, order, record.idempotency_key)
                    if metrics is not None:
                        metrics.submitted(time.perf_counter() - submitting)
            finally:
                self._free_slot(order.id)
        except PermanentError as exc:
            await self._steps.apply(
                order.id, OrderStatus.REJECTED, source=source, reason=exc.reason
            )
            await self._finish(order.id, attempt, OrderStatus.REJECTED.value, exc.message)
            return
        except NeedsAttentionError as exc:
            await self._steps.apply(
                order.id, OrderStatus.NEEDS_ATTENTION, source=source, reason=exc.message
            )
            await self._store.finish_attempt(
                order.id, OrderStatus.NEEDS_ATTENTION.value, exc.message, attempt=attempt
            )
            return
        except CircuitOpenError as exc:
            await self._retry_later(record, attempt, exc.message, maybe_in_pos, exc.retry_after)
            return
        except (AmbiguousError, PluginBugError) as exc:
            await self._retry_later(record, attempt, exc.message, True, None)
            return
        except (RetryableError, AuthError) as exc:
            retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
            await self._retry_later(record, attempt, exc.message, maybe_in_pos, retry_after)
            return
        await self._steps.apply(
            order.id, result.status, pos_order_id=result.pos_order_id, source=source
        )
        await self._finish(order.id, attempt, result.status.value)

    async def _finish(
        self, order_id: str, attempt: int, outcome: str, error: str | None = None
    ) -> None:
        """Record how the order's attempt settled it (and count it)."""
        await self._store.finish_attempt(order_id, outcome, error, attempt=attempt)
        if self._conn.metrics is not None:
            self._conn.metrics.attempt(outcome.lower().replace(" ", "_"))

    async def _expire(self, record: OrderRecord) -> None:
        """The deadline has passed: FAILED if the POS certainly lacks the order."""
        order = record.order
        deadline = self.deadline(record).isoformat()
        last = f" (last error: {record.last_error})" if record.last_error else ""
        if record.maybe_in_pos:
            if not self._conn.plugin.capabilities().order_lookup:
                await self._steps.apply(
                    order.id,
                    OrderStatus.NEEDS_ATTENTION,
                    source="host",
                    reason=f"not confirmed by the POS before its deadline {deadline}{last}; "
                    "the POS may have it: check the POS, then mark it found or missing",
                )
                return
            try:
                found = await self._steps.look_up(order.id, order.location)
            except PosError as exc:
                await self._steps.apply(
                    order.id,
                    OrderStatus.NEEDS_ATTENTION,
                    source="host",
                    reason=f"deadline {deadline} passed and the POS could not be asked whether "
                    f"it has the order ({exc.message}): check the POS",
                )
                return
            if found is not None:
                await self._steps.found(order.id, found)
                return
        await self._steps.apply(
            order.id,
            OrderStatus.FAILED,
            source="host",
            reason=f"could not reach the POS before its deadline {deadline}{last}",
        )

    async def _retry_later(
        self,
        record: OrderRecord,
        attempt: int,
        error: str,
        maybe_in_pos: bool,
        retry_after: float | None,
    ) -> None:
        delay = self._backoff.delay(attempt, retry_after)
        next_at = min(utcnow() + timedelta(seconds=delay), self.deadline(record))
        logger.bind(order_id=record.order.id).info(
            "order {}: attempt {} failed ({}); next at {}",
            record.order.id,
            attempt,
            error,
            next_at.isoformat(timespec="seconds"),
        )
        await self._store.end_attempt(
            record.order.id,
            maybe_in_pos=maybe_in_pos,
            error=error,
            next_attempt_at=next_at,
            attempt=attempt,
        )
        if self._conn.metrics is not None:
            self._conn.metrics.attempt("unknown" if maybe_in_pos else "retry")

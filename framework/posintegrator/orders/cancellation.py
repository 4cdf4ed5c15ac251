"""Taking a cancellation to the POS, for an order the POS has (or may have).

A cancellation is asked for through the API (``POST /v1/orders/{order_id}/cancel``). The store
cancels at once an order the POS certainly does not have; otherwise it records the request, and
the connection's delivery loop hands the order here, in the same slot a submission would take,
so a cancellation and a submission of one order never run at the same time. The rules (see
docs/orders.md#cancelling-an-order):

* An order whose submission's outcome is unknown is looked up first: not in the POS, it is
  cancelled here; in the POS, it is cancelled there. A POS that cannot be asked gets the
  cancellation refused, with what to do.
* The POS cancels (``pos_cancel_order``): the order becomes CANCELLED, with the refund the cloud
  owes for what was prepaid. The POS refuses (the kitchen has started): the order goes on, and
  the cloud hears it as an ``order.cancel_refused`` event, next in the order's sequence.
* The POS cannot be reached: the cancellation is tried again later, with backoff. The
  plugin's cancel must be idempotent, so a retry after an unknown outcome is safe.
"""

from __future__ import annotations

from datetime import timedelta

from loguru import logger

from posintegrator.errors import PermanentError, PosError, RetryableError
from posintegrator.model import OrderStatus, is_final, utcnow
from posintegrator.orders.steps import OrderSteps
from posintegrator.runtime.backoff import Backoff
from posintegrator.runtime.connection import Connection
from posintegrator.store import OrderRecord, Store

#: Statuses in which the POS has not confirmed the order.
_BEFORE_POS = frozenset({OrderStatus.RECEIVED, OrderStatus.SUBMITTING, OrderStatus.NEEDS_ATTENTION})


class OrderCancellation:
    """Cancellations of one connection's orders, one order at a time (the delivery loop's slot).

    :param steps: status changes and lookups, shared with delivery.
    :param backoff: the retry schedule when the POS cannot be reached.
    """

    def __init__(
        self, store: Store, connection: Connection, steps: OrderSteps, backoff: Backoff
    ) -> None:
        self._store = store
        self._conn = connection
        self._steps = steps
        self._backoff = backoff
        self._tries: dict[str, int] = {}

    async def run(self, record: OrderRecord) -> None:
        """Take ``record``'s waiting cancellation one step further (to an end when it can)."""
        order_id = record.order.id
        try:
            await self._cancel(record)
        except PosError as exc:
            tries = self._tries.get(order_id, 0) + 1
            self._tries[order_id] = tries
            retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
            due_at = utcnow() + timedelta(seconds=self._backoff.delay(tries, retry_after))
            logger.info(
                "order {}: cancellation not taken to the POS ({}); next try at {}",
                order_id,
                exc.message,
                due_at.isoformat(timespec="seconds"),
            )
            await self._store.cancel_later(order_id, error=exc.message, due_at=due_at)
            return
        self._tries.pop(order_id, None)

    async def _cancel(self, record: OrderRecord) -> None:
        order = record.order
        assert record.cancellation is not None
        caps = self._conn.plugin.capabilities()
        if is_final(record.status):
            await self._refuse(order.id, f"the order is already {record.status}", "host")
            return
        if record.status in _BEFORE_POS and not record.maybe_in_pos:
            # The attempt under way when it was asked for did not reach the POS after all.
            await self._steps.apply(
                order.id,
                OrderStatus.CANCELLED,
                source=record.cancellation.requested_by,
                reason=record.cancellation.reason,
            )
            return
        if record.status in _BEFORE_POS:
            # The POS may have the order (an attempt's outcome is unknown): find out first.
            if not caps.order_lookup:
                await self._refuse(
                    order.id,
                    "the POS may have this order and cannot be asked whether it does: check "
                    "the POS, mark the order found (then cancel it again) or missing",
                    "host",
                )
                return
            found = await self._steps.look_up(order.id, order.location)
            if found is None:
                await self._steps.apply(
                    order.id,
                    OrderStatus.CANCELLED,
                    source=record.cancellation.requested_by,
                    reason=f"{record.cancellation.reason} (the POS did not have the order)",
                )
                return
            await self._steps.found(order.id, found)
            if is_final(found.status):
                await self._refuse(order.id, f"the order is already {found.status}", "host")
                return
            pos_order_id: str | None = found.pos_order_id
        else:
            pos_order_id = record.pos_order_id
        if not caps.order_cancel:
            await self._refuse(
                order.id,
                f"the POS of {order.location!r} cannot cancel orders through its API: cancel "
                "it at the POS",
                "host",
            )
            return
        conn = self._conn
        try:
            async with conn.calling():
                result = await conn.plugin.cancel_order(
                    conn.ctx, order.id, pos_order_id, order.location, record.cancellation.reason
                )
        except PermanentError as exc:
            await self._refuse(order.id, exc.reason, self._steps.source)
            return
        if result.cancelled:
            await self._steps.apply(
                order.id,
                OrderStatus.CANCELLED,
                source=self._steps.source,
                pos_order_id=pos_order_id,
                reason=result.reason,
            )
        else:
            await self._refuse(order.id, result.reason or "refused by the POS", self._steps.source)

    async def _refuse(self, order_id: str, reason: str, source: str) -> None:
        logger.info("order {}: cancellation refused: {}", order_id, reason)
        await self._store.refuse_cancel(order_id, reason=reason, source=source)
        self._steps.event_queued()

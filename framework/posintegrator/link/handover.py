"""At a hub, the delivery of a local or hybrid connection's orders: each goes to the venue agent
serving its location, which delivers it to the POS (docs/link.md).

An order is queued on the agent's link in the same transaction that takes it out of the hub's
own delivery; once the agent acknowledges it, the agent owns it (the exactly-once rules of
docs/orders.md apply there) and reports its statuses back. Deadlines still hold at the hub: an
order whose message has certainly not left by its deadline (the agent offline, or no agent
approved for the location) is taken back and FAILED; one that may have left is the agent's to
settle, and the agent applies the same deadline.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from loguru import logger

from posintegrator.link.hub import LinkHub, order_message
from posintegrator.model import OrderStatus, StatusEvent, utcnow
from posintegrator.runtime.connection import Connection
from posintegrator.runtime.wakeup import wait_for_wakeup
from posintegrator.statuses.intake import StatusIntake
from posintegrator.store import OrderRecord, Store
from posintegrator.store.link import AgentRecord, HandingOver

#: How often orders waiting for an agent are checked against their deadlines.
SWEEP_SECONDS = 5.0
#: How long an order without an approved agent waits before it is looked at again.
NO_AGENT_RETRY_SECONDS = 5.0
#: Orders handed over per round, in one transaction.
BATCH = 500


class AgentHandover:
    """Hands one connection's orders to the agents serving their locations.

    It takes the place of the order delivery of a connection whose POS the hub does not call.
    """

    def __init__(
        self,
        store: Store,
        connection: Connection,
        intake: StatusIntake,
        links: LinkHub,
        *,
        max_age: timedelta,
    ) -> None:
        self._store = store
        self._conn = connection
        self._intake = intake
        self._links = links
        self._max_age = max_age
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """An order arrived, or an operator asked for a retry."""
        self._wake.set()

    def offer(self, record: OrderRecord) -> None:
        """A new order: handed over with whatever else is due, in one transaction."""
        self.wake()

    def is_in_flight(self, order_id: str) -> bool:
        """Never: handing over is one transaction, there is no call in flight to wait for."""
        return False

    async def drain(self, grace_seconds: float) -> int:
        """Nothing to wait for (see :meth:`is_in_flight`)."""
        return 0

    def deadline(self, record: OrderRecord) -> datetime:
        """When the order must have reached the POS (the agent applies the same rule)."""
        return record.order.pickup_time or record.created_at + self._max_age

    async def run(self) -> None:
        """Hand over due orders, and fail those that waited past their deadline, until
        cancelled."""
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        while True:
            self._wake.clear()
            now = utcnow()
            due = await self._store.due_deliveries(self._conn.name, now, BATCH)
            refused = await self._hand_over(due.records, now)
            if loop.time() >= next_sweep:
                await self._sweep(now)
                next_sweep = loop.time() + SWEEP_SECONDS
            timeout = max(0.0, next_sweep - loop.time())
            if refused or len(due.records) == BATCH:
                timeout = 0.0  # some may still be due, or more than this look could return
            elif due.next_at is not None:
                timeout = min(timeout, max(0.0, (due.next_at - utcnow()).total_seconds()))
            await wait_for_wakeup(self._wake, timeout)

    async def _hand_over(self, due: list[OrderRecord], now: datetime) -> bool:
        """Queue the due orders for their agents, in one transaction; fail those past their
        deadline, and put off those of a location no agent serves.

        :returns: whether the store refused some (see :meth:`Store.hand_over`): those may
            still be due.
        """
        agents: dict[str, AgentRecord | None] = {}
        handovers: list[HandingOver] = []
        for record in due:
            order = record.order
            if now >= self.deadline(record):
                await self._fail(record, "no venue agent took it")
                continue
            if order.location not in agents:
                agents[order.location] = await self._links.agent_for(order.location)
            agent = agents[order.location]
            if agent is None:
                await self._store.postpone(
                    order.id,
                    now + timedelta(seconds=NO_AGENT_RETRY_SECONDS),
                    f"no venue agent is approved for location {order.location!r}",
                )
                continue
            message = order_message(order, record.created_at)
            handovers.append(HandingOver(order.id, agent.name, message))
        if not handovers:
            return False
        numbers = await self._store.hand_over(handovers)
        for name in {h.agent for h, seq in zip(handovers, numbers, strict=True) if seq is not None}:
            self._links.wake(name)
        if None not in numbers:
            return False
        # Cancelled since found due, or its agent revoked since looked up: in case it is the
        # latter, route the next round by the agents as they are now.
        self._links.forget_agents()
        return True

    async def _sweep(self, now: datetime) -> None:
        """Take back and fail orders whose message has not left by their deadline."""
        for waiting in await self._store.handovers(self._conn.name):
            if waiting.sent or now < self.deadline(waiting.record):
                continue
            event = self._failed(waiting.record, f"agent {waiting.agent} was not reachable")
            transition = await self._store.withdraw_handover(waiting.record.order.id, event)
            if transition is not None and transition.applied:
                await self._intake.changed(transition, event)

    def _failed(self, record: OrderRecord, why: str) -> StatusEvent:
        deadline = self.deadline(record).isoformat()
        return StatusEvent(
            order_id=record.order.id,
            status=OrderStatus.FAILED,
            source="host",
            reason=f"could not reach the POS before its deadline {deadline}: {why}",
        )

    async def _fail(self, record: OrderRecord, why: str) -> None:
        logger.info("order {}: deadline passed: {}", record.order.id, why)
        await self._intake.apply(self._conn.name, self._failed(record, why))

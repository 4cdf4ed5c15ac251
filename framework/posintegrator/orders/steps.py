"""The steps order delivery and cancellation share: telling the state machine what happened, and
asking the POS whether it has an order."""

from __future__ import annotations

from posintegrator.errors import AmbiguousError, PermanentError
from posintegrator.hooktypes import FoundOrder
from posintegrator.model import OrderStatus, StatusEvent
from posintegrator.runtime.connection import Connection
from posintegrator.statuses.intake import StatusIntake


class OrderSteps:
    """Status changes and lookups of one connection's orders."""

    def __init__(self, connection: Connection, intake: StatusIntake) -> None:
        self._conn = connection
        self._intake = intake

    @property
    def source(self) -> str:
        """``source`` of what this connection's POS says: ``pos:<plugin>``."""
        return f"pos:{self._conn.plugin.name}"

    async def apply(
        self,
        order_id: str,
        status: OrderStatus,
        *,
        source: str,
        pos_order_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Offer a status change to the order's state machine."""
        event = StatusEvent(
            order_id=order_id,
            pos_order_id=pos_order_id,
            status=status,
            source=source,
            reason=reason,
        )
        await self._intake.apply(self._conn.name, event)

    def event_queued(self) -> None:
        """An event for the cloud was stored without a status change: send it soon."""
        self._intake.event_queued()

    async def look_up(self, order_id: str, location: str) -> FoundOrder | None:
        """Ask the POS for the order; any refusal here means "cannot tell now", never "rejected".

        :raises PosError: the POS could not answer (a refusal comes as an AmbiguousError).
        """
        conn = self._conn
        try:
            async with conn.calling():
                return await conn.plugin.find_order(conn.ctx, order_id, location)
        except PermanentError as exc:
            raise AmbiguousError(f"lookup refused: {exc.message}") from exc

    async def found(self, order_id: str, found: FoundOrder) -> None:
        """The POS has the order: take its id and status from the lookup's answer."""
        await self.apply(
            order_id,
            found.status,
            pos_order_id=found.pos_order_id,
            source=f"{self.source}:lookup",
            reason="found in the POS after an unknown outcome",
        )

"""Where every status event enters, whatever its source (POS webhook, polling, delivery,
operator): the order is resolved, the state machine decides, and observers hear of changes."""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from posintegrator.model import StatusEvent
from posintegrator.plugins import PluginHost
from posintegrator.store import Store, Transition


class StatusIntake:
    """Applies status events to orders and wakes the cloud outbox when one changes.

    :param on_change: called after each applied change, to wake the outbox dispatcher.
    """

    def __init__(self, store: Store, plugins: PluginHost, on_change: Callable[[], None]) -> None:
        self._store = store
        self._plugins = plugins
        self._on_change = on_change

    async def apply(self, connection: str, event: StatusEvent) -> Transition | None:
        """Offer ``event`` to its order; None when the order is not one of ``connection``'s."""
        order_id = event.order_id
        if order_id is None and event.pos_order_id is not None:
            order_id = await self._store.order_id_for_pos_id(connection, event.pos_order_id)
        transition = None
        if order_id is not None:
            try:
                transition = await self._store.apply_status(order_id, event, connection=connection)
            except KeyError:
                transition = None
        if transition is None:
            logger.debug(
                "connection {}: status event for unknown order {} / POS {} ignored",
                connection,
                event.order_id,
                event.pos_order_id,
            )
            return None
        await self.announce(transition, event)
        return transition

    def event_queued(self) -> None:
        """An event for the cloud was queued without a status change (a refused
        cancellation): wake the outbox for it."""
        self._on_change()

    async def announce(self, transition: Transition, event: StatusEvent) -> None:
        """Tell the outbox and the observers about a transition the store made (applied or
        not), whether through :meth:`apply` or in a transaction of its own (a cancellation)."""
        if transition.applied:
            await self.changed(transition, event)
        else:
            logger.debug(
                "order {}: {} not applied: {}", transition.order_id, event.status, transition.note
            )

    async def changed(self, transition: Transition, event: StatusEvent) -> None:
        """A status change was stored (here, or by the caller together with other work): wake
        the outbox and tell the observers."""
        logger.bind(order_id=transition.order_id).info(
            "order {}: {} -> {} ({})",
            transition.order_id,
            transition.old,
            transition.new,
            event.source,
        )
        self._on_change()
        await self._plugins.order_status_changed(
            transition.order_id, transition.old, transition.new, event
        )

"""A scriptable in-process POS plugin for host tests: each submission's outcome is chosen by the
test, and the plugin records what it was asked, so delivery rules can be checked exactly."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from posintegrator.context import ConnectionContext
from posintegrator.errors import PosError
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import (
    CancelResult,
    Capabilities,
    FoundOrder,
    InboundWebhook,
    SubmitResult,
    TrackedOrder,
    WebhookResult,
)
from posintegrator.model import (
    Menu,
    Order,
    OrderStatus,
    StatusEvent,
)
from posintegrator.testing import one_product_menu

#: What a scripted submission does: "ok" creates the order; "commit-then-<error>" creates it and
#: then raises the error (the POS has it but we do not know); an error raises without creating; a
#: callable is called first (if it returns an awaitable, e.g. ``event.wait``, the submission waits
#: for it: a test holds a submission in flight that way), then the order is created.
Outcome = str | PosError | Callable[[], Any]


class FakeSettings(BaseModel):
    """Settings of the fake POS (none needed)."""


@dataclass(eq=False)
class ScriptedPos:
    """The fake POS and its plugin in one object, registered with ``PluginHost.from_objects``."""

    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(
            menu=True,
            orders=True,
            order_lookup=True,
            idempotent_submit=True,
            status_webhooks=False,
            status_polling=True,
        )
    )
    outcomes: list[Outcome] = field(default_factory=list)
    submit_delay: float = 0.0
    orders: dict[str, str] = field(default_factory=dict)
    """Orders the POS holds: our id -> POS id."""
    submissions: list[tuple[str, str]] = field(default_factory=list)
    """Every submission: (our id, idempotency key)."""
    lookups: list[str] = field(default_factory=list)
    lookup_errors: list[PosError] = field(default_factory=list)
    """Errors the next lookups raise, in order."""
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: dict[str, OrderStatus] = field(default_factory=dict)
    menus: dict[str, Menu] = field(default_factory=dict)
    """Menus to serve instead of :func:`one_product_menu`, by location."""
    menu_fetches: int = 0
    cancel_outcomes: list[CancelResult | PosError] = field(default_factory=list)
    """What the next cancellations answer, in order (then: cancelled)."""
    cancels: list[tuple[str, str | None, str]] = field(default_factory=list)
    """Every cancellation asked: (our id, POS id, reason)."""
    received: dict[str, Order] = field(default_factory=dict)
    """The orders the POS took, as it was sent them."""
    menu_gate: asyncio.Event | None = None
    """When set, every menu fetch takes the menu, then waits for this event before it answers (a
    test holds a menu sync in progress that way, as a slow POS would)."""

    @hookimpl
    def pos_settings_model(self) -> type[BaseModel]:
        return FakeSettings

    @hookimpl
    def pos_capabilities(self) -> Capabilities:
        return self.capabilities

    @hookimpl
    async def pos_fetch_menu(self, ctx: ConnectionContext, location: str) -> Menu:
        self.menu_fetches += 1
        menu = (self.menus.get(location) or one_product_menu(location)).model_copy(deep=True)
        if self.menu_gate is not None:
            await self.menu_gate.wait()
        return menu

    def _create(self, order_id: str, order: Order | None = None) -> str:
        if order is not None:
            self.received.setdefault(order_id, order)
        pos_id = self.orders.setdefault(order_id, f"POS-{len(self.orders) + 1}")
        self.statuses.setdefault(order_id, OrderStatus.ACCEPTED)
        return pos_id

    @hookimpl
    async def pos_submit_order(
        self, ctx: ConnectionContext, order: Order, idempotency_key: str
    ) -> SubmitResult:
        self.submissions.append((order.id, idempotency_key))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.submit_delay:
                await asyncio.sleep(self.submit_delay)
            outcome: Outcome = self.outcomes.pop(0) if self.outcomes else "ok"
            if isinstance(outcome, tuple):
                self._create(order.id, order)
                raise outcome[1]
            if isinstance(outcome, PosError):
                raise outcome
            if callable(outcome):
                waited = outcome()
                if inspect.isawaitable(waited):
                    await waited
            return SubmitResult(pos_order_id=self._create(order.id, order))
        finally:
            self.in_flight -= 1

    @hookimpl
    async def pos_find_order(
        self, ctx: ConnectionContext, order_id: str, location: str
    ) -> FoundOrder | None:
        self.lookups.append(order_id)
        if self.lookup_errors:
            raise self.lookup_errors.pop(0)
        pos_id = self.orders.get(order_id)
        return None if pos_id is None else FoundOrder(pos_order_id=pos_id)

    @hookimpl
    async def pos_cancel_order(
        self,
        ctx: ConnectionContext,
        order_id: str,
        pos_order_id: str | None,
        location: str,
        reason: str,
    ) -> CancelResult:
        self.cancels.append((order_id, pos_order_id, reason))
        outcome = (
            self.cancel_outcomes.pop(0) if self.cancel_outcomes else CancelResult(cancelled=True)
        )
        if isinstance(outcome, PosError):
            raise outcome
        if outcome.cancelled:
            self.statuses[order_id] = OrderStatus.CANCELLED
        return outcome

    @hookimpl
    async def pos_poll_status(
        self, ctx: ConnectionContext, orders: list[TrackedOrder]
    ) -> list[StatusEvent]:
        return [
            StatusEvent(order_id=t.order_id, status=self.statuses[t.order_id], source="pos:fake")
            for t in orders
            if t.order_id in self.statuses
        ]

    @hookimpl
    async def pos_parse_webhook(
        self, ctx: ConnectionContext, request: InboundWebhook
    ) -> WebhookResult:
        return WebhookResult()


def commit_then(error: PosError) -> tuple[str, PosError]:
    """An outcome where the POS takes the order and then the answer is lost as ``error``."""
    return ("commit", error)

"""The events the host sends to the cloud, as documented in docs/cloud-webhooks.md.

Each event has a unique ``event_id`` (dedupe on it) and a ``sequence`` that counts up by one per
stream: per order for status changes, per location for menu versions. The cloud receives the
events of one stream in sequence order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from posintegrator.model import Id, OrderStatus, UniversalModel, UtcDateTime


class OrderStatusChanged(UniversalModel):
    """An order moved to a new status."""

    type: Literal["order.status_changed"] = "order.status_changed"
    event_id: str
    sequence: int = Field(ge=1, description="Counts up by one per order, from 1.")
    order_id: Id
    location: Id
    status: OrderStatus
    previous_status: OrderStatus | None
    occurred_at: UtcDateTime
    reason: str | None = None
    pos_order_id: str | None = None
    source: str


class MenuPublished(UniversalModel):
    """A location has a new menu version."""

    type: Literal["menu.published"] = "menu.published"
    event_id: str
    sequence: int = Field(ge=1, description="The menu version: counts up by one per location.")
    location: Id
    version: int
    content_hash: str
    published_at: UtcDateTime
    menu_url: str = Field(description="Path of the Integrator API route that serves this menu.")


CloudEvent = OrderStatusChanged | MenuPublished


def order_stream(order_id: str) -> str:
    """The outbox stream of one order's status events."""
    return f"order:{order_id}"


def menu_stream(location: str) -> str:
    """The outbox stream of one location's menu versions."""
    return f"menu:{location}"

"""Values exchanged through hooks besides the universal model: capabilities and results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import Field

from posintegrator.model import Id, OrderStatus, OrderType, PaymentMode, StatusEvent, UniversalModel
from posintegrator.model.availability import AvailabilityChange


class Deployment(StrEnum):
    """Where the streams of a connection run (see docs/deployer-guide.md): the plugin declares
    which of these it can serve, and a connection's ``placement`` must be one of them."""

    CENTRAL = "central"
    """The host calls the POS's API for menus, orders and statuses."""
    LOCAL = "local"
    """The POS is in the venue; a venue agent beside it runs all three streams."""
    HYBRID = "hybrid"
    """The menu through the POS's central API at the hub; orders and statuses at the venue."""


class Capabilities(UniversalModel):
    """What a POS plugin can do, so the host can refuse a configuration that cannot work."""

    menu: bool = Field(description="Implements pos_fetch_menu.")
    orders: bool = Field(description="Implements pos_submit_order.")
    order_lookup: bool = Field(
        description="Implements pos_find_order: can tell whether the POS has one of our orders."
    )
    idempotent_submit: bool = Field(
        description="The POS itself deduplicates submissions carrying the same idempotency key."
    )
    status_webhooks: bool = Field(description="Implements pos_parse_webhook for status pushes.")
    status_polling: bool = Field(description="Implements pos_poll_status.")
    order_types: list[OrderType] = Field(default_factory=lambda: list(OrderType))
    payment_modes: list[PaymentMode] = Field(default_factory=lambda: list(PaymentMode))
    deployments: list[Deployment] = Field(default_factory=lambda: [Deployment.CENTRAL])


class SubmitResult(UniversalModel):
    """What the POS answered to a submitted order."""

    pos_order_id: Id
    status: OrderStatus = OrderStatus.ACCEPTED


class FoundOrder(UniversalModel):
    """An order of ours that the POS holds, found by our reference."""

    pos_order_id: Id
    status: OrderStatus = OrderStatus.ACCEPTED


class TrackedOrder(UniversalModel):
    """An order in flight whose status the host wants to hear about."""

    order_id: Id
    pos_order_id: Id | None
    location: Id
    status: OrderStatus


@dataclass(frozen=True)
class InboundWebhook:
    """A request the POS sent to the host's webhook route, exactly as received.

    :param url: the full URL the POS called (some POSes sign it).
    :param headers: request headers (case-insensitive mapping).
    :param body: the raw body bytes (signatures are over these, never over re-encoded JSON).
    """

    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass
class WebhookResult:
    """What an inbound webhook meant.

    :param events: order status events.
    :param menu_changed_locations: locations whose menu changed: the host syncs them soon.
    :param availability: availability changes (86 and back) the host publishes at once,
        without a full menu sync.
    """

    events: list[StatusEvent] = field(default_factory=list)
    menu_changed_locations: list[str] = field(default_factory=list)
    availability: list[AvailabilityChange] = field(default_factory=list)

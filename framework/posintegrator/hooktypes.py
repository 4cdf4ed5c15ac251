"""Values exchanged through hooks besides the universal model: capabilities and results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import Field

from posintegrator.model import (
    Id,
    Menu,
    Order,
    OrderStatus,
    OrderType,
    PaymentMode,
    StatusEvent,
    UniversalModel,
)
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


class OrderFeature(StrEnum):
    """A part of an order that a POS plugin may or may not be able to carry to its POS.

    A plugin lists those it carries in :attr:`Capabilities.order_features`; the host refuses an
    order that uses any other (422, naming the field) instead of letting the plugin drop it.
    """

    LINE_DISCOUNTS = "line_discounts"
    """``lines[i].discounts``."""
    DISCOUNTS = "discounts"
    """The order's own ``discounts``."""
    CHARGES = "charges"
    """``charges``: delivery fee, service charge, packaging and bag fees."""
    TIP = "tip"
    """A ``tip`` above 0."""
    SPLIT_PAYMENTS = "split_payments"
    """More than one entry in ``payments``."""
    DELIVERY_DETAILS = "delivery_details"
    """``delivery``: address, courier, the aggregator's order id and display code."""
    TABLE = "table"
    """``table``: the table and covers of a DINE_IN order."""
    FISCAL_DOCUMENT = "fiscal_document"
    """``fiscal``: the fiscal receipt the cloud issued."""


def features_of(order: Order) -> list[tuple[OrderFeature, str]]:
    """The features ``order`` uses, each with the field that uses it (for a refusal)."""
    used: list[tuple[OrderFeature, str]] = []
    for index, line in enumerate(order.lines):
        if line.discounts:
            used.append((OrderFeature.LINE_DISCOUNTS, f"lines[{index}].discounts"))
            break
    if order.discounts:
        used.append((OrderFeature.DISCOUNTS, "discounts"))
    if order.charges:
        used.append((OrderFeature.CHARGES, "charges"))
    if order.tip:
        used.append((OrderFeature.TIP, "tip"))
    if len(order.payments) > 1:
        used.append((OrderFeature.SPLIT_PAYMENTS, "payments"))
    if order.delivery is not None:
        used.append((OrderFeature.DELIVERY_DETAILS, "delivery"))
    if order.table is not None:
        used.append((OrderFeature.TABLE, "table"))
    if order.fiscal is not None:
        used.append((OrderFeature.FISCAL_DOCUMENT, "fiscal"))
    return used


class Capabilities(UniversalModel):
    """What a POS plugin can do, so the host can refuse a configuration that cannot work."""

    menu: bool = Field(description="Implements pos_fetch_menu (or pos_fetch_menus).")
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
    order_features: list[OrderFeature] = Field(
        default_factory=list,
        description="The parts of an order it carries to the POS beyond lines, total and one "
        "payment; an order using another is refused for its locations.",
    )
    order_cancel: bool = Field(
        default=False,
        description="Implements pos_cancel_order: can cancel an order the POS already has.",
    )
    deployments: list[Deployment] = Field(default_factory=lambda: [Deployment.CENTRAL])


class SubmitResult(UniversalModel):
    """What the POS answered to a submitted order."""

    pos_order_id: Id
    status: OrderStatus = OrderStatus.ACCEPTED


class CancelResult(UniversalModel):
    """What the POS answered to a cancellation.

    :param cancelled: True when the POS cancelled (or voided) the order, or had already;
        False when it refused, typically because the kitchen has started on it.
    :param reason: the POS's words for a refusal (or a remark on the cancellation), for people.
    """

    cancelled: bool
    reason: str | None = Field(default=None, max_length=2000)


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
class SharedMenu:
    """One menu that several locations of a connection offer alike, from
    :func:`~posintegrator.hookspecs.pos_fetch_menus`.

    A POS that keeps one catalog for many locations usually gives most of them the same menu;
    returning it once, for all of them, lets the host check and hash it once.

    :param locations: the locations whose menu it is (at least one).
    :param menu: their menu; its ``location`` is one of ``locations`` (the host publishes it
        under each of them, with that location's id).
    """

    locations: list[str]
    menu: Menu


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

"""The events the host sends to the cloud, as documented in docs/cloud-webhooks.md.

Each event has a unique ``event_id`` (dedupe on it) and a ``sequence`` that counts up by one per
stream: per order for status changes and cancellation refusals, per location for menu versions.
The cloud receives the events of one stream in sequence order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from posintegrator.model import Currency, Id, MinorUnits, OrderStatus, UniversalModel, UtcDateTime
from posintegrator.model.availability import AvailabilityChange

#: Statuses after which an order will not be made: its prepaid money goes back to the customer.
REFUND_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.FAILED})


class Refund(UniversalModel):
    """Money the customer paid in advance for an order that will not be made: the cloud (which
    took it) gives it back."""

    amount: MinorUnits = Field(description="The order's PREPAID payments, in minor units.")
    currency: Currency


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
    refund: Refund | None = Field(
        default=None,
        description="Set when the order moved to CANCELLED, REJECTED or FAILED and part of it "
        "was prepaid: that money is to be refunded. Null otherwise.",
    )


class OrderCancelRefused(UniversalModel):
    """A cancellation was asked for, and the POS refused it (the kitchen has started, or the
    order is already handed over): the order goes on in ``status``."""

    type: Literal["order.cancel_refused"] = "order.cancel_refused"
    event_id: str
    sequence: int = Field(ge=1, description="Counts up by one per order, with its statuses.")
    order_id: Id
    location: Id
    status: OrderStatus = Field(description="Where the order stands: unchanged by the refusal.")
    occurred_at: UtcDateTime
    reason: str = Field(description="Why it was refused, in the POS's words when it gave some.")
    requested_by: str = Field(description="Who asked for the cancellation.")
    pos_order_id: str | None = None
    source: str


class MenuChanges(UniversalModel):
    """How many entities a new menu version added, removed and changed."""

    added: int = 0
    removed: int = 0
    changed: int = 0


class MenuNotice(UniversalModel):
    """The compact description of a new menu version that travels in its cloud event."""

    previous_version: int | None = None
    changes: MenuChanges | None = Field(
        default=None, description="Entity counts of the diff; None for a first version."
    )
    availability: list[AvailabilityChange] = Field(
        default_factory=list,
        description="When only availability changed (86 and back): the changes themselves, so "
        "the cloud can apply them without fetching anything.",
    )


class MenuPublished(UniversalModel):
    """A location has a new menu version.

    The cloud fetches ``menu_url`` (the whole menu) or ``diff_url`` (only what changed since
    ``previous_version``); availability-only versions carry their changes inline.
    """

    type: Literal["menu.published"] = "menu.published"
    event_id: str
    sequence: int = Field(ge=1, description="The menu version: counts up by one per location.")
    location: Id
    version: int
    content_hash: str
    published_at: UtcDateTime
    menu_url: str = Field(description="Path of the Integrator API route that serves this menu.")
    diff_url: str | None = Field(
        default=None,
        description="Path of the diff from the previous version to the latest one when fetched "
        "(which may be newer than this event's version), if there is a previous version.",
    )
    notice: MenuNotice = Field(default_factory=MenuNotice)


CloudEvent = OrderStatusChanged | OrderCancelRefused | MenuPublished


def order_stream(order_id: str) -> str:
    """The outbox stream of one order's status events."""
    return f"order:{order_id}"


def menu_stream(location: str) -> str:
    """The outbox stream of one location's menu versions."""
    return f"menu:{location}"


def stream_subject(stream: str) -> tuple[str, str]:
    """What an outbox stream is about: its kind (``order`` or ``menu``) and the order's id or
    the location."""
    kind, _, subject = stream.partition(":")
    return kind, subject


def order_status_changed(
    *,
    event_id: str,
    sequence: int,
    order_id: str,
    location: str,
    status: OrderStatus,
    previous_status: OrderStatus | None,
    occurred_at: datetime,
    reason: str | None,
    pos_order_id: str | None,
    source: str,
    refund: tuple[int, str] | None = None,
) -> dict[str, object]:
    """The JSON body of an :class:`OrderStatusChanged` event, built directly.

    Written for every status change inside the store's transaction, so it skips the model's
    validation; a test checks that it validates as :class:`OrderStatusChanged`.

    :param refund: the prepaid amount and its currency, when it is to be refunded.
    """
    return {
        "type": "order.status_changed",
        "event_id": event_id,
        "sequence": sequence,
        "order_id": order_id,
        "location": location,
        "status": status.value,
        "previous_status": None if previous_status is None else previous_status.value,
        "occurred_at": _utc(occurred_at),
        "reason": reason,
        "pos_order_id": pos_order_id,
        "source": source,
        "refund": None if refund is None else {"amount": refund[0], "currency": refund[1]},
    }


def order_cancel_refused(
    *,
    event_id: str,
    sequence: int,
    order_id: str,
    location: str,
    status: OrderStatus,
    occurred_at: datetime,
    reason: str,
    requested_by: str,
    pos_order_id: str | None,
    source: str,
) -> dict[str, object]:
    """The JSON body of an :class:`OrderCancelRefused` event (a test checks it validates)."""
    return {
        "type": "order.cancel_refused",
        "event_id": event_id,
        "sequence": sequence,
        "order_id": order_id,
        "location": location,
        "status": status.value,
        "occurred_at": _utc(occurred_at),
        "reason": reason,
        "requested_by": requested_by,
        "pos_order_id": pos_order_id,
        "source": source,
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

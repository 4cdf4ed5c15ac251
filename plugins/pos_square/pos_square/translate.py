"""Pure translation of Square orders into the universal model's statuses.

No I/O here: every function takes decoded Square JSON and returns status events, so the mapping
is testable against recorded fixtures. The catalog's translation into a menu is in
:mod:`pos_square.catalog`, the orders, payments and cancellations sent to Square in
:mod:`pos_square.orders`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pos_square.documents import (
    SquareOrder,
    read,
)
from posintegrator.errors import PermanentError
from posintegrator.model import (
    OrderStatus,
    StatusEvent,
)

JSONDict = dict[str, Any]

#: ``source`` of every status event this plugin produces.
EVENT_SOURCE = "pos:square"

_FULFILLMENT_STATES: dict[str, OrderStatus] = {
    "PROPOSED": OrderStatus.ACCEPTED,
    "RESERVED": OrderStatus.IN_PREPARATION,
    "PREPARED": OrderStatus.READY,
    "COMPLETED": OrderStatus.COMPLETED,
    "CANCELED": OrderStatus.CANCELLED,
    "FAILED": OrderStatus.FAILED,
}


def rfc3339(value: datetime) -> str:
    """A datetime as Square wants it: UTC, ``Z``, milliseconds."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------
# Order: universal -> Square
# ---------------------------------------------------------------------------------------------


def status_from_fulfillment(state: str) -> OrderStatus:
    """Map a Square ``FulfillmentState`` to the universal status.

    :raises ValueError: for a state this plugin does not know, rather than guessing.
    """
    try:
        return _FULFILLMENT_STATES[state]
    except KeyError:
        raise ValueError(f"unknown Square fulfillment state {state!r}") from None


def status_from_order_state(state: str | None, fulfillment_state: str | None) -> OrderStatus | None:
    """The status of an order from its ``state`` and its pickup fulfillment's state.

    ``CANCELED`` and ``COMPLETED`` orders are final whatever their fulfillment says; an ``OPEN``
    order follows its fulfillment (``ACCEPTED`` when it has none); ``DRAFT`` orders have no status
    to report (None).
    """
    if state == "CANCELED":
        return OrderStatus.CANCELLED
    if state == "COMPLETED":
        return OrderStatus.COMPLETED
    if state == "DRAFT":
        return None
    if fulfillment_state is None:
        return OrderStatus.ACCEPTED
    return status_from_fulfillment(fulfillment_state)


def pickup_state(square_order: JSONDict) -> str | None:
    """The state of the order's PICKUP fulfillment (else of its first one), if it has one."""
    fulfillments = square_order.get("fulfillments") or []
    chosen = next((f for f in fulfillments if f.get("type") == "PICKUP"), None)
    if chosen is None and fulfillments:
        chosen = fulfillments[0]
    return None if chosen is None else chosen.get("state")


def status_of_order(square_order: JSONDict) -> OrderStatus | None:
    """The universal status of a Square ``Order`` document (None for a draft)."""
    return status_from_order_state(square_order.get("state"), pickup_state(square_order))


def status_of_order_document(document: Any) -> OrderStatus | None:
    """The universal status of an ``Order`` document Square sent (None for a draft).

    :raises PermanentError: for a document that is not a readable order, or whose pickup
        fulfillment is in a state this plugin does not know, naming the field.
    """
    return _status_of(read(SquareOrder, document, "order"))


def status_event_from_order(document: Any) -> StatusEvent | None:
    """A status event for a Square ``Order`` document (from BatchRetrieveOrders); None for a
    draft. ``pos_event_id`` is the order id and version, so the host can drop repeats.

    :raises PermanentError: as :func:`status_of_order_document`.
    """
    order = read(SquareOrder, document, "order")
    status = _status_of(order)
    if status is None:
        return None
    return StatusEvent(
        order_id=order.reference_id,
        pos_order_id=order.id,
        status=status,
        occurred_at=order.updated_at or datetime.now(UTC),
        source=EVENT_SOURCE,
        pos_event_id=f"{order.id}:v{order.version}",
    )


def _status_of(order: SquareOrder) -> OrderStatus | None:
    pickup = order.pickup()
    try:
        return status_from_order_state(order.state, None if pickup is None else pickup[1].state)
    except ValueError as exc:
        index = 0 if pickup is None else pickup[0]
        message = f"unreadable Square order {order.id!r}: fulfillments[{index}].state: {exc}"
        raise PermanentError(message) from None

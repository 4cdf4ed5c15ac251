"""Pure translation between Square orders and the universal model: orders and payments out,
statuses in.

No I/O here: every function takes decoded Square JSON (or a universal model object) and returns
the other side, so the whole mapping is testable against recorded fixtures. Money stays in
integer minor units on both sides (Square's ``Money.amount`` already is). The catalog's
translation into a menu is in :mod:`pos_square.catalog`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pos_square.documents import (
    SquareOrder,
    read,
)
from posintegrator.errors import PermanentError
from posintegrator.model import (
    Order,
    OrderLine,
    OrderStatus,
    OrderType,
    PaymentMode,
    SelectedModifier,
    StatusEvent,
)

JSONDict = dict[str, Any]

#: ``source`` of every status event this plugin produces.
EVENT_SOURCE = "pos:square"
#: ``Order.source.name`` of the orders we create; lookups filter on it.
ORDER_SOURCE_NAME = "posintegrator"
#: Metadata keys on the Square orders we create.
META_ORDER_ID = "posintegrator_order_id"
META_KEY = "posintegrator_key"
META_PREPAID = "posintegrator_prepaid_amount"
#: Square's limits on the fields we fill (from the OpenAPI spec).
REFERENCE_ID_MAX = 40
PAYMENT_KEY_MAX = 45
RECIPIENT_PHONE_MAX = 17
PICKUP_NOTE_MAX = 500
TICKET_NAME_MAX = 30

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


def order_to_square(
    order: Order,
    square_location_id: str,
    idempotency_key: str,
    *,
    variations: Mapping[str, str] | None = None,
) -> JSONDict:
    """The CreateOrder request body for ``order``.

    ``reference_id`` is our order id (Square allows 40 characters), line items name the
    ``ITEM_VARIATION`` (our variant id; never the item), modifiers name the ``MODIFIER`` (nested
    choices are flattened: Square modifiers do not nest), and one ``PICKUP`` fulfillment carries
    the customer, the pickup time (``ASAP`` when none) and the customer's note. Prices are left to
    Square's catalog, which is where the menu's prices came from.

    :param variations: item id -> its only variation id, for lines that name no variant.
    :raises ValueError: for an order Square cannot take (a combo, an order type other than
        take-away, a reference longer than 40 characters, a line without a variation); the
        plugin turns it into a :class:`~posintegrator.errors.PermanentError`.
    """
    if order.type != OrderType.TAKE_AWAY:
        raise ValueError(f"order type {order.type} is not supported: Square takes PICKUP orders")
    if len(order.id) > REFERENCE_ID_MAX:
        raise ValueError(
            f"order id {order.id!r} is longer than Square's {REFERENCE_ID_MAX}-character "
            "reference_id"
        )
    metadata = {META_ORDER_ID: order.id, META_KEY: idempotency_key}
    if order.payment.mode == PaymentMode.PREPAID:
        metadata[META_PREPAID] = str(order.payment.amount)
    body: JSONDict = {
        "location_id": square_location_id,
        "reference_id": order.id,
        "source": {"name": ORDER_SOURCE_NAME},
        "line_items": [
            _line_item(n, line, variations or {}) for n, line in enumerate(order.lines, 1)
        ],
        "fulfillments": [_pickup(order)],
        "metadata": metadata,
        # Let Square apply the items' catalog taxes, as the menu we published says they apply:
        # the order's total then matches what the cloud charged.
        "pricing_options": {"auto_apply_taxes": True},
    }
    if order.customer is not None and order.customer.name:
        body["ticket_name"] = order.customer.name[:TICKET_NAME_MAX]
    return {"idempotency_key": idempotency_key, "order": body}


def _line_item(number: int, line: OrderLine, variations: Mapping[str, str]) -> JSONDict:
    if line.components:
        raise ValueError(
            f"line {number}: combo {line.product_id!r} cannot be sent: Square has no combos"
        )
    variation = line.variant_id or variations.get(line.product_id)
    if variation is None:
        raise ValueError(f"line {number}: product {line.product_id!r} names no variation")
    item: JSONDict = {
        "uid": f"line-{number}",
        "catalog_object_id": variation,
        "quantity": str(line.quantity),
    }
    modifiers = _flatten(line.modifiers)
    if modifiers:
        item["modifiers"] = [
            {"uid": f"line-{number}-mod-{m}", "catalog_object_id": option, "quantity": str(qty)}
            for m, (option, qty) in enumerate(modifiers, 1)
        ]
    if line.note:
        item["note"] = line.note
    return item


def _flatten(modifiers: list[SelectedModifier]) -> list[tuple[str, int]]:
    """Selected modifiers and everything nested in them, depth first, as (id, quantity)."""
    flat: list[tuple[str, int]] = []
    for modifier in modifiers:
        flat.append((modifier.option_id, modifier.quantity))
        flat.extend(_flatten(modifier.modifiers))
    return flat


def _pickup(order: Order) -> JSONDict:
    customer = order.customer
    recipient: JSONDict = {
        "display_name": (customer.name if customer and customer.name else f"Order {order.id}")
    }
    if customer is not None and customer.phone:
        phone = "".join(ch for ch in customer.phone if ch.isdigit() or ch == "+")
        if 0 < len(phone) <= RECIPIENT_PHONE_MAX:
            recipient["phone_number"] = phone
    details: JSONDict = {"recipient": recipient}
    if order.pickup_time is not None:
        details["schedule_type"] = "SCHEDULED"
        details["pickup_at"] = rfc3339(order.pickup_time)
    else:
        details["schedule_type"] = "ASAP"
    if order.customer_note:
        details["note"] = order.customer_note[:PICKUP_NOTE_MAX]
    return {"uid": "pickup", "type": "PICKUP", "state": "PROPOSED", "pickup_details": details}


def payment_idempotency_key(key: str) -> str:
    """The CreatePayment idempotency key that belongs to order key ``key`` (at most 45 chars)."""
    candidate = f"{key}-pay"
    if len(candidate) <= PAYMENT_KEY_MAX:
        return candidate
    return "pay-" + hashlib.sha256(key.encode()).hexdigest()[: PAYMENT_KEY_MAX - 4]


def payment_request(
    *,
    amount: int,
    currency: str,
    square_order_id: str,
    key: str,
    order_id: str,
    square_location_id: str | None = None,
    provider_reference: str | None = None,
) -> JSONDict:
    """A CreatePayment body recording money taken outside Square against a Square order."""
    external: JSONDict = {"type": "OTHER", "source": ORDER_SOURCE_NAME}
    if provider_reference:
        external["source_id"] = provider_reference[:255]
    body: JSONDict = {
        "idempotency_key": payment_idempotency_key(key),
        "source_id": "EXTERNAL",
        "amount_money": {"amount": amount, "currency": currency},
        "order_id": square_order_id,
        "external_details": external,
        "autocomplete": True,
    }
    if len(order_id) <= REFERENCE_ID_MAX:
        body["reference_id"] = order_id
    if square_location_id is not None:
        body["location_id"] = square_location_id
    return body


def payment_for(
    order: Order, square_order_id: str, key: str, *, square_location_id: str | None = None
) -> JSONDict | None:
    """The CreatePayment body recording a PREPAID order as paid; None for AT_COUNTER.

    ``source_id: "EXTERNAL"`` with ``external_details`` {type ``OTHER``, source
    ``posintegrator``}; the idempotency key is derived from ours (:func:`payment_idempotency_key`)
    so a retry records the payment once.
    """
    if order.payment.mode != PaymentMode.PREPAID:
        return None
    return payment_request(
        amount=order.payment.amount,
        currency=order.currency,
        square_order_id=square_order_id,
        key=key,
        order_id=order.id,
        square_location_id=square_location_id,
        provider_reference=order.payment.reference,
    )


def missing_payment(square_order: JSONDict) -> JSONDict | None:
    """The CreatePayment body a PREPAID order of ours still needs, from its metadata.

    Used when a lookup finds an order whose submission was cut short between CreateOrder and
    CreatePayment: the metadata carries our key and the prepaid amount, so the payment is the
    same request (same idempotency key) the submission would have sent. None when the order is
    not ours, not prepaid, or already has tenders.
    """
    metadata = square_order.get("metadata") or {}
    amount, key = metadata.get(META_PREPAID), metadata.get(META_KEY)
    if amount is None or key is None or square_order.get("tenders"):
        return None
    total = square_order.get("total_money") or {}
    return payment_request(
        amount=int(amount),
        currency=total.get("currency") or "USD",
        square_order_id=square_order["id"],
        key=key,
        order_id=metadata.get(META_ORDER_ID) or square_order.get("reference_id") or "",
        square_location_id=square_order.get("location_id"),
    )


# ---------------------------------------------------------------------------------------------
# Status: Square -> universal
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

"""Square webhook notifications: signature check and reading, without I/O.

Square signs each notification with the subscription's signature key:
``x-square-hmacsha256-signature = base64(HMAC-SHA256(key, notification_url + raw body))``, where
``notification_url`` is the URL exactly as registered in the subscription.

Events read (others are acknowledged and ignored):

* ``order.created``, ``order.updated`` (``data.object.order_created`` / ``order_updated``): the
  order's ``state`` -> status; an ``OPEN`` order is ``ACCEPTED`` as far as the event tells (these
  events carry no fulfillment state; the plugin asks Square for the order when it needs more);
* ``order.fulfillment.updated`` (``data.object.order_fulfillment_updated``): the ``new_state`` of
  the changed fulfillment, unless the order itself is ``CANCELED``/``COMPLETED``;
* ``catalog.version.updated``: the menu changed (the caller names the locations: a Square
  catalog is per seller, not per location).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from pos_square.documents import Envelope, OrderNotification, read
from pos_square.translate import EVENT_SOURCE, status_from_order_state
from posintegrator.errors import PermanentError
from posintegrator.hooktypes import WebhookResult
from posintegrator.model import OrderStatus, StatusEvent

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
ORDER_EVENTS = {
    "order.created": "order_created",
    "order.updated": "order_updated",
    "order.fulfillment.updated": "order_fulfillment_updated",
}
CATALOG_EVENT = "catalog.version.updated"


def verify_signature(signature_key: bytes, notification_url: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is Square's signature of ``body`` sent to ``notification_url``.

    Compared in constant time over the raw bytes (never over re-encoded JSON). A header that
    is not UTF-8 (handed over with surrogate escapes) is compared as the bytes it was.
    """
    digest = hmac.new(signature_key, notification_url.encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    return hmac.compare_digest(expected, header.strip().encode(errors="surrogateescape"))


@dataclass(frozen=True)
class OrderNotice:
    """What an order notification says about one order, before it becomes a status event.

    :param needs_order: the event gave no fulfillment state for an ``OPEN`` order: fetch the
        order to know where its fulfillment stands.
    """

    event_id: str
    event_type: str
    square_order_id: str
    square_location_id: str | None
    version: int | None
    state: str | None
    fulfillment_state: str | None
    occurred_at: datetime | None

    @property
    def needs_order(self) -> bool:
        return self.state == "OPEN" and self.fulfillment_state is None

    def status(self) -> OrderStatus | None:
        """The status the notification tells (None for a draft order)."""
        return status_from_order_state(self.state, self.fulfillment_state)

    def event(self, status: OrderStatus | None = None) -> StatusEvent | None:
        """The status event of this notice (``status`` overrides what the notice tells)."""
        status = status or self.status()
        if status is None:
            return None
        return StatusEvent(
            pos_order_id=self.square_order_id,
            status=status,
            source=EVENT_SOURCE,
            pos_event_id=self.event_id,
            **({"occurred_at": self.occurred_at} if self.occurred_at is not None else {}),
        )


@dataclass(frozen=True)
class Notification:
    """A verified notification, read: its id, its type and, for an order event, the notice."""

    event_id: str
    type: str | None
    notice: OrderNotice | None


def load(body: bytes) -> dict[str, Any]:
    """Decode a notification body.

    :raises PermanentError: for a body that is not a JSON object.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"unreadable Square notification: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise PermanentError("unreadable Square notification: not a JSON object")
    return document


def read_notification(body: bytes) -> Notification:
    """Decode and read a (verified) notification body.

    :raises PermanentError: for a body that cannot be read: not a JSON object, no
        ``event_id``, an order notification missing its order or with fields of the wrong type
        (naming the field and the reason).
    """
    document = load(body)
    envelope = read(Envelope, document, "notification")
    notice = order_notice(document) if envelope.type in ORDER_EVENTS else None
    return Notification(envelope.event_id, envelope.type, notice)


def order_notice(document: dict[str, Any]) -> OrderNotice:
    """The order notice of a decoded order notification.

    :raises PermanentError: for a notification missing its order or with unreadable fields,
        or one whose order (or fulfillment) state this plugin does not know.
    """
    notification = read(OrderNotification, document, f"{document.get('type')} notification")
    event_type = str(notification.type)
    payload = ORDER_EVENTS[event_type]
    change = getattr(notification.data.object, payload)
    where = f"unreadable Square {event_type} notification"
    if change is None:
        raise PermanentError(f"{where}: data.object.{payload}: Field required")
    square_order_id = change.order_id or notification.data.id
    if square_order_id is None:
        raise PermanentError(f"{where}: data.object.{payload}.order_id: Field required")
    updates = change.fulfillment_update or []
    notice = OrderNotice(
        event_id=notification.event_id,
        event_type=event_type,
        square_order_id=square_order_id,
        square_location_id=change.location_id,
        version=change.version,
        state=change.state,
        fulfillment_state=updates[-1].new_state if updates else None,
        occurred_at=notification.created_at or change.updated_at,
    )
    try:
        notice.status()
    except ValueError as exc:
        field = f"data.object.{payload}.fulfillment_update[{len(updates) - 1}].new_state"
        raise PermanentError(f"{where}: {field}: {exc}") from None
    return notice


def parse_event(body: bytes, locations: list[str] | tuple[str, ...] = ()) -> WebhookResult:
    """What a (verified) Square notification means.

    :param locations: the connection's locations, all of which a catalog change affects.
    :raises PermanentError: for a body that cannot be read.
    """
    notification = read_notification(body)
    if notification.type == CATALOG_EVENT:
        return WebhookResult(menu_changed_locations=list(locations))
    if notification.notice is None:
        return WebhookResult()
    event = notification.notice.event()
    return WebhookResult(events=[] if event is None else [event])

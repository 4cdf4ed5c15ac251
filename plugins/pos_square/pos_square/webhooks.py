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
from typing import Any

import orjson

from pos_square.translate import EVENT_SOURCE, parse_time, status_from_order_state
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

    Compared in constant time over the raw bytes (never over re-encoded JSON).
    """
    digest = hmac.new(signature_key, notification_url.encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    return hmac.compare_digest(expected, header.strip().encode())


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
    occurred_at: str | None

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
        occurred = parse_time(self.occurred_at)
        return StatusEvent(
            pos_order_id=self.square_order_id,
            status=status,
            source=EVENT_SOURCE,
            pos_event_id=self.event_id,
            **({"occurred_at": occurred} if occurred is not None else {}),
        )


def load(body: bytes) -> dict[str, Any]:
    """Decode a notification body.

    :raises ValueError: for a body that is not a JSON object.
    """
    document = orjson.loads(body)
    if not isinstance(document, dict):
        raise ValueError("a Square notification is a JSON object")
    return document


def order_notice(document: dict[str, Any]) -> OrderNotice | None:
    """The order notice in a decoded notification, or None for another event type.

    :raises KeyError, ValueError, TypeError: for an order notification missing its fields.
    """
    event_type = document.get("type")
    if event_type not in ORDER_EVENTS:
        return None
    data = document["data"]
    payload = data["object"][ORDER_EVENTS[event_type]]
    fulfillment_state = None
    updates = payload.get("fulfillment_update") or []
    if updates:
        fulfillment_state = updates[-1].get("new_state")
    version = payload.get("version")
    return OrderNotice(
        event_id=str(document["event_id"]),
        event_type=event_type,
        square_order_id=str(payload.get("order_id") or data["id"]),
        square_location_id=payload.get("location_id"),
        version=None if version is None else int(version),
        state=payload.get("state"),
        fulfillment_state=fulfillment_state,
        occurred_at=document.get("created_at") or payload.get("updated_at"),
    )


def parse_event(body: bytes, locations: list[str] | tuple[str, ...] = ()) -> WebhookResult:
    """What a (verified) Square notification means.

    :param locations: the connection's locations, all of which a catalog change affects.
    :raises ValueError: (or ``KeyError``/``TypeError``) for a body that cannot be read.
    """
    document = load(body)
    if document.get("type") == CATALOG_EVENT:
        return WebhookResult(menu_changed_locations=list(locations))
    notice = order_notice(document)
    if notice is None:
        return WebhookResult()
    event = notice.event()
    return WebhookResult(events=[] if event is None else [event])

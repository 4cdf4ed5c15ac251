"""Square-shaped webhook events, signed as Square documents.

``x-square-hmacsha256-signature`` = base64(HMAC-SHA256(signature_key, notification_url + body)).

One subscription with one signature key, as in Square: UpdateWebhookSubscriptionSignatureKey
replaces the key, and events emitted from then on are signed with the new one. An event keeps
the signature it was given when emitted, retries included (Square does not document whether it
signs a retry anew; keeping the first signature is the case a receiver must be ready for).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from .state import now_rfc3339

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
SUBSCRIPTION_ID = "wbhk_b35f6b3145074cf9ad513610786c19d5"

EVENT_SCHEMAS = {
    "order.created": "OrderCreatedEvent",
    "order.updated": "OrderUpdatedEvent",
    "order.fulfillment.updated": "OrderFulfillmentUpdatedEvent",
    "catalog.version.updated": "CatalogVersionUpdatedEvent",
}


def sign(signature_key: str, notification_url: str, body: bytes) -> str:
    """Square's webhook signature."""
    digest = hmac.new(
        signature_key.encode(), notification_url.encode() + body, hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Delivery:
    """One event and what became of its delivery."""

    event: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    statuses: list[int | str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(isinstance(s, int) and 200 <= s < 300 for s in self.statuses)


class WebhookSender:
    """Builds, validates, records and (when a URL is set) POSTs events in the background.

    :param retry_delays: seconds to wait before each retry of a failed delivery (Square retries
        for up to 72 hours; tests want short delays or none).
    """

    def __init__(
        self,
        merchant_id: str,
        *,
        notification_url: str | None = None,
        signature_key: str | None = None,
        retry_delays: tuple[float, ...] = (),
        validate: Any = None,
    ) -> None:
        self.merchant_id = merchant_id
        self.notification_url = notification_url
        self.signature_key = signature_key or "double-signature-key"
        self.subscription_id = SUBSCRIPTION_ID
        self._rotations: dict[str, str] = {}
        self.retry_delays = retry_delays
        self.enabled = True
        self.deliveries: list[Delivery] = []
        self._validate = validate
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def rotate_signature_key(self, idempotency_key: str | None = None) -> str:
        """Replace the signature key (UpdateWebhookSubscriptionSignatureKey); returns the new one.

        A repeat with the same idempotency key answers the key it made the first time.
        """
        if idempotency_key is not None and idempotency_key in self._rotations:
            return self._rotations[idempotency_key]
        self.signature_key = secrets.token_urlsafe(16)  # 22 characters, like Square's keys
        if idempotency_key is not None:
            self._rotations[idempotency_key] = self.signature_key
        return self.signature_key

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted, delivered or not."""
        return [d.event for d in self.deliveries]

    def emit(self, event_type: str, data: dict[str, Any]) -> Delivery:
        event = {
            "merchant_id": self.merchant_id,
            "type": event_type,
            "event_id": str(uuid.uuid4()),
            "created_at": now_rfc3339(),
            "data": data,
        }
        if self._validate is not None:
            self._validate(EVENT_SCHEMAS[event_type], event)
        body = orjson.dumps(event)
        headers = {"Content-Type": "application/json", "User-Agent": "Square Connect v2"}
        if self.notification_url:
            headers[SIGNATURE_HEADER] = sign(self.signature_key, self.notification_url, body)
        delivery = Delivery(event, body, headers)
        self.deliveries.append(delivery)
        if self.notification_url and self.enabled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return delivery
            task = loop.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return delivery

    async def _deliver(self, delivery: Delivery) -> None:
        assert self.notification_url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        attempts = (0.0, *self.retry_delays)
        for number, delay in enumerate(attempts):
            if delay:
                await asyncio.sleep(delay)
            headers = dict(delivery.headers)
            if number:
                headers["square-retry-number"] = str(number)
                headers["square-retry-reason"] = "http_error"
            try:
                async with self._session.post(
                    self.notification_url, data=delivery.body, headers=headers
                ) as response:
                    delivery.statuses.append(response.status)
                    if 200 <= response.status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery.statuses.append(type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the deliveries in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

"""Signed webhooks to the cloud, delivered from the outbox until acknowledged.

Scheme (docs/cloud-webhooks.md): each POST carries

* ``X-Posintegrator-Event-Id``: the event's unique id (dedupe on it);
* ``X-Posintegrator-Timestamp``: Unix seconds when this delivery attempt was signed;
* ``X-Posintegrator-Signature``: ``v1=`` + hex HMAC-SHA256 over ``"{timestamp}." + raw body``
  with the shared secret.

The cloud recomputes the HMAC over the exact bytes it received, compares in constant time, and
refuses timestamps older than a few minutes (replay protection). A 2xx answer acknowledges the
event; anything else, or no answer, is retried with growing delays, forever: events of one stream
(one order, one location's menu) are delivered strictly in sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import timedelta

import aiohttp
from loguru import logger

from posintegrator.model import utcnow
from posintegrator.runtime.backoff import Backoff
from posintegrator.runtime.wakeup import wait_for_wakeup
from posintegrator.settings import CloudSettings
from posintegrator.store import OutboxEvent, Store

SIGNATURE_HEADER = "X-Posintegrator-Signature"
TIMESTAMP_HEADER = "X-Posintegrator-Timestamp"
EVENT_ID_HEADER = "X-Posintegrator-Event-Id"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0
) -> bool:
    """Whether ``signature`` is ours for ``body`` at ``timestamp``, and recent enough.

    The check a cloud receiver runs; used by the demo receiver and the tests.
    """
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - moment) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, moment, body), signature)


class CloudNotifier:
    """Delivers outbox events to the cloud's webhook URL."""

    def __init__(
        self,
        store: Store,
        http: aiohttp.ClientSession,
        settings: CloudSettings,
        *,
        backoff: Backoff | None = None,
        batch: int = 32,
    ) -> None:
        self._store = store
        self._http = http
        self._settings = settings
        self._backoff = backoff or Backoff(base=1.0, cap=600.0)
        self._batch = batch
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        """New events are waiting."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled. Without a webhook URL, events wait in the outbox."""
        if self._settings.webhook_url is None:
            logger.warning("cloud.webhook_url is not set: events stay in the outbox")
            return
        while True:
            self._wake.clear()
            due = await self._store.outbox_due(utcnow(), self._batch)
            if due:
                await asyncio.gather(*(self._deliver(event) for event in due))
                continue
            next_at = await self._store.outbox_next_at()
            timeout = None if next_at is None else max(0.0, (next_at - utcnow()).total_seconds())
            await wait_for_wakeup(self._wake, timeout)

    async def _deliver(self, event: OutboxEvent) -> None:
        url = str(self._settings.webhook_url)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self._settings.webhook_secret is not None:
            secret = self._settings.webhook_secret.get_secret_value().encode()
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, event.body)
        error: str
        try:
            async with self._http.post(
                url,
                data=event.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
            ) as response:
                if 200 <= response.status < 300:
                    await self._store.outbox_delivered(event.event_id)
                    self.delivered += 1
                    return
                error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.failures += 1
        delay = self._backoff.delay(event.attempts + 1)
        if event.attempts == 0 or event.attempts % 10 == 0:
            logger.warning(
                "cloud webhook {} ({}) failed: {}; retrying in {:.0f}s",
                event.event_id,
                event.stream,
                error,
                delay,
            )
        await self._store.outbox_failed(event.event_id, error, utcnow() + timedelta(seconds=delay))

"""Signed webhooks to the cloud, delivered from the outbox until acknowledged.

Each event is one POST of its JSON body, signed in the Standard Webhooks format with every
active secret (see :mod:`posintegrator.cloud.signatures` and docs/cloud-webhooks.md). A 2xx
answer acknowledges the event; anything else, or no answer, is retried with growing delays,
forever: events of one stream (one order, one location's menu) are delivered strictly in
sequence. Each attempt is signed anew, with its own timestamp; the id and body stay the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import aiohttp
from loguru import logger

from posintegrator.cloud.signatures import secret_key, signed_headers
from posintegrator.model import utcnow
from posintegrator.runtime.backoff import Backoff
from posintegrator.runtime.wakeup import wait_for_wakeup
from posintegrator.settings import CloudSettings
from posintegrator.store import OutboxEvent, Store


def delivery_headers(
    keys: Sequence[bytes], event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of one delivery attempt: the content type and the signature headers."""
    return {"Content-Type": "application/json", **signed_headers(keys, event_id, timestamp, body)}


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
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        """:param observe: told of every delivery: ``delivered`` or ``failed``, and how long
        it took in seconds (metrics)."""
        self._store = store
        self._observe = observe
        self._http = http
        self._settings = settings
        self._keys = [secret_key(secret.get_secret_value()) for secret in settings.webhook_secrets]
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
        headers = delivery_headers(self._keys, event.event_id, timestamp, event.body)
        error: str
        started = time.perf_counter()
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
                    if self._observe is not None:
                        self._observe("delivered", time.perf_counter() - started)
                    return
                error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.failures += 1
        if self._observe is not None:
            self._observe("failed", time.perf_counter() - started)
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

"""Outbound, HMAC-signed webhooks for change-feed events and availability changes.

Each event is POSTed to ``config.webhook_url`` with the exact bytes of its JSON body signed
as ``X-DemoPOS-Signature: sha256=<hex>``. Delivery runs in background tasks (never blocking
the API), one FIFO queue per order (and one per location for ``availability`` events) so an
order's events arrive in order, while a failing order does not hold up others. Failed attempts
(network error or non-2xx) are retried with growing pauses, then dropped (the ``/events`` feed
remains the source of truth for orders, ``GET /menu`` for availability).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from collections import deque

import aiohttp
import orjson

from .config import SimulatorConfig
from .errors import JSONDict

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DemoPOS-Signature"
EVENT_HEADER = "X-DemoPOS-Event"


def sign(secret: str, body: bytes) -> str:
    """Return the signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


#: How long a webhook picked for reordering waits for a later one to overtake it.
REORDER_HOLD_SECONDS = 0.5


class WebhookDispatcher:
    """Queues events per order and delivers them in the background."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._queues: dict[str, deque[JSONDict]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        self.duplicated = 0
        self.reordered = 0
        self._dice = random.Random(config.fault_seed)

    def enqueue(self, event: JSONDict) -> None:
        """Schedule delivery of one event (no-op when webhooks are disabled)."""
        if not self.config.webhook_url:
            return
        key = _queue_key(event)
        self._queues.setdefault(key, deque()).append(event)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"demopos-webhook-{key}")

    async def idle(self, wait_seconds: float = 10.0) -> None:
        """Wait until every queued event was delivered or given up (useful in tests)."""
        async with asyncio.timeout(wait_seconds):
            while self._workers:
                await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop all deliveries (pending events are dropped) and close the HTTP session."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self, key: str) -> None:
        """Deliver the queue of one order head-first until it is empty."""
        queue = self._queues[key]
        try:
            while queue:
                if self._strikes(self.config.webhook_reorder_rate):
                    # Injected fault: hold the event back until a later one overtakes it.
                    if len(queue) == 1:
                        await asyncio.sleep(REORDER_HOLD_SECONDS)
                    if len(queue) > 1:
                        queue[0], queue[1] = queue[1], queue[0]
                        self.reordered += 1
                await self._deliver(queue[0])
                if self._strikes(self.config.webhook_duplicate_rate):
                    self.duplicated += 1
                    await self._deliver(queue[0])
                queue.popleft()
        finally:
            # No await between the final emptiness check and this cleanup, so enqueue()
            # cannot slip an event in unnoticed.
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    async def _deliver(self, event: JSONDict) -> None:
        """POST one event, retrying with the configured pauses."""
        body = orjson.dumps(event)
        delays = self.config.webhook_retry_delays
        for attempt in range(len(delays) + 1):
            url = self.config.webhook_url
            if not url:
                return
            headers = {"Content-Type": "application/json", EVENT_HEADER: _event_id(event)}
            if self.config.webhook_secret is not None:
                headers[SIGNATURE_HEADER] = sign(self.config.webhook_secret, body)
            try:
                async with self._client().post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout_seconds),
                ) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        self.delivered += 1
                        return
                    log.warning("webhook %s answered %s", event["seq"], resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("webhook %s failed: %r", event["seq"], exc)
            if attempt < len(delays):
                await asyncio.sleep(delays[attempt])
        self.failed += 1
        log.error("giving up on webhook for event %s", event["seq"])

    def _strikes(self, probability: float) -> bool:
        return probability > 0 and self._dice.random() < probability

    def _client(self) -> aiohttp.ClientSession:
        """Lazily create the shared HTTP session (needs a running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session


def _queue_key(event: JSONDict) -> str:
    """Events sharing a key are delivered in order: one order's, or one location's 86s."""
    if event.get("type") == "availability":
        return f"availability:{event['location']}"
    return str(event["order_id"])


def _event_id(event: JSONDict) -> str:
    """``X-DemoPOS-Event``: the feed ``seq`` of order events, ``availability-<seq>`` else."""
    if event.get("type") == "availability":
        return f"availability-{event['seq']}"
    return str(event["seq"])

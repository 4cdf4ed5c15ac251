"""Signed webhooks to the cloud, delivered from the outbox until acknowledged.

Each event is one POST of its JSON body, signed in the Standard Webhooks format with every
active secret (see :mod:`posintegrator.cloud.signatures` and docs/cloud-webhooks.md). A 2xx
answer acknowledges the event; anything else, or no answer, is retried with growing delays,
forever: events of one stream (one order, one location's menu) are delivered strictly in
sequence. Each attempt is signed anew, with its own timestamp; the id and body stay the same.

After an outage of the cloud every waiting stream resumes as soon as one delivery succeeds, not
each on its own backoff timer (which may have grown to ten minutes): the first success after
failures of several streams makes all failed heads due at once. An event that fails again right
after such a recovery, while the cloud answers others, is taken to be refused for itself: it
keeps its own backoff and no longer counts as a sign of an outage.
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

#: Most bytes of the cloud's answer kept with a failed delivery (what an operator sees).
ANSWER_BYTES = 300
#: How much longer a claim on events lasts than their delivery may take.
OUTBOX_LEASE_MARGIN_SECONDS = 10.0


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
        self._in_flight: set[str] = set()
        #: Streams whose delivery failed since the last success (a failure of several means
        #: an outage of the cloud rather than one event's problem).
        self._failing_streams: set[str] = set()
        #: Events made due by the last recovery, until they are tried again.
        self._recovered: set[str] = set()
        #: Events made due by a recovery that failed again (event id -> stream): refused for
        #: themselves if the cloud answers others meanwhile.
        self._suspects: dict[str, str] = {}
        #: Events the cloud refuses while it answers others: they keep their own backoff.
        self._refused: set[str] = set()
        self.delivered = 0
        self.failures = 0
        self.recoveries = 0
        """Times the cloud came back after an outage and the waiting streams resumed at once."""

    def wake(self) -> None:
        """New events are waiting."""
        self._wake.set()

    def is_in_flight(self, event_id: str) -> bool:
        """Whether a delivery of this event is under way."""
        return event_id in self._in_flight

    async def run(self) -> None:
        """Deliver until cancelled. Without a webhook URL, events wait in the outbox."""
        if self._settings.webhook_url is None:
            logger.warning("cloud.webhook_url is not set: events stay in the outbox")
            return
        while True:
            self._wake.clear()
            # Claimed for as long as a delivery may take (and a margin), so that another
            # worker sharing the store sends them only if this one dies meanwhile.
            lease = self._settings.timeout_seconds + OUTBOX_LEASE_MARGIN_SECONDS
            due = await self._store.outbox_claim(utcnow(), self._batch, lease)
            if due:
                await asyncio.gather(*(self._deliver(event) for event in due))
                continue
            next_at = await self._store.outbox_next_at()
            timeout = None if next_at is None else max(0.0, (next_at - utcnow()).total_seconds())
            await wait_for_wakeup(self._wake, timeout)

    async def _deliver(self, event: OutboxEvent) -> None:
        self._in_flight.add(event.event_id)  # until its outcome is stored
        started = time.perf_counter()
        try:
            error = await self._post(event)
            if error is None:
                await self._store.outbox_delivered(event.event_id)
                self.delivered += 1
                self._observed("delivered", started)
                await self._answered(event)
            else:
                self._observed("failed", started)
                await self._failed(event, error)
        finally:
            self._in_flight.discard(event.event_id)

    def _observed(self, result: str, started: float) -> None:
        if self._observe is not None:
            self._observe(result, time.perf_counter() - started)

    async def _post(self, event: OutboxEvent) -> str | None:
        """Send one event; None when the cloud acknowledged it, else what went wrong."""
        url = str(self._settings.webhook_url)
        timestamp = int(time.time())
        headers = delivery_headers(self._keys, event.event_id, timestamp, event.body)
        try:
            async with self._http.post(
                url,
                data=event.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
            ) as response:
                if 200 <= response.status < 300:
                    return None
                answer = (await response.content.read(ANSWER_BYTES)).decode(errors="replace")
                answer = " ".join(answer.split())
                return f"HTTP {response.status}: {answer}" if answer else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _answered(self, event: OutboxEvent) -> None:
        """The cloud acknowledged ``event``. If several streams failed since the last success,
        the cloud was down and is back: every failed head is tried now. Otherwise the events
        that failed again right after a recovery were refused for themselves."""
        self._recovered.discard(event.event_id)
        self._suspects.pop(event.event_id, None)
        self._refused.discard(event.event_id)
        outage = len(self._failing_streams - set(self._suspects.values())) >= 2
        self._failing_streams.clear()
        if not outage:
            self._refused.update(self._suspects)
            self._suspects.clear()
            return
        self._suspects.clear()
        resumed = await self._store.outbox_retry_failed(utcnow(), except_events=self._refused)
        self._recovered = set(resumed)
        self.recoveries += 1
        if resumed:
            logger.info(
                "cloud webhook answers again: {} waiting stream(s) resume now", len(resumed)
            )
            self.wake()

    async def _failed(self, event: OutboxEvent, error: str) -> None:
        if event.event_id in self._recovered:
            self._recovered.discard(event.event_id)
            self._suspects[event.event_id] = event.stream
        if event.event_id not in self._refused:
            self._failing_streams.add(event.stream)
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

"""Watching the streams of events to the cloud for heads that wait too long.

A stream whose head has waited longer than ``cloud.stuck_after_seconds`` is stuck: its later
events wait behind it, so the cloud's view of an order or a menu is stale. People hear it through
the connection alert hook (kind ``stream_stuck``), once per connection when the problem starts,
like the other connection alerts; the counts are kept for metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from loguru import logger

from posintegrator.model import utcnow
from posintegrator.settings import CloudSettings
from posintegrator.store import Store
from posintegrator.store.streams import OutboxHealth, StreamHead

#: Longest pause between two checks.
MAX_CHECK_SECONDS = 60.0
#: Stuck streams named in one alert's message (the count says how many more).
NAMED_IN_ALERT = 5
#: Most stuck heads read per check.
MAX_HEADS = 1000

Alert = Callable[[str, str, str], None]


def _describe(head: StreamHead) -> str:
    last = f"; last answer: {head.last_error}" if head.last_error else ""
    return f"{head.stream} (event {head.sequence}, {head.attempts} failed attempt(s){last})"


class StuckStreams:
    """Checks the outbox now and then; alerts once per connection when its streams get stuck.

    :param alert: called with (connection, ``stream_stuck``, message for a person).
    """

    def __init__(self, store: Store, settings: CloudSettings, alert: Alert) -> None:
        self._store = store
        self._threshold = timedelta(seconds=settings.stuck_after_seconds)
        self._alert = alert
        self._alerted: set[str] = set()
        self.health: OutboxHealth | None = None
        """The last check's counts (waiting streams, oldest head, stuck streams)."""

    @property
    def check_seconds(self) -> float:
        """How often the outbox is checked: a quarter of the threshold, at most a minute."""
        return min(MAX_CHECK_SECONDS, self._threshold.total_seconds() / 4)

    async def run(self) -> None:
        """Check until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.check_seconds)

    async def check(self, now: datetime | None = None) -> OutboxHealth:
        """Count waiting and stuck streams; alert for connections whose streams just got stuck."""
        before = (now or utcnow()) - self._threshold
        self.health = await self._store.outbox_health(before)
        heads: list[StreamHead] = []
        if self.health.stuck_streams:
            heads = await self._store.stream_heads(
                failing=False, made_before=before, limit=MAX_HEADS
            )
        by_connection: dict[str, list[StreamHead]] = {}
        for head in heads:
            by_connection.setdefault(head.connection or "unknown", []).append(head)
        for connection, stuck in sorted(by_connection.items()):
            if connection in self._alerted:
                continue
            self._alerted.add(connection)
            named = "; ".join(_describe(head) for head in stuck[:NAMED_IN_ALERT])
            more = f" and {len(stuck) - NAMED_IN_ALERT} more" if len(stuck) > NAMED_IN_ALERT else ""
            message = (
                f"{len(stuck)} stream(s) of events to the cloud have waited more than "
                f"{self._threshold.total_seconds():.0f}s: {named}{more}. See them with "
                "'posintegrator streams list'; retry or skip a head event there."
            )
            logger.error("connection {}: {}", connection, message)
            self._alert(connection, "stream_stuck", message)
        if len(heads) == MAX_HEADS:
            return self.health  # not every stuck head was read: none can be called unstuck
        for connection in sorted(self._alerted - set(by_connection)):
            self._alerted.discard(connection)
            logger.info("connection {}: no stream of events to the cloud is stuck now", connection)
        return self.health

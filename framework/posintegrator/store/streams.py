"""What the store tells and lets an operator do about the streams of events to the cloud.

A stream (one order's status events, one location's menu versions) is delivered strictly in
sequence, so while its head event fails, everything behind it waits. The store lists the heads
that fail, with the cloud's last answer, and records an operator's retry or skip of a head with
who did it and why (docs/deployer-guide.md#stuck-streams).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class StreamHead:
    """The oldest undelivered event of a stream, which the rest of the stream waits for.

    :param connection: the connection of the stream's order or location (None if the location is
        no longer in any published menu).
    :param created_at: when the event was made: how long the stream has been waiting.
    :param attempts: failed deliveries of this event so far.
    :param last_error: the last failure: the cloud's answer (``HTTP 422: <body>``) or why there
        was none.
    :param waiting: undelivered events of the stream, this one included.
    """

    stream: str
    connection: str | None
    event_id: str
    sequence: int
    created_at: datetime
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    waiting: int


@dataclass(frozen=True)
class StreamAction:
    """An operator's action on a stream's head event, as recorded."""

    at: datetime
    stream: str
    event_id: str
    sequence: int
    action: str
    """``retry`` or ``skip``."""
    operator: str
    note: str | None


class HeadMoved(Exception):
    """The stream's head is not the event the operator named (it was delivered meanwhile)."""


@dataclass(frozen=True)
class OutboxHealth:
    """How the outbox is doing, for metrics and alerts.

    :param waiting_streams: streams with at least one undelivered event.
    :param oldest_head_at: when the oldest undelivered event was made (None: nothing waits).
    :param stuck_streams: streams whose head was made before the threshold asked for.
    """

    waiting_streams: int
    oldest_head_at: datetime | None
    stuck_streams: int


class StreamsStore(Protocol):
    """The store's part for streams of events (implemented by every
    :class:`~posintegrator.store.Store`)."""

    async def stream_heads(
        self, *, failing: bool, made_before: datetime | None, limit: int
    ) -> list[StreamHead]:
        """Heads of streams, oldest first.

        :param failing: only heads whose delivery failed at least once.
        :param made_before: only heads made before this moment (waiting longer than a threshold).
        """
        ...

    async def stream_head(self, stream: str) -> StreamHead | None:
        """The head of ``stream``; None when nothing of it waits."""
        ...

    async def outbox_health(self, stuck_before: datetime) -> OutboxHealth:
        """Counts for metrics: waiting streams, the oldest head, heads made before
        ``stuck_before``."""
        ...

    async def retry_stream(self, stream: str, *, operator: str, note: str | None) -> StreamHead:
        """Make the head of ``stream`` due now, recording who asked and why.

        :raises KeyError: nothing of ``stream`` waits.
        """
        ...

    async def skip_stream_head(
        self, stream: str, event_id: str, *, operator: str, note: str | None
    ) -> StreamHead | None:
        """Take the head event ``event_id`` of ``stream`` out of the queue without delivering it,
        recording who did it and why (for an order's stream, in its history too).

        The events behind it keep their sequence numbers, so the cloud sees a gap where the
        skipped event was (docs/cloud-webhooks.md#skipped-events).

        :returns: the stream's new head, if another event waits.
        :raises KeyError: nothing of ``stream`` waits.
        :raises HeadMoved: ``event_id`` is not the head (any more).
        """
        ...

    async def stream_actions(self, stream: str) -> list[StreamAction]:
        """Operator actions on ``stream``, oldest first."""
        ...

    async def outbox_retry_failed(
        self, now: datetime, *, except_events: Collection[str] = ()
    ) -> list[str]:
        """Make every head whose delivery failed due at ``now``, but those of
        ``except_events``: the cloud is back after an outage, so none should wait out its own
        backoff.

        :returns: the ids of the events made due.
        """
        ...

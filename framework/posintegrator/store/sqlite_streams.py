"""Streams of events to the cloud on SQLite (see :mod:`posintegrator.store.streams`), as a part
of :class:`~posintegrator.store.sqlite.SQLiteStore` that works on the same connection and writer.

A stream's head is its undelivered event with the lowest sequence; events of a stream are made
in sequence order, so the head is also the stream's oldest undelivered event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from posintegrator.cloud.events import stream_subject
from posintegrator.model import utcnow
from posintegrator.store.sql import SQLConnection
from posintegrator.store.streams import HeadMoved, OutboxHealth, StreamAction, StreamHead

T = TypeVar("T")

_HEAD_COLUMNS = (
    "o.event_id, o.stream, o.sequence, o.created_at, o.attempts, o.last_error, o.next_attempt_at"
)
_HEADS = (
    f"SELECT {_HEAD_COLUMNS}, h.waiting FROM outbox o "  # noqa: S608 (constants only)
    "JOIN (SELECT stream, MIN(sequence) AS head, COUNT(*) AS waiting FROM outbox "
    "WHERE delivered_at IS NULL GROUP BY stream) h ON o.stream = h.stream AND o.sequence = h.head "
    "WHERE (? = 0 OR o.attempts > 0) AND (CAST(? AS TEXT) IS NULL OR o.created_at < ?) "
    "ORDER BY o.created_at LIMIT ?"
)
_HEAD_OF = (
    f"SELECT {_HEAD_COLUMNS}, (SELECT COUNT(*) FROM outbox w "  # noqa: S608 (constants only)
    "WHERE w.stream = o.stream AND w.delivered_at IS NULL) FROM outbox o "
    "WHERE o.stream = ? AND o.delivered_at IS NULL ORDER BY o.sequence LIMIT 1"
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _connection(db: SQLConnection, stream: str) -> str | None:
    """The connection of the order or location a stream is about."""
    kind, subject = stream_subject(stream)
    if kind == "order":
        row = db.execute("SELECT connection FROM orders WHERE id = ?", (subject,)).fetchone()
    else:
        row = db.execute(
            "SELECT connection FROM menus WHERE location = ? ORDER BY version DESC LIMIT 1",
            (subject,),
        ).fetchone()
    return None if row is None else str(row[0])


def _head(db: SQLConnection, row: tuple[Any, ...]) -> StreamHead:
    event_id, stream, sequence, created_at, attempts, last_error, next_attempt_at, waiting = row
    return StreamHead(
        stream=stream,
        connection=_connection(db, stream),
        event_id=event_id,
        sequence=int(sequence),
        created_at=datetime.fromisoformat(created_at),
        attempts=int(attempts),
        last_error=last_error,
        next_attempt_at=datetime.fromtimestamp(next_attempt_at, UTC),
        waiting=int(waiting),
    )


def _record_action(
    tx: SQLConnection, head: StreamHead, action: str, operator: str, note: str | None
) -> None:
    tx.execute(
        "INSERT INTO stream_actions (at, stream, event_id, sequence, action, operator, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (_iso(utcnow()), head.stream, head.event_id, head.sequence, action, operator, note),
    )


class StreamTables:
    """Stream methods of the SQLite store."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[..., T], *args: object) -> T: ...

        def _transaction(self) -> AbstractContextManager[SQLConnection]: ...

        @property
        def db(self) -> SQLConnection: ...

    async def stream_heads(
        self, *, failing: bool, made_before: datetime | None, limit: int
    ) -> list[StreamHead]:
        return await self._run(self._stream_heads, failing, made_before, limit)

    def _stream_heads(
        self, failing: bool, made_before: datetime | None, limit: int
    ) -> list[StreamHead]:
        before = None if made_before is None else _iso(made_before)
        rows = self.db.execute(_HEADS, (int(failing), before, before, limit)).fetchall()
        return [_head(self.db, row) for row in rows]

    async def stream_head(self, stream: str) -> StreamHead | None:
        return await self._run(self._stream_head, self.db, stream)

    @staticmethod
    def _stream_head(db: SQLConnection, stream: str) -> StreamHead | None:
        row = db.execute(_HEAD_OF, (stream,)).fetchone()
        return None if row is None else _head(db, row)

    async def outbox_health(self, stuck_before: datetime) -> OutboxHealth:
        return await self._run(self._outbox_health, stuck_before)

    def _outbox_health(self, stuck_before: datetime) -> OutboxHealth:
        streams, oldest, stuck = self.db.execute(
            "SELECT COUNT(DISTINCT stream), MIN(created_at), "
            "COUNT(DISTINCT CASE WHEN created_at < ? THEN stream END) "
            "FROM outbox WHERE delivered_at IS NULL",
            (_iso(stuck_before),),
        ).fetchone()
        return OutboxHealth(
            waiting_streams=int(streams),
            oldest_head_at=None if oldest is None else datetime.fromisoformat(oldest),
            stuck_streams=int(stuck),
        )

    async def retry_stream(self, stream: str, *, operator: str, note: str | None) -> StreamHead:
        return await self._run(self._retry_stream, stream, operator, note)

    def _retry_stream(self, stream: str, operator: str, note: str | None) -> StreamHead:
        with self._transaction() as tx:
            head = self._stream_head(tx, stream)
            if head is None:
                raise KeyError(stream)
            tx.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?",
                (utcnow().timestamp(), head.event_id),
            )
            _record_action(tx, head, "retry", operator, note)
            now_due = self._stream_head(tx, stream)
        assert now_due is not None
        return now_due

    async def skip_stream_head(
        self, stream: str, event_id: str, *, operator: str, note: str | None
    ) -> StreamHead | None:
        return await self._run(self._skip_stream_head, stream, event_id, operator, note)

    def _skip_stream_head(
        self, stream: str, event_id: str, operator: str, note: str | None
    ) -> StreamHead | None:
        with self._transaction() as tx:
            head = self._stream_head(tx, stream)
            if head is None:
                raise KeyError(stream)
            if head.event_id != event_id:
                raise HeadMoved(
                    f"event {event_id} is not the head of {stream}: its head is event "
                    f"{head.event_id} (sequence {head.sequence})"
                )
            now = _iso(utcnow())
            tx.execute(
                "UPDATE outbox SET delivered_at = ?, skipped_at = ? WHERE event_id = ?",
                (now, now, event_id),
            )
            _record_action(tx, head, "skip", operator, note)
            kind, order_id = stream_subject(stream)
            if kind == "order":
                tx.execute(
                    "INSERT INTO status_history (order_id, at, status, applied, note, source, "
                    "reason) SELECT id, ?, status, 0, ?, ?, ? FROM orders WHERE id = ?",
                    (
                        now,
                        f"action: skip cloud event {head.sequence} ({event_id})",
                        f"operator:{operator}",
                        note,
                        order_id,
                    ),
                )
            return self._stream_head(tx, stream)

    async def stream_actions(self, stream: str) -> list[StreamAction]:
        return await self._run(self._stream_actions, stream)

    def _stream_actions(self, stream: str) -> list[StreamAction]:
        rows = self.db.execute(
            "SELECT at, stream, event_id, sequence, action, operator, note FROM stream_actions "
            "WHERE stream = ? ORDER BY at, rowid",
            (stream,),
        ).fetchall()
        return [
            StreamAction(
                at=datetime.fromisoformat(at),
                stream=s,
                event_id=e,
                sequence=int(q),
                action=a,
                operator=o,
                note=n,
            )
            for at, s, e, q, a, o, n in rows
        ]

    async def outbox_retry_failed(
        self, now: datetime, *, except_events: Collection[str] = ()
    ) -> list[str]:
        return await self._run(self._outbox_retry_failed, now, set(except_events))

    def _outbox_retry_failed(self, now: datetime, except_events: set[str]) -> list[str]:
        with self._transaction() as tx:
            waiting = [
                row[0]
                for row in tx.execute(
                    "SELECT event_id FROM outbox WHERE delivered_at IS NULL AND attempts > 0 "
                    "AND next_attempt_at > ?",
                    (now.timestamp(),),
                )
                if row[0] not in except_events
            ]
            tx.executemany(
                "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?",
                [(now.timestamp(), event_id) for event_id in waiting],
            )
        return waiting

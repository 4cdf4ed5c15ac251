"""The server-grade store: PostgreSQL, shared by several host workers.

It runs the SQLite store's SQL (:mod:`posintegrator.store.pg_connection` spells it for
PostgreSQL) with the same group-commit writer: one connection per worker, the calls waiting at
a moment committed in one SERIALIZABLE transaction. A batch that conflicts with another worker's
runs again, so each state change and its outbox event still commit together, exactly once, in
sequence. What differs is what several workers need (docs/scaling.md):

- a claim on an order's submission is a lease: the order is due again only when the lease has
  run out (a worker that died mid-attempt), and the attempt number is the fencing token that
  :meth:`end_attempt` and :meth:`finish_attempt` of a stale worker must still hold;
- an outbox event is claimed for a lease before it is sent, so one worker sends it at a time;
- nothing is reset at start-up: another worker's attempt may be under way. Instead a worker
  that stops gives back what it still holds (attempts cut off by the stop, events it was sending),
  so they are due again at once rather than when their leases run out.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TypeVar

from pydantic import SecretStr

from posintegrator.model import OrderStatus, utcnow
from posintegrator.store.base import CancelState, OutboxEvent
from posintegrator.store.pg_connection import BEGIN, PostgresConnection, is_conflict
from posintegrator.store.pg_link import PostgresLinkTables
from posintegrator.store.pg_migrations import migrate
from posintegrator.store.sqlite import SQLiteStore, _from_iso, _iso, _ts
from posintegrator.store.writer import GroupCommitWriter

T = TypeVar("T")

_DELIVERABLE = (OrderStatus.RECEIVED.value, OrderStatus.SUBMITTING.value)


#: The store's methods that only read (and need no transaction of their own): on PostgreSQL
#: they run at once, outside the SERIALIZABLE batches, on a snapshot of committed data. In a
#: batch their reads of whole indexes (what is due, what is in flight) would make it conflict
#: with every other worker's writes. Reads that decide a write are made inside that write's
#: transaction, as before.
_READS = frozenset(
    {
        "_order_content_hash",
        "_order_row_auto",
        "_order_history",
        "_order_id_for_pos_id",
        "_orders_by_status",
        "_search_orders",
        "_orders_in_flight",
        "_due_deliveries",
        "_attempts_of",
        "_outbox_due",
        "_outbox_next_at",
        "_outbox_pending",
        "_outbox_backlog",
        "_stream_events",
        "_order_counts",
        "_menu_locations",
        "_latest_menu",
        "_menu_report",
        "_state_get",
        "_lease_holders",
    }
)


class PostgresStore(PostgresLinkTables, SQLiteStore):
    """:class:`~posintegrator.store.base.Store` on a PostgreSQL database.

    :param url: the database (``postgresql://user:password@host:port/db``; a ``host=/dir``
        query parameter for a unix socket).
    """

    shared = True

    def __init__(self, url: SecretStr) -> None:
        super().__init__(path=None, events_to="cloud")  # type: ignore[arg-type]
        self.url = url
        self._origin = secrets.token_hex(8)
        self._linked_at: dict[str, int] = {}
        #: Attempts this worker started and has not closed: order id -> attempt number.
        self._attempts_held: dict[str, int] = {}
        #: Outbox events this worker claimed and has not recorded an outcome of.
        self._events_held: set[str] = set()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        read_only = getattr(fn, "__name__", "") in _READS
        return await self._writer.run(partial(fn, *args), transactional=not read_only)

    async def open(self) -> None:
        self._writer = GroupCommitWriter(begin=BEGIN, retry_batch=is_conflict)
        self._writer.observe = self._write_observer
        self._writer.start()
        await self._writer.run(self._open, transactional=False)

    def _open(self) -> None:
        db = PostgresConnection.connect(self.url.get_secret_value())
        migrate(db)
        assert self._writer is not None
        self._writer.db = db

    async def close(self) -> None:
        if self._writer is not None and self._writer.db is not None:
            await self._run(self._give_back)
        await super().close()

    def _give_back(self) -> None:
        """Make what this worker still holds due now: the attempts a stop cut off (the POS may
        have those orders: the next attempt looks them up first), the events it was sending."""
        now = utcnow()
        with self._transaction() as tx:
            for order_id, number in list(self._attempts_held.items()):
                tx.execute(
                    "UPDATE orders SET next_attempt_at = LEAST(next_attempt_at, ?) "
                    "WHERE id = ? AND attempts = ? AND next_attempt_at IS NOT NULL",
                    (_ts(now), order_id, number),
                )
                tx.execute(
                    "UPDATE delivery_attempts SET outcome = 'interrupted', finished_at = ? "
                    "WHERE order_id = ? AND number = ? AND outcome = 'in_flight'",
                    (_iso(now), order_id, number),
                )
            for event_id in list(self._events_held):
                tx.execute(
                    "UPDATE outbox SET next_attempt_at = ? "
                    "WHERE event_id = ? AND delivered_at IS NULL",
                    (_ts(now), event_id),
                )
        self._attempts_held.clear()
        self._events_held.clear()

    # --- claims with leases and fencing ---------------------------------------------------------

    async def begin_attempt(self, order_id: str, lease_seconds: float = 60.0) -> int | None:
        number = await super().begin_attempt(order_id, lease_seconds)
        if number is not None:
            self._attempts_held[order_id] = number
        return number

    async def end_attempt(
        self,
        order_id: str,
        *,
        maybe_in_pos: bool,
        error: str,
        next_attempt_at: datetime,
        attempt: int | None = None,
    ) -> None:
        await super().end_attempt(
            order_id,
            maybe_in_pos=maybe_in_pos,
            error=error,
            next_attempt_at=next_attempt_at,
            attempt=attempt,
        )
        self._attempts_held.pop(order_id, None)

    async def finish_attempt(
        self, order_id: str, outcome: str, error: str | None = None, *, attempt: int | None = None
    ) -> None:
        await super().finish_attempt(order_id, outcome, error, attempt=attempt)
        self._attempts_held.pop(order_id, None)

    def _begin_attempt(self, order_id: str, lease_seconds: float) -> int | None:
        """Claim the order's next attempt, if it is due: not claimed by a live lease.

        The claim and a concurrent claim by another worker cannot both commit (serializable), so
        the loser re-reads the order, finds it no longer due, and sends nothing. An earlier
        attempt still marked ``in_flight`` belongs to a worker whose lease ran out: it is closed
        as ``interrupted``, and its late outcome no longer counts (fencing).
        """
        now = utcnow()
        with self._transaction() as tx:
            row = tx.execute(
                "UPDATE orders SET attempts = attempts + 1, maybe_in_pos = 1, "
                "next_attempt_at = ?, updated_at = ? WHERE id = ? AND status IN (?, ?) "
                "AND (cancel_state IS NULL OR cancel_state != ?) AND next_attempt_at <= ? "
                "RETURNING attempts",
                (
                    _ts(now) + lease_seconds,
                    _iso(now),
                    order_id,
                    *_DELIVERABLE,
                    CancelState.REQUESTED.value,
                    _ts(now),
                ),
            ).fetchone()
            if row is None:
                if tx.execute("SELECT 1 FROM orders WHERE id = ?", (order_id,)).fetchone():
                    return None
                raise KeyError(order_id)
            number = int(row[0])
            tx.execute(
                "UPDATE delivery_attempts SET outcome = 'interrupted', finished_at = ? "
                "WHERE order_id = ? AND outcome = 'in_flight'",
                (_iso(now), order_id),
            )
            tx.execute(
                "INSERT INTO delivery_attempts (order_id, number, started_at, outcome) "
                "VALUES (?, ?, ?, 'in_flight')",
                (order_id, number, _iso(now)),
            )
        return number

    async def outbox_claim(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxEvent]:
        return await self._run(self._outbox_claim, now, limit, lease_seconds)

    async def outbox_delivered(self, event_id: str) -> None:
        await super().outbox_delivered(event_id)
        self._events_held.discard(event_id)

    async def outbox_failed(self, event_id: str, error: str, next_attempt_at: datetime) -> None:
        await super().outbox_failed(event_id, error, next_attempt_at)
        self._events_held.discard(event_id)

    def _outbox_claim(self, now: datetime, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        """Claim the due head event of each stream for ``lease_seconds``.

        Only the head of a stream is ever due, and a claimed head is not due again until its
        lease runs out or its delivery fails, so one worker at a time sends a stream's events,
        in order.
        """
        with self._transaction() as tx:
            rows = tx.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE event_id IN ("
                "SELECT o.event_id FROM outbox o JOIN (SELECT stream, MIN(sequence) AS head "
                "FROM outbox WHERE delivered_at IS NULL GROUP BY stream) h "
                "ON o.stream = h.stream AND o.sequence = h.head "
                "WHERE o.next_attempt_at <= ? ORDER BY o.next_attempt_at LIMIT ?) "
                "RETURNING event_id, stream, sequence, body, attempts, created_at, rowid",
                (_ts(now) + lease_seconds, _ts(now), limit),
            ).fetchall()
        rows.sort(key=lambda row: row[-1])
        # Noted here, on the writer thread, rather than by the caller: a sender cancelled
        # while waiting for this answer (a stop) has claimed them all the same.
        self._events_held.update(row[0] for row in rows)
        return [
            OutboxEvent(
                event_id=event_id,
                stream=stream,
                sequence=sequence,
                body=bytes(body),
                attempts=attempts,
                created_at=_from_iso(created_at),
            )
            for event_id, stream, sequence, body, attempts, created_at, _rowid in rows
        ]

"""The embedded default store: one SQLite file in WAL mode, no server.

All database work runs on one dedicated thread (:mod:`posintegrator.store.writer`), which
commits the calls waiting at a moment in one transaction and answers each only after that commit,
so the event loop never blocks on disk, writes never interleave, and a burst of orders shares
one disk flush. A committed transaction survives a
``kill -9`` of the process; with ``synchronous=FULL`` it also survives a power cut.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from posintegrator.cloud.events import (
    REFUND_STATUSES,
    MenuNotice,
    MenuPublished,
    menu_stream,
    order_cancel_refused,
    order_status_changed,
    order_stream,
)
from posintegrator.hooktypes import TrackedOrder
from posintegrator.model import (
    Order,
    OrderStatus,
    PaymentMode,
    StatusEvent,
    can_transition,
    is_final,
    utcnow,
)
from posintegrator.store.base import (
    AcceptOutcome,
    AcceptResult,
    Attempt,
    Cancellation,
    CancelOutcome,
    CancelRequestResult,
    CancelState,
    CloudEventRecord,
    DueDeliveries,
    HistoryEntry,
    MenuBody,
    MenuSnapshot,
    OrderQuery,
    OrderRecord,
    OutboxEvent,
    Transition,
)
from posintegrator.store.migrations import migrate
from posintegrator.store.sql import SQLConnection
from posintegrator.store.sqlite_leases import LeaseTables
from posintegrator.store.sqlite_link import LinkTables
from posintegrator.store.sqlite_retention import RetentionTables
from posintegrator.store.sqlite_streams import StreamTables
from posintegrator.store.writer import GroupCommitWriter

T = TypeVar("T")

Synchronous = Literal["NORMAL", "FULL"]
EventSink = Literal["cloud", "hub"]

_DELIVERABLE = (OrderStatus.RECEIVED.value, OrderStatus.SUBMITTING.value)
_IN_FLIGHT = (
    OrderStatus.ACCEPTED.value,
    OrderStatus.IN_PREPARATION.value,
    OrderStatus.READY.value,
)
_ORDER_COLUMNS = (
    "id, connection, body, content_hash, idempotency_key, status, status_reason, pos_order_id, "
    "attempts, next_attempt_at, maybe_in_pos, last_error, created_at, updated_at, "
    "cancel_state, cancel_by, cancel_reason, cancel_requested_at, cancel_outcome"
)
#: Statuses in which the POS has not confirmed the order (it may still have it).
_BEFORE_POS = (*_DELIVERABLE, OrderStatus.NEEDS_ATTENTION.value)


_INSERT_ORDER = (
    "INSERT INTO orders (id, connection, location, body, content_hash, idempotency_key, status, "
    "status_seq, next_attempt_at, created_at, updated_at, prepaid, currency) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)"
)
_INSERT_HISTORY = (
    "INSERT INTO status_history (order_id, at, status, applied, note, source, reason, "
    "sequence, pos_event_id) VALUES (?, ?, ?, 1, NULL, ?, ?, ?, ?)"
)
_INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, stream, sequence, body, created_at, next_attempt_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
#: Rows per multi-row ``INSERT``: bounds the statement's bound parameters (SQLite allows 32,766).
_ROWS_PER_INSERT = 256


def _insert_rows(
    tx: SQLConnection, insert: str, rows: list[tuple[object, ...]], then: str = ""
) -> list[Any]:
    """Run the one-row ``insert`` for every row of ``rows``, as few statements as possible;
    ``then`` ends each statement (an ``ON CONFLICT`` or ``RETURNING`` clause), and the rows the
    statements return are returned.

    One multi-row ``INSERT`` instead of ``executemany``: the sqlite3 module lets go of the GIL
    around every step, and under load each time it wants it back it may wait for the event
    loop's thread for a whole switch interval; one statement steps once.
    """
    head, values = insert.split(" VALUES ")
    returned: list[Any] = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        statement = f"{head} VALUES {', '.join([values] * len(chunk))}{then}"
        cursor = tx.execute(statement, [value for row in chunk for value in row])
        if then:
            returned.extend(cursor.fetchall())
    return returned


def _insert_new_orders(tx: SQLConnection, rows: list[tuple[object, ...]]) -> set[str]:
    """Insert the order rows whose id is not in the inbox yet; the ids inserted."""
    returned = _insert_rows(tx, _INSERT_ORDER, rows, " ON CONFLICT (id) DO NOTHING RETURNING id")
    return {row[0] for row in returned}


@dataclass
class _AcceptRequest:
    """An order waiting to be accepted with the next group, its rows ready to insert if it is
    new, and who waits for the answer."""

    record: OrderRecord
    order_row: tuple[object, ...]
    history_row: tuple[object, ...]
    outbox_row: tuple[object, ...]
    future: asyncio.Future[AcceptResult]


def _accept_request(
    order: Order,
    connection: str,
    content_hash: str,
    idempotency_key: str,
    future: asyncio.Future[AcceptResult],
    at: datetime | None = None,
) -> _AcceptRequest:
    """The rows a new order adds, built by the caller rather than on the writer thread.

    The writer thread is what limits intake under load; the caller's thread has time to spare.
    Rows of an order that turns out to be a replay are simply not inserted.
    """
    now = at or utcnow()
    at_iso = _iso(now)
    history, event_id, event = _status_change(
        order_id=order.id,
        location=order.location,
        previous=None,
        status=OrderStatus.RECEIVED,
        occurred_at=now,
        source="api",
        reason=None,
        pos_event_id=None,
        sequence=1,
        pos_order_id=None,
    )
    record = OrderRecord.received(order, connection, content_hash, idempotency_key, now)
    return _AcceptRequest(
        record=record,
        order_row=(
            order.id,
            connection,
            order.location,
            order.model_dump_json().encode(),
            content_hash,
            idempotency_key,
            OrderStatus.RECEIVED.value,
            _ts(now),
            at_iso,
            at_iso,
            sum(p.amount for p in order.payments if p.mode == PaymentMode.PREPAID),
            order.currency,
        ),
        history_row=history,
        outbox_row=_outbox_row(event_id, order_stream(order.id), 1, event, now),
        future=future,
    )


def _status_change(
    *,
    order_id: str,
    location: str,
    previous: OrderStatus | None,
    status: OrderStatus,
    occurred_at: datetime,
    source: str,
    reason: str | None,
    pos_event_id: str | None,
    sequence: int,
    pos_order_id: str | None,
    refund: tuple[int, str] | None = None,
) -> tuple[tuple[object, ...], str, dict[str, object]]:
    """What an applied status change writes: its ``status_history`` row, and the id and body
    of the ``order.status_changed`` event it emits."""
    history = (order_id, _iso(occurred_at), status.value, source, reason, sequence, pos_event_id)
    event_id = str(uuid.uuid4())
    body = order_status_changed(
        event_id=event_id,
        sequence=sequence,
        order_id=order_id,
        location=location,
        status=status,
        previous_status=previous,
        occurred_at=occurred_at,
        reason=reason,
        pos_order_id=pos_order_id,
        source=source,
        refund=refund,
    )
    return history, event_id, body


def _outbox_row(
    event_id: str,
    stream: str,
    sequence: int,
    event: MenuPublished | dict[str, object],
    now: datetime,
) -> tuple[object, ...]:
    body = orjson.dumps(event if isinstance(event, dict) else event.model_dump(mode="json"))
    return (event_id, stream, sequence, body, _iso(now), _ts(now))


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _like_escaped(text: str) -> str:
    """``text`` matched literally by ``LIKE ... ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SQLiteStore(LinkTables, LeaseTables, RetentionTables, StreamTables):
    """:class:`~posintegrator.store.base.Store` on a SQLite file.

    :param path: the database file; its folder is created if needed.
    :param synchronous: SQLite's ``synchronous`` level for commits (see docs/deployer-guide.md).
    :param events_to: where the events of status changes and new menu versions go: the outbox
        to the cloud, or (in a venue agent) the link to the hub, which made the RECEIVED event
        of each order itself.
    """

    #: One process owns a SQLite file.
    shared = False

    def __init__(
        self, path: Path, *, synchronous: Synchronous = "FULL", events_to: EventSink = "cloud"
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.events_to = events_to
        self._writer: GroupCommitWriter | None = None
        self._accepts: list[_AcceptRequest] = []
        self._accepting: asyncio.Task[None] | None = None
        self._write_observer: Callable[[float], None] | None = None
        self._last_body: tuple[str, MenuBody] | None = None

    # --- plumbing -----------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return await self._writer.run(partial(fn, *args))

    @property
    def db(self) -> SQLConnection:
        if self._writer is None or self._writer.db is None:
            raise RuntimeError("the store is not open")
        return self._writer.db

    def _transaction(self) -> AbstractContextManager[SQLConnection]:
        assert self._writer is not None
        return self._writer.transaction()

    async def open(self) -> None:
        self._writer = GroupCommitWriter()
        self._writer.observe = self._write_observer
        self._writer.start()
        await self._writer.run(self._open, transactional=False)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")
        migrate(db)
        assert self._writer is not None
        self._writer.db = db
        # An attempt that was under way when the process died may have reached the POS: make it
        # due now, so its lookup-then-maybe-resend happens at once rather than after a backoff.
        with self._transaction() as tx:
            tx.execute(
                "UPDATE orders SET next_attempt_at = MIN(next_attempt_at, ?) "
                "WHERE maybe_in_pos = 1 AND next_attempt_at IS NOT NULL",
                (_ts(utcnow()),),
            )
            tx.execute(
                "UPDATE delivery_attempts SET outcome = 'interrupted', finished_at = ? "
                "WHERE outcome = 'in_flight'",
                (_iso(utcnow()),),
            )

    async def close(self) -> None:
        if self._writer is None:
            return
        writer = self._writer
        await writer.run(self._close, transactional=False)
        writer.stop()
        self._writer = None

    async def check_writable(self) -> None:
        await self._run(self._check_writable)

    def _check_writable(self) -> None:
        with self._transaction() as tx:
            tx.execute("SELECT 1")

    def _close(self) -> None:
        assert self._writer is not None
        if self._writer.db is not None:
            self._writer.db.close()
            self._writer.db = None

    # --- orders ---------------------------------------------------------------------------------

    async def accept_order(
        self,
        order: Order,
        connection: str,
        content_hash: str,
        idempotency_key: str,
        *,
        at: datetime | None = None,
    ) -> AcceptResult:
        """Accept ``order`` into the inbox; answered once it is committed.

        Orders posted while an earlier group is being written are queued and accepted together
        in the writer's next transaction, one statement of each kind for the whole group: at
        hundreds of orders a second, most of the cost of one insert at a time was per-statement
        overhead under the GIL (bench/intake.py).
        """
        if self._writer is None:
            raise RuntimeError("the store is not open")
        future: asyncio.Future[AcceptResult] = asyncio.get_running_loop().create_future()
        self._accepts.append(
            _accept_request(order, connection, content_hash, idempotency_key, future, at)
        )
        if self._accepting is None:
            self._accepting = asyncio.create_task(self._accept_queued(), name="store-accept")
        return await future

    async def _accept_queued(self) -> None:
        """Write queued orders, a group at a time, until none are waiting."""
        group: list[_AcceptRequest] = []
        try:
            while self._accepts:
                group, self._accepts = self._accepts, []
                try:
                    results = await self._run(self._accept_orders, group)
                except Exception as exc:  # the store failed: every order of the group hears it
                    for request in group:
                        if not request.future.done():
                            request.future.set_exception(exc)
                    continue
                for request, result in zip(group, results, strict=True):
                    if not request.future.done():  # else its caller gave up waiting
                        request.future.set_result(result)
        except asyncio.CancelledError:
            for request in [*group, *self._accepts]:
                request.future.cancel()
            self._accepts = []
            raise
        finally:
            self._accepting = None

    def _accept_orders(self, group: list[_AcceptRequest]) -> list[AcceptResult]:
        """Insert the group's new orders; an id already in the inbox (or earlier in the group)
        is a replay when its content is the same, else a conflict.

        The orders are inserted first and only the ids that were there already are read: a
        read of every id first would lock the index pages they fall on, and on PostgreSQL two
        workers' groups of new orders then refuse each other (serializable transactions).
        """
        with self._transaction() as tx:
            first: dict[str, _AcceptRequest] = {}
            for request in group:
                first.setdefault(request.record.order.id, request)
            inserted = _insert_new_orders(tx, [r.order_row for r in first.values()])
            earlier: dict[str, OrderRecord] = {}
            results: list[AcceptResult] = []
            for request in group:
                order_id = request.record.order.id
                if order_id in inserted and first[order_id] is request:
                    results.append(AcceptResult(AcceptOutcome.CREATED, request.record))
                    continue
                if order_id not in earlier:
                    found = (
                        first[order_id].record
                        if order_id in inserted
                        else self._order_row(tx, order_id)
                    )
                    if found is None:  # cannot be: inserted, or there already
                        raise RuntimeError(f"order {order_id!r} neither inserted nor found")
                    earlier[order_id] = found
                was = earlier[order_id]
                same = was.content_hash == request.record.content_hash
                outcome = AcceptOutcome.REPLAYED if same else AcceptOutcome.CONFLICT
                results.append(AcceptResult(outcome, was))
            new = [r for i, r in first.items() if i in inserted]
            _insert_rows(tx, _INSERT_HISTORY, [r.history_row for r in new])
            if self.events_to == "cloud":
                _insert_rows(tx, _INSERT_OUTBOX, [r.outbox_row for r in new])
        return results

    async def order_content_hash(self, order_id: str) -> str | None:
        return await self._run(self._order_content_hash, order_id)

    def _order_content_hash(self, order_id: str) -> str | None:
        row = self.db.execute(
            "SELECT content_hash FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _order_row(self, db: SQLConnection, order_id: str) -> OrderRecord | None:
        row = db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?",  # noqa: S608
            (order_id,),
        ).fetchone()
        return None if row is None else _record(row)

    async def get_order(self, order_id: str) -> OrderRecord | None:
        return await self._run(self._order_row_auto, order_id)

    def _order_row_auto(self, order_id: str) -> OrderRecord | None:
        return self._order_row(self.db, order_id)

    async def order_history(self, order_id: str) -> list[HistoryEntry]:
        return await self._run(self._order_history, order_id)

    def _order_history(self, order_id: str) -> list[HistoryEntry]:
        rows = self.db.execute(
            "SELECT at, status, applied, note, source, reason, sequence FROM status_history "
            "WHERE order_id = ? ORDER BY rowid",
            (order_id,),
        ).fetchall()
        return [
            HistoryEntry(
                at=_from_iso(at),
                status=OrderStatus(status),
                applied=bool(applied),
                note=note,
                source=source,
                reason=reason,
                sequence=sequence,
            )
            for at, status, applied, note, source, reason, sequence in rows
        ]

    async def order_id_for_pos_id(self, connection: str, pos_order_id: str) -> str | None:
        return await self._run(self._order_id_for_pos_id, connection, pos_order_id)

    def _order_id_for_pos_id(self, connection: str, pos_order_id: str) -> str | None:
        row = self.db.execute(
            "SELECT id FROM orders WHERE connection = ? AND pos_order_id = ?",
            (connection, pos_order_id),
        ).fetchone()
        return None if row is None else str(row[0])

    async def orders_by_status(self, statuses: list[OrderStatus], limit: int) -> list[OrderRecord]:
        return await self._run(self._orders_by_status, statuses, limit)

    def _orders_by_status(self, statuses: list[OrderStatus], limit: int) -> list[OrderRecord]:
        marks = ", ".join("?" for _ in statuses)
        rows = self.db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status IN ({marks}) "  # noqa: S608
            "ORDER BY created_at LIMIT ?",
            (*[s.value for s in statuses], limit),
        ).fetchall()
        return [_record(row) for row in rows]

    async def search_orders(self, query: OrderQuery) -> list[OrderRecord]:
        return await self._run(self._search_orders, query)

    def _search_orders(self, query: OrderQuery) -> list[OrderRecord]:
        where: list[str] = []
        args: list[object] = []
        if query.text:
            pattern = f"%{_like_escaped(query.text)}%"
            where.append("(id LIKE ? ESCAPE '\\' OR pos_order_id LIKE ? ESCAPE '\\')")
            args += [pattern, pattern]
        if query.location:
            where.append("location = ?")
            args.append(query.location)
        if query.statuses:
            where.append(f"status IN ({', '.join('?' for _ in query.statuses)})")
            args += [s.value for s in query.statuses]
        if query.created_from is not None:
            where.append("created_at >= ?")
            args.append(_iso(query.created_from))
        if query.created_to is not None:
            where.append("created_at < ?")
            args.append(_iso(query.created_to))
        condition = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self.db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders {condition}"  # noqa: S608
            "ORDER BY created_at DESC, id LIMIT ?",
            (*args, query.limit),
        ).fetchall()
        return [_record(row) for row in rows]

    async def operator_requeue(
        self, order_id: str, *, operator: str, action: str, note: str | None, clear_maybe: bool
    ) -> OrderRecord:
        return await self._run(
            self._operator_requeue, order_id, operator, action, note, clear_maybe
        )

    def _operator_requeue(
        self, order_id: str, operator: str, action: str, note: str | None, clear_maybe: bool
    ) -> OrderRecord:
        with self._transaction() as tx:
            record = self._order_row(tx, order_id)
            if record is None:
                raise KeyError(order_id)
            source = f"operator:{operator}"
            self._action(tx, record, source, action, note)
            if record.status == OrderStatus.NEEDS_ATTENTION:
                event = StatusEvent(
                    order_id=order_id, status=OrderStatus.SUBMITTING, source=source, reason=note
                )
                seq = int(
                    tx.execute(
                        "SELECT status_seq FROM orders WHERE id = ?", (order_id,)
                    ).fetchone()[0]
                )
                tx.execute(
                    "UPDATE orders SET status = ?, status_reason = ?, status_seq = ? WHERE id = ?",
                    (OrderStatus.SUBMITTING.value, note, seq + 1, order_id),
                )
                self._record_applied(
                    tx,
                    order_id,
                    record.order.location,
                    record.status,
                    event,
                    seq + 1,
                    record.pos_order_id,
                )
            tx.execute(
                "UPDATE orders SET next_attempt_at = ?, updated_at = ?, "
                "maybe_in_pos = CASE WHEN ? THEN 0 ELSE maybe_in_pos END WHERE id = ?",
                (_ts(utcnow()), _iso(utcnow()), clear_maybe, order_id),
            )
            updated = self._order_row(tx, order_id)
        assert updated is not None
        return updated

    async def record_action(
        self, order_id: str, *, operator: str, action: str, note: str | None
    ) -> None:
        await self._run(self._record_action, order_id, operator, action, note)

    def _record_action(self, order_id: str, operator: str, action: str, note: str | None) -> None:
        with self._transaction() as tx:
            record = self._order_row(tx, order_id)
            if record is None:
                raise KeyError(order_id)
            self._action(tx, record, f"operator:{operator}", action, note)

    def _action(
        self,
        tx: SQLConnection,
        record: OrderRecord,
        source: str,
        action: str,
        note: str | None,
    ) -> None:
        """A history row for an operator's action (not itself a status change)."""
        tx.execute(
            "INSERT INTO status_history (order_id, at, status, applied, note, source, reason) "
            "VALUES (?, ?, ?, 0, ?, ?, ?)",
            (
                record.order.id,
                _iso(utcnow()),
                record.status.value,
                f"action: {action}",
                source,
                note,
            ),
        )

    # --- cancellation ---------------------------------------------------------------------------

    async def request_cancel(
        self, order_id: str, cancel: StatusEvent, *, forward: bytes
    ) -> CancelRequestResult:
        return await self._run(self._request_cancel, order_id, cancel, forward)

    def _request_cancel(
        self, order_id: str, cancel: StatusEvent, forward: bytes
    ) -> CancelRequestResult:
        requested_by, reason = cancel.source, cancel.reason or "no reason given"
        with self._transaction() as tx:
            record = self._order_row(tx, order_id)
            if record is None:
                raise KeyError(order_id)
            if is_final(record.status):
                return CancelRequestResult(CancelOutcome.FINAL, record)
            if record.cancel_pending:
                return CancelRequestResult(CancelOutcome.ALREADY_REQUESTED, record)
            agent = tx.execute("SELECT agent FROM orders WHERE id = ?", (order_id,)).fetchone()[0]
            if agent is not None and self._withdraw_unsent(tx, order_id):
                agent = None  # its message never left: the hub still holds it alone
            if agent is not None:
                # The agent is asked, as a local host's delivery engine would ask the POS; the
                # hub waits for its answer (the agent's CANCELLED status, or a refusal) and
                # takes nothing to a POS itself, so the request is not due here.
                tx.execute(
                    "UPDATE orders SET cancel_state = ?, cancel_by = ?, cancel_reason = ?, "
                    "cancel_requested_at = ?, cancel_due_at = NULL, cancel_outcome = NULL, "
                    "updated_at = ? WHERE id = ?",
                    (
                        CancelState.REQUESTED.value,
                        requested_by,
                        reason,
                        _iso(utcnow()),
                        _iso(utcnow()),
                        order_id,
                    ),
                )
                self._action(
                    tx, record, requested_by, f"cancellation sent to agent {agent}", reason
                )
                self._insert_message(tx, agent, "action", forward, order_id)
                updated = self._order_row(tx, order_id)
                assert updated is not None
                return CancelRequestResult(CancelOutcome.FORWARDED, updated, agent=agent)
            if record.status.value in _BEFORE_POS and not record.maybe_in_pos:
                # No attempt may have reached the POS (begin_attempt sets maybe_in_pos in its
                # own transaction before any call): nothing to take back, cancel here.
                transition = self._transition(tx, order_id, cancel)
                outcome = CancelOutcome.CANCELLED
            else:
                now = utcnow()
                tx.execute(
                    "UPDATE orders SET cancel_state = ?, cancel_by = ?, cancel_reason = ?, "
                    "cancel_requested_at = ?, cancel_due_at = ?, cancel_outcome = NULL, "
                    "updated_at = ? WHERE id = ?",
                    (
                        CancelState.REQUESTED.value,
                        requested_by,
                        reason,
                        _iso(now),
                        _ts(now),
                        _iso(now),
                        order_id,
                    ),
                )
                self._action(tx, record, requested_by, "cancellation requested", reason)
                outcome, transition = CancelOutcome.REQUESTED, None
            updated = self._order_row(tx, order_id)
        assert updated is not None
        return CancelRequestResult(outcome, updated, transition)

    async def refuse_cancel(self, order_id: str, *, reason: str, source: str) -> None:
        await self._run(self._refuse_cancel, order_id, reason, source)

    def _refuse_cancel(self, order_id: str, reason: str, source: str) -> None:
        with self._transaction() as tx:
            self._refuse_cancel_in(tx, order_id, reason, source)

    def _refuse_cancel_in(self, tx: SQLConnection, order_id: str, reason: str, source: str) -> None:
        """Settle a requested cancellation as refused, and tell the cloud, in ``tx``."""
        row = tx.execute(
            "SELECT status, status_seq, location, pos_order_id, cancel_state, cancel_by "
            "FROM orders WHERE id = ?",
            (order_id,),
        ).fetchone()
        if row is None:
            raise KeyError(order_id)
        status, seq, location, pos_order_id, cancel_state, cancel_by = row
        if cancel_state != CancelState.REQUESTED.value:
            return  # settled meanwhile (the order was cancelled after all)
        now = utcnow()
        sequence = int(seq) + 1
        tx.execute(
            "UPDATE orders SET cancel_state = ?, cancel_due_at = NULL, cancel_outcome = ?, "
            "status_seq = ?, updated_at = ? WHERE id = ?",
            (CancelState.REFUSED.value, reason, sequence, _iso(now), order_id),
        )
        tx.execute(
            "INSERT INTO status_history (order_id, at, status, applied, note, source, "
            "reason, sequence) VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
            (order_id, _iso(now), status, "cancellation refused", source, reason, sequence),
        )
        event_id = str(uuid.uuid4())
        body = order_cancel_refused(
            event_id=event_id,
            sequence=sequence,
            order_id=order_id,
            location=location,
            status=OrderStatus(status),
            occurred_at=now,
            reason=reason,
            requested_by=str(cancel_by),
            pos_order_id=pos_order_id,
            source=source,
        )
        self._enqueue(tx, event_id, order_stream(order_id), sequence, body)

    async def cancel_later(self, order_id: str, *, error: str, due_at: datetime) -> None:
        await self._run(self._cancel_later, order_id, error, due_at)

    def _cancel_later(self, order_id: str, error: str, due_at: datetime) -> None:
        with self._transaction() as tx:
            tx.execute(
                "UPDATE orders SET cancel_due_at = ?, cancel_outcome = ?, updated_at = ? "
                "WHERE id = ? AND cancel_state = ?",
                (_ts(due_at), error, _iso(utcnow()), order_id, CancelState.REQUESTED.value),
            )

    # --- status ---------------------------------------------------------------------------------

    async def apply_status(
        self, order_id: str, event: StatusEvent, *, connection: str | None = None
    ) -> Transition:
        return await self._run(self._apply_status, order_id, event, connection)

    def _apply_status(
        self, order_id: str, event: StatusEvent, connection: str | None
    ) -> Transition:
        with self._transaction() as tx:
            return self._transition(tx, order_id, event, connection)

    def _transition(
        self,
        tx: SQLConnection,
        order_id: str,
        event: StatusEvent,
        connection: str | None = None,
    ) -> Transition:
        row = tx.execute(
            "SELECT status, status_seq, location, pos_order_id, connection, prepaid, currency, "
            "cancel_state, cancel_by, cancel_reason FROM orders WHERE id = ?",
            (order_id,),
        ).fetchone()
        if row is None or (connection is not None and row[4] != connection):
            raise KeyError(order_id)
        current, seq, location, known_pos_id = OrderStatus(row[0]), int(row[1]), row[2], row[3]
        prepaid, currency, cancel_state, cancel_by, cancel_reason = row[5:10]
        pos_order_id = event.pos_order_id or known_pos_id
        now = _iso(utcnow())
        if not can_transition(current, event.status):
            if event.status == current:
                note = "duplicate"
            elif is_final(current):
                note = f"ignored: {current} is final"
            else:
                note = f"stale: already {current}"
            tx.execute(
                "INSERT INTO status_history (order_id, at, status, applied, note, source, reason, "
                "pos_event_id) VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (
                    order_id,
                    _iso(event.occurred_at),
                    event.status.value,
                    note,
                    event.source,
                    event.reason,
                    event.pos_event_id,
                ),
            )
            if pos_order_id != known_pos_id:
                tx.execute(
                    "UPDATE orders SET pos_order_id = ?, updated_at = ? WHERE id = ?",
                    (pos_order_id, now, order_id),
                )
            return Transition(order_id, False, current, event.status, note)
        still_delivering = event.status.value in _DELIVERABLE
        # A parked order (NEEDS_ATTENTION) is no longer due, but keeps what we know of whether
        # the POS may have it: an operator's retry must still look it up first.
        keep_maybe = still_delivering or event.status == OrderStatus.NEEDS_ATTENTION
        if event.status == OrderStatus.CANCELLED and cancel_state == CancelState.REQUESTED:
            # The cancellation that was asked for happened (whoever reports it): its reason and
            # who asked go with the event, and nothing more is to be taken to the POS.
            if event.reason is None:
                event = event.model_copy(
                    update={"reason": f"cancelled at the request of {cancel_by}: {cancel_reason}"}
                )
            tx.execute(
                "UPDATE orders SET cancel_state = ?, cancel_due_at = NULL WHERE id = ?",
                (CancelState.DONE.value, order_id),
            )
        tx.execute(
            "UPDATE orders SET status = ?, status_reason = ?, status_seq = ?, pos_order_id = ?, "
            "updated_at = ?, "
            "next_attempt_at = CASE WHEN ? THEN next_attempt_at ELSE NULL END, "
            "maybe_in_pos = CASE WHEN ? THEN maybe_in_pos ELSE 0 END "
            "WHERE id = ?",
            (
                event.status.value,
                event.reason,
                seq + 1,
                pos_order_id,
                now,
                still_delivering,
                keep_maybe,
                order_id,
            ),
        )
        refund = (
            (int(prepaid), str(currency))
            if event.status in REFUND_STATUSES and prepaid and currency
            else None
        )
        self._record_applied(tx, order_id, location, current, event, seq + 1, pos_order_id, refund)
        return Transition(order_id, True, current, event.status)

    def _record_applied(
        self,
        tx: SQLConnection,
        order_id: str,
        location: str,
        previous: OrderStatus | None,
        event: StatusEvent,
        sequence: int,
        pos_order_id: str | None,
        refund: tuple[int, str] | None = None,
    ) -> None:
        history, event_id, body = _status_change(
            order_id=order_id,
            location=location,
            previous=previous,
            status=event.status,
            occurred_at=event.occurred_at,
            source=event.source,
            reason=event.reason,
            pos_event_id=event.pos_event_id,
            sequence=sequence,
            pos_order_id=pos_order_id,
            refund=refund,
        )
        tx.execute(_INSERT_HISTORY, history)
        self._enqueue(tx, event_id, order_stream(order_id), sequence, body)

    def _enqueue(
        self,
        tx: SQLConnection,
        event_id: str,
        stream: str,
        sequence: int,
        event: MenuPublished | dict[str, object],
    ) -> None:
        row = _outbox_row(event_id, stream, sequence, event, utcnow())
        if self.events_to == "hub":
            order_id = event.get("order_id") if isinstance(event, dict) else None
            body = row[3]
            assert isinstance(body, bytes)
            self._insert_message(tx, "hub", "event", body, str(order_id) if order_id else None)
        else:
            tx.execute(_INSERT_OUTBOX, row)

    async def orders_in_flight(self, connection: str) -> list[TrackedOrder]:
        return await self._run(self._orders_in_flight, connection)

    def _orders_in_flight(self, connection: str) -> list[TrackedOrder]:
        rows = self.db.execute(
            "SELECT id, pos_order_id, location, status FROM orders "
            "WHERE connection = ? AND status IN (?, ?, ?) ORDER BY created_at",
            (connection, *_IN_FLIGHT),
        ).fetchall()
        return [
            TrackedOrder(order_id=i, pos_order_id=p, location=loc, status=OrderStatus(s))
            for i, p, loc, s in rows
        ]

    # --- delivery -------------------------------------------------------------------------------

    async def due_deliveries(self, connection: str, now: datetime, limit: int) -> DueDeliveries:
        return await self._run(self._due_deliveries, connection, now, limit)

    def _due_deliveries(self, connection: str, now: datetime, limit: int) -> DueDeliveries:
        return DueDeliveries(
            self._due_records(connection, now, limit), self._next_delivery_at(connection, now)
        )

    def _due_records(self, connection: str, now: datetime, limit: int) -> list[OrderRecord]:
        # Two queries, each on its own partial index: cancellations are rare, and the
        # submission query stays the one the benchmarks measure.
        cancels = self.db.execute(
            f"SELECT {_ORDER_COLUMNS}, cancel_due_at FROM orders WHERE connection = ? "  # noqa: S608
            "AND cancel_due_at <= ? ORDER BY cancel_due_at LIMIT ?",
            (connection, _ts(now), limit),
        ).fetchall()
        # An order whose cancellation waits is due only when the cancellation is.
        rows = self.db.execute(
            f"SELECT {_ORDER_COLUMNS}, next_attempt_at FROM orders WHERE connection = ? "  # noqa: S608
            "AND next_attempt_at <= ? AND status IN (?, ?) AND cancel_due_at IS NULL "
            "ORDER BY next_attempt_at LIMIT ?",
            (connection, _ts(now), *_DELIVERABLE, limit),
        ).fetchall()
        if cancels:
            wanted = {row[0] for row in cancels}
            rows = sorted(
                [*cancels, *(row for row in rows if row[0] not in wanted)], key=lambda r: r[-1]
            )[:limit]
        return [_record(row[:-1]) for row in rows]

    def _next_delivery_at(self, connection: str, now: datetime) -> datetime | None:
        """The earliest submission or cancellation of ``connection`` due after ``now``."""
        row = self.db.execute(
            "SELECT MIN(next_attempt_at) FROM orders WHERE connection = ? "
            "AND next_attempt_at > ? AND status IN (?, ?) AND cancel_due_at IS NULL",
            (connection, _ts(now), *_DELIVERABLE),
        ).fetchone()
        cancel = self.db.execute(
            "SELECT MIN(cancel_due_at) FROM orders WHERE connection = ? AND cancel_due_at > ?",
            (connection, _ts(now)),
        ).fetchone()
        due = [value for value in (row[0], cancel[0]) if value is not None]
        return _from_ts(min(due)) if due else None

    async def postpone(self, order_id: str, until: datetime, reason: str) -> None:
        await self._run(self._postpone, order_id, until, reason)

    def _postpone(self, order_id: str, until: datetime, reason: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                "UPDATE orders SET next_attempt_at = ?, last_error = ?, updated_at = ? "
                "WHERE id = ? AND status IN (?, ?)",
                (_ts(until), reason, _iso(utcnow()), order_id, *_DELIVERABLE),
            )

    async def begin_attempt(self, order_id: str, lease_seconds: float = 60.0) -> int | None:
        return await self._run(self._begin_attempt, order_id, lease_seconds)

    def _begin_attempt(self, order_id: str, lease_seconds: float) -> int | None:
        with self._transaction() as tx:
            # The lease keeps the order out of due_deliveries while this attempt runs; if the
            # process dies, open() makes it due again at once. An order cancelled (or with a
            # cancellation waiting) since it was found due is not sent: this transaction and
            # the cancellation's are serialised by the writer, so one of them sees the other.
            row = tx.execute(
                "UPDATE orders SET attempts = attempts + 1, maybe_in_pos = 1, "
                "next_attempt_at = ?, updated_at = ? WHERE id = ? AND status IN (?, ?) "
                "AND (cancel_state IS NULL OR cancel_state != ?) RETURNING attempts",
                (
                    _ts(utcnow()) + lease_seconds,
                    _iso(utcnow()),
                    order_id,
                    *_DELIVERABLE,
                    CancelState.REQUESTED.value,
                ),
            ).fetchone()
            if row is None:
                if tx.execute("SELECT 1 FROM orders WHERE id = ?", (order_id,)).fetchone():
                    return None
                raise KeyError(order_id)
            number = int(row[0])
            tx.execute(
                "INSERT INTO delivery_attempts (order_id, number, started_at, outcome) "
                "VALUES (?, ?, ?, 'in_flight')",
                (order_id, number, _iso(utcnow())),
            )
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
        await self._run(self._end_attempt, order_id, maybe_in_pos, error, next_attempt_at, attempt)

    def _end_attempt(
        self,
        order_id: str,
        maybe_in_pos: bool,
        error: str,
        next_attempt_at: datetime,
        attempt: int | None,
    ) -> None:
        with self._transaction() as tx:
            outcome = "unknown" if maybe_in_pos else "retry"
            if not self._close_attempt(tx, order_id, outcome, error, attempt):
                return  # a later attempt took the order over: this one's word is stale
            tx.execute(
                "UPDATE orders SET maybe_in_pos = ?, last_error = ?, next_attempt_at = ?, "
                "updated_at = ? WHERE id = ? AND status IN (?, ?)",
                (
                    int(maybe_in_pos),
                    error,
                    _ts(next_attempt_at),
                    _iso(utcnow()),
                    order_id,
                    *_DELIVERABLE,
                ),
            )

    async def finish_attempt(
        self, order_id: str, outcome: str, error: str | None = None, *, attempt: int | None = None
    ) -> None:
        await self._run(self._finish_attempt, order_id, outcome, error, attempt)

    def _finish_attempt(
        self, order_id: str, outcome: str, error: str | None, attempt: int | None
    ) -> None:
        with self._transaction() as tx:
            self._close_attempt(tx, order_id, outcome, error, attempt)

    def _close_attempt(
        self,
        tx: SQLConnection,
        order_id: str,
        outcome: str,
        error: str | None,
        attempt: int | None = None,
    ) -> bool:
        """Close the latest attempt (or number ``attempt``) if it is still in flight.

        :returns: whether an attempt was closed; not when ``attempt`` is no longer the latest
            (a later one fenced it off).
        """
        if attempt is not None:
            latest = tx.execute("SELECT attempts FROM orders WHERE id = ?", (order_id,)).fetchone()
            if latest is None or int(latest[0]) != attempt:
                return False
        closed = tx.execute(
            "UPDATE delivery_attempts SET outcome = ?, error = ?, finished_at = ? "
            "WHERE order_id = ? AND number = (SELECT MAX(number) FROM delivery_attempts "
            "WHERE order_id = ?) AND outcome = 'in_flight'",
            (outcome, error, _iso(utcnow()), order_id, order_id),
        )
        return attempt is None or closed.rowcount > 0

    async def attempts_of(self, order_id: str) -> list[Attempt]:
        return await self._run(self._attempts_of, order_id)

    def _attempts_of(self, order_id: str) -> list[Attempt]:
        rows = self.db.execute(
            "SELECT number, started_at, finished_at, outcome, error FROM delivery_attempts "
            "WHERE order_id = ? ORDER BY number",
            (order_id,),
        ).fetchall()
        return [
            Attempt(
                number=number,
                started_at=_from_iso(started),
                finished_at=None if finished is None else _from_iso(finished),
                outcome=outcome,
                error=error,
            )
            for number, started, finished, outcome, error in rows
        ]

    # --- outbox ---------------------------------------------------------------------------------

    async def outbox_due(self, now: datetime, limit: int) -> list[OutboxEvent]:
        return await self._run(self._outbox_due, now, limit)

    def _outbox_due(self, now: datetime, limit: int) -> list[OutboxEvent]:
        rows = self.db.execute(
            "SELECT o.event_id, o.stream, o.sequence, o.body, o.attempts, o.created_at "
            "FROM outbox o JOIN (SELECT stream, MIN(sequence) AS head FROM outbox "
            "WHERE delivered_at IS NULL GROUP BY stream) h "
            "ON o.stream = h.stream AND o.sequence = h.head "
            "WHERE o.next_attempt_at <= ? ORDER BY o.next_attempt_at LIMIT ?",
            (_ts(now), limit),
        ).fetchall()
        return [
            OutboxEvent(
                event_id=event_id,
                stream=stream,
                sequence=sequence,
                body=bytes(body),
                attempts=attempts,
                created_at=_from_iso(created_at),
            )
            for event_id, stream, sequence, body, attempts, created_at in rows
        ]

    async def outbox_claim(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxEvent]:
        # One process owns a SQLite file: its sender holds what it sends, nothing to claim.
        return await self.outbox_due(now, limit)

    async def outbox_next_at(self) -> datetime | None:
        return await self._run(self._outbox_next_at)

    def _outbox_next_at(self) -> datetime | None:
        row = self.db.execute(
            "SELECT MIN(o.next_attempt_at) FROM outbox o JOIN (SELECT stream, "
            "MIN(sequence) AS head FROM outbox WHERE delivered_at IS NULL GROUP BY stream) h "
            "ON o.stream = h.stream AND o.sequence = h.head"
        ).fetchone()
        return _from_ts(row[0])

    async def outbox_delivered(self, event_id: str) -> None:
        await self._run(self._outbox_delivered, event_id)

    def _outbox_delivered(self, event_id: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                # Skipped by an operator while its delivery was under way: it arrived after all.
                "UPDATE outbox SET delivered_at = ?, skipped_at = NULL, attempts = attempts + 1 "
                "WHERE event_id = ?",
                (_iso(utcnow()), event_id),
            )

    async def outbox_failed(self, event_id: str, error: str, next_attempt_at: datetime) -> None:
        await self._run(self._outbox_failed, event_id, error, next_attempt_at)

    def _outbox_failed(self, event_id: str, error: str, next_attempt_at: datetime) -> None:
        with self._transaction() as tx:
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE event_id = ?",
                (error, _ts(next_attempt_at), event_id),
            )

    async def outbox_pending(self) -> int:
        return await self._run(self._outbox_pending)

    def _outbox_pending(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
        return int(row[0])

    async def outbox_backlog(self) -> list[tuple[str, int, datetime]]:
        return await self._run(self._outbox_backlog)

    def _outbox_backlog(self) -> list[tuple[str, int, datetime]]:
        rows = self.db.execute(
            "SELECT substr(stream, 1, instr(stream, ':') - 1), COUNT(*), MIN(created_at) "
            "FROM outbox WHERE delivered_at IS NULL GROUP BY 1"
        ).fetchall()
        return [(kind, int(count), _from_iso(first)) for kind, count, first in rows]

    async def stream_events(self, stream: str, after: int = 0) -> list[CloudEventRecord]:
        return await self._run(self._stream_events, stream, after)

    def _stream_events(self, stream: str, after: int) -> list[CloudEventRecord]:
        rows = self.db.execute(
            "SELECT event_id, sequence, body, created_at, attempts, delivered_at, last_error "
            "FROM outbox WHERE stream = ? AND sequence > ? ORDER BY sequence",
            (stream, after),
        ).fetchall()
        return [
            CloudEventRecord(
                event_id=event_id,
                sequence=sequence,
                body=bytes(body),
                created_at=_from_iso(created_at),
                attempts=attempts,
                delivered_at=None if delivered_at is None else _from_iso(delivered_at),
                last_error=last_error,
            )
            for event_id, sequence, body, created_at, attempts, delivered_at, last_error in rows
        ]

    async def order_counts(self) -> list[tuple[str, str, int]]:
        return await self._run(self._order_counts)

    def _order_counts(self) -> list[tuple[str, str, int]]:
        rows = self.db.execute(
            "SELECT connection, status, COUNT(*) FROM orders GROUP BY connection, status"
        ).fetchall()
        return [(str(c), str(s), int(n)) for c, s, n in rows]

    def observe_writes(self, observer: Callable[[float], None]) -> None:
        self._write_observer = observer
        if self._writer is not None:
            self._writer.observe = observer

    # --- menus ----------------------------------------------------------------------------------

    async def publish_menu(
        self,
        location: str,
        connection: str,
        content_hash: str,
        body: MenuBody,
        notice: MenuNotice | None = None,
    ) -> MenuSnapshot | None:
        return await self._run(
            self._publish_menu, location, connection, content_hash, body, notice or MenuNotice()
        )

    def _publish_menu(
        self, location: str, connection: str, content_hash: str, body: MenuBody, notice: MenuNotice
    ) -> MenuSnapshot | None:
        with self._transaction() as tx:
            # Only the latest version's number and hash: not its body (megabytes for a chain).
            latest = tx.execute(
                "SELECT version, content_hash FROM menus WHERE location = ? "
                "ORDER BY version DESC LIMIT 1",
                (location,),
            ).fetchone()
            if latest is not None and latest[1] == content_hash:
                return None
            version = 1 if latest is None else int(latest[0]) + 1
            now = utcnow()
            self._keep_body(tx, body)
            tx.execute(
                "INSERT INTO menus (location, version, connection, content_hash, body, "
                "body_hash, published_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (location, version, connection, content_hash, b"", body.digest, _iso(now)),
            )
            event = MenuPublished(
                event_id=str(uuid.uuid4()),
                sequence=version,
                location=location,
                version=version,
                content_hash=content_hash,
                published_at=now,
                menu_url=f"/v1/locations/{location}/menu",
                diff_url=None
                if latest is None
                else f"/v1/locations/{location}/menu?since={latest[0]}",
                notice=notice,
            )
            self._enqueue(tx, event.event_id, menu_stream(location), version, event)
            return MenuSnapshot(location, connection, version, content_hash, body, now)

    def _keep_body(self, tx: SQLConnection, body: MenuBody) -> None:
        """Store ``body`` unless it is stored already (another location published it)."""
        found = tx.execute(
            "SELECT 1 FROM menu_bodies WHERE body_hash = ?", (body.digest,)
        ).fetchone()
        if found is None:
            tx.execute(
                "INSERT INTO menu_bodies (body_hash, head, tail) VALUES (?, ?, ?) "
                "ON CONFLICT (body_hash) DO NOTHING",
                (body.digest, body.before, body.after),
            )

    async def latest_menu(self, location: str) -> MenuSnapshot | None:
        return await self._run(self._latest_menu, self.db, location)

    async def menu_locations(self) -> set[str]:
        return await self._run(self._menu_locations)

    def _menu_locations(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT DISTINCT location FROM menus")}

    def _latest_menu(
        self, db: SQLConnection, location: str, version: int | None = None
    ) -> MenuSnapshot | None:
        columns = (
            "SELECT m.location, m.connection, m.version, m.content_hash, m.body, m.body_hash, "
            "m.published_at FROM menus m WHERE m.location = ? "
        )
        if version is None:
            row = db.execute(columns + "ORDER BY m.version DESC LIMIT 1", (location,)).fetchone()
        else:
            row = db.execute(columns + "AND m.version = ?", (location, version)).fetchone()
        if row is None:
            return None
        loc, connection, version, content_hash, body, body_hash, published_at = row
        stored: MenuBody | bytes = bytes(body)
        if body_hash is not None:
            stored = self._shared_body(db, body_hash)
        return MenuSnapshot(loc, connection, version, content_hash, stored, _from_iso(published_at))

    def _shared_body(self, db: SQLConnection, body_hash: str) -> MenuBody:
        """The shared body named ``body_hash``: the same object for every location reading it
        while it is the last one read (a chain's locations load one catalog's menu in turn)."""
        last = self._last_body
        if last is not None and last[0] == body_hash:
            return last[1]
        head, tail = db.execute(
            "SELECT head, tail FROM menu_bodies WHERE body_hash = ?", (body_hash,)
        ).fetchone()
        body = MenuBody(bytes(head), bytes(tail))
        self._last_body = (body_hash, body)
        return body

    async def menu_version(self, location: str, version: int) -> MenuSnapshot | None:
        return await self._run(self._latest_menu, self.db, location, version)

    async def save_menu_report(self, location: str, body: bytes) -> None:
        await self._run(self._save_menu_report, location, body)

    def _save_menu_report(self, location: str, body: bytes) -> None:
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO menu_reports (location, checked_at, body) VALUES (?, ?, ?) "
                "ON CONFLICT (location) DO UPDATE SET checked_at = excluded.checked_at, "
                "body = excluded.body",
                (location, _iso(utcnow()), body),
            )

    async def menu_report(self, location: str) -> bytes | None:
        return await self._run(self._menu_report, location)

    def _menu_report(self, location: str) -> bytes | None:
        row = self.db.execute(
            "SELECT body FROM menu_reports WHERE location = ?", (location,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    # --- plugin state ---------------------------------------------------------------------------

    async def state_get(self, connection: str, key: str) -> str | None:
        return await self._run(self._state_get, connection, key)

    def _state_get(self, connection: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT value FROM plugin_state WHERE connection = ? AND key = ?", (connection, key)
        ).fetchone()
        return None if row is None else str(row[0])

    async def state_set(self, connection: str, key: str, value: str) -> None:
        await self._run(self._state_set, connection, key, value)

    def _state_set(self, connection: str, key: str, value: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO plugin_state (connection, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (connection, key) DO UPDATE SET value = excluded.value",
                (connection, key, value),
            )

    async def state_delete(self, connection: str, key: str) -> None:
        await self._run(self._state_delete, connection, key)

    def _state_delete(self, connection: str, key: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                "DELETE FROM plugin_state WHERE connection = ? AND key = ?", (connection, key)
            )


def _record(row: tuple[object, ...]) -> OrderRecord:
    (
        _id,
        connection,
        body,
        content_hash,
        idempotency_key,
        status,
        status_reason,
        pos_order_id,
        attempts,
        next_attempt_at,
        maybe_in_pos,
        last_error,
        created_at,
        updated_at,
        cancel_state,
        cancel_by,
        cancel_reason,
        cancel_requested_at,
        cancel_outcome,
    ) = row
    assert isinstance(body, bytes | bytearray)
    cancellation = (
        None
        if cancel_state is None
        else Cancellation(
            state=CancelState(str(cancel_state)),
            requested_by=str(cancel_by),
            reason=str(cancel_reason),
            requested_at=_from_iso(str(cancel_requested_at)),
            outcome=None if cancel_outcome is None else str(cancel_outcome),
        )
    )
    return OrderRecord(
        order=Order.model_validate_json(body),
        connection=str(connection),
        status=OrderStatus(str(status)),
        status_reason=None if status_reason is None else str(status_reason),
        pos_order_id=None if pos_order_id is None else str(pos_order_id),
        idempotency_key=str(idempotency_key),
        content_hash=str(content_hash),
        created_at=_from_iso(str(created_at)),
        updated_at=_from_iso(str(updated_at)),
        attempts=int(str(attempts)),
        next_attempt_at=_from_ts(None if next_attempt_at is None else float(str(next_attempt_at))),
        maybe_in_pos=bool(maybe_in_pos),
        last_error=None if last_error is None else str(last_error),
        cancellation=cancellation,
    )

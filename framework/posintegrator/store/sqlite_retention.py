"""Retention on SQLite (see :mod:`posintegrator.store.retention`), as a part of
:class:`~posintegrator.store.sqlite.SQLiteStore` that works on the same connection and writer.

Deleted rows free their pages for SQLite to reuse (the store runs without ``auto_vacuum``), so
under steady load the file stops growing at the size its retention window needs; it does not
shrink. Every batch is one writer job: it commits with whatever orders arrive at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from posintegrator.cloud.events import order_stream
from posintegrator.model import FINAL_STATUSES
from posintegrator.store.retention import Pruned
from posintegrator.store.sql import SQLConnection

T = TypeVar("T")

_FINAL = tuple(sorted(status.value for status in FINAL_STATUSES))

#: Ids per ``IN (...)`` list: well under SQLite's limit on bound parameters.
_IDS_PER_STATEMENT = 500

_FINISHED_ORDERS = (
    "SELECT o.id FROM orders o "  # noqa: S608 (only placeholders are interpolated)
    f"WHERE o.status IN ({', '.join('?' * len(_FINAL))}) "
    # created_at <= updated_at, so this narrows the scan to the status index's old end.
    "AND o.created_at < ? AND o.updated_at < ? "
    f"AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.stream = '{order_stream('')}' || o.id "
    "AND e.delivered_at IS NULL) "
    "AND NOT EXISTS (SELECT 1 FROM link_outbox m WHERE m.order_id = o.id) "
    "LIMIT ?"
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _delete_in(tx: SQLConnection, table: str, column: str, values: list[str]) -> int:
    """Delete the rows of ``table`` whose ``column`` is one of ``values``; how many went."""
    deleted = 0
    for start in range(0, len(values), _IDS_PER_STATEMENT):
        chunk = values[start : start + _IDS_PER_STATEMENT]
        marks = ", ".join("?" * len(chunk))
        deleted += tx.execute(
            f"DELETE FROM {table} WHERE {column} IN ({marks})",  # noqa: S608
            chunk,
        ).rowcount
    return deleted


class RetentionTables:
    """Retention methods of the SQLite store."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[..., T], *args: object) -> T: ...

        def _transaction(self) -> AbstractContextManager[SQLConnection]: ...

    async def prune_orders(self, before: datetime, limit: int) -> Pruned:
        return await self._run(self._prune_orders, before, limit)

    def _prune_orders(self, before: datetime, limit: int) -> Pruned:
        cutoff = _iso(before)
        with self._transaction() as tx:
            ids = [row[0] for row in tx.execute(_FINISHED_ORDERS, (*_FINAL, cutoff, cutoff, limit))]
            if not ids:
                return {}
            return {
                "status_history": _delete_in(tx, "status_history", "order_id", ids),
                "delivery_attempts": _delete_in(tx, "delivery_attempts", "order_id", ids),
                "outbox": _delete_in(tx, "outbox", "stream", [order_stream(i) for i in ids]),
                "orders": _delete_in(tx, "orders", "id", ids),
            }

    async def prune_events(self, before: datetime, limit: int) -> Pruned:
        return await self._run(self._prune_events, before, limit)

    def _prune_events(self, before: datetime, limit: int) -> Pruned:
        with self._transaction() as tx:
            deleted = tx.execute(
                "DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox "
                "WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?)",
                (_iso(before), limit),
            ).rowcount
        return {"outbox": deleted} if deleted else {}

    async def prune_menus(self, before: datetime, keep_latest: int, limit: int) -> Pruned:
        if keep_latest < 1:
            raise ValueError("keep_latest must be at least 1: the live menu always stays")
        return await self._run(self._prune_menus, before, keep_latest, limit)

    def _prune_menus(self, before: datetime, keep_latest: int, limit: int) -> Pruned:
        with self._transaction() as tx:
            deleted = tx.execute(
                "DELETE FROM menus WHERE rowid IN (SELECT m.rowid FROM menus m "
                "WHERE m.published_at < ? AND m.version <= "
                "(SELECT MAX(x.version) FROM menus x WHERE x.location = m.location) - ? "
                "LIMIT ?)",
                (_iso(before), keep_latest, limit),
            ).rowcount
            bodies = 0
            if deleted:
                bodies = tx.execute(
                    "DELETE FROM menu_bodies WHERE NOT EXISTS (SELECT 1 FROM menus m "
                    "WHERE m.body_hash = menu_bodies.body_hash)"
                ).rowcount
        pruned = {"menus": deleted, "menu_bodies": bodies}
        return {table: count for table, count in pruned.items() if count}

    async def prune_stream_actions(self, before: datetime, limit: int) -> Pruned:
        return await self._run(self._prune_stream_actions, before, limit)

    def _prune_stream_actions(self, before: datetime, limit: int) -> Pruned:
        with self._transaction() as tx:
            deleted = tx.execute(
                "DELETE FROM stream_actions WHERE rowid IN (SELECT rowid FROM stream_actions "
                "WHERE at < ? LIMIT ?)",
                (_iso(before), limit),
            ).rowcount
        return {"stream_actions": deleted} if deleted else {}

    async def prune_pairings(self, before: datetime, limit: int) -> Pruned:
        return await self._run(self._prune_pairings, before, limit)

    def _prune_pairings(self, before: datetime, limit: int) -> Pruned:
        with self._transaction() as tx:
            deleted = tx.execute(
                "DELETE FROM pairings WHERE rowid IN (SELECT rowid FROM pairings "
                "WHERE expires_at < ? LIMIT ?)",
                (before.timestamp(), limit),
            ).rowcount
        return {"pairings": deleted} if deleted else {}

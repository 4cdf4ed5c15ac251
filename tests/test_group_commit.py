"""Group commit: concurrent writes share transactions, each is durable when it returns, and one
failing write does not undo the others of its batch."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from posintegrator.model import Order, OrderStatus, StatusEvent
from posintegrator.orders.intake import idempotency_key, order_content_hash
from posintegrator.store import AcceptOutcome, SQLiteStore
from posintegrator.store import writer as writer_module
from posintegrator.store.writer import GroupCommitWriter


def an_order(example: dict[str, Any], order_id: str) -> Order:
    return Order.model_validate({**example, "id": order_id})


async def accept(store: SQLiteStore, order: Order) -> AcceptOutcome:
    result = await store.accept_order(
        order, "demo", order_content_hash(order), idempotency_key(order.id)
    )
    return result.outcome


async def test_concurrent_writes_share_commits_and_are_durable_on_return(
    tmp_path: Path, example_order: dict[str, Any]
) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    try:
        orders = [an_order(example_order, f"g-{i}") for i in range(64)]
        seen_by_another_connection = []

        async def accept_and_check(order: Order) -> None:
            assert await accept(store, order) == AcceptOutcome.CREATED
            # Once the call returns, the order is committed: a separate reader sees it.
            other = sqlite3.connect(tmp_path / "g.db")
            row = other.execute("SELECT id FROM orders WHERE id = ?", (order.id,)).fetchone()
            other.close()
            seen_by_another_connection.append(row is not None)

        await asyncio.gather(*(accept_and_check(o) for o in orders))
        assert all(seen_by_another_connection) and len(seen_by_another_connection) == 64
        writer = store._writer
        assert writer is not None
        assert writer.batches < 64, "concurrent writes were grouped into fewer transactions"
    finally:
        await store.close()


async def test_a_failing_write_does_not_undo_its_batch(
    tmp_path: Path, example_order: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    try:
        await accept(store, an_order(example_order, "bad"))
        original = store._enqueue

        def fail_for_bad(tx: Any, event_id: str, stream: str, *rest: Any) -> None:
            if stream == "order:bad":
                raise sqlite3.OperationalError("disk I/O error")
            original(tx, event_id, stream, *rest)

        monkeypatch.setattr(store, "_enqueue", fail_for_bad)
        ready = StatusEvent(order_id="bad", status=OrderStatus.READY)
        results = await asyncio.gather(
            store.apply_status("bad", ready),
            *(accept(store, an_order(example_order, f"ok-{i}")) for i in range(10)),
            return_exceptions=True,
        )
        assert isinstance(results[0], sqlite3.OperationalError)
        assert results[1:] == [AcceptOutcome.CREATED] * 10
        bad = await store.get_order("bad")
        assert bad is not None and bad.status == OrderStatus.RECEIVED, "its own change undone"
        for i in range(10):
            assert await store.get_order(f"ok-{i}") is not None, "the others committed"
    finally:
        await store.close()


async def test_a_batch_that_cannot_begin_fails_its_callers_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """E.g. an operator's sqlite3 shell holds the write lock longer than the busy timeout."""
    path = tmp_path / "w.db"
    writer = GroupCommitWriter()
    writer.start()
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 50")
        db.execute("CREATE TABLE t (n INTEGER)")
        writer.db = db

        def insert(n: int) -> int:
            with writer.transaction() as tx:
                tx.execute("INSERT INTO t VALUES (?)", (n,))
            return n

        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        async with asyncio.timeout(10):  # a dead writer thread would make this wait forever
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await writer.run(lambda: insert(1))
            other.execute("ROLLBACK")
            other.close()
            assert await writer.run(lambda: insert(2)) == 2
        assert db.execute("SELECT n FROM t").fetchall() == [(2,)]
    finally:
        writer.stop()


async def test_one_order_id_posted_several_times_at_once_is_created_once(
    tmp_path: Path, example_order: dict[str, Any]
) -> None:
    """Concurrent posts of one id land in one accept group: the first creates the order, a
    copy is a replay, other content under that id a conflict; one row, one event."""
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    try:
        first = an_order(example_order, "same-id")
        changed = an_order({**example_order, "customer_note": "other content"}, "same-id")
        others = [an_order(example_order, f"other-{i}") for i in range(5)]
        outcomes = await asyncio.gather(
            accept(store, first), accept(store, first), accept(store, changed),
            *(accept(store, o) for o in others),
        )  # fmt: skip
        assert outcomes[:3] == [
            AcceptOutcome.CREATED,
            AcceptOutcome.REPLAYED,
            AcceptOutcome.CONFLICT,
        ]
        assert outcomes[3:] == [AcceptOutcome.CREATED] * 5
        db = sqlite3.connect(tmp_path / "g.db")
        count = "SELECT count(*) FROM {} WHERE {} = 'same-id'"
        assert db.execute(count.format("orders", "id")).fetchone() == (1,)
        assert db.execute(count.format("status_history", "order_id")).fetchone() == (1,)
        assert db.execute(
            "SELECT count(*) FROM outbox WHERE stream = 'order:same-id'"
        ).fetchone() == (1,)
        db.close()
        # Later, outside that group, the same answers come from the stored order.
        assert await accept(store, first) == AcceptOutcome.REPLAYED
        assert await accept(store, changed) == AcceptOutcome.CONFLICT
    finally:
        await store.close()


async def test_a_group_the_store_cannot_write_fails_every_caller_and_the_next_group_works(
    tmp_path: Path, example_order: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    await store.open()
    try:
        real = store._accept_orders

        def disk_full(group: list[Any]) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(store, "_accept_orders", disk_full)
        orders = [an_order(example_order, f"f-{i}") for i in range(4)]
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(accept(store, o) for o in orders), return_exceptions=True
            )
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        monkeypatch.setattr(store, "_accept_orders", real)
        assert await accept(store, orders[0]) == AcceptOutcome.CREATED
    finally:
        await store.close()


class Conflict(Exception):
    """What PostgreSQL raises when a concurrent worker's transaction wins (simulated)."""


class CountingConnection:
    """A SQLite connection that counts the transaction statements run on it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.statements: list[str] = []

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        if sql.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.statements.append(sql.split()[0])
        return self.db.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.db.executemany(sql, parameters)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def close(self) -> None:
        self.db.close()


async def run_one_batch(
    tmp_path: Path, conflicts: dict[int, int]
) -> tuple[list[Any], CountingConnection, list[int]]:
    """Five inserts queued before the writer starts (so they make one batch); insert ``n``
    conflicts the first ``conflicts[n]`` times it runs. Their outcomes, the connection, and
    how often each ran."""
    writer = GroupCommitWriter(retry_batch=lambda error: isinstance(error, Conflict))
    db = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    db.execute("CREATE TABLE t (n INTEGER)")
    counting = CountingConnection(db)
    writer.db = counting
    runs = [0] * 5

    def insert(n: int) -> int:
        runs[n] += 1
        with writer.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (?)", (n,))
        if runs[n] <= conflicts.get(n, 0):
            raise Conflict(n)
        return n

    calls = [asyncio.create_task(writer.run(lambda n=n: insert(n))) for n in range(5)]
    await asyncio.sleep(0)  # each call has queued its job
    writer.start()
    try:
        async with asyncio.timeout(30):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        writer.stop()
    return outcomes, counting, runs


async def test_a_batch_refused_by_a_conflict_runs_again_whole(tmp_path: Path) -> None:
    """Another worker won once: the batch runs again as it was, in one more transaction (not
    one per job, each after a pause: under load that queued every later write behind it)."""
    outcomes, counting, runs = await run_one_batch(tmp_path, {2: 1})
    assert outcomes == [0, 1, 2, 3, 4]
    assert counting.statements == ["BEGIN", "ROLLBACK", "BEGIN", "COMMIT"]
    assert runs == [2, 2, 2, 2, 2]
    rows = counting.db.execute("SELECT n FROM t ORDER BY n").fetchall()
    assert rows == [(n,) for n in range(5)]  # each once: the refused run left nothing


async def test_a_job_that_keeps_conflicting_holds_back_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "MAX_JOB_RUNS", 3)
    outcomes, counting, runs = await run_one_batch(tmp_path, {2: 1000})
    assert outcomes[:2] + outcomes[3:] == [0, 1, 3, 4]
    assert isinstance(outcomes[2], Conflict)
    batch_runs = 1 + writer_module.BATCH_RERUNS
    assert runs == [batch_runs + 1, batch_runs + 1, batch_runs + 3, batch_runs + 1, batch_runs + 1]
    rows = counting.db.execute("SELECT n FROM t ORDER BY n").fetchall()
    assert rows == [(0,), (1,), (3,), (4,)]

"""The simulator's SQLite persistence: what a restart loads, when a change is on disk, what a
change writes, the one-time migration of a ``demopos.json`` data directory, and a ``kill -9``."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from test_simulator import PLUGIN_ROOT, get_json, order_body, post_order, start_simulator_cli

from pos_demo.simulator import RunningSimulator
from pos_demo.simulator.availability import AvailabilityBoard
from pos_demo.simulator.menu import MenuCatalog
from pos_demo.simulator.orders import OrderBook
from pos_demo.simulator.storage import DB_NAME, PosState, Storage

SimulatorFactory = Callable[..., Awaitable[RunningSimulator]]


def _fill(storage: Storage, orders: int) -> OrderBook:
    """Orders in every kind of state, and availability overrides, through the real code."""
    book = OrderBook(storage)
    for number in range(orders):
        body = {"reference": f"ref-{number}", "location": "downtown"}
        book.create(f"key-{number}", f"hash-{number}", body)
    book.transition("D-000001", "preparing", 1_700_000_000.5)  # kitchen entry replaced
    book.cancel("D-000002", reason="customer left")  # kitchen entry removed
    board = AvailabilityBoard(storage, MenuCatalog())
    board.set("downtown", item="fries", available=False, reason="out of stock")
    board.set("downtown", option="sauce_bbq", available=False)
    board.set("downtown", item="fries", available=True)  # the same record again
    return book


def _reloaded(data_dir: Path) -> PosState:
    storage = Storage(data_dir)
    try:
        return storage.load()
    finally:
        storage.close()


def test_a_restart_loads_the_state_as_it_was(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.load()
    _fill(storage, orders=5)
    before = storage.state
    storage.close()

    after = _reloaded(tmp_path)

    assert after == before
    assert list(after.orders) == list(before.orders)  # creation order, not just the same set
    assert after.kitchen["D-000001"] == 1_700_000_000.5
    assert set(after.kitchen) == {"D-000001", "D-000003", "D-000004", "D-000005"}
    assert after.orders["D-000002"]["cancel_reason"] == "customer left"
    assert after.idempotency["key-4"] == {"order_id": "D-000005", "body_hash": "hash-4"}
    assert [event["seq"] for event in after.events] == list(range(1, 8))
    assert after.availability["downtown"]["items"]["fries"]["available"] is True
    assert after.availability["downtown"]["options"]["sauce_bbq"]["available"] is False
    assert (after.last_order_number, after.last_seq, after.last_availability_seq) == (5, 7, 3)


def test_one_change_writes_the_same_rows_however_full_the_pos_is(tmp_path: Path) -> None:
    """Each change writes only the rows it touched: creating the 2nd order and the 202nd, or
    moving one of them on, changes as many rows (counted by SQLite)."""
    storage = Storage(tmp_path)
    storage.load()
    book = OrderBook(storage)
    body = {"reference": "ref", "location": "downtown"}

    def rows_changed(change: Callable[[], object]) -> int:
        start = storage.db.total_changes
        change()
        return storage.db.total_changes - start

    book.create("key-0", "hash", body)
    small = (
        rows_changed(lambda: book.create("key-1", "hash", body)),
        rows_changed(lambda: book.transition("D-000002", "preparing", 1.0)),
    )
    for number in range(2, 202):
        book.create(f"key-{number}", "hash", body)
    large = (
        rows_changed(lambda: book.create("key-202", "hash", body)),
        rows_changed(lambda: book.transition("D-000203", "preparing", 1.0)),
    )
    storage.close()

    assert large == small
    # order + event + idempotency key + kitchen entry + 3 counters; order + event + kitchen + 3
    assert small == (7, 6)


async def test_a_change_is_in_the_database_before_the_answer(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Right after each answer, a separate connection to the file sees the change."""
    key = uuid.uuid4().hex
    status, order = await post_order(simulator_http, simulator, order_body("ref-1"), key=key)
    assert status == 201
    with sqlite3.connect(tmp_path / "demopos" / DB_NAME) as db:
        (doc,) = db.execute("SELECT doc FROM orders WHERE id = ?", (order["id"],)).fetchone()
        assert orjson.loads(doc)["reference"] == "ref-1"
        events = db.execute("SELECT doc FROM events").fetchall()
        assert [orjson.loads(event)["state"] for (event,) in events] == ["accepted"]
        assert db.execute("SELECT order_id FROM idempotency WHERE key = ?", (key,)).fetchone()
        assert db.execute("SELECT 1 FROM kitchen WHERE order_id = ?", (order["id"],)).fetchone()

    async with simulator_http.post(
        f"{simulator.url}/orders/{order['id']}/cancel", json={"reason": "changed mind"}
    ) as response:
        assert response.status == 200
    async with simulator_http.post(
        f"{simulator.url}/availability",
        json={"location": "downtown", "item": "fries", "available": False},
    ) as response:
        assert response.status == 200
    with sqlite3.connect(tmp_path / "demopos" / DB_NAME) as db:
        (doc,) = db.execute("SELECT doc FROM orders WHERE id = ?", (order["id"],)).fetchone()
        assert orjson.loads(doc)["state"] == "cancelled"
        assert not db.execute("SELECT 1 FROM kitchen").fetchall()
        (record,) = db.execute(
            "SELECT doc FROM availability WHERE location = 'downtown' AND key = 'fries'"
        ).fetchone()
        assert orjson.loads(record)["available"] is False


def _legacy_document() -> dict[str, Any]:
    """A ``demopos.json`` as the simulator wrote it before the database."""
    order = {
        "id": "D-000007",
        "reference": "ref-7",
        "location": "downtown",
        "state": "accepted",
        "history": [{"seq": 9, "state": "accepted", "at": "2026-11-30T12:00:00.000Z"}],
    }
    return {
        "version": 1,
        "last_order_number": 7,
        "last_seq": 9,
        "orders": [order],
        "events": [
            {
                "seq": 9,
                "order_id": "D-000007",
                "reference": "ref-7",
                "location": "downtown",
                "state": "accepted",
                "at": "2026-11-30T12:00:00.000Z",
            },
        ],
        "idempotency": {"k7": {"order_id": "D-000007", "body_hash": "h7"}},
        "kitchen": {"D-000007": 1_764_504_000},
        "availability": {
            "downtown": {
                "items": {
                    "fries": {
                        "available": False,
                        "until": None,
                        "reason": None,
                        "at": "2026-11-30T11:00:00.000Z",
                    }
                }
            }
        },
        "last_availability_seq": 2,
    }


def test_a_legacy_state_file_is_migrated_once(tmp_path: Path) -> None:
    legacy = tmp_path / "demopos.json"
    legacy.write_bytes(orjson.dumps(_legacy_document()))

    storage = Storage(tmp_path)
    state = storage.load()
    assert state.orders["D-000007"]["reference"] == "ref-7"
    assert state.idempotency == {"k7": {"order_id": "D-000007", "body_hash": "h7"}}
    assert state.kitchen == {"D-000007": 1_764_504_000.0}
    assert state.availability["downtown"]["items"]["fries"]["available"] is False
    assert (state.last_order_number, state.last_seq, state.last_availability_seq) == (7, 9, 2)
    assert not legacy.exists()
    assert (tmp_path / "demopos.json.migrated").exists()
    # New changes continue the migrated counters.
    assert (
        OrderBook(storage).create("k8", "h8", {"reference": "r8", "location": "downtown"})["id"]
        == "D-000008"
    )
    migrated = storage.state
    storage.close()

    # A crash after the import's commit but before the rename leaves both: the file is not
    # imported again over the newer state.
    (tmp_path / "demopos.json.migrated").replace(legacy)
    assert _reloaded(tmp_path) == migrated
    assert not legacy.exists()


def test_a_broken_legacy_state_file_is_refused_and_kept(tmp_path: Path) -> None:
    legacy = tmp_path / "demopos.json"
    legacy.write_bytes(b'{"version": 99}')
    storage = Storage(tmp_path)
    with pytest.raises(RuntimeError, match=r"cannot migrate .*demopos\.json.*format"):
        storage.load()
    with pytest.raises(RuntimeError, match="not loaded"):
        storage.db  # noqa: B018 - the connection was closed, not left open
    assert legacy.exists()


def test_a_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(RuntimeError, match="schema version 99, expected 1"):
        Storage(tmp_path).load()


async def test_a_kill_9_under_load_leaves_a_state_a_restart_loads(
    tmp_path: Path, simulator_http: aiohttp.ClientSession
) -> None:
    """Orders posted concurrently, the simulator killed (SIGKILL) while they are in flight:
    every answered order is in the reloaded state, and that state is consistent."""
    data_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN_ROOT), *sys.path])}
    proc, url = await start_simulator_cli(
        "--data-dir", str(data_dir), "--stage-seconds", "0.01", env=env
    )
    answered: list[str] = []
    enough_answered = asyncio.Event()  # enough that orders and kitchen stages are in flight

    async def post_until_killed(worker: int) -> None:
        for number in range(10_000):
            body = order_body(f"ref-{worker}-{number}")
            try:
                async with simulator_http.post(
                    f"{url}/orders",
                    data=orjson.dumps(body),
                    headers={"Idempotency-Key": f"{worker}-{number}"},
                ) as response:
                    if response.status == 201:
                        answered.append((await response.json())["id"])
                        if len(answered) >= 40:
                            enough_answered.set()
            except aiohttp.ClientError:
                return

    posters = [asyncio.create_task(post_until_killed(worker)) for worker in range(4)]
    await asyncio.wait_for(enough_answered.wait(), 60)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    async with asyncio.timeout(30):
        await asyncio.gather(*posters)

    state = _reloaded(data_dir)
    assert set(answered) <= set(state.orders)
    assert [event["seq"] for event in state.events] == list(range(1, state.last_seq + 1))
    assert state.last_order_number == len(state.orders)
    for order_id, order in state.orders.items():
        history = [(e["seq"], e["state"]) for e in state.events if e["order_id"] == order_id]
        assert [(h["seq"], h["state"]) for h in order["history"]] == history
        assert history[-1][1] == order["state"]
        assert (order_id in state.kitchen) == (order["state"] not in ("picked_up", "cancelled"))
    assert {record["order_id"] for record in state.idempotency.values()} == set(state.orders)

    # And the restarted simulator serves it and carries on from it.
    proc, url = await start_simulator_cli("--data-dir", str(data_dir), env=env)
    try:
        status, listed = await get_json(simulator_http, f"{url}/orders")
        assert status == 200 and len(listed["orders"]) == len(state.orders)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)

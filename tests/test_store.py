"""The store, on each engine: inbox dedup, status + outbox in one transaction, menus,
migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from helpers import eventually
from pgserver import PostgresServer
from pydantic import SecretStr, ValidationError
from storeengines import StoreFactory

from posintegrator.model import Order, OrderStatus, StatusEvent, utcnow
from posintegrator.orders.intake import idempotency_key, order_content_hash
from posintegrator.settings import StoreSettings
from posintegrator.store import AcceptOutcome, MenuBody, SQLiteStore
from posintegrator.store.link import HandingOver
from posintegrator.store.migrations import LATEST_VERSION
from posintegrator.store.pg_migrations import LATEST_VERSION as PG_LATEST
from posintegrator.store.postgres import PostgresStore


@pytest.fixture
async def store(make_store: StoreFactory) -> Any:
    opened = make_store()
    await opened.open()
    yield opened
    await opened.close()


async def accept(store: SQLiteStore, data: dict[str, Any]) -> AcceptOutcome:
    order = Order.model_validate(data)
    result = await store.accept_order(
        order, "demo", order_content_hash(order), idempotency_key(order.id)
    )
    return result.outcome


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Any:
    opened = SQLiteStore(tmp_path / "store.db")
    await opened.open()
    yield opened
    await opened.close()


async def test_schema_is_versioned_and_in_wal_mode(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    db = sqlite3.connect(tmp_path / "store.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this release"):
        await SQLiteStore(path).open()


async def test_postgres_schema_is_versioned_and_newer_is_refused(
    postgres: PostgresServer,
) -> None:
    url = postgres.new_database()
    first = PostgresStore(SecretStr(url))
    await first.open()
    await first.close()
    second = PostgresStore(SecretStr(url))
    await second.open()  # a second start migrates nothing
    await second.close()
    with psycopg.connect(url, autocommit=True) as db:
        versions = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, PG_LATEST + 1)], "each step once"
        db.execute("INSERT INTO schema_version (version) VALUES (%s)", (PG_LATEST + 1,))
    with pytest.raises(RuntimeError, match="newer than this release"):
        await PostgresStore(SecretStr(url)).open()


async def test_workers_started_together_migrate_a_new_database_once(
    postgres: PostgresServer,
) -> None:
    """Every worker of a deployment may start at the same moment against an empty database."""
    for _ in range(3):  # the race is one of timing: three fresh databases to give it room
        url = SecretStr(postgres.new_database())
        stores = [PostgresStore(url) for _ in range(6)]
        await asyncio.gather(*(store.open() for store in stores))
        await asyncio.gather(*(store.close() for store in stores))
        with psycopg.connect(url.get_secret_value()) as db:
            versions = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [v for (v,) in versions] == list(range(1, PG_LATEST + 1))


async def test_inbox_dedups_on_order_id(store: SQLiteStore, example_order: dict[str, Any]) -> None:
    assert await accept(store, example_order) == AcceptOutcome.CREATED
    assert await accept(store, example_order) == AcceptOutcome.REPLAYED
    assert await accept(store, {**example_order, "customer_note": "x"}) == AcceptOutcome.CONFLICT
    record = await store.get_order("demo-order-0001")
    assert record is not None and record.status == OrderStatus.RECEIVED
    assert record.idempotency_key == idempotency_key("demo-order-0001")
    assert await store.outbox_pending() == 1


async def test_status_change_and_its_event_are_written_together(
    store: SQLiteStore, example_order: dict[str, Any]
) -> None:
    await accept(store, example_order)
    order_id = "demo-order-0001"
    ready = StatusEvent(order_id=order_id, pos_order_id="P9", status=OrderStatus.READY)
    transition = await store.apply_status(order_id, ready)
    assert transition.applied and transition.old == OrderStatus.RECEIVED
    stale = await store.apply_status(
        order_id, StatusEvent(order_id=order_id, status=OrderStatus.ACCEPTED)
    )
    assert not stale.applied and stale.note == "stale: already READY"
    history = await store.order_history(order_id)
    assert [(h.status, h.applied, h.sequence) for h in history] == [
        (OrderStatus.RECEIVED, True, 1),
        (OrderStatus.READY, True, 2),
        (OrderStatus.ACCEPTED, False, None),
    ]
    from posintegrator.model import utcnow

    due = await store.outbox_due(utcnow(), 10)
    assert [e.sequence for e in due] == [1], "only the head of each order's stream is due"
    await store.outbox_delivered(due[0].event_id)
    [second] = await store.outbox_due(utcnow(), 10)
    body = orjson.loads(second.body)
    assert (body["sequence"], body["status"], body["previous_status"]) == (2, "READY", "RECEIVED")
    assert body["pos_order_id"] == "P9"
    assert await store.order_id_for_pos_id("demo", "P9") == order_id


async def test_a_failed_transaction_leaves_nothing_half_written(
    store: SQLiteStore, example_order: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await accept(store, example_order)

    def broken_enqueue(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_enqueue", broken_enqueue)
    with pytest.raises(sqlite3.OperationalError):
        await store.apply_status(
            "demo-order-0001", StatusEvent(order_id="demo-order-0001", status=OrderStatus.READY)
        )
    record = await store.get_order("demo-order-0001")
    assert record is not None and record.status == OrderStatus.RECEIVED
    assert len(await store.order_history("demo-order-0001")) == 1


def body(text: str) -> MenuBody:
    return MenuBody(b'{"location":', f',"text":"{text}"}}'.encode())


async def test_menu_versions_only_on_change(store: SQLiteStore) -> None:
    first = await store.publish_menu("downtown", "demo", "hash-a", body("a"))
    assert first is not None and first.version == 1
    assert await store.publish_menu("downtown", "demo", "hash-a", body("a")) is None
    second = await store.publish_menu("downtown", "demo", "hash-b", body("b"))
    assert second is not None and second.version == 2
    latest = await store.latest_menu("downtown")
    assert latest is not None and latest.content_hash == "hash-b"
    assert latest.body == b'{"location":"downtown","text":"b"}'
    assert await store.latest_menu("airport") is None


async def test_locations_publishing_one_body_each_read_it_as_theirs(store: SQLiteStore) -> None:
    shared = body("chain")
    for location in ("north", 'so"uth'):
        await store.publish_menu(location, "demo", "hash-c", MenuBody(shared.before, shared.after))
    await store.publish_menu("north", "demo", "hash-d", body("new"))
    north, south = await store.menu_version("north", 1), await store.latest_menu('so"uth')
    assert north is not None and north.body == b'{"location":"north","text":"chain"}'
    assert south is not None and south.body == b'{"location":"so\\"uth","text":"chain"}'
    assert orjson.loads(south.body)["location"] == 'so"uth'
    latest = await store.latest_menu("north")
    assert latest is not None and latest.body == b'{"location":"north","text":"new"}'


async def test_a_menu_stored_whole_before_bodies_were_shared_is_still_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO menus (location, version, connection, content_hash, body, "
            "published_at) VALUES ('north', 1, 'demo', 'hash-old', ?, ?)",
            (b'{"location":"north","text":"old"}', "2026-01-01T00:00:00+00:00"),
        )
    store = SQLiteStore(path)
    await store.open()
    try:
        old = await store.latest_menu("north")
        assert old is not None and old.body == b'{"location":"north","text":"old"}'
        new = await store.publish_menu("north", "demo", "hash-new", body("new"))
        assert new is not None and new.version == 2
        assert (await store.menu_version("north", 1)) == old
    finally:
        await store.close()


async def test_plugin_state_survives_reopening(make_store: StoreFactory) -> None:
    first = make_store()
    await first.open()
    await first.state_set("demo", "cursor", "41")
    await first.state_set("demo", "cursor", "42")
    await first.close()
    second = make_store()
    await second.open()
    assert await second.state_get("demo", "cursor") == "42"
    assert await second.state_get("other", "cursor") is None
    await second.close()


async def test_handing_a_due_batch_to_agents(
    store: SQLiteStore, example_order: dict[str, Any]
) -> None:
    """Each order still to be sent is queued for its agent, numbered in the batch's order; one
    cancelled since it was found due is left out (None), and none is queued twice."""
    ids = ["batch-1", "batch-2", "batch-3"]
    for order_id in ids:
        assert await accept(store, {**example_order, "id": order_id}) == AcceptOutcome.CREATED
    cancelled = StatusEvent(order_id="batch-2", status=OrderStatus.CANCELLED, source="test")
    await store.apply_status("batch-2", cancelled)
    await approve_agent(store, "agent-a")
    batch = [HandingOver(order_id, "agent-a", b'{"n": 1}') for order_id in ids]
    numbers = await store.hand_over(batch)
    assert numbers[1] is None
    first, third = numbers[0], numbers[2]
    assert first is not None and third is not None and first < third
    assert await store.hand_over(batch) == [None, None, None], "already queued"
    taken = await store.link_take("agent-a", 0, 10)
    assert [(m.seq, m.order_id) for m in taken] == [(first, "batch-1"), (third, "batch-3")]


async def test_one_look_gives_what_is_due_and_when_the_next_falls_due(
    store: SQLiteStore, example_order: dict[str, Any]
) -> None:
    """A delivery loop sleeps until ``next_at``: it must be the earliest order due *later*,
    never one already returned as due (the loop would wake at once, again and again)."""
    for order_id in ("now-1", "later-1", "later-2"):
        assert await accept(store, {**example_order, "id": order_id}) == AcceptOutcome.CREATED
    now = utcnow()
    await store.postpone("later-1", now + timedelta(seconds=60), "test")
    await store.postpone("later-2", now + timedelta(seconds=30), "test")
    due = await store.due_deliveries("demo", utcnow(), 10)
    assert [record.order.id for record in due.records] == ["now-1"]
    assert due.next_at is not None
    assert abs((due.next_at - (now + timedelta(seconds=30))).total_seconds()) < 0.01
    nothing = await store.due_deliveries("other-connection", utcnow(), 10)
    assert nothing.records == [] and nothing.next_at is None


async def approve_agent(store: SQLiteStore, name: str) -> None:
    """Pair and approve agent ``name`` for the example order's location."""
    await store.pairing_create(
        code=f"CODE-{name}",
        poll_token_hash=f"hash-{name}",
        public_key=f"key-{name}",
        name=name,
        version=None,
        locations=["downtown"],
        expires_at=utcnow() + timedelta(minutes=5),
    )
    await store.agent_approve(
        code=f"CODE-{name}", name=None, locations=["downtown"], approved_by="test"
    )


async def test_no_order_is_handed_to_an_agent_revoked_since_it_was_looked_up(
    store: SQLiteStore, example_order: dict[str, Any]
) -> None:
    """The hub looks an order's agent up, then hands the order over: a revocation in between
    must not leave the order queued for an agent that will never take it."""
    assert await accept(store, {**example_order, "id": "late-1"}) == AcceptOutcome.CREATED
    await approve_agent(store, "agent-gone")
    await store.agent_revoke("agent-gone")
    assert await store.hand_over([HandingOver("late-1", "agent-gone", b"{}")]) == [None]
    assert await store.link_take("agent-gone", 0, 10) == []
    due = await store.due_deliveries("demo", utcnow(), 10)
    assert [record.order.id for record in due.records] == ["late-1"], "the hub's to deliver"


async def test_a_lease_has_one_holder_until_it_runs_out(store: SQLiteStore) -> None:
    assert await store.acquire_lease("poll:demo", "worker-a", 60) == 1
    assert await store.acquire_lease("poll:demo", "worker-b", 60) is None, "held by a"
    assert await store.acquire_lease("poll:demo", "worker-a", 0.05) == 1, "renewed, same token"

    async def taken_over() -> bool:
        return await store.acquire_lease("poll:demo", "worker-b", 60) == 2

    await eventually(taken_over)
    assert await store.acquire_lease("poll:demo", "worker-a", 60) is None, "a was replaced"
    assert await store.lease_holders() == {"poll:demo": ("worker-b", 2)}
    await store.release_lease("poll:demo", "worker-a")  # not a's: nothing changes
    assert await store.lease_holders() == {"poll:demo": ("worker-b", 2)}
    await store.release_lease("poll:demo", "worker-b")
    assert await store.acquire_lease("poll:demo", "worker-a", 60) == 3, "free at once"


async def test_a_stale_attempt_cannot_overwrite_the_next_one(
    store: SQLiteStore, example_order: dict[str, Any]
) -> None:
    """Attempt 1's lease runs out (its worker stalled); attempt 2 takes the order over. When
    attempt 1's outcome arrives late, it is fenced off: attempt 2's claim and record stand."""
    await accept(store, example_order)
    order_id = example_order["id"]
    assert await store.begin_attempt(order_id, lease_seconds=0) == 1
    assert await store.begin_attempt(order_id, lease_seconds=600) == 2
    later = utcnow() + timedelta(seconds=5)
    await store.end_attempt(
        order_id, maybe_in_pos=False, error="late", next_attempt_at=later, attempt=1
    )
    await store.finish_attempt(order_id, "REJECTED", "late", attempt=1)
    record = await store.get_order(order_id)
    assert record is not None and record.maybe_in_pos and record.last_error is None
    assert record.next_attempt_at is not None and record.next_attempt_at > later
    attempts = await store.attempts_of(order_id)
    assert [a.outcome for a in attempts][-1] == "in_flight", "attempt 2 is still under way"
    await store.end_attempt(
        order_id, maybe_in_pos=True, error="timeout", next_attempt_at=later, attempt=2
    )
    record = await store.get_order(order_id)
    assert record is not None and record.last_error == "timeout"
    assert (await store.attempts_of(order_id))[-1].outcome == "unknown"


async def test_two_workers_never_claim_the_same_attempt_or_event(
    postgres: PostgresServer, example_order: dict[str, Any]
) -> None:
    """Two workers on one database race for every order and every event: each is claimed
    exactly once (the loser of a conflict runs again and finds it taken)."""
    url = SecretStr(postgres.new_database())
    workers = [PostgresStore(url), PostgresStore(url)]
    for worker in workers:
        await worker.open()
    try:
        ids = [f"race-{n}" for n in range(40)]
        for order_id in ids:
            await accept(workers[0], {**example_order, "id": order_id})
        claims = await asyncio.gather(
            *(w.begin_attempt(order_id, lease_seconds=600) for order_id in ids for w in workers)
        )
        assert sorted(c for c in claims if c is not None) == [1] * len(ids)
        batches = await asyncio.gather(
            *(w.outbox_claim(utcnow(), 100, lease_seconds=600) for w in workers for _ in range(3))
        )
        claimed = [event.event_id for batch in batches for event in batch]
        assert len(claimed) == len(set(claimed)) == len(ids), "each head once, by one worker"
    finally:
        for worker in workers:
            await worker.close()


def test_store_url_must_be_postgresql_and_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        StoreSettings(url=SecretStr("mysql://posi:secret-pw@db/posintegrator"))
    message = str(caught.value)
    assert "url" in message and "postgresql://" in message
    assert "secret-pw" not in message
    assert StoreSettings(url=SecretStr("postgresql://posi@db/p")).url is not None

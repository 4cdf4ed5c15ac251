"""A store written by the first release opens after the upgrade, and everything in it still works.

``fixtures/store_v3.sql`` is a text dump of a store the release at commit 71c8782 wrote through
its own store API (schema version 3, orders with one ``payment``): the demo's example order in
preparation; an order to pay at the counter whose amount was not its total, still in the inbox;
a delivery-channel order whose total held an exclusive tax, its submission's outcome unknown;
an order accepted within a price tolerance (total below its lines), completed; a kiosk order
parked for an operator. Two versions of the demo's downtown menu, a menu report, an outbox
partly delivered, and the demo plugin's feed cursor. The test rebuilds the database from the
dump, so what is tested is exactly what that release left on disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import demo_connection, pos_orders

from pos_demo.simulator import RunningSimulator
from posintegrator.model import Menu, Order, OrderStatus, PaymentMode, StatusEvent, utcnow
from posintegrator.model.legacy import TOLERANCE_DISCOUNT_NAME
from posintegrator.model.order import order_content_hash
from posintegrator.runtime.host import Host
from posintegrator.store import SQLiteStore
from posintegrator.store.migrations import LATEST_VERSION
from posintegrator.testing import running_host

DUMP = Path(__file__).parent / "fixtures" / "store_v3.sql"


def first_release_store(path: Path, *, recent: bool = False) -> Path:
    """The database the first release wrote, rebuilt from its dump.

    :param recent: date the orders now rather than when the dump was taken, so those not yet
        delivered are still within their delivery deadline.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(DUMP.read_text(encoding="utf-8"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    if recent:
        with db:
            db.execute("UPDATE orders SET created_at = ?", (utcnow().isoformat(),))
    db.close()
    return path


@pytest.fixture
async def upgraded(tmp_path: Path) -> Any:
    store = SQLiteStore(first_release_store(tmp_path / "host.db"))
    await store.open()
    yield store
    await store.close()


async def test_orders_are_in_the_new_format_and_add_up(upgraded: SQLiteStore) -> None:
    db = sqlite3.connect(upgraded.path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    db.close()
    example = await upgraded.get_order("demo-order-0001")
    assert example is not None and example.status == OrderStatus.IN_PREPARATION
    assert example.pos_order_id == "D-000001"
    [paid] = example.order.payments
    assert (paid.mode, paid.amount, paid.reference) == (PaymentMode.PREPAID, 1990, "psp-7f3a")
    counter = await upgraded.get_order("old-counter-0002")
    assert counter is not None and counter.status == OrderStatus.RECEIVED
    assert [(p.mode, p.amount) for p in counter.order.payments] == [
        (PaymentMode.AT_COUNTER, 1990)
    ], "the total is what is due"
    taxed = await upgraded.get_order("old-taxed-0003")
    assert taxed is not None and taxed.maybe_in_pos and taxed.status == OrderStatus.SUBMITTING
    assert (taxed.order.tax, taxed.order.total) == (56, 856), "what the total held beyond lines"
    cheap = await upgraded.get_order("old-cheap-0004")
    assert cheap is not None and cheap.status == OrderStatus.COMPLETED
    assert [(d.name, d.amount) for d in cheap.order.discounts] == [(TOLERANCE_DISCOUNT_NAME, 5)]
    parked = await upgraded.get_order("old-parked-0005")
    assert parked is not None and parked.status == OrderStatus.NEEDS_ATTENTION
    assert parked.order.channel == "kiosk"
    for record in (example, counter, taxed, cheap, parked):
        assert Order.model_validate(record.order.model_dump()) == record.order
        assert await upgraded.order_content_hash(record.order.id) == order_content_hash(
            record.order
        ), "rehashed, so a replay is told from a conflict"


async def test_history_attempts_outbox_menus_and_state_are_kept(upgraded: SQLiteStore) -> None:
    history = await upgraded.order_history("demo-order-0001")
    assert [(h.status, h.sequence) for h in history] == [
        (OrderStatus.RECEIVED, 1),
        (OrderStatus.SUBMITTING, 2),
        (OrderStatus.ACCEPTED, 3),
        (OrderStatus.IN_PREPARATION, 4),
    ]
    assert [a.outcome for a in await upgraded.attempts_of("old-taxed-0003")] == ["unknown"]
    pending = await upgraded.outbox_due(utcnow(), 100)
    assert pending and all(orjson.loads(e.body)["event_id"] == e.event_id for e in pending)
    latest = await upgraded.latest_menu("downtown")
    assert latest is not None and latest.version == 2
    first = await upgraded.menu_version("downtown", 1)
    assert first is not None
    assert Menu.model_validate_json(latest.body).location == "downtown"
    assert Menu.model_validate_json(first.body).price_list_for("delivery") is not None
    assert await upgraded.state_get("demo", "events_cursor") == "7"
    assert await upgraded.menu_report("downtown") is not None


async def test_a_cancelled_prepaid_order_signals_its_refund(upgraded: SQLiteStore) -> None:
    cancelled = StatusEvent(
        order_id="old-taxed-0003", status=OrderStatus.CANCELLED, source="operator:lee"
    )
    assert (await upgraded.apply_status("old-taxed-0003", cancelled)).applied
    db = sqlite3.connect(upgraded.path)
    bodies = db.execute(
        "SELECT body FROM outbox WHERE stream = 'order:old-taxed-0003' ORDER BY sequence"
    ).fetchall()
    db.close()
    event = orjson.loads(bodies[-1][0])
    assert event["status"] == "CANCELLED" and event["sequence"] == len(bodies) == 3
    assert event["refund"] == {"amount": 856, "currency": "EUR"}


async def test_a_host_runs_on_the_upgraded_store(
    tmp_path: Path, simulator: RunningSimulator, example_order: dict[str, Any]
) -> None:
    """The host serves the old orders and menus, delivers what the old release had not, and
    tells a replay of an old order (in the new format) from a new one."""
    first_release_store(tmp_path / "host.db", recent=True)

    async def connect(host: Host) -> None:
        simulator.set_webhook(host.connections["demo"].connection.ctx.webhook_url, None)

    async with running_host(tmp_path, [demo_connection(simulator)], after_start=connect) as host:
        stored = (await host.order("demo-order-0001"))["order"]
        assert stored["payments"] == [
            {**example_order["payments"][0], "method": "OTHER", "provider": None}
        ]
        status, body = await host.post_order(stored)
        assert status == 202 and body == {"id": "demo-order-0001", "status": "RECEIVED"}
        status, conflict = await host.post_order({**stored, "customer_note": "other"})
        assert status == 409, conflict
        status, diff = await host.request("GET", "/v1/locations/downtown/menu?since=1")
        assert status == 200 and diff["from_version"] == 1
        for order_id in ("old-counter-0002", "old-taxed-0003"):
            view = await host.wait_for_status(
                order_id, {OrderStatus.ACCEPTED, OrderStatus.IN_PREPARATION}, timeout=20
            )
            [native] = await pos_orders(simulator, order_id)
            assert native["total"] == view["order"]["total"]
        [taxed] = await pos_orders(simulator, "old-taxed-0003")
        assert (taxed["tax"], taxed["paid_amount"]) == (56, 856)

"""Chaos on a scaled-out deployment: three ``posintegrator serve`` workers on one PostgreSQL
behind a load balancer, killed with SIGKILL at random (one at a time, and restarted) while 300
orders flow through a faulty POS. At the end every accepted order is in the POS exactly once (or
FAILED / NEEDS_ATTENTION with a reason), every order's statuses reached the cloud in sequence,
and every event of the outbox reached the cloud: none lost, none made twice.

Short leases keep it quick: a killed worker's submissions are taken over after twice the call
timeout plus 10 s, its polling within about 11 s. ``--chaos-orders`` and ``--chaos-kills`` make
it longer; the counts are printed (``pytest -s``). What it shares with test_chaos is in
chaoskit."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import orjson
import psycopg
import pytest
from balancer import Balancer
from chaoskit import (
    Driver,
    FaultyPartners,
    HavocPlan,
    assert_cloud_heard_in_order,
    assert_each_order_in_pos_once,
    order_views,
    sample_orders,
    settle,
)
from helpers import POS_WEBHOOK_SECRET, eventually
from hostprocess import ServeProcess
from pgserver import PostgresServer

TOKEN = "scale-chaos-token"
WORKERS = 3


@pytest.mark.timeout(900)
async def test_three_workers_killed_at_random(
    tmp_path: Path, request: pytest.FixtureRequest, postgres: PostgresServer
) -> None:
    orders_wanted: int = request.config.getoption("--chaos-orders")
    kills_wanted: int = request.config.getoption("--chaos-kills")
    rng = random.Random(20261130)
    store_url = postgres.new_database()
    partners = await FaultyPartners.start(tmp_path / "pos", fault_seed=2)
    pos, receiver = partners.pos, partners.receiver
    config = tmp_path / "worker.toml"
    settings = partners.host_settings(TOKEN, f'url = "{store_url}"', timeout_seconds=2.0)
    config.write_text(settings, encoding="utf-8")
    workers = [ServeProcess(config, tmp_path / f"worker-{n}.log", TOKEN) for n in range(WORKERS)]

    def up() -> list[str]:
        return [w.url for w in workers if w.proc is not None and w.proc.returncode is None]

    balancer = Balancer(up, rng)
    await balancer.start()
    pos.set_webhook(f"{balancer.url}/pos/demo/webhook", POS_WEBHOOK_SECRET)
    menu = await partners.menu()
    chaos = Counter[str]()
    try:
        await asyncio.gather(*(w.start() for w in workers))
        driver = Driver(balancer, TOKEN, rng, timeout_seconds=10)
        orders = sample_orders(menu, "scale", orders_wanted, rng)

        async def kill_and_restart_one() -> None:
            victim = rng.choice(workers)
            await victim.kill()
            await asyncio.sleep(rng.uniform(0.1, 1.5))
            await victim.start()

        plan = HavocPlan(
            kill=kill_and_restart_one, kills_wanted=kills_wanted, kill_weight=3, pause=(0.5, 2.0)
        )
        await partners.drive_through_havoc(driver, orders, plan, chaos)

        statuses = await settle(workers[0], sorted(driver.accepted), rounds=900)
        views = await order_views(workers[0], driver.accepted)
        assert_each_order_in_pos_once(await partners.pos_counts(), statuses, views)

        # Every event the outbox holds reached the cloud once delivered, and none other did.
        async def outbox_drained() -> bool:
            return outbox(store_url)[1] == 0

        await eventually(outbox_drained, timeout=60)
        made, _ = outbox(store_url)
        received = {e["event_id"]: e for e in receiver.events}
        assert set(received) == set(made), "every event made was received, none other"
        assert_cloud_heard_in_order(receiver, statuses)

        summary = {
            "orders": orders_wanted,
            "accepted": len(driver.accepted),
            "posts": driver.posts,
            "posts_unanswered": driver.refused + driver.unreachable,
            **chaos,
            **partners.pos_fault_counts(),
            "cloud_events": len(received),
            "cloud_duplicate_deliveries": receiver.duplicates,
            "final": dict(Counter(statuses.values())),
        }
        print("\nscale-out chaos:", orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        assert chaos["kills"] >= kills_wanted
        assert len(driver.accepted) == orders_wanted
    finally:
        for worker in workers:
            await worker.stop()
        await balancer.stop()
        await partners.close()


def outbox(url: str) -> tuple[set[str], int]:
    """The ids of every event in the outbox, and how many wait for delivery."""
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT event_id, delivered_at IS NULL FROM outbox").fetchall()
    return {row[0] for row in rows}, sum(1 for row in rows if row[1])

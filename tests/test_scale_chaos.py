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
    CLOUD_KEY,
    Driver,
    FaultyPartners,
    assert_cloud_heard_in_order,
    assert_each_order_in_pos_once,
    order_views,
    settle,
)
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, eventually
from hostprocess import ServeProcess
from pgserver import PostgresServer

from posintegrator.testing import sample_order

TOKEN = "scale-chaos-token"
WORKERS = 3


def worker_config(path: Path, store_url: str, pos_url: str, cloud_url: str) -> None:
    path.write_text(
        f"""
[api]
port = 0
token = "{TOKEN}"

[store]
url = "{store_url}"

[cloud]
webhook_url = "{cloud_url}"
webhook_secrets = ["{CLOUD_KEY}"]
timeout_seconds = 2.0

[[connections]]
name = "demo"
plugin = "demo"
locations = ["downtown"]
status_source = "polling"   # and the POS's webhooks too: both paths, both faulty
status_poll_seconds = 0.3
menu_sync_seconds = 3600
call_timeout_seconds = 2.0

[connections.settings]
base_url = "{pos_url}"
api_key = "{POS_API_KEY}"
webhook_secret = "{POS_WEBHOOK_SECRET}"
request_timeout_seconds = 1.0
""",
        encoding="utf-8",
    )


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
    worker_config(config, store_url, partners.proxy.url, receiver.url)
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
        orders = [
            sample_order(menu, f"scale-{i:04d}", quantity=rng.randint(1, 3))
            for i in range(orders_wanted)
        ]

        async def kill_and_restart_one() -> None:
            victim = rng.choice(workers)
            await victim.kill()
            await asyncio.sleep(rng.uniform(0.1, 1.5))
            await victim.start()

        done = asyncio.Event()
        havoc_task = asyncio.create_task(
            partners.havoc(
                rng,
                done,
                chaos,
                kill=kill_and_restart_one,
                kills_wanted=kills_wanted,
                kill_weight=3,
                pause=(0.5, 2.0),
            )
        )
        await driver.drive(orders)
        done.set()
        await havoc_task
        await partners.calm()

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

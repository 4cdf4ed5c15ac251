"""Chaos on a scaled-out deployment: three ``posintegrator serve`` workers on one PostgreSQL
behind a load balancer, killed with SIGKILL at random (one at a time, and restarted) while 300
orders flow through a faulty POS. At the end every accepted order is in the POS exactly once (or
FAILED / NEEDS_ATTENTION with a reason), every order's statuses reached the cloud in sequence,
and every event of the outbox reached the cloud: none lost, none made twice.

Short leases keep it quick: a killed worker's submissions are taken over after twice the call
timeout plus 10 s, its polling within about 11 s. ``--chaos-orders`` and ``--chaos-kills`` make
it longer; the counts are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest
from balancer import Balancer
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, eventually
from hostprocess import ServeProcess
from pgserver import PostgresServer

from pos_demo.simulator import SimulatorConfig, start_simulator
from pos_demo.translate import menu_from_pos
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import OrderStatus, can_transition
from posintegrator.testing import sample_order
from posintegrator.testing.faults import FaultPlan, FaultProxy

TOKEN = "scale-chaos-token"
CLOUD_KEY = generate_secret()
WORKERS = 3
PACE_SECONDS = 0.04
SETTLED = {"COMPLETED", "FAILED", "NEEDS_ATTENTION", "REJECTED", "CANCELLED"}
POS_FAULTS = FaultPlan(
    fail_5xx=0.05,
    timeout=0.03,
    hang_seconds=2.5,
    commit_then_drop=0.05,
    commit_then_5xx=0.05,
    slow=0.05,
    slow_seconds=0.4,
    paths=("/orders",),
)


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


class Driver:
    """Posts orders through the balancer the way a flaky cloud would: retrying until a worker
    answers, sometimes twice, sometimes twice at once."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self.url = url
        self.rng = rng
        self.accepted: set[str] = set()
        self.posts = 0
        self.unanswered = 0

    async def post(self, order: dict[str, Any]) -> None:
        while True:
            try:
                async with (
                    aiohttp.ClientSession(
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as session,
                    session.post(self.url + "/v1/orders", json=order) as response,
                ):
                    self.posts += 1
                    if response.status == 202:
                        self.accepted.add(order["id"])
                        return
                    assert response.status == 503, (response.status, await response.text())
                    self.unanswered += 1
            except (aiohttp.ClientError, TimeoutError):
                self.unanswered += 1
            await asyncio.sleep(0.1)

    async def send(self, order: dict[str, Any]) -> None:
        roll = self.rng.random()
        if roll < 0.1:
            await asyncio.gather(self.post(order), self.post(order))
        else:
            await self.post(order)
            if roll < 0.3:
                await asyncio.sleep(self.rng.uniform(0, 0.5))
                await self.post(order)


@pytest.mark.timeout(900)
async def test_three_workers_killed_at_random(
    tmp_path: Path, request: pytest.FixtureRequest, postgres: PostgresServer
) -> None:
    orders_wanted: int = request.config.getoption("--chaos-orders")
    kills_wanted: int = request.config.getoption("--chaos-kills")
    rng = random.Random(20261130)
    store_url = postgres.new_database()
    pos = await start_simulator(
        SimulatorConfig(
            data_dir=tmp_path / "pos",
            api_key=POS_API_KEY,
            stage_seconds=0.2,
            webhook_secret=POS_WEBHOOK_SECRET,
            faults=FaultPlan(**{**POS_FAULTS.__dict__}),
            webhook_duplicate_rate=0.1,
            webhook_reorder_rate=0.1,
            webhook_retry_delays=(0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0),
            fault_seed=2,
        )
    )
    proxy = FaultProxy(pos.host, pos.port)
    await proxy.accept()
    receiver = CloudReceiver([CLOUD_KEY])
    await receiver.start()
    config = tmp_path / "worker.toml"
    worker_config(config, store_url, proxy.url, receiver.url)
    workers = [ServeProcess(config, tmp_path / f"worker-{n}.log", TOKEN) for n in range(WORKERS)]

    def up() -> list[str]:
        return [w.url for w in workers if w.proc is not None and w.proc.returncode is None]

    balancer = Balancer(up, rng)
    await balancer.start()
    pos.set_webhook(f"{balancer.url}/pos/demo/webhook", POS_WEBHOOK_SECRET)
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as http,
        http.get(f"{pos.url}/menu", params={"location": "downtown"}) as response,
    ):
        menu = menu_from_pos(await response.json(), "downtown")
    chaos = Counter[str]()
    try:
        await asyncio.gather(*(w.start() for w in workers))
        driver = Driver(balancer.url, rng)
        orders = [
            sample_order(menu, f"scale-{i:04d}", quantity=rng.randint(1, 3))
            for i in range(orders_wanted)
        ]

        async def drive() -> None:
            slots = asyncio.Semaphore(8)

            async def one(index: int, order: dict[str, Any]) -> None:
                await asyncio.sleep(index * PACE_SECONDS)
                async with slots:
                    await driver.send(order)

            await asyncio.gather(*(one(i, o) for i, o in enumerate(orders)))

        async def havoc(done: asyncio.Event) -> None:
            while not (done.is_set() and chaos["kills"] >= kills_wanted):
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                event = rng.choice(["kill", "kill", "kill", "refuse", "cloud_down"])
                if event == "kill" or done.is_set():
                    victim = rng.choice(workers)
                    await victim.kill()
                    chaos["kills"] += 1
                    await asyncio.sleep(rng.uniform(0.1, 1.5))
                    await victim.start()
                elif event == "refuse":
                    await proxy.refuse()
                    chaos["pos_refused_connections"] += 1
                    await asyncio.sleep(rng.uniform(0.3, 1.0))
                    await proxy.accept()
                else:
                    receiver.fail_with = 503
                    chaos["cloud_outages"] += 1
                    await asyncio.sleep(rng.uniform(0.5, 1.5))
                    receiver.fail_with = None

        done = asyncio.Event()
        havoc_task = asyncio.create_task(havoc(done))
        await drive()
        done.set()
        await havoc_task
        pos.config.faults.update(
            {
                name: 0.0
                for name in ("fail_5xx", "timeout", "commit_then_drop", "commit_then_5xx", "slow")
            }
        )
        await proxy.accept()
        receiver.fail_with = None

        statuses = await settle(workers[0], sorted(driver.accepted))
        pos_counts = Counter(o["reference"] for o in await all_pos_orders(pos.url))
        twice = {ref: n for ref, n in pos_counts.items() if n > 1}
        assert not twice, f"orders in the POS more than once: {twice}"
        for order_id in driver.accepted:
            _, view = await workers[0].call("GET", f"/v1/orders/{order_id}")
            if statuses[order_id] in ("FAILED", "NEEDS_ATTENTION"):
                assert view["status_reason"], order_id
            else:
                assert pos_counts[order_id] == 1, (order_id, statuses[order_id], view)

        # Every event the outbox holds reached the cloud once delivered, and none other did.
        async def outbox_drained() -> bool:
            return outbox(store_url)[1] == 0

        await eventually(outbox_drained, timeout=60)
        made, _ = outbox(store_url)
        received = {e["event_id"]: e for e in receiver.events}
        assert set(received) == set(made), "every event made was received, none other"
        for order_id, status in statuses.items():
            seen = [e for e in receiver.events if e.get("order_id") == order_id]
            assert [e["sequence"] for e in seen] == list(range(1, len(seen) + 1)), order_id
            states = [OrderStatus(e["status"]) for e in seen]
            assert all(can_transition(a, b) for a, b in itertools.pairwise(states)), order_id
            assert states[-1] == OrderStatus(status), order_id

        summary = {
            "orders": orders_wanted,
            "accepted": len(driver.accepted),
            "posts": driver.posts,
            "posts_unanswered": driver.unanswered,
            **chaos,
            **{f"pos_{name}": n for name, n in pos.core.faults.counts.items()},
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
        await proxy.close()
        await receiver.stop()
        await pos.close()


def outbox(url: str) -> tuple[set[str], int]:
    """The ids of every event in the outbox, and how many wait for delivery."""
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT event_id, delivered_at IS NULL FROM outbox").fetchall()
    return {row[0] for row in rows}, sum(1 for row in rows if row[1])


async def settle(worker: ServeProcess, order_ids: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for _ in range(900):
        pending = [oid for oid in order_ids if statuses.get(oid) not in SETTLED]
        if not pending:
            return statuses
        for order_id in pending:
            code, view = await worker.call("GET", f"/v1/orders/{order_id}")
            assert code == 200, (order_id, view)
            statuses[order_id] = view["status"]
        await asyncio.sleep(0.2)
    stuck = {oid: s for oid, s in statuses.items() if s not in SETTLED}
    raise AssertionError(f"orders never settled: {stuck}")


async def all_pos_orders(url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as session,
        session.get(f"{url}/orders") as response,
    ):
        orders: list[dict[str, Any]] = (await response.json())["orders"]
        return orders

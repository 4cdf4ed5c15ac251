"""Chaos: the host as a real process against a faulty POS and a flaky cloud, killed with
SIGKILL at random moments while a driver posts hundreds of orders (some twice, some twice at
once). At the end every accepted order is in the POS exactly once, or FAILED / NEEDS_ATTENTION
with a reason; none is in the POS twice; and the cloud heard every order's status changes in
order. The counts are printed (``pytest -s``); ``--chaos-orders`` and ``--chaos-kills`` make it
longer."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, eventually
from hostprocess import ServeProcess
from prometheus_client.parser import text_string_to_metric_families

from pos_demo.simulator import SimulatorConfig, start_simulator
from pos_demo.translate import menu_from_pos
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import OrderStatus, can_transition
from posintegrator.testing import sample_order
from posintegrator.testing.faults import FaultPlan, FaultProxy

TOKEN = "chaos-token"
CLOUD_KEY = generate_secret()
PACE_SECONDS = 0.04
FAULT_KINDS = ("fail_5xx", "timeout", "commit_then_drop", "commit_then_5xx", "slow")
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


def host_config(path: Path, port: int, store: Path, pos_url: str, cloud_url: str) -> None:
    path.write_text(
        f"""
[api]
port = {port}
token = "{TOKEN}"

[store]
path = "{store}"

[cloud]
webhook_url = "{cloud_url}"
webhook_secrets = ["{CLOUD_KEY}"]

[[connections]]
name = "demo"
plugin = "demo"
locations = ["downtown"]
status_source = "polling"   # and the POS's webhooks too: both paths, both faulty
status_poll_seconds = 0.3
menu_sync_seconds = 3600

[connections.settings]
base_url = "{pos_url}"
api_key = "{POS_API_KEY}"
webhook_secret = "{POS_WEBHOOK_SECRET}"
request_timeout_seconds = 1.0
""",
        encoding="utf-8",
    )


class Driver:
    """Posts orders the way a flaky cloud would: retrying until the host answers."""

    def __init__(self, serve: ServeProcess, rng: random.Random) -> None:
        self.serve = serve
        self.rng = rng
        self.accepted: set[str] = set()
        self.posts = 0
        self.repeats = 0
        self.concurrent_repeats = 0
        self.host_unreachable = 0

    async def post(self, order: dict[str, Any]) -> None:
        while True:
            try:
                async with (
                    aiohttp.ClientSession(
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as session,
                    session.post(self.serve.url + "/v1/orders", json=order) as response,
                ):
                    self.posts += 1
                    if response.status == 202:
                        self.accepted.add(order["id"])
                        return
                    assert response.status == 503, (response.status, await response.text())
            except (aiohttp.ClientError, TimeoutError):
                self.host_unreachable += 1
            await asyncio.sleep(0.1)

    async def send(self, order: dict[str, Any]) -> None:
        roll = self.rng.random()
        if roll < 0.1:
            self.concurrent_repeats += 1
            await asyncio.gather(self.post(order), self.post(order))
        else:
            await self.post(order)
            if roll < 0.3:
                self.repeats += 1
                await asyncio.sleep(self.rng.uniform(0, 0.5))
                await self.post(order)


# About a minute on a quiet machine, five on one busy with other work: more than the default
# guard against hangs.
@pytest.mark.timeout(900)
async def test_chaos(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    orders_wanted: int = request.config.getoption("--chaos-orders")
    kills_wanted: int = request.config.getoption("--chaos-kills")
    rng = random.Random(20261129)
    pos = await start_simulator(
        SimulatorConfig(
            data_dir=tmp_path / "pos",
            api_key=POS_API_KEY,
            stage_seconds=0.2,
            webhook_secret=POS_WEBHOOK_SECRET,
            faults=FaultPlan(**{**POS_FAULTS.__dict__}),
            webhook_duplicate_rate=0.1,
            webhook_reorder_rate=0.1,
            # Retried for a minute, as real POSes do (for hours): longer than a kill and restart
            # of the host on a busy machine. Polling asks only about orders the POS confirmed,
            # so what the kitchen did to an order whose answer was lost, before the host learnt
            # of it, reaches the host by webhook alone.
            webhook_retry_delays=(0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0),
            fault_seed=1,
        )
    )
    proxy = FaultProxy(pos.host, pos.port)
    await proxy.accept()
    receiver = CloudReceiver([CLOUD_KEY])
    await receiver.start()
    config = tmp_path / "host.toml"
    host_config(config, 0, tmp_path / "host.db", proxy.url, receiver.url)

    def point_webhooks(url: str) -> None:
        pos.set_webhook(f"{url}/pos/demo/webhook", POS_WEBHOOK_SECRET)

    serve = ServeProcess(config, tmp_path / "host.log", TOKEN, on_started=point_webhooks)
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as http,
        http.get(f"{pos.url}/menu", params={"location": "downtown"}) as response,
    ):
        menu = menu_from_pos(await response.json(), "downtown")
    chaos = Counter[str]()
    try:
        await serve.start()
        driver = Driver(serve, rng)
        orders = [
            sample_order(menu, f"chaos-{i:04d}", quantity=rng.randint(1, 3))
            for i in range(orders_wanted)
        ]

        async def drive() -> None:
            slots = asyncio.Semaphore(8)

            async def one(index: int, order: dict[str, Any]) -> None:
                await asyncio.sleep(index * PACE_SECONDS)  # a steady stream, not one burst
                async with slots:
                    await driver.send(order)

            await asyncio.gather(*(one(i, o) for i, o in enumerate(orders)))

        async def havoc(done: asyncio.Event) -> None:
            while not (done.is_set() and chaos["kills"] >= kills_wanted):
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                event = rng.choice(["kill", "kill", "refuse", "cloud_down"])
                if event == "kill" or done.is_set():
                    await serve.kill()
                    chaos["kills"] += 1
                    await asyncio.sleep(rng.uniform(0.1, 0.8))
                    await serve.start()
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
        # Calm: no more faults; everything must settle by itself.
        pos.config.faults.update(
            {
                name: 0.0
                for name in ("fail_5xx", "timeout", "commit_then_drop", "commit_then_5xx", "slow")
            }
        )
        await proxy.accept()
        receiver.fail_with = None
        statuses = await settle(serve, sorted(driver.accepted))
        histories = {oid: await history(serve, oid) for oid in driver.accepted}

        pos_counts = Counter(o["reference"] for o in await all_pos_orders(pos.url))
        twice = {ref: n for ref, n in pos_counts.items() if n > 1}
        assert not twice, f"orders in the POS more than once: {twice}"
        for order_id in driver.accepted:
            status = statuses[order_id]
            if status in ("FAILED", "NEEDS_ATTENTION"):
                assert histories[order_id]["status_reason"], order_id
            else:
                assert pos_counts[order_id] == 1, (order_id, status, histories[order_id])
        await wait_for_cloud(receiver, statuses)
        for order_id, status in statuses.items():
            seen = [e for e in receiver.events if e.get("order_id") == order_id]
            assert [e["sequence"] for e in seen] == list(range(1, len(seen) + 1)), order_id
            states = [OrderStatus(e["status"]) for e in seen]
            assert all(can_transition(a, b) for a, b in itertools.pairwise(states))
            assert states[-1] == OrderStatus(status)

        # The metrics tell the same story: every accepted order is counted once, those the POS
        # holds are the ones it really holds, and nothing waits for the cloud any more.
        async def backlog_drained() -> bool:
            return _sum(await scrape(serve), "posintegrator_outbox_pending") == 0

        await eventually(backlog_drained, timeout=30)
        samples = await scrape(serve)
        assert _sum(samples, "posintegrator_orders") == len(driver.accepted)
        in_pos = sum(
            value
            for (name, labels), value in samples.items()
            if name == "posintegrator_orders"
            and dict(labels)["status"] in ("ACCEPTED", "IN_PREPARATION", "READY", "COMPLETED")
        )
        assert in_pos == len(pos_counts)

        lookups = sum(
            any(h["source"].endswith(":lookup") for h in view["history"])
            for view in histories.values()
        )
        ignored = sum(
            sum(1 for h in view["history"] if not h["applied"]) for view in histories.values()
        )
        summary = {
            "orders": orders_wanted,
            "accepted": len(driver.accepted),
            "posts": driver.posts,
            "posted_again": driver.repeats,
            "posted_twice_at_once": driver.concurrent_repeats,
            "host_unreachable_posts": driver.host_unreachable,
            **chaos,
            **{f"pos_{name}": n for name, n in pos.core.faults.counts.items()},
            "pos_webhook_duplicates": pos.core.webhooks.duplicated,
            "pos_webhook_reorders": pos.core.webhooks.reordered,
            "cloud_duplicate_deliveries": receiver.duplicates,
            "found_by_lookup": lookups,
            "status_events_ignored": ignored,
            "final": dict(Counter(statuses.values())),
        }
        print("\nchaos summary:", orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        assert chaos["kills"] >= 1
    finally:
        await serve.stop()
        await proxy.close()
        await receiver.stop()
        await pos.close()


async def scrape(serve: ServeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the host's /metrics."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session,
        session.get(serve.url + "/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


async def settle(serve: ServeProcess, order_ids: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for _ in range(600):
        pending = [oid for oid in order_ids if statuses.get(oid) not in SETTLED]
        if not pending:
            return statuses
        for order_id in pending:
            code, view = await serve.call("GET", f"/v1/orders/{order_id}")
            assert code == 200, (order_id, view)
            statuses[order_id] = view["status"]
        await asyncio.sleep(0.2)
    stuck = {oid: s for oid, s in statuses.items() if s not in SETTLED}
    raise AssertionError(f"orders never settled: {stuck}\n{serve.log.read_text()[-4000:]}")


async def history(serve: ServeProcess, order_id: str) -> dict[str, Any]:
    _, view = await serve.call("GET", f"/v1/orders/{order_id}")
    result: dict[str, Any] = view
    return result


async def all_pos_orders(url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as session,
        session.get(f"{url}/orders") as response,
    ):
        orders: list[dict[str, Any]] = (await response.json())["orders"]
        return orders


async def wait_for_cloud(receiver: CloudReceiver, statuses: dict[str, str]) -> None:
    for _ in range(600):
        last = {}
        for event in receiver.events:
            if event.get("order_id"):
                last[event["order_id"]] = event["status"]
        if all(last.get(oid) == status for oid, status in statuses.items()):
            return
        await asyncio.sleep(0.1)
    missing = {oid for oid, s in statuses.items() if last.get(oid) != s}
    raise AssertionError(f"the cloud never heard the final status of {sorted(missing)[:10]}")

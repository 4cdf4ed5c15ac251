"""What the chaos tests share: a faulty POS and a flaky cloud around the hosts under test (and
the settings that point a host at them), a driver that posts orders the way a flaky cloud
would, the havoc loop that kills hosts and breaks their partners at random, and the checks
every chaos run ends with.

``test_chaos`` kills one host process on SQLite; ``test_scale_chaos`` kills three workers on one
PostgreSQL behind a balancer. Each keeps only what is its own: its hosts, what it kills, how
often, and its own checks (the metrics; the outbox against what the cloud received)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET
from hostprocess import ServeProcess

from pos_demo.simulator import RunningSimulator, SimulatorConfig, start_simulator
from pos_demo.translate import menu_from_pos
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import Menu, OrderStatus, can_transition
from posintegrator.testing import sample_order
from posintegrator.testing.faults import FaultPlan, FaultProxy

#: The secret the hosts sign their cloud webhooks with, and the receiver checks.
CLOUD_KEY = generate_secret()
#: Seconds between one order and the next: a steady stream, not one burst.
PACE_SECONDS = 0.04
#: The faults of the POS's /orders, each switched off by ``calm``.
FAULT_KINDS = ("fail_5xx", "timeout", "commit_then_drop", "commit_then_5xx", "slow")
#: The statuses an order stays in once the chaos is over.
SETTLED = {"COMPLETED", "FAILED", "NEEDS_ATTENTION", "REJECTED", "CANCELLED"}
#: How the POS's /orders fails while the chaos lasts (each run gets its own copy).
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


def sample_orders(menu: Menu, prefix: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` orders of the menu's sample, ``<prefix>-0000`` on, each of 1 to 3 items."""
    return [
        sample_order(menu, f"{prefix}-{i:04d}", quantity=rng.randint(1, 3)) for i in range(count)
    ]


class HasUrl(Protocol):
    """Where orders are posted: a host (whose URL changes when it restarts) or a balancer."""

    @property
    def url(self) -> str: ...


class Driver:
    """Posts orders the way a flaky cloud would: retrying until a host answers, sometimes
    twice, sometimes twice at once."""

    def __init__(
        self, target: HasUrl, token: str, rng: random.Random, timeout_seconds: float
    ) -> None:
        self.target = target
        self.token = token
        self.rng = rng
        self.timeout_seconds = timeout_seconds
        self.accepted: set[str] = set()
        self.posts = 0
        self.repeats = 0
        self.concurrent_repeats = 0
        #: Posts answered 503 (the host is not ready), and posts no host answered at all.
        self.refused = 0
        self.unreachable = 0

    async def post(self, order: dict[str, Any]) -> None:
        """Post ``order`` until a host accepts it (202); 503s and lost connections are retried."""
        while True:
            try:
                async with (
                    aiohttp.ClientSession(
                        headers={"Authorization": f"Bearer {self.token}"},
                        timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                    ) as session,
                    session.post(self.target.url + "/v1/orders", json=order) as response,
                ):
                    self.posts += 1
                    if response.status == 202:
                        self.accepted.add(order["id"])
                        return
                    assert response.status == 503, (response.status, await response.text())
                    self.refused += 1
            except (aiohttp.ClientError, TimeoutError):
                self.unreachable += 1
            await asyncio.sleep(0.1)

    async def send(self, order: dict[str, Any]) -> None:
        """Post ``order`` once, or twice at once (one in ten), or again a moment later."""
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

    async def drive(self, orders: list[dict[str, Any]]) -> None:
        """Send ``orders`` as a paced stream, at most eight in flight."""
        slots = asyncio.Semaphore(8)

        async def one(index: int, order: dict[str, Any]) -> None:
            await asyncio.sleep(index * PACE_SECONDS)
            async with slots:
                await self.send(order)

        await asyncio.gather(*(one(i, o) for i, o in enumerate(orders)))


@dataclass(frozen=True)
class HavocPlan:
    """What havoc does to the hosts under test, and how often."""

    #: Kills a host (or one of them) with SIGKILL and restarts it, after a moment.
    kill: Callable[[], Awaitable[None]]
    #: Kills to make at the least: havoc goes on killing after the last order until then.
    kills_wanted: int
    #: Chances of a kill against one each of refusing POS connections and a cloud outage.
    kill_weight: int
    #: The least and most seconds between one event and the next.
    pause: tuple[float, float]


@dataclass
class FaultyPartners:
    """The hosts' partners, faulty: the demo POS (failing, hanging, committing then dropping
    the answer; webhooks duplicated and reordered) behind a proxy that can refuse connections,
    and a cloud receiver that can answer 503."""

    pos: RunningSimulator
    proxy: FaultProxy
    receiver: CloudReceiver

    @classmethod
    async def start(cls, data_dir: Path, fault_seed: int) -> FaultyPartners:
        """Start the POS (keeping its state in ``data_dir``), its proxy and the receiver."""
        pos = await start_simulator(
            SimulatorConfig(
                data_dir=data_dir,
                api_key=POS_API_KEY,
                stage_seconds=0.2,
                webhook_secret=POS_WEBHOOK_SECRET,
                faults=FaultPlan(**{**POS_FAULTS.__dict__}),
                webhook_duplicate_rate=0.1,
                webhook_reorder_rate=0.1,
                # Retried for a minute, as real POSes do (for hours): longer than a kill and
                # restart of a host on a busy machine. Polling asks only about orders the POS
                # confirmed, so what the kitchen did to an order whose answer was lost, before
                # the host learnt of it, reaches the host by webhook alone.
                webhook_retry_delays=(0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0),
                fault_seed=fault_seed,
            )
        )
        proxy = FaultProxy(pos.host, pos.port)
        await proxy.accept()
        receiver = CloudReceiver([CLOUD_KEY])
        await receiver.start()
        return cls(pos, proxy, receiver)

    def host_settings(self, token: str, store: str, timeout_seconds: float | None = None) -> str:
        """The settings file (TOML) of a host with its API on a free port, ``store`` the body
        of its [store] table, calling the POS through the proxy and the cloud at the receiver.
        ``timeout_seconds``, if given, bounds each call to the cloud and to the POS."""
        timeout = "" if timeout_seconds is None else f"timeout_seconds = {timeout_seconds}"
        call_timeout = (
            "" if timeout_seconds is None else f"call_timeout_seconds = {timeout_seconds}"
        )
        return f"""
[api]
port = 0
token = "{token}"

[store]
{store}

[cloud]
webhook_url = "{self.receiver.url}"
webhook_secrets = ["{CLOUD_KEY}"]
{timeout}

[[connections]]
name = "demo"
plugin = "demo"
locations = ["downtown"]
status_source = "polling"   # and the POS's webhooks too: both paths, both faulty
status_poll_seconds = 0.3
menu_sync_seconds = 3600
{call_timeout}

[connections.settings]
base_url = "{self.proxy.url}"
api_key = "{POS_API_KEY}"
webhook_secret = "{POS_WEBHOOK_SECRET}"
request_timeout_seconds = 1.0
"""

    async def menu(self) -> Menu:
        """The menu of location "downtown", straight from the POS (not through the proxy)."""
        async with (
            aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as http,
            http.get(f"{self.pos.url}/menu", params={"location": "downtown"}) as response,
        ):
            return menu_from_pos(await response.json(), "downtown")

    async def drive_through_havoc(
        self, driver: Driver, orders: list[dict[str, Any]], plan: HavocPlan, chaos: Counter[str]
    ) -> None:
        """Let ``driver`` send ``orders`` while ``havoc`` runs on the driver's random numbers;
        once every order is sent, havoc makes only the kills still wanted, then everything is
        calmed."""
        done = asyncio.Event()
        havoc_task = asyncio.create_task(self.havoc(driver.rng, done, plan, chaos))
        await driver.drive(orders)
        done.set()
        await havoc_task
        await self.calm()

    async def havoc(
        self, rng: random.Random, done: asyncio.Event, plan: HavocPlan, chaos: Counter[str]
    ) -> None:
        """Until ``done`` is set and ``plan.kills_wanted`` kills are made: every ``plan.pause``
        seconds (uniform), kill a host and restart it (``plan.kill_weight`` chances in
        ``kill_weight + 2``), or refuse the POS's connections, or take the cloud down, for a
        moment. Once ``done`` is set, only kills. ``chaos`` counts what was done."""
        events = ["kill"] * plan.kill_weight + ["refuse", "cloud_down"]
        while not (done.is_set() and chaos["kills"] >= plan.kills_wanted):
            await asyncio.sleep(rng.uniform(*plan.pause))
            event = rng.choice(events)
            if event == "kill" or done.is_set():
                await plan.kill()
                chaos["kills"] += 1
            elif event == "refuse":
                await self.proxy.refuse()
                chaos["pos_refused_connections"] += 1
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                await self.proxy.accept()
            else:
                self.receiver.fail_with = 503
                chaos["cloud_outages"] += 1
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                self.receiver.fail_with = None

    async def calm(self) -> None:
        """Switch every fault off: from here on everything must settle by itself."""
        self.pos.config.faults.update({name: 0.0 for name in FAULT_KINDS})
        await self.proxy.accept()
        self.receiver.fail_with = None

    async def pos_counts(self) -> Counter[str]:
        """How many times the POS holds each order (by the cloud's order id)."""
        return Counter(o["reference"] for o in await all_pos_orders(self.pos.url))

    def pos_fault_counts(self) -> dict[str, int]:
        """How many times the POS failed in each way, as ``pos_<fault>``."""
        return {f"pos_{name}": n for name, n in self.pos.core.faults.counts.items()}

    async def close(self) -> None:
        """Stop the proxy, the receiver and the POS."""
        await self.proxy.close()
        await self.receiver.stop()
        await self.pos.close()


async def all_pos_orders(url: str) -> list[dict[str, Any]]:
    """Every order the POS at ``url`` holds, as it lists them."""
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as session,
        session.get(f"{url}/orders") as response,
    ):
        orders: list[dict[str, Any]] = (await response.json())["orders"]
        return orders


async def settle(serve: ServeProcess, order_ids: list[str], *, rounds: int) -> dict[str, str]:
    """The final status of each order, asked of ``serve`` every 0.2 s for at most ``rounds``
    rounds; fails naming the orders that never settled, with the end of the host's log."""
    statuses: dict[str, str] = {}
    for _ in range(rounds):
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


async def order_views(serve: ServeProcess, order_ids: set[str]) -> dict[str, dict[str, Any]]:
    """What ``serve`` says of each order: its status, reason and history."""
    views: dict[str, dict[str, Any]] = {}
    for order_id in order_ids:
        code, view = await serve.call("GET", f"/v1/orders/{order_id}")
        assert code == 200, (order_id, view)
        views[order_id] = view
    return views


def assert_each_order_in_pos_once(
    pos_counts: Counter[str], statuses: Mapping[str, str], views: Mapping[str, dict[str, Any]]
) -> None:
    """No order is in the POS twice, and each accepted order is in it once, unless it is
    FAILED or NEEDS_ATTENTION with a reason an operator can read."""
    twice = {ref: n for ref, n in pos_counts.items() if n > 1}
    assert not twice, f"orders in the POS more than once: {twice}"
    for order_id, status in statuses.items():
        if status in ("FAILED", "NEEDS_ATTENTION"):
            assert views[order_id]["status_reason"], order_id
        else:
            assert pos_counts[order_id] == 1, (order_id, status, views[order_id])


def assert_cloud_heard_in_order(receiver: CloudReceiver, statuses: Mapping[str, str]) -> None:
    """For each order the cloud heard status events numbered 1, 2, 3... with no gap, never
    going backwards, the last one its final status."""
    for order_id, status in statuses.items():
        seen = [e for e in receiver.events if e.get("order_id") == order_id]
        assert [e["sequence"] for e in seen] == list(range(1, len(seen) + 1)), order_id
        states = [OrderStatus(e["status"]) for e in seen]
        assert all(can_transition(a, b) for a, b in itertools.pairwise(states)), order_id
        assert states[-1] == OrderStatus(status), order_id

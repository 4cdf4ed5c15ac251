"""Venue agents under chaos (issue #10): a hub, two venue agents and two demo POSes, the hub and
the agents each a real process, each agent's link to the hub through its own fault-injecting TCP
proxy. While hundreds of orders flow, at random moments each link is cut (refused and closed)
and stalled (silent, nothing closed: only heartbeats notice), and each agent and the hub are
SIGKILLed and restarted (the hub on another port: the proxies follow it). Afterwards every order
is in its own venue's POS exactly once and in no other, and the cloud heard each order's
statuses in sequence, with no gap and no step backwards, ending at the hub's final status. The
same flow runs with the menus at the hub (``hybrid``). The counts are printed (``pytest -s``);
``--chaos-seed`` picks other moments.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET
from hostprocess import ServeProcess
from linkharness import pair

from pos_demo.simulator import RunningSimulator, SimulatorConfig, start_simulator
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import FINAL_STATUSES, Menu, OrderStatus, can_transition
from posintegrator.testing import sample_order
from posintegrator.testing.faults import FaultProxy

TOKEN = "link-chaos-token"
CLOUD_KEY = generate_secret()
#: The hub's connection for each venue, and the location it serves.
VENUES = {"venue-a": "downtown", "venue-b": "airport"}
#: Seconds between two orders of the steady stream (both venues together).
PACE_SECONDS = 0.08
#: How long the orders and their statuses may take to settle once the faults stop.
SETTLE_SECONDS = 240.0


@dataclass
class Venue:
    """One venue: its POS, its agent (a process) and the proxy its link to the hub goes
    through."""

    connection: str
    location: str
    pos: RunningSimulator
    proxy: FaultProxy
    agent: ServeProcess
    order_ids: set[str] = field(default_factory=set)


def write_hub_config(
    path: Path, store: Path, cloud_url: str, venues: list[tuple[str, str, str]], placement: str
) -> None:
    """The hub's settings: one connection per venue (name, location, POS URL); a hybrid one has
    the POS's central API for its menu."""
    connections = ""
    for name, location, pos_url in venues:
        connections += f"""
[[connections]]
name = "{name}"
plugin = "demo"
locations = ["{location}"]
placement = "{placement}"
menu_sync_seconds = 3600
"""
        if placement == "hybrid":
            connections += f"""
[connections.settings]
base_url = "{pos_url}"
api_key = "{POS_API_KEY}"
"""
    path.write_text(
        f"""
[api]
port = 0
token = "{TOKEN}"

[store]
path = "{store}"
synchronous = "NORMAL"

[cloud]
webhook_url = "{cloud_url}"
webhook_secrets = ["{CLOUD_KEY}"]

[link]
heartbeat_seconds = 1.0
window = 64
{connections}""",
        encoding="utf-8",
    )


def write_agent_config(
    path: Path, store: Path, hub_url: str, pos_url: str, location: str, placement: str
) -> None:
    """A venue agent's settings: its POS (statuses by polling, and by webhook too)."""
    path.write_text(
        f"""
[api]
port = 0

[store]
path = "{store}"
synchronous = "NORMAL"

[link]
window = 64

[agent]
hub_url = "{hub_url}"
reconnect_max_seconds = 1.0

[[connections]]
name = "pos"
plugin = "demo"
locations = ["{location}"]
placement = "{placement}"
status_source = "polling"
status_poll_seconds = 0.5
menu_sync_seconds = 3600

[connections.settings]
base_url = "{pos_url}"
api_key = "{POS_API_KEY}"
webhook_secret = "{POS_WEBHOOK_SECRET}"
""",
        encoding="utf-8",
    )


class Driver:
    """Posts orders the way the cloud would: retrying until the hub answers 202 (a replay of
    an order it has is answered the same). It waits while the hub restarts: the hub's URL
    changes with each start."""

    def __init__(self, hub: ServeProcess, hub_up: asyncio.Event, rng: random.Random) -> None:
        self.hub = hub
        self.hub_up = hub_up
        self.rng = rng
        self.accepted: set[str] = set()
        self.posts = 0
        self.repeats = 0
        self.failed_posts: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(8)  # posts under way at once, as a cloud would limit

    async def post(self, http: aiohttp.ClientSession, order: dict[str, Any]) -> None:
        while True:
            await self.hub_up.wait()
            try:
                async with (
                    self._slots,
                    http.post(self.hub.url + "/v1/orders", json=order) as response,
                ):
                    self.posts += 1
                    if response.status == 202:
                        self.accepted.add(order["id"])
                        return
                    assert response.status == 503, (response.status, await response.text())
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.failed_posts[type(exc).__name__] += 1
            await asyncio.sleep(0.2)

    async def drive(self, orders: list[dict[str, Any]]) -> None:
        """Post ``orders`` in a steady stream (not one burst), until each was accepted."""

        async def one(http: aiohttp.ClientSession, index: int, order: dict[str, Any]) -> None:
            await asyncio.sleep(index * PACE_SECONDS)
            await self.send(http, order)

        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as http:
            await asyncio.gather(*(one(http, i, o) for i, o in enumerate(orders)))

    async def send(self, http: aiohttp.ClientSession, order: dict[str, Any]) -> None:
        await self.post(http, order)
        if self.rng.random() < 0.2:  # the cloud did not hear the answer, and posts again
            self.repeats += 1
            await asyncio.sleep(self.rng.uniform(0, 1.0))
            await self.post(http, order)


class Havoc:
    """Faults at random moments while orders flow: the hub killed and restarted; per venue, its
    link cut (connections refused and closed) or stalled (silent, nothing closed) for a while,
    and its agent killed and restarted. Once the orders are all posted, each loop stops when
    each of its kinds happened at least once."""

    def __init__(self, hub: ServeProcess, hub_up: asyncio.Event, done: asyncio.Event) -> None:
        self.hub = hub
        self.hub_up = hub_up
        self.done = done
        """Set once the orders are all posted."""
        self.counts: Counter[str] = Counter()
        self.timeline: list[str] = []
        self._clock = asyncio.get_running_loop().time
        self._started = self._clock()

    def note(self, what: str) -> None:
        """Record a step of the havoc, with the seconds since it began (for a failure)."""
        self.timeline.append(f"{self._clock() - self._started:7.2f} {what}")

    async def hub_kills(self, rng: random.Random) -> None:
        while not (self.done.is_set() and self.counts["hub_kills"] >= 1):
            await asyncio.sleep(rng.uniform(3.0, 8.0))
            self.hub_up.clear()
            await self.hub.kill()
            self.counts["hub_kills"] += 1
            self.note("hub killed")
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            await self.hub.start()
            self.note(f"hub started at {self.hub.url}")
            self.hub_up.set()

    async def venue_faults(self, venue: Venue, rng: random.Random) -> None:
        kinds = {
            kind: f"{counter}:{venue.connection}"
            for kind, counter in (
                ("cut", "link_cuts"),
                ("stall", "link_stalls"),
                ("kill", "agent_kills"),
            )
        }
        while not (self.done.is_set() and all(self.counts[k] for k in kinds.values())):
            await asyncio.sleep(rng.uniform(1.5, 5.0))
            missing = [kind for kind, counter in kinds.items() if not self.counts[counter]]
            kind = rng.choice(missing if missing and rng.random() < 0.5 else list(kinds))
            self.counts[kinds[kind]] += 1
            if kind == "cut":
                await venue.proxy.refuse()
                self.note(f"link of {venue.connection} cut")
                await asyncio.sleep(rng.uniform(0.3, 2.0))
                await venue.proxy.accept()
                self.note(f"link of {venue.connection} accepted again")
            elif kind == "stall":
                venue.proxy.stall()
                self.note(f"link of {venue.connection} stalled")
                await asyncio.sleep(rng.uniform(0.5, 4.0))
                venue.proxy.resume()
                self.note(f"link of {venue.connection} flows again")
            else:
                await venue.agent.kill()
                self.note(f"agent of {venue.connection} killed")
                await asyncio.sleep(rng.uniform(0.1, 1.0))
                await venue.agent.start()
                self.note(f"agent of {venue.connection} started at {venue.agent.url}")


@dataclass
class Deployment:
    """A hub and its venues, all running; ``hub_up`` is clear while the hub restarts."""

    hub: ServeProcess
    hub_up: asyncio.Event
    venues: list[Venue]
    cloud: CloudReceiver

    def logs(self) -> str:
        return "\n".join(logs(p) for p in [self.hub, *(v.agent for v in self.venues)])


@asynccontextmanager
async def deployment(tmp_path: Path, placement: str) -> AsyncIterator[Deployment]:
    """The cloud, two venues (a POS, a proxy, an agent paired with the hub) and the hub, started;
    once the hub has both venues' menus (from the agents, or fetched itself when hybrid)."""
    async with AsyncExitStack() as stack:
        cloud = CloudReceiver([CLOUD_KEY])
        await cloud.start()
        stack.push_async_callback(cloud.stop)
        venues: list[Venue] = []
        for connection, location in VENUES.items():
            pos = await start_simulator(
                SimulatorConfig(
                    data_dir=tmp_path / f"pos-{connection}",
                    api_key=POS_API_KEY,
                    stage_seconds=0.2,
                    webhook_secret=POS_WEBHOOK_SECRET,
                    webhook_retry_delays=(0.2, 0.5, 1.0),  # soon given up: polling must do
                )
            )
            stack.push_async_callback(pos.close)
            proxy = FaultProxy("127.0.0.1", 0)  # pointed at the hub once it runs
            await proxy.accept()
            stack.push_async_callback(proxy.close)
            agent = agent_process(tmp_path / connection, pos)
            venues.append(Venue(connection, location, pos, proxy, agent))

        def hub_started(url: str) -> None:
            port = urlsplit(url).port
            assert port is not None
            for venue in venues:
                venue.proxy.upstream = ("127.0.0.1", port)  # the agents reach the new hub

        hub_config = tmp_path / "hub.toml"
        write_hub_config(
            hub_config,
            tmp_path / "hub.db",
            cloud.url,
            [(v.connection, v.location, v.pos.url) for v in venues],
            placement,
        )
        hub = ServeProcess(
            hub_config, tmp_path / "hub.log", TOKEN, on_started=hub_started, menu_locations=()
        )
        stack.push_async_callback(hub.stop)
        await hub.start()
        for venue in venues:
            data = venue.agent.config.parent
            write_agent_config(
                venue.agent.config,
                data / "agent.db",
                venue.proxy.url,
                venue.pos.url,
                venue.location,
                placement,
            )
            await pair(hub.url, TOKEN, data, f"agent-{venue.connection}", [venue.location])
            stack.push_async_callback(venue.agent.stop)
            await venue.agent.start()
        for venue in venues:
            await wait_for_menu(hub, venue.location)
        # Orders are checked against the menus: from now on a restart waits until it has them.
        hub.menu_locations = tuple(VENUES.values())
        hub_up = asyncio.Event()
        hub_up.set()
        yield Deployment(hub, hub_up, venues, cloud)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("placement", "orders_wanted"), [("local", 300), ("hybrid", 150)])
async def test_link_chaos(
    tmp_path: Path, request: pytest.FixtureRequest, placement: str, orders_wanted: int
) -> None:
    seed: int = request.config.getoption("--chaos-seed")
    rng = random.Random(f"{seed}-{placement}")
    clock = asyncio.get_running_loop().time
    started = clock()
    async with deployment(tmp_path, placement) as deployed:
        hub, venues = deployed.hub, deployed.venues
        menus = {v.location: await wait_for_menu(hub, v.location) for v in venues}
        orders = []
        for index in range(orders_wanted):
            venue = rng.choice(venues)
            order_id = f"{venue.connection}-{index:04d}"
            venue.order_ids.add(order_id)
            orders.append(sample_order(menus[venue.location], order_id, quantity=rng.randint(1, 3)))

        # The flow, and faults at random moments until it is over and each kind happened.
        flow_started = clock()
        driver = Driver(hub, deployed.hub_up, rng)
        havoc = Havoc(hub, deployed.hub_up, asyncio.Event())
        faults = [asyncio.create_task(havoc.hub_kills(random.Random(rng.random())))]
        faults += [
            asyncio.create_task(havoc.venue_faults(venue, random.Random(rng.random())))
            for venue in venues
        ]
        try:
            await driver.drive(orders)
            havoc.done.set()
            await asyncio.gather(*faults)
        finally:
            for task in faults:
                task.cancel()
            await asyncio.gather(*faults, return_exceptions=True)
            (tmp_path / "havoc.log").write_text("".join(f"{line}\n" for line in havoc.timeline))
        assert driver.accepted == {o["id"] for o in orders}

        # Calm: no more faults; everything must settle by itself.
        calm_started = clock()
        statuses = await settle(deployed, sorted(driver.accepted))
        for venue in venues:
            found = Counter(o["reference"] for o in await all_pos_orders(venue.pos))
            strangers = set(found) - venue.order_ids
            assert not strangers, f"{venue.location}'s POS has other venues' orders: {strangers}"
            twice = {ref: n for ref, n in found.items() if n > 1}
            assert not twice, f"orders in {venue.location}'s POS more than once: {twice}"
            missing = venue.order_ids - set(found)
            assert not missing, f"orders that never reached {venue.location}'s POS: {missing}"
        assert set(statuses.values()) == {"COMPLETED"}, Counter(statuses.values())
        await wait_for_cloud(deployed.cloud, statuses)
        for order_id, final in statuses.items():
            check_cloud_history(order_id, deployed.cloud, OrderStatus(final))
        crashed = [p.log for p in [hub, *(v.agent for v in venues)] if "Traceback" in read(p)]
        assert not crashed, f"unexpected errors, see {crashed}"

        summary = {
            "placement": placement,
            "seed": seed,
            "orders": orders_wanted,
            "per_venue": {v.location: len(v.order_ids) for v in venues},
            "posts": driver.posts,
            "posted_again": driver.repeats,
            "failed_posts": dict(driver.failed_posts),
            **dict(sorted(havoc.counts.items())),
            "cloud_events": len(deployed.cloud.events),
            "cloud_duplicate_deliveries": deployed.cloud.duplicates,
            "final": dict(Counter(statuses.values())),
            "seconds": {
                "setup": round(flow_started - started, 1),
                "flow_and_faults": round(calm_started - flow_started, 1),
                "calm": round(clock() - calm_started, 1),
            },
        }
        print("\nlink chaos summary:", orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        assert havoc.counts["hub_kills"] >= 1
        for venue in venues:
            assert havoc.counts[f"link_cuts:{venue.connection}"] >= 1
            assert havoc.counts[f"link_stalls:{venue.connection}"] >= 1
            assert havoc.counts[f"agent_kills:{venue.connection}"] >= 1


def agent_process(data: Path, pos: RunningSimulator) -> ServeProcess:
    """A venue's agent, its files in ``data``; each start points its POS's webhooks at it."""

    def point_webhooks(url: str) -> None:
        pos.set_webhook(f"{url}/pos/pos/webhook", POS_WEBHOOK_SECRET)

    data.mkdir(parents=True, exist_ok=True)
    return ServeProcess(
        data / "agent.toml",
        data / "agent.log",
        TOKEN,
        on_started=point_webhooks,
        command="agent",
        menu_locations=(),
    )


async def wait_for_menu(hub: ServeProcess, location: str) -> Menu:
    for _ in range(1200):
        status, body = await hub.call("GET", f"/v1/locations/{location}/menu")
        if status == 200:
            return Menu.model_validate(body)
        await asyncio.sleep(0.1)
    raise AssertionError(f"the hub never had the menu of {location}:\n{logs(hub)}")


async def settle(deployed: Deployment, order_ids: list[str]) -> dict[str, str]:
    """Each order's final status at the hub, once every order has one."""
    final = ",".join(sorted(FINAL_STATUSES))
    statuses: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while loop.time() < deadline:
        code, listed = await deployed.hub.call("GET", f"/v1/orders?status={final}&limit=1000")
        assert code == 200, listed
        statuses = {o["id"]: o["status"] for o in listed["orders"]}
        if set(order_ids) <= set(statuses):
            return {oid: statuses[oid] for oid in order_ids}
        await asyncio.sleep(0.5)
    stuck = [oid for oid in order_ids if oid not in statuses]
    views = [(await deployed.hub.call("GET", f"/v1/orders/{oid}"))[1] for oid in stuck[:3]]
    raise AssertionError(
        f"{len(stuck)} orders never settled, e.g. {orjson.dumps(views).decode()}\n"
        + deployed.logs()
    )


async def all_pos_orders(pos: RunningSimulator) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as session,
        session.get(f"{pos.url}/orders") as response,
    ):
        orders: list[dict[str, Any]] = (await response.json())["orders"]
        return orders


def cloud_history(receiver: CloudReceiver, order_id: str) -> Iterator[dict[str, Any]]:
    """The status events of one order, in the order the cloud received them."""
    return (e for e in receiver.events if e.get("order_id") == order_id)


async def wait_for_cloud(receiver: CloudReceiver, statuses: dict[str, str]) -> None:
    last: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while loop.time() < deadline:
        last = {}
        for event in receiver.events:
            if event.get("order_id"):
                last[event["order_id"]] = event["status"]
        if all(last.get(oid) == status for oid, status in statuses.items()):
            return
        await asyncio.sleep(0.2)
    missing = sorted(oid for oid, s in statuses.items() if last.get(oid) != s)
    raise AssertionError(f"the cloud never heard the final status of {missing[:10]}")


def check_cloud_history(order_id: str, receiver: CloudReceiver, final: OrderStatus) -> None:
    """The cloud heard sequences 1..n in that order (a repeat must say the same), each status
    a step forward from the one before, the last one the hub's final status."""
    by_sequence: dict[int, str] = {}
    for event in cloud_history(receiver, order_id):
        sequence = int(event["sequence"])
        if sequence in by_sequence:
            assert by_sequence[sequence] == event["status"], (order_id, sequence)
            continue
        assert sequence == len(by_sequence) + 1, (order_id, "gap or out of order", event)
        by_sequence[sequence] = event["status"]
    states = [OrderStatus(status) for status in by_sequence.values()]
    assert states[0] == OrderStatus.RECEIVED, (order_id, states)
    backwards = [(a, b) for a, b in itertools.pairwise(states) if not can_transition(a, b)]
    assert not backwards, (order_id, states)
    assert states[-1] == final, (order_id, states)


def read(process: ServeProcess) -> str:
    """A process's whole log."""
    return process.log.read_text() if process.log.exists() else ""


def logs(process: ServeProcess, tail: int = 6000) -> str:
    """The end of a process's log, for a failure message."""
    return f"--- {process.log} ---\n{read(process)[-tail:]}"

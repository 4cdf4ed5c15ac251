"""Venue agents: pickup through an agent against direct delivery, an offline backlog, an idle agent.

Every process is real and on loopback: the DemoPOS simulator (``python -m pos_demo.simulator``),
a hub (``posintegrator`` with one connection for the location: ``central`` to deliver directly,
``local`` to hand orders to its agent), a venue agent (its own process and SQLite store, paired
with the hub like ``agent pair`` + ``agents approve``, linked over the WebSocket) and a cloud
receiver. Stores are ``synchronous=FULL``, the default. The POS kitchen is slowed
(``--stage-seconds``, default 3600) so each order makes one POS state change (ACCEPTED).

1. **Pickup latency**, in the same run: orders posted open-loop at ``--rate`` (100/s) for
   ``--seconds`` to a hub delivering directly (the baseline), then to a hub whose agent
   delivers, alternately, ``--repeat`` times each with fresh processes. Pickup: from the hub's
   RECEIVED history entry to the POS order's ``created_at`` (as bench/e2e.py measures it),
   split into RECEIVED -> SUBMITTING (the agent's SUBMITTING, through an agent) and
   SUBMITTING -> POS created (the POS call); through an agent, the part from the hub queueing
   the order for it (its history note) to the agent's SUBMITTING is the link's own: the
   handover's and the send's commits at the hub, the frame, the agent's store and its delivery
   loop. Steps are short (5 s) to keep a run short; the demo POS stores each change as its own
   SQLite rows, so it no longer slows down as it fills (it rewrote a whole JSON file per change
   before 30 November 2026).
2. **Offline backlog**: the agent stopped, ``--backlog`` (1,000) orders posted to the hub and
   queued for it; the agent started again. Measured from the moment its link is up: until its
   store holds them all (polled), and until the POS holds them all (the POS's last
   ``created_at``). For context, the rate at which the hub took the same orders over HTTP.
3. **Idle agent**: after the backlog, the agent's CPU share over ``--window`` seconds (in three
   sub-windows) and its resident memory, beside an idle asyncio process with the same imports
   (the baseline, same window).

    python bench/link.py [--rate R] [--seconds S] [--repeat N] [--backlog N] [--window S]
        [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from common import (
    Measure,
    host_history,
    idle_cpu,
    idle_main,
    ms_stats,
    pos_created,
    post_orders,
    process_cpu_seconds,
    receiver_main,
    rss_bytes,
    start_simulator,
    table,
    write_results,
)
from intake import TOKEN, Child, quiet_logs, spawn, wait_for_stop
from pydantic import SecretStr

from posintegrator import __version__
from posintegrator.cloud.signatures import generate_secret
from posintegrator.link.identity import KEY_FILE, AgentKey
from posintegrator.model import Menu

LOCATION = "downtown"
AGENT = "bench-agent"
PICKUP_GOAL_MS = 20.0
BACKLOG_GOAL_PER_SECOND = 500.0
IDLE_CPU_GOAL = 0.01
IDLE_RSS_GOAL = 150 * 2**20


# --- the processes -----------------------------------------------------------------------------


def hub_main(
    pipe: Connection,
    data_dir: str,
    listen: socket.socket,
    placement: str,
    pos_url: str,
    pos_secret: str,
    cloud_url: str,
    cloud_secret: str,
    log_level: str,
) -> None:
    """A hub whose one connection is ``central`` (it delivers to the POS itself) or ``local``
    (its venue agent does)."""
    asyncio.run(
        _hub(
            pipe,
            Path(data_dir),
            listen,
            placement,
            pos_url,
            pos_secret,
            cloud_url,
            cloud_secret,
            log_level,
        )
    )


async def _hub(
    pipe: Connection,
    data_dir: Path,
    listen: socket.socket,
    placement: str,
    pos_url: str,
    pos_secret: str,
    cloud_url: str,
    cloud_secret: str,
    log_level: str,
) -> None:
    from posintegrator.runtime.host import Host
    from posintegrator.settings import (
        ApiSettings,
        CloudSettings,
        ConnectionSettings,
        HostSettings,
        StoreSettings,
    )
    from posintegrator.testing.harness import sync_all_menus

    quiet_logs(log_level)
    central = placement == "central"
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1", token=SecretStr(TOKEN)),
        store=StoreSettings(path=data_dir / "host.db"),  # synchronous=FULL, the default
        cloud=CloudSettings(webhook_url=cloud_url, webhook_secrets=[SecretStr(cloud_secret)]),
        connections=[
            ConnectionSettings(
                name="demo",
                plugin="demo",
                locations=[LOCATION],
                placement="central" if central else "local",
                settings={"base_url": pos_url, "webhook_secret": pos_secret} if central else {},
            )
        ],
    )
    host = Host(settings, listen_socket=listen)
    await host.start()
    if central:
        await sync_all_menus(host)
    pipe.send({"port": host.port, "pid": os.getpid()})
    await wait_for_stop(pipe)
    await host.stop(grace_seconds=2.0)
    pipe.send({})


def agent_main(
    pipe: Connection,
    data_dir: str,
    listen: socket.socket,
    hub_url: str,
    pos_url: str,
    pos_secret: str,
    log_level: str,
    sync_menu: bool,
) -> None:
    """A venue agent serving the demo POS; ready once its link to the hub is up."""
    asyncio.run(
        _agent(pipe, Path(data_dir), listen, hub_url, pos_url, pos_secret, log_level, sync_menu)
    )


async def _agent(
    pipe: Connection,
    data_dir: Path,
    listen: socket.socket,
    hub_url: str,
    pos_url: str,
    pos_secret: str,
    log_level: str,
    sync_menu: bool,
) -> None:
    from posintegrator.runtime.host import Host
    from posintegrator.settings import (
        AgentSettings,
        ApiSettings,
        ConnectionSettings,
        HostSettings,
        StoreSettings,
    )
    from posintegrator.testing.harness import sync_all_menus

    quiet_logs(log_level)
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1"),
        store=StoreSettings(path=data_dir / "agent.db"),  # synchronous=FULL, the default
        agent=AgentSettings(hub_url=hub_url),
        connections=[
            ConnectionSettings(
                name="demo",
                plugin="demo",
                locations=[LOCATION],
                placement="local",
                status_source="webhook",
                settings={"base_url": pos_url, "webhook_secret": pos_secret},
            )
        ],
    )
    host = Host(settings, listen_socket=listen)
    await host.start()
    assert host.agent_link is not None
    if sync_menu:
        await sync_all_menus(host)
    await host.agent_link.connected.wait()
    session = host.agent_link.session
    linked_at = session.stats.connected_at if session is not None else time.time()
    pipe.send({"pid": os.getpid(), "linked_at": linked_at})
    await wait_for_stop(pipe)
    await host.stop(grace_seconds=2.0)
    pipe.send({})


# --- a hub with its POS, and its agent ---------------------------------------------------------


class Deployment:
    """One fresh set of processes in ``work``: the POS, the cloud receiver, the hub, and (for
    ``local``) the venue agent, paired; stopped by :meth:`stop`."""

    def __init__(self, work: Path, placement: str, args: argparse.Namespace) -> None:
        self.work = work
        self.placement = placement
        self.args = args
        self.pos_secret = secrets.token_hex(16)
        self.cloud_secret = generate_secret()
        # Whoever takes the POS's webhooks (the hub, or the agent) gets a socket bound here,
        # so the POS knows where to send them before that process runs (no port is guessed).
        self.pos_side = socket.socket()
        self.pos_side.bind(("127.0.0.1", 0))
        self.hub_side = self.pos_side if placement == "central" else socket.socket()
        if placement != "central":
            self.hub_side.bind(("127.0.0.1", 0))
        port = self.pos_side.getsockname()[1]
        self.sim, self.pos_url = start_simulator(
            work / "pos",
            f"http://127.0.0.1:{port}/pos/demo/webhook",
            self.pos_secret,
            args.stage_seconds,
        )
        self.receiver: Child | None = None
        self.hub: Child | None = None
        self.agent: Child | None = None
        self.url = ""

    async def start(self) -> Menu:
        """Start the receiver, the hub and (local) the agent; the menu orders are made from."""
        self.receiver = spawn(receiver_main, self.cloud_secret)
        (self.work / "hub").mkdir()
        self.hub = spawn(
            hub_main,
            str(self.work / "hub"),
            self.hub_side,
            self.placement,
            self.pos_url,
            self.pos_secret,
            self.receiver.ready["url"],
            self.cloud_secret,
            self.args.log_level,
        )
        self.url = f"http://127.0.0.1:{self.hub.ready['port']}"
        if self.placement != "central":
            await self._pair()
            self.start_agent(sync_menu=True)
        return await self._menu()

    async def _pair(self) -> None:
        """Pair the agent as ``agent pair`` and ``agents approve`` do."""
        key = AgentKey.generate()
        key.save(self.work / "agent" / KEY_FILE)
        request = {"public_key": key.public_key, "name": AGENT, "version": __version__}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/v1/link/pairings", json=request) as response:
                assert response.status == 201, await response.text()
                started = await response.json()
            approval = {"code": started["code"], "locations": [LOCATION]}
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.post(
                f"{self.url}/v1/agents/approve", json=approval, headers=headers
            ) as response:
                assert response.status == 200, await response.text()

    def start_agent(self, *, sync_menu: bool) -> float:
        """Start the agent; when its link came up (epoch seconds)."""
        self.agent = spawn(
            agent_main,
            str(self.work / "agent"),
            self.pos_side,
            self.url,
            self.pos_url,
            self.pos_secret,
            self.args.log_level,
            sync_menu,
        )
        linked_at: float = self.agent.ready["linked_at"]
        return linked_at

    def stop_agent(self) -> None:
        assert self.agent is not None
        self.agent.stop()
        self.agent = None

    async def _menu(self) -> Menu:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession(headers=headers) as http:
            while True:
                async with http.get(f"{self.url}/v1/locations/{LOCATION}/menu") as response:
                    if response.status == 200:
                        return Menu.model_validate_json(await response.read())
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the hub has no menu of {LOCATION} after 60 s")
                await asyncio.sleep(0.05)

    async def agents(self) -> list[dict[str, Any]]:
        """The hub's view of its agents."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(f"{self.url}/v1/agents") as response,
        ):
            agents: list[dict[str, Any]] = (await response.json())["agents"]
            return agents

    def accepted(self) -> int:
        """ACCEPTED events the cloud got so far (each order's POS has it by then)."""
        assert self.receiver is not None
        self.receiver.pipe.send("count")
        count: int = self.receiver.pipe.recv()
        return count

    def pids(self) -> dict[str, int]:
        pids = {"POS": self.sim.pid}
        if self.hub is not None:
            pids["hub"] = self.hub.ready["pid"]
        if self.agent is not None:
            pids["agent"] = self.agent.ready["pid"]
        return pids

    def stop(self) -> dict[str, Any]:
        """Stop everything; the receiver's report."""
        if self.agent is not None:
            self.stop_agent()
        if self.hub is not None:
            self.hub.stop()
        report = self.receiver.stop() if self.receiver is not None else {}
        self.sim.terminate()
        self.sim.wait(10)
        self.pos_side.close()
        self.hub_side.close()
        return report


async def wait_until(check: Any, timeout: float, interval: float = 0.05) -> float:
    """Poll ``check()`` until true; the epoch time it was first seen true (or raise)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout:g} s")
        await asyncio.sleep(interval)


# --- 1. pickup latency -------------------------------------------------------------------------


async def latency_step(placement: str, args: argparse.Namespace, run: int) -> dict[str, Any]:
    """Orders at ``args.rate`` for ``args.seconds`` through fresh processes."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deployment = Deployment(work, placement, args)
        try:
            menu = await deployment.start()
            pids = deployment.pids()
            cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            wall = time.perf_counter()
            sent, answered, failures = await post_orders(
                deployment.url, TOKEN, menu, args.rate, args.seconds, f"{placement}{run}"
            )

            async def all_accepted() -> bool:
                return deployment.accepted() >= len(answered)

            with contextlib.suppress(TimeoutError):  # what is missing is counted below
                await wait_until(all_accepted, 20, 0.1)
            wall = time.perf_counter() - wall
            cpu = {
                name: (process_cpu_seconds(pid) - cpu_before[name]) / wall
                for name, pid in pids.items()
            }
            created = await pos_created(deployment.pos_url)
        finally:
            deployment.stop()
        hub = host_history(work / "hub" / "host.db")
        queued = queued_for_agent(work / "hub" / "host.db")
        claimed = first_claims(work / "agent" / "agent.db") if placement != "central" else {}
        agent = host_history(work / "agent" / "agent.db") if placement != "central" else hub
    pickup = [created[o] - hub[o]["RECEIVED"] for o in sent if o in created and o in hub]
    to_submitting = [
        agent[o]["SUBMITTING"] - hub[o]["RECEIVED"]
        for o in sent
        if "SUBMITTING" in agent.get(o, {}) and "RECEIVED" in hub.get(o, {})
    ]
    at_hub = [queued[o] - hub[o]["RECEIVED"] for o in sent if o in queued and o in hub]
    link = [claimed[o] - queued[o] for o in sent if o in claimed and o in queued]
    pos_call = [
        created[o] - agent[o]["SUBMITTING"]
        for o in sent
        if o in created and "SUBMITTING" in agent.get(o, {})
    ]
    return {
        "placement": placement,
        "rate": args.rate,
        "orders": len(sent),
        "failures": failures,
        "missing_in_pos": len(sent) - len(pickup),
        "pickup_ms": ms_stats(pickup),
        "received_to_submitting_ms": ms_stats(to_submitting),
        "received_to_queued_ms": ms_stats(at_hub),
        "queued_to_claimed_ms": ms_stats(link),
        "submitting_to_pos_ms": ms_stats(pos_call),
        "post_to_202_ms": ms_stats([answered[o] - sent[o] for o in answered]),
        "cpu_share": cpu,
    }


# --- 2. offline backlog and 3. idle agent -------------------------------------------------------


def queued_for_agent(db: Path) -> dict[str, float]:
    """Per order, when the hub queued it for its agent (the history note of the handover)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT order_id, MIN(at) FROM status_history "
            "WHERE note LIKE 'queued for agent%' GROUP BY order_id"
        ).fetchall()
    return {order_id: datetime.fromisoformat(at).timestamp() for order_id, at in rows}


def first_claims(db: Path) -> dict[str, float]:
    """Per order, when the agent's delivery claimed it for its first attempt (after the link
    brought it and the agent stored it)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT order_id, MIN(started_at) FROM delivery_attempts GROUP BY order_id"
        ).fetchall()
    return {order_id: datetime.fromisoformat(at).timestamp() for order_id, at in rows}


def stored_orders(db: Path) -> int:
    """Orders in a store (read beside its writer: SQLite WAL lets a reader in)."""
    with sqlite3.connect(db, timeout=10) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    return count


async def backlog_and_idle(args: argparse.Namespace) -> dict[str, Any]:
    """The backlog after an outage, then the agent idle."""
    idle = spawn(idle_main)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deployment = Deployment(work, "local", args)
        try:
            menu = await deployment.start()
            deployment.stop_agent()
            posted = time.perf_counter()
            seconds = args.backlog / args.backlog_post_rate
            sent, answered, failures = await post_orders(
                deployment.url, TOKEN, menu, args.backlog_post_rate, seconds, "backlog"
            )
            posted = time.perf_counter() - posted
            if failures or len(answered) != args.backlog:
                raise RuntimeError(f"the hub refused {failures} of the backlog's orders")

            async def all_queued() -> bool:
                [agent] = await deployment.agents()
                return bool(agent["waiting_to_agent"] >= args.backlog)

            await wait_until(all_queued, 60)
            started = time.time()
            linked_at = deployment.start_agent(sync_menu=False)
            assert deployment.agent is not None
            agent_pid = deployment.agent.ready["pid"]
            cpu_linked = process_cpu_seconds(agent_pid)
            agent_db = work / "agent" / "agent.db"

            async def all_in_agent() -> bool:
                return stored_orders(agent_db) >= args.backlog

            in_agent_at = await wait_until(all_in_agent, 120, 0.01)
            catch_up_cpu = process_cpu_seconds(agent_pid) - cpu_linked

            async def all_in_pos() -> bool:
                return deployment.accepted() >= args.backlog

            await wait_until(all_in_pos, 600, 0.2)
            created = await pos_created(deployment.pos_url)
            in_pos_at = max(created[o] for o in sent)
            # Idle: every order is in the POS and its ACCEPTED reached the cloud; let the last
            # writes settle, then measure the agent beside the idle baseline.
            await asyncio.sleep(min(2.0, args.window / 3))
            measured = await asyncio.to_thread(
                idle_cpu,
                {"agent": agent_pid, "baseline": idle.ready["pid"]},
                args.window,
                args.samples,
            )
            agent_rss, agent_peak = rss_bytes(agent_pid)
            base_rss, _ = rss_bytes(idle.ready["pid"])
            [agent_view] = await deployment.agents()
        finally:
            deployment.stop()
            idle.stop()
    to_agent = in_agent_at - linked_at
    to_pos = in_pos_at - linked_at
    return {
        "orders": args.backlog,
        "hub_intake_per_second": args.backlog / posted,
        "agent_start_to_link_seconds": linked_at - started,
        "link_to_agent_store_seconds": to_agent,
        "agent_store_per_second": args.backlog / to_agent,
        "agent_cpu_seconds_catching_up": catch_up_cpu,
        "agent_store_per_cpu_second": args.backlog / catch_up_cpu,
        "link_to_pos_seconds": to_pos,
        "pos_per_second": args.backlog / to_pos,
        "agent_connected_after": agent_view["connected"],
        "idle_window_seconds": args.window,
        "agent_idle_cpu": measured["agent"].summary(),
        "baseline_idle_cpu": measured["baseline"].summary(),
        "agent_rss_bytes": agent_rss,
        "agent_peak_rss_bytes": agent_peak,
        "baseline_rss_bytes": base_rss,
    }


# --- the report ---------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.1f}"


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_latency(steps: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Print the pickup table; the summary for the results file."""
    pickup = {p: Measure(f"pickup p50, {p}", "ms") for p in ("central", "local")}
    pickup_p99 = {p: Measure(f"pickup p99, {p}", "ms") for p in ("central", "local")}
    for s in steps:
        pickup[s["placement"]].samples.append(s["pickup_ms"]["p50"])
        pickup_p99[s["placement"]].samples.append(s["pickup_ms"]["p99"])
    direct, agent = pickup["central"], pickup["local"]
    print(
        f"pickup (hub RECEIVED -> POS created_at) at {args.rate:g} orders/s for "
        f"{args.seconds:g} s, {args.repeat} run(s) each, alternating; baseline: direct "
        "delivery (central placement) in the same run"
    )
    rows = [
        [
            "run",
            "placement",
            "orders",
            "pickup p50",
            "p99",
            "RECEIVED->SUBMITTING p50",
            "p99",
            "of which RECEIVED->queued p50",
            "queued->agent's claim p50",
            "SUBMITTING->POS p50",
            "POST->202 p50",
            "CPU hub",
            "CPU agent",
            "CPU POS",
        ]
    ]
    for index, s in enumerate(steps):
        through_agent = s["placement"] != "central"
        rows.append(
            [
                str(index // 2 + 1),
                "agent" if through_agent else "direct",
                f"{s['orders']}"
                + (f" ({s['missing_in_pos']} missing)" if s["missing_in_pos"] else ""),
                f"{fmt(s['pickup_ms']['p50'])} ms",
                f"{fmt(s['pickup_ms']['p99'])} ms",
                f"{fmt(s['received_to_submitting_ms']['p50'])} ms",
                f"{fmt(s['received_to_submitting_ms']['p99'])} ms",
                f"{fmt(s['received_to_queued_ms']['p50'])} ms" if through_agent else "-",
                f"{fmt(s['queued_to_claimed_ms']['p50'])} ms" if through_agent else "-",
                f"{fmt(s['submitting_to_pos_ms']['p50'])} ms",
                f"{fmt(s['post_to_202_ms']['p50'])} ms",
                f"{s['cpu_share']['hub']:.0%}",
                f"{s['cpu_share']['agent']:.0%}" if through_agent else "-",
                f"{s['cpu_share']['POS']:.0%}",
            ]
        )
    print(table(rows))
    print(
        f"pickup p50: through an agent {agent.median:.1f} ms (±{agent.spread:.0%}), direct "
        f"{direct.median:.1f} ms (±{direct.spread:.0%}): {agent.median / direct.median:.2f}x "
        f"direct; p99 {pickup_p99['local'].median:.1f} ms against "
        f"{pickup_p99['central'].median:.1f} ms"
    )
    saturated = any(s["missing_in_pos"] for s in steps if s["placement"] == "central")
    if saturated:
        print(
            f"the baseline is saturated: orders delivered directly did not all reach the POS "
            f"at {args.rate:g}/s, so both placements queue for the POS and the comparison says "
            "little about the link; use a lower --rate or a quieter machine"
        )
    print(
        f"goal: pickup p50 through an agent < {PICKUP_GOAL_MS:g} ms: "
        f"{met(agent.median < PICKUP_GOAL_MS)}"
    )
    return {
        "direct_p50": direct.summary(),
        "agent_p50": agent.summary(),
        "direct_p99": pickup_p99["central"].summary(),
        "agent_p99": pickup_p99["local"].summary(),
        "agent_over_direct_p50": agent.median / direct.median,
        "baseline_saturated": saturated,
        "goal_met": agent.median < PICKUP_GOAL_MS,
    }


def report_backlog(b: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the backlog and the idle agent."""
    print(
        f"offline backlog: {b['orders']} orders queued at the hub (it took them at "
        f"{b['hub_intake_per_second']:.0f}/s); agent process start -> link up "
        f"{b['agent_start_to_link_seconds']:.2f} s; link up -> all in the agent's store "
        f"{b['link_to_agent_store_seconds']:.2f} s = {b['agent_store_per_second']:.0f} orders/s "
        f"(the agent used {b['agent_cpu_seconds_catching_up']:.2f} CPU-s meanwhile: "
        f"{b['agent_store_per_cpu_second']:.0f} orders per CPU-second); "
        f"-> all in the POS {b['link_to_pos_seconds']:.2f} s = {b['pos_per_second']:.0f} orders/s"
    )
    cpu, base = b["agent_idle_cpu"], b["baseline_idle_cpu"]
    print(
        f"idle agent over {args.window:g} s: {cpu['median']:.2%} of a core (±{cpu['spread']:.0%}; "
        f"baseline idle asyncio process {base['median']:.2%}); resident "
        f"{b['agent_rss_bytes'] / 2**20:.0f} MiB (peak {b['agent_peak_rss_bytes'] / 2**20:.0f}; "
        f"baseline {b['baseline_rss_bytes'] / 2**20:.0f} MiB)"
    )
    print(
        f"goals: backlog >= {BACKLOG_GOAL_PER_SECOND:g}/s into the agent: "
        f"{met(b['agent_store_per_second'] >= BACKLOG_GOAL_PER_SECOND)}; idle agent < 1 % of a "
        f"core: {met(cpu['median'] < IDLE_CPU_GOAL)}, < 150 MiB: "
        f"{met(b['agent_rss_bytes'] < IDLE_RSS_GOAL)}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="orders per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="load per latency run")
    parser.add_argument("--repeat", type=int, default=3, help="latency runs per placement")
    parser.add_argument("--backlog", type=int, default=1000, help="orders queued while offline")
    parser.add_argument(
        "--backlog-post-rate", type=float, default=500.0, help="orders/s posted for the backlog"
    )
    parser.add_argument("--window", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--samples", type=int, default=3, help="sub-windows of the idle window")
    parser.add_argument("--stage-seconds", type=float, default=3600.0, help="POS kitchen stage")
    parser.add_argument("--log-level", default="ERROR", help="log level of hub and agent")
    parser.add_argument(
        "--parts", default="latency,backlog", help="what to measure: latency, backlog (and idle)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if args.quick:
        args.seconds, args.repeat, args.backlog, args.window = 1.0, 1, 50, 1.5

    results: dict[str, Any] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "repeat": args.repeat,
        "stage_seconds": args.stage_seconds,
    }
    if "latency" in parts:
        steps = []
        for run in range(args.repeat):
            for placement in ("central", "local"):
                steps.append(await latency_step(placement, args, run))
        results["pickup"] = report_latency(steps, args)
        results["steps"] = steps
    if "backlog" in parts:
        results["backlog"] = await backlog_and_idle(args)
        report_backlog(results["backlog"], args)
    print(f"results: {write_results('link', results)}")


if __name__ == "__main__":
    asyncio.run(main())

"""How many durable ``POST /v1/orders`` per second the real Integrator API takes.

Each sample starts a fresh host in its own process (SQLite store, ``synchronous=FULL``, the
default: every 202 is on disk) serving one connection of a tiny in-process no-op POS plugin,
syncs its menu, and drives it with a load generator in another process: ``wrk`` with a Lua
script giving every order a unique id (or, without wrk, a Python aiohttp generator process).
Every order is valid against the live menu (``posintegrator.testing.sample_order``).

Two host variants: delivery idle (the delivery loop of the connection is never woken, so orders
stay RECEIVED: intake alone) and delivery on (each order is also submitted to the no-op POS in
the same process: SUBMITTING and ACCEPTED written to the store with their outbox events; no
cloud webhook URL is set, so those events wait in the outbox). A third, diagnostic variant
answers every order as accepted without writing it (``_AcceptWithoutWriting``): what the request
path alone allows, to tell its cost from the store's.

The baseline, measured in the same run: the same aiohttp server setup (same middlewares, body
limit and runner) and the same generator, with a handler that parses the body (orjson +
``Order.model_validate``) and answers 202 without storing. The generator is checked against a
trivial handler (reads the body, answers 202): it must reach far more than the baseline's rate.

    python bench/intake.py [--seconds S] [--repeat R] [--connections C] [--quick]
    (wrk: apt-get install -y wrk; without it a Python generator is used, see --generator)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from aiohttp import web
from common import Measure, table, write_results
from pydantic import BaseModel, SecretStr

from posintegrator.context import ConnectionContext
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import (
    Capabilities,
    FoundOrder,
    InboundWebhook,
    SubmitResult,
    TrackedOrder,
    WebhookResult,
)
from posintegrator.model import (
    Menu,
    Order,
    StatusEvent,
    utcnow,
)
from posintegrator.store import AcceptOutcome, AcceptResult, OrderRecord, SQLiteStore
from posintegrator.testing import one_product_menu, sample_order

TOKEN = "bench-token"  # noqa: S105 (a loopback test host's token)
LOCATION = "bench"
WRK_INSTALL = "apt-get update && apt-get install -y wrk"


# --- a no-op POS plugin (also used by scheduler_scale.py) ----------------------------------


class NoopSettings(BaseModel):
    """The no-op POS needs no settings."""


class NoopPos:
    """A POS that answers at once: a tiny menu, every order accepted, no status changes.

    :param on_fetch: called at the start of every menu fetch (to time syncs).
    """

    def __init__(self, on_fetch: Callable[[str], None] | None = None) -> None:
        self.on_fetch = on_fetch
        self.submitted = 0

    @hookimpl
    def pos_settings_model(self) -> type[BaseModel]:
        return NoopSettings

    @hookimpl
    def pos_capabilities(self) -> Capabilities:
        return Capabilities(
            menu=True,
            orders=True,
            order_lookup=True,
            idempotent_submit=True,
            status_webhooks=False,
            status_polling=True,
        )

    @hookimpl
    async def pos_fetch_menu(self, ctx: ConnectionContext, location: str) -> Menu:
        if self.on_fetch is not None:
            self.on_fetch(location)
        return one_product_menu(location)

    @hookimpl
    async def pos_submit_order(
        self, ctx: ConnectionContext, order: Order, idempotency_key: str
    ) -> SubmitResult:
        self.submitted += 1
        return SubmitResult(pos_order_id=f"N-{self.submitted}")

    @hookimpl
    async def pos_find_order(
        self, ctx: ConnectionContext, order_id: str, location: str
    ) -> FoundOrder | None:
        return None

    @hookimpl
    async def pos_poll_status(
        self, ctx: ConnectionContext, orders: list[TrackedOrder]
    ) -> list[StatusEvent]:
        return []

    @hookimpl
    async def pos_parse_webhook(
        self, ctx: ConnectionContext, request: InboundWebhook
    ) -> WebhookResult:
        return WebhookResult()


# --- child processes: start, report "ready" over a pipe, stop when told -----------------------


def spawn(target: Callable[..., None], *args: Any, timeout: float = 60.0) -> Child:
    """Start ``target(pipe, *args)`` in a fresh (spawned) process; wait for its ready message."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    if not parent.poll(timeout):
        proc.kill()
        raise RuntimeError(f"{target.__name__} did not start within {timeout}s")
    ready: dict[str, Any] = parent.recv()
    return Child(proc, parent, ready)


@dataclass
class Child:
    """A spawned process, its pipe and what it said when ready."""

    proc: Any
    pipe: Connection
    ready: dict[str, Any]

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Ask the child to stop; returns its final report."""
        self.pipe.send("stop")
        report: dict[str, Any] = {}
        if self.pipe.poll(timeout):
            report = self.pipe.recv()
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
        return report


async def wait_for_stop(pipe: Connection) -> None:
    """Block (in a thread) until the parent sends "stop"."""
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


def quiet_logs(level: str) -> None:
    from posintegrator.logs import setup_logging

    setup_logging(level)


# --- the servers under test ------------------------------------------------------------------


def reference_server_main(pipe: Connection, log_level: str) -> None:
    """The baseline and trivial handlers, in the host's aiohttp setup."""
    asyncio.run(_reference_server(pipe, log_level))


async def _reference_server(pipe: Connection, log_level: str) -> None:
    from posintegrator.api.auth import guard_middleware
    from posintegrator.api.problems import problem_middleware
    from posintegrator.settings import ApiSettings

    quiet_logs(log_level)

    async def parse_only(request: web.Request) -> web.Response:
        order = Order.model_validate(orjson.loads(await request.read()))
        body = orjson.dumps({"id": order.id, "status": "RECEIVED"})
        return web.Response(status=202, body=body, content_type="application/json")

    async def trivial(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application(
        middlewares=[problem_middleware, guard_middleware(ApiSettings(token=SecretStr(TOKEN)))]
    )
    app.router.add_post("/v1/orders", parse_only)
    app.router.add_post("/trivial/v1/orders", trivial)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    pipe.send({"port": runner.addresses[0][1], "pid": os.getpid()})
    await wait_for_stop(pipe)
    await runner.cleanup()
    pipe.send({})


class _AcceptWithoutWriting(SQLiteStore):
    """Diagnostic store: answers every new order as accepted without writing anything.

    Everything else (menus, the outbox) is the real SQLite store. A run with it measures the
    request path alone: the API, validation, the menu check, the content hash and key. It is
    not durable and not a host anyone should run.
    """

    async def accept_order(
        self,
        order: Order,
        connection: str,
        content_hash: str,
        idempotency_key: str,
        *,
        at: datetime | None = None,
    ) -> AcceptResult:
        record = OrderRecord.received(
            order, connection, content_hash, idempotency_key, at or utcnow()
        )
        return AcceptResult(AcceptOutcome.CREATED, record)


def host_server_main(
    pipe: Connection, data_dir: str, delivery: bool, writes: bool, log_level: str
) -> None:
    """A real host with the SQLite store (FULL) and one no-op connection; with ``writes``
    False, the diagnostic store that accepts orders without writing them."""
    asyncio.run(_host_server(pipe, Path(data_dir), delivery, writes, log_level))


async def _host_server(
    pipe: Connection, data_dir: Path, delivery: bool, writes: bool, log_level: str
) -> None:
    from posintegrator.plugins import PluginHost
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
    pos = NoopPos()
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0, token=SecretStr(TOKEN)),
        store=StoreSettings(path=data_dir / "host.db"),  # synchronous=FULL, the default
        cloud=CloudSettings(),  # no webhook URL: cloud events wait in the outbox
        connections=[ConnectionSettings(name="noop", plugin="noop", locations=[LOCATION])],
    )
    store = None if writes else _AcceptWithoutWriting(settings.store.path)
    host = Host(settings, plugins=PluginHost.from_objects({"noop": pos}), store=store)
    await host.start()
    assert settings.store.synchronous == "FULL"
    await sync_all_menus(host)
    if not delivery:
        # Delivery idle: nothing wakes this connection's delivery loop or offers it an order, so
        # accepted orders stay RECEIVED (the loop found nothing due at start and waits for a
        # wake-up forever).
        delivery = host.connections["noop"].delivery
        delivery.wake = lambda: None  # type: ignore[method-assign]
        delivery.offer = lambda _record: None  # type: ignore[method-assign]
    pipe.send({"port": host.port, "pid": os.getpid()})
    await wait_for_stop(pipe)
    await host.stop(grace_seconds=2.0)
    pipe.send({"submitted": pos.submitted})


def order_counts(db: Path) -> dict[str, int]:
    """Orders in a stopped host's store, by status."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall()
    return {status: count for status, count in rows}


# --- load generators ---------------------------------------------------------------------------


def order_template() -> tuple[bytes, bytes]:
    """The JSON of a valid order, split around its id: prefix, suffix."""
    body = orjson.dumps(sample_order(one_product_menu(LOCATION), "@@ID@@"))
    before, after = body.split(b"@@ID@@")
    return before, after


@dataclass
class LoadResult:
    ok: int
    other: int
    seconds: float
    cpu_seconds: float
    """CPU time the generator process used (user + system)."""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


WRK_SCRIPT = """
local pre = [==[%PRE%]==]
local post = [==[%POST%]==]
local prefix = "%PREFIX%"
local threads = {}
counter = 0
ok = 0
other = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %TOKEN%"

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, pre .. prefix .. "-" .. tid .. "-" .. counter .. post)
end

function response(status, headers, body)
  if status == 202 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local o, x = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    x = x + t:get("other")
  end
  io.write(string.format("BENCH ok=%d other=%d us=%d\\n", o, x, summary.duration))
end
"""


def run_wrk(url: str, seconds: float, connections: int, prefix: str, workdir: Path) -> LoadResult:
    """``wrk`` (one thread) posting unique orders to ``url`` for ``seconds``."""
    before, after = order_template()
    script = workdir / f"{prefix}.lua"
    script.write_text(
        WRK_SCRIPT.replace("%PRE%", before.decode())
        .replace("%POST%", after.decode())
        .replace("%PREFIX%", prefix)
        .replace("%TOKEN%", TOKEN)
    )
    duration = max(1, round(seconds))
    before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after_cpu.ru_utime - before_cpu.ru_utime) + (after_cpu.ru_stime - before_cpu.ru_stime)
    found = re.search(r"BENCH ok=(\d+) other=(\d+) us=(\d+)", out)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    ok, other, micros = (int(g) for g in found.groups())
    return LoadResult(ok, other, micros / 1e6, cpu)


def python_generator_main(
    pipe: Connection, url: str, seconds: float, connections: int, prefix: str
) -> None:
    """A Python load generator process: ``connections`` workers posting unique orders."""
    pipe.send({"pid": os.getpid()})
    result = asyncio.run(_python_generator(url, seconds, connections, prefix))
    pipe.send(result)


async def _python_generator(
    url: str, seconds: float, connections: int, prefix: str
) -> dict[str, Any]:
    before, after = order_template()
    counts = {"ok": 0, "other": 0}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        deadline = started + seconds
        start_usage = resource.getrusage(resource.RUSAGE_SELF)

        async def worker(index: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                body = before + f"{prefix}-{index}-{n}".encode() + after
                async with session.post(url, data=body) as response:
                    await response.read()
                    counts["ok" if response.status == 202 else "other"] += 1

        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - start_usage.ru_utime - start_usage.ru_stime
    return {**counts, "seconds": elapsed, "cpu": cpu}


def generate(
    kind: str, url: str, seconds: float, connections: int, prefix: str, workdir: Path
) -> LoadResult:
    """Drive ``url`` from a separate process with the chosen generator."""
    if kind == "wrk":
        return run_wrk(url, seconds, connections, prefix, workdir)
    child = spawn(python_generator_main, url, seconds, connections, prefix)
    if not child.pipe.poll(seconds + 60):
        child.proc.kill()
        raise RuntimeError("the Python generator did not finish")
    result = child.pipe.recv()
    child.proc.join(10)
    return LoadResult(result["ok"], result["other"], result["seconds"], result["cpu"])


# --- the benchmark -----------------------------------------------------------------------------

MODES = (
    "trivial",
    "baseline",
    "host, delivery idle",
    "host, delivery on",
    "diagnostic: host, no store write",
)
#: The host variants: (mode, delivery on, orders written).
HOST_RUNS = ((MODES[2], False, True), (MODES[3], True, True), (MODES[4], False, False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per sample")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="concurrent requests")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help=f"auto = wrk if installed ({WRK_INSTALL}), else Python",
    )
    parser.add_argument("--log-level", default="ERROR", help="host log level (loguru)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args()
    seconds, repeats, warmup = (1.0, 1, 0.0) if args.quick else (args.seconds, args.repeat, 1.0)
    kind = args.generator
    if kind == "auto":
        kind = "wrk" if shutil.which("wrk") else "python"
        if kind == "python":
            print(f"wrk not found ({WRK_INSTALL}): using the Python generator", file=sys.stderr)
    elif kind == "wrk" and not shutil.which("wrk"):
        sys.exit(f"wrk is not installed: {WRK_INSTALL}")

    measures = {mode: Measure(mode, "orders/s") for mode in MODES}
    generator_cpu = {mode: Measure(mode, "share of one core") for mode in MODES}
    statuses: dict[str, list[dict[str, int]]] = {mode: [] for mode in MODES[2:]}
    reference = spawn(reference_server_main, args.log_level)
    ref_url = f"http://127.0.0.1:{reference.ready['port']}"
    run_id = f"{os.getpid()}-{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        serial = 0

        def load(url: str, duration: float) -> LoadResult:
            nonlocal serial
            serial += 1
            prefix = f"b{run_id}-{serial}"
            return generate(kind, url, duration, args.connections, prefix, work)

        def sample(mode: str, url: str) -> None:
            if warmup:
                load(url, warmup)
            result = load(url, seconds)
            if result.other:
                print(f"  {mode}: {result.other} answers other than 202", file=sys.stderr)
            if result.rate == 0:
                raise SystemExit(
                    f"{mode}: not one order accepted ({result.other} other answers): the server "
                    "under test is broken, its figures would mean nothing; run with "
                    "--log-level INFO to see why"
                )
            measures[mode].samples.append(result.rate)
            generator_cpu[mode].samples.append(result.cpu_seconds / result.seconds)

        for _ in range(repeats):  # interleaved, so drift on a shared machine hits all alike
            sample("trivial", f"{ref_url}/trivial/v1/orders")
            sample("baseline", f"{ref_url}/v1/orders")
            for mode, delivery, writes in HOST_RUNS:
                data_dir = work / f"host-{serial}"
                data_dir.mkdir()
                host = spawn(host_server_main, str(data_dir), delivery, writes, args.log_level)
                sample(mode, f"http://127.0.0.1:{host.ready['port']}/v1/orders")
                host.stop()
                statuses[mode].append(order_counts(data_dir / "host.db"))
        reference.stop()

    base = measures["baseline"].median
    rows = [["server", "orders/s (median)", "spread", "ratio to baseline", "generator CPU"]]
    for mode, measure in measures.items():
        rows.append(
            [
                mode,
                f"{measure.median:,.0f}",
                f"±{measure.spread:.0%}",
                f"{measure.median / base:.2f}",
                f"{generator_cpu[mode].median:.0%} of a core",
            ]
        )
    print(
        f"POST /v1/orders, {args.connections} concurrent, {kind} generator in its own process, "
        f"{seconds:g}s x {repeats}"
    )
    print(table(rows))
    trivial = measures["trivial"].median
    headroom = trivial / base
    # The trivial aiohttp server saturates its own core first, so its rate is only a lower bound
    # of what the generator can send; its CPU share tells how much more it could.
    capacity = trivial / max(generator_cpu["trivial"].median, 1e-9)
    print(
        f"generator check: {trivial:,.0f} req/s against a trivial 202 handler "
        f"({headroom:.1f} x the baseline's rate) using {generator_cpu['trivial'].median:.0%} "
        f"of a core: about {capacity:,.0f} req/s per core of generator, "
        f"{capacity / base:.1f} x the baseline's rate"
        + ("" if capacity >= 2 * base else "  (WARNING: the generator may limit the baseline)")
    )
    intake = measures[MODES[2]].median / base
    verdict = "met" if intake >= 0.5 else "MISSED"
    print(f"target: intake >= 0.5 x baseline: {intake:.2f} ({verdict})")
    for mode, runs in statuses.items():
        print(f"store after '{mode}': {runs}")
    path = write_results(
        "intake",
        {
            "seconds": seconds,
            "repeat": repeats,
            "connections": args.connections,
            "generator": kind,
            "results": {mode: m.summary() for mode, m in measures.items()},
            "ratios": {mode: m.median / base for mode, m in measures.items()},
            "generator_headroom": headroom,
            "generator_capacity_per_core": capacity,
            "generator_cpu": {mode: m.summary() for mode, m in generator_cpu.items()},
            "store_statuses": statuses,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

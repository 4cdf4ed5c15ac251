"""Scale-out on PostgreSQL: one worker's durable intake against the bare handler, two workers
against one, and the pickup latency across workers.

A private PostgreSQL server is started for the run (Debian's package, as in the tests:
``tests/pgserver.py``; durable: ``fsync`` and ``synchronous_commit`` on, as in production), and
every sample gets a fresh database. Each worker is a real host in its own process
(``store.url``, one no-op connection, the API on loopback), driven by the load generator of
``bench/intake.py`` in another process (``wrk`` if installed, else Python).

1. Durable intake of one worker (delivery idle: orders stay RECEIVED) against the baseline
   handler (parse and validate the order, answer 202 without storing), same generator, same
   run. Goal: at least 0.5.
2. Two workers on one database against one worker, each at its most: each worker driven by a
   generator of its own with as many connections as the one worker gets (``--connections``; the
   one worker is saturated with them: more do not raise its rate). Goal: at least 1.5x, on this
   2-core machine (the limit is named in the output: the cores the workers, generators and
   PostgreSQL share). Shown beside it: the same connections in all, split between the two (a
   fixed set of clients, each waiting for its answer; each worker's group commits are then
   half as big).
3. Pickup latency at 100 orders/s posted to two workers at random (delivery on in both): from
   the 202 to the POS receiving the submission, whichever worker claims it. Goal: p50 under
   20 ms. With ``--busy N``, N other processes keep cores busy meanwhile (a loaded machine);
   the workers' store batches run again for conflicts are counted either way.
4. One worker with delivery on, driven flat out: how many orders per second reach the POS
   (through its one connection) while it accepts as many as it can.

Where the CPU goes (the capacity model of docs/scaling.md): for each intake sample the CPU
seconds of the workers, of the PostgreSQL server (its main process and every backend, from
/proc) and of the generators, per order accepted, and how many cores were busy; from the
two-worker samples, the most this machine's cores allow two workers at that cost per order.
For the pickup runs the same per order picked up, less what the idle workers spend in as long.

    python bench/scale_out.py [--seconds S] [--repeat R] [--connections C] [--busy N]
                              [--generator auto|wrk|python] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # its pgserver

import aiohttp
from common import Measure, children_of, cpu_seconds_of, table, write_results
from intake import (
    LOCATION,
    TOKEN,
    WRK_INSTALL,
    Child,
    LoadResult,
    NoopPos,
    generate,
    order_template,
    quiet_logs,
    reference_server_main,
    spawn,
    wait_for_stop,
)
from pgserver import PostgresServer, running_postgres
from pydantic import SecretStr

from posintegrator.context import ConnectionContext
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import SubmitResult
from posintegrator.model import Order

LATENCY_RATE = 100.0
#: How long the latency run waits after the last order for the POS to receive it.
SETTLE_SECONDS = 10.0
#: How long the latency run measures the idle workers' CPU before posting.
IDLE_SECONDS = 3.0
#: Deliveries in flight at once on the workers' one connection.
MAX_CONCURRENCY = 16


class TimedPos(NoopPos):
    """The no-op POS, noting when each order's submission arrived (wall clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    @hookimpl
    async def pos_submit_order(
        self, ctx: ConnectionContext, order: Order, idempotency_key: str
    ) -> SubmitResult:
        self.arrived.setdefault(order.id, time.time())
        self.submitted += 1
        return SubmitResult(pos_order_id=f"N-{order.id}")


def worker_main(pipe: Connection, url: str, delivery: bool, log_level: str) -> None:
    """A host on the PostgreSQL database at ``url`` with one no-op connection."""
    asyncio.run(_worker(pipe, url, delivery, log_level))


async def _worker(pipe: Connection, url: str, delivery: bool, log_level: str) -> None:
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
    pos = TimedPos()
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0, token=SecretStr(TOKEN)),
        store=StoreSettings(url=SecretStr(url)),
        cloud=CloudSettings(),  # no webhook URL: cloud events wait in the outbox
        connections=[
            ConnectionSettings(
                name="noop", plugin="noop", locations=[LOCATION], max_concurrency=MAX_CONCURRENCY
            )
        ],
    )
    host = Host(settings, plugins=PluginHost.from_objects({"noop": pos}))
    await host.start()
    await sync_all_menus(host)
    if not delivery:  # orders stay RECEIVED: intake alone
        idle = host.connections["noop"].delivery
        idle.wake = lambda: None  # type: ignore[method-assign]
        idle.offer = lambda _record: None  # type: ignore[method-assign]
    pipe.send({"port": host.port, "pid": os.getpid()})
    await wait_for_stop(pipe)
    writer = host.store._writer  # type: ignore[attr-defined]  # a diagnostic: batches rerun
    conflicts = writer.conflicts if writer is not None else 0
    await host.stop(grace_seconds=2.0)
    pipe.send({"arrived": pos.arrived, "conflicts": conflicts})


def intake(
    urls: list[str], kind: str, seconds: float, connections: int, workdir: Path
) -> LoadResult:
    """Drive every URL at once, each with its share of the connections: the summed rate."""
    share = max(1, connections // len(urls))

    async def drive() -> list[LoadResult]:
        return list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(
                        generate, kind, url, seconds, share, f"s{n}-{time.time_ns()}", workdir
                    )
                    for n, url in enumerate(urls)
                )
            )
        )

    results = asyncio.run(drive())
    return LoadResult(
        ok=sum(r.ok for r in results),
        other=sum(r.other for r in results),
        seconds=max(r.seconds for r in results),
        cpu_seconds=sum(r.cpu_seconds for r in results),
    )


@dataclass(frozen=True)
class CpuPerOrder:
    """Where the CPU of a load went, in microseconds per order accepted (or picked up), and how
    many of the machine's cores were busy with it on average."""

    workers: float
    database: float
    generators: float
    busy_cores: float

    @property
    def total(self) -> float:
        return self.workers + self.database + self.generators


@dataclass(frozen=True)
class CpuSpent:
    """CPU seconds the workers and the database spent in ``seconds`` of wall clock."""

    workers: float
    database: float
    seconds: float

    def per_order(
        self, orders: int, generator_seconds: float, idle: CpuSpent | None = None
    ) -> CpuPerOrder:
        """Per order, less what ``idle`` (the same processes without orders) spends in as long:
        the cost of the orders alone."""
        workers, database = self.workers, self.database
        if idle is not None:
            workers -= idle.workers / idle.seconds * self.seconds
            database -= idle.database / idle.seconds * self.seconds
        per_order = 1e6 / max(orders, 1)
        return CpuPerOrder(
            workers=workers * per_order,
            database=database * per_order,
            generators=generator_seconds * per_order,
            busy_cores=(self.workers + self.database + generator_seconds) / self.seconds,
        )


class CpuMeter:
    """CPU seconds of the workers and of the PostgreSQL server (its main process and every
    backend) between :meth:`start` and :meth:`stop` (read from /proc)."""

    def __init__(self, server: PostgresServer, children: list[Child]) -> None:
        self._workers = [c.ready["pid"] for c in children]
        self._postmaster = server.postmaster_pid()

    def _read(self) -> tuple[dict[int, float], dict[int, float]]:
        database = [self._postmaster, *children_of(self._postmaster)]
        return cpu_seconds_of(self._workers), cpu_seconds_of(database)

    def start(self) -> None:
        self._started = time.perf_counter()
        self._before = self._read()

    def stop(self) -> CpuSpent:
        seconds = time.perf_counter() - self._started
        after = self._read()
        workers, database = (
            sum(now - before.get(pid, 0.0) for pid, now in current.items())
            for before, current in zip(self._before, after, strict=True)
        )  # a backend that started meanwhile counts whole
        return CpuSpent(workers, database, seconds)


def median_split(splits: list[CpuPerOrder]) -> CpuPerOrder:
    """Each field's median over the samples."""
    medians = {
        f.name: statistics.median(getattr(split, f.name) for split in splits)
        for f in fields(CpuPerOrder)
    }
    return CpuPerOrder(**medians)


def workers(url: str, count: int, delivery: bool, log_level: str) -> list[Child]:
    return [spawn(worker_main, url, delivery, log_level) for _ in range(count)]


def stop_all(children: list[Child]) -> list[dict[str, Any]]:
    return [child.stop() for child in children]


def pickup_run(
    server: PostgresServer, seconds: float, log_level: str
) -> tuple[list[float], int, int, CpuPerOrder]:
    """Orders at ``LATENCY_RATE`` to two fresh workers with delivery on: each picked-up
    order's seconds from its 202 to the POS, how many were posted, how many store batches the
    workers ran again for conflicts, and the CPU per order while they were posted, less what the
    two idle workers spent in as long (measured for ``IDLE_SECONDS`` first)."""
    children = workers(server.new_database(), 2, True, log_level)
    urls = [f"http://127.0.0.1:{c.ready['port']}/v1/orders" for c in children]
    meter = CpuMeter(server, children)
    try:
        meter.start()
        time.sleep(IDLE_SECONDS)
        idle = meter.stop()
        meter.start()
        posting = time.process_time()
        accepted = asyncio.run(paced_orders(urls, max(1.0, seconds * 2)))
        cpu = meter.stop().per_order(len(accepted), time.process_time() - posting, idle)
        time.sleep(SETTLE_SECONDS)  # the last orders reach the POS (their time is noted)
    finally:
        reports = stop_all(children)
    arrived: dict[str, float] = {}
    for report in reports:
        for order_id, at in report.get("arrived", {}).items():
            arrived[order_id] = min(at, arrived.get(order_id, at))
    conflicts = sum(report.get("conflicts", 0) for report in reports)
    picked = [arrived[o] - accepted[o] for o in accepted if o in arrived]
    return picked, len(accepted), conflicts, cpu


def through_to_pos(
    server: PostgresServer,
    kind: str,
    seconds: float,
    connections: int,
    workdir: Path,
    log_level: str,
) -> tuple[float, float]:
    """One worker with delivery on, driven flat out: the orders that reached the POS per second
    of the load (a backlog does not count), and those it accepted meanwhile."""
    children = workers(server.new_database(), 1, True, log_level)
    url = f"http://127.0.0.1:{children[0].ready['port']}/v1/orders"
    try:
        started = time.time()
        result = intake([url], kind, seconds, connections, workdir)
        ended = time.time()
    finally:
        [report] = stop_all(children)
    reached = [at for at in report.get("arrived", {}).values() if started <= at <= ended]
    return len(reached) / (ended - started), result.ok / (ended - started)


def spin() -> None:
    """Keep a core busy (``--busy``: pickup on a machine with other work)."""
    while True:
        pass


async def paced_orders(urls: list[str], seconds: float) -> dict[str, float]:
    """Post orders at LATENCY_RATE a second to a random worker each; when each was accepted."""
    before, after = order_template()
    accepted: dict[str, float] = {}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    rng = random.Random(17)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def post(order_id: str) -> None:
            body = before + order_id.encode() + after
            async with session.post(rng.choice(urls), data=body) as response:
                await response.read()
                if response.status == 202:
                    accepted[order_id] = time.time()

        tasks = []
        started = time.perf_counter()
        for n in range(int(seconds * LATENCY_RATE)):
            await asyncio.sleep(max(0.0, started + n / LATENCY_RATE - time.perf_counter()))
            tasks.append(asyncio.create_task(post(f"lat-{n}")))
        await asyncio.gather(*tasks)
    return accepted


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per sample")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent requests per worker driven"
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help=f"auto = wrk if installed ({WRK_INSTALL}), else Python",
    )
    parser.add_argument("--log-level", default="ERROR", help="host log level (loguru)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument(
        "--busy", type=int, default=0, help="processes keeping a core busy during the pickup runs"
    )
    args = parser.parse_args()
    seconds, repeats = (1.0, 1) if args.quick else (args.seconds, args.repeat)
    kind = args.generator
    if kind == "auto":
        kind = "wrk" if shutil.which("wrk") else "python"
    elif kind == "wrk" and not shutil.which("wrk"):
        sys.exit(f"wrk is not installed: {WRK_INSTALL}")
    workdir = Path(tempfile.mkdtemp(prefix="scale-out-"))
    baseline = Measure("baseline handler", "orders/s")
    one = Measure("one worker, PostgreSQL", "orders/s")
    two = Measure("two workers, one PostgreSQL", "orders/s")
    two_split = Measure("two workers, the connections split", "orders/s")
    latencies: list[list[float]] = []
    conflicts: list[int] = []
    intake_cpu: dict[str, list[CpuPerOrder]] = {one.name: [], two.name: [], two_split.name: []}
    pickup_cpu: list[CpuPerOrder] = []
    delivering = Measure("one worker, delivery on: reached the POS", "orders/s")
    delivering_accepted: list[float] = []
    posted = 0
    with running_postgres(durable=True) as server:
        reference = spawn(reference_server_main, args.log_level)
        ref_url = f"http://127.0.0.1:{reference.ready['port']}/v1/orders"
        try:
            for _ in range(repeats):
                baseline.samples.append(
                    intake([ref_url], kind, seconds, args.connections, workdir).rate
                )
                for measure, count, connections in (
                    (one, 1, args.connections),
                    (two, 2, 2 * args.connections),
                    (two_split, 2, args.connections),
                ):
                    children = workers(server.new_database(), count, False, args.log_level)
                    urls = [f"http://127.0.0.1:{c.ready['port']}/v1/orders" for c in children]
                    meter = CpuMeter(server, children)
                    try:
                        meter.start()
                        result = intake(urls, kind, seconds, connections, workdir)
                        spent = meter.stop()
                        cpu = spent.per_order(result.ok, result.cpu_seconds)
                        intake_cpu[measure.name].append(cpu)
                    finally:
                        stop_all(children)
                    assert result.other == 0, f"{result.other} orders not accepted"
                    measure.samples.append(result.rate)
                reached, accepted = through_to_pos(
                    server, kind, seconds, args.connections, workdir, args.log_level
                )
                delivering.samples.append(reached)
                delivering_accepted.append(accepted)
        finally:
            reference.stop()
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
        for spinner in spinners:
            spinner.start()
        try:
            for _ in range(repeats):  # a run each, fresh workers on a fresh database
                run, count, conflicted, cpu = pickup_run(server, seconds, args.log_level)
                latencies.append(run)
                pickup_cpu.append(cpu)
                posted += count
                conflicts.append(conflicted)
        finally:
            for spinner in spinners:
                spinner.kill()
    shutil.rmtree(workdir, ignore_errors=True)
    cores = os.cpu_count() or 1
    ratio = one.median / baseline.median
    speedup = two.median / one.median
    speedup_split = two_split.median / one.median
    p50s = [statistics.median(run) * 1000 if run else float("nan") for run in latencies]
    p99s = [percentile(run, 0.99) * 1000 if run else float("nan") for run in latencies]
    p50, p99 = statistics.median(p50s), statistics.median(p99s)
    picked = sum(len(run) for run in latencies)
    print(
        table(
            [
                ["what", "median", "samples"],
                *[
                    [m.name, f"{m.median:,.0f} {m.unit}", ", ".join(f"{s:,.0f}" for s in m.samples)]
                    for m in (baseline, one, two, two_split, delivering)
                ],
            ]
        )
    )
    print(f"one worker / baseline: {ratio:.2f} (goal >= 0.5)")
    print(
        f"two workers / one: {speedup:.2f}x (goal >= 1.5x; limit: {cores} cores shared by the "
        f"workers, the {kind} generators and PostgreSQL); with the {args.connections} "
        f"connections split between them: {speedup_split:.2f}x"
    )
    one_cpu, two_cpu = median_split(intake_cpu[one.name]), median_split(intake_cpu[two.name])
    split_cpu = median_split(intake_cpu[two_split.name])
    print("CPU per durable order, median of the samples:")
    for name, split in (
        ("one worker", one_cpu),
        ("two workers", two_cpu),
        ("two workers, connections split", split_cpu),
    ):
        print(
            f"  {name}: workers {split.workers:.0f} us, PostgreSQL {split.database:.0f} us, "
            f"{kind} {split.generators:.0f} us; {split.busy_cores:.2f} of {cores} cores busy"
        )
    ceiling = cores / two_cpu.total * 1e6
    print(
        f"  ceiling of two workers here: {cores} cores / {two_cpu.total:.0f} us per order = "
        f"{ceiling:,.0f} orders/s, {ceiling / one.median:.2f}x one worker (which keeps "
        f"{one_cpu.busy_cores:.2f} cores busy)"
    )
    print(
        f"one worker with delivery on, flat out: {delivering.median:,.0f} orders/s reached the POS "
        f"while it accepted {statistics.median(delivering_accepted):,.0f}/s (one connection, "
        f"max_concurrency {MAX_CONCURRENCY}: deliveries wait on the store behind the intake)"
    )
    busy = f", {args.busy} other processes keeping cores busy" if args.busy else ""
    print(
        f"pickup at {LATENCY_RATE:.0f} orders/s across two workers{busy}, median of "
        f"{len(p50s)} run(s): p50 {p50:.1f} ms (runs: {', '.join(f'{v:.1f}' for v in p50s)}), "
        f"p99 {p99:.1f} ms (runs: {', '.join(f'{v:.0f}' for v in p99s)}), {picked} of "
        f"{posted} picked up (goal p50 < 20 ms); store batches run again for conflicts: "
        f"{', '.join(map(str, conflicts))}"
    )
    delivered_cpu = median_split(pickup_cpu)
    print(
        f"  CPU per order with delivery on at {LATENCY_RATE:.0f}/s, less the idle workers': "
        f"workers {delivered_cpu.workers:.0f} us, PostgreSQL {delivered_cpu.database:.0f} us "
        f"({delivered_cpu.busy_cores:.2f} of {cores} cores busy)"
    )
    path = write_results(
        "scale_out",
        {
            "generator": kind,
            "cores": cores,
            "baseline": baseline.samples,
            "one_worker": one.samples,
            "two_workers": two.samples,
            "two_workers_connections_split": two_split.samples,
            "one_worker_delivering": delivering.samples,
            "ratio_one_worker_to_baseline": ratio,
            "speedup_two_workers": speedup,
            "speedup_two_workers_connections_split": speedup_split,
            "pickup_ms": {"p50": p50, "p99": p99, "runs_p50": p50s, "orders": picked},
            "pickup_busy_processes": args.busy,
            "pickup_conflicts": conflicts,
            "cpu_us_per_order": {
                "one_worker": [asdict(c) for c in intake_cpu[one.name]],
                "two_workers": [asdict(c) for c in intake_cpu[two.name]],
                "two_workers_connections_split": [asdict(c) for c in intake_cpu[two_split.name]],
                "pickup": [asdict(c) for c in pickup_cpu],
                "one_worker_delivering_accepted": delivering_accepted,
                "two_worker_ceiling_orders_per_second": ceiling,
            },
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

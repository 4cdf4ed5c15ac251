"""What the benchmark scripts share: repeated timing, median and spread, results as JSON; the
processes they measure (CPU, memory, the demo POS, a cloud receiver); orders posted at a steady
rate and when each reached a status.

Machines here are shared and noisy, so a script measures its baseline in the same run and
reports ratios to it; absolute figures are printed beside them for context only.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

if TYPE_CHECKING:
    from posintegrator.model import Menu

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Measure:
    """Repeated measurements of one quantity (seconds, or a rate)."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the distance between the fastest and slowest sample, relative to the median."""
        if len(self.samples) < 2 or self.median == 0:
            return 0.0
        return (max(self.samples) - min(self.samples)) / 2 / self.median

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "spread": self.spread,
            "samples": self.samples,
        }


async def repeat(times: int, run: Callable[[], Awaitable[float]], measure: Measure) -> Measure:
    """Run ``run`` ``times`` times, recording what each run returns."""
    for _ in range(times):
        measure.samples.append(await run())
    return measure


def clock() -> float:
    """A monotonic clock in seconds."""
    return time.perf_counter()


def machine() -> dict[str, Any]:
    """What ran the benchmark."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Save ``payload`` as ``bench/results/<name>.json`` and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def table(rows: list[list[str]]) -> str:
    """A plain text table."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_dict(value: Any) -> dict[str, Any]:
    """A dataclass as a dict (for JSON)."""
    result: dict[str, Any] = asdict(value)
    return result


# --- processes: CPU, memory, the demo POS, the cloud receiver ---------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds_of(pids: Iterable[int]) -> dict[int, float]:
    """:func:`process_cpu_seconds` of each of ``pids`` still alive."""
    spent = {}
    for pid in pids:
        with suppress(FileNotFoundError, ProcessLookupError):
            spent[pid] = process_cpu_seconds(pid)
    return spent


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(FileNotFoundError, ProcessLookupError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory of a live process now, and its peak (VmRSS, VmHWM)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def idle_cpu(pids: dict[str, int], window: float, samples: int) -> dict[str, Measure]:
    """Each process's CPU share of one core over ``window`` seconds of wall clock, measured in
    ``samples`` sub-windows (side by side, so all see the same machine)."""
    measures = {name: Measure(f"{name} idle CPU", "share of one core") for name in pids}
    for _ in range(samples):
        before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        wall = time.perf_counter()
        time.sleep(window / samples)
        wall = time.perf_counter() - wall
        for name, pid in pids.items():
            measures[name].samples.append((process_cpu_seconds(pid) - before[name]) / wall)
    return measures


def idle_main(pipe: Connection) -> None:
    """An idle-process baseline: asyncio with the host's imports, doing nothing until told to
    stop."""
    import aiohttp  # noqa: F401

    import posintegrator.api.app
    import posintegrator.runtime.host
    import posintegrator.testing.harness  # noqa: F401

    async def idle() -> None:
        pipe.send({"pid": os.getpid()})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        pipe.send({})

    asyncio.run(idle())


def receiver_main(pipe: Connection, secret: str) -> None:
    """A cloud receiver (its own process) that records when each ACCEPTED event arrives.

    Commands on the pipe: ``count`` (ACCEPTED orders so far), ``counts`` (events by status or
    type), ``stop`` (answers with everything it recorded).
    """
    asyncio.run(_receiver(pipe, secret))


async def _receiver(pipe: Connection, secret: str) -> None:
    from posintegrator.cloud.receiver import CloudReceiver

    accepted: dict[str, float] = {}
    counts: dict[str, int] = {}

    def record(event: dict[str, Any]) -> None:
        status = str(event.get("status", event.get("type")))
        counts[status] = counts.get(status, 0) + 1
        if status == "ACCEPTED":
            accepted.setdefault(event["order_id"], time.time())

    receiver = CloudReceiver([secret], on_event=record)
    url = await receiver.start()
    pipe.send({"url": url, "pid": os.getpid()})
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, pipe.recv)) != "stop":
        pipe.send(len(accepted) if command == "count" else dict(counts))
    await receiver.stop()
    pipe.send({"accepted": accepted, "counts": counts, "rejected": receiver.rejected})


def start_simulator(
    data_dir: Path, webhook_url: str, secret: str, stage_seconds: float
) -> tuple[subprocess.Popen[str], str]:
    """The DemoPOS simulator as a subprocess (``python -m pos_demo.simulator``) on a free port,
    its webhooks to ``webhook_url``; returns the process and its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pos_demo.simulator",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--webhook-url",
            webhook_url,
            "--stage-seconds",
            str(stage_seconds),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEMOPOS_WEBHOOK_SECRET": secret},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


async def pos_created(pos_url: str) -> dict[str, float]:
    """Our order id -> when the demo POS created it (its ``created_at``, epoch seconds)."""
    async with aiohttp.ClientSession() as session, session.get(f"{pos_url}/orders") as response:
        body = orjson.loads(await response.read())
    orders = body["orders"] if isinstance(body, dict) else body
    return {
        o["reference"]: datetime.fromisoformat(o["created_at"].replace("Z", "+00:00")).timestamp()
        for o in orders
    }


# --- orders: posting at a steady rate, and when each reached a status --------------------------


async def post_orders(
    url: str, token: str, menu: Menu, rate: float, seconds: float, prefix: str
) -> tuple[dict[str, float], dict[str, float], int]:
    """Post ``rate * seconds`` orders open-loop (order i is sent at t0 + i/rate whether or not
    earlier ones were answered, so a slow host shows as latency); returns when each was sent,
    when each got its 202 (epoch seconds), and how many failed."""
    from posintegrator.testing import sample_order

    count = max(1, round(rate * seconds))
    template = sample_order(menu, "@@ID@@")
    before, after = orjson.dumps(template).split(b"@@ID@@")
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    failures = 0
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def post(order_id: str) -> None:
            nonlocal failures
            body = before + order_id.encode() + after
            sent[order_id] = time.time()
            try:
                async with session.post(f"{url}/v1/orders", data=body) as response:
                    await response.read()
                    if response.status == 202:
                        answered[order_id] = time.time()
                    else:
                        failures += 1
            except aiohttp.ClientError:
                failures += 1

        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        tasks = []
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(f"{prefix}-{i}")))
        await asyncio.gather(*tasks)
    return sent, answered, failures


def host_history(db: Path) -> dict[str, dict[str, float]]:
    """Per order, the epoch time of its first history entry of each status, from a host's
    SQLite store."""
    result: dict[str, dict[str, float]] = {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT order_id, status, at FROM status_history ORDER BY rowid"
        ).fetchall()
    for order_id, status, at in rows:
        result.setdefault(order_id, {}).setdefault(status, datetime.fromisoformat(at).timestamp())
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms_stats(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of durations in seconds, in milliseconds, and how many."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}
    return {
        "p50": percentile(values, 50) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": max(values) * 1000,
        "n": len(values),
    }

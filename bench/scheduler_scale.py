"""What one host costs while idle with 10,000 locations, and how its first menu syncs spread.

One host process (SQLite store, ``synchronous=FULL``) serves 100 connections x 100 locations of
a no-op POS plugin (the menu fetch returns a tiny menu at once, status polling returns nothing),
with menu sync every 5 minutes and status polling every 10 seconds, and reports to a cloud
receiver in its own process (every first sync publishes a menu version and a cloud event).

Measured:

* the first menu syncs: when each location's fetch started (the plugin records it), as a
  histogram per second, how long until every location had synced, and the start-up CPU;
* idle: once every first sync is done and its cloud event delivered, the host's CPU time over
  a wall-clock window (from /proc, in sub-windows of one polling period for a median and
  spread), and its resident memory.

Baseline, same run and same window: an idle asyncio process with the same imports.

    python bench/scheduler_scale.py [--connections N] [--locations M] [--window S] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    idle_cpu,
    idle_main,
    process_cpu_seconds,
    receiver_main,
    rss_bytes,
    table,
    write_results,
)
from intake import NoopPos, quiet_logs, spawn
from pydantic import SecretStr

from posintegrator.cloud.signatures import generate_secret

GIB = 1024**3


def host_main(
    pipe: Connection,
    data_dir: str,
    connections: int,
    locations: int,
    cloud_url: str,
    cloud_secret: str,
    log_level: str,
) -> None:
    asyncio.run(
        _host(pipe, Path(data_dir), connections, locations, cloud_url, cloud_secret, log_level)
    )


async def _host(
    pipe: Connection,
    data_dir: Path,
    connections: int,
    locations: int,
    cloud_url: str,
    cloud_secret: str,
    log_level: str,
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

    quiet_logs(log_level)
    started = time.monotonic()
    fetches: list[float] = []
    pos = NoopPos(on_fetch=lambda _location: fetches.append(time.monotonic() - started))
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0, token=SecretStr("bench-token")),
        store=StoreSettings(path=data_dir / "host.db"),  # synchronous=FULL, the default
        cloud=CloudSettings(webhook_url=cloud_url, webhook_secrets=[SecretStr(cloud_secret)]),
        connections=[
            ConnectionSettings(
                name=f"c{c:03d}",
                plugin="noop",
                locations=[f"c{c:03d}-l{n:03d}" for n in range(locations)],
                menu_sync_seconds=300.0,
                status_poll_seconds=10.0,
            )
            for c in range(connections)
        ],
    )
    host = Host(settings, plugins=PluginHost.from_objects({"noop": pos}))
    await host.start()
    pipe.send({"pid": os.getpid()})
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, pipe.recv)) != "stop":
        pipe.send(len(fetches) if command == "count" else list(fetches))
    await host.stop(grace_seconds=2.0)
    pipe.send({})


def histogram(offsets: list[float]) -> dict[int, int]:
    """Sync starts per whole second since the host started."""
    return dict(sorted(collections.Counter(int(t) for t in offsets).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--locations", type=int, default=100, help="per connection")
    parser.add_argument("--window", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--samples", type=int, default=3, help="sub-windows of the idle window")
    parser.add_argument("--startup-timeout", type=float, default=240.0)
    parser.add_argument("--log-level", default="ERROR", help="host log level (loguru)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.connections, args.locations, args.window = 2, 5, 1.5
    total = args.connections * args.locations
    secret = generate_secret()

    receiver = spawn(receiver_main, secret)
    idle = spawn(idle_main)
    with tempfile.TemporaryDirectory() as tmp:
        launched = time.perf_counter()
        host = spawn(
            host_main,
            tmp,
            args.connections,
            args.locations,
            receiver.ready["url"],
            secret,
            args.log_level,
        )
        pid = host.ready["pid"]
        # Start-up: until every location synced once and every menu event reached the cloud.
        synced = events = 0
        deadline = time.perf_counter() + args.startup_timeout
        while time.perf_counter() < deadline:
            host.pipe.send("count")
            synced = host.pipe.recv()
            receiver.pipe.send("counts")
            events = receiver.pipe.recv().get("menu.published", 0)
            if synced >= total and events >= total:
                break
            time.sleep(0.2)
        startup_seconds = time.perf_counter() - launched
        startup_cpu = process_cpu_seconds(pid)
        host.pipe.send("fetches")
        offsets: list[float] = host.pipe.recv()
        time.sleep(min(2.0, args.window / 3))  # let the last writes settle

        measured = idle_cpu({"host": pid, "baseline": idle.ready["pid"]}, args.window, args.samples)
        host_cpu, base_cpu = measured["host"], measured["baseline"]
        host_rss, host_peak = rss_bytes(pid)
        base_rss, _ = rss_bytes(idle.ready["pid"])
        host.stop()
        # A restart: every location has its menu in the store, so first syncs should spread
        # over the whole period instead of all firing at start-up.
        again = spawn(
            host_main,
            tmp,
            args.connections,
            args.locations,
            receiver.ready["url"],
            secret,
            args.log_level,
        )
        time.sleep(args.window)
        again.pipe.send("fetches")
        restart_offsets: list[float] = again.pipe.recv()
        again.stop()
    idle.stop()
    cloud = receiver.stop().get("counts", {})

    first = histogram(offsets)
    period = 300.0
    spread_end = max(offsets) if offsets else 0.0
    peak = max(first.values()) if first else 0
    even = total / period
    print(
        f"{args.connections} connections x {args.locations} locations = {total:,} locations; "
        f"menu sync every {period:g}s, status poll every 10s; idle window "
        f"{args.window:g}s in {args.samples} samples"
    )
    rows = [["process", "idle CPU (median)", "spread", "RSS", "ratio to baseline"]]
    rows.append(
        [
            "host",
            f"{host_cpu.median:.1%} of a core",
            f"±{host_cpu.spread:.0%}",
            f"{host_rss / 2**20:,.0f} MiB (peak {host_peak / 2**20:,.0f})",
            (
                f"CPU {host_cpu.median / base_cpu.median:,.0f}x"
                if base_cpu.median >= 0.001
                else f"CPU +{host_cpu.median - base_cpu.median:.1%} (baseline ~0)"
            )
            + f", RSS {host_rss / base_rss:.1f}x",
        ]
    )
    rows.append(
        [
            "baseline (idle asyncio, same imports)",
            f"{base_cpu.median:.1%} of a core",
            f"±{base_cpu.spread:.0%}",
            f"{base_rss / 2**20:,.0f} MiB",
            "1",
        ]
    )
    print(table(rows))
    print(
        f"first syncs: {len(offsets):,} of {total:,} locations, all started within "
        f"{spread_end:.1f}s of start-up (the first period is {period:g}s; an even spread is "
        f"{even:.0f}/s); peak {peak:,}/s = {peak / even:.0f}x even; start-up until all synced "
        f"and {events:,} menu events delivered: {startup_seconds:.1f}s, "
        f"{startup_cpu:.1f} CPU-s"
    )
    print("first sync starts per second: " + ", ".join(f"{s}s:{n}" for s, n in first.items()))
    restart = histogram(restart_offsets)
    restart_peak = max(restart.values()) if restart else 0
    expected = even * args.window
    print(
        f"after a restart (menus in the store): {len(restart_offsets):,} syncs in the first "
        f"{args.window:g}s (an even spread gives {expected:,.0f}); peak {restart_peak:,}/s = "
        f"{restart_peak / even:.1f}x even"
    )
    print(
        f"targets: idle CPU < 10% of one core: {host_cpu.median:.1%} "
        f"({'met' if host_cpu.median < 0.10 else 'MISSED'}); RSS < 1 GiB: "
        f"{host_rss / GIB:.2f} GiB ({'met' if host_rss < GIB else 'MISSED'})"
    )
    path = write_results(
        "scheduler_scale",
        {
            "connections": args.connections,
            "locations_per_connection": args.locations,
            "window_seconds": args.window,
            "host_idle_cpu": host_cpu.summary(),
            "baseline_idle_cpu": base_cpu.summary(),
            "host_rss_bytes": host_rss,
            "host_peak_rss_bytes": host_peak,
            "baseline_rss_bytes": base_rss,
            "first_syncs": len(offsets),
            "first_sync_last_start_seconds": spread_end,
            "first_sync_histogram": first,
            "first_sync_peak_per_second": peak,
            "startup_seconds": startup_seconds,
            "restart_syncs_in_window": len(restart_offsets),
            "restart_peak_per_second": restart_peak,
            "startup_cpu_seconds": startup_cpu,
            "cloud_events": cloud,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

"""What does a chain cost: one Square seller, 500 locations, a 20,000-variation catalog?

Four processes on loopback: the Square test double (``squaredouble``: the catalog of
bench/menu_translation.py, ``generate_catalog(20000)``, its first two locations named by
presence and price overrides, 498 more locations the catalog treats alike; request checks
against Square's spec on, response checks off for speed), one host (SQLite store at
``synchronous=FULL``, one Square connection serving every location, no periodic sync: each
round is started by a change notice, as Square's ``catalog.version.updated`` webhook starts
one), a cloud receiver that checks the signature of every event the host sends
(``posintegrator.cloud.receiver``), and this script, which polls the host's ``GET /healthz``
every 10 ms while rounds run.

Rounds, in this order:

1. first: nothing kept, nothing published: a full catalog read, every location published;
2. unchanged: an incremental read that finds nothing; nothing to publish;
3. one price change (a variation every location offers), made in the double: an incremental
   read, every location's menu published again;
4. full read: the kept catalog dropped (as the daily full read does), nothing changed.

For each: Square requests by endpoint (from the double), the host's CPU-seconds (its whole
process, every thread: ``time.process_time`` from the start of ``MenuSync.sync_locations``
until the cloud has every event of the round, one ``menu.published`` per location), of which
the resync (the plugin's ``pos_fetch_menus``: reading what changed, applying it to the kept
catalog, translating), wall time, and ``/healthz`` latency (p50, p99, max) while it ran.
Baseline, in the same run before the rounds: one location's translation of the same catalog
in this process (``orjson.loads`` of the ListCatalog pages + ``menu_from_catalog`` +
``check_menu``, as bench/menu_translation.py), median of three.

Goals (issue #13): a full round costs one catalog read and at most one location read per
location; a round's CPU < 5x one translation; an incremental resync after one price change
<= 3 requests and < 100 ms of CPU (reported for the resync, and for the whole round, which
also checks and publishes every location's menu); ``/healthz`` p99 < 50 ms, max < 250 ms
during the rounds.

    python bench/chain_scale.py [--locations N] [--variations V] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "pos_square" / "tests"))

import aiohttp
from common import Measure, percentile, receiver_main, rss_bytes, table, write_results
from intake import quiet_logs, spawn
from menu_translation import catalog_pages, translate

from posintegrator.cloud.signatures import generate_secret

CPU_RATIO_GOAL = 5.0
INCREMENTAL_REQUESTS_GOAL = 3
INCREMENTAL_CPU_GOAL = 0.100
P99_GOAL_MS = 50.0
MAX_GOAL_MS = 250.0
POLL_SECONDS = 0.010
ROUNDS = ("first", "unchanged", "one price change", "full read")


# --- the Square double, in its own process ---------------------------------------------------


def location_ids(count: int) -> list[str]:
    return [f"L{n:04d}CHAIN" for n in range(count)]


def double_main(pipe: Connection, variations: int, locations: int) -> None:
    asyncio.run(_double(pipe, variations, locations))


async def _double(pipe: Connection, variations: int, locations: int) -> None:
    from squaredouble import start_double
    from squaredouble.catalog import generate_catalog

    quiet_logs("ERROR")
    catalog = generate_catalog(variations, location_ids(locations))
    double = await start_double(catalog=catalog, validate_responses=False)
    state = double.double.state
    # A variation every location offers: present everywhere, no location override.
    everywhere = next(
        o["id"]
        for o in state.by_id.values()
        if o["type"] == "ITEM_VARIATION"
        and o.get("present_at_all_locations", True)
        and not o.get("absent_at_location_ids")
        and not o["item_variation_data"].get("location_overrides")
        and state.parent[o["id"]].get("present_at_all_locations", True)
        and not state.parent[o["id"]].get("absent_at_location_ids")
        and not o.get("is_deleted")
        and o["item_variation_data"].get("price_money")
    )
    pipe.send({"url": double.url, "token": double.token, "pid": os.getpid()})
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, pipe.recv)) != "stop":
        if command == "requests":
            pipe.send(dict(collections.Counter(path for _m, path, _s in double.double.requests)))
        elif command == "price":
            amount = state.by_id[everywhere]["item_variation_data"]["price_money"]["amount"] + 1
            double.double.set_price(everywhere, amount)
            pipe.send({"variation": everywhere, "amount": amount})
    await double.close()
    pipe.send({})


# --- the host, in its own process ------------------------------------------------------------


def host_main(
    pipe: Connection, data_dir: str, url: str, token: str, locations: int, cloud: tuple[str, str]
) -> None:
    asyncio.run(_host(pipe, Path(data_dir), url, token, locations, cloud))


async def _host(
    pipe: Connection,
    data_dir: Path,
    url: str,
    token: str,
    locations: int,
    cloud: tuple[str, str],
) -> None:
    from pydantic import SecretStr

    from posintegrator.menus.sync import MenuRejected
    from posintegrator.runtime.host import Host
    from posintegrator.settings import (
        ApiSettings,
        CloudSettings,
        ConnectionSettings,
        HostSettings,
        StoreSettings,
    )

    quiet_logs("ERROR")
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0, token=SecretStr("bench-token")),
        store=StoreSettings(path=data_dir / "host.db"),
        cloud=CloudSettings(webhook_url=cloud[0], webhook_secrets=[SecretStr(cloud[1])]),
        connections=[
            ConnectionSettings(
                name="chain",
                plugin="square",
                locations=location_ids(locations),
                menu_sync_seconds=1e9,
                menu_resync_debounce_seconds=0.05,
                status_source="polling",
                settings={
                    "base_url": url,
                    "access_token": token,
                    "request_timeout_seconds": 120.0,
                },
            )
        ],
    )
    host = Host(settings)
    await host.start()
    jobs = host.connections["chain"]
    rounds: list[dict[str, Any]] = []
    round_done = asyncio.Event()
    sync_locations = jobs.menusync.sync_locations

    plugin = jobs.connection.plugin
    fetch_menus = plugin.fetch_menus
    resync: dict[str, float] = {"cpu": 0.0}

    async def timed_fetch(ctx: Any, wanted: list[str]) -> Any:
        cpu = time.process_time()
        try:
            return await fetch_menus(ctx, wanted)
        finally:
            resync["cpu"] = time.process_time() - cpu

    async def timed(wanted: list[str]) -> Any:
        collecting["longest"] = 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        results = await sync_locations(wanted)
        # Until the cloud has the round's events (the store gives no notice when it has none
        # left to send: polled).
        while await host.store.outbox_pending():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        rounds.append(
            {
                "longest_gc_ms": collecting["longest"] * 1000,
                "cpu": time.process_time() - cpu,
                "resync_cpu": resync["cpu"],
                "wall": time.perf_counter() - wall,
                "published": sum(
                    1 for r in results.values() if r is not None and not isinstance(r, Exception)
                ),
                "rejected": sum(1 for r in results.values() if isinstance(r, MenuRejected)),
            }
        )
        round_done.set()
        return results

    # Before the scheduler's first round, which waits a moment after start.
    jobs.menusync.sync_locations = timed  # type: ignore[method-assign]
    plugin.fetch_menus = timed_fetch  # type: ignore[method-assign]
    # Diagnostics: the longest cyclic garbage collection of each round (it holds the GIL).
    collecting: dict[str, float] = {"since": 0.0, "longest": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting["since"] = time.perf_counter()
        else:
            took = time.perf_counter() - collecting["since"]
            collecting["longest"] = max(collecting["longest"], took)

    gc.callbacks.append(on_gc)
    pipe.send({"pid": os.getpid(), "api": host.url})
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, pipe.recv)) != "stop":
        seen = len(rounds)
        if command == "forget":
            from pos_square.kept_catalog import KEY

            await jobs.connection.ctx.state.delete(KEY)
            pipe.send({})
            continue
        if command == "round":
            round_done.clear()
            jobs.request_menu_sync(list(jobs.connection.settings.locations))
        if len(rounds) == seen:  # "first": the scheduler's own first round
            await round_done.wait()
        pipe.send(rounds[-1])
    await host.stop(grace_seconds=2.0)
    pipe.send({})


# --- polling /healthz ------------------------------------------------------------------------


class Poller:
    """GETs ``/healthz`` every 10 ms in a thread of its own; latencies in ms by round."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.current: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def take(self) -> list[float]:
        taken, self.current = self.current, []
        return taken

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                async with http.get(f"{self.api}/healthz") as reply:
                    await reply.read()
                elapsed = time.perf_counter() - started
                self.current.append(elapsed * 1000)
                await asyncio.sleep(max(0.0, POLL_SECONDS - elapsed))


def baseline_translation(variations: int, repeats: int) -> Measure:
    """One location's translation of the same catalog, here, in CPU-seconds."""
    pages, square_location, _ = catalog_pages(variations)
    translate(pages, square_location)  # warm-up
    measure = Measure("one location's translation", "s")
    for _ in range(repeats):
        gc.collect()
        started = time.process_time()
        translate(pages, square_location)
        measure.samples.append(time.process_time() - started)
    return measure


def requests_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        path: after[path] - before.get(path, 0)
        for path in after
        if after[path] != before.get(path, 0)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=500)
    parser.add_argument("--variations", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args()
    locations, variations = (5, 300) if args.quick else (args.locations, args.variations)

    baseline = baseline_translation(variations, 3)
    double = spawn(double_main, variations, locations, timeout=600)
    cloud_secret = generate_secret()
    cloud = spawn(receiver_main, cloud_secret)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        host = spawn(
            host_main,
            tmp,
            double.ready["url"],
            double.ready["token"],
            locations,
            (cloud.ready["url"], cloud_secret),
            timeout=120,
        )
        poller = Poller(host.ready["api"])
        poller.start()
        before: dict[str, int] = {}
        for name in ROUNDS:
            if name == "one price change":
                double.pipe.send("price")
                double.pipe.recv()
            if name == "full read":
                host.pipe.send("forget")
                host.pipe.recv()
            poller.take()
            host.pipe.send("first" if name == "first" else "round")
            measured = host.pipe.recv()
            latencies = poller.take()
            double.pipe.send("requests")
            after = double.pipe.recv()
            measured.update(
                round=name,
                requests=requests_between(before, after),
                healthz_ms={
                    "polls": len(latencies),
                    "p50": statistics.median(latencies) if latencies else 0.0,
                    "p99": percentile(latencies, 99) if latencies else 0.0,
                    "max": max(latencies, default=0.0),
                },
            )
            before = after
            rows.append(measured)
        poller.stop()
        rss, peak = rss_bytes(host.ready["pid"])
        host.stop(timeout=120)
    double.stop()
    heard = cloud.stop()

    base = baseline.median
    full_rounds = [r for r in rows if r["round"] in ("first", "full read")]
    incremental = next(r for r in rows if r["round"] == "one price change")
    catalog_pages_read = [r["requests"].get("/v2/catalog/search", 0) for r in full_rounds]
    location_reads = [
        sum(n for p, n in r["requests"].items() if p.startswith("/v2/locations")) for r in rows
    ]
    goals = {
        "full round: one catalog read, <= 1 location read per location": all(
            r["requests"].get("/v2/catalog/list", 0) == 0 for r in rows
        )
        and max(location_reads) <= locations,
        f"round CPU < {CPU_RATIO_GOAL:g}x one translation (steady rounds)": all(
            r["cpu"] / base < CPU_RATIO_GOAL for r in rows if r["round"] != "first"
        ),
        f"incremental: <= {INCREMENTAL_REQUESTS_GOAL} requests": sum(
            incremental["requests"].values()
        )
        <= INCREMENTAL_REQUESTS_GOAL,
        f"incremental resync (the plugin's read and translation): < "
        f"{INCREMENTAL_CPU_GOAL * 1000:g} ms CPU": incremental["resync_cpu"] < INCREMENTAL_CPU_GOAL,
        f"incremental round (the resync, then checking and publishing every location): < "
        f"{INCREMENTAL_CPU_GOAL * 1000:g} ms CPU": incremental["cpu"] < INCREMENTAL_CPU_GOAL,
        f"/healthz p99 < {P99_GOAL_MS:g} ms, max < {MAX_GOAL_MS:g} ms": all(
            r["healthz_ms"]["p99"] < P99_GOAL_MS and r["healthz_ms"]["max"] < MAX_GOAL_MS
            for r in rows
        ),
    }
    print(
        f"{locations} locations, {variations:,} variations; one location's translation "
        f"(baseline): {base:.3f} CPU-s (±{baseline.spread:.0%})"
    )
    table_rows = [
        [
            "round",
            "requests",
            "CPU-s",
            "x baseline",
            "resync CPU-s",
            "wall s",
            "published",
            "/healthz p50/p99/max ms",
            "longest gc ms",
        ]
    ]
    for r in rows:
        requests = ", ".join(
            f"{p.removeprefix('/v2/')} {n}" for p, n in sorted(r["requests"].items())
        )
        h = r["healthz_ms"]
        table_rows.append(
            [
                r["round"],
                requests or "none",
                f"{r['cpu']:.2f}",
                f"{r['cpu'] / base:.1f}",
                f"{r['resync_cpu']:.3f}",
                f"{r['wall']:.1f}",
                str(r["published"]),
                f"{h['p50']:.1f} / {h['p99']:.1f} / {h['max']:.0f} ({h['polls']} polls)",
                f"{r['longest_gc_ms']:.0f}",
            ]
        )
    print(table(table_rows))
    print(
        f"catalog pages per full read: {catalog_pages_read}; "
        f"host RSS {rss / 2**20:.0f} MiB (peak {peak / 2**20:.0f} MiB); "
        f"the cloud heard {heard['counts'].get('menu.published', 0)} menu.published events "
        f"(menus published: {sum(r['published'] for r in rows)}), refused {heard['rejected']}"
    )
    for goal, met in goals.items():
        print(f"goal: {goal}: {'met' if met else 'MISSED'}")
    path = write_results(
        "chain_scale",
        {
            "locations": locations,
            "variations": variations,
            "baseline_translation": baseline.summary(),
            "rounds": rows,
            "host_rss_bytes": rss,
            "host_peak_rss_bytes": peak,
            "goals": goals,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()

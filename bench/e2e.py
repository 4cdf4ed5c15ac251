"""Latency of an order end to end: POST, delivery to the demo POS, ACCEPTED webhook to the cloud.

Each step starts fresh: the DemoPOS simulator (``python -m pos_demo.simulator``, its own process,
its webhooks pointed back at the host), a host in its own process (SQLite store,
``synchronous=FULL``, the real ``demo`` plugin over HTTP), and a cloud receiver in a third process
(``posintegrator.cloud.receiver``: it verifies every signature and records when each ACCEPTED
event arrives). This process posts orders open-loop at a steady rate (order i is sent at
t0 + i/rate whether or not earlier ones were answered), so a slow host shows as latency.

Reported per rate:

* POST -> webhook: from just before the POST is sent to the receiver getting ACCEPTED (both
  ``time.time()`` on one machine);
* pickup: from the host storing the order (its RECEIVED history entry, i.e. the moment the 202 is
  decided) to the POS committing it (the POS order's ``created_at``, read back with
  ``GET /orders``; set inside the simulator's POST /orders handler after its validation,
  millisecond precision); and host-side pickup: RECEIVED -> SUBMITTING in the order's history
  (the delivery loop picking the order up, before any network);
* CPU share of the host and the simulator over the step (which one limits).

The simulator's kitchen is slowed (``--stage-seconds``, default 3600) so every order makes one
POS state change during a step; ``--stage-seconds 3`` adds the kitchen's webhooks (preparing,
ready, picked up) to the load. Rates step up from 100/s until p99 POST -> webhook exceeds
250 ms (or orders go missing). Baseline, same run: the round trip of one POST of the same body to
a trivial aiohttp handler in its own process (network + framework floor), sequentially.

    python bench/e2e.py [--seconds S] [--repeat R] [--rates 100,200,...] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from common import (
    Measure,
    host_history,
    ms_stats,
    pos_created,
    post_orders,
    process_cpu_seconds,
    receiver_main,
    start_simulator,
    table,
    write_results,
)
from intake import (
    TOKEN,
    Child,
    quiet_logs,
    reference_server_main,
    spawn,
    wait_for_stop,
)
from pydantic import SecretStr

from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import Menu
from posintegrator.testing import one_product_menu, sample_order

LOCATION = "downtown"
P99_LIMIT_MS = 250.0


# --- the processes -----------------------------------------------------------------------------


def host_main(
    pipe: Connection,
    data_dir: str,
    listen: socket.socket,
    pos_url: str,
    pos_secret: str,
    cloud_url: str,
    cloud_secret: str,
    log_level: str,
    max_concurrency: int,
) -> None:
    """A host serving the demo POS, with the real ``demo`` plugin."""
    asyncio.run(
        _host(
            pipe,
            Path(data_dir),
            listen,
            pos_url,
            pos_secret,
            cloud_url,
            cloud_secret,
            log_level,
            max_concurrency,
        )
    )


async def _host(
    pipe: Connection,
    data_dir: Path,
    listen: socket.socket,
    pos_url: str,
    pos_secret: str,
    cloud_url: str,
    cloud_secret: str,
    log_level: str,
    max_concurrency: int,
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
    settings = HostSettings(
        api=ApiSettings(host="127.0.0.1", token=SecretStr(TOKEN)),
        store=StoreSettings(path=data_dir / "host.db"),  # synchronous=FULL, the default
        cloud=CloudSettings(webhook_url=cloud_url, webhook_secrets=[SecretStr(cloud_secret)]),
        connections=[
            ConnectionSettings(
                name="demo",
                plugin="demo",
                locations=[LOCATION],
                settings={"base_url": pos_url, "webhook_secret": pos_secret},
                max_concurrency=max_concurrency,
            )
        ],
    )
    host = Host(settings, listen_socket=listen)
    await host.start()
    await sync_all_menus(host)
    pipe.send({"port": host.port, "pid": os.getpid()})
    await wait_for_stop(pipe)
    await host.stop(grace_seconds=2.0)
    pipe.send({})


# --- one step ----------------------------------------------------------------------------------


async def step(rate: float, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """One rate, fresh processes; the latencies and CPU shares it measured."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pos_secret = secrets.token_hex(16)
        cloud_secret = generate_secret()
        # The host's socket is bound here and handed over, so the POS can be told where to send
        # its webhooks before the host runs (no port is guessed).
        listen = socket.socket()
        listen.bind(("127.0.0.1", 0))
        host_port = listen.getsockname()[1]
        sim, pos_url = start_simulator(
            work / "pos",
            f"http://127.0.0.1:{host_port}/pos/demo/webhook",
            pos_secret,
            args.stage_seconds,
        )
        receiver: Child | None = None
        host: Child | None = None
        try:
            receiver = spawn(receiver_main, cloud_secret)
            (work / "host").mkdir()
            host = spawn(
                host_main,
                str(work / "host"),
                listen,
                pos_url,
                pos_secret,
                receiver.ready["url"],
                cloud_secret,
                args.log_level,
                args.max_concurrency,
            )
            url = f"http://127.0.0.1:{host.ready['port']}"
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s,
                s.get(f"{url}/v1/locations/{LOCATION}/menu") as r,
            ):
                menu = Menu.model_validate_json(await r.read())
            pids = {"host": host.ready["pid"], "pos": sim.pid}
            cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            wall = time.perf_counter()
            sent, answered, failures = await post_orders(
                url, TOKEN, menu, rate, seconds, f"e{rate:g}"
            )
            # Let the last orders through: until every ACCEPTED arrived, at most 10 s.
            deadline = time.time() + 10
            while time.time() < deadline:
                receiver.pipe.send("count")
                if receiver.pipe.recv() >= len(answered):
                    break
                await asyncio.sleep(0.1)
            wall = time.perf_counter() - wall
            cpu = {
                name: (process_cpu_seconds(pid) - cpu_before[name]) / wall
                for name, pid in pids.items()
            }
            created = await pos_created(pos_url)
        finally:
            if host is not None:
                host.stop()
            report = receiver.stop() if receiver is not None else {}
            sim.terminate()
            sim.wait(10)
            listen.close()
        history = host_history(work / "host" / "host.db")
    accepted: dict[str, float] = report.get("accepted", {})
    to_webhook = [accepted[o] - sent[o] for o in sent if o in accepted]
    missing = len(sent) - len(to_webhook)
    pickup_pos = [
        created[o] - history[o]["RECEIVED"] for o in sent if o in created and o in history
    ]
    pickup_host = [
        h["SUBMITTING"] - h["RECEIVED"]
        for o in sent
        if "SUBMITTING" in (h := history.get(o, {})) and "RECEIVED" in h
    ]
    submit = [
        h["ACCEPTED"] - h["SUBMITTING"]
        for o in sent
        if "ACCEPTED" in (h := history.get(o, {})) and "SUBMITTING" in h
    ]
    to_202 = [answered[o] - sent[o] for o in answered]
    webhook = ms_stats(to_webhook)
    if missing:
        webhook["p99"] = float("inf") if missing > len(sent) / 100 else webhook["p99"]
    return {
        "rate": rate,
        "orders": len(sent),
        "failures": failures,
        "missing_webhooks": missing,
        "post_to_webhook_ms": webhook,
        "post_to_202_ms": ms_stats(to_202),
        "pickup_pos_ms": ms_stats(pickup_pos),
        "pickup_host_ms": ms_stats(pickup_host),
        "submit_ms": ms_stats(submit),
        "cpu_share": cpu,
        "cloud_events": report.get("counts", {}),
    }


async def round_trip_baseline(url: str, body: bytes, count: int) -> dict[str, float]:
    """p50/p99 of ``count`` sequential POSTs of ``body`` to a trivial handler."""
    times: list[float] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
            times.append(time.perf_counter() - started)
    return ms_stats(times[5:])


def fmt(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="load per step")
    parser.add_argument("--repeat", type=int, default=3, help="repeats at the first rate")
    parser.add_argument("--rates", default="100,125,150,175,200,250,300,400,500")
    parser.add_argument("--stage-seconds", type=float, default=3600.0, help="POS kitchen stage")
    parser.add_argument("--log-level", default="ERROR", help="host log level (loguru)")
    parser.add_argument(
        "--max-concurrency", type=int, default=4, help="the connection's POS calls in flight"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    seconds, repeats, probes = (args.seconds, args.repeat, 300)
    if args.quick:
        seconds, repeats, probes, rates = 1.0, 1, 30, rates[:1]

    reference = spawn(reference_server_main, args.log_level)
    ref_url = f"http://127.0.0.1:{reference.ready['port']}/trivial/v1/orders"
    body = orjson.dumps(sample_order(one_product_menu(LOCATION), "baseline"))
    baseline = Measure("trivial POST round trip p50", "ms")
    baseline_p99 = Measure("trivial POST round trip p99", "ms")
    first = Measure(f"POST->webhook p50 at {rates[0]:g}/s", "ms")
    first_p99 = Measure(f"POST->webhook p99 at {rates[0]:g}/s", "ms")
    pickup = Measure(f"pickup (RECEIVED->POS created_at) p50 at {rates[0]:g}/s", "ms")
    steps: list[dict[str, Any]] = []
    for _ in range(repeats):
        rt = await round_trip_baseline(ref_url, body, probes)
        baseline.samples.append(rt["p50"])
        baseline_p99.samples.append(rt["p99"])
        result = await step(rates[0], seconds, args)
        steps.append(result)
        first.samples.append(result["post_to_webhook_ms"]["p50"])
        first_p99.samples.append(result["post_to_webhook_ms"]["p99"])
        pickup.samples.append(result["pickup_pos_ms"]["p50"])
    reference.stop()
    best: float | None = None
    for rate in rates:
        if rate != rates[0]:
            steps.append(await step(rate, seconds, args))
        latest = [s for s in steps if s["rate"] == rate]
        p99 = statistics.median(s["post_to_webhook_ms"]["p99"] for s in latest)
        if p99 > P99_LIMIT_MS or any(s["failures"] for s in latest):
            break
        best = rate

    floor = baseline.median
    print(
        f"orders -> demo POS -> ACCEPTED webhook, {seconds:g}s per step, "
        f"POS stage {args.stage_seconds:g}s, max_concurrency {args.max_concurrency}; "
        "baseline: trivial POST round trip "
        f"p50 {floor:.2f} ms (±{baseline.spread:.0%}), p99 {baseline_p99.median:.2f} ms"
    )
    rows = [
        [
            "rate/s",
            "orders",
            "POST->webhook p50",
            "p99",
            "p50/baseline",
            "POST->202 p50",
            "pickup POS p50",
            "p99",
            "pickup host p50",
            "p99",
            "submit p50",
            "p99",
            "CPU host",
            "CPU POS",
        ]
    ]
    for s in steps:
        w, a = s["post_to_webhook_ms"], s["post_to_202_ms"]
        pp, ph = s["pickup_pos_ms"], s["pickup_host_ms"]
        rows.append(
            [
                f"{s['rate']:g}",
                f"{s['orders']}"
                + (f" ({s['missing_webhooks']} missing)" if s["missing_webhooks"] else ""),
                f"{fmt(w['p50'])} ms",
                f"{fmt(w['p99'])} ms",
                f"{w['p50'] / floor:.0f}x",
                f"{fmt(a['p50'])} ms",
                f"{fmt(pp['p50'])} ms",
                f"{fmt(pp['p99'])} ms",
                f"{fmt(ph['p50'])} ms",
                f"{fmt(ph['p99'])} ms",
                f"{fmt(s['submit_ms']['p50'])} ms",
                f"{fmt(s['submit_ms']['p99'])} ms",
                f"{s['cpu_share']['host']:.0%}",
                f"{s['cpu_share']['pos']:.0%}",
            ]
        )
    print(table(rows))
    print(
        f"at {rates[0]:g}/s over {repeats} run(s): POST->webhook p50 {first.median:.1f} ms "
        f"(±{first.spread:.0%}), p99 {first_p99.median:.1f} ms (±{first_p99.spread:.0%}); "
        f"pickup p50 {pickup.median:.1f} ms (±{pickup.spread:.0%})"
    )
    print(
        f"targets at {rates[0]:g}/s: pickup p50 < 10 ms: "
        f"{'met' if pickup.median < 10 else 'MISSED'}; POST->webhook p99 < 100 ms: "
        f"{'met' if first_p99.median < 100 else 'MISSED'}"
    )
    print(
        f"highest rate with POST->webhook p99 < {P99_LIMIT_MS:g} ms: "
        + (f"{best:g}/s" if best is not None else f"none (not even {rates[0]:g}/s)")
        + ("" if best != rates[-1] else " (the highest rate tried)")
    )
    path = write_results(
        "e2e",
        {
            "seconds": seconds,
            "repeat": repeats,
            "stage_seconds": args.stage_seconds,
            "max_concurrency": args.max_concurrency,
            "baseline": {"p50": baseline.summary(), "p99": baseline_p99.summary()},
            "first_rate": {
                "post_to_webhook_p50": first.summary(),
                "post_to_webhook_p99": first_p99.summary(),
                "pickup_p50": pickup.summary(),
            },
            "highest_rate_p99_under_250ms": best,
            "steps": steps,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    asyncio.run(main())

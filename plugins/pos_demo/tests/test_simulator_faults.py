"""The DemoPOS fault switches: API faults (from config, HTTP and the CLI) and webhook faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from test_simulator import order_body, start_simulator_cli

from pos_demo.simulator import RunningSimulator
from posintegrator.testing.faults import FaultPlan

SimulatorFactory = Callable[..., Awaitable[RunningSimulator]]


async def post_order(sim: RunningSimulator, key: str, reference: str) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.post(
            f"{sim.url}/orders",
            data=orjson.dumps(order_body(reference)),
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        ) as response,
    ):
        return response.status


async def references(sim: RunningSimulator) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/orders") as response:
        return [o["reference"] for o in (await response.json())["orders"]]


async def test_commit_then_drop_keeps_the_order(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(faults=FaultPlan(commit_then_drop=1.0, paths=("/orders",)))
    with pytest.raises(aiohttp.ClientError):
        await post_order(sim, "k1", "r1")
    assert await references(sim) == ["r1"]
    sim.config.faults.commit_then_drop = 0.0
    assert await post_order(sim, "k1", "r1") == 200, "the retry with the same key finds it"
    assert await references(sim) == ["r1"]
    assert sim.core.faults.counts["commit_then_drop"] == 1


async def test_faults_switch_over_http(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory()
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{sim.url}/_faults", json={"fail_5xx": 1.0}) as response,
    ):
        assert response.status == 200
    assert await post_order(sim, "k2", "r2") == 503
    assert await references(sim) == []


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(orjson.loads(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", seen
    await runner.cleanup()


async def test_webhooks_duplicated_and_reordered(
    simulator_factory: SimulatorFactory, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = receiver
    sim = await simulator_factory(
        stage_seconds=0.05,
        webhook_url=url,
        webhook_duplicate_rate=1.0,
        webhook_reorder_rate=1.0,
        fault_seed=7,
    )
    assert await post_order(sim, "k3", "r3") == 201
    async with asyncio.timeout(20):  # every state delivered at least once
        while True:
            if len({e["seq"] for e in seen}) == 4:
                break
            await asyncio.sleep(0.05)
    await sim.wait_webhooks_idle()
    seqs = [e["seq"] for e in seen]
    assert sorted(set(seqs)) == [1, 2, 3, 4], "every state arrives"
    assert len(seqs) > 4 and sim.core.webhooks.duplicated > 0
    assert seqs != sorted(seqs) and sim.core.webhooks.reordered > 0


async def test_cli_takes_fault_switches(tmp_path: Any) -> None:
    proc, url = await start_simulator_cli("--data-dir", str(tmp_path), "--fail-5xx", "1")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/orders", json=order_body("r4"), headers={"Idempotency-Key": "k4"}
            ) as response:
                assert response.status == 503
            async with http.get(f"{url}/_faults") as response:
                assert (await response.json())["counts"] == {"fail_5xx": 1}
    finally:
        proc.terminate()
        await proc.wait()

"""The host as a real process: kill -9 loses no accepted order and submits none twice, and
SIGTERM stops it gracefully within 10 seconds."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from helpers import (
    POS_API_KEY,
    POS_WEBHOOK_SECRET,
    eventually,
    pos_orders,
    write_host_config,
)
from hostprocess import ServeProcess

from pos_demo.simulator import RunningSimulator, SimulatorConfig, start_simulator
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import Menu
from posintegrator.testing import sample_order

TOKEN = "process-test-token"
CLOUD_KEY = generate_secret()


@asynccontextmanager
async def deployment(
    tmp_path: Path, simulator: RunningSimulator, status_source: str = "webhook"
) -> AsyncIterator[tuple[ServeProcess, CloudReceiver]]:
    receiver = CloudReceiver([CLOUD_KEY])
    await receiver.start()
    config = tmp_path / "host.toml"
    write_host_config(
        config,
        port=0,
        token=TOKEN,
        store=tmp_path / "host.db",
        simulator_url=simulator.url,
        cloud_url=receiver.url,
        cloud_key=CLOUD_KEY,
        status_source=status_source,
    )

    def point_webhooks(url: str) -> None:
        if status_source == "webhook":
            simulator.set_webhook(f"{url}/pos/demo/webhook", POS_WEBHOOK_SECRET)

    serve = ServeProcess(config, tmp_path / "host.log", TOKEN, on_started=point_webhooks)
    try:
        yield serve, receiver
    finally:
        await serve.stop()
        await receiver.stop()


async def demo_menu(simulator: RunningSimulator) -> Menu:
    from pos_demo.translate import menu_from_pos

    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as session,
        session.get(f"{simulator.url}/menu", params={"location": "downtown"}) as response,
    ):
        return menu_from_pos(await response.json(), "downtown")


async def _holds_some(simulator: RunningSimulator) -> bool:
    return len(await pos_orders(simulator)) > 0


async def wait_until_final(
    serve: ServeProcess, order_ids: list[str], timeout: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        for order_id in order_ids:
            status, view = await serve.call("GET", f"/v1/orders/{order_id}")
            assert status == 200, (order_id, view)
            statuses[order_id] = view["status"]
        if all(s == "COMPLETED" for s in statuses.values()):
            return statuses
        await asyncio.sleep(0.2)
    raise AssertionError(f"not all orders completed: {statuses}\n{serve.log.read_text()[-3000:]}")


@pytest.fixture
async def slow_pos(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    """A POS that commits an order, then takes 2 s to answer: the window a kill or a SIGTERM
    lands in, long enough that a slow machine cannot miss it."""
    sim = await start_simulator(
        SimulatorConfig(
            data_dir=tmp_path / "pos",
            api_key=POS_API_KEY,
            stage_seconds=0.1,
            submit_delay_seconds=2.0,
        )
    )
    yield sim
    await sim.close()


async def test_kill_9_after_202_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, slow_pos: RunningSimulator
) -> None:
    menu = await demo_menu(slow_pos)
    order_ids = [f"crash-{i}" for i in range(8)]
    # Until the kill the POS answers no submission (10 s after taking it): the kill lands
    # before the first answers however late the test sees the first orders arrive.
    slow_pos.config.submit_delay_seconds = 10.0
    # Status by polling only, so an order whose submission was cut short can only be confirmed
    # by looking it up (a POS webhook could otherwise confirm it first).
    async with deployment(tmp_path, slow_pos, status_source="polling") as (serve, receiver):
        await serve.start()
        for order_id in order_ids:
            status, body = await serve.call("POST", "/v1/orders", sample_order(menu, order_id))
            assert status == 202, body
        # Kill once the POS has committed the first submissions, before it answers them.
        await eventually(lambda: _holds_some(slow_pos), timeout=20)
        await serve.kill()
        in_pos_at_kill = len(await pos_orders(slow_pos))
        assert 0 < in_pos_at_kill < len(order_ids), "the kill must land mid-delivery"
        slow_pos.config.submit_delay_seconds = 0.0

        await serve.start()
        await wait_until_final(serve, order_ids, timeout=60)
        for order_id in order_ids:
            assert len(await pos_orders(slow_pos, order_id)) == 1, order_id
        found_by_lookup = interrupted = 0
        for order_id in order_ids:
            _, view = await serve.call("GET", f"/v1/orders/{order_id}")
            found_by_lookup += any(h["source"].endswith(":lookup") for h in view["history"])
            interrupted += any(a["outcome"] == "interrupted" for a in view["delivery_attempts"])
        # What the POS held at the kill was found by lookup, never sent again; a request the
        # POS had received but not yet handled when it was counted may add to it. Every order
        # found was one whose attempt the kill cut, and those are on record.
        assert in_pos_at_kill <= found_by_lookup <= interrupted

        # The cloud hears every order's whole story, in sequence (the last events may still be
        # on their way when the host shows the orders completed).
        async def cloud_heard_all() -> bool:
            return all(receiver.statuses(o)[-1:] == ["COMPLETED"] for o in order_ids)

        await eventually(cloud_heard_all, timeout=30)
        for order_id in order_ids:
            assert receiver.statuses(order_id)[0] == "RECEIVED"


async def test_sigterm_stops_gracefully_within_10_seconds(
    tmp_path: Path, slow_pos: RunningSimulator
) -> None:
    menu = await demo_menu(slow_pos)
    async with deployment(tmp_path, slow_pos) as (serve, _receiver):
        await serve.start()
        status, _ = await serve.call("POST", "/v1/orders", sample_order(menu, "term-1"))
        assert status == 202
        await eventually(lambda: _holds_some(slow_pos), timeout=20)  # the submission is in flight
        assert serve.proc is not None
        started = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        serve.proc.send_signal(signal.SIGTERM)  # impatience must not cut the drain short
        code = await asyncio.wait_for(serve.proc.wait(), 10)
        assert code == 0, serve.log.read_text()
        assert time.monotonic() - started < 10
        assert "posintegrator stopped" in serve.log.read_text()
        # The in-flight submission was allowed to finish: the order is in the POS once.
        assert len(await pos_orders(slow_pos, "term-1")) == 1
        await serve.start()
        await wait_until_final(serve, ["term-1"], timeout=60)
        assert len(await pos_orders(slow_pos, "term-1")) == 1
        # It finished before the host stopped: one attempt, answered, and nothing to look up
        # after the restart.
        _, view = await serve.call("GET", "/v1/orders/term-1")
        [attempt] = view["delivery_attempts"]
        assert attempt["outcome"] not in ("interrupted", "unknown") and attempt["error"] is None
        assert not any(h["source"].endswith(":lookup") for h in view["history"])

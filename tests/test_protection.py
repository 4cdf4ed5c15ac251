"""Per-connection protection: deadlines, circuit breaker, auth pause with alert, rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fakepos import ScriptedPos, commit_then

from posintegrator.errors import AmbiguousError, AuthError, RetryableError
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import Capabilities
from posintegrator.model import OrderStatus, utcnow
from posintegrator.plugins import PluginHost
from posintegrator.runtime.backoff import Backoff
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order


class AlertLog:
    """An extension plugin that records connection alerts."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, str]] = []

    @hookimpl
    def posintegrator_connection_alert(self, connection: str, kind: str, message: str) -> None:
        self.alerts.append((connection, kind))


@asynccontextmanager
async def host_with(
    tmp_path: Path, fake: ScriptedPos, alerts: AlertLog | None = None, **connection: Any
) -> AsyncIterator[HostHarness]:
    settings = ConnectionSettings(
        name="fake",
        plugin="fake",
        locations=["loc"],
        status_source="polling",
        status_poll_seconds=3600,
        menu_sync_seconds=3600,
        **connection,
    )
    plugins = {"fake": fake} | ({"alerts": alerts} if alerts else {})
    async with running_host(tmp_path, [settings], plugins=PluginHost.from_objects(plugins)) as h:
        yield h


async def circuit_opened(harness: HostHarness) -> dict[str, Any]:
    """The connection as the API shows it, once its circuit is open."""
    deadline = time.monotonic() + 20
    while True:
        _, body = await harness.request("GET", "/v1/connections")
        connection: dict[str, Any] = body["connections"][0]
        if connection["circuit"] == "open":
            return connection
        assert time.monotonic() < deadline, f"the circuit never opened: {connection}"
        await asyncio.sleep(0.05)


async def quiet_until_probe(connection: dict[str, Any]) -> None:
    """Wait until just before the open circuit lets its probe through (``probe_at``).

    Until then the host must call nothing; the window comes from the host's own state, so a
    slow machine can only shorten it, never make a legitimate probe look like a violation.
    """
    probe_at = datetime.fromisoformat(connection["probe_at"])
    await asyncio.sleep(max(0.0, (probe_at - utcnow()).total_seconds() - 0.2))


def order_due_in(order_id: str, seconds: float) -> dict[str, Any]:
    order = sample_order(one_product_menu("loc"), order_id)
    order["pickup_time"] = (utcnow() + timedelta(seconds=seconds)).isoformat()
    return order


async def test_deadline_passes_then_failed_and_the_cloud_is_told(tmp_path: Path) -> None:
    fake = ScriptedPos(outcomes=[RetryableError("503 maintenance")] * 50)
    async with host_with(tmp_path, fake) as harness:
        status, _ = await harness.post_order(order_due_in("late-1", 4.0))
        assert status == 202
        view = await harness.wait_for_status("late-1", {OrderStatus.FAILED}, timeout=30)
        assert "before its deadline" in view["status_reason"]
        assert "503 maintenance" in view["status_reason"]
        events = await harness.wait_for_events(
            lambda evs: "FAILED" in [e.get("status") for e in evs if e.get("order_id") == "late-1"]
        )
        [failed] = [e for e in events if e.get("status") == "FAILED"]
        assert failed["reason"] == view["status_reason"]


async def test_past_deadline_a_maybe_sent_order_is_looked_up_not_failed(tmp_path: Path) -> None:
    fake = ScriptedPos(outcomes=[commit_then(AmbiguousError("timeout"))])
    fake.lookup_errors = [RetryableError("POS busy")] * 3
    async with host_with(tmp_path, fake) as harness:
        await harness.post_order(order_due_in("late-2", 4.0))
        view = await harness.wait_for_status(
            "late-2", {OrderStatus.ACCEPTED, OrderStatus.NEEDS_ATTENTION}, timeout=30
        )
        # The POS had it all along: it must never be reported FAILED (the cloud would refund
        # an order the kitchen is cooking).
        assert "FAILED" not in [h["status"] for h in view["history"]]
        assert len(fake.submissions) == 1


async def test_past_deadline_without_lookup_parks_for_a_person(tmp_path: Path) -> None:
    fake = ScriptedPos(
        capabilities=Capabilities(
            menu=True,
            orders=True,
            order_lookup=False,
            idempotent_submit=True,
            status_webhooks=False,
            status_polling=True,
        ),
        outcomes=[AmbiguousError("timeout")] * 50,
    )
    async with host_with(tmp_path, fake) as harness:
        await harness.post_order(order_due_in("late-3", 4.0))
        view = await harness.wait_for_status("late-3", {OrderStatus.NEEDS_ATTENTION}, timeout=30)
        assert "may have it" in view["status_reason"]


async def test_circuit_opens_after_failures_then_a_probe_closes_it(tmp_path: Path) -> None:
    fake = ScriptedPos(outcomes=[RetryableError("connection refused")] * 3)
    alerts = AlertLog()
    async with host_with(tmp_path, fake, alerts, failure_threshold=3) as harness:
        # A first cool-down of 2 to 4 s (instead of 1 to 2 s), so that the open circuit is
        # there to be seen even on a slow machine.
        health = harness.host.connections["fake"].connection.health
        health.cooldown = Backoff(base=4.0, cap=60.0)
        for index in range(3):
            await harness.post_order(sample_order(one_product_menu("loc"), f"cb-{index}"))
        connection = await circuit_opened(harness)
        assert connection["health"] == "failing"
        calls_when_opened = len(fake.submissions)
        assert calls_when_opened == 3
        assert alerts.alerts == [("fake", "circuit_open")]
        await quiet_until_probe(connection)
        assert len(fake.submissions) == calls_when_opened, "no calls while the circuit is open"
        for index in range(3):
            await harness.wait_for_status(f"cb-{index}", {OrderStatus.ACCEPTED}, timeout=30)
        _, body = await harness.request("GET", "/v1/connections")
        assert body["connections"][0]["circuit"] == "closed"
        assert body["connections"][0]["health"] == "ok"


async def test_auth_failure_pauses_calls_and_alerts_once(tmp_path: Path) -> None:
    fake = ScriptedPos(outcomes=[AuthError("401 token revoked")] * 2)
    alerts = AlertLog()
    async with host_with(tmp_path, fake, alerts) as harness:
        await harness.post_order(sample_order(one_product_menu("loc"), "auth-1"))
        await harness.post_order(sample_order(one_product_menu("loc"), "auth-2"))
        connection = await circuit_opened(harness)
        assert connection["health"] == "auth_failed"
        calls_when_opened = len(fake.submissions)
        assert calls_when_opened <= 2
        # The orders' retries (due after 0.5 to 2 s) find the circuit open: no call goes out.
        await quiet_until_probe(connection)
        assert len(fake.submissions) == calls_when_opened, "an auth failure stops calls at once"
        for order_id in ("auth-1", "auth-2"):
            await harness.wait_for_status(order_id, {OrderStatus.ACCEPTED}, timeout=30)
        assert alerts.alerts.count(("fake", "auth_failed")) == 1, "one alert for the outage"


async def test_rate_limit_spaces_calls(tmp_path: Path) -> None:
    fake = ScriptedPos()
    async with host_with(tmp_path, fake, rate_limit_per_second=5, max_concurrency=8) as harness:
        started = time.monotonic()
        ids = [f"rl-{i}" for i in range(10)]
        await asyncio.gather(
            *(harness.post_order(sample_order(one_product_menu("loc"), i)) for i in ids)
        )
        for order_id in ids:
            await harness.wait_for_status(order_id, {OrderStatus.ACCEPTED}, timeout=30)
        # 5 calls may go at once (the bucket starts full), the other 5 at 5 per second.
        assert time.monotonic() - started >= 0.9

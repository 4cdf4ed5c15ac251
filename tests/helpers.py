"""Helpers shared by the host tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pos_demo.simulator import RunningSimulator
from posintegrator.cloud.receiver import Delivery
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, running_host

POS_API_KEY = "test-pos-key"
POS_WEBHOOK_SECRET = "test-pos-webhook-secret"


@dataclass(frozen=True)
class SignedDelivery:
    """A webhook the host really sent to its cloud, signed with two secrets (see the
    ``signed_delivery`` fixture)."""

    secrets: tuple[str, str]
    delivery: Delivery


def demo_connection(simulator: RunningSimulator, **overrides: Any) -> ConnectionSettings:
    """A connection to the simulator serving both demo locations."""
    values: dict[str, Any] = {
        "name": "demo",
        "plugin": "demo",
        "locations": ["downtown", "airport"],
        "settings": {
            "base_url": simulator.url,
            "api_key": POS_API_KEY,
            "webhook_secret": POS_WEBHOOK_SECRET,
        },
        "status_source": "webhook",
        "menu_sync_seconds": 3600,
    }
    values.update(overrides)
    return ConnectionSettings(**values)


async def pos_orders(simulator: RunningSimulator, reference: str | None = None) -> list[Any]:
    """The orders the simulator holds (optionally only those with our reference)."""
    params = {"reference": reference} if reference else {}
    async with (
        aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as session,
        session.get(f"{simulator.url}/orders", params=params) as response,
    ):
        response.raise_for_status()
        orders: list[Any] = (await response.json())["orders"]
        return orders


def fake_host_plugins(fake: object) -> PluginHost:
    """A plugin host with the scripted fake POS registered as plugin ``fake``."""
    return PluginHost.from_objects({"fake": fake})


def write_host_config(
    path: Any,
    *,
    port: int,
    token: str,
    store: Any,
    simulator_url: str,
    cloud_url: str,
    cloud_key: str,
    status_source: str = "webhook",
) -> None:
    """A settings file for ``posintegrator serve`` with the demo plugin against a simulator."""
    path.write_text(
        f"""
[api]
port = {port}
token = "{token}"

[store]
path = "{store}"

[cloud]
webhook_url = "{cloud_url}"
webhook_secrets = ["{cloud_key}"]

[[connections]]
name = "demo"
plugin = "demo"
locations = ["downtown", "airport"]
status_source = "{status_source}"
status_poll_seconds = 0.2
menu_sync_seconds = 3600

[connections.settings]
base_url = "{simulator_url}"
api_key = "{POS_API_KEY}"
webhook_secret = "{POS_WEBHOOK_SECRET}"
""",
        encoding="utf-8",
    )


async def eventually(check: Any, timeout: float = 10.0) -> None:
    """Wait until the async predicate ``check()`` is true; fail after ``timeout`` seconds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.05)


async def metric(harness: Any, name: str, **labels: str) -> float | None:
    """One sample of the harness host's ``GET /metrics`` (None when it is not there)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with harness.client.get(harness.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


#: A menu sync period no test outlives (about 30 years).
NO_PERIODIC_SYNC = 1e9


@asynccontextmanager
async def restarted_host(
    data_dir: Path, connections: list[ConnectionSettings], **options: Any
) -> AsyncIterator[HostHarness]:
    """A host started a second time on the same store, for tests that count menu fetches.

    On a first start the scheduler syncs each menu within ``FIRST_SYNC_SPREAD_SECONDS`` (when
    exactly is random, and later on a slow machine); a restarted host spreads its first syncs
    over the whole ``menu_sync_seconds``. So with connections whose period is
    :data:`NO_PERIODIC_SYNC`, the scheduler syncs no menu while the test runs: every fetch the
    test sees is one it caused, whatever the machine's speed. ``options`` go to
    :func:`running_host`, for both starts.
    """
    async with running_host(data_dir, connections, **options):
        pass  # the first run publishes every menu
    async with running_host(data_dir, connections, **options) as harness:
        yield harness

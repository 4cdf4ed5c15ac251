"""Fixtures shared by the host tests: the demo POS simulator and hosts on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, SignedDelivery, demo_connection
from pgserver import PostgresServer, running_postgres
from storeengines import ENGINES, StoreFactory, postgres_factory, sqlite_factory

from pos_demo.simulator import RunningSimulator, SimulatorConfig, start_simulator
from posintegrator.cloud.signatures import generate_secret
from posintegrator.runtime.host import Host
from posintegrator.testing import HostHarness, running_host

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--chaos-orders N`` (and ``--chaos-kills K``) make the chaos test longer;
    ``--chaos-seed S`` gives the venue agents' chaos test other random moments."""
    parser.addoption("--chaos-orders", type=int, default=300, help="orders the chaos test posts")
    parser.addoption("--chaos-kills", type=int, default=4, help="times it kills the host")
    parser.addoption(
        "--chaos-seed", type=int, default=20261210, help="seed of test_link_chaos's faults"
    )
    parser.addoption(
        "--store",
        choices=ENGINES,
        default="sqlite",
        help="the store of every host the tests start: postgresql gives each test a new "
        "database on the private PostgreSQL server (through POSINTEGRATOR_STORE__URL)",
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the whole session, started on first use."""
    with running_postgres() as server:
        yield server


@pytest.fixture(autouse=True)
def host_store_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--store postgresql``, hosts started by the test use a database of their own."""
    if request.config.getoption("--store") == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        monkeypatch.setenv("POSINTEGRATOR_STORE__URL", server.new_database())


@pytest.fixture(params=ENGINES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A test of the store runs once on each engine: this makes its store (each call on the
    same database, so a test may close and reopen it)."""
    if request.param == "sqlite":
        return sqlite_factory(tmp_path / "store.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return postgres_factory(server.new_database())


@pytest.fixture
def example_order() -> dict[str, Any]:
    """The example order from examples/order.json (priced for the demo menu)."""
    loaded: dict[str, Any] = orjson.loads((ROOT / "examples" / "order.json").read_bytes())
    return loaded


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    """The demo POS on a free loopback port, with a quick kitchen (0.1 s per stage)."""
    sim = await start_simulator(
        SimulatorConfig(data_dir=tmp_path / "pos", api_key=POS_API_KEY, stage_seconds=0.1)
    )
    yield sim
    await sim.close()


@pytest.fixture
async def demo_host(tmp_path: Path, simulator: RunningSimulator) -> AsyncIterator[HostHarness]:
    """A host with the demo plugin against the simulator, status by webhook."""

    async def connect(host: Host) -> None:
        simulator.set_webhook(
            host.connections["demo"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
        )

    async with running_host(tmp_path, [demo_connection(simulator)], after_start=connect) as harness:
        yield harness


@pytest.fixture
async def signed_delivery(tmp_path: Path, simulator: RunningSimulator) -> SignedDelivery:
    """The first event a host holding two cloud secrets delivered over loopback HTTP."""
    secrets = (generate_secret(), generate_secret())
    async with running_host(
        tmp_path, [demo_connection(simulator)], cloud_secrets=list(secrets)
    ) as harness:
        await harness.wait_for_events(lambda events: len(events) >= 1)
        return SignedDelivery(secrets, harness.receiver.deliveries[0])

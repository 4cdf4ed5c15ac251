"""Shared fixtures for the DemoPOS simulator tests (names prefixed ``simulator``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from pos_demo.simulator import RunningSimulator, SimulatorConfig, start_simulator

SimulatorFactory = Callable[..., Awaitable[RunningSimulator]]


@pytest_asyncio.fixture
async def simulator_factory(tmp_path: Path) -> AsyncIterator[SimulatorFactory]:
    """Start simulators on loopback port 0; all are closed at teardown.

    Keyword arguments override :class:`SimulatorConfig` fields; ``data_dir`` defaults to a
    per-test directory shared by all simulators of the test (so restarts reuse it).
    """
    started: list[RunningSimulator] = []

    async def factory(**overrides: Any) -> RunningSimulator:
        overrides.setdefault("data_dir", tmp_path / "demopos")
        sim = await start_simulator(SimulatorConfig(**overrides))
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.close()


@pytest_asyncio.fixture
async def simulator(simulator_factory: SimulatorFactory) -> RunningSimulator:
    """A simulator with default settings except a slow kitchen (orders stay ``accepted``)."""
    return await simulator_factory(stage_seconds=60.0)


@pytest_asyncio.fixture
async def simulator_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client session for talking to simulators."""
    async with aiohttp.ClientSession() as session:
        yield session

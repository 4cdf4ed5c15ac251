"""Fixtures for the Tryton plugin tests: a real, seeded Tryton server per test, and a way to call
the plugin's hooks directly with a connection context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from loguru import logger

from pos_tryton.client import TrytonClient, forget_sessions
from pos_tryton.settings import TrytonSettings
from pos_tryton.testing import SeededDatabase, TrytonServer, build_database, running_tryton
from posintegrator.context import ConnectionContext

LOCATION = "venue"


class MemoryState:
    """The connection's key-value state, kept in a dict (the host keeps it in its store)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


@pytest.fixture(scope="session")
def seeded_tryton(pytestconfig: pytest.Config) -> SeededDatabase:
    """The seeded restaurant database, built once (cached between sessions too)."""
    assert pytestconfig.cache is not None
    return build_database(pytestconfig.cache.mkdir("tryton-databases"))


@pytest.fixture
async def tryton(seeded_tryton: SeededDatabase, tmp_path: Path) -> AsyncIterator[TrytonServer]:
    """A real trytond serving this test's own copy of the restaurant."""
    async with running_tryton(seeded_tryton, tmp_path / "tryton") as server:
        yield server
    forget_sessions()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session like the host's shared one."""
    async with aiohttp.ClientSession() as session:
        yield session


def context_for(
    http: aiohttp.ClientSession, settings: dict[str, Any], state: MemoryState | None = None
) -> ConnectionContext:
    """A connection context for calling the plugin's hooks directly."""
    return ConnectionContext(
        name="tryton-test",
        plugin="tryton",
        locations=tuple(settings["sale_points"]),
        settings=TrytonSettings.model_validate(settings),
        http=http,
        log=logger.bind(connection="tryton-test"),
        state=state or MemoryState(),
        webhook_url="http://127.0.0.1:9/unused",
    )


@pytest.fixture
def ctx(tryton: TrytonServer, http: aiohttp.ClientSession) -> ConnectionContext:
    """A connection to the test's Tryton as the integration user, location ``venue``."""
    return context_for(http, tryton.plugin_settings(LOCATION))


def user_client(tryton: TrytonServer, http: aiohttp.ClientSession, user: str) -> TrytonClient:
    """A JSON-RPC client acting as a seeded user (``cashier``, ``admin``), as the Tryton client
    of a person at the counter would."""
    login, password = tryton.seeded.logins[user]
    settings = tryton.plugin_settings(LOCATION, username=login, password=password)
    return TrytonClient(http, TrytonSettings.model_validate(settings))


async def cashier_pays(cashier: TrytonClient, tryton: TrytonServer, sale_id: int) -> None:
    """Take the sale's amount in cash and close it, as the cashier's pay wizard does."""
    (sale,) = await cashier.read("sale.point.sale", [sale_id], ("amount_to_pay",))
    cash = int(tryton.seeded.ids["payment_methods"]["cash"])
    payment = {"sale": sale_id, "method": cash, "amount": sale["amount_to_pay"]}
    await cashier.create("sale.point.payment", [payment])
    await cashier.button("sale.point.sale", "process", [sale_id])

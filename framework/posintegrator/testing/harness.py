"""A host running in-process on loopback, with a cloud receiver: for plugin and host tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.errors import PosError
from posintegrator.menus.sync import MenuRejected
from posintegrator.model import Menu, OrderStatus
from posintegrator.plugins import PluginHost
from posintegrator.runtime.host import Host
from posintegrator.settings import (
    ConnectionSettings,
    HostSettings,
    UiSettings,
)


class HostHarness:
    """A started host plus an authenticated client and the cloud receiver it reports to."""

    def __init__(self, host: Host, receiver: CloudReceiver, client: aiohttp.ClientSession) -> None:
        self.host = host
        self.receiver = receiver
        self.client = client

    @property
    def url(self) -> str:
        """The Integrator API's base URL."""
        return self.host.url

    @property
    def token(self) -> str:
        """The Integrator API's bearer token."""
        token = self.host.settings.api.token
        assert token is not None, "running_host always sets one"
        return token.get_secret_value()

    async def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """Call the API; returns the status and the decoded JSON body (None when empty)."""
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        headers = {"Content-Type": "application/json"} if data is not None else {}
        async with self.client.request(
            method, self.url + path, data=data, headers=headers
        ) as response:
            payload = await response.read()
            return response.status, orjson.loads(payload) if payload else None

    async def post_order(self, order: dict[str, Any]) -> tuple[int, Any]:
        """POST an order."""
        return await self.request("POST", "/v1/orders", order)

    async def order(self, order_id: str) -> dict[str, Any]:
        """GET an order (its view with status and history); fails if it is not there."""
        status, body = await self.request("GET", f"/v1/orders/{order_id}")
        assert status == 200, (status, body)
        result: dict[str, Any] = body
        return result

    async def wait_for_status(
        self, order_id: str, wanted: set[OrderStatus], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll the API until the order's status is one of ``wanted``; fails after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        view: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            view = await self.order(order_id)
            if OrderStatus(view["status"]) in wanted:
                return view
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"order {order_id} did not reach {sorted(wanted)} in {timeout}s; last: {view}"
        )

    async def wait_for_menu(self, location: str, timeout: float = 10.0) -> Menu:
        """The published menu of ``location``, waiting for the first sync if needed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, body = await self.request("GET", f"/v1/locations/{location}/menu")
            if status == 200:
                return Menu.model_validate(body)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no menu for {location} after {timeout}s: {status} {body}")
            await asyncio.sleep(0.05)

    async def wait_for_events(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until the events the cloud received satisfy ``predicate``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.receiver.events):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"cloud events never matched; got {self.receiver.events}")
            await asyncio.sleep(0.05)
        return self.receiver.events


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` (a function, or a coroutine function) is true, polling it; fail
    naming ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.05)


def harness_settings(
    *,
    store_path: Path,
    webhook_url: str,
    webhook_secrets: list[str],
    token: str,
    connections: list[ConnectionSettings],
    overrides: dict[str, dict[str, Any]] | None = None,
    channels: list[str] | None = None,
    ui: UiSettings | None = None,
) -> HostSettings:
    """Settings of a host on a free loopback port.

    :param channels: the deployment's channel ids (default: the four default ones).
    :param ui: who may sign in to its dashboard (default: nobody).
    :param overrides: settings by section, merged into these, e.g.
        ``{"retention": {"interval_seconds": 1}, "cloud": {"stuck_after_seconds": 5}}``.
    """
    values: dict[str, Any] = {
        "api": {"host": "127.0.0.1", "port": 0, "token": token},
        "store": {"path": store_path, "synchronous": "NORMAL"},
        "cloud": {"webhook_url": webhook_url, "webhook_secrets": webhook_secrets},
        "connections": connections,
    }
    if channels is not None:
        values["channels"] = [{"id": channel} for channel in channels]
    if ui is not None:
        values["ui"] = ui
    for section, fields in (overrides or {}).items():
        values[section] = {**values.get(section, {}), **fields}
    return HostSettings(**values)


async def sync_all_menus(host: Host) -> None:
    """Sync every location's menu once now, as the scheduler would within seconds.

    Orders are checked against the live menu, so tests need it before they post; a failing
    sync is left for the test to see in the menu report. A connection whose menu comes from
    elsewhere (a hub's local connection: its venue agent sends the menu) is left alone.
    """
    for jobs in host.connections.values():
        if not jobs.connection.plugin.capabilities().menu or "menu" not in jobs.streams:
            continue
        if jobs.connection.plugin.implements("pos_fetch_menus"):  # one fetch for all
            with contextlib.suppress(PosError):
                await jobs.menusync.sync_locations(list(jobs.connection.settings.locations))
            continue
        for location in jobs.connection.settings.locations:
            try:
                await jobs.menusync.sync(location)
            except (PosError, MenuRejected):
                continue


@asynccontextmanager
async def running_host(
    data_dir: Path,
    connections: list[ConnectionSettings],
    *,
    after_start: Callable[[Host], Awaitable[None]] | None = None,
    plugins: PluginHost | None = None,
    cloud_secrets: list[str] | None = None,
    channels: list[str] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    ui: UiSettings | None = None,
) -> AsyncIterator[HostHarness]:
    """Start a host serving ``connections`` with its store in ``data_dir``; stop it after.

    :param after_start: called once the host runs (e.g. to point a test POS's webhooks at it).
    :param plugins: plugins to use instead of loading them by entry point.
    :param cloud_secrets: the webhook secrets of the host and its cloud receiver (default: one
        new secret).
    :param channels: the deployment's channel ids (default: the four default ones).
    :param settings: settings by section, merged into the harness's (see
        :func:`harness_settings`).
    :param ui: the operators of its dashboard (default: none).
    """
    token = secrets.token_urlsafe(16)
    webhook_secrets = cloud_secrets or [generate_secret()]
    receiver = CloudReceiver(webhook_secrets)
    await receiver.start()
    host = Host(
        harness_settings(
            store_path=data_dir / "host.db",
            webhook_url=receiver.url,
            webhook_secrets=webhook_secrets,
            token=token,
            connections=connections,
            overrides=settings,
            channels=channels,
            ui=ui,
        ),
        plugins=plugins,
    )
    client = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})
    try:
        await host.start()
        if after_start is not None:
            await after_start(host)
        await sync_all_menus(host)
        yield HostHarness(host, receiver, client)
    finally:
        await client.close()
        await host.stop(grace_seconds=2.0)
        await receiver.stop()

"""What the conformance kit needs from a plugin's tests (its test POS, described by
:class:`PosBackend`), and the host the kit's tests run the plugin in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from posintegrator.hooktypes import Capabilities
from posintegrator.model import Menu
from posintegrator.plugins import PluginHost
from posintegrator.runtime.host import Host
from posintegrator.settings import ConnectionSettings
from posintegrator.testing.faults import FaultInjector
from posintegrator.testing.harness import HostHarness, running_host

#: The name of the connection the kit's hosts serve.
CONNECTION = "conformance"


@dataclass
class WebhookSigning:
    """How the test POS signs its webhooks, so the kit can send genuine, forged, altered and
    unsigned ones.

    :param sign: ``sign(url, body, secret)``: the headers that sign ``body`` sent to ``url``
        with ``secret``, exactly as the POS makes them.
    :param secret: the secret in the connection's settings (``PosBackend.settings``).
    :param body: a genuine webhook body the plugin accepts.
    """

    sign: Callable[[str, bytes, str], Mapping[str, str]]
    secret: str
    body: bytes


@dataclass
class PosBackend:
    """A plugin's test POS, as the contract tests need it.

    :param settings: the plugin's settings for a connection to this POS.
    :param locations: locations the POS serves.
    :param count_orders: how many orders the POS holds with our reference ``order_id``.
    :param on_host_started: called with the host's webhook URL for the connection, for POSes
        that push status by webhook and must be told where.
    :param hold_orders: ``hold_orders(True)`` makes the test POS keep new orders where the
        kitchen has not started them (so they can be cancelled), ``hold_orders(False)`` lets them
        go on. Without it, a cancellation may come too late, and either honest answer passes.
    :param faults: the fault injector in front of the test POS
        (:class:`~posintegrator.testing.faults.FaultInjector`); without it the error-mapping
        tests are skipped.
    :param wrong_credentials: settings that replace the good ones with credentials the POS
        refuses (e.g. ``{"api_key": "wrong"}``); without them the AuthError test is skipped.
    :param webhooks: how the test POS signs webhooks; without it the webhook verification test
        is skipped, and a plugin promising webhooks fails the every-hook test.
    """

    settings: dict[str, Any]
    locations: list[str]
    count_orders: Callable[[str], Awaitable[int]]
    on_host_started: Callable[[str], Awaitable[None]] | None = None
    hold_orders: Callable[[bool], Awaitable[None]] | None = None
    faults: FaultInjector | None = None
    wrong_credentials: dict[str, Any] = field(default_factory=dict)
    webhooks: WebhookSigning | None = None


class ContractBase:
    """What every part of the kit shares: the plugin under test and a host running it."""

    plugin_name: str = ""
    #: Seconds the test POS may take to move an order to ACCEPTED and beyond.
    status_timeout: float = 20.0

    @pytest.fixture
    async def pos_backend(self, tmp_path: Path) -> AsyncIterator[PosBackend]:
        """Override: start the plugin's test POS and describe it."""
        raise NotImplementedError("a PluginContract subclass must provide a pos_backend fixture")
        yield  # pragma: no cover

    def _plugins(self) -> PluginHost:
        assert self.plugin_name, "set plugin_name on the PluginContract subclass"
        return PluginHost.load([self.plugin_name])

    def _capabilities(self) -> Capabilities:
        return self._plugins().pos(self.plugin_name).capabilities()

    @asynccontextmanager
    async def _host(
        self,
        tmp_path: Path,
        backend: PosBackend,
        status_source: str = "auto",
        *,
        settings: dict[str, Any] | None = None,
    ) -> AsyncIterator[HostHarness]:
        """A host serving one connection to the test POS (with ``settings`` instead of the
        backend's when given)."""
        connection = ConnectionSettings(
            name=CONNECTION,
            plugin=self.plugin_name,
            locations=backend.locations,
            settings=backend.settings if settings is None else settings,
            status_source=status_source,
            status_poll_seconds=0.2,
            menu_sync_seconds=3600,
        )

        async def connect(host: Host) -> None:
            if backend.on_host_started is not None:
                await backend.on_host_started(
                    host.connections[CONNECTION].connection.ctx.webhook_url
                )

        async with running_host(tmp_path, [connection], after_start=connect) as harness:
            yield harness

    async def _menu(self, harness: HostHarness, location: str) -> Menu:
        await harness.host.connections[CONNECTION].menusync.sync(location)
        return await harness.wait_for_menu(location)

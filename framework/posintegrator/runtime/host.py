"""The host: plugins, store, scheduler and Integrator API put together, started and stopped.

``posintegrator serve`` (a central host, or a hub for venue agents), ``posintegrator agent``
(a venue agent: its settings have an ``[agent]`` table), the demo, the conformance kit and the
tests all run this same class. What differs is where each connection's streams run (its
``placement``) and where events go: to the cloud from a hub, to the hub from an agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import orjson
from aiohttp import web
from aiolimiter import AsyncLimiter
from loguru import logger

from posintegrator.cloud.notifier import CloudNotifier
from posintegrator.cloud.watch import StuckStreams
from posintegrator.context import ConnectionContext
from posintegrator.errors import StartupError
from posintegrator.link.agent import AgentLink
from posintegrator.link.handover import AgentHandover
from posintegrator.link.hub import LinkHub
from posintegrator.link.identity import KEY_FILE, AgentKey, NotPaired
from posintegrator.menus.live import LiveMenus
from posintegrator.menus.sync import MenuSync
from posintegrator.orders.delivery import OrderDelivery
from posintegrator.plugins import PluginHost
from posintegrator.runtime.connection import Connection
from posintegrator.runtime.health import ConnectionHealth
from posintegrator.runtime.metrics import HostMetrics
from posintegrator.runtime.notify import notify_ready, notify_stopping
from posintegrator.runtime.retention import Pruner
from posintegrator.runtime.scheduler import ConnectionJobs, Delivery, Scheduler
from posintegrator.settings import HostSettings, streams_here
from posintegrator.statuses.intake import StatusIntake
from posintegrator.store import SQLiteStore, Store

#: How long a graceful stop waits for order submissions under way.
STOP_GRACE_SECONDS = 8.0
#: How old a cached menu may be before a worker sharing the store checks for a newer version.
SHARED_MENU_REFRESH_SECONDS = 2.0
#: How long one thread may keep the interpreter lock while another waits for it. The store's
#: writer thread takes the lock back after every statement it runs; with Python's default
#: (5 ms) each of those waits up to 5 ms whenever the event loop is busy, so an order's few
#: store calls add tens of milliseconds to its way to the POS (docs/performance.md).
SWITCH_INTERVAL_SECONDS = 0.0005


@dataclass(frozen=True)
class _ConnectionState:
    """The :class:`~posintegrator.context.PluginState` of one connection, kept in the store."""

    store: Store
    connection: str

    async def get(self, key: str) -> str | None:
        return await self.store.state_get(self.connection, key)

    async def set(self, key: str, value: str) -> None:
        await self.store.state_set(self.connection, key, value)

    async def delete(self, key: str) -> None:
        await self.store.state_delete(self.connection, key)


def _already_stopping() -> None:
    logger.warning("already stopping gracefully; send SIGKILL to stop at once")


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class Host:
    """One running posintegrator host.

    :param settings: the deployment.
    :param plugins: already loaded plugins; loaded from the settings when omitted.
    :param store: the durable store; when omitted, the PostgreSQL database at
        ``settings.store.url`` if it is set, else the SQLite store at ``settings.store.path``.
    :param listen_socket: an already bound TCP socket to serve the API on, instead of binding
        ``api.host:api.port`` (a supervisor or test that must know the port before the host
        starts binds it and hands it over).
    """

    def __init__(
        self,
        settings: HostSettings,
        *,
        plugins: PluginHost | None = None,
        store: Store | None = None,
        listen_socket: socket.socket | None = None,
    ) -> None:
        self.settings = settings
        self._listen_socket = listen_socket
        self.plugins = plugins or PluginHost.load(
            [c.plugin for c in settings.connections] + settings.extensions
        )
        self.store: Store = store or _store_of(settings)
        self.accepting = False
        #: Set once a stop begins: readiness then says so, while the API still answers.
        self.stopping = False
        self.connections: dict[str, ConnectionJobs] = {}
        # Another worker sharing the store may publish a menu: seen here within this long.
        self.live_menus = LiveMenus(
            self.store, refresh_seconds=SHARED_MENU_REFRESH_SECONDS if self.store.shared else None
        )
        self._plugin_settings = self.plugins.validate_connections(settings)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._scheduler: Scheduler | None = None
        self._notifier: CloudNotifier | None = None
        #: The retention job (its counters are for metrics).
        self.pruner = Pruner(
            self.store, settings.retention, pairing_grace_seconds=settings.link.pairing_seconds
        )
        #: The stuck-stream watch, at a hub or central host sending to a cloud; None otherwise.
        self.stream_watch: StuckStreams | None = None
        #: At a hub, its venue agents' links; None in an agent.
        self.links: LinkHub | None = None
        #: In a venue agent, its link to the hub; None at a hub.
        self.agent_link: AgentLink | None = None
        self._intake: StatusIntake | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.port: int = settings.api.port
        self.metrics = HostMetrics()
        #: This process's name in the leases of a store shared by several workers.
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.store.observe_writes(self.metrics.store_write_seconds.observe)

    @property
    def url(self) -> str:
        """Where the Integrator API listens."""
        return f"http://{self.settings.api.host}:{self.port}"

    @property
    def public_url(self) -> str:
        """Where the POS and the cloud reach this host."""
        if self.settings.api.public_url is not None:
            return str(self.settings.api.public_url).rstrip("/")
        return self.url

    @property
    def intake(self) -> StatusIntake:
        """The status intake (available once started)."""
        assert self._intake is not None, "the host is not started"
        return self._intake

    @property
    def notifier(self) -> CloudNotifier:
        """The cloud notifier (available once a hub or central host started)."""
        assert self._notifier is not None, "no cloud notifier: not started, or an agent"
        return self._notifier

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared HTTP client session (available once started)."""
        assert self._http is not None, "the host is not started"
        return self._http

    @property
    def is_agent(self) -> bool:
        """Whether this host is a venue agent."""
        return self.settings.agent is not None

    def _wake_upstream(self) -> None:
        """Events wait in the store: for the cloud, or for the hub."""
        if self.agent_link is not None:
            self.agent_link.wake()
        elif self._notifier is not None:
            self._notifier.wake()

    def connection_for_location(self, location: str) -> ConnectionJobs | None:
        """The connection serving ``location``, if any."""
        for jobs in self.connections.values():
            if location in jobs.connection.settings.locations:
                return jobs
        return None

    async def start(self) -> None:
        """Open the store, start the API and the jobs."""
        from posintegrator.api.app import build_app

        key = self._agent_key()
        if sys.getswitchinterval() > SWITCH_INTERVAL_SECONDS:
            sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        await self.store.open()
        self._http = aiohttp.ClientSession(
            json_serialize=_json_dumps, timeout=aiohttp.ClientTimeout(total=30)
        )
        upstream: tuple[str, Callable[[], Awaitable[None]]]
        upkeep: list[tuple[str, Callable[[], Awaitable[None]]]] = [("retention", self.pruner.run)]
        if self.settings.agent is not None and key is not None:
            self.agent_link = AgentLink(self, self.settings.agent, self.settings.link, key)
            upstream = ("hub-link", self.agent_link.run)
        else:
            cloud_seconds = self.metrics.cloud_seconds
            self._notifier = CloudNotifier(
                self.store,
                self._http,
                self.settings.cloud,
                observe=lambda result, seconds: cloud_seconds.labels(result).observe(seconds),
            )
            self.links = LinkHub(self)
            upstream = ("cloud", self._notifier.run)
            if self.store.shared:  # agents may link to any of the workers
                upkeep.append(("link-notices", self.links.watch))
            if self.settings.cloud.webhook_url is not None:
                self.stream_watch = StuckStreams(self.store, self.settings.cloud, self._alert)
                upkeep.append(("stuck-streams", self.stream_watch.run))
        self._intake = StatusIntake(self.store, self.plugins, self._wake_upstream)
        # The API binds first, so the webhook URLs handed to plugins carry the real port.
        app = build_app(self)
        access = logging.getLogger("aiohttp.access") if self.settings.log.access_log else None
        self._runner = web.AppRunner(app, access_log=access, handle_signals=False)
        await self._runner.setup()
        site: web.BaseSite
        ssl_context = self._tls()
        if self._listen_socket is not None:
            site = web.SockSite(self._runner, self._listen_socket, ssl_context=ssl_context)
        else:
            site = web.TCPSite(
                self._runner,
                self.settings.api.host,
                self.settings.api.port,
                ssl_context=ssl_context,
            )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        for conn_settings in self.settings.connections:
            self.connections[conn_settings.name] = self._connection_jobs(conn_settings.name)
        self._scheduler = Scheduler(list(self.connections.values()), upstream, upkeep)
        self._scheduler.start()
        self.accepting = True
        role = "venue agent" if self.is_agent else "posintegrator"
        logger.info(
            "{} listening on {} with {} connection(s)", role, self.url, len(self.connections)
        )

    def _agent_key(self) -> AgentKey | None:
        """A venue agent's key, from its data folder (None at a hub).

        :raises StartupError: the agent has not paired yet.
        """
        if self.settings.agent is None:
            return None
        path = self.settings.store.path.parent / KEY_FILE
        try:
            return AgentKey.load(path)
        except NotPaired as exc:
            raise StartupError(
                f"this agent is not paired with its hub ({exc}): run "
                "'posintegrator agent pair --config FILE' and have an operator approve its code"
            ) from None

    def _tls(self) -> ssl.SSLContext | None:
        """The server's TLS context, when ``api.tls_certificate`` is set."""
        api = self.settings.api
        if api.tls_certificate is None or api.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(api.tls_certificate, api.tls_key)
        return context

    def _connection_jobs(self, name: str) -> ConnectionJobs:
        assert self._http is not None and self._intake is not None
        conn_settings = self.settings.connection(name)
        plugin = self.plugins.pos(conn_settings.plugin)
        ctx = ConnectionContext(
            name=name,
            plugin=plugin.name,
            locations=tuple(conn_settings.locations),
            settings=self._plugin_settings[name],
            http=self._http,
            log=logger.bind(connection=name, plugin=plugin.name),
            state=_ConnectionState(self.store, name),
            webhook_url=f"{self.public_url}/pos/{name}/webhook",
            max_response_bytes=conn_settings.max_response_bytes,
        )
        rate = conn_settings.rate_limit_per_second
        connection = Connection(
            settings=conn_settings,
            plugin=plugin,
            ctx=ctx,
            health=ConnectionHealth(
                name, failure_threshold=conn_settings.failure_threshold, alert=self._alert
            ),
            limiter=asyncio.Semaphore(conn_settings.max_concurrency),
            rate=AsyncLimiter(rate, 1.0) if rate is not None else None,
            metrics=self.metrics.connection(name),
        )
        max_age = timedelta(seconds=self.settings.orders.max_delivery_seconds)
        streams = streams_here(conn_settings.placement, agent=self.is_agent)
        delivery: Delivery
        if "orders" in streams:
            delivery = OrderDelivery(self.store, connection, self._intake, max_age=max_age)
        else:
            assert self.links is not None
            delivery = AgentHandover(
                self.store, connection, self._intake, self.links, max_age=max_age
            )
        return ConnectionJobs(
            self.store,
            connection,
            MenuSync(self.store, self.plugins, connection, self.live_menus, self._wake_upstream),
            delivery,
            self._intake,
            streams=streams,
            worker=self.worker,
        )

    def _alert(self, connection: str, kind: str, message: str) -> None:
        """Pass a connection alert to the plugins that observe them."""
        task = asyncio.get_running_loop().create_task(
            self.plugins.connection_alert(connection, kind, message)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop taking orders, finish or park work under way, and release everything."""
        self.accepting = False
        self.stopping = True
        if self._scheduler is not None:
            await self._scheduler.stop(grace_seconds)
            self._scheduler = None
        if self.links is not None:
            await self.links.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.store.close()
        logger.info("posintegrator stopped")

    async def run_until_signalled(self) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        notify_ready(self.url)
        try:
            await stop.wait()
            logger.info("stopping: no new orders; finishing work under way")
            notify_stopping()
            # A second signal must not cut the graceful stop short (a supervisor, or a person
            # pressing Ctrl-C twice): it is noted; SIGKILL is the way to force it.
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, _already_stopping)
            await self.stop()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if not self.stopping:
                await self.stop()


def _store_of(settings: HostSettings) -> Store:
    """The store the settings name: PostgreSQL shared by workers, or the SQLite file."""
    if settings.store.url is not None:
        if settings.agent is not None:
            raise ValueError(
                "store.url: a venue agent keeps its own SQLite store, not a shared one"
            )
        # Imported here: psycopg is an optional dependency (pip install posintegrator[postgresql]).
        from posintegrator.store.postgres import PostgresStore

        return PostgresStore(settings.store.url)
    return SQLiteStore(
        settings.store.path,
        synchronous=settings.store.synchronous,
        events_to="hub" if settings.agent is not None else "cloud",
    )

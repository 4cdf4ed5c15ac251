"""Running the simulator in-process on a real loopback socket.

Tests and the CLI both use :func:`start_simulator`; binding the socket ourselves lets callers
pass ``port=0`` and still learn the actual URL.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime
from types import TracebackType

from aiohttp import web

from .app import build_app
from .config import SimulatorConfig
from .core import SimulatorCore
from .errors import JSONDict


class RunningSimulator:
    """Handle of a started simulator: its URL, live config and shutdown."""

    def __init__(self, core: SimulatorCore, runner: web.AppRunner, host: str, port: int) -> None:
        self.core = core
        self._runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._closed = False

    @property
    def config(self) -> SimulatorConfig:
        """The live (mutable) configuration; changes apply to the next request/stage/event."""
        return self.core.config

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        """Point outbound webhooks somewhere else (``None`` disables them)."""
        self.core.config.webhook_url = url
        self.core.config.webhook_secret = secret

    def set_webhook_secret(self, secret: str | None) -> None:
        """Sign webhooks with ``secret`` from the next attempt on, as DemoPOS's back office does
        when its webhook secret is rotated (``None``: send them unsigned)."""
        self.core.config.webhook_secret = secret

    def set_availability(
        self,
        location: str,
        *,
        item: str | None = None,
        option: str | None = None,
        available: bool,
        until: datetime | str | None = None,
        reason: str | None = None,
    ) -> JSONDict:
        """Staff action without HTTP (as ``POST /availability``): 86 or restore an item/option.

        Must be called from within the running event loop (it queues a webhook); returns the
        ``availability`` event.
        """
        return self.core.availability.set(
            location, item=item, option=option, available=available, until=until, reason=reason
        )

    def start_preparing(self, order_id: str) -> JSONDict:
        """Staff action: the kitchen starts on an order waiting in its queue now (it moves to
        ``preparing``, and from then on the order can no longer be cancelled)."""
        current = self.core.book.get(order_id)
        if current is None or current["state"] != "accepted":
            raise ValueError(f"order {order_id!r} is not waiting in the kitchen's queue")
        order = self.core.book.transition(order_id, "preparing", time.time())
        self.core.kitchen.stop(order_id)
        self.core.kitchen.start(order_id)
        return order

    def set_stage_seconds(self, seconds: float) -> None:
        """Make the kitchen faster or slower, for the orders in it too (their timers restart)."""
        self.core.config.stage_seconds = seconds
        for order_id in self.core.book.unfinished():
            self.core.kitchen.stop(order_id)
        self.core.kitchen.resume_all()

    async def wait_webhooks_idle(self, wait_seconds: float = 10.0) -> None:
        """Wait until all queued webhooks were delivered or given up."""
        await self.core.webhooks.idle(wait_seconds)

    async def close(self) -> None:
        """Stop serving and stop background work; the data file stays resumable."""
        if self._closed:
            return
        self._closed = True
        await self.core.close()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def start_simulator(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Load state from ``config.data_dir``, resume the kitchen and serve the DemoPOS API.

    ``port=0`` picks a free port; the chosen one is in ``RunningSimulator.url``.
    """
    core = SimulatorCore(config)
    core.start()
    runner = web.AppRunner(build_app(core), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        site = web.SockSite(runner, sock)
        await site.start()
    except BaseException:
        await core.close()
        await runner.cleanup()
        raise
    bound_port = int(sock.getsockname()[1])
    url_host = f"[{host}]" if ":" in host else host
    running = RunningSimulator(core, runner, host, bound_port)
    running.url = f"http://{url_host}:{bound_port}"
    return running

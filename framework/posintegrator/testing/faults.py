"""Fault injection for test POS servers: an aiohttp middleware and a TCP proxy.

Put :class:`FaultInjector` in front of any aiohttp test double (the demo POS, a vendor API
double) to make it fail the ways real POS systems fail; put :class:`FaultProxy` between a plugin
and any test POS to refuse or cut connections. Both are switched at run time (from a test, or over
HTTP with :meth:`FaultInjector.add_control_routes`) and count what they did, so a test can say
which faults it survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass
class FaultPlan:
    """How often each fault strikes a matching request (probabilities from 0 to 1).

    :param fail_5xx: answer 503 without handling the request.
    :param fail_429: answer 429 (rate limited) with ``Retry-After: retry_after_seconds``,
        without handling the request.
    :param timeout: hold the request for ``hang_seconds`` without handling it (the client times
        out, outcome unknown to it, nothing done).
    :param commit_then_drop: handle the request (the order is created), then close the
        connection without answering.
    :param commit_then_5xx: handle the request, then answer 500 instead of its response.
    :param slow: wait ``slow_seconds`` before handling the request.
    :param methods: only requests with these methods are affected.
    :param paths: only requests whose path starts with one of these (empty: every path).
    """

    fail_5xx: float = 0.0
    fail_429: float = 0.0
    retry_after_seconds: int = 7
    timeout: float = 0.0
    commit_then_drop: float = 0.0
    commit_then_5xx: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 1.0
    hang_seconds: float = 30.0
    methods: tuple[str, ...] = ("POST",)
    paths: tuple[str, ...] = ()

    def update(self, values: dict[str, Any]) -> None:
        """Change some fields; unknown names are refused."""
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        for name, value in values.items():
            setattr(self, name, tuple(value) if name in ("methods", "paths") else value)


class FaultInjector:
    """An aiohttp middleware that injects the faults of a :class:`FaultPlan`.

    :param seed: makes the random choices repeatable.
    """

    def __init__(self, plan: FaultPlan | None = None, *, seed: int | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)

    def _applies(self, request: web.Request) -> bool:
        plan = self.plan
        if request.method not in plan.methods:
            return False
        return not plan.paths or request.path.startswith(plan.paths)

    def _strikes(self, probability: float) -> bool:
        return probability > 0 and self._random.random() < probability

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The middleware to add to the test server's application."""
        if request.path.startswith("/_faults") or not self._applies(request):
            return await handler(request)
        plan = self.plan
        if self._strikes(plan.fail_5xx):
            self.counts["fail_5xx"] += 1
            return web.json_response(
                {"error": "unavailable", "message": "injected fault"}, status=503
            )
        if self._strikes(plan.fail_429):
            self.counts["fail_429"] += 1
            return web.json_response(
                {"error": "rate_limited", "message": "injected fault"},
                status=429,
                headers={"Retry-After": str(plan.retry_after_seconds)},
            )
        if self._strikes(plan.timeout):
            self.counts["timeout"] += 1
            await asyncio.sleep(plan.hang_seconds)
            raise web.HTTPServiceUnavailable()
        if self._strikes(plan.slow):
            self.counts["slow"] += 1
            await asyncio.sleep(plan.slow_seconds)
        response = await handler(request)
        if self._strikes(plan.commit_then_drop):
            self.counts["commit_then_drop"] += 1
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # the connection is gone: nothing can be answered
        if self._strikes(plan.commit_then_5xx):
            self.counts["commit_then_5xx"] += 1
            return web.json_response({"error": "internal", "message": "injected fault"}, status=500)
        return response

    def add_control_routes(self, app: web.Application) -> None:
        """``GET /_faults`` (plan and counts) and ``PUT /_faults`` (change the plan)."""

        async def show(_request: web.Request) -> web.Response:
            return web.json_response({"plan": asdict(self.plan), "counts": dict(self.counts)})

        async def change(request: web.Request) -> web.Response:
            try:
                self.plan.update(await request.json())
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": "invalid_plan", "message": str(exc)}, status=422)
            return await show(request)

        app.router.add_get("/_faults", show)
        app.router.add_put("/_faults", change)


class FaultProxy:
    """A TCP proxy in front of a test server (a POS, a hub) that can refuse connections or cut
    them.

    Point the client at :attr:`url`; :meth:`refuse` stops listening (connections are refused,
    as when the POS machine is off), :meth:`accept` listens again on the same port, and
    ``drop_after_request`` cuts a connection as soon as the client has sent a request, before
    the answer arrives. :meth:`stall` makes the network silent without closing anything (what
    a partition or a router that forgot the connection does: only a heartbeat notices), until
    :meth:`resume`. :attr:`upstream` can be changed at any time (the server restarted on
    another port): connections made from then on go there.

    The port stays the proxy's while it refuses: a second socket, bound to it but never
    listening, holds it (``SO_REUSEPORT`` lets the listening socket share it), so no other
    process can take it in between and :meth:`accept` cannot fail or listen elsewhere.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        #: Where connections are forwarded (host, port); a new value applies to the connections
        #: made from then on.
        self.upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._port_holder: socket.socket | None = None
        self._port = 0
        self.drop_after_request = False
        self.counts: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self._port}"

    async def accept(self) -> None:
        """Listen (again) for connections."""
        if self._server is not None:
            return
        if self._port_holder is None:
            holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind(("127.0.0.1", 0))
            self._port_holder = holder
            self._port = holder.getsockname()[1]
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self._port, reuse_port=True
        )

    async def refuse(self) -> None:
        """Stop listening and cut the connections in progress."""
        if self._server is None:
            return
        self.counts["refuse"] += 1
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for task in list(self._tasks):
            task.cancel()

    def stall(self) -> None:
        """Pass no more data either way, and close nothing: connections stay open, silent."""
        self.counts["stall"] += 1
        self._flowing.clear()

    def resume(self) -> None:
        """Pass data again; what was sent during the stall arrives now."""
        self._flowing.set()

    async def close(self) -> None:
        """Stop everything and give the port back."""
        await self.refuse()
        if self._port_holder is not None:
            self._port_holder.close()
            self._port_holder = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):  # the upstream is down, or refuse() cut it
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, to_upstream=True),
                self._pipe(up_reader, writer, to_upstream=False),
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for stream in (writer, up_writer):
                stream.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_upstream: bool
    ) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            if not to_upstream and self.drop_after_request:
                # The POS has handled the request and answered: the answer is lost.
                self.counts["drop_after_request"] += 1
                raise ConnectionResetError("injected: connection cut before the answer")
            writer.write(data)
            await writer.drain()
        await self._flowing.wait()  # the end of the stream is news too
        with contextlib.suppress(OSError):
            writer.write_eof()

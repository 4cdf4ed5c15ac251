"""A load balancer for tests: one address in front of several workers, as in production.

Each request goes to a random worker that is up; a worker that refuses the connection (killed)
is skipped for another. With none up, the answer is 503, as a real balancer's would be.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable

import aiohttp
from aiohttp import web

#: Request headers not passed on (the balancer sets its own connection to the worker).
_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding"}


class Balancer:
    """Forwards every request to one of ``backends()`` (the URLs of the workers up now)."""

    def __init__(self, backends: Callable[[], list[str]], rng: random.Random) -> None:
        self._backends = backends
        self._rng = rng
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, listener)
        await site.start()
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        backends = self._backends()
        self._rng.shuffle(backends)
        for backend in backends:
            try:
                async with self._http.request(
                    request.method, backend + request.rel_url.path_qs, data=body, headers=headers
                ) as answer:
                    payload = await answer.read()
                    kept = {
                        k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS
                    }
                    return web.Response(status=answer.status, body=payload, headers=kept)
            except aiohttp.ClientConnectorError:
                continue  # that worker is down: another one
            except (aiohttp.ClientError, TimeoutError):
                # The worker died during the request: its outcome is unknown to the client,
                # which tries again (an order's id makes that safe).
                return web.Response(status=503, text="the worker was lost during the request")
        return web.Response(status=503, text="no worker is up")

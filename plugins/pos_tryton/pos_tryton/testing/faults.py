"""A loopback proxy in front of Tryton that loses the answers to chosen JSON-RPC calls.

:class:`posintegrator.testing.faults.FaultProxy` cuts connections by bytes, so it cannot tell
one JSON-RPC call from another: every call goes to the same ``/{database}/rpc/`` path. This proxy
reads each request's ``method``, forwards it to Tryton, and for a method it was told to, lets
Tryton process the call and then closes the connection without answering: the caller cannot
know whether its write happened (an outcome-unknown failure, exactly as on a real network)::

    async with LossyRpcProxy(tryton.url) as proxy:
        proxy.lose_answer("model.sale.point.sale.create")   # the next one only
        settings = tryton.plugin_settings("venue", base_url=proxy.url)

It can also hold an answer back (:meth:`LossyRpcProxy.hold_answer`): Tryton has run the call, and
the caller waits for an answer that never comes, until it gives up or is stopped itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import TracebackType

import aiohttp
import orjson
from aiohttp import web

_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class LossyRpcProxy:
    """Forwards every request to ``upstream``; loses or holds back the answers it was told to.

    :attr:`calls` counts the JSON-RPC methods that went through, :attr:`lost` those whose
    answer was lost after Tryton processed them, :attr:`held` those whose answer was held back.
    """

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._to_lose: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self._to_hold: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    def lose_answer(self, method: str, times: int = 1) -> None:
        """Lose the answer to the next ``times`` calls of ``method``, after Tryton ran them."""
        self._to_lose[method] += times

    def hold_answer(self, method: str, times: int = 1) -> None:
        """Hold back the answer to the next ``times`` calls of ``method``, after Tryton ran
        them, until the proxy closes: the caller waits, as for a server that stopped answering
        (outcome unknown), until it gives up or is stopped."""
        self._to_hold[method] += times

    async def start(self) -> None:
        """Listen on a loopback port chosen by the system."""
        self._http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        """Stop listening and close the upstream session; held answers are never sent."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> LossyRpcProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        body = await request.read()
        method = _rpc_method(body)
        self.calls[method] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._http.request(
            request.method, self._upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            answer_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
            }
        if self._to_hold[method] > 0:
            self._to_hold[method] -= 1
            self.held[method] += 1
            await self._released.wait()
        elif self._to_lose[method] > 0:
            self._to_lose[method] -= 1
            self.lost[method] += 1
        else:
            return web.Response(body=payload, status=status, headers=answer_headers)
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # the connection is gone: nothing can be answered


def _rpc_method(body: bytes) -> str:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    method = document.get("method") if isinstance(document, dict) else None
    return method if isinstance(method, str) else ""

"""The reusable fault injection pieces, each fault against a real loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from posintegrator.testing.faults import FaultInjector, FaultProxy


class Pos:
    """A tiny server counting the orders it commits."""

    def __init__(self) -> None:
        self.committed = 0
        self.injector = FaultInjector(seed=1)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.committed += 1
        return web.json_response({"id": self.committed}, status=201)

    async def start(self) -> str:
        app = web.Application(middlewares=[self.injector.middleware])
        app.router.add_post("/orders", self.handle)
        self.injector.add_control_routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def pos() -> AsyncIterator[tuple[Pos, str]]:
    server = Pos()
    url = await server.start()
    yield server, url
    assert server.runner is not None
    await server.runner.cleanup()


async def post(url: str, timeout: float = 5.0) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(url + "/orders", json={}) as response,
    ):
        return response.status


async def test_fail_5xx_answers_without_committing(pos: tuple[Pos, str]) -> None:
    server, url = pos
    server.injector.plan.fail_5xx = 1.0
    assert await post(url) == 503
    assert server.committed == 0 and server.injector.counts["fail_5xx"] == 1


async def test_commit_then_drop_creates_the_order_but_no_answer(pos: tuple[Pos, str]) -> None:
    server, url = pos
    server.injector.plan.commit_then_drop = 1.0
    with pytest.raises(aiohttp.ClientError):
        await post(url)
    assert server.committed == 1, "the order exists although the client heard nothing"


async def test_commit_then_5xx(pos: tuple[Pos, str]) -> None:
    server, url = pos
    server.injector.plan.commit_then_5xx = 1.0
    assert await post(url) == 500
    assert server.committed == 1


async def test_timeout_holds_the_request_without_committing(pos: tuple[Pos, str]) -> None:
    server, url = pos
    server.injector.plan.update({"timeout": 1.0, "hang_seconds": 2.0})
    with pytest.raises(TimeoutError):
        await post(url, timeout=0.3)
    assert server.committed == 0


async def test_slow_answers_late_and_only_matching_requests_are_hit(pos: tuple[Pos, str]) -> None:
    server, url = pos
    server.injector.plan.update({"slow": 1.0, "slow_seconds": 0.4, "paths": ["/elsewhere"]})
    assert await post(url) == 201
    assert server.injector.counts["slow"] == 0, "other paths are not affected"
    server.injector.plan.paths = ()
    started = time.monotonic()
    assert await post(url) == 201
    assert server.injector.counts["slow"] == 1
    assert time.monotonic() - started >= 0.4


async def test_control_routes(pos: tuple[Pos, str]) -> None:
    _, url = pos
    async with aiohttp.ClientSession() as session:
        async with session.put(url + "/_faults", json={"fail_5xx": 1.0}) as response:
            assert response.status == 200
            assert (await response.json())["plan"]["fail_5xx"] == 1.0
        async with session.put(url + "/_faults", json={"explode": 1}) as response:
            assert response.status == 422
    assert await post(url) == 503


async def test_proxy_refuses_accepts_and_cuts(pos: tuple[Pos, str]) -> None:
    server, _url = pos
    proxy = FaultProxy("127.0.0.1", server.port)
    await proxy.accept()
    try:
        assert await post(proxy.url) == 201
        await proxy.refuse()
        with pytest.raises(aiohttp.ClientConnectorError):
            await post(proxy.url)
        await proxy.accept()
        assert await post(proxy.url) == 201, "listening again on the same port"
        proxy.drop_after_request = True
        with pytest.raises(aiohttp.ClientError):
            await post(proxy.url)
        assert server.committed == 3, "the cut request still reached the POS"
    finally:
        await proxy.close()


async def test_proxy_follows_a_new_upstream(pos: tuple[Pos, str]) -> None:
    first, _url = pos
    second = Pos()
    await second.start()
    proxy = FaultProxy("127.0.0.1", first.port)
    await proxy.accept()
    try:
        assert await post(proxy.url) == 201
        proxy.upstream = ("127.0.0.1", second.port)  # the server restarted on another port
        assert await post(proxy.url) == 201
        assert (first.committed, second.committed) == (1, 1)
    finally:
        await proxy.close()
        assert second.runner is not None
        await second.runner.cleanup()


async def test_a_stalled_proxy_holds_data_without_closing(pos: tuple[Pos, str]) -> None:
    server, _url = pos
    proxy = FaultProxy("127.0.0.1", server.port)
    await proxy.accept()
    try:
        async with aiohttp.ClientSession() as session:
            proxy.stall()
            request = asyncio.create_task(session.post(proxy.url + "/orders", json={}))
            done, _ = await asyncio.wait([request], timeout=0.5)
            assert not done and server.committed == 0, "nothing passes while stalled"
            proxy.resume()
            async with await request as response:
                assert response.status == 201, "the held request went through, late"
            assert server.committed == 1
    finally:
        await proxy.close()

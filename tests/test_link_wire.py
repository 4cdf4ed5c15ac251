"""The link on the wire, its other end spoken by hand over real connections on loopback: what a
session sends and when, what a hub does with an agent that vanishes mid-handshake, and in what
order it takes an agent's menus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from helpers import POS_API_KEY, eventually
from linkharness import hub_and_receiver, hub_settings, pair
from loguru import logger

import pos_demo.plugin as demo_plugin
from pos_demo.simulator import RunningSimulator
from pos_demo.translate import menu_from_pos
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.hookspecs import hookimpl
from posintegrator.link.hub import HubEnd
from posintegrator.link.protocol import Ack, Message, Ping, decode, encode
from posintegrator.link.session import LinkSession
from posintegrator.model import Menu
from posintegrator.plugins import PluginHost
from posintegrator.runtime.host import Host
from posintegrator.store import SQLiteStore
from posintegrator.store.link import LinkMessage


class QuietEnd:
    """A link end that stores nothing and says nothing of itself."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    async def handle(self, messages: list[Message]) -> None:
        return None

    async def outgoing(self, message: LinkMessage) -> bytes:
        return message.body

    def acknowledged(self, order_ids: list[str]) -> None:
        return None

    async def state(self) -> dict[str, Any]:
        return {}

    def peer_state(self, state: dict[str, Any]) -> None:
        return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "hub.db", synchronous="NORMAL")
    await opened.open()
    yield opened
    await opened.close()


@asynccontextmanager
async def _link_to(store: SQLiteStore, peer: str, window: int) -> AsyncIterator[str]:
    """A server running a session with ``peer`` on each WebSocket connection; its URL."""

    async def serve(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = LinkSession(
            ws,
            QuietEnd(peer),
            store,
            peer_received=0,
            received_through=0,
            window=window,
            heartbeat=30.0,
        )
        await session.run()
        return ws

    app = web.Application()
    app.router.add_get("/link", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/link"
    finally:
        await runner.cleanup()


async def _next_message(ws: aiohttp.ClientWebSocketResponse) -> int:
    """The number of the next message frame (heartbeats skipped)."""
    while True:
        raw = await ws.receive(timeout=30)
        assert raw.type == aiohttp.WSMsgType.BINARY, raw
        frame = decode(raw.data)
        if isinstance(frame, Message):
            return frame.seq
        assert isinstance(frame, Ping), frame


async def test_the_window_counts_messages_not_numbers(store: SQLiteStore) -> None:
    """A hub numbers the messages of all its agents in one sequence, so one agent's numbers
    have gaps; at most ``window`` of its messages are unacknowledged, whatever their numbers."""
    for index in range(6):
        for peer in ("agent-a", "agent-b"):
            body = orjson.dumps({"n": index})
            await store.link_enqueue(peer, "order", body, f"{peer}-{index}")
    async with (
        _link_to(store, "agent-a", window=3) as url,
        aiohttp.ClientSession() as http,
        http.ws_connect(url) as ws,
    ):
        first = [await _next_message(ws) for _ in range(3)]
        assert first == [1, 3, 5], "agent-a's messages, as many as the window allows"
        await ws.send_bytes(encode(Ack(seq=1)))
        # One of three acknowledged: room for one more.
        assert await _next_message(ws) == 7
        await ws.send_bytes(encode(Ack(seq=7)))  # everything through 7
        assert [await _next_message(ws) for _ in range(2)] == [9, 11]


async def test_an_agent_gone_during_the_handshake_is_no_error(tmp_path: Path) -> None:
    """Venue networks drop connections at any moment, the handshake included: the hub notes it
    and goes on, without an error and its traceback in the log."""
    records: list[Any] = []
    sink = logger.add(records.append, level="WARNING")
    try:
        async with hub_and_receiver(tmp_path, {"venue": "downtown"}) as (hub, _, _token):
            upgrade = (
                b"GET /v1/link HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            # Gone after the hub's hello, and gone before it could even say hello.
            for wait_for_hello in (True, False):
                reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
                writer.write(upgrade)
                if wait_for_hello:
                    assert b"101" in await reader.readuntil(b"\r\n\r\n")
                    assert b"hello" in await reader.read(4096)
                writer.transport.abort()

            async def both_noted() -> bool:
                return sum("during the handshake" in str(r) for r in records) == 2

            await eventually(both_noted, timeout=20)
    finally:
        logger.remove(sink)
    errors = [str(r) for r in records if r.record["level"].no >= 40]
    assert not errors, errors


class SlowFirstTransform:
    """A menu transform (an extension plugin) that takes its time over the first menu it sees,
    as one asking a pricing service might."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    async def posintegrator_transform_menu(
        self, menu: Menu, location: str, connection: str
    ) -> None:
        self.seen += 1
        if self.seen == 1:
            await asyncio.sleep(0.5)


async def test_menus_of_one_location_are_published_in_the_order_sent(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """An agent offline for a while sends the menu versions it made meanwhile in one burst: the
    hub publishes them in that order, so the newest is the one left live."""
    secret = generate_secret()
    cloud = CloudReceiver([secret])
    await cloud.start()
    settings = hub_settings(tmp_path / "hub", cloud, secret, "token", {"venue": "downtown"})
    plugins = PluginHost.from_objects({"demo": demo_plugin, "slow": SlowFirstTransform()})
    hub = Host(settings, plugins=plugins)
    await hub.start()
    try:
        await pair(hub.url, "token", tmp_path / "agent", "venue-agent", ["downtown"])
        agent = await hub.store.agent("venue-agent")
        assert agent is not None and hub.links is not None
        async with (
            aiohttp.ClientSession(headers={"X-Api-Key": POS_API_KEY}) as http,
            http.get(f"{simulator.url}/menu", params={"location": "downtown"}) as response,
        ):
            older = menu_from_pos(await response.json(), "downtown")
        first = older.products[0]
        renamed = first.model_copy(update={"name": first.name + " (new recipe)"})
        newer = older.model_copy(update={"products": [renamed, *older.products[1:]]})
        # One batch, as the hub's end of the link takes what arrived together.
        await HubEnd(hub.links, agent).handle([_menu_notice(older, 1), _menu_notice(newer, 2)])
        live = await hub.live_menus.get("downtown")
        assert live is not None and live.snapshot.version == 2
        assert live.menu.products[0].name == renamed.name, "the newer menu is live"
    finally:
        await hub.stop(grace_seconds=1.0)
        await cloud.stop()


def _menu_notice(menu: Menu, seq: int) -> Message:
    """An agent's ``menu.published`` message, with its menu."""
    body = {
        "type": "menu.published",
        "event_id": f"agent-menu-{seq}",
        "sequence": seq,
        "location": menu.location,
        "version": seq,
        "content_hash": f"hash-{seq}",
        "published_at": "2026-11-30T12:00:00Z",
        "menu_url": f"/v1/locations/{menu.location}/menu",
        "menu": menu.model_dump(mode="json"),
    }
    return Message(seq=seq, kind="event", body=body)

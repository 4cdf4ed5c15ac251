"""One established link: numbered messages both ways, acknowledgements, heartbeats.

The same class runs at both ends once the handshake is done (docs/link.md):

* **Sending.** Messages wait in this end's store until the peer acknowledges them. The session
  sends them in number order, at most ``window`` unacknowledged at a time, starting after the
  number the peer said it has; after a reconnect that resends exactly what may have been lost.
* **Receiving.** Messages are handed to this end's :class:`LinkEnd` in batches, which stores
  what they carry (idempotently); then their highest number is recorded and acknowledged. A
  message numbered at or below what was already received is a duplicate: acknowledged again,
  not processed again.
* **Heartbeats.** Each end pings every ``heartbeat`` seconds, carrying its current condition;
  the answers give the round-trip time. A link silent for two heartbeats is dead and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from loguru import logger

from posintegrator.link.protocol import (
    Ack,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Refused,
    decode,
    encode,
    encode_message,
)
from posintegrator.runtime.shutdown import cancel_and_wait
from posintegrator.store.link import LinkMessage, LinkStore

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse

#: Most received messages handed to the end in one batch.
MAX_BATCH = 256


class LinkEnd(Protocol):
    """What one end does with a link: store what arrives, describe itself, shape what leaves."""

    peer: str
    """The peer's name in this end's link tables (``hub`` at an agent, the agent's name at a
    hub)."""

    async def handle(self, messages: list[Message]) -> None:
        """Store what ``messages`` carry, in order; it must be safe to do twice."""
        ...

    async def outgoing(self, message: LinkMessage) -> bytes:
        """The body to send for a stored message (an end may add to it, e.g. a whole menu)."""
        ...

    def acknowledged(self, order_ids: list[str]) -> None:
        """The peer now holds these orders."""
        ...

    async def state(self) -> dict[str, Any]:
        """This end's condition, sent with each heartbeat."""
        ...

    def peer_state(self, state: dict[str, Any]) -> None:
        """The condition the peer sent with its heartbeat."""
        ...


@dataclass
class LinkStats:
    """What a session has seen; the fleet view shows it."""

    connected_at: float = field(default_factory=time.time)
    last_heard: float = field(default_factory=time.monotonic)
    last_heartbeat_at: float | None = None
    rtt_seconds: float | None = None
    sent: int = 0
    received: int = 0
    duplicates: int = 0


class LinkClosed(Exception):
    """The link ended; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkSession:
    """An authenticated link, running until it closes.

    :param peer_received: the highest of this end's message numbers the peer has stored (from
        the handshake): sending resumes after it.
    :param received_through: the highest number this end has stored from the peer.
    """

    def __init__(
        self,
        ws: WebSocket,
        end: LinkEnd,
        store: LinkStore,
        *,
        peer_received: int,
        received_through: int,
        window: int,
        heartbeat: float,
    ) -> None:
        self._ws = ws
        self._end = end
        self._store = store
        self._acked = peer_received
        self._sent = peer_received
        # The numbers sent and not yet acknowledged. Not ``_sent - _acked``: a hub numbers the
        # messages to all its agents in one sequence, so those to one agent have gaps.
        self._in_flight: deque[int] = deque()
        self._received = received_through
        self._window = window
        self._heartbeat = heartbeat
        self._wake = asyncio.Event()
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self.stats = LinkStats()

    def wake(self) -> None:
        """New messages wait to be sent."""
        self._wake.set()

    @property
    def unacknowledged(self) -> int:
        """Messages sent and not yet acknowledged."""
        return len(self._in_flight)

    async def run(self) -> str:
        """Run until the link closes; returns why it closed."""
        await self._store.link_acknowledged(self._end.peer, self._acked)
        tasks = [
            asyncio.create_task(self._read(), name="link-read"),
            asyncio.create_task(self._process(), name="link-process"),
            asyncio.create_task(self._send(), name="link-send"),
            asyncio.create_task(self._beat(), name="link-heartbeat"),
        ]
        reason = "closed"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if isinstance(error, LinkClosed):
                    reason = error.reason
                elif error is not None:
                    reason = f"{type(error).__name__}: {error}"
                    if not isinstance(error, ProtocolError | aiohttp.ClientError | OSError):
                        logger.opt(exception=error).error("link with {} failed", self._end.peer)
        finally:
            await cancel_and_wait(tasks)
            if not self._ws.closed:
                with contextlib.suppress(Exception):
                    await self._ws.close()
        return reason

    async def close(self, reason: str) -> None:
        """End the link, telling the peer why."""
        with contextlib.suppress(Exception):
            await self._frame(encode(Refused(reason=reason)))
        with contextlib.suppress(Exception):
            await self._ws.close(code=4003, message=reason.encode()[:120])

    async def _frame(self, data: bytes) -> None:
        async with self._send_lock:
            await self._ws.send_bytes(data)

    # --- receiving ------------------------------------------------------------------------------

    async def _read(self) -> None:
        async for raw in self._ws:
            if raw.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            self.stats.last_heard = time.monotonic()
            frame = decode(raw.data)
            if isinstance(frame, Message):
                self._inbox.put_nowait(frame)
            elif isinstance(frame, Ack):
                await self._acknowledged(frame.seq)
            elif isinstance(frame, Ping):
                self.stats.last_heartbeat_at = time.time()
                self._end.peer_state(frame.state)
                await self._frame(encode(Pong(at=frame.at)))
            elif isinstance(frame, Pong):
                self.stats.rtt_seconds = max(0.0, time.monotonic() - frame.at)
            elif isinstance(frame, Refused):
                raise LinkClosed(f"the peer ended the link: {frame.reason}")
            else:
                raise ProtocolError(f"unexpected {frame.t!r} frame on an open link")
        raise LinkClosed("the connection closed")

    async def _process(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < MAX_BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            fresh = [m for m in batch if m.seq > self._received]
            self.stats.duplicates += len(batch) - len(fresh)
            if fresh:
                await self._end.handle(fresh)
                self._received = fresh[-1].seq
                await self._store.link_received(self._end.peer, self._received)
                self.stats.received += len(fresh)
            await self._frame(encode(Ack(seq=self._received)))

    # --- sending --------------------------------------------------------------------------------

    async def _acknowledged(self, seq: int) -> None:
        if seq <= self._acked:
            return
        self._acked = min(seq, self._sent)
        while self._in_flight and self._in_flight[0] <= self._acked:
            self._in_flight.popleft()
        handed = await self._store.link_acknowledged(self._end.peer, self._acked)
        if handed:
            self._end.acknowledged(handed)
        self._wake.set()

    async def _send(self) -> None:
        while True:
            self._wake.clear()
            room = self._window - self.unacknowledged
            messages = (
                await self._store.link_take(self._end.peer, self._sent, room) if room > 0 else []
            )
            for message in messages:
                body = await self._end.outgoing(message)
                await self._frame(encode_message(message.seq, message.kind, body))
                self._sent = message.seq
                self._in_flight.append(message.seq)
                self.stats.sent += 1
            if not messages or self.unacknowledged >= self._window:
                await self._wake.wait()

    # --- heartbeats -----------------------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            silent = time.monotonic() - self.stats.last_heard
            if silent > 2 * self._heartbeat:
                raise LinkClosed(f"no sign of life for {silent:.1f} s")
            state = await self._end.state()
            await self._frame(encode(Ping(at=time.monotonic(), state=state)))
            await asyncio.sleep(self._heartbeat)


async def receive_frame(ws: WebSocket, timeout: float) -> Any:
    """The next frame during a handshake.

    :raises LinkClosed: none came in time, or the connection closed.
    :raises ProtocolError: it is not a frame.
    """
    try:
        raw = await ws.receive(timeout=timeout)
    except TimeoutError:
        raise LinkClosed("the handshake timed out") from None
    if raw.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
        raise LinkClosed("the connection closed during the handshake")
    return decode(raw.data)

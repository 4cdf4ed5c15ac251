"""A small stand-in for the cloud's webhook endpoint: verifies our signatures and records events.

The demo runs it to print what the cloud would receive; tests and the conformance kit use it to
check what was sent, in which order, and that every event is signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from posintegrator.cloud.notifier import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class CloudReceiver:
    """Records every correctly signed event it receives (deduplicated by event id).

    :param secret: the shared webhook secret.
    :param on_event: called with each new event (the demo prints it).
    :param fail_with: answer every request with this status instead (to simulate a cloud outage).
    """

    secret: bytes
    on_event: Callable[[dict[str, Any]], None] | None = None
    fail_with: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    duplicates: int = 0
    _seen: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not verify(self.secret, timestamp, body, signature):
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        event = orjson.loads(body)
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        if event_id != event.get("event_id"):
            self.rejected += 1
            return web.Response(status=400, text="event id header does not match the body")
        if event_id in self._seen:
            self.duplicates += 1
            return web.Response(status=200)
        self._seen.add(event_id)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return web.Response(status=204)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); returns the webhook URL."""
        app = web.Application()
        app.router.add_post("/webhooks/posintegrator", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}/webhooks/posintegrator"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def statuses(self, order_id: str) -> list[str]:
        """The statuses received for one order, in sequence order."""
        mine = [e for e in self.events if e.get("order_id") == order_id]
        return [e["status"] for e in sorted(mine, key=lambda e: int(e["sequence"]))]

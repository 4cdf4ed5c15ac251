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

from posintegrator.cloud.signatures import (
    TOLERANCE_SECONDS,
    SignatureRejected,
    secret_key,
    verify,
)


@dataclass
class Delivery:
    """One request exactly as it arrived (for checking it with other verifiers)."""

    headers: dict[str, str]
    body: bytes


@dataclass
class CloudReceiver:
    """Records every correctly signed event it receives (deduplicated by event id).

    :param secrets: the Standard Webhooks secrets (``whsec_...``) this cloud holds; a delivery
        passes when any of its signatures matches any of them.
    :param on_event: called with each new event (the demo prints it).
    :param fail_with: answer every request with this status instead (to simulate a cloud outage).
    :param refuse: called with each correctly signed event; the (status, body) it returns is
        answered instead of accepting the event (a cloud that refuses one event for itself).
    :param tolerance_seconds: how far a delivery's timestamp may be from now (replay window).
    """

    secrets: list[str] = field(repr=False)
    on_event: Callable[[dict[str, Any]], None] | None = None
    fail_with: int | None = None
    refuse: Callable[[dict[str, Any]], tuple[int, str] | None] | None = None
    tolerance_seconds: float = TOLERANCE_SECONDS
    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    duplicates: int = 0
    _keys: list[bytes] = field(default_factory=list, repr=False)
    _seen: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self._keys = [secret_key(secret) for secret in self.secrets]

    @property
    def rejected(self) -> int:
        """How many requests were refused (bad or stale signature, mismatched id)."""
        return len(self.rejections)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        try:
            event_id = verify(self._keys, request.headers, body, tolerance=self.tolerance_seconds)
        except SignatureRejected as exc:
            self.rejections.append(str(exc))
            return web.Response(status=401, text=f"refused: {exc}")
        event = orjson.loads(body)
        if event_id != event.get("event_id"):
            self.rejections.append("webhook-id does not match the body's event_id")
            return web.Response(status=400, text="webhook-id does not match the body's event_id")
        if self.refuse is not None and (answer := self.refuse(event)) is not None:
            return web.Response(status=answer[0], text=answer[1])
        self.deliveries.append(Delivery(dict(request.headers), body))
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

    def order_events(self, order_id: str) -> list[dict[str, Any]]:
        """Every event received for one order (status changes, cancellation refusals), in
        sequence order."""
        mine = [e for e in self.events if e.get("order_id") == order_id]
        return sorted(mine, key=lambda e: int(e["sequence"]))

    def statuses(self, order_id: str) -> list[str]:
        """The statuses one order moved through, in sequence order."""
        return [
            e["status"] for e in self.order_events(order_id) if e["type"] == "order.status_changed"
        ]

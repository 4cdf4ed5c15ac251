"""A plugin that hangs, raises or returns garbage on one connection holds up nothing but that
connection: the other connection's orders and menus keep flowing, and the broken calls are cut
off (a hang, after ``call_timeout_seconds``) and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fakepos import ScriptedPos
from helpers import eventually

from posintegrator.context import ConnectionContext
from posintegrator.errors import PosError
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import InboundWebhook, SubmitResult, TrackedOrder, WebhookResult
from posintegrator.model import Menu, Order, OrderStatus, StatusEvent
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order


class BrokenPos(ScriptedPos):
    """A POS plugin that misbehaves in one way (``hang``, ``raise`` or ``garbage``) on every call
    but the menu of its first location, which it serves so that orders can be placed."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.calls = 0
        self.cut_off = 0

    async def _misbehave(self) -> Any:
        self.calls += 1
        if self.how == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cut_off += 1
                raise
        if self.how == "raise":
            raise RuntimeError("the plugin has a bug")
        return "garbage"

    @hookimpl
    async def pos_fetch_menu(self, ctx: ConnectionContext, location: str) -> Menu:
        if location == ctx.locations[0]:
            return one_product_menu(location)
        result: Menu = await self._misbehave()
        return result

    @hookimpl
    async def pos_submit_order(
        self, ctx: ConnectionContext, order: Order, idempotency_key: str
    ) -> SubmitResult:
        result: SubmitResult = await self._misbehave()
        return result

    @hookimpl
    async def pos_poll_status(
        self, ctx: ConnectionContext, orders: list[TrackedOrder]
    ) -> list[StatusEvent]:
        result: list[StatusEvent] = await self._misbehave()
        return result

    @hookimpl
    async def pos_parse_webhook(
        self, ctx: ConnectionContext, request: InboundWebhook
    ) -> WebhookResult:
        result: WebhookResult = await self._misbehave()
        return result


def _connection(name: str, locations: list[str]) -> ConnectionSettings:
    return ConnectionSettings(
        name=name,
        plugin=name,
        locations=locations,
        status_source="polling",
        status_poll_seconds=0.2,
        menu_sync_seconds=3600,
        call_timeout_seconds=1.0,
        webhook_timeout_seconds=1.0,
        failure_threshold=1000,
    )


@pytest.mark.parametrize("how", ["hang", "raise", "garbage"])
async def test_a_broken_plugin_does_not_stop_the_other_connection(tmp_path: Path, how: str) -> None:
    good = ScriptedPos()
    bad = BrokenPos(how)
    plugins = PluginHost.from_objects({"good": good, "bad": bad})
    connections = [_connection("good", ["g1"]), _connection("bad", ["b1", "b2"])]
    async with running_host(tmp_path, connections, plugins=plugins) as harness:
        status, body = await harness.post_order(sample_order(one_product_menu("b1"), "bad-1"))
        assert status == 202, body
        await eventually(lambda: _first_attempt(harness, "bad-1", done=False), timeout=20)
        # While the broken connection keeps failing, the good one delivers and tracks orders.
        for index in range(3):
            order = sample_order(one_product_menu("g1"), f"good-{index}")
            status, body = await harness.post_order(order)
            assert status == 202, body
            good.statuses[order["id"]] = OrderStatus.READY
        for index in range(3):
            await harness.wait_for_status(f"good-{index}", {OrderStatus.READY}, timeout=20)
        # A menu sync of the broken connection fails cleanly, and the menu stays unpublished.
        bad_jobs = harness.host.connections["bad"]
        with pytest.raises(PosError) as refused:
            await bad_jobs.menusync.sync("b2")
        assert "'bad'" in refused.value.message
        status, _ = await harness.request("GET", "/v1/locations/b2/menu")
        assert status == 404
        # Its webhook gets 503 (try again), never a 500 or a hung request.
        status, body = await harness.request("POST", "/pos/bad/webhook", raw=b"{}")
        assert status == 503, body
        # The broken order is retried, never lost, and never shown as delivered.
        await eventually(lambda: _first_attempt(harness, "bad-1", done=True), timeout=20)
        view = await harness.order("bad-1")
        assert view["status"] == OrderStatus.SUBMITTING
        attempt = view["delivery_attempts"][0]
        assert attempt["error"] and ("cut off" in attempt["error"] or "bad" in attempt["error"])
        plugin = harness.host.plugins.pos("bad")
        if how == "hang":
            assert bad.cut_off >= 1 and plugin.timeouts >= 1
            assert "call_timeout_seconds" in attempt["error"]
        else:
            assert plugin.bug_count >= 1
        assert harness.host.plugins.pos("good").bug_count == 0


async def _first_attempt(harness: HostHarness, order_id: str, *, done: bool) -> bool:
    """Whether the order's first delivery attempt has begun (``done``: and ended)."""
    attempts = (await harness.order(order_id))["delivery_attempts"]
    return bool(attempts) and (not done or attempts[0]["outcome"] != "in_flight")

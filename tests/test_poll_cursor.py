"""Status polling across a crash: a POS feed is read after a cursor the plugin keeps in its
state, and that cursor moves on only once the host has stored the events read with it. Else a
process dying between the two would skip those events for good (found by the venue agents'
chaos test: orders left READY at the hub while the POS had them picked up)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from fakepos import ScriptedPos
from helpers import eventually

from posintegrator.context import ConnectionContext
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import TrackedOrder
from posintegrator.model import OrderStatus, StatusEvent
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import one_product_menu, running_host, sample_order


@dataclass(eq=False)
class FeedPos(ScriptedPos):
    """A POS whose status changes are read from an event feed, after a cursor kept in the
    plugin's state (as DemoPOS's are)."""

    feed: list[tuple[str, OrderStatus]] = field(default_factory=list)

    @hookimpl
    async def pos_poll_status(
        self, ctx: ConnectionContext, orders: list[TrackedOrder]
    ) -> list[StatusEvent]:
        cursor = int(await ctx.state.get("cursor") or 0)
        await ctx.state.set("cursor", str(len(self.feed)))
        return [
            StatusEvent(order_id=order_id, status=status, source="pos:feed")
            for order_id, status in self.feed[cursor:]
        ]


class DiesOnReady:
    """An observer during which the process dies: it never returns from the READY change."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()

    @hookimpl
    async def posintegrator_order_status_changed(
        self, order_id: str, old: OrderStatus, new: OrderStatus, event: StatusEvent
    ) -> None:
        if new == OrderStatus.READY:
            self.reached.set()
            await asyncio.Event().wait()


async def test_a_poll_cut_off_is_read_again_after_a_restart(tmp_path: Path) -> None:
    pos = FeedPos()
    dies = DiesOnReady()
    settings = ConnectionSettings(
        name="fake",
        plugin="fake",
        locations=["loc"],
        status_source="polling",
        status_poll_seconds=0.1,
        menu_sync_seconds=3600,
    )
    plugins = PluginHost.from_objects({"fake": pos, "dies": dies})
    async with running_host(tmp_path, [settings], plugins=plugins) as harness:
        await harness.post_order(sample_order(one_product_menu("loc"), "o-1"))
        await harness.wait_for_status("o-1", {OrderStatus.ACCEPTED})
        pos.feed += [
            ("o-1", OrderStatus.IN_PREPARATION),
            ("o-1", OrderStatus.READY),
            ("o-1", OrderStatus.COMPLETED),
        ]

        async def cut_off() -> bool:
            return dies.reached.is_set()

        # READY is stored; the process dies before COMPLETED is (stopping cuts the poll off).
        await eventually(cut_off, timeout=20)
    async with running_host(
        tmp_path, [settings], plugins=PluginHost.from_objects({"fake": pos})
    ) as harness:
        view = await harness.wait_for_status("o-1", {OrderStatus.COMPLETED}, timeout=20)
        applied = [h["status"] for h in view["history"] if h["applied"]]
        assert applied[-3:] == ["IN_PREPARATION", "READY", "COMPLETED"]

"""Delivery rules, each with a scripted POS: exactly once through unknown outcomes and errors."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fakepos import ScriptedPos, commit_then
from helpers import eventually, fake_host_plugins

from posintegrator.context import ConnectionContext
from posintegrator.errors import (
    AmbiguousError,
    AuthError,
    NeedsAttentionError,
    PermanentError,
    RetryableError,
)
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import Capabilities, TrackedOrder
from posintegrator.model import OrderStatus, StatusEvent, utcnow
from posintegrator.orders.intake import idempotency_key
from posintegrator.runtime.host import SWITCH_INTERVAL_SECONDS
from posintegrator.settings import ConnectionSettings
from posintegrator.store import DueDeliveries
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order

ACCEPTED_OR_LATER = {
    OrderStatus.ACCEPTED,
    OrderStatus.IN_PREPARATION,
    OrderStatus.READY,
    OrderStatus.COMPLETED,
}


def order(order_id: str) -> dict[str, Any]:
    return sample_order(one_product_menu("loc"), order_id)


@asynccontextmanager
async def start(tmp_path: Path, fake: ScriptedPos, **connection: Any) -> AsyncIterator[HostHarness]:
    settings = ConnectionSettings(
        name="fake",
        plugin="fake",
        locations=["loc"],
        status_source="polling",
        status_poll_seconds=0.1,
        menu_sync_seconds=3600,
        **connection,
    )
    async with running_host(tmp_path, [settings], plugins=fake_host_plugins(fake)) as harness:
        yield harness


@pytest.fixture
def fake() -> ScriptedPos:
    return ScriptedPos()


@pytest.fixture
async def host(tmp_path: Path, fake: ScriptedPos) -> AsyncIterator[HostHarness]:
    async with start(tmp_path, fake) as harness:
        yield harness


async def test_new_order_is_delivered_at_once(host: HostHarness, fake: ScriptedPos) -> None:
    # Nothing is due and no timer runs: the delivery loop waits without a timeout, so only the
    # API's wake-up can start the delivery (without it the order would never be delivered).
    # The pause lets the loop reach that wait; on a slow machine it may not have, and the test
    # is then merely less strict, never wrong.
    await asyncio.sleep(0.2)
    status, _ = await host.post_order(order("o-1"))
    assert status == 202
    view = await host.wait_for_status("o-1", ACCEPTED_OR_LATER, timeout=20)
    assert view["pos_order_id"] == "POS-1"
    assert fake.submissions == [("o-1", idempotency_key("o-1"))]


async def test_ambiguous_outcome_then_lookup_finds_it(host: HostHarness, fake: ScriptedPos) -> None:
    fake.outcomes = [commit_then(AmbiguousError("read timeout"))]
    await host.post_order(order("o-2"))
    view = await host.wait_for_status("o-2", ACCEPTED_OR_LATER)
    assert len(fake.submissions) == 1, "must not resend an order the POS already has"
    assert fake.lookups == ["o-2"]
    assert view["pos_order_id"] == fake.orders["o-2"]
    assert any(h["source"].endswith(":lookup") for h in view["history"])
    assert [a["outcome"] for a in view["delivery_attempts"]] == ["unknown", "found in the POS"]


async def test_lookup_misses_then_resubmits_with_the_same_key(
    host: HostHarness, fake: ScriptedPos
) -> None:
    fake.outcomes = [AmbiguousError("connection reset")]
    await host.post_order(order("o-3"))
    await host.wait_for_status("o-3", ACCEPTED_OR_LATER)
    assert fake.lookups == ["o-3"]
    assert fake.submissions == [("o-3", idempotency_key("o-3"))] * 2
    assert list(fake.orders) == ["o-3"]
    view = await host.order("o-3")
    attempts = [(a["number"], a["outcome"], a["error"]) for a in view["delivery_attempts"]]
    assert attempts == [(1, "unknown", "connection reset"), (2, "ACCEPTED", None)]


async def test_no_lookup_and_no_idempotency_parks_as_needs_attention(tmp_path: Path) -> None:
    fake = ScriptedPos(
        capabilities=Capabilities(
            menu=True,
            orders=True,
            order_lookup=False,
            idempotent_submit=False,
            status_webhooks=False,
            status_polling=True,
        ),
        outcomes=[commit_then(AmbiguousError("timeout"))],
    )
    async with start(tmp_path, fake) as harness:
        await harness.post_order(order("o-4"))
        view = await harness.wait_for_status("o-4", {OrderStatus.NEEDS_ATTENTION})
        assert "check the POS" in view["status_reason"]
        # Nothing is scheduled for it any more: no attempt will ever come by itself.
        due = await harness.host.store.due_deliveries("fake", utcnow(), 10)
        assert due.records == [] and due.next_at is None
        await asyncio.sleep(1.5)  # longer than the first retry would wait
        assert len(fake.submissions) == 1, "never resend blindly"
        await harness.wait_for_events(
            lambda _: harness.receiver.statuses("o-4")[-1:] == ["NEEDS_ATTENTION"]
        )


async def test_no_lookup_but_idempotent_pos_gets_the_same_key_again(tmp_path: Path) -> None:
    fake = ScriptedPos(
        capabilities=Capabilities(
            menu=True,
            orders=True,
            order_lookup=False,
            idempotent_submit=True,
            status_webhooks=False,
            status_polling=True,
        ),
        outcomes=[commit_then(AmbiguousError("timeout"))],
    )
    async with start(tmp_path, fake) as harness:
        await harness.post_order(order("o-5"))
        await harness.wait_for_status("o-5", ACCEPTED_OR_LATER)
        assert fake.submissions == [("o-5", idempotency_key("o-5"))] * 2
        assert len(fake.orders) == 1


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    fake = ScriptedPos(outcomes=[RetryableError("rate limited", retry_after=1.2)])
    async with start(tmp_path, fake) as harness:
        started = time.monotonic()
        await harness.post_order(order("o-6"))
        await harness.wait_for_status("o-6", ACCEPTED_OR_LATER, timeout=30)
        assert time.monotonic() - started >= 1.2
        assert len(fake.submissions) == 2
        assert fake.lookups == [], "a refused attempt did not reach the POS: no lookup needed"


async def test_permanent_refusal_rejects_with_the_reason(
    host: HostHarness, fake: ScriptedPos
) -> None:
    fake.outcomes = [PermanentError("409 sold out", reason="Cheeseburger is sold out")]
    await host.post_order(order("o-7"))
    view = await host.wait_for_status("o-7", {OrderStatus.REJECTED})
    assert view["status_reason"] == "Cheeseburger is sold out"
    events = await host.wait_for_events(lambda evs: any(e.get("status") == "REJECTED" for e in evs))
    [rejected] = [e for e in events if e.get("status") == "REJECTED"]
    assert rejected["reason"] == "Cheeseburger is sold out"


async def test_auth_failure_shows_in_connection_health(
    host: HostHarness, fake: ScriptedPos
) -> None:
    retry_may_answer = asyncio.Event()
    # The retry is held in flight until the test has seen the health: it cannot turn it back
    # to "ok" before the test looks, however slow the machine.
    fake.outcomes = [AuthError("401 invalid token"), retry_may_answer.wait]
    await host.post_order(order("o-8"))

    async def health() -> dict[str, Any]:
        _, body = await host.request("GET", "/v1/connections")
        connection: dict[str, Any] = body["connections"][0]
        return connection

    async def auth_failed() -> bool:
        return (await health())["health"] == "auth_failed"

    await eventually(auth_failed, timeout=20)
    assert (await health())["last_error"] == "401 invalid token"
    retry_may_answer.set()
    await host.wait_for_status("o-8", ACCEPTED_OR_LATER, timeout=30)
    assert len(fake.submissions) == 2
    _, body = await host.request("GET", "/v1/connections")
    assert body["connections"][0]["health"] == "ok"


async def test_plugin_bug_during_submit_counts_as_unknown_outcome(
    host: HostHarness, fake: ScriptedPos
) -> None:
    fake.outcomes = [commit_then(ValueError("bug after the POS took it"))]  # type: ignore[arg-type]
    await host.post_order(order("o-9"))
    await host.wait_for_status("o-9", ACCEPTED_OR_LATER)
    assert len(fake.submissions) == 1 and fake.lookups == ["o-9"]
    assert host.host.plugins.pos("fake").bug_count == 1


async def test_concurrency_limit_per_connection(tmp_path: Path) -> None:
    answer = asyncio.Event()
    ids = [f"c-{i}" for i in range(6)]
    # Every submission is held in flight until the test lets them answer.
    fake = ScriptedPos(outcomes=[answer.wait] * len(ids))
    async with start(tmp_path, fake, max_concurrency=2) as harness:
        await asyncio.gather(*(harness.post_order(order(i)) for i in ids))

        async def two_in_flight() -> bool:
            return fake.in_flight >= 2

        await eventually(two_in_flight, timeout=20)
        # All six are due and the loop was woken for each: without the limit it would have
        # started more by now.
        await asyncio.sleep(0.5)
        assert fake.in_flight == 2
        answer.set()
        for order_id in ids:
            await harness.wait_for_status(order_id, ACCEPTED_OR_LATER, timeout=20)
        assert fake.max_in_flight == 2
        assert sorted(fake.orders) == sorted(ids)


async def test_a_new_order_starts_without_waiting_for_the_loop_to_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order just accepted goes to the POS straight away when a slot is free: the delivery
    loop's look at the store (one more trip through its writer) is not on its way."""
    fake = ScriptedPos()
    async with start(tmp_path, fake) as harness:
        store = harness.host.store
        due_deliveries = store.due_deliveries
        found: list[str] = []

        async def watched(connection: str, now: datetime, limit: int) -> DueDeliveries:
            due = await due_deliveries(connection, now, limit)
            found.extend(record.order.id for record in due.records)
            return due

        monkeypatch.setattr(store, "due_deliveries", watched)
        for order_id in ("new-1", "new-2"):
            await harness.post_order(order(order_id))
            await harness.wait_for_status(order_id, ACCEPTED_OR_LATER, timeout=20)
        assert found == []
        assert sorted(fake.orders) == ["new-1", "new-2"]


async def test_recording_an_answer_holds_no_slot_for_the_pos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``max_concurrency`` limits calls to the POS, not what the host records after one: while
    the first order's outcome is still being written, the next order is already sent."""
    fake = ScriptedPos()
    async with start(tmp_path, fake, max_concurrency=1) as harness:
        store = harness.host.store
        finish_attempt = store.finish_attempt
        release = asyncio.Event()
        held: list[str] = []

        async def slow_finish(order_id: str, *args: Any, **kwargs: Any) -> None:
            if order_id == "slow-1":
                held.append(order_id)
                await release.wait()
            await finish_attempt(order_id, *args, **kwargs)

        monkeypatch.setattr(store, "finish_attempt", slow_finish)
        await harness.post_order(order("slow-1"))

        async def first_recording() -> bool:
            return bool(held)

        await eventually(first_recording, timeout=20)
        await harness.post_order(order("slow-2"))

        async def second_sent() -> bool:
            return "slow-2" in fake.orders

        try:
            await eventually(second_sent, timeout=20)
        finally:
            release.set()
        for order_id in ("slow-1", "slow-2"):
            await harness.wait_for_status(order_id, ACCEPTED_OR_LATER, timeout=20)
        assert fake.max_in_flight == 1


@pytest.mark.parametrize("before", [0.005, SWITCH_INTERVAL_SECONDS / 2])
async def test_a_host_lets_its_store_thread_back_in_promptly(tmp_path: Path, before: float) -> None:
    """The store's writer thread takes the interpreter lock back after each statement: a host
    shortens how long the event loop may keep it from that thread (Python's default is 5 ms),
    and never lengthens a shorter setting the process already chose."""
    original = sys.getswitchinterval()
    sys.setswitchinterval(before)
    try:
        async with start(tmp_path, ScriptedPos()):
            assert sys.getswitchinterval() == pytest.approx(min(before, SWITCH_INTERVAL_SECONDS))
    finally:
        sys.setswitchinterval(original)


async def test_polled_status_moves_forward_and_stale_is_ignored(
    host: HostHarness, fake: ScriptedPos
) -> None:
    await host.post_order(order("o-10"))
    await host.wait_for_status("o-10", {OrderStatus.ACCEPTED})
    fake.statuses["o-10"] = OrderStatus.READY
    await host.wait_for_status("o-10", {OrderStatus.READY})
    fake.statuses["o-10"] = OrderStatus.IN_PREPARATION  # the POS goes back: stale

    async def stale_seen() -> bool:
        history = (await host.order("o-10"))["history"]
        return any(h["status"] == "IN_PREPARATION" and not h["applied"] for h in history)

    await eventually(stale_seen, timeout=20)  # polled (every 0.1 s) and recorded, not applied
    view = await host.order("o-10")
    assert view["status"] == "READY"
    stale = [h for h in view["history"] if h["status"] == "IN_PREPARATION"]
    assert stale and not any(h["applied"] for h in stale)
    assert stale[0]["note"] == "stale: already READY"
    await host.wait_for_events(
        lambda evs: [e["status"] for e in evs if e.get("order_id") == "o-10"][-1:] == ["READY"]
    )
    assert "IN_PREPARATION" not in host.receiver.statuses("o-10")


@dataclass(eq=False)
class FeedPos(ScriptedPos):
    """Polls like a POS with a feed of changes: it stores how far it has read, and notes what
    the host had stored, and what the poll had written, when a polled READY was applied."""

    at_ready: list[tuple[str | None, str | None]] = field(default_factory=list)
    written: str | None = None
    store: Any = None

    @hookimpl
    async def pos_poll_status(
        self, ctx: ConnectionContext, orders: list[TrackedOrder]
    ) -> list[StatusEvent]:
        events = await super().pos_poll_status(ctx, orders)
        if events:
            read = int(await ctx.state.get("cursor") or 0) + len(events)
            await ctx.state.set("cursor", str(read))
            assert await ctx.state.get("cursor") == str(read), "the plugin reads what it wrote"
            self.written = str(read)
        return events

    @hookimpl
    async def posintegrator_order_status_changed(
        self, order_id: str, old: OrderStatus, new: OrderStatus, event: StatusEvent
    ) -> None:
        if event.source == "pos:fake" and new == OrderStatus.READY:
            stored = await self.store.state_get("fake", "cursor")
            self.at_ready.append((stored, self.written))


async def test_what_a_poll_stores_is_saved_after_its_changes_are_applied(tmp_path: Path) -> None:
    """A host killed between the two would otherwise skip the changes after its restart."""
    fake = FeedPos()
    async with start(tmp_path, fake) as harness:
        fake.store = harness.host.store
        await harness.post_order(order("o-14"))
        await harness.wait_for_status("o-14", {OrderStatus.ACCEPTED})
        fake.statuses["o-14"] = OrderStatus.READY
        await harness.wait_for_status("o-14", {OrderStatus.READY})

        [(stored, written)] = fake.at_ready
        assert stored != written, "what the poll read was not saved before READY was applied"

        async def saved() -> bool:
            return await harness.host.store.state_get("fake", "cursor") == written

        await eventually(saved)


async def test_a_refused_lookup_never_rejects_the_order(
    host: HostHarness, fake: ScriptedPos
) -> None:
    fake.outcomes = [commit_then(AmbiguousError("timeout"))]
    fake.lookup_errors = [PermanentError("400 bad query")]
    await host.post_order(order("o-11"))
    view = await host.wait_for_status("o-11", ACCEPTED_OR_LATER, timeout=30)
    assert fake.lookups == ["o-11", "o-11"], "looked up again after the refused lookup"
    assert len(fake.submissions) == 1, "the POS had it: never sent twice"
    assert "REJECTED" not in [h["status"] for h in view["history"]]


async def test_a_lookup_that_cannot_settle_parks_the_order_for_a_person(
    host: HostHarness, fake: ScriptedPos
) -> None:
    fake.outcomes = [AmbiguousError("timeout")]
    fake.lookup_errors = [NeedsAttentionError("2 POS orders fit order o-12, none marked")]
    await host.post_order(order("o-12"))
    view = await host.wait_for_status("o-12", {OrderStatus.NEEDS_ATTENTION}, timeout=30)
    assert view["status_reason"] == "2 POS orders fit order o-12, none marked"
    assert fake.lookups == ["o-12"] and len(fake.submissions) == 1, "no blind resend"
    outcomes = [a["outcome"] for a in view["delivery_attempts"]]
    assert outcomes == ["unknown", "NEEDS_ATTENTION"], "parked, not retried"
    connections = (await host.request("GET", "/v1/connections"))[1]
    assert [c["health"] for c in connections["connections"]] == ["ok"], (
        "the POS answered the lookup: an unsettled lookup is not a POS failure"
    )

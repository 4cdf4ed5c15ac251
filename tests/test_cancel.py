"""Cancelling an order, before and after the POS has it, against a scripted POS.

Each test checks what the POS was asked (never a submission after a cancellation, never a
cancellation of an order the POS does not have), where the order ends, and what the cloud
heard: its events in sequence, CANCELLED with the refund of what was prepaid, or an
``order.cancel_refused`` when the POS says it is too late.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fakepos import ScriptedPos, commit_then

from posintegrator.errors import AmbiguousError, RetryableError
from posintegrator.hooktypes import CancelResult, Capabilities
from posintegrator.model import OrderStatus
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order

CANCELLING = Capabilities(
    menu=True,
    orders=True,
    order_lookup=True,
    idempotent_submit=True,
    status_webhooks=False,
    status_polling=True,
    order_cancel=True,
)


@asynccontextmanager
async def host_with(
    tmp_path: Path, fake: ScriptedPos, **connection: Any
) -> AsyncIterator[HostHarness]:
    settings = ConnectionSettings(
        name="fake", plugin="fake", locations=["loc"], status_source="polling",
        status_poll_seconds=0.2, **connection,
    )  # fmt: skip
    async with running_host(
        tmp_path, [settings], plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        yield harness


def fake_pos(**overrides: Any) -> ScriptedPos:
    return ScriptedPos(capabilities=CANCELLING, **overrides)


async def place(harness: HostHarness, order_id: str) -> dict[str, Any]:
    order = sample_order(one_product_menu("loc"), order_id)
    status, body = await harness.post_order(order)
    assert status == 202, body
    return order


async def cancel(
    harness: HostHarness, order_id: str, by: str = "customer", reason: str = "changed my mind"
) -> tuple[int, Any]:
    return await harness.request(
        "POST", f"/v1/orders/{order_id}/cancel", {"requested_by": by, "reason": reason}
    )


async def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def events_of(harness: HostHarness, order_id: str, last_type: str) -> list[dict[str, Any]]:
    """The order's events once the last one is of ``last_type``; checks they are in sequence."""

    def done(_events: list[dict[str, Any]]) -> bool:
        mine = harness.receiver.order_events(order_id)
        return bool(mine) and mine[-1]["type"] == last_type

    await harness.wait_for_events(done)
    mine = harness.receiver.order_events(order_id)
    assert [e["sequence"] for e in mine] == list(range(1, len(mine) + 1))
    return mine


async def test_an_order_the_pos_does_not_have_is_cancelled_at_once(tmp_path: Path) -> None:
    fake = fake_pos(outcomes=[RetryableError("POS down")] * 50)
    async with host_with(tmp_path, fake) as harness:
        order = await place(harness, "c-1")
        await harness.wait_for_status("c-1", {OrderStatus.SUBMITTING})
        await wait_until(lambda: _attempted(harness, "c-1"))
        status, view = await cancel(harness, "c-1")
        assert status == 200 and view["status"] == "CANCELLED"
        assert view["status_reason"] == "changed my mind"
        assert view["history"][-1]["source"] == "cloud:customer"
        events = await events_of(harness, "c-1", "order.status_changed")
        assert events[-1]["status"] == "CANCELLED"
        assert events[-1]["refund"] == {"amount": order["total"], "currency": "EUR"}
        submitted = len(fake.submissions)
        await asyncio.sleep(1.5)  # longer than the next retry would have waited
        assert len(fake.submissions) == submitted, "a cancelled order is never sent again"
        assert fake.cancels == [], "nothing to take back from the POS"
        status, again = await cancel(harness, "c-1")
        assert status == 200 and again["status"] == "CANCELLED"


async def _attempted(harness: HostHarness, order_id: str) -> bool:
    return bool((await harness.order(order_id))["delivery_attempts"])


async def test_the_pos_cancels_an_order_it_has(tmp_path: Path) -> None:
    fake = fake_pos()
    async with host_with(tmp_path, fake) as harness:
        order = await place(harness, "c-2")
        await harness.wait_for_status("c-2", {OrderStatus.ACCEPTED})
        status, view = await cancel(harness, "c-2", by="aggregator", reason="courier not found")
        assert status == 202 and view["cancellation"]["state"] == "requested"
        view = await harness.wait_for_status("c-2", {OrderStatus.CANCELLED})
        assert fake.cancels == [("c-2", fake.orders["c-2"], "courier not found")]
        assert view["cancellation"]["state"] == "done"
        assert view["status_reason"] == (
            "cancelled at the request of cloud:aggregator: courier not found"
        )
        events = await events_of(harness, "c-2", "order.status_changed")
        assert [e["status"] for e in events][-2:] == ["ACCEPTED", "CANCELLED"]
        assert events[-1]["refund"] == {"amount": order["total"], "currency": "EUR"}
        assert events[-1]["source"] == "pos:fake"


async def test_too_late_is_refused_and_the_order_goes_on(tmp_path: Path) -> None:
    fake = fake_pos(cancel_outcomes=[CancelResult(cancelled=False, reason="too late: cooking")])
    async with host_with(tmp_path, fake) as harness:
        await place(harness, "c-3")
        await harness.wait_for_status("c-3", {OrderStatus.ACCEPTED})
        fake.statuses["c-3"] = OrderStatus.IN_PREPARATION
        await harness.wait_for_status("c-3", {OrderStatus.IN_PREPARATION})
        status, _ = await cancel(harness, "c-3")
        assert status == 202
        events = await events_of(harness, "c-3", "order.cancel_refused")
        refused = events[-1]
        assert (refused["status"], refused["reason"]) == ("IN_PREPARATION", "too late: cooking")
        assert refused["requested_by"] == "cloud:customer"
        view = await harness.order("c-3")
        assert view["status"] == "IN_PREPARATION"
        assert view["cancellation"]["state"] == "refused"
        assert view["cancellation"]["outcome"] == "too late: cooking"
        fake.statuses["c-3"] = OrderStatus.READY
        await harness.wait_for_status("c-3", {OrderStatus.READY})
        events = await events_of(harness, "c-3", "order.status_changed")
        assert [e["type"] for e in events][-2:] == ["order.cancel_refused", "order.status_changed"]
        assert "refund" not in events[-1] or events[-1]["refund"] is None


async def test_a_pos_that_cannot_be_reached_is_asked_again(tmp_path: Path) -> None:
    fake = fake_pos(cancel_outcomes=[RetryableError("503"), AmbiguousError("timeout")])
    async with host_with(tmp_path, fake) as harness:
        await place(harness, "c-4")
        await harness.wait_for_status("c-4", {OrderStatus.ACCEPTED})
        status, _ = await cancel(harness, "c-4")
        assert status == 202
        await harness.wait_for_status("c-4", {OrderStatus.CANCELLED}, timeout=20)
        assert len(fake.cancels) == 3
        view = await harness.order("c-4")
        assert view["cancellation"]["state"] == "done"


async def test_an_unknown_outcome_is_looked_up_before_cancelling(tmp_path: Path) -> None:
    """The POS took the order but the answer was lost: the lookup finds it, the POS cancels
    it; the POS never got the other: it is cancelled here, and neither is sent again."""
    fake = fake_pos(outcomes=[commit_then(AmbiguousError("timeout")), AmbiguousError("timeout")])
    async with host_with(tmp_path, fake) as harness:
        await place(harness, "c-5")
        await wait_until(lambda: _unknown(harness, "c-5"))
        status, _ = await cancel(harness, "c-5")
        assert status == 202
        view = await harness.wait_for_status("c-5", {OrderStatus.CANCELLED})
        assert fake.lookups[-1] == "c-5" and [c[0] for c in fake.cancels] == ["c-5"]
        assert [h["status"] for h in view["history"] if h["applied"]][-2:] == [
            "ACCEPTED",
            "CANCELLED",
        ]
        await place(harness, "c-6")
        await wait_until(lambda: _unknown(harness, "c-6"))
        status, _ = await cancel(harness, "c-6")
        view = await harness.wait_for_status("c-6", {OrderStatus.CANCELLED})
        assert "the POS did not have the order" in view["status_reason"]
        assert [c[0] for c in fake.cancels] == ["c-5"], "nothing to cancel in the POS"
        await asyncio.sleep(1.5)
        assert [s[0] for s in fake.submissions].count("c-6") == 1, "never sent again"


async def _unknown(harness: HostHarness, order_id: str) -> bool:
    attempts = (await harness.order(order_id))["delivery_attempts"]
    return bool(attempts) and attempts[-1]["outcome"] == "unknown"


async def test_a_cancellation_racing_a_submission_waits_for_its_outcome(tmp_path: Path) -> None:
    fake = fake_pos(submit_delay=1.0)
    async with host_with(tmp_path, fake) as harness:
        await place(harness, "c-7")
        await wait_until(lambda: _in_flight(harness, "c-7"))
        status, view = await cancel(harness, "c-7")
        assert status == 202 and view["status"] == "SUBMITTING"
        view = await harness.wait_for_status("c-7", {OrderStatus.CANCELLED})
        assert [s[0] for s in fake.submissions] == ["c-7"], "sent once"
        assert [c[0] for c in fake.cancels] == ["c-7"], "then cancelled in the POS"


async def _in_flight(harness: HostHarness, order_id: str) -> bool:
    attempts = (await harness.order(order_id))["delivery_attempts"]
    return bool(attempts) and attempts[-1]["outcome"] == "in_flight"


async def test_what_cannot_be_cancelled(tmp_path: Path) -> None:
    fake = fake_pos()
    async with host_with(tmp_path, fake) as harness:
        await place(harness, "c-8")
        await harness.wait_for_status("c-8", {OrderStatus.ACCEPTED})
        fake.statuses["c-8"] = OrderStatus.COMPLETED
        await harness.wait_for_status("c-8", {OrderStatus.COMPLETED})
        status, problem = await cancel(harness, "c-8")
        assert status == 409 and "COMPLETED" in problem["detail"]
        status, problem = await cancel(harness, "nope")
        assert status == 404
        status, problem = await harness.request(
            "POST", "/v1/orders/c-8/cancel", {"requested_by": "operator", "reason": "x"}
        )
        assert status == 422 and problem["errors"][0]["field"] == "operator"
        status, problem = await harness.request(
            "POST", "/v1/orders/c-8/cancel", {"requested_by": "customer", "reason": "x" * 1001}
        )
        assert status == 422 and problem["errors"][0]["field"] == "reason"


async def test_a_waiting_cancellation_is_not_retried_in_a_tight_loop(tmp_path: Path) -> None:
    """While the POS cannot say whether it has the order, the cancellation waits its backoff:
    the order's own retry time does not pull it forward."""
    fake = fake_pos(
        outcomes=[AmbiguousError("timeout")],
        lookup_errors=[RetryableError("lookup down")] * 1000,
    )
    # The circuit breaker would hide a tight loop by pausing calls: keep it out of the way.
    async with host_with(tmp_path, fake, failure_threshold=10_000) as harness:
        await place(harness, "c-9")
        await wait_until(lambda: _unknown(harness, "c-9"))
        status, _ = await cancel(harness, "c-9")
        assert status == 202
        await asyncio.sleep(2.0)
        assert 1 <= len(fake.lookups) <= 10, len(fake.lookups)  # a tight loop makes hundreds
        view = await harness.order("c-9")
        assert view["status"] == "SUBMITTING" and view["cancellation"]["state"] == "requested"
        assert view["cancellation"]["outcome"] == "lookup down"
        fake.lookup_errors.clear()
        await harness.wait_for_status("c-9", {OrderStatus.CANCELLED}, timeout=30)
        assert [s[0] for s in fake.submissions] == ["c-9"], "never sent again"

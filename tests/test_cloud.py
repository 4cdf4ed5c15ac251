"""Cloud notifications: signed, unique ids, per-order sequence, retried until acknowledged."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from typing import Any

import aiohttp
from helpers import eventually

from posintegrator.cloud.notifier import sign, verify
from posintegrator.model import OrderStatus
from posintegrator.testing import HostHarness


def test_signature_scheme_is_hmac_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k", 1700000000, body) == f"v1={expected}"
    now = int(time.time())
    good = sign(b"k", now, body)
    assert verify(b"k", str(now), body, good)
    assert not verify(b"k", str(now), body + b" ", good), "a changed body must not verify"
    assert not verify(b"other", str(now), body, good), "another secret must not verify"
    assert not verify(b"k", str(now - 3600), body, sign(b"k", now - 3600, body)), "too old"


async def test_events_are_signed_unique_and_in_sequence(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    await demo_host.post_order(example_order)
    await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    events = await demo_host.wait_for_events(
        lambda evs: "COMPLETED" in [e.get("status") for e in evs]
    )
    assert demo_host.receiver.rejected == 0
    assert len({e["event_id"] for e in events}) == len(events)
    mine = [e for e in events if e.get("order_id") == "demo-order-0001"]
    assert [e["sequence"] for e in mine] == list(range(1, len(mine) + 1))
    assert [e["status"] for e in mine][-1] == "COMPLETED"
    assert all(e["previous_status"] == p["status"] for p, e in itertools.pairwise(mine))
    menu_events = {e["location"]: e for e in events if e["type"] == "menu.published"}
    assert sorted(menu_events) == ["airport", "downtown"]
    assert menu_events["downtown"]["version"] == 1
    assert menu_events["downtown"]["diff_url"] is None, "a first version has nothing to diff"


async def test_unsigned_or_forged_requests_are_refused_by_the_receiver(
    demo_host: HostHarness,
) -> None:
    async with aiohttp.ClientSession() as session:
        now = str(int(time.time()))
        async with session.post(
            demo_host.receiver.url,
            data=b'{"event_id":"x"}',
            headers={
                "X-Posintegrator-Timestamp": now,
                "X-Posintegrator-Signature": "v1=" + "0" * 64,
                "X-Posintegrator-Event-Id": "x",
            },
        ) as response:
            assert response.status == 401
    assert demo_host.receiver.rejected == 1
    assert "x" not in [e["event_id"] for e in demo_host.receiver.events]


async def test_cloud_down_then_everything_arrives_in_order(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    demo_host.receiver.fail_with = 503
    await demo_host.post_order(example_order)
    await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    notifier = demo_host.host.notifier

    async def failed_twice() -> bool:
        return notifier.failures >= 2

    await eventually(failed_twice)
    assert [e for e in demo_host.receiver.events if e.get("order_id")] == []
    assert await demo_host.host.store.outbox_pending() >= 6
    demo_host.receiver.fail_with = None
    await demo_host.wait_for_events(
        lambda evs: "COMPLETED" in [e.get("status") for e in evs], timeout=20
    )
    assert demo_host.receiver.statuses("demo-order-0001") == [
        "RECEIVED",
        "SUBMITTING",
        "ACCEPTED",
        "IN_PREPARATION",
        "READY",
        "COMPLETED",
    ]
    sequences = [e["sequence"] for e in demo_host.receiver.events if e.get("order_id")]
    assert sequences == sorted(sequences), "one order's events arrive in sequence order"

    async def outbox_empty() -> bool:
        return await demo_host.host.store.outbox_pending() == 0

    await eventually(outbox_empty, timeout=20)


def test_the_fast_status_event_body_is_a_valid_event() -> None:
    from datetime import UTC, datetime

    from posintegrator.cloud.events import OrderStatusChanged, order_status_changed
    from posintegrator.model import OrderStatus

    body = order_status_changed(
        event_id="e1",
        sequence=2,
        order_id="o1",
        location="downtown",
        status=OrderStatus.ACCEPTED,
        previous_status=OrderStatus.SUBMITTING,
        occurred_at=datetime(2026, 11, 29, 4, 0, tzinfo=UTC),
        reason=None,
        pos_order_id="P1",
        source="pos:demo",
    )
    event = OrderStatusChanged.model_validate(body)
    assert event.model_dump(mode="json") == body

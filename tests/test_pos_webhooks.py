"""The POS webhook route: verified by the connection's plugin; a bad request changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, demo_connection, eventually, pos_orders

from pos_demo.simulator import RunningSimulator, sign_webhook
from posintegrator.model import OrderStatus
from posintegrator.runtime.host import Host
from posintegrator.testing import HostHarness, running_host

NEXT_SECRET = "test-pos-webhook-secret-next"
STATUS_EVENT = {"seq": 999, "location": "downtown", "at": "2030-01-01T00:00:00Z"}


async def send(
    harness: HostHarness, body: bytes, signature: str | None, connection: str = "demo"
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-DemoPOS-Signature"] = signature
    async with (
        aiohttp.ClientSession() as anonymous,  # no bearer token: the POS does not have it
        anonymous.post(
            f"{harness.url}/pos/{connection}/webhook", data=body, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def test_signed_webhook_is_applied_and_forged_ones_are_refused(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    await demo_host.post_order(example_order)
    view = await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    pos_id = view["pos_order_id"]
    history_before = len(view["history"])
    event = {
        "seq": 999,
        "order_id": pos_id,
        "reference": "demo-order-0001",
        "location": "downtown",
        "state": "cancelled",
        "at": "2030-01-01T00:00:00Z",
    }
    body = orjson.dumps(event)
    wrong = sign_webhook("not-the-secret", body)
    assert (await send(demo_host, body, wrong))[0] == 401
    assert (await send(demo_host, body, None))[0] == 401
    good = sign_webhook(POS_WEBHOOK_SECRET, body)
    assert (await send(demo_host, body + b" ", good))[0] == 401, "a changed body must not pass"
    status, problem = await send(demo_host, body, good, connection="elsewhere")
    assert status == 404 and "elsewhere" in problem["detail"]
    after = await demo_host.order("demo-order-0001")
    assert len(after["history"]) == history_before, "refused webhooks change nothing"
    # A correctly signed one is read; COMPLETED is final, so CANCELLED is recorded, not applied.
    status, answer = await send(demo_host, body, good)
    assert status == 200 and answer == {"received": 1, "availability": 0}
    after = await demo_host.order("demo-order-0001")
    assert after["status"] == "COMPLETED"
    assert after["history"][-1]["status"] == "CANCELLED" and not after["history"][-1]["applied"]


async def test_during_a_rotation_either_pos_secret_passes_and_neither_changes_nothing(
    tmp_path: Path, simulator: RunningSimulator, example_order: dict[str, Any]
) -> None:
    """With ``webhook_secret`` and ``webhook_secret_next`` set, the POS's status webhooks are
    applied whichever of the two it signs with; signed with a third secret they are refused."""
    connection = demo_connection(
        simulator,
        settings={
            "base_url": simulator.url,
            "api_key": POS_API_KEY,
            "webhook_secret": POS_WEBHOOK_SECRET,
            "webhook_secret_next": NEXT_SECRET,
        },
    )
    simulator.config.webhook_retry_delays = ()  # a refused webhook is not sent again

    async def connect(host: Host) -> None:
        url = host.connections["demo"].connection.ctx.webhook_url
        simulator.set_webhook(url, POS_WEBHOOK_SECRET)

    async with running_host(tmp_path, [connection], after_start=connect) as harness:
        for secret, order_id in ((POS_WEBHOOK_SECRET, "rotation-1"), (NEXT_SECRET, "rotation-2")):
            simulator.set_webhook_secret(secret)
            await harness.post_order({**example_order, "id": order_id})
            view = await harness.wait_for_status(order_id, {OrderStatus.COMPLETED})
            assert view["history"][-1]["source"] == "pos:demo", "completed by the POS's webhook"
        assert simulator.core.webhooks.failed == 0

        simulator.set_webhook_secret("neither-of-the-two")
        await harness.post_order({**example_order, "id": "rotation-3"})
        await harness.wait_for_status("rotation-3", {OrderStatus.ACCEPTED})

        async def picked_up() -> bool:
            [pos_order] = await pos_orders(simulator, "rotation-3")
            return bool(pos_order["state"] == "picked_up")

        await eventually(picked_up)
        await simulator.wait_webhooks_idle()
        assert simulator.core.webhooks.failed >= 3, "accepted, preparing, ready... all refused"
        view = await harness.order("rotation-3")
        assert view["status"] == "ACCEPTED"
        assert [item["status"] for item in view["history"]] == [
            "RECEIVED",
            "SUBMITTING",
            "ACCEPTED",
        ]
        [pos_order] = await pos_orders(simulator, "rotation-3")
        event = {"order_id": pos_order["id"], "reference": "rotation-3", "state": "ready"}
        body = orjson.dumps({**STATUS_EVENT, **event})
        assert (await send(harness, body, sign_webhook("neither-of-the-two", body)))[0] == 401
        assert (await send(harness, body, sign_webhook(NEXT_SECRET, body)))[0] == 200
        assert (await harness.order("rotation-3"))["status"] == "READY"

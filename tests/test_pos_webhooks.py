"""The POS webhook route: verified by the connection's plugin; a bad request changes nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from helpers import POS_WEBHOOK_SECRET

from pos_demo.simulator import sign_webhook
from posintegrator.model import OrderStatus
from posintegrator.testing import HostHarness


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

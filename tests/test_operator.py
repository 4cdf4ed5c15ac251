"""Operator actions on orders, through the API and the CLI: every one recorded with who did it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fakepos import ScriptedPos, commit_then
from helpers import eventually

from posintegrator.errors import AmbiguousError, RetryableError
from posintegrator.hooktypes import Capabilities
from posintegrator.model import OrderStatus
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order

BLIND = Capabilities(
    menu=True,
    orders=True,
    order_lookup=False,
    idempotent_submit=False,
    status_webhooks=False,
    status_polling=True,
)


@asynccontextmanager
async def host_with(tmp_path: Path, fake: ScriptedPos) -> AsyncIterator[HostHarness]:
    settings = ConnectionSettings(
        name="fake", plugin="fake", locations=["loc"], status_source="polling"
    )
    plugins = PluginHost.from_objects({"fake": fake})
    async with running_host(tmp_path, [settings], plugins=plugins) as harness:
        yield harness


async def parked(harness: HostHarness, order_id: str) -> None:
    await harness.post_order(sample_order(one_product_menu("loc"), order_id))
    await harness.wait_for_status(order_id, {OrderStatus.NEEDS_ATTENTION})


async def act(harness: HostHarness, order_id: str, verb: str, **body: Any) -> tuple[int, Any]:
    return await harness.request("POST", f"/v1/orders/{order_id}/{verb}", body)


async def cli(harness: HostHarness, *args: str) -> tuple[int, str]:
    token = harness.client.headers["Authorization"].split()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posintegrator.cli",
        *args,
        "--url",
        harness.url,
        "--token",
        token,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_list_and_mark_found(tmp_path: Path) -> None:
    fake = ScriptedPos(capabilities=BLIND, outcomes=[commit_then(AmbiguousError("timeout"))])
    async with host_with(tmp_path, fake) as harness:
        await parked(harness, "op-1")
        status, listing = await harness.request("GET", "/v1/orders")
        assert status == 200 and [o["id"] for o in listing["orders"]] == ["op-1"]
        code, out = await cli(harness, "orders", "list")
        assert code == 0 and "op-1" in out and "NEEDS_ATTENTION" in out
        code, out = await cli(
            harness,
            "orders",
            "found",
            "op-1",
            "--pos-id",
            fake.orders["op-1"],
            "--operator",
            "dana",
            "--note",
            "seen on the kitchen screen",
            "--json",
        )
        assert code == 0, out
        view = orjson.loads(out)
        assert view["status"] == "ACCEPTED" and view["pos_order_id"] == fake.orders["op-1"]
        action = [h for h in view["history"] if h["source"] == "operator:dana"]
        assert [h["note"] for h in action] == ["action: found in the POS", None]
        assert action[0]["reason"] == "seen on the kitchen screen"
        assert len(fake.submissions) == 1, "never sent twice"
        await harness.wait_for_events(
            lambda _: harness.receiver.statuses("op-1")[-1:] == ["ACCEPTED"]
        )


async def test_mark_missing_sends_it_again(tmp_path: Path) -> None:
    fake = ScriptedPos(capabilities=BLIND, outcomes=[AmbiguousError("timeout")])
    async with host_with(tmp_path, fake) as harness:
        await parked(harness, "op-2")
        status, view = await act(harness, "op-2", "missing", operator="dana")
        assert status == 200
        view = await harness.wait_for_status("op-2", {OrderStatus.ACCEPTED})
        assert len(fake.submissions) == 2 and list(fake.orders) == ["op-2"]
        statuses = [h["status"] for h in view["history"] if h["applied"]]
        assert statuses[-3:] == ["NEEDS_ATTENTION", "SUBMITTING", "ACCEPTED"]


async def test_retry_of_a_parked_order_stays_safe(tmp_path: Path) -> None:
    fake = ScriptedPos(capabilities=BLIND, outcomes=[commit_then(AmbiguousError("timeout"))])
    async with host_with(tmp_path, fake) as harness:
        await parked(harness, "op-3")
        status, view = await act(harness, "op-3", "retry", operator="sam")
        assert status == 200 and view["status"] == "SUBMITTING", "requeued"
        view = await harness.wait_for_status("op-3", {OrderStatus.NEEDS_ATTENTION}, timeout=20)
        assert len(fake.submissions) == 1, "still unknown: parked again, not resent blindly"
        assert [h["source"] for h in view["history"]].count("operator:sam") >= 1


async def test_cancel_only_when_the_pos_cannot_have_it(tmp_path: Path) -> None:
    # Refused without reaching the POS; the retry is due in an hour, so no attempt is under way
    # (which would make the POS possibly have it) when the operator cancels.
    fake = ScriptedPos(outcomes=[RetryableError("503", retry_after=3600)])
    blind = ScriptedPos(capabilities=BLIND, outcomes=[commit_then(AmbiguousError("timeout"))])
    async with host_with(tmp_path, fake) as harness:
        await harness.post_order(sample_order(one_product_menu("loc"), "op-4"))

        async def first_attempt_refused() -> bool:
            attempts = (await harness.order("op-4"))["delivery_attempts"]
            return [a["outcome"] for a in attempts] == ["retry"]

        await eventually(first_attempt_refused, timeout=20)
        status, view = await act(
            harness,
            "op-4",
            "cancel",
            requested_by="operator",
            operator="lee",
            reason="customer left",
        )
        assert status == 200 and view["status"] == "CANCELLED"
        assert view["status_reason"] == "customer left"
        assert view["history"][-1]["source"] == "operator:lee"
        status, problem = await act(harness, "op-4", "retry", operator="lee")
        assert status == 409 and "CANCELLED" in problem["detail"]
    async with host_with(tmp_path / "b", blind) as harness:
        await parked(harness, "op-5")
        status, problem = await act(
            harness, "op-5", "cancel", requested_by="operator", operator="lee", reason="gone"
        )
        assert status == 409 and problem["title"] == "The POS may have this order"


async def test_bad_requests(tmp_path: Path) -> None:
    async with host_with(tmp_path, ScriptedPos()) as harness:
        await harness.post_order(sample_order(one_product_menu("loc"), "op-6"))
        await harness.wait_for_status("op-6", {OrderStatus.ACCEPTED})
        status, problem = await act(
            harness, "op-6", "cancel", requested_by="customer", reason="changed my mind"
        )
        assert status == 409 and problem["title"] == "The POS cannot cancel orders"
        assert "ACCEPTED" in problem["detail"]
        status, problem = await act(harness, "op-6", "cancel", operator="lee", note="old body")
        assert status == 422
        assert {e["field"] for e in problem["errors"]} >= {"requested_by", "reason", "note"}
        status, problem = await act(harness, "nope", "retry", operator="lee")
        assert status == 404
        status, problem = await act(harness, "op-6", "found", operator="lee")
        assert status == 422 and problem["errors"][0]["field"] == "pos_order_id"
        status, problem = await harness.request("GET", "/v1/orders?status=LOST")
        assert status == 400 and problem["errors"][0]["field"] == "status"

"""The real host with the Tryton plugin and a real Tryton, reaching it directly (the way the venue
agent will): an order whose answer from Tryton was lost lands exactly once, and what a cashier
does in Tryton reaches the cloud (a ``CloudReceiver``) as status changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from conftest import LOCATION, cashier_pays, user_client

from pos_tryton.testing import TrytonServer
from pos_tryton.testing.faults import LossyRpcProxy
from posintegrator.model import OrderStatus
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, running_host, sample_order

CREATE_SALE = "model.sale.point.sale.create"
TIMEOUT = 60.0


def connection(settings: dict[str, Any]) -> ConnectionSettings:
    return ConnectionSettings(
        name="trattoria",
        plugin="tryton",
        locations=[LOCATION],
        settings=settings,
        status_poll_seconds=0.2,
        menu_sync_seconds=3600,
    )


async def test_an_order_whose_answer_was_lost_after_the_sale_was_created_lands_once(
    tryton: TrytonServer, tmp_path: Path
) -> None:
    async with LossyRpcProxy(tryton.url) as proxy:
        settings = tryton.plugin_settings(LOCATION, base_url=proxy.url)
        async with running_host(tmp_path / "host", [connection(settings)]) as harness:
            menu = await harness.wait_for_menu(LOCATION)
            proxy.lose_answer(CREATE_SALE)
            order = sample_order(menu, "cloud-1")
            status, body = await harness.post_order(order)
            assert status == 202, body
            view = await harness.wait_for_status("cloud-1", {OrderStatus.COMPLETED}, TIMEOUT)
            events = await harness.wait_for_events(
                lambda evs: "COMPLETED" in harness.receiver.statuses("cloud-1")
            )
    assert proxy.lost[CREATE_SALE] == 1 and proxy.calls[CREATE_SALE] == 1, "never sent twice"
    assert [a["outcome"] for a in view["delivery_attempts"]] == ["unknown", "found in the POS"]
    (sale,) = tryton.sale_ids()
    assert tryton.order_sales("cloud-1") == [sale], "exactly one sale, marked as the order's"
    assert view["pos_order_id"] == str(sale)
    assert tryton.sale_state(sale) == "done", "the prepayment was recorded once, and closed it"
    assert len(tryton.query("SELECT id FROM sale_point_payment WHERE sale = ?", sale)) == 1
    mine = [e for e in events if e.get("order_id") == "cloud-1"]
    assert [e["status"] for e in mine] == ["RECEIVED", "SUBMITTING", "COMPLETED"]


async def at_counter(harness: HostHarness, order_id: str) -> int:
    """Post an order paid at the counter; its sale id once Tryton has it."""
    menu = await harness.wait_for_menu(LOCATION)
    order = sample_order(menu, order_id)
    order["payments"][0]["mode"] = "AT_COUNTER"
    status, body = await harness.post_order(order)
    assert status == 202, body
    view = await harness.wait_for_status(order_id, {OrderStatus.ACCEPTED}, TIMEOUT)
    return int(view["pos_order_id"])


async def test_a_cashiers_payment_and_cancellation_in_tryton_reach_the_cloud(
    tryton: TrytonServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    settings = tryton.plugin_settings(LOCATION)
    async with running_host(tmp_path / "host", [connection(settings)]) as harness:
        paid_sale = await at_counter(harness, "cloud-2")
        cancelled_sale = await at_counter(harness, "cloud-3")
        assert tryton.sale_state(paid_sale) == tryton.sale_state(cancelled_sale) == "open"

        cashier = user_client(tryton, http, "cashier")
        await cashier_pays(cashier, tryton, paid_sale)
        await cashier.button("sale.point.sale", "cancel", [cancelled_sale])

        await harness.wait_for_events(
            lambda evs: (
                harness.receiver.statuses("cloud-2")[-1:] == ["COMPLETED"]
                and harness.receiver.statuses("cloud-3")[-1:] == ["CANCELLED"]
            ),
            TIMEOUT,
        )
        assert harness.receiver.statuses("cloud-2") == [
            "RECEIVED",
            "SUBMITTING",
            "ACCEPTED",
            "COMPLETED",
        ]
        assert harness.receiver.statuses("cloud-3") == [
            "RECEIVED",
            "SUBMITTING",
            "ACCEPTED",
            "CANCELLED",
        ]
        assert (await harness.order("cloud-3"))["status"] == "CANCELLED"

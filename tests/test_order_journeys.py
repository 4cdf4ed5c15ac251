"""Whole journeys through the demo: the host, the demo plugin and the simulated POS on loopback.

An aggregator's delivery order with a discount, a delivery fee, a tip and two payments reaches
the POS with every part and the same total; a cancellation is carried out while the order waits
in the kitchen's queue, and refused once the kitchen has started, the order going on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, demo_connection, pos_orders

from pos_demo.simulator import RunningSimulator, SimulatorConfig, start_simulator
from posintegrator.model import Menu, OrderStatus
from posintegrator.model.order_totals import rate_of
from posintegrator.runtime.host import Host
from posintegrator.testing import HostHarness, running_host

CHANNELS = ["kiosk", "web", "delivery", "dine_in", "ubereats"]


@pytest.fixture
async def slow_kitchen(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    """The demo POS with a kitchen that leaves orders in its queue until told otherwise."""
    sim = await start_simulator(
        SimulatorConfig(data_dir=tmp_path / "pos", api_key=POS_API_KEY, stage_seconds=3600)
    )
    yield sim
    await sim.close()


@pytest.fixture
async def host(tmp_path: Path, slow_kitchen: RunningSimulator) -> AsyncIterator[HostHarness]:
    async def connect(started: Host) -> None:
        slow_kitchen.set_webhook(
            started.connections["demo"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
        )

    async with running_host(
        tmp_path, [demo_connection(slow_kitchen)], after_start=connect, channels=CHANNELS
    ) as harness:
        yield harness


def price(menu: Menu, product: str, variant: str, price_list: str) -> int:
    found = menu.product(product)
    assert found is not None
    return next(v for v in found.variants if v.id == variant).prices[price_list]


def aggregator_order(menu: Menu, order_id: str) -> dict[str, Any]:
    """An Uber Eats delivery: two fries and a cola at Uber Eats prices, 10 % off, a delivery fee,
    a tip, paid half with a gift card and the rest through the aggregator."""
    fries = price(menu, "fries", "medium", "ubereats")
    cola = price(menu, "cola", "large", "ubereats")
    items = 2 * fries + cola
    promo = rate_of(items, 100_000)
    fee, tip = 299, 150
    total = items - promo + fee + tip  # the demo's taxes are included in its prices
    gift = 500
    return {
        "id": order_id,
        "location": "downtown",
        "channel": "ubereats",
        "type": "DELIVERY",
        "currency": "EUR",
        "lines": [
            {"product_id": "fries", "variant_id": "medium", "quantity": 2, "unit_price": fries},
            {"product_id": "cola", "variant_id": "large", "quantity": 1, "unit_price": cola},
        ],
        "discounts": [
            {"kind": "PROMOTION", "name": "10 % off", "code": "EATS10", "rate_ppm": 100_000,
             "amount": promo}
        ],
        "charges": [
            {"kind": "DELIVERY_FEE", "name": "Delivery", "amount": fee, "taxable": True,
             "tax_id": "vat_food"}
        ],
        "tip": tip,
        "total": total,
        "payments": [
            {"mode": "PREPAID", "amount": gift, "method": "GIFT_CARD", "reference": "gc-77"},
            {"mode": "PREPAID", "amount": total - gift, "method": "AGGREGATOR",
             "provider": "ubereats", "reference": "ue-pay-1"},
        ],
        "delivery": {
            "address": {"street": "Torstr. 1", "city": "Berlin", "postal_code": "10119",
                        "country": "DE"},
            "coordinates": {"latitude": 52.5290, "longitude": 13.4010},
            "instructions": "Third floor",
            "courier": {"name": "Kim", "provider": "ubereats"},
            "aggregator_order_id": "UE-5A1C",
            "display_code": "5A1C",
            "promised_at": "2026-12-02T12:45:00Z",
        },
        "customer": {"name": "Alex"},
    }  # fmt: skip


async def test_an_aggregator_delivery_reaches_the_pos_whole(
    host: HostHarness, slow_kitchen: RunningSimulator
) -> None:
    menu = await host.wait_for_menu("downtown")
    order = aggregator_order(menu, "ue-1")
    status, body = await host.post_order(order)
    assert status == 202, body
    await host.wait_for_status("ue-1", {OrderStatus.ACCEPTED})
    [native] = await pos_orders(slow_kitchen, "ue-1")
    assert native["total"] == order["total"]
    assert native["channel"] == "ubereats" and native["type"] == "delivery"
    assert [(d["name"], d["amount"]) for d in native["discounts"]] == [
        ("10 % off", order["discounts"][0]["amount"])
    ]
    assert [(c["kind"], c["amount"]) for c in native["charges"]] == [("delivery_fee", 299)]
    assert native["tip"] == 150
    assert [(p["method"], p["amount"], p["paid"]) for p in native["payments"]] == [
        ("gift_card", 500, True),
        ("aggregator", order["total"] - 500, True),
    ]
    assert (native["paid_amount"], native["due_amount"]) == (order["total"], 0)
    assert native["delivery"]["code"] == "5A1C"
    assert native["delivery"]["platform_order_id"] == "UE-5A1C"


async def test_the_aggregator_has_its_own_prices(host: HostHarness) -> None:
    menu = await host.wait_for_menu("downtown")
    order = aggregator_order(menu, "ue-2")
    fries_delivery = price(menu, "fries", "medium", "delivery")
    assert fries_delivery != order["lines"][0]["unit_price"]
    on_delivery = {**order, "channel": "delivery"}
    status, problem = await host.post_order(on_delivery)
    assert status == 422
    assert [e["field"] for e in problem["errors"]][:2] == [
        "lines[0].unit_price",
        "lines[1].unit_price",
    ]
    assert f"says {fries_delivery}" in problem["errors"][0]["reason"]


async def test_cancelled_while_queued_then_refused_once_preparing(
    host: HostHarness, slow_kitchen: RunningSimulator
) -> None:
    menu = await host.wait_for_menu("downtown")
    queued = aggregator_order(menu, "ue-3")
    assert (await host.post_order(queued))[0] == 202
    view = await host.wait_for_status("ue-3", {OrderStatus.ACCEPTED})
    status, answer = await host.request(
        "POST",
        "/v1/orders/ue-3/cancel",
        {"requested_by": "aggregator", "reason": "courier not found"},
    )
    assert status == 202 and answer["cancellation"]["state"] == "requested"
    await host.wait_for_status("ue-3", {OrderStatus.CANCELLED})
    [native] = await pos_orders(slow_kitchen, "ue-3")
    assert (native["state"], native["cancel_reason"]) == ("cancelled", "courier not found")
    events = host.receiver.order_events("ue-3")
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    cancelled = [e for e in events if e["status"] == "CANCELLED"]
    assert len(cancelled) == 1
    assert cancelled[0]["refund"] == {"amount": queued["total"], "currency": "EUR"}

    cooking = aggregator_order(menu, "ue-4")
    assert (await host.post_order(cooking))[0] == 202
    view = await host.wait_for_status("ue-4", {OrderStatus.ACCEPTED})
    slow_kitchen.start_preparing(view["pos_order_id"])
    await host.wait_for_status("ue-4", {OrderStatus.IN_PREPARATION})
    status, _ = await host.request(
        "POST", "/v1/orders/ue-4/cancel", {"requested_by": "customer", "reason": "too slow"}
    )
    assert status == 202

    def refused(_events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "order.cancel_refused" for e in host.receiver.order_events("ue-4"))

    await host.wait_for_events(refused)
    slow_kitchen.set_stage_seconds(0.1)
    view = await host.wait_for_status("ue-4", {OrderStatus.COMPLETED})
    assert view["cancellation"]["state"] == "refused"
    assert "too late" in view["cancellation"]["outcome"]
    events = host.receiver.order_events("ue-4")
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] == "order.cancel_refused" for e in events].count(True) == 1
    assert host.receiver.statuses("ue-4")[-3:] == ["IN_PREPARATION", "READY", "COMPLETED"]
    [native] = await pos_orders(slow_kitchen, "ue-4")
    assert native["state"] == "picked_up"

"""Orders with every part, and cancellations, through the host and the Square plugin to the
Square double, which computes each order's totals as Square documents it.

The point: what Square computes for the order (its discounts, service charges, taxes, tips and
total) is what the customer paid, to the cent, and a cancellation ends as Square says.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from squaredouble import RunningDouble, start_double
from test_integration import SIGNATURE_KEY, settings_for, square_orders

from pos_square.client import SquareClient
from posintegrator.errors import PermanentError
from posintegrator.model import Menu, Order, OrderStatus, Product
from posintegrator.model.order_totals import rate_of
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import HostHarness, complete_order, running_host

CHANNELS = ["kiosk", "web", "delivery", "dine_in", "ubereats"]


@contextlib.asynccontextmanager
async def host_on(tmp_path: Path, double: RunningDouble) -> AsyncIterator[HostHarness]:
    settings = ConnectionSettings(
        name="square",
        plugin="square",
        locations=list(double.location_ids),
        # A busy machine can be slower than the 1 s the other integration tests allow.
        settings={**settings_for(double), "request_timeout_seconds": 10.0},
        menu_sync_seconds=3600,
    )

    async def point_webhooks(host: Any) -> None:
        double.double.webhooks.notification_url = host.connections[
            "square"
        ].connection.ctx.webhook_url

    async with running_host(
        tmp_path, [settings], after_start=point_webhooks, channels=CHANNELS
    ) as harness:
        yield harness


def taxed_products(menu: Menu) -> list[Product]:
    """Products sold with a tax added on top of the price and no modifier to choose."""
    taxes = {t.id: t for t in menu.taxes}
    found = []
    for product in menu.products:
        tax = taxes.get(product.tax_id or "")
        groups = [menu.modifier_group(g) for g in product.modifier_group_ids]
        if (
            tax is not None
            and not tax.inclusive
            and not product.is_combo
            and all(g is not None and g.min == 0 for g in groups)
            and product.availability.available
            and any(v.availability.available for v in product.variants)
        ):
            found.append(product)
    assert len(found) >= 2, "the double's catalog has taxed products"
    return found


def delivery_order(menu: Menu, order_id: str) -> dict[str, Any]:
    """An aggregator delivery: three lines (one with its own discount), 10 % off, a taxable
    delivery fee and a bag fee, a tip, paid with a gift card and a card."""
    lines = []
    for product, quantity in zip(taxed_products(menu)[:3], (2, 1, 3), strict=False):
        variant = next(v for v in product.variants if v.availability.available)
        lines.append(
            {
                "product_id": product.id,
                "variant_id": variant.id,
                "quantity": quantity,
                "unit_price": variant.prices["square"],
            }
        )
    gross = lines[0]["unit_price"] * lines[0]["quantity"]
    lines[0]["discounts"] = [
        {
            "kind": "STAFF",
            "name": "Staff 15 %",
            "rate_ppm": 150_000,
            "amount": rate_of(gross, 150_000),
        }
    ]
    items = sum(
        line["unit_price"] * line["quantity"] - sum(d["amount"] for d in line.get("discounts", []))
        for line in lines
    )
    sales_tax = next(t.id for t in menu.taxes if not t.inclusive)
    return complete_order(
        {
            "id": order_id,
            "location": menu.location,
            "channel": "ubereats",
            "type": "DELIVERY",
            "currency": menu.currency,
            "lines": lines,
            "discounts": [
                {"kind": "PROMOTION", "name": "10 % off", "code": "EATS10", "rate_ppm": 100_000,
                 "amount": rate_of(items, 100_000)}
            ],
            "charges": [
                {"kind": "DELIVERY_FEE", "name": "Delivery", "amount": 299, "taxable": True,
                 "tax_id": sales_tax},
                {"kind": "BAG_FEE", "name": "Bag", "amount": 10},
            ],
            "tip": 175,
            "payments": [
                {"mode": "PREPAID", "amount": 1, "method": "GIFT_CARD", "reference": "gc-1"},
                {"mode": "PREPAID", "amount": 3, "method": "CARD", "provider": "stripe",
                 "reference": "pi_42"},
            ],
            "delivery": {
                "address": {"street": "1 Main St", "city": "New York", "postal_code": "10001",
                            "region": "NY", "country": "US"},
                "instructions": "Leave with the doorman",
                "courier": {"name": "Kim", "provider": "Uber Eats"},
                "aggregator_order_id": "UE-7F2A",
                "display_code": "7F2A",
            },
            "customer": {"name": "Ada", "phone": "+1 415 555 0100"},
        },
        menu,
    )  # fmt: skip


async def test_square_computes_the_total_the_customer_paid(tmp_path: Path) -> None:
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with host_on(tmp_path, double) as harness:
            menu = await harness.wait_for_menu(double.location_ids[0])
            order = delivery_order(menu, "sq-delivery-1")
            assert order["tax"] > 0, "the order's tax is added on top of its prices"
            status, body = await harness.post_order(order)
            assert status == 202, body
            await harness.wait_for_status(order["id"], {OrderStatus.ACCEPTED})
            [square] = square_orders(double, order["id"])
            discounts = sum(d["amount"] for d in order["discounts"]) + sum(
                d["amount"] for line in order["lines"] for d in line.get("discounts", [])
            )
            assert square["total_money"]["amount"] == order["total"]
            assert square["total_tax_money"]["amount"] == order["tax"]
            assert square["total_discount_money"]["amount"] == discounts
            assert square["total_service_charge_money"]["amount"] == 299 + 10
            assert square["total_tip_money"]["amount"] == order["tip"]
            assert square["net_amount_due_money"]["amount"] == 0, "fully prepaid"
            tenders = square["tenders"]
            assert [t["amount_money"]["amount"] for t in tenders] == [
                p["amount"] for p in order["payments"]
            ]
            assert sum(t.get("tip_money", {}).get("amount", 0) for t in tenders) == order["tip"]
            [fulfillment] = square["fulfillments"]
            assert fulfillment["type"] == "DELIVERY"
            details = fulfillment["delivery_details"]
            assert details["external_delivery_id"] == "UE-7F2A"
            assert details["note"].startswith("Courier code 7F2A")
            assert details["recipient"]["address"]["locality"] == "New York"
            double.assert_clean()
    finally:
        await double.close()


async def test_a_half_cent_of_tax_is_rounded_as_square_rounds_it(tmp_path: Path) -> None:
    """8.875 % of 2800 is 248.5: Square rounds it to 248 (half to even), and so does the host's
    check, because the menu says so; the order's total is Square's."""
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with host_on(tmp_path, double) as harness:
            menu = await harness.wait_for_menu(double.location_ids[0])
            assert menu.tax_rounding == "half_even"
            sales_tax = next(t for t in menu.taxes if not t.inclusive)
            assert sales_tax.rate_ppm == 88_750
            product = next(p for p in taxed_products(menu) if p.tax_id == sales_tax.id)
            variant = next(v for v in product.variants if v.availability.available)
            quantity = -(-2800 // variant.prices["square"])  # enough to cost 2800 or more
            gross = variant.prices["square"] * quantity
            order = complete_order(
                {
                    "id": "sq-half-cent",
                    "location": menu.location,
                    "type": "TAKE_AWAY",
                    "currency": menu.currency,
                    "lines": [
                        {
                            "product_id": product.id,
                            "variant_id": variant.id,
                            "quantity": quantity,
                            "unit_price": variant.prices["square"],
                            "discounts": [
                                {"kind": "OTHER", "name": "To 28.00", "amount": gross - 2800}
                            ],
                        }
                    ],
                },
                menu,
            )
            assert order["tax"] == 248
            assert (await harness.post_order(order))[0] == 202
            await harness.wait_for_status(order["id"], {OrderStatus.ACCEPTED})
            [square] = square_orders(double, order["id"])
            assert square["total_tax_money"]["amount"] == 248
            assert square["total_money"]["amount"] == order["total"] == 2800 + 248
            double.assert_clean()
    finally:
        await double.close()


async def test_an_order_square_would_total_differently_is_cancelled_there_and_refused(
    tmp_path: Path,
) -> None:
    """The host checked a tax Square does not compute (the menu says half up, Square rounds half
    to even): the till's total would not be what the customer paid, so the order is refused."""
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with host_on(tmp_path, double) as harness:
            location = double.location_ids[0]
            menu = await harness.wait_for_menu(location)
            order = delivery_order(menu, "sq-mismatch")
            conn = harness.host.connections["square"].connection
            wrong = Order.model_validate(
                {**order, "tax": order["tax"] + 1, "total": order["total"] + 1,
                 "payments": [{"mode": "AT_COUNTER", "amount": order["total"] + 1}]}
            )  # fmt: skip
            try:
                await conn.plugin.submit_order(conn.ctx, wrong, "key-mismatch")
            except PermanentError as exc:
                assert exc.code == "total_mismatch" and "cancelled in Square" in exc.reason
            else:
                raise AssertionError("an order Square totals differently must be refused")
            [square] = square_orders(double, order["id"])
            assert square["state"] == "CANCELED"
            assert "tenders" not in square, "no payment recorded"
            double.assert_clean()
    finally:
        await double.close()


async def test_a_cancellation_reads_again_when_the_order_changed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kitchen moves the order on between the cancellation's read and its update: Square
    refuses the update (version mismatch), the plugin reads the order again and cancels it."""
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with host_on(tmp_path, double) as harness:
            menu = await harness.wait_for_menu(double.location_ids[0])
            order = delivery_order(menu, "sq-cancel-race")
            assert (await harness.post_order(order))[0] == 202
            await harness.wait_for_status(order["id"], {OrderStatus.ACCEPTED})
            [square] = square_orders(double, order["id"])
            retrieve = SquareClient.batch_retrieve_orders
            moved: list[int] = []  # the version the kitchen's move made stale

            async def kitchen_moves_first(
                client: SquareClient, order_ids: list[str]
            ) -> list[dict[str, Any]]:
                documents = await retrieve(client, order_ids)
                if not moved and square["id"] in order_ids:
                    moved.append(documents[0]["version"])
                    double.double.advance_fulfillment(square["id"], "RESERVED")
                return documents

            monkeypatch.setattr(SquareClient, "batch_retrieve_orders", kitchen_moves_first)
            conn = harness.host.connections["square"].connection
            result = await conn.plugin.cancel_order(
                conn.ctx, order["id"], square["id"], order["location"], "ordered twice"
            )
            assert result.cancelled
            [square] = square_orders(double, order["id"])
            assert square["state"] == "CANCELED"
            assert square["fulfillments"][0]["state"] == "CANCELED"
            assert moved and square["version"] > moved[0] + 1, "moved on, then cancelled"
            double.assert_clean()
    finally:
        await double.close()


async def test_cancelled_in_square_or_refused_once_handed_over(tmp_path: Path) -> None:
    double = await start_double(signature_key=SIGNATURE_KEY)
    try:
        async with host_on(tmp_path, double) as harness:
            menu = await harness.wait_for_menu(double.location_ids[0])
            order = delivery_order(menu, "sq-cancel-1")
            assert (await harness.post_order(order))[0] == 202
            await harness.wait_for_status(order["id"], {OrderStatus.ACCEPTED})
            double.double.advance_fulfillment(square_orders(double, order["id"])[0]["id"],
                                              "RESERVED")  # fmt: skip
            await harness.wait_for_status(order["id"], {OrderStatus.IN_PREPARATION})
            status, _ = await harness.request(
                "POST",
                f"/v1/orders/{order['id']}/cancel",
                {"requested_by": "customer", "reason": "ordered twice"},
            )
            assert status == 202
            view = await harness.wait_for_status(order["id"], {OrderStatus.CANCELLED})
            [square] = square_orders(double, order["id"])
            assert square["state"] == "CANCELED"
            [fulfillment] = square["fulfillments"]
            assert fulfillment["state"] == "CANCELED"
            assert fulfillment["delivery_details"]["cancel_reason"] == "ordered twice"

            def cancelled_heard(_events: list[dict[str, Any]]) -> bool:
                mine = harness.receiver.order_events(order["id"])
                return bool(mine) and mine[-1].get("status") == "CANCELLED"

            await harness.wait_for_events(cancelled_heard)
            events = harness.receiver.order_events(order["id"])
            assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
            [cancelled] = [e for e in events if e.get("status") == "CANCELLED"]
            assert cancelled["refund"] == {"amount": order["total"], "currency": "USD"}
            assert view["cancellation"]["state"] == "done"

            handed_over = delivery_order(menu, "sq-cancel-2")
            assert (await harness.post_order(handed_over))[0] == 202
            await harness.wait_for_status(handed_over["id"], {OrderStatus.ACCEPTED})
            await double.double.webhooks.drain()
            double.double.webhooks.notification_url = None  # the host has not heard yet
            [square] = square_orders(double, handed_over["id"])
            for state in ("RESERVED", "PREPARED", "COMPLETED"):
                double.double.advance_fulfillment(square["id"], state)
            status, _ = await harness.request(
                "POST",
                f"/v1/orders/{handed_over['id']}/cancel",
                {"requested_by": "customer", "reason": "too slow"},
            )
            assert status == 202

            def refused(_events: list[dict[str, Any]]) -> bool:
                mine = harness.receiver.order_events(handed_over["id"])
                return bool(mine) and mine[-1]["type"] == "order.cancel_refused"

            events = await harness.wait_for_events(refused)
            refusal = harness.receiver.order_events(handed_over["id"])[-1]
            assert "handed over" in refusal["reason"] and refusal["status"] == "ACCEPTED"
            assert square_orders(double, handed_over["id"])[0]["state"] == "COMPLETED"
            assert events
            double.assert_clean()
    finally:
        await double.close()

"""Property tests of the order's arithmetic: random orders from the demo menu, with random
discounts, charges, tips and payments, either add up and are accepted, or do not and are refused
naming the field at fault.

Each example is built to add up, then maybe broken in one way; the property is that a whole
order is accepted and a broken one is refused with the broken field among those named. The
model and the menu check are exercised directly on many examples (inclusive taxes as in the
demo, and exclusive taxes rounded both ways); fewer examples go through the Integrator API of a
host running on the demo POS, where "accepted" means 202 and "refused" a 422 problem document.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from helpers import POS_API_KEY, demo_connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pos_demo.simulator import SimulatorConfig, start_simulator
from pos_demo.simulator.menu import MenuCatalog
from pos_demo.translate import menu_from_pos
from posintegrator.model import Menu, Order
from posintegrator.model.order_check import check_order_against_menu, exclusive_tax
from posintegrator.model.order_totals import line_net, rate_of
from posintegrator.settings import error_path
from posintegrator.testing import running_host

#: Wednesday 2 December 2026, 12:00 in Berlin: everything but breakfast is sold.
NOON = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
CHANNELS = ("web", "kiosk", "delivery", "ubereats")
_ids = itertools.count(1)


def demo_menu(taxes: str = "inclusive") -> Menu:
    """The demo's downtown menu, with its taxes as they are, or added on top of prices."""
    menu = menu_from_pos(
        MenuCatalog().menu_for("downtown", now=NOON - timedelta(hours=1)), "downtown"
    )
    if taxes != "inclusive":
        for tax in menu.taxes:
            tax.inclusive = False
        menu.tax_rounding = "half_even" if taxes == "half_even" else "half_up"
    return menu


MENUS = {kind: demo_menu(kind) for kind in ("inclusive", "half_up", "half_even")}


def simple_products(menu: Menu, channel: str) -> list[tuple[str, str, int]]:
    """(product, variant, price) of what can be ordered without choosing a modifier."""
    price_list = menu.price_list_for(channel)
    assert price_list is not None
    found = []
    for product in menu.products:
        groups = [menu.modifier_group(g) for g in product.modifier_group_ids]
        if product.is_combo or any(g is None or g.min > 0 for g in groups):
            continue
        if product.availability.schedule or product.availability.channels:
            continue
        if not product.availability.available or product.category_ids == ["breakfast"]:
            continue
        for variant in product.variants:
            if variant.availability.available and price_list.id in variant.prices:
                found.append((product.id, variant.id, variant.prices[price_list.id]))
    return found


@dataclass
class Case:
    """A generated order and what, if anything, was broken in it."""

    order: dict[str, Any]
    broken: str | None = None
    """The field the order must be refused for; None for an order that adds up."""
    notes: list[str] = field(default_factory=list)


def _adjustment(draw: Callable[..., Any], kinds: list[str], base: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(kinds))
    if draw(st.booleans()):
        rate = draw(st.integers(0, 1_000_000))
        return {"kind": kind, "name": kind.title(), "rate_ppm": rate, "amount": rate_of(base, rate)}
    return {"kind": kind, "name": kind.title(), "amount": draw(st.integers(0, max(base, 0)))}


BREAKS = (
    None, None, None,  # whole orders as often as broken ones
    "total", "payments", "discount_rate", "charge_rate", "line_discounts", "discounts",
    "unit_price", "tax", "charge_tax_id",
)  # fmt: skip


@st.composite
def cases(draw: Callable[..., Any], menu_kind: str | None = None) -> Case:
    kind = menu_kind or draw(st.sampled_from(sorted(MENUS)))
    menu = MENUS[kind]
    channel = draw(st.sampled_from(CHANNELS))
    products = simple_products(menu, channel)
    broken = draw(st.sampled_from(BREAKS))
    lines = []
    for product, variant, unit in draw(st.lists(st.sampled_from(products), min_size=1, max_size=4)):
        quantity = draw(st.integers(1, 5))
        gross = unit * quantity
        line: dict[str, Any] = {
            "product_id": product,
            "variant_id": variant,
            "quantity": quantity,
            "unit_price": unit,
        }
        if draw(st.booleans()):
            discount = _adjustment(draw, ["STAFF", "LOYALTY"], gross)
            line["discounts"] = [{**discount, "amount": min(discount["amount"], gross)}]
        lines.append(line)
    if broken == "unit_price":
        index = draw(st.integers(0, len(lines) - 1))
        lines[index]["unit_price"] += draw(st.integers(1, 200))
        for discount in lines[index].get("discounts", []):
            if discount.get("rate_ppm") is not None:
                gross = lines[index]["unit_price"] * lines[index]["quantity"]
                discount["amount"] = rate_of(gross, discount["rate_ppm"])
        broken = f"lines[{index}].unit_price"
    if broken == "line_discounts":
        index = draw(st.integers(0, len(lines) - 1))
        gross = lines[index]["unit_price"] * lines[index]["quantity"]
        lines[index]["discounts"] = [
            {"kind": "OTHER", "name": "Too much", "amount": gross + draw(st.integers(1, 100))}
        ]
        broken = f"lines[{index}].discounts"
    items = sum(
        line["unit_price"] * line["quantity"] - sum(d["amount"] for d in line.get("discounts", []))
        for line in lines
    )
    discounts = [
        _adjustment(draw, ["PROMOTION", "LOYALTY", "COMPENSATION"], max(items, 0))
        for _ in range(draw(st.integers(0, 2)))
    ]
    taken = 0
    for discount in discounts:  # keep the sum within the items, as an order must
        discount["amount"] = min(discount["amount"], max(items - taken, 0))
        if discount.get("rate_ppm") is not None and discount["amount"] != rate_of(
            max(items, 0), discount["rate_ppm"]
        ):
            del discount["rate_ppm"]
        taken += discount["amount"]
    if broken == "discounts":
        discounts.append({"kind": "OTHER", "name": "Too much", "amount": items - taken + 1})
    if broken == "discount_rate":
        rate = draw(st.integers(1, 999_999))
        amount = rate_of(max(items, 0), rate)
        wrong = amount + draw(st.sampled_from([-1, 1])) if amount > 0 else amount + 1
        discounts.append({"kind": "PROMOTION", "name": "Wrong", "rate_ppm": rate, "amount": wrong})
        broken = f"discounts[{len(discounts) - 1}].amount"
    base = items - sum(d["amount"] for d in discounts)
    charges = [
        _adjustment(
            draw, ["DELIVERY_FEE", "SERVICE_CHARGE", "PACKAGING_FEE", "BAG_FEE"], max(base, 0)
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    for charge in charges:
        charge["amount"] = min(charge["amount"], 5_000)
        if charge.get("rate_ppm") is not None and charge["amount"] != rate_of(
            max(base, 0), charge["rate_ppm"]
        ):
            del charge["rate_ppm"]
        if draw(st.booleans()):
            charge.update(taxable=True, tax_id=draw(st.sampled_from(["vat_food", "vat_drinks"])))
    if broken == "charge_rate":
        rate = draw(st.integers(1, 500_000))
        amount = rate_of(max(base, 0), rate)
        charges.append(
            {"kind": "SERVICE_CHARGE", "name": "Wrong", "rate_ppm": rate, "amount": amount + 1}
        )
        broken = f"charges[{len(charges) - 1}].amount"
    if broken == "charge_tax_id":
        charges.append({"kind": "DELIVERY_FEE", "name": "Delivery", "amount": 250, "taxable": True})
        broken = f"charges[{len(charges) - 1}].tax_id"
    order: dict[str, Any] = {
        "id": f"prop-{next(_ids)}",
        "location": "downtown",
        "channel": channel,
        "type": "TAKE_AWAY",
        "currency": "EUR",
        "lines": lines,
        "discounts": discounts,
        "charges": charges,
        "tip": draw(st.integers(0, 500)),
        "tax": 0,
    }
    if broken is None or broken == "tax" or broken.endswith(".unit_price"):
        order["tax"] = _tax_of(order, menu)
    if broken == "tax":
        order["tax"] += draw(st.integers(1, 50))
    total = base + sum(c["amount"] for c in charges) + order["tip"] + order["tax"]
    order["total"] = max(total, 0)
    order["payments"] = _payments(draw, order["total"])
    if broken == "total":
        delta = draw(st.integers(1, 500))
        order["total"] += delta
        order["payments"][-1]["amount"] += delta
    if broken == "payments":
        order["payments"][0]["amount"] += draw(st.integers(1, 500))
    return Case(order, broken, [kind])


def _tax_of(order: dict[str, Any], menu: Menu) -> int:
    """The exclusive tax of an order that adds up so far, as the host computes it (0 when the
    menu's taxes are included in its prices)."""
    before_tax = (
        sum(line_net(line) for line in Order.model_validate(_priced(order)).lines)
        - sum(d["amount"] for d in order["discounts"])
        + sum(c["amount"] for c in order["charges"])
        + order["tip"]
    )
    whole = {**order, "tax": 0, "total": before_tax}
    whole["payments"] = [{"mode": "PREPAID", "amount": before_tax}]
    return exclusive_tax(Order.model_validate(whole), menu)


def _priced(order: dict[str, Any]) -> dict[str, Any]:
    """The order's lines alone, as a whole order, to read their nets."""
    nets = sum(
        line["unit_price"] * line["quantity"] - sum(d["amount"] for d in line.get("discounts", []))
        for line in order["lines"]
    )
    return {
        **{k: order[k] for k in ("id", "location", "channel", "type", "currency", "lines")},
        "total": nets,
        "payments": [{"mode": "PREPAID", "amount": nets}],
    }


def _payments(draw: Callable[..., Any], total: int) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=count - 1, max_size=count - 1)))
    amounts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    methods = ["CARD", "GIFT_CARD", "CASH", "WALLET", "AGGREGATOR"]
    return [
        {
            "mode": draw(st.sampled_from(["PREPAID", "AT_COUNTER"])),
            "amount": amount,
            "method": draw(st.sampled_from(methods)),
        }
        for amount in amounts
    ]


def refusals(case: Case) -> list[str]:
    """The fields the host names when it refuses the order (empty: it accepts it)."""
    try:
        order = Order.model_validate(case.order)
    except ValidationError as exc:
        return [error_path(tuple(e["loc"])) for e in exc.errors()]
    menu = MENUS[case.notes[0]]
    return [f.field for f in check_order_against_menu(order, menu, at=NOON)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_orders_add_up_or_are_refused_naming_the_field(case: Case) -> None:
    named = refusals(case)
    if case.broken is None:
        assert named == [], case.order
    else:
        assert case.broken in named, (case.broken, named, case.order)


# --- the same through the Integrator API --------------------------------------------------------


@dataclass
class LiveHost:
    url: str
    token: str

    def post(self, order: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 (the test host's own http URL)
            f"{self.url}/v1/orders",
            data=orjson.dumps(order),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())


@pytest.fixture(scope="module")
def live_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHost]:
    """A host on the demo POS, running in a thread of its own, for synchronous examples."""
    folder = tmp_path_factory.mktemp("live")
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        sim = await start_simulator(
            SimulatorConfig(data_dir=folder / "pos", api_key=POS_API_KEY, stage_seconds=0.1)
        )
        stop = asyncio.Event()
        try:
            async with running_host(
                folder,
                [demo_connection(sim)],
                channels=["kiosk", "web", "delivery", "dine_in", "ubereats"],
            ) as harness:
                token = harness.client.headers["Authorization"].split()[1]
                started.update(
                    host=LiveHost(harness.url, token), stop=stop, loop=asyncio.get_running_loop()
                )
                ready.set()
                await stop.wait()
        finally:
            await sim.close()
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60) and "host" in started, "the host did not start"
    yield started["host"]
    started["loop"].call_soon_threadsafe(started["stop"].set)
    thread.join(60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(menu_kind="inclusive"))
def test_the_api_accepts_what_adds_up_and_names_what_does_not(
    live_host: LiveHost, case: Case
) -> None:
    status, body = live_host.post(case.order)
    if case.broken is None:
        assert status == 202, body
    else:
        assert status == 422, (case.broken, body)
        assert case.broken in [e["field"] for e in body["errors"]], (case.broken, body)

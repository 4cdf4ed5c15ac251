"""Orders checked against the real demo menu: every check, each with an order that breaks it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import pos_orders

from pos_demo.simulator import RunningSimulator
from pos_demo.simulator.menu import MenuCatalog
from pos_demo.translate import menu_from_pos
from posintegrator.model import Menu, Order
from posintegrator.model.order_check import OrderCode, OrderFinding, check_order_against_menu
from posintegrator.testing import HostHarness

#: Wednesday 2 December 2026, 12:00 in Berlin (the demo locations' time zone).
NOON = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def menu() -> Menu:
    """The downtown menu as the POS served it an hour before NOON (chicken wrap 86'd)."""
    native = MenuCatalog().menu_for("downtown", now=NOON - timedelta(hours=1))
    return menu_from_pos(native, "downtown")


def line(product: str, price: int, variant: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "product_id": product,
        "variant_id": variant,
        "quantity": 1,
        "unit_price": price,
        **extra,
    }


def mod(option: str, group: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"option_id": option, "group_id": group, **extra}


def order(*lines: dict[str, Any], channel: str = "web", tax: int = 0, **extra: Any) -> Order:
    """An order of ``lines`` whose amounts add up (with ``tax`` on top, and ``extra`` fields)."""
    data = {
        "id": "check-1",
        "location": "downtown",
        "channel": channel,
        "type": "TAKE_AWAY",
        "currency": "EUR",
        "lines": list(lines),
        "tax": tax,
        **extra,
    }
    items = sum(item["unit_price"] * item.get("quantity", 1) for item in lines)
    discounts = sum(d["amount"] for d in data.get("discounts", []))
    charges = sum(c["amount"] for c in data.get("charges", []))
    data["total"] = items - discounts + charges + tax
    data["payments"] = [{"mode": "AT_COUNTER", "amount": data["total"]}]
    return Order.model_validate(data)


def check(
    menu: Menu, the_order: Order, at: datetime = NOON, tolerance: int = 0
) -> list[OrderFinding]:
    return check_order_against_menu(the_order, menu, at=at, price_tolerance=tolerance)


def only(findings: list[OrderFinding]) -> tuple[str, OrderCode]:
    assert len(findings) == 1, findings
    return findings[0].field, findings[0].code


def test_the_example_order_is_right(menu: Menu, example_order: dict[str, Any]) -> None:
    assert check(menu, Order.model_validate(example_order)) == []


def test_the_delivery_example_is_right(menu: Menu) -> None:
    """examples/delivery-order.json, the worked example of docs/model.md: Uber Eats prices."""
    path = Path(__file__).resolve().parents[1] / "examples" / "delivery-order.json"
    delivery = Order.model_validate(orjson.loads(path.read_bytes()))
    assert check(menu, delivery) == []
    assert delivery.total == 880 + 480 - 136 + 299 + 150 == 1673
    on_delivery = delivery.model_copy(update={"channel": "delivery"})
    assert [f.field for f in check(menu, on_delivery)] == [
        "lines[0].unit_price",
        "lines[1].unit_price",
    ]


def test_unknown_product_variant_and_option(menu: Menu) -> None:
    assert only(check(menu, order(line("moon_burger", 500)))) == (
        "lines[0].product_id",
        OrderCode.UNKNOWN_PRODUCT,
    )
    assert only(check(menu, order(line("cola", 300, "xxl")))) == (
        "lines[0].variant_id",
        OrderCode.UNKNOWN_VARIANT,
    )
    field, code = only(check(menu, order(line("cola", 300))))
    assert (field, code) == ("lines[0].variant_id", OrderCode.UNKNOWN_VARIANT)
    bad_option = line("vanilla_shake", 390, "medium", modifiers=[mod("topping_gold_leaf")])
    assert only(check(menu, order(bad_option))) == (
        "lines[0].modifiers[0].option_id",
        OrderCode.UNKNOWN_OPTION,
    )
    foreign_group = line("cola", 300, "medium", modifiers=[mod("sauce_mayo", "burger_sauce")])
    assert only(check(menu, order(foreign_group))) == (
        "lines[0].modifiers[0].group_id",
        OrderCode.UNKNOWN_OPTION,
    )


def test_86d_product_is_refused_until_it_comes_back(menu: Menu) -> None:
    wrap = order(line("chicken_wrap", 720, "regular"))
    [finding] = check(menu, wrap)
    assert (finding.field, finding.code) == ("lines[0]", OrderCode.UNAVAILABLE)
    assert "86'd" in finding.reason and "until" in finding.reason
    assert check(menu, wrap, at=NOON + timedelta(days=1)) == [], "back after its expiry"


def test_schedule_and_channel_visibility(menu: Menu) -> None:
    pancakes = order(line("pancakes", 490, "regular"))
    [finding] = check(menu, pancakes)
    assert finding.code == OrderCode.UNAVAILABLE and "opening hours" in finding.reason
    breakfast_time = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # 07:30 in Berlin
    assert check(menu, pancakes, at=breakfast_time) == []
    beer = line("craft_beer", 420, "regular")
    assert check(menu, order(beer, channel="kiosk")) == []
    [finding] = check(menu, order(beer, channel="delivery"))
    assert finding.code == OrderCode.UNAVAILABLE and "channel delivery" in finding.reason


def test_group_selection_counts_and_option_quantity(menu: Menu) -> None:
    no_dip = line("chicken_nuggets", 550, "6pcs")
    assert only(check(menu, order(no_dip))) == ("lines[0].modifiers", OrderCode.SELECTION_COUNT)
    sauces = [mod("sauce_ketchup"), mod("sauce_mayo"), mod("sauce_bbq")]
    three_sauces = line("classic_burger", 690 + 90, "regular", modifiers=sauces)
    [finding] = check(menu, order(three_sauces))
    assert finding.code == OrderCode.SELECTION_COUNT and "burger_sauce" in finding.reason
    triple_cheese = line(
        "classic_burger", 690 + 240, "regular", modifiers=[mod("extra_cheese", quantity=3)]
    )
    assert only(check(menu, order(triple_cheese))) == (
        "lines[0].modifiers[0].quantity",
        OrderCode.OPTION_QUANTITY,
    )


def test_combo_slots_and_their_components(menu: Menu, example_order: dict[str, Any]) -> None:
    combo = copy.deepcopy(example_order["lines"][0])
    no_drink = {**combo, "components": combo["components"][:2], "unit_price": 1060}
    assert only(check(menu, order(no_drink))) == (
        "lines[0].components",
        OrderCode.SELECTION_COUNT,
    )
    coffee = copy.deepcopy(combo)
    coffee["components"][2] = {"slot_id": "drink", "product_id": "coffee", "variant_id": "regular"}
    assert only(check(menu, order(coffee))) == (
        "lines[0].components[2].product_id",
        OrderCode.COMBO_COMPONENT,
    )
    bad_burger_option = copy.deepcopy(combo)
    bad_burger_option["components"][0]["modifiers"][0]["modifiers"][0]["option_id"] = "amount_huge"
    assert only(check(menu, order(bad_burger_option))) == (
        "lines[0].components[0].modifiers[0].modifiers[0].option_id",
        OrderCode.UNKNOWN_OPTION,
    )


def test_prices_are_checked_per_line(menu: Menu, example_order: dict[str, Any]) -> None:
    cheap = copy.deepcopy(example_order)
    cheap["lines"][1]["unit_price"] = 400
    cheap["total"] = cheap["payments"][0]["amount"] = 1910
    findings = check(menu, Order.model_validate(cheap))
    assert [(f.field, f.code) for f in findings] == [
        ("lines[1].unit_price", OrderCode.PRICE_MISMATCH)
    ]
    assert "says 440" in findings[0].reason
    assert check(menu, Order.model_validate(cheap), tolerance=40) == []


def test_delivery_uses_the_delivery_price_list(menu: Menu) -> None:
    fries = line("fries", 320, "medium")
    assert check(menu, order(fries)) == []
    [line_finding] = check(menu, order(fries, channel="delivery"))
    assert line_finding.field == "lines[0].unit_price"
    assert "'delivery' price list says 380" in line_finding.reason


def test_free_quantity_and_option_price_overrides(menu: Menu) -> None:
    two_dips = line(
        "chicken_nuggets", 550 + 40, "6pcs", modifiers=[mod("dip_bbq"), mod("dip_curry")]
    )
    assert check(menu, order(two_dips)) == [], "the first dip is free, the second costs 40"
    overcharged = {**two_dips, "unit_price": 550 + 80}
    assert [f.field for f in check(menu, order(overcharged))] == ["lines[0].unit_price"]
    cheese_on_double = line(
        "double_cheeseburger", 990 + 50, "regular", modifiers=[mod("extra_cheese")]
    )
    assert check(menu, order(cheese_on_double)) == [], "extra cheese is 50 on the double, not 80"
    cheese_on_classic = line("classic_burger", 690 + 80, "regular", modifiers=[mod("extra_cheese")])
    assert check(menu, order(cheese_on_classic)) == []


def exclusive(menu: Menu) -> Menu:
    """The demo menu with its taxes added on top of the prices, as US sales taxes are."""
    changed = menu.model_copy(deep=True)
    for tax in changed.taxes:
        tax.inclusive = False
    return changed


def test_exclusive_taxes_are_the_order_tax(menu: Menu) -> None:
    fries = line("fries", 320, "medium")  # food VAT 7 %: 22.4 -> 22
    assert only(check(exclusive(menu), order(fries))) == ("tax", OrderCode.PRICE_MISMATCH)
    assert check(exclusive(menu), order(fries, tax=22)) == []
    assert check(exclusive(menu), order(fries, tax=23)) != []
    assert check(exclusive(menu), order(fries, tax=23), tolerance=1) == []
    assert check(menu, order(fries)) == [], "inclusive taxes add nothing"


def test_tax_rounding_follows_the_menu(menu: Menu) -> None:
    """A line whose tax is an exact half: fries at 350 and 7 % make 24.5."""
    up = exclusive(menu)
    fries = next(p for p in up.products if p.id == "fries")
    next(v for v in fries.variants if v.id == "medium").prices["instore"] = 350
    even = up.model_copy(update={"tax_rounding": "half_even"})
    half = line("fries", 350, "medium")
    assert check(up, order(half, tax=25)) == []
    assert only(check(up, order(half, tax=24)))[0] == "tax"
    assert check(even, order(half, tax=24)) == []
    assert only(check(even, order(half, tax=25)))[0] == "tax"


def test_discounts_lower_the_tax_and_taxable_charges_add_to_it(menu: Menu) -> None:
    fries = line("fries", 320, "medium", quantity=2)  # 640, food VAT 7 %
    cola = line("cola", 300, "medium")  # drinks VAT 19 %
    promo = {"kind": "PROMOTION", "name": "1 euro off", "amount": 100}
    # the 100 off is split over 640 and 300: 68 and 32 (largest remainder), so the taxes are
    # (640 - 68) x 7 % = 40.04 -> 40 and (300 - 32) x 19 % = 50.92 -> 51
    discounted = order(fries, cola, tax=91, discounts=[promo])
    assert check(exclusive(menu), discounted, tolerance=0) == []
    fee = {
        "kind": "DELIVERY_FEE",
        "name": "Delivery",
        "amount": 250,
        "taxable": True,
        "tax_id": "vat_drinks",
    }  # 250 x 19 % = 47.5 -> 48
    with_fee = order(fries, cola, tax=91 + 48, discounts=[promo], charges=[fee])
    assert check(exclusive(menu), with_fee) == []
    unknown = order(fries, charges=[{**fee, "tax_id": "vat_moon"}])
    assert only(check(exclusive(menu), unknown)) == ("charges[0].tax_id", OrderCode.UNKNOWN_TAX)


def test_currency_and_channel_without_a_price_list(menu: Menu) -> None:
    fries = line("fries", 320, "medium")
    dollars = order(fries).model_copy(update={"currency": "USD"})
    assert only(check(menu, dollars)) == ("currency", OrderCode.CURRENCY_MISMATCH)
    no_web = menu.model_copy(deep=True)
    for price_list in no_web.price_lists:
        price_list.channels = [c for c in price_list.channels if c != "web"]
    assert only(check(no_web, order(fries))) == ("channel", OrderCode.NO_PRICE_LIST)


async def test_the_api_refuses_such_orders_and_the_pos_never_sees_them(
    demo_host: HostHarness, simulator: RunningSimulator, example_order: dict[str, Any]
) -> None:
    bad = copy.deepcopy(example_order)
    bad["lines"][1]["modifiers"][0]["option_id"] = "topping_gold_leaf"
    bad["lines"][0]["components"][2]["product_id"] = "coffee"
    status, problem = await demo_host.post_order(bad)
    assert status == 422 and problem["title"] == "Order does not match the menu"
    assert {(e["field"], e["code"]) for e in problem["errors"]} == {
        ("lines[0].components[2].product_id", "combo_component"),
        ("lines[1].modifiers[0].option_id", "unknown_option"),
    }
    assert await demo_host.host.store.get_order(bad["id"]) is None
    assert await pos_orders(simulator) == []


def test_a_category_schedule_applies_to_its_products(menu: Menu) -> None:
    closed = menu.model_copy(deep=True)
    drinks = next(p for p in closed.products if p.id == "cola").category_ids[0]
    category = next(c for c in closed.categories if c.id == drinks)
    category.availability.channels = ["kiosk"]
    [finding] = check(closed, order(line("cola", 300, "medium")))
    assert finding.code == OrderCode.UNAVAILABLE and f"category {drinks!r}" in finding.reason


def test_a_combo_component_with_several_variants_needs_one(
    menu: Menu, example_order: dict[str, Any]
) -> None:
    combo = copy.deepcopy(example_order["lines"][0])
    open_choice = menu.model_copy(deep=True)
    burger_menu = next(p for p in open_choice.products if p.id == "burger_menu")
    burger_menu.slots[2].choices[0].variant_id = None  # any cola size
    combo["components"][2] = {"slot_id": "drink", "product_id": "cola"}
    assert only(check(open_choice, order({**combo, "unit_price": 1060}))) == (
        "lines[0].components[2].variant_id",
        OrderCode.UNKNOWN_VARIANT,
    )

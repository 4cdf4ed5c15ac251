"""Tryton records <-> universal model, on records recorded from the seeded Tryton server
(``fixtures/restaurant_records.json``: what ``read``/``search_read`` returned for the menu)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pos_tryton.translate import (
    PointInfo,
    SaleLine,
    TaxRule,
    menu_from_tryton,
    note_message,
    sale_lines,
    sale_total,
    status_event,
    unit_prices,
)
from pos_tryton.wire import decode
from posintegrator.model import Order, OrderStatus
from posintegrator.model.menu_check import check_menu, errors_in

RECORDS: dict[str, list[dict[str, Any]]] = decode(
    json.loads((Path(__file__).parent / "fixtures" / "restaurant_records.json").read_text())
)
POINT = PointInfo.from_tryton(RECORDS["sale.point"][0])
TAXES = {int(t["id"]): TaxRule.from_tryton(t) for t in RECORDS["account.tax"]}
PRODUCTS = {int(p["id"]): p for p in RECORDS["product.product"]}


def menu_of(products: list[dict[str, Any]] | None = None, taxes: Any = None) -> Any:
    return menu_from_tryton(
        "venue",
        POINT,
        RECORDS["product.category"],
        RECORDS["product.product"] if products is None else products,
        TAXES if taxes is None else taxes,
    )


def by_name(menu: Any, name: str) -> Any:
    return next(p for p in menu.products if p.name == name)


def test_the_restaurant_becomes_a_valid_menu() -> None:
    translation = menu_of()
    menu = translation.menu
    assert not translation.skipped
    assert not errors_in(check_menu(menu))
    assert (menu.currency, menu.timezone) == ("EUR", "Europe/Berlin")
    # 37 salable products, two of them pairs of variants of one wine each: 35 menu products.
    assert len(menu.products) == 35
    assert sum(len(p.variants) for p in menu.products) == 37
    assert [(t.name, t.rate_ppm, t.inclusive) for t in menu.taxes] == [
        ("VAT 7% (food)", 70_000, True),
        ("VAT 19% (drinks)", 190_000, True),
    ]


def test_ids_keep_trytons_ids_and_categories_keep_their_nesting() -> None:
    menu = menu_of().menu
    margherita = by_name(menu, "Pizza Margherita")
    variant = margherita.variants[0]
    product = PRODUCTS[int(variant.pos_id)]
    assert margherita.pos_id == str(product["template"])
    assert variant.prices == {"tryton": 950}
    categories = {c.id: c for c in menu.categories}
    (pizza,) = (categories[c] for c in margherita.category_ids)
    assert pizza.name == "Pizza" and categories[pizza.parent_id or ""].name == "Mains"
    assert margherita.tax_id is not None and "7%" in next(
        t.name for t in menu.taxes if t.id == margherita.tax_id
    )


def test_variants_carry_their_own_prices_and_names_and_units_show() -> None:
    menu = menu_of().menu
    wine = by_name(menu, "House red wine")
    assert sorted((v.name, v.prices["tryton"]) for v in wine.variants) == [
        ("Carafe 0.5 l", 1250),
        ("Glass 0.2 l", 550),
    ]
    juice = by_name(menu, "Fresh orange juice")
    assert [v.name for v in juice.variants] == ["Sold by the litre (per l)"]
    assert by_name(menu, "Espresso").variants[0].name == "Regular"


def test_a_product_whose_taxes_cannot_be_priced_is_left_out_with_the_reason() -> None:
    taxes = dict(TAXES)
    food = next(t for t in taxes.values() if "food" in t.name)
    taxes[food.id] = TaxRule(food.id, food.name, "percentage", food.rate, Decimal(0), False)
    translation = menu_of(taxes=taxes)
    assert "Pizza Margherita" not in {p.name for p in translation.menu.products}
    assert "Cola" in {p.name for p in translation.menu.products}
    assert all("not supported" in reason for reason in translation.skipped.values())
    assert len(translation.skipped) == 22  # every food product


def test_a_product_without_a_price_is_left_out() -> None:
    products = copy.deepcopy(RECORDS["product.product"])
    products[0]["gross_price_used"] = None
    translation = menu_of(products)
    assert translation.skipped == {str(products[0]["id"]): "no price"}
    assert len(translation.menu.products) == 34


@pytest.mark.parametrize("product_id", sorted(PRODUCTS))
def test_list_prices_are_derived_exactly_as_tryton_derives_them(product_id: int) -> None:
    product = PRODUCTS[product_id]
    rules = [TAXES[i] for i in product["template."]["account_category."]["customer_taxes_used"]]
    listed, gross = unit_prices(product["gross_price_used"], rules, tax_included=True)
    assert (listed, gross) == (product["list_price_used"], product["gross_price_used"])


def test_gross_prices_add_the_taxes_at_a_point_without_tax_included() -> None:
    vat = TaxRule(1, "VAT", "percentage", Decimal("0.19"), Decimal(0), True)
    deposit = TaxRule(2, "Deposit", "fixed", Decimal(0), Decimal("0.25"), True)
    assert unit_prices(Decimal("10.00"), [vat], tax_included=False) == (
        Decimal("10.00"),
        Decimal("11.9000"),
    )
    assert unit_prices(Decimal("10.00"), [vat, deposit], tax_included=False)[1] == Decimal(
        "12.1500"
    )


def order(**overrides: Any) -> Order:
    wine_carafe = next(p for p in PRODUCTS.values() if p.get("code") == "RED-C")
    margherita = next(p for p in PRODUCTS.values() if p["template."]["name"] == "Pizza Margherita")
    body: dict[str, Any] = {
        "id": "web-1",
        "location": "venue",
        "type": "TAKE_AWAY",
        "currency": "EUR",
        "lines": [
            {
                "product_id": f"product-{margherita['template']}",
                "variant_id": f"variant-{margherita['id']}",
                "quantity": 2,
                "unit_price": 950,
                "note": "well done",
            },
            {
                "product_id": f"product-{wine_carafe['template']}",
                "variant_id": f"variant-{wine_carafe['id']}",
                "quantity": 1,
                "unit_price": 1250,
            },
        ],
        "total": 3150,
        "payments": [{"mode": "PREPAID", "amount": 3150, "reference": "pay_123"}],
        "customer": {"name": "Ada", "phone": "+49 30 1234"},
        "customer_note": "ring twice",
    }
    body.update(overrides)
    return Order.model_validate(body)


def test_an_order_becomes_sale_lines_at_its_own_prices_totalling_the_order() -> None:
    lines = sale_lines(order(), POINT, PRODUCTS, TAXES)
    margherita, wine = lines
    assert (margherita.quantity, margherita.unit_gross_price) == (2, Decimal("9.50"))
    assert margherita.unit_list_price == Decimal("8.8785")  # 9.50 / 1.07, as Tryton rounds
    assert (wine.quantity, wine.unit_gross_price) == (1, Decimal("12.50"))
    assert sale_total(lines, POINT.digits) == Decimal("31.50")


def test_a_line_without_variant_takes_the_products_only_variant() -> None:
    espresso = next(p for p in PRODUCTS.values() if p["template."]["name"] == "Espresso")
    line = {"product_id": f"product-{espresso['template']}", "quantity": 3, "unit_price": 240}
    paid = [{"mode": "PREPAID", "amount": 720}]
    (sale_line,) = sale_lines(order(lines=[line], total=720, payments=paid), POINT, PRODUCTS, TAXES)
    assert sale_line == SaleLine(
        int(espresso["id"]), 3, espresso["list_price_used"], espresso["gross_price_used"]
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"variant_id": "variant-999"}, "not active and salable"),
        ({"variant_id": None}, "has 2 active ones"),
        ({"product_id": "product-1"}, "is not a variant of it"),
        ({"modifiers": [{"option_id": "x"}]}, "no modifiers"),
    ],
)
def test_lines_tryton_cannot_sell_are_refused_with_the_reason(
    change: dict[str, Any], problem: str
) -> None:
    body = order().model_dump(mode="json")
    body["lines"][1].update(change)
    with pytest.raises(ValueError, match=problem):
        sale_lines(Order.model_validate(body), POINT, PRODUCTS, TAXES)


def test_the_note_tells_the_cashier_what_the_order_is() -> None:
    text = note_message('posintegrator order "web-1"', order(), POINT.digits)
    assert text.splitlines() == [
        'posintegrator order "web-1"',
        "Take-away order from the web channel",
        "Prepaid 31.50 EUR (reference pay_123)",
        "Customer: Ada, +49 30 1234",
        "Note: ring twice",
        "Line 1: well done",
    ]
    at_counter = order(payments=[{"mode": "AT_COUNTER", "amount": 3150}])
    assert "To pay at the counter: 31.50 EUR" in note_message("m", at_counter, 2)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("open", OrderStatus.ACCEPTED),
        ("done", OrderStatus.COMPLETED),
        ("posted", OrderStatus.COMPLETED),
        ("cancelled", OrderStatus.CANCELLED),
    ],
)
def test_sale_states_map_to_order_statuses_dated_by_the_last_change(
    state: str, status: OrderStatus
) -> None:
    changed = dt.datetime(2026, 5, 1, 12, 30, tzinfo=dt.UTC)
    event = status_event({"id": 7, "state": state, "write_date": changed, "create_date": None})
    assert event is not None
    assert (event.pos_order_id, event.status, event.occurred_at) == ("7", status, changed)
    assert event.pos_event_id == f"7:{state}:{changed.isoformat()}"


def test_a_sale_never_changed_is_dated_by_its_creation_and_unknown_states_say_nothing() -> None:
    created = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    event = status_event({"id": 7, "state": "open", "write_date": None, "create_date": created})
    assert event is not None and event.occurred_at == created
    assert status_event({"id": 7, "state": "quoted", "write_date": created}) is None

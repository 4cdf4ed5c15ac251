"""Orders built from a live menu, so the conformance kit can order from any POS's menu; orders
that use each optional part of the model (:class:`~posintegrator.hooktypes.OrderFeature`); and
the smallest valid menu, for test and benchmark POS plugins that need one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from posintegrator.hooktypes import OrderFeature
from posintegrator.model import Menu, ModifierGroup, Order, PriceList, Product, Variant
from posintegrator.model.order_check import exclusive_tax
from posintegrator.model.order_totals import rate_of

#: A JSON order document, as the cloud posts it.
OrderData = dict[str, Any]


def one_product_menu(location: str) -> Menu:
    """A valid menu of one product (a burger, one variant, 5.00 EUR in one price list that
    serves every channel)."""
    return Menu(
        location=location,
        currency="EUR",
        price_lists=[PriceList(id="default", name="Default")],
        products=[
            Product(
                id="burger",
                pos_id="P1",
                name="Burger",
                variants=[Variant(id="regular", name="Regular", prices={"default": 500})],
            )
        ],
    )


def price_list_for(menu: Menu, channel: str) -> str:
    """The price list a channel uses (as the order check chooses it), else the first of all."""
    chosen = menu.price_list_for(channel)
    return chosen.id if chosen is not None else menu.price_lists[0].id


def _orderable(product: Product, menu: Menu) -> bool:
    if product.is_combo or not product.availability.available:
        return False
    groups = [menu.modifier_group(g) for g in product.modifier_group_ids]
    return all(g is not None and len(g.options) >= g.min for g in groups)


def _required_choices(
    groups: list[ModifierGroup], price_list: str
) -> tuple[list[dict[str, Any]], int]:
    """The cheapest selection meeting each group's minimum, and what it costs."""
    selected: list[dict[str, Any]] = []
    cost = 0
    for group in groups:
        options = sorted(
            (o for o in group.options if o.availability.available and not o.modifier_group_ids),
            key=lambda o: o.prices.get(price_list, 0),
        )
        for option in options[: group.min]:
            selected.append({"group_id": group.id, "option_id": option.id, "quantity": 1})
            cost += option.prices.get(price_list, 0)
    return selected, cost


def complete_order(data: OrderData, menu: Menu) -> OrderData:
    """``data`` with its ``tax``, ``total`` and payments filled in to add up.

    ``tax`` is what the menu's exclusive taxes come to (as the host's order check computes it),
    ``total`` follows the order's rule. Payments already in ``data`` keep their modes and split
    the total in the same proportions (the last takes what rounding leaves); without any, one
    PREPAID card payment pays it all.
    """
    done = copy.deepcopy(data)
    done["tax"] = 0
    done["total"] = _total_before_tax(done)
    done["payments"] = [{"mode": "PREPAID", "amount": done["total"]}]
    tax = exclusive_tax(Order.model_validate(done), menu)
    done["tax"] = tax
    done["total"] += tax
    payments = data.get("payments") or [{"mode": "PREPAID", "method": "CARD", "amount": 1}]
    weights = [max(int(p.get("amount", 1)), 1) for p in payments]
    split = [done["total"] * w // sum(weights) for w in weights]
    split[-1] += done["total"] - sum(split)
    done["payments"] = [{**p, "amount": a} for p, a in zip(payments, split, strict=True)]
    return done


def _items(data: OrderData) -> int:
    """The sum of the line nets of an order document."""
    return sum(
        int(line["unit_price"]) * int(line["quantity"])
        - sum(int(d["amount"]) for d in line.get("discounts", []))
        for line in data["lines"]
    )


def _total_before_tax(data: OrderData) -> int:
    items = _items(data)
    discounts = sum(int(d["amount"]) for d in data.get("discounts", []))
    charges = sum(int(c["amount"]) for c in data.get("charges", []))
    return items - discounts + charges + int(data.get("tip", 0))


def sample_order(
    menu: Menu, order_id: str, *, channel: str = "web", quantity: int = 1
) -> OrderData:
    """A valid PREPAID take-away order of the first orderable product, priced from the menu
    (with the exclusive tax the menu adds, as the host's order check expects)."""
    price_list = price_list_for(menu, channel)
    product = next((p for p in menu.products if _orderable(p, menu)), None)
    if product is None:
        raise AssertionError(f"menu of {menu.location} has no product that can be ordered")
    variant = next((v for v in product.variants if v.availability.available), product.variants[0])
    groups = [g for g in (menu.modifier_group(i) for i in product.modifier_group_ids) if g]
    modifiers, extra = _required_choices(groups, price_list)
    unit_price = variant.prices.get(price_list, 0) + extra
    return complete_order(
        {
            "id": order_id,
            "location": menu.location,
            "channel": channel,
            "type": "TAKE_AWAY",
            "currency": menu.currency,
            "lines": [
                {
                    "product_id": product.id,
                    "variant_id": variant.id,
                    "quantity": quantity,
                    "unit_price": unit_price,
                    "modifiers": modifiers,
                }
            ],
            "customer": {"name": "Conformance"},
        },
        menu,
    )


def _line_discount(order: OrderData, menu: Menu) -> OrderData:
    line = order["lines"][0]
    line["discounts"] = [
        {
            "kind": "STAFF",
            "name": "Staff meal, 50 %",
            "rate_ppm": 500_000,
            "amount": rate_of(line["unit_price"] * line["quantity"], 500_000),
        }
    ]
    return order


def _order_discount(order: OrderData, menu: Menu) -> OrderData:
    items = _items(order)
    order["discounts"] = [
        {
            "kind": "PROMOTION",
            "name": "10 % off",
            "code": "WELCOME10",
            "rate_ppm": 100_000,
            "amount": rate_of(items, 100_000),
        }
    ]
    return order


def _charges(order: OrderData, menu: Menu) -> OrderData:
    order["charges"] = [{"kind": "PACKAGING_FEE", "name": "Packaging", "amount": 50}]
    return order


def _tip(order: OrderData, menu: Menu) -> OrderData:
    order["tip"] = 100
    return order


def _split_payments(order: OrderData, menu: Menu) -> OrderData:
    order["payments"] = [
        {"mode": "PREPAID", "method": "GIFT_CARD", "amount": 1, "reference": "gift-1"},
        {"mode": "PREPAID", "method": "CARD", "amount": 2, "reference": "card-1"},
    ]
    return order


def _delivery(order: OrderData, menu: Menu) -> OrderData:
    order["type"] = "DELIVERY"
    order["delivery"] = {
        "address": {
            "street": "Hauptstr. 5",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "instructions": "Ring twice",
        "courier": {"name": "Sam", "provider": "own"},
        "aggregator_order_id": "AGG-1234",
        "display_code": "K7",
    }
    return order


def _table(order: OrderData, menu: Menu) -> OrderData:
    order["type"] = "DINE_IN"
    order["table"] = {"name": "12", "covers": 3}
    return order


def _fiscal(order: OrderData, menu: Menu) -> OrderData:
    order["fiscalised"] = True
    order["fiscal"] = {"receipt_number": "R-2026-000123", "device_id": "TSE-1", "service": "tse"}
    return order


#: How to make a sample order use each feature (before :func:`complete_order` adds it up).
FEATURE_BUILDERS: dict[OrderFeature, Callable[[OrderData, Menu], OrderData]] = {
    OrderFeature.LINE_DISCOUNTS: _line_discount,
    OrderFeature.DISCOUNTS: _order_discount,
    OrderFeature.CHARGES: _charges,
    OrderFeature.TIP: _tip,
    OrderFeature.SPLIT_PAYMENTS: _split_payments,
    OrderFeature.DELIVERY_DETAILS: _delivery,
    OrderFeature.TABLE: _table,
    OrderFeature.FISCAL_DOCUMENT: _fiscal,
}


def sample_order_with(
    menu: Menu, order_id: str, feature: OrderFeature, *, channel: str = "web"
) -> OrderData:
    """A valid order like :func:`sample_order` that also uses ``feature`` (two of the product,
    so a discount has something to take off)."""
    order = sample_order(menu, order_id, channel=channel, quantity=2)
    return complete_order(FEATURE_BUILDERS[feature](order, menu), menu)

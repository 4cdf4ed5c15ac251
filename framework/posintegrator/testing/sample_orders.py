"""Orders built from a live menu, so the conformance kit can order from any POS's menu; and the
smallest valid menu, for test and benchmark POS plugins that need one."""

from __future__ import annotations

from typing import Any

from posintegrator.model import Channel, Menu, ModifierGroup, PriceList, Product, Variant
from posintegrator.model.order_check import round_half_up


def one_product_menu(location: str) -> Menu:
    """A valid menu of one product (a burger, one variant, 5.00 EUR in one price list)."""
    return Menu(
        location=location,
        currency="EUR",
        price_lists=[PriceList(id="default", name="Default", channels=list(Channel))],
        products=[
            Product(
                id="burger",
                pos_id="P1",
                name="Burger",
                variants=[Variant(id="regular", name="Regular", prices={"default": 500})],
            )
        ],
    )


def price_list_for(menu: Menu, channel: Channel) -> str:
    """The price list a channel uses: the first naming the channel, else the first of all."""
    for price_list in menu.price_lists:
        if channel in price_list.channels:
            return price_list.id
    return menu.price_lists[0].id


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


def sample_order(
    menu: Menu, order_id: str, *, channel: Channel = Channel.WEB, quantity: int = 1
) -> dict[str, Any]:
    """A valid PREPAID take-away order of the first orderable product, priced from the menu
    (with the product's exclusive tax added to the total, as the host's order check expects)."""
    price_list = price_list_for(menu, channel)
    product = next((p for p in menu.products if _orderable(p, menu)), None)
    if product is None:
        raise AssertionError(f"menu of {menu.location} has no product that can be ordered")
    variant = next((v for v in product.variants if v.availability.available), product.variants[0])
    groups = [g for g in (menu.modifier_group(i) for i in product.modifier_group_ids) if g]
    modifiers, extra = _required_choices(groups, price_list)
    unit_price = variant.prices.get(price_list, 0) + extra
    total = unit_price * quantity
    tax = next((t for t in menu.taxes if t.id == product.tax_id), None)
    if tax is not None and not tax.inclusive:
        total += round_half_up(total * tax.rate_ppm, 1_000_000)
    return {
        "id": order_id,
        "location": menu.location,
        "channel": channel.value,
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
        "total": total,
        "payment": {"mode": "PREPAID", "amount": total},
        "customer": {"name": "Conformance"},
    }

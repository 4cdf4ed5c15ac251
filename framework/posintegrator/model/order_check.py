"""Checks of an order against the live menu, before anything goes to the POS.

Each finding points at the line, component or option it is about (``lines[2].modifiers[0]``), so
the cloud can show the customer or the developer exactly what to fix.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from posintegrator.model.menu import (
    Availability,
    Category,
    Menu,
    ModifierGroup,
    ModifierOption,
    Product,
    Tax,
)
from posintegrator.model.order import ComboComponent, Order, OrderLine, SelectedModifier
from posintegrator.model.order_totals import (
    PPM,
    apportion,
    line_net,
    round_half_even,
    round_half_up,
)


class OrderCode(StrEnum):
    """What kind of problem an order finding is."""

    UNKNOWN_PRODUCT = "unknown_product"
    UNKNOWN_VARIANT = "unknown_variant"
    UNKNOWN_OPTION = "unknown_option"
    UNAVAILABLE = "unavailable"
    """86'd, outside its schedule, or not sold on the order's channel."""
    SELECTION_COUNT = "selection_count"
    """Fewer or more selections than a group or combo slot allows."""
    OPTION_QUANTITY = "option_quantity"
    COMBO_COMPONENT = "combo_component"
    NO_PRICE_LIST = "no_price_list"
    PRICE_MISMATCH = "price_mismatch"
    """A line's unit price, or the order's tax, is not what the menu says."""
    CURRENCY_MISMATCH = "currency_mismatch"
    UNKNOWN_TAX = "unknown_tax"
    """A taxable charge names a tax the menu does not have."""


@dataclass(frozen=True)
class OrderFinding:
    """One problem of an order: the field path, a code and a reason."""

    field: str
    code: OrderCode
    reason: str


@dataclass(frozen=True)
class MenuIndex:
    """A menu's entities by id, built once per menu version rather than once per order."""

    menu: Menu
    products: dict[str, Product]
    groups: dict[str, ModifierGroup]
    taxes: dict[str, Tax]
    categories: dict[str, Category]
    zone: ZoneInfo

    @classmethod
    def of(cls, menu: Menu) -> MenuIndex:
        """The index of ``menu``."""
        return cls(
            menu=menu,
            products={p.id: p for p in menu.products},
            groups={g.id: g for g in menu.modifier_groups},
            taxes={t.id: t for t in menu.taxes},
            categories={c.id: c for c in menu.categories},
            zone=menu.zone,
        )


def check_order_against_menu(
    order: Order,
    menu: Menu,
    *,
    at: datetime,
    price_tolerance: int = 0,
    index: MenuIndex | None = None,
) -> list[OrderFinding]:
    """Every problem of ``order`` against ``menu`` at instant ``at`` (pickup time or now).

    Prices must match the channel's price list within ``price_tolerance`` minor units, per line
    (unit price) and for the order's ``tax``: the taxes the menu says are not included in
    prices, computed as :func:`exclusive_tax` does. (That the order's amounts add up to its
    total is the order's own rule, checked when it is validated.)
    """
    return _OrderChecker(order, index or MenuIndex.of(menu), at, price_tolerance).run()


def exclusive_tax(
    order: Order,
    menu: Menu,
    taxes: dict[str, Tax] | None = None,
    products: dict[str, Product] | None = None,
) -> int:
    """The tax ``order`` adds on top of its prices, by the taxes of ``menu`` that are not
    included in prices (``inclusive`` false); 0 when every tax is included.

    Per line: the line's net (after its own discounts) less its share of the order's discounts
    (split over the line nets by :func:`~posintegrator.model.order_totals.apportion`), times the
    rate of its product's tax (for a combo, the combo's). Per taxable charge: its amount times
    the rate of its ``tax_id``. Each is rounded to a whole minor unit by the menu's
    ``tax_rounding``; the tax is their sum. Lines whose product the menu lacks add nothing.
    """
    taxes = taxes if taxes is not None else {t.id: t for t in menu.taxes}
    products = products if products is not None else {p.id: p for p in menu.products}
    round_tax = round_half_even if menu.tax_rounding == "half_even" else round_half_up
    nets = [line_net(line) for line in order.lines]
    shares = apportion(sum(d.amount for d in order.discounts), nets)
    total = 0
    for line, net, share in zip(order.lines, nets, shares, strict=True):
        product = products.get(line.product_id)
        tax = taxes.get(product.tax_id) if product is not None and product.tax_id else None
        if tax is not None and not tax.inclusive:
            total += round_tax((net - share) * tax.rate_ppm, PPM)
    for charge in order.charges:
        tax = taxes.get(charge.tax_id) if charge.taxable and charge.tax_id else None
        if tax is not None and not tax.inclusive:
            total += round_tax(charge.amount * tax.rate_ppm, PPM)
    return total


class _OrderChecker:
    def __init__(self, order: Order, index: MenuIndex, at: datetime, tolerance: int) -> None:
        menu = index.menu
        self.order = order
        self.menu = menu
        self.at = at
        self.tolerance = tolerance
        self.zone = index.zone
        self.products = index.products
        self.groups = index.groups
        self.taxes = index.taxes
        self.categories = index.categories
        self.findings: list[OrderFinding] = []
        price_list = menu.price_list_for(order.channel)
        self.price_list = price_list.id if price_list else None

    def problem(self, field: str, code: OrderCode, reason: str) -> None:
        self.findings.append(OrderFinding(field, code, reason))

    def run(self) -> list[OrderFinding]:
        order = self.order
        if order.currency != self.menu.currency:
            self.problem(
                "currency",
                OrderCode.CURRENCY_MISMATCH,
                f"the menu of {self.menu.location!r} is in {self.menu.currency}",
            )
            return self.findings
        if self.price_list is None:
            self.problem(
                "channel",
                OrderCode.NO_PRICE_LIST,
                f"no price list of {self.menu.location!r} serves channel {order.channel}",
            )
            return self.findings
        priced = True
        for index, line in enumerate(order.lines):
            path = f"lines[{index}]"
            unit = self._line(path, line)
            if unit is None:
                priced = False
                continue
            if abs(line.unit_price - unit) > self.tolerance:
                self.problem(
                    f"{path}.unit_price",
                    OrderCode.PRICE_MISMATCH,
                    f"is {line.unit_price} but the {self.price_list!r} price list says {unit}",
                )
        for index, charge in enumerate(order.charges):
            if charge.tax_id is not None and charge.tax_id not in self.taxes:
                priced = False
                self.problem(
                    f"charges[{index}].tax_id",
                    OrderCode.UNKNOWN_TAX,
                    f"the menu of {self.menu.location!r} has no tax {charge.tax_id!r}",
                )
        if priced:
            expected = exclusive_tax(order, self.menu, self.taxes, self.products)
            if abs(order.tax - expected) > self.tolerance:
                self.problem(
                    "tax",
                    OrderCode.PRICE_MISMATCH,
                    f"is {order.tax} but the taxes the menu adds on top of its prices come to "
                    f"{expected} (rounded {self.menu.tax_rounding.replace('_', ' ')} per line)",
                )
        return self.findings

    def _orderable(self, path: str, what: str, availability: Availability) -> bool:
        if availability.is_orderable(self.at, self.order.channel, self.zone):
            return True
        reason = availability.reason or "not available"
        if not availability.available:
            until = availability.unavailable_until
            reason = f"86'd ({reason})" + (f" until {until.isoformat()}" if until else "")
        elif availability.channels and self.order.channel not in availability.channels:
            reason = f"not sold on channel {self.order.channel}"
        elif availability.schedule:
            reason = "outside its opening hours"
        self.problem(path, OrderCode.UNAVAILABLE, f"{what} is {reason}")
        return False

    def _product_orderable(self, path: str, product: Product) -> bool:
        """The product and every category it is in (a category's hours apply to its products)."""
        if not self._orderable(path, f"product {product.id!r}", product.availability):
            return False
        for category_id in product.category_ids:
            category = self.categories.get(category_id)
            if category is not None and not self._orderable(
                path, f"category {category.id!r}", category.availability
            ):
                return False
        return True

    def _component_variant(self, path: str, product: Product, variant_id: str | None) -> bool:
        """A combo component's variant is chosen when it must be, and is available."""
        if variant_id is None:
            if len(product.variants) > 1:
                self.problem(
                    f"{path}.variant_id",
                    OrderCode.UNKNOWN_VARIANT,
                    f"product {product.id!r} has several variants; choose one",
                )
                return False
            return True
        variant = next(v for v in product.variants if v.id == variant_id)
        where = f"{path}.variant_id"
        return self._orderable(where, f"variant {variant.id!r}", variant.availability)

    def _line(self, path: str, line: OrderLine) -> int | None:
        """The expected unit price of a line, or None when it cannot be priced."""
        product_id, variant_id = line.product_id, line.variant_id
        product = self.products.get(product_id)
        if product is None:
            self.problem(
                f"{path}.product_id", OrderCode.UNKNOWN_PRODUCT, f"no product {product_id!r}"
            )
            return None
        base = self._product_base(path, product, variant_id)
        priced = base is not None
        if not self._product_orderable(path, product):
            priced = False
        modifiers = self._selections(path, product, product.modifier_group_ids, line.modifiers)
        components = self._components(path, product, line.components)
        if not priced or modifiers is None or components is None or base is None:
            return None
        return base + modifiers + components

    def _product_base(self, path: str, product: Product, variant_id: str | None) -> int | None:
        if variant_id is None:
            if len(product.variants) > 1:
                names = ", ".join(v.id for v in product.variants)
                self.problem(
                    f"{path}.variant_id",
                    OrderCode.UNKNOWN_VARIANT,
                    f"product {product.id!r} has several variants; choose one of {names}",
                )
                return None
            variant = product.variants[0]
        else:
            found = next((v for v in product.variants if v.id == variant_id), None)
            if found is None:
                self.problem(
                    f"{path}.variant_id",
                    OrderCode.UNKNOWN_VARIANT,
                    f"product {product.id!r} has no variant {variant_id!r}",
                )
                return None
            variant = found
        if not self._orderable(
            f"{path}.variant_id", f"variant {variant.id!r}", variant.availability
        ):
            return None
        assert self.price_list is not None
        price = variant.prices.get(self.price_list)
        if price is None:
            self.problem(
                f"{path}.variant_id",
                OrderCode.NO_PRICE_LIST,
                f"variant {variant.id!r} has no price in price list {self.price_list!r}",
            )
        return price

    def _selections(
        self,
        path: str,
        product: Product | None,
        group_ids: list[str],
        selections: list[SelectedModifier],
    ) -> int | None:
        """Check selections against ``group_ids``; their price, or None if unpriceable.

        ``product`` is given for the product's own groups, whose option prices it may
        override; nested groups (``product`` None) use the options' own prices.
        """
        groups = [self.groups[g] for g in group_ids if g in self.groups]
        chosen: dict[str, list[tuple[int, SelectedModifier, ModifierOption]]] = defaultdict(list)
        ok = True
        for index, selection in enumerate(selections):
            where = f"{path}.modifiers[{index}]"
            match = self._find_option(where, groups, selection)
            if match is None:
                ok = False
                continue
            group, option = match
            chosen[group.id].append((index, selection, option))
            if selection.quantity > option.max_quantity:
                self.problem(
                    f"{where}.quantity",
                    OrderCode.OPTION_QUANTITY,
                    f"at most {option.max_quantity} of {option.id!r}",
                )
            if not self._orderable(where, f"option {option.id!r}", option.availability):
                ok = False
        total = 0
        for group in groups:
            picks = chosen.get(group.id, [])
            count = sum(s.quantity for _, s, _ in picks)
            if count < group.min or (group.max is not None and count > group.max):
                limit = (
                    f"{group.min}" + (f" to {group.max}" if group.max != group.min else "")
                    if group.max is not None
                    else f"at least {group.min}"
                )
                self.problem(
                    f"{path}.modifiers",
                    OrderCode.SELECTION_COUNT,
                    f"group {group.id!r} takes {limit} selection(s), got {count}",
                )
            free_left = group.free_quantity
            for index, selection, option in picks:
                price = self._option_price(product, group, option)
                free = min(selection.quantity, free_left)
                free_left -= free
                total += price * (selection.quantity - free)
                nested = self._selections(
                    f"{path}.modifiers[{index}]",
                    None,
                    option.modifier_group_ids,
                    selection.modifiers,
                )
                if nested is None:
                    ok = False
                else:
                    total += nested * selection.quantity
        return total if ok else None

    def _find_option(
        self, where: str, groups: list[ModifierGroup], selection: SelectedModifier
    ) -> tuple[ModifierGroup, ModifierOption] | None:
        candidates = groups
        if selection.group_id is not None:
            candidates = [g for g in groups if g.id == selection.group_id]
            if not candidates:
                self.problem(
                    f"{where}.group_id",
                    OrderCode.UNKNOWN_OPTION,
                    f"group {selection.group_id!r} does not apply here",
                )
                return None
        matches = [(g, o) for g in candidates for o in g.options if o.id == selection.option_id]
        if not matches:
            self.problem(
                f"{where}.option_id",
                OrderCode.UNKNOWN_OPTION,
                f"no option {selection.option_id!r} in "
                + (", ".join(repr(g.id) for g in candidates) or "any group of this item"),
            )
            return None
        if len(matches) > 1:
            self.problem(
                f"{where}.group_id",
                OrderCode.UNKNOWN_OPTION,
                f"option {selection.option_id!r} is in several groups; name its group_id",
            )
            return None
        return matches[0]

    def _option_price(
        self, product: Product | None, group: ModifierGroup, option: ModifierOption
    ) -> int:
        assert self.price_list is not None
        for override in product.option_prices if product else []:
            if override.group_id == group.id and override.option_id == option.id:
                return override.prices.get(self.price_list, 0)
        return option.prices.get(self.price_list, 0)

    def _components(
        self, path: str, combo: Product, components: list[ComboComponent]
    ) -> int | None:
        if not combo.slots:
            if components:
                self.problem(
                    f"{path}.components",
                    OrderCode.COMBO_COMPONENT,
                    f"product {combo.id!r} is not a combo",
                )
                return None
            return 0
        assert self.price_list is not None
        slots = {s.id: s for s in combo.slots}
        counts: dict[str, int] = defaultdict(int)
        total = 0
        ok = True
        for index, component in enumerate(components):
            where = f"{path}.components[{index}]"
            slot = slots.get(component.slot_id)
            if slot is None:
                self.problem(
                    f"{where}.slot_id",
                    OrderCode.COMBO_COMPONENT,
                    f"combo {combo.id!r} has no slot {component.slot_id!r}",
                )
                ok = False
                continue
            counts[slot.id] += 1
            choice = next(
                (
                    c
                    for c in slot.choices
                    if c.product_id == component.product_id
                    and (c.variant_id is None or c.variant_id == component.variant_id)
                ),
                None,
            )
            product = self.products.get(component.product_id)
            if choice is None or product is None:
                self.problem(
                    f"{where}.product_id",
                    OrderCode.COMBO_COMPONENT,
                    f"{component.product_id!r}"
                    + (f" ({component.variant_id})" if component.variant_id else "")
                    + f" is not a choice of slot {slot.id!r}",
                )
                ok = False
                continue
            if component.variant_id is not None and component.variant_id not in {
                v.id for v in product.variants
            }:
                self.problem(
                    f"{where}.variant_id",
                    OrderCode.UNKNOWN_VARIANT,
                    f"product {product.id!r} has no variant {component.variant_id!r}",
                )
                ok = False
                continue
            if not self._product_orderable(where, product):
                ok = False
            if not self._component_variant(where, product, component.variant_id):
                ok = False
            total += choice.upcharge.get(self.price_list, 0)
            modifiers = self._selections(
                where, product, product.modifier_group_ids, component.modifiers
            )
            if modifiers is None:
                ok = False
            else:
                total += modifiers
        for slot in combo.slots:
            if not slot.min <= counts[slot.id] <= slot.max:
                self.problem(
                    f"{path}.components",
                    OrderCode.SELECTION_COUNT,
                    f"slot {slot.id!r} takes {slot.min} to {slot.max} product(s), "
                    f"got {counts[slot.id]}",
                )
        return total if ok else None

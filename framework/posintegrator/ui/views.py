"""What the dashboard's pages show, built from the store's records: pure functions, no I/O.

An order's timeline merges three records the store keeps apart (status history, delivery
attempts, events for the cloud) into one list by time; an order's lines are named and priced
from the menu; a menu becomes a tree of categories, products and their options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from posintegrator.api.schemas import OrderView
from posintegrator.model import Menu, Order
from posintegrator.model.menu import (
    Availability,
    Category,
    ModifierGroup,
    Product,
)
from posintegrator.model.order import ComboComponent, SelectedModifier
from posintegrator.store import CloudEventRecord

# --- the order's timeline -----------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an order.

    :param kind: ``status`` (a status event, applied or not), ``action`` (an operator's),
        ``attempt`` (a delivery to the POS) or ``cloud`` (an event for the cloud).
    :param ok: False for what went wrong (a failed attempt, an undelivered event), so the
        page can mark it.
    :param ignored: a status event that changed nothing (stale or a duplicate).
    """

    at: datetime
    kind: str
    title: str
    source: str | None = None
    detail: str | None = None
    ok: bool = True
    ignored: bool = False


def timeline(view: OrderView, events: list[CloudEventRecord]) -> list[TimelineEntry]:
    """Every status event, operator action, delivery attempt and cloud event of an order, in
    the order they happened (ties keep that order: status, attempt, cloud)."""
    entries: list[TimelineEntry] = []
    for item in view.history:
        if item.note is not None and item.note.startswith("action: "):
            entries.append(
                TimelineEntry(
                    at=item.at,
                    kind="action",
                    title=item.note.removeprefix("action: "),
                    source=item.source,
                    detail=item.reason,
                )
            )
            continue
        note = None if item.applied else f"ignored ({item.note or 'not applied'})"
        detail = "; ".join(part for part in (item.reason, note) if part) or None
        entries.append(
            TimelineEntry(
                at=item.at,
                kind="status",
                title=item.status.value,
                source=item.source,
                detail=detail,
                ignored=not item.applied,
            )
        )
    for attempt in view.delivery_attempts:
        entries.append(
            TimelineEntry(
                at=attempt.started_at,
                kind="attempt",
                title=f"delivery attempt {attempt.number}: {attempt.outcome}",
                source=view.connection,
                detail=attempt.error,
                ok=attempt.error is None and attempt.outcome not in ("retry", "unknown"),
            )
        )
    for event in events:
        entries.append(_cloud_entry(event))
    kinds = {"status": 0, "action": 0, "attempt": 1, "cloud": 2}
    return sorted(entries, key=lambda e: (e.at, kinds[e.kind]))


def _cloud_entry(event: CloudEventRecord) -> TimelineEntry:
    body: dict[str, Any] = orjson.loads(event.body)
    what = body.get("status") or body.get("type", "event")
    if event.delivered_at is not None:
        state = f"delivered {event.delivered_at:%H:%M:%S} after {event.attempts} attempt(s)"
    else:
        state = f"not delivered yet ({event.attempts} attempt(s))"
    detail = state + (f"; last error: {event.last_error}" if event.last_error else "")
    return TimelineEntry(
        at=event.created_at,
        kind="cloud",
        title=f"to the cloud #{event.sequence}: {what}",
        source=str(body.get("type", "")),
        detail=detail,
        ok=event.delivered_at is not None,
    )


# --- the order as placed, priced line by line ---------------------------------------------------


@dataclass(frozen=True)
class PricedPart:
    """A chosen modifier or combo component, by name, with what is inside it."""

    name: str
    quantity: int = 1
    parts: list[PricedPart] = field(default_factory=list)


@dataclass(frozen=True)
class PricedLine:
    """One line of an order: what it is, how many, and what it costs."""

    name: str
    product_id: str
    quantity: int
    unit_price: int
    total: int
    parts: list[PricedPart]
    note: str | None


@dataclass(frozen=True)
class _Names:
    """Names of a menu's entities by id (empty without a menu: ids are shown instead)."""

    products: dict[str, str]
    variants: dict[tuple[str, str], str]
    options: dict[tuple[str, str], str]
    option_any: dict[str, str]
    slots: dict[tuple[str, str], str]

    @classmethod
    def of(cls, menu: Menu | None) -> _Names:
        if menu is None:
            return cls({}, {}, {}, {}, {})
        options = {(g.id, o.id): o.name for g in menu.modifier_groups for o in g.options}
        return cls(
            products={p.id: p.name for p in menu.products},
            variants={(p.id, v.id): v.name for p in menu.products for v in p.variants},
            options=options,
            option_any={option: name for (_, option), name in options.items()},
            slots={(p.id, s.id): s.name for p in menu.products for s in p.slots},
        )

    def product(self, product_id: str, variant_id: str | None) -> str:
        name = self.products.get(product_id, product_id)
        if variant_id is not None:
            name += f" ({self.variants.get((product_id, variant_id), variant_id)})"
        return name

    def option(self, modifier: SelectedModifier) -> str:
        if modifier.group_id is not None:
            found = self.options.get((modifier.group_id, modifier.option_id))
            if found is not None:
                return found
        return self.option_any.get(modifier.option_id, modifier.option_id)


def _modifier_parts(names: _Names, modifiers: list[SelectedModifier]) -> list[PricedPart]:
    return [
        PricedPart(names.option(m), m.quantity, _modifier_parts(names, m.modifiers))
        for m in modifiers
    ]


def _component_part(names: _Names, product_id: str, component: ComboComponent) -> PricedPart:
    slot = names.slots.get((product_id, component.slot_id), component.slot_id)
    product = names.product(component.product_id, component.variant_id)
    return PricedPart(f"{slot}: {product}", 1, _modifier_parts(names, component.modifiers))


def priced_lines(order: Order, menu: Menu | None) -> list[PricedLine]:
    """The order's lines named from ``menu`` (ids where the menu does not know them), each with
    its unit price and line total in minor units."""
    names = _Names.of(menu)
    return [
        PricedLine(
            name=names.product(line.product_id, line.variant_id),
            product_id=line.product_id,
            quantity=line.quantity,
            unit_price=line.unit_price,
            total=line.unit_price * line.quantity,
            parts=[_component_part(names, line.product_id, c) for c in line.components]
            + _modifier_parts(names, line.modifiers),
            note=line.note,
        )
        for line in order.lines
    ]


#: Order fields the order page shows in their own places; every other is listed as it is, so
#: parts added to the order model later (discounts, charges, delivery) appear without changes.
SHOWN_APART = frozenset({"id", "location", "lines", "currency", "total"})


def order_extras(order: Order) -> dict[str, Any]:
    """The order's other fields that are set, as JSON values, in the model's order."""
    dumped = order.model_dump(mode="json", exclude_none=True)
    return {
        key: value
        for key, value in dumped.items()
        if key not in SHOWN_APART and value not in ([], {}, "")
    }


# --- the menu as a tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryNode:
    """A category with its products and sub-categories (None: products in no category)."""

    category: Category | None
    products: list[Product]
    children: list[CategoryNode]


def menu_tree(menu: Menu) -> list[CategoryNode]:
    """The menu's categories as a tree (by ``parent_id``, in ``sort`` order), each with its
    products; products in no known category come last, under a node without a category."""
    known = {c.id for c in menu.categories}
    by_category: dict[str, list[Product]] = {}
    loose: list[Product] = []
    for product in menu.products:
        homes = [c for c in product.category_ids if c in known]
        for category_id in homes:
            by_category.setdefault(category_id, []).append(product)
        if not homes:
            loose.append(product)
    children: dict[str | None, list[Category]] = {}
    for category in sorted(menu.categories, key=lambda c: (c.sort, c.name)):
        parent = category.parent_id if category.parent_id in known else None
        children.setdefault(parent, []).append(category)

    def build(parent: str | None, seen: frozenset[str]) -> list[CategoryNode]:
        return [
            CategoryNode(c, by_category.get(c.id, []), build(c.id, seen | {c.id}))
            for c in children.get(parent, [])
            if c.id not in seen  # a cycle of parents is a validation error; never loop on it
        ]

    tree = build(None, frozenset())
    if loose:
        tree.append(CategoryNode(None, loose, []))
    return tree


def groups_by_id(menu: Menu) -> dict[str, ModifierGroup]:
    """The menu's modifier groups by id."""
    return {group.id: group for group in menu.modifier_groups}


@dataclass(frozen=True)
class Unavailable:
    """Something that cannot be ordered now (86'd), and until when."""

    kind: str
    id: str
    name: str
    availability: Availability


def unavailable(menu: Menu) -> list[Unavailable]:
    """Every category, product, variant and option that is switched off."""
    found = [
        Unavailable("category", c.id, c.name, c.availability)
        for c in menu.categories
        if not c.availability.available
    ]
    for product in menu.products:
        if not product.availability.available:
            found.append(Unavailable("product", product.id, product.name, product.availability))
        found += [
            Unavailable("variant", v.id, f"{product.name} ({v.name})", v.availability)
            for v in product.variants
            if not v.availability.available
        ]
    for group in menu.modifier_groups:
        found += [
            Unavailable("option", o.id, f"{o.name} ({group.name})", o.availability)
            for o in group.options
            if not o.availability.available
        ]
    return found

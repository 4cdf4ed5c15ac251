"""The checks a menu must pass before it is published.

Each finding names the entity by its path in the menu document (``products[3].variants[0]``), a
stable ``code`` a program can act on, and a sentence a person can act on. Errors block publishing
(the last good menu stays live); warnings are reported only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from posintegrator.model.base import utcnow
from posintegrator.model.menu import (
    Availability,
    ComboSlot,
    Menu,
    ModifierGroup,
    Prices,
    Product,
)


class Severity(StrEnum):
    """How bad a finding is."""

    ERROR = "error"
    WARNING = "warning"


class Code(StrEnum):
    """What kind of problem a finding is."""

    INVALID_VALUE = "invalid_value"
    """A value the model refuses (negative price, unknown allergen, missing field)."""
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_REFERENCE = "unknown_reference"
    """An id that points at no entity (group, category, product, variant, tax, price list)."""
    MODIFIER_CYCLE = "modifier_cycle"
    CATEGORY_CYCLE = "category_cycle"
    MIN_EXCEEDS_MAX = "min_exceeds_max"
    REQUIRED_GROUP_UNSATISFIABLE = "required_group_unsatisfiable"
    """A group needs more selections than its options can give."""
    DEFAULTS_EXCEED_MAX = "defaults_exceed_max"
    MISSING_PRICE = "missing_price"
    """A variant has no price in some price list, so that list's channels cannot sell it."""
    OPTION_PRICE_MISSING = "option_price_missing"
    COMBO_SLOT_UNSATISFIABLE = "combo_slot_unsatisfiable"
    UNCATEGORISED_PRODUCT = "uncategorised_product"
    NOTHING_ORDERABLE = "nothing_orderable"
    LEFT_OUT = "left_out"
    """Something of the POS's menu the plugin could not translate and left out (a warning: the
    rest is published); the message names it and says why."""


@dataclass(frozen=True)
class Finding:
    """One problem in a menu: where, what kind, and what is wrong."""

    severity: Severity
    code: Code
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message} [{self.code}]"


class FindingView(BaseModel):
    """A finding as the API and the CLI's ``--json`` show it."""

    severity: Severity
    code: Code
    path: str
    message: str

    @classmethod
    def of(cls, finding: Finding) -> FindingView:
        """The view of ``finding``."""
        return cls(
            severity=finding.severity, code=finding.code, path=finding.path, message=finding.message
        )


def errors_in(findings: Iterable[Finding]) -> list[Finding]:
    """Only the findings that block publishing."""
    return [f for f in findings if f.severity == Severity.ERROR]


def left_out_findings(menu: Menu) -> list[Finding]:
    """A warning for each thing the plugin left out of ``menu`` (:attr:`Menu.left_out`).

    The path is ``left_out[<pos id>]``: the thing is not in the menu document, so it is named
    by the POS's id, and the message says what it is and why it is missing.
    """
    return [
        Finding(
            Severity.WARNING,
            Code.LEFT_OUT,
            f"left_out[{item.pos_id}]",
            f"{item.describe()} is not in the menu: {item.reason}",
        )
        for item in menu.left_out
    ]


def check_menu_data(data: Any) -> tuple[Menu | None, list[Finding]]:
    """Parse a menu document and check it; a document the model refuses gives its errors."""
    from posintegrator.settings import error_path

    try:
        menu = Menu.model_validate(data)
    except ValidationError as exc:
        return None, [
            Finding(
                Severity.ERROR,
                Code.INVALID_VALUE,
                error_path(tuple(item["loc"])) or "menu",
                item["msg"],
            )
            for item in exc.errors(include_url=False)
        ]
    return menu, check_menu(menu)


def check_menu(menu: Menu) -> list[Finding]:
    """Every problem found in ``menu``, errors first."""
    findings = list(_MenuChecker(menu).run())
    findings.sort(key=lambda f: f.severity != Severity.ERROR)
    return findings


class _MenuChecker:
    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.category_ids = {c.id for c in menu.categories}
        self.groups = {g.id: g for g in menu.modifier_groups}
        self.group_paths = {
            g.id: f"modifier_groups[{i}]" for i, g in enumerate(menu.modifier_groups)
        }
        self.tax_ids = {t.id for t in menu.taxes}
        self.price_list_ids = [p.id for p in menu.price_lists]
        self.complete_prices = frozenset(self.price_list_ids)
        self.products = {p.id: p for p in menu.products}
        self.now = utcnow()

    def run(self) -> Iterator[Finding]:
        menu = self.menu
        yield from _duplicates("price_lists", (p.id for p in menu.price_lists))
        yield from _duplicates("taxes", (t.id for t in menu.taxes))
        yield from _duplicates("categories", (c.id for c in menu.categories))
        yield from _duplicates("products", (p.id for p in menu.products))
        yield from _duplicates("modifier_groups", (g.id for g in menu.modifier_groups))
        yield from self._categories()
        for index, product in enumerate(menu.products):
            yield from self._product(f"products[{index}]", product)
        for group_id, group in self.groups.items():
            yield from self._group(self.group_paths[group_id], group)
        yield from self._modifier_cycles()
        if menu.products and not any(
            _available_now(p.availability, self.now) for p in menu.products
        ):
            yield _warning(Code.NOTHING_ORDERABLE, "products", "every product is 86'd")

    def _prices(self, path: str, prices: Prices, *, required: bool) -> Iterator[Finding]:
        for price_list in prices:
            if price_list not in self.price_list_ids:
                yield _error(
                    Code.UNKNOWN_REFERENCE, f"{path}.prices.{price_list}", "unknown price list"
                )
        for price_list in self.price_list_ids:
            if price_list in prices:
                continue
            if required:
                yield _error(
                    Code.MISSING_PRICE,
                    f"{path}.prices",
                    f"no price in price list {price_list!r}: its channels cannot sell it",
                )
            else:
                yield _warning(
                    Code.OPTION_PRICE_MISSING,
                    f"{path}.prices",
                    f"no price in price list {price_list!r}: it is free there",
                )

    def _categories(self) -> Iterator[Finding]:
        parents = {c.id: c.parent_id for c in self.menu.categories}
        for index, category in enumerate(self.menu.categories):
            path = f"categories[{index}]"
            if category.parent_id is None:
                continue
            if category.parent_id not in self.category_ids:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{path}.parent_id",
                    f"unknown category {category.parent_id!r}",
                )
                continue
            seen = [category.id]
            parent: str | None = category.parent_id
            while parent is not None and parent not in seen:
                seen.append(parent)
                parent = parents.get(parent)
            if parent == category.id:
                yield _error(
                    Code.CATEGORY_CYCLE,
                    f"{path}.parent_id",
                    "categories nest in a circle: " + " -> ".join([*seen, category.id]),
                )

    def _product(self, path: str, product: Product) -> Iterator[Finding]:
        if not product.category_ids:
            yield _warning(
                Code.UNCATEGORISED_PRODUCT, path, "in no category: channels may not show it"
            )
        for category_id in product.category_ids:
            if category_id not in self.category_ids:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{path}.category_ids",
                    f"unknown category {category_id!r}",
                )
        for group_id in product.modifier_group_ids:
            if group_id not in self.groups:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{path}.modifier_group_ids",
                    f"unknown modifier group {group_id!r}",
                )
        if product.tax_id is not None and product.tax_id not in self.tax_ids:
            yield _error(
                Code.UNKNOWN_REFERENCE, f"{path}.tax_id", f"unknown tax {product.tax_id!r}"
            )
        if len(product.variants) > 1:
            yield from _duplicates(f"{path}.variants", (v.id for v in product.variants))
        for index, variant in enumerate(product.variants):
            if variant.prices.keys() != self.complete_prices:  # else nothing to report
                yield from self._prices(f"{path}.variants[{index}]", variant.prices, required=True)
        for index, override in enumerate(product.option_prices):
            where = f"{path}.option_prices[{index}]"
            group = self.groups.get(override.group_id)
            if override.group_id not in product.modifier_group_ids or group is None:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{where}.group_id",
                    f"group {override.group_id!r} is not one of the product's modifier groups",
                )
            elif override.option_id not in {o.id for o in group.options}:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{where}.option_id",
                    f"group {group.id!r} has no option {override.option_id!r}",
                )
            yield from self._prices(where, override.prices, required=False)
        for index, slot in enumerate(product.slots):
            yield from self._slot(f"{path}.slots[{index}]", slot)

    def _slot(self, path: str, slot: ComboSlot) -> Iterator[Finding]:
        if slot.min > slot.max:
            yield _error(Code.MIN_EXCEEDS_MAX, path, f"min {slot.min} > max {slot.max}")
        valid = available = 0
        for index, choice in enumerate(slot.choices):
            where = f"{path}.choices[{index}]"
            target = self.products.get(choice.product_id)
            if target is None:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{where}.product_id",
                    f"unknown product {choice.product_id!r}",
                )
                continue
            if target.is_combo:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{where}.product_id",
                    f"{choice.product_id!r} is a combo; combos cannot nest",
                )
                continue
            variants = {v.id: v for v in target.variants}
            if choice.variant_id is not None and choice.variant_id not in variants:
                yield _error(
                    Code.UNKNOWN_REFERENCE,
                    f"{where}.variant_id",
                    f"product {target.id!r} has no variant {choice.variant_id!r}",
                )
                continue
            for price_list in choice.upcharge:
                if price_list not in self.price_list_ids:
                    yield _error(
                        Code.UNKNOWN_REFERENCE,
                        f"{where}.upcharge.{price_list}",
                        "unknown price list",
                    )
            valid += 1
            chosen = [variants[choice.variant_id]] if choice.variant_id else target.variants
            available += _available_now(target.availability, self.now) and any(
                _available_now(v.availability, self.now) for v in chosen
            )
        if slot.min > 0 and valid == 0:
            yield _error(
                Code.COMBO_SLOT_UNSATISFIABLE,
                path,
                f"slot {slot.id!r} needs {slot.min} product(s) but offers no valid choice",
            )
        elif slot.min > 0 and available == 0:
            # Every choice is 86'd: a fact of the day, not a broken menu. Publishing it keeps
            # the channels from selling the combo; refusing it would freeze the whole menu.
            yield _warning(
                Code.COMBO_SLOT_UNSATISFIABLE,
                path,
                f"slot {slot.id!r} cannot be filled now: every choice is 86'd",
            )

    def _group(self, path: str, group: ModifierGroup) -> Iterator[Finding]:
        if group.max is not None and group.min > group.max:
            yield _error(Code.MIN_EXCEEDS_MAX, path, f"min {group.min} > max {group.max}")
        yield from _duplicates(f"{path}.options", (o.id for o in group.options))
        capacity = sum(o.max_quantity for o in group.options)
        available = sum(
            o.max_quantity for o in group.options if _available_now(o.availability, self.now)
        )
        if group.min > 0 and capacity < group.min:
            yield _error(
                Code.REQUIRED_GROUP_UNSATISFIABLE,
                path,
                f"needs {group.min} selection(s) but its options allow only {capacity}",
            )
        elif group.min > 0 and available < group.min:
            yield _warning(
                Code.REQUIRED_GROUP_UNSATISFIABLE,
                path,
                f"needs {group.min} selection(s) but with 86'd options only {available} "
                "can be chosen now",
            )
        defaults = sum(1 for o in group.options if o.default)
        if group.max is not None and defaults > group.max:
            yield _warning(
                Code.DEFAULTS_EXCEED_MAX, path, f"{defaults} default options but max {group.max}"
            )
        for index, option in enumerate(group.options):
            where = f"{path}.options[{index}]"
            yield from self._prices(where, option.prices, required=False)
            for nested in option.modifier_group_ids:
                if nested not in self.groups:
                    yield _error(
                        Code.UNKNOWN_REFERENCE,
                        f"{where}.modifier_group_ids",
                        f"unknown modifier group {nested!r}",
                    )

    def _modifier_cycles(self) -> Iterator[Finding]:
        """Groups that contain themselves through their options' nested groups."""
        children = {
            gid: [n for o in g.options for n in o.modifier_group_ids if n in self.groups]
            for gid, g in self.groups.items()
        }
        reported: set[frozenset[str]] = set()
        for start in self.groups:
            stack: list[tuple[str, list[str]]] = [(start, [start])]
            visited: set[str] = set()
            while stack:
                node, trail = stack.pop()
                for child in children[node]:
                    if child == start:
                        cycle = frozenset(trail)
                        if cycle not in reported:
                            reported.add(cycle)
                            yield _error(
                                Code.MODIFIER_CYCLE,
                                self.group_paths[start],
                                "modifier groups nest in a circle: " + " -> ".join([*trail, start]),
                            )
                    elif child not in visited:
                        visited.add(child)
                        stack.append((child, [*trail, child]))


def _available_now(availability: Availability, now: datetime) -> bool:
    """Not 86'd, or 86'd only until a moment that has passed."""
    until = availability.unavailable_until
    return availability.available or (until is not None and until <= now)


def _duplicates(path: str, ids: Iterable[str]) -> Iterator[Finding]:
    listed = list(ids)
    if len(set(listed)) == len(listed):
        return
    for entity_id, count in Counter(listed).items():
        if count > 1:
            yield _error(Code.DUPLICATE_ID, path, f"id {entity_id!r} appears {count} times")


def _error(code: Code, path: str, message: str) -> Finding:
    return Finding(Severity.ERROR, code, path, message)


def _warning(code: Code, path: str, message: str) -> Finding:
    return Finding(Severity.WARNING, code, path, message)

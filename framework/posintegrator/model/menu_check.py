"""Checks a menu must pass before it is published: each finding names the entity by its path.

Errors block publishing (the last good menu stays live); warnings are reported only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from posintegrator.model.menu import Menu, Prices


class Severity(StrEnum):
    """How bad a finding is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem in a menu: where it is (``products[3].variants[0]``) and what is wrong."""

    severity: Severity
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def check_menu(menu: Menu) -> list[Finding]:
    """Every problem found in ``menu``, errors first."""
    findings: list[Finding] = []
    findings += _duplicates("categories", (c.id for c in menu.categories))
    findings += _duplicates("products", (p.id for p in menu.products))
    findings += _duplicates("modifier_groups", (g.id for g in menu.modifier_groups))
    findings += _duplicates("price_lists", (p.id for p in menu.price_lists))
    category_ids = {c.id for c in menu.categories}
    group_ids = {g.id for g in menu.modifier_groups}
    tax_ids = {t.id for t in menu.taxes}
    price_list_ids = {p.id for p in menu.price_lists}
    products = {p.id: p for p in menu.products}

    def error(path: str, message: str) -> None:
        findings.append(Finding(Severity.ERROR, path, message))

    def check_prices(path: str, prices: Prices) -> None:
        for price_list in prices:
            if price_list not in price_list_ids:
                error(f"{path}.prices.{price_list}", "unknown price list")

    for i, category in enumerate(menu.categories):
        if category.parent_id is not None and category.parent_id not in category_ids:
            error(f"categories[{i}].parent_id", f"unknown category {category.parent_id!r}")
    for i, product in enumerate(menu.products):
        where = f"products[{i}]"
        for category_id in product.category_ids:
            if category_id not in category_ids:
                error(f"{where}.category_ids", f"unknown category {category_id!r}")
        for group_id in product.modifier_group_ids:
            if group_id not in group_ids:
                error(f"{where}.modifier_group_ids", f"unknown modifier group {group_id!r}")
        if product.tax_id is not None and product.tax_id not in tax_ids:
            error(f"{where}.tax_id", f"unknown tax {product.tax_id!r}")
        for j, variant in enumerate(product.variants):
            check_prices(f"{where}.variants[{j}]", variant.prices)
        findings.extend(_duplicates(f"{where}.variants", (v.id for v in product.variants)))
        for j, slot in enumerate(product.slots):
            if slot.min > slot.max:
                error(f"{where}.slots[{j}]", f"min {slot.min} > max {slot.max}")
            for k, choice in enumerate(slot.choices):
                target = products.get(choice.product_id)
                choice_path = f"{where}.slots[{j}].choices[{k}]"
                if target is None:
                    error(f"{choice_path}.product_id", f"unknown product {choice.product_id!r}")
                elif choice.variant_id is not None and choice.variant_id not in {
                    v.id for v in target.variants
                }:
                    error(f"{choice_path}.variant_id", f"unknown variant {choice.variant_id!r}")
                check_prices(choice_path, choice.upcharge)
    for i, group in enumerate(menu.modifier_groups):
        where = f"modifier_groups[{i}]"
        if group.max is not None and group.min > group.max:
            error(where, f"min {group.min} > max {group.max}")
        findings.extend(_duplicates(f"{where}.options", (o.id for o in group.options)))
        for j, option in enumerate(group.options):
            check_prices(f"{where}.options[{j}]", option.prices)
            for nested in option.modifier_group_ids:
                if nested not in group_ids:
                    error(f"{where}.options[{j}].modifier_group_ids", f"unknown group {nested!r}")
    findings.sort(key=lambda f: f.severity != Severity.ERROR)
    return findings


def _duplicates(path: str, ids: Iterable[str]) -> list[Finding]:
    counts = Counter(ids)
    return [
        Finding(Severity.ERROR, path, f"id {entity_id!r} appears {count} times")
        for entity_id, count in counts.items()
        if count > 1
    ]


def errors_in(findings: list[Finding]) -> list[Finding]:
    """Only the findings that block publishing."""
    return [f for f in findings if f.severity == Severity.ERROR]

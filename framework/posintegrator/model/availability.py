"""Availability changes (86 and back) that travel without a full menu sync."""

from __future__ import annotations

from pydantic import model_validator

from posintegrator.model.base import Id, UniversalModel
from posintegrator.model.menu import (
    Availability,
    Menu,
    ModifierGroup,
    ModifierOption,
    Product,
    Variant,
)


class AvailabilityChange(UniversalModel):
    """New availability of one product, variant or modifier option at one location.

    Name a product with ``product_id``; a variant with ``product_id`` and ``variant_id``; an
    option with ``group_id`` and ``option_id``. ``availability`` replaces the entity's whole
    availability, so send its schedule and channels along with the 86 state.
    """

    location: Id
    product_id: Id | None = None
    variant_id: Id | None = None
    group_id: Id | None = None
    option_id: Id | None = None
    availability: Availability

    @model_validator(mode="after")
    def _names_one_entity(self) -> AvailabilityChange:
        product = self.product_id is not None
        option = self.group_id is not None and self.option_id is not None
        if product == option or (self.variant_id is not None and not product):
            raise ValueError(
                "name a product (product_id), a variant (product_id + variant_id) or an option "
                "(group_id + option_id)"
            )
        return self

    def describe(self) -> str:
        """The entity's reference as text, e.g. ``product fries / variant large``."""
        if self.option_id is not None:
            return f"option {self.group_id}/{self.option_id}"
        if self.variant_id is not None:
            return f"variant {self.product_id}/{self.variant_id}"
        return f"product {self.product_id}"


def apply_availability(menu: Menu, changes: list[AvailabilityChange]) -> tuple[Menu, list[str]]:
    """``menu`` with the changes applied, and the changes that named unknown entities."""
    updated = menu.model_copy(deep=True)
    products = {p.id: p for p in updated.products}
    groups = {g.id: g for g in updated.modifier_groups}
    unknown: list[str] = []
    for change in changes:
        target = _target(change, products, groups)
        if target is None:
            unknown.append(change.describe())
        else:
            target.availability = change.availability
    return updated, unknown


def _target(
    change: AvailabilityChange, products: dict[str, Product], groups: dict[str, ModifierGroup]
) -> Product | Variant | ModifierOption | None:
    if change.option_id is not None:
        group = groups.get(change.group_id or "")
        if group is None:
            return None
        return next((o for o in group.options if o.id == change.option_id), None)
    product = products.get(change.product_id or "")
    if product is None or change.variant_id is None:
        return product
    return next((v for v in product.variants if v.id == change.variant_id), None)

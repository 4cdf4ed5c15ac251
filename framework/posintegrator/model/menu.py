"""The universal menu: what a POS sells at one location, in a shape every channel understands.

The menu is normalised: modifier groups live once in :attr:`Menu.modifier_groups` and are
referenced by id from products and from options (which is how options nest to any depth), and
products are referenced by id from combo slots. That keeps a large menu compact, makes reference
checks and cycle checks possible, and lets a diff name exactly which entity changed.

Every entity carries ``pos_id``, the POS's own identifier, so an order can be mapped back exactly.
Prices are integer minor units of :attr:`Menu.currency`, one per price list id.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from posintegrator.model.base import Currency, Id, MinorUnits, UniversalModel, UtcDateTime

#: Price per price list id, in minor units of the menu's currency.
Prices = dict[Id, MinorUnits]


class Channel(StrEnum):
    """Where an order comes from; price lists and visibility are per channel."""

    KIOSK = "kiosk"
    WEB = "web"
    DELIVERY = "delivery"
    DINE_IN = "dine_in"


class Availability(UniversalModel):
    """Whether an entity can be ordered now ("86" when it cannot)."""

    available: bool = True
    unavailable_until: UtcDateTime | None = Field(
        default=None, description="When an 86'd entity comes back by itself, if known."
    )
    reason: str | None = None


class PriceList(UniversalModel):
    """A named set of prices, used by some channels."""

    id: Id
    pos_id: str | None = None
    name: str
    channels: list[Channel] = Field(default_factory=list)


class Tax(UniversalModel):
    """A tax rate in basis points (700 = 7 %), included in prices or added on top."""

    id: Id
    pos_id: str | None = None
    name: str
    rate_bp: int = Field(ge=0, le=100_000)
    inclusive: bool = True


class Category(UniversalModel):
    """A menu section. Categories nest through ``parent_id`` and sort by ``sort``."""

    id: Id
    pos_id: str | None = None
    name: str
    parent_id: Id | None = None
    sort: int = 0


class Variant(UniversalModel):
    """One sellable form of a product, e.g. a size. A product has at least one."""

    id: Id
    pos_id: str | None = None
    name: str
    prices: Prices = Field(default_factory=dict)
    availability: Availability = Field(default_factory=Availability)


class ModifierOption(UniversalModel):
    """A choice within a modifier group; may open further groups of its own."""

    id: Id
    pos_id: str | None = None
    name: str
    prices: Prices = Field(default_factory=dict)
    max_quantity: int = Field(default=1, ge=1)
    default: bool = False
    modifier_group_ids: list[Id] = Field(default_factory=list)
    availability: Availability = Field(default_factory=Availability)


class ModifierGroup(UniversalModel):
    """A set of options with a selection rule: at least ``min``, at most ``max`` in total."""

    id: Id
    pos_id: str | None = None
    name: str
    min: int = Field(default=0, ge=0)
    max: int | None = Field(default=None, ge=0, description="None means no upper limit.")
    free_quantity: int = Field(default=0, ge=0, description="The first N selections cost nothing.")
    options: list[ModifierOption] = Field(default_factory=list)


class ComboChoice(UniversalModel):
    """A product that may fill a combo slot, with what choosing it adds to the combo's price."""

    product_id: Id
    variant_id: Id | None = None
    upcharge: Prices = Field(default_factory=dict)


class ComboSlot(UniversalModel):
    """One component position of a combo (e.g. "Side"); each chosen product keeps its modifiers."""

    id: Id
    pos_id: str | None = None
    name: str
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=1)
    choices: list[ComboChoice] = Field(default_factory=list)


class Product(UniversalModel):
    """Something on the menu. A combo is a product with ``slots``."""

    id: Id
    pos_id: str | None = None
    name: str
    description: str | None = None
    category_ids: list[Id] = Field(default_factory=list)
    variants: list[Variant] = Field(min_length=1)
    modifier_group_ids: list[Id] = Field(default_factory=list)
    slots: list[ComboSlot] = Field(default_factory=list)
    tax_id: Id | None = None
    image_url: str | None = None
    availability: Availability = Field(default_factory=Availability)

    @property
    def is_combo(self) -> bool:
        """Whether this product is a bundle of other products."""
        return bool(self.slots)


class Menu(UniversalModel):
    """Everything sold at one location, as published to the cloud."""

    location: Id
    currency: Currency
    price_lists: list[PriceList] = Field(min_length=1)
    taxes: list[Tax] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)
    modifier_groups: list[ModifierGroup] = Field(default_factory=list)
    source_updated_at: UtcDateTime | None = Field(
        default=None, description="When the POS last changed this menu, if it says."
    )

    def product(self, product_id: str) -> Product | None:
        """The product with this id, if the menu has it."""
        return next((p for p in self.products if p.id == product_id), None)

    def modifier_group(self, group_id: str) -> ModifierGroup | None:
        """The modifier group with this id, if the menu has it."""
        return next((g for g in self.modifier_groups if g.id == group_id), None)

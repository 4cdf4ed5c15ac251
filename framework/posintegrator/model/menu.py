"""The universal menu: what a POS sells at one location, in a shape every channel understands.

The menu is normalised: modifier groups live once in :attr:`Menu.modifier_groups` and are
referenced by id from products and from options (which is how options nest to any depth), and
products are referenced by id from combo slots. That keeps a large menu compact, makes reference
and cycle checks possible, and lets a diff name exactly which entity changed.

Every entity carries ``pos_id``, the POS's own identifier, so an order can be mapped back exactly.
Prices are integer minor units of :attr:`Menu.currency`, one per price list id. Channels are
named by the deployment (its settings), not by the model: a menu names them by id.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from posintegrator.model.base import (
    ChannelId,
    Currency,
    Id,
    MinorUnits,
    UniversalModel,
    UtcDateTime,
)

#: Price per price list id, in minor units of the menu's currency.
Prices = dict[Id, MinorUnits]

#: How a POS rounds a computed tax to a whole minor unit.
TaxRounding = Literal["half_up", "half_even"]

#: A language tag such as ``de`` or ``en-GB``.
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]


#: The channels an entity or a price list names (a deployment has a handful).
ChannelList = Annotated[list[ChannelId], Field(max_length=100)]


class Allergen(StrEnum):
    """The 14 allergens EU Regulation 1169/2011 (Annex II) requires menus to declare."""

    GLUTEN = "gluten"
    CRUSTACEANS = "crustaceans"
    EGGS = "eggs"
    FISH = "fish"
    PEANUTS = "peanuts"
    SOYBEANS = "soybeans"
    MILK = "milk"
    NUTS = "nuts"
    CELERY = "celery"
    MUSTARD = "mustard"
    SESAME = "sesame"
    SULPHITES = "sulphites"
    LUPIN = "lupin"
    MOLLUSCS = "molluscs"


class DietaryTag(StrEnum):
    """Diet-related labels a channel can filter on."""

    VEGETARIAN = "vegetarian"
    VEGAN = "vegan"
    HALAL = "halal"
    KOSHER = "kosher"
    GLUTEN_FREE = "gluten_free"
    LACTOSE_FREE = "lactose_free"
    SPICY = "spicy"
    ORGANIC = "organic"


def _sorted_unique(values: list[StrEnum]) -> list[StrEnum]:
    return sorted(set(values))


AllergenList = Annotated[list[Allergen], AfterValidator(_sorted_unique)]
TagList = Annotated[list[DietaryTag], AfterValidator(_sorted_unique)]


class Allergens(UniversalModel):
    """Which allergens an entity contains, and which it may contain (cross-contamination)."""

    contains: AllergenList = Field(default_factory=list)
    may_contain: AllergenList = Field(default_factory=list)


class Nutrition(UniversalModel):
    """Nutrition facts in whole units (kcal, milligrams), so they survive JSON exactly."""

    per: Literal["serving", "100g"] = "serving"
    energy_kcal: int | None = Field(default=None, ge=0)
    fat_mg: int | None = Field(default=None, ge=0)
    saturated_fat_mg: int | None = Field(default=None, ge=0)
    carbohydrate_mg: int | None = Field(default=None, ge=0)
    sugars_mg: int | None = Field(default=None, ge=0)
    protein_mg: int | None = Field(default=None, ge=0)
    salt_mg: int | None = Field(default=None, ge=0)


class Text(UniversalModel):
    """An entity's name and description in one language."""

    name: str | None = None
    description: str | None = None


#: Names and descriptions per language, beside the default ``name``/``description``.
Translations = dict[Language, Text]

_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


class TimeSlot(UniversalModel):
    """Weekly opening window in the menu's time zone: ``days`` 0 (Monday) to 6 (Sunday)."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1)
    start: str = Field(description="HH:MM, inclusive.")
    end: str = Field(description="HH:MM, exclusive; 24:00 for midnight.")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM between 00:00 and 24:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeSlot:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self

    def covers(self, local: datetime) -> bool:
        """Whether the local wall-clock time ``local`` falls in this slot."""
        if local.weekday() not in self.days:
            return False
        clock = local.time().replace(second=0, microsecond=0)
        end = time(23, 59, 59) if self.end == "24:00" else time.fromisoformat(self.end)
        return time.fromisoformat(self.start) <= clock and (clock < end or self.end == "24:00")


class Availability(UniversalModel):
    """Whether an entity can be ordered: 86'd or not, when, and on which channels."""

    available: bool = True
    unavailable_until: UtcDateTime | None = Field(
        default=None, description="When an 86'd entity comes back by itself, if known."
    )
    reason: str | None = None
    schedule: list[TimeSlot] = Field(
        default_factory=list, description="Weekly windows when it is sold; empty means always."
    )
    channels: ChannelList = Field(
        default_factory=list, description="Channels that show it; empty means all."
    )

    def is_orderable(self, at: datetime, channel: str, zone: ZoneInfo) -> bool:
        """Whether it can be ordered at instant ``at`` through ``channel``."""
        if not self.available and (self.unavailable_until is None or at < self.unavailable_until):
            return False
        if self.channels and channel not in self.channels:
            return False
        if self.schedule:
            local = at.astimezone(zone)
            return any(slot.covers(local) for slot in self.schedule)
        return True


class PriceList(UniversalModel):
    """A named set of prices, used by some channels (and, optionally, only some locations).

    A list that names no channels serves every channel no other list names, so a POS with one
    price for everything (and a deployment that adds a channel later) needs no list per channel.
    """

    id: Id
    pos_id: str | None = None
    name: str
    channels: ChannelList = Field(
        default_factory=list,
        description="Channels that order from it; empty: every channel no other list names.",
    )
    locations: list[Id] = Field(
        default_factory=list, description="Locations it applies to; empty means all."
    )


class Tax(UniversalModel):
    """A tax rate in parts per million (70000 = 7 %, 88750 = 8.875 %), included in prices or
    added on top. Millionths, not basis points, so every real rate is a whole number."""

    id: Id
    pos_id: str | None = None
    name: str
    rate_ppm: int = Field(ge=0, le=1_000_000)
    inclusive: bool = True


class Category(UniversalModel):
    """A menu section. Categories nest through ``parent_id`` and sort by ``sort``."""

    id: Id
    pos_id: str | None = None
    name: str
    translations: Translations = Field(default_factory=dict)
    parent_id: Id | None = None
    sort: int = 0
    image_url: str | None = None
    availability: Availability = Field(default_factory=Availability)


class Variant(UniversalModel):
    """One sellable form of a product, e.g. a size. A product has at least one."""

    id: Id
    pos_id: str | None = None
    name: str
    translations: Translations = Field(default_factory=dict)
    prices: Prices = Field(default_factory=dict)
    availability: Availability = Field(default_factory=Availability)


class ModifierOption(UniversalModel):
    """A choice within a modifier group; may open further groups of its own."""

    id: Id
    pos_id: str | None = None
    name: str
    translations: Translations = Field(default_factory=dict)
    prices: Prices = Field(default_factory=dict)
    max_quantity: int = Field(default=1, ge=1)
    default: bool = False
    modifier_group_ids: list[Id] = Field(default_factory=list)
    availability: Availability = Field(default_factory=Availability)
    allergens: Allergens = Field(default_factory=Allergens)
    tags: TagList = Field(default_factory=list)
    nutrition: Nutrition | None = None
    image_url: str | None = None


class ModifierGroup(UniversalModel):
    """A set of options with a selection rule: at least ``min``, at most ``max`` in total.

    The first ``free_quantity`` selections (in the order the customer made them) cost nothing.
    """

    id: Id
    pos_id: str | None = None
    name: str
    translations: Translations = Field(default_factory=dict)
    min: int = Field(default=0, ge=0)
    max: int | None = Field(default=None, ge=0, description="None means no upper limit.")
    free_quantity: int = Field(default=0, ge=0)
    options: list[ModifierOption] = Field(default_factory=list)


class OptionPrice(UniversalModel):
    """A product-specific price of an option, overriding the option's own prices."""

    group_id: Id
    option_id: Id
    prices: Prices


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
    translations: Translations = Field(default_factory=dict)
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=1)
    choices: list[ComboChoice] = Field(default_factory=list)


class Product(UniversalModel):
    """Something on the menu. A combo is a product with ``slots``."""

    id: Id
    pos_id: str | None = None
    name: str
    description: str | None = None
    translations: Translations = Field(default_factory=dict)
    category_ids: list[Id] = Field(default_factory=list)
    variants: list[Variant] = Field(min_length=1)
    modifier_group_ids: list[Id] = Field(default_factory=list)
    option_prices: list[OptionPrice] = Field(default_factory=list)
    slots: list[ComboSlot] = Field(default_factory=list)
    tax_id: Id | None = None
    image_url: str | None = None
    availability: Availability = Field(default_factory=Availability)
    allergens: Allergens = Field(default_factory=Allergens)
    tags: TagList = Field(default_factory=list)
    nutrition: Nutrition | None = None

    @property
    def is_combo(self) -> bool:
        """Whether this product is a bundle of other products."""
        return bool(self.slots)


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a 300-char name
        message = f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)"
        raise ValueError(message) from None
    return value


class LeftOut(UniversalModel):
    """Something of the POS's menu a plugin did not put into the universal menu, and why.

    Not published: the host turns each into a warning of the menu report, so a person learns
    what the cloud does not offer (an item priced at the till, a free-text modifier).
    """

    kind: str = Field(
        min_length=1,
        max_length=60,
        description="What the POS calls it, for a person: item, variation, modifier list, ...",
    )
    pos_id: str = Field(min_length=1, max_length=200, description="The POS's id of it.")
    name: str | None = Field(default=None, max_length=500)
    reason: str = Field(min_length=1, max_length=1000, description="Why it was left out.")

    def describe(self) -> str:
        """``item 'Mocha' (ITEM_MOCHA)``: the thing left out, for a person."""
        named = f"{self.name!r} ({self.pos_id})" if self.name else repr(self.pos_id)
        return f"{self.kind} {named}"


class Menu(UniversalModel):
    """Everything sold at one location, as published to the cloud."""

    location: Id
    currency: Currency
    timezone: Annotated[str, AfterValidator(_known_zone)] = Field(
        default="UTC", description="IANA time zone of the location; schedules are in it."
    )
    default_language: Language = "en"
    price_lists: list[PriceList] = Field(min_length=1)
    taxes: list[Tax] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)
    modifier_groups: list[ModifierGroup] = Field(default_factory=list)
    source_updated_at: UtcDateTime | None = Field(
        default=None, description="When the POS last changed this menu, if it says."
    )
    tax_rounding: TaxRounding = Field(
        default="half_up",
        description="How the POS rounds each line's exclusive tax to a whole minor unit: "
        "half_up (an exact half goes up) or half_even (to the even neighbour, as Square does). "
        "An order's tax is checked with the same rule, so the POS's total is the order's.",
    )
    left_out: list[LeftOut] = Field(
        default_factory=list,
        exclude=True,
        description="What of the POS's menu the plugin left out, and why: reported as menu "
        "report warnings, never published or hashed.",
    )

    @property
    def zone(self) -> ZoneInfo:
        """The location's time zone."""
        return ZoneInfo(self.timezone)

    def product(self, product_id: str) -> Product | None:
        """The product with this id, if the menu has it."""
        return next((p for p in self.products if p.id == product_id), None)

    def modifier_group(self, group_id: str) -> ModifierGroup | None:
        """The modifier group with this id, if the menu has it."""
        return next((g for g in self.modifier_groups if g.id == group_id), None)

    def price_list_for(self, channel: str) -> PriceList | None:
        """The price list a channel orders from at this location: the first that names the
        channel, else the first that names none (it serves every channel no other list names)."""
        fallback: PriceList | None = None
        for price_list in self.price_lists:
            if price_list.locations and self.location not in price_list.locations:
                continue
            if channel in price_list.channels:
                return price_list
            if not price_list.channels and fallback is None:
                fallback = price_list
        return fallback

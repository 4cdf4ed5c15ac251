"""A deterministic generator of a realistic restaurant catalog, as Square ``CatalogObject``s.

``generate_catalog(variations=240, locations=DEFAULT_LOCATIONS, seed=7)`` returns the top-level
objects (CATEGORY, TAX, IMAGE, MODIFIER_LIST with nested MODIFIERs, ITEM_OPTION with nested
ITEM_OPTION_VALs, ITEM with nested ITEM_VARIATIONs; some ``is_deleted``) and the counts a test
needs to check a translated menu. Runs in O(n): 20,000 variations take well under a second.

What the catalog exercises:

- per-location presence (``present_at_all_locations``/``present_at_location_ids``/
  ``absent_at_location_ids``) on items and on single variations;
- ``location_overrides`` with a per-location ``price_money`` and ``sold_out``;
- ``modifier_list_info`` with ``min/max_selected_modifiers`` of ``-1`` (use the list's values),
  ``0`` (max: no limit) and explicit overrides, ``enabled: false`` lists, and
  ``modifier_overrides`` with ``on_by_default``;
- drinks built from ITEM_OPTIONs (``item_options`` + variations' ``item_option_values``), with
  an INCLUSIVE tax; food with the 8.875% ADDITIVE sales tax;
- a few VARIABLE_PRICING variations (no ``price_money``: the price is set at sale).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LOCATIONS: tuple[str, ...] = ("LH2Q9ZXKQ1N0A", "L7RVW4K2B8T3C")
CURRENCY = "USD"
_BASE_VERSION = 1_748_779_200_000  # 2025-06-01T12:00:00Z in ms, Square-like object versions
UPDATED_AT = "2025-06-01T12:00:00.000Z"

_CATEGORIES = (
    "Burgers",
    "Pizza",
    "Salads",
    "Sandwiches",
    "Bowls",
    "Sides",
    "Breakfast",
    "Desserts",
    "Kids",
    "Drinks",
)
_DISHES: Mapping[str, tuple[str, ...]] = {
    "Burgers": (
        "Classic Burger",
        "Cheeseburger",
        "Bacon Burger",
        "Mushroom Swiss",
        "Veggie Burger",
    ),
    "Pizza": ("Margherita", "Pepperoni", "Quattro Formaggi", "Diavola", "Funghi", "Hawaiian"),
    "Salads": ("Caesar Salad", "Greek Salad", "Cobb Salad", "Kale Salad"),
    "Sandwiches": ("Club Sandwich", "BLT", "Reuben", "Cuban", "Grilled Cheese"),
    "Bowls": ("Poke Bowl", "Burrito Bowl", "Buddha Bowl", "Teriyaki Bowl"),
    "Sides": ("Fries", "Onion Rings", "Sweet Potato Fries", "Coleslaw", "Mac & Cheese"),
    "Breakfast": ("Pancakes", "Omelette", "Avocado Toast", "Breakfast Burrito"),
    "Desserts": ("Cheesecake", "Brownie", "Tiramisu", "Apple Pie", "Gelato"),
    "Kids": ("Chicken Tenders", "Kids Pasta", "Mini Burger"),
    "Drinks": ("Latte", "Cappuccino", "Lemonade", "Iced Tea", "Cola", "Hot Chocolate"),
}
_STYLES = ("", "Spicy ", "House ", "Chef's ", "Smoked ", "Double ", "Truffle ", "Vegan ")
_BASE_PRICES: Mapping[str, int] = {
    "Burgers": 1195,
    "Pizza": 1450,
    "Salads": 1050,
    "Sandwiches": 1125,
    "Bowls": 1295,
    "Sides": 450,
    "Breakfast": 950,
    "Desserts": 695,
    "Kids": 750,
    "Drinks": 395,
}
_SIZES: Mapping[int, tuple[tuple[str, int], ...]] = {
    1: (("Regular", 0),),
    2: (("Small", 0), ("Large", 300)),
    3: (("Single", 0), ("Double", 350), ("Triple", 650)),
}
# name, selection type, min, max, modifiers (name, price in cents)
_MODIFIER_LISTS: tuple[tuple[str, str, int, int, tuple[tuple[str, int], ...]], ...] = (
    ("Cheese", "SINGLE", 0, 1, (("Cheddar", 100), ("Swiss", 100), ("Pepper Jack", 125))),
    (
        "Toppings",
        "MULTIPLE",
        0,
        0,
        (("Bacon", 200), ("Avocado", 175), ("Jalapeños", 50), ("Fried Egg", 150), ("Onions", 0)),
    ),
    ("Sauce", "SINGLE", 1, 1, (("Ketchup", 0), ("BBQ", 0), ("Aioli", 50), ("Sriracha Mayo", 50))),
    ("Doneness", "SINGLE", 1, 1, (("Rare", 0), ("Medium", 0), ("Well Done", 0))),
    ("Extras", "MULTIPLE", 0, 3, (("Extra Patty", 400), ("Side Salad", 350), ("Extra Sauce", 50))),
    ("Sides Choice", "MULTIPLE", -1, -1, (("Fries", 0), ("Salad", 0), ("Soup", 150))),
    ("Dressing", "MULTIPLE", 1, 2, (("Ranch", 0), ("Balsamic", 0), ("Caesar", 0), ("None", 0))),
    ("Milk", "SINGLE", 0, 1, (("Oat Milk", 70), ("Almond Milk", 70), ("Skim Milk", 0))),
    ("Sweetener", "MULTIPLE", 0, 0, (("Sugar", 0), ("Honey", 25), ("Vanilla Syrup", 60))),
    ("Spice Level", "SINGLE", 1, 1, (("Mild", 0), ("Medium Hot", 0), ("Hot", 0), ("Inferno", 0))),
)
_LISTS_FOR: Mapping[str, tuple[str, ...]] = {
    "Burgers": ("Cheese", "Toppings", "Doneness", "Extras", "Sauce"),
    "Pizza": ("Toppings", "Extras", "Spice Level"),
    "Salads": ("Dressing", "Toppings"),
    "Sandwiches": ("Cheese", "Sides Choice", "Sauce"),
    "Bowls": ("Spice Level", "Toppings", "Sauce"),
    "Sides": ("Sauce",),
    "Breakfast": ("Toppings", "Sides Choice"),
    "Desserts": (),
    "Kids": ("Sides Choice", "Sauce"),
    "Drinks": ("Milk", "Sweetener"),
}
_OPTIONS = (
    ("Size", (("Small", 0), ("Medium", 75), ("Large", 150))),
    ("Temperature", (("Hot", 0), ("Iced", 50))),
)


@dataclass(frozen=True)
class CatalogCounts:
    """What a generated catalog holds (live objects, unless the name says ``deleted``).

    ``items_at``/``variations_at`` count, per location, the live items (variations) present
    there (a variation counts when both it and its item are present); ``sold_out_at`` counts the
    variations present and sold out there; ``variable_priced`` counts VARIABLE_PRICING
    variations. ``list_catalog_default`` is how many objects ``GET /v2/catalog/list`` without
    ``types`` returns (top-level default types: IMAGE is not one of them).
    """

    locations: tuple[str, ...]
    categories: int
    taxes: int
    images: int
    modifier_lists: int
    modifiers: int
    item_options: int
    item_option_values: int
    items: int
    variations: int
    variable_priced: int
    items_with_modifier_lists: int
    deleted_items: int
    deleted_variations: int
    deleted_objects: int
    items_at: Mapping[str, int]
    variations_at: Mapping[str, int]
    sold_out_at: Mapping[str, int]
    list_catalog_default: int
    top_level_objects: int


@dataclass
class GeneratedCatalog:
    """The generated top-level objects (deleted ones included) and their counts."""

    objects: list[dict[str, Any]]
    counts: CatalogCounts
    location_ids: tuple[str, ...]
    sales_tax_id: str
    inclusive_tax_id: str
    extra: dict[str, Any] = field(default_factory=dict)


def present_at(obj: Mapping[str, Any], location_id: str) -> bool:
    """Square's presence rule: ``present_at_all_locations`` (default true) minus
    ``absent_at_location_ids``, or only ``present_at_location_ids`` when it is false."""
    if obj.get("present_at_all_locations", True):
        return location_id not in (obj.get("absent_at_location_ids") or ())
    return location_id in (obj.get("present_at_location_ids") or ())


def money(amount: int, currency: str = CURRENCY) -> dict[str, Any]:
    """A Square ``Money``."""
    return {"amount": amount, "currency": currency}


class _Ids:
    """Square-looking 24-character ids, unique and repeatable for a seed."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()

    def new(self) -> str:
        while True:
            raw = self._rng.getrandbits(120).to_bytes(15, "big")
            ident = base64.b32encode(raw).decode()
            if ident not in self._seen:
                self._seen.add(ident)
                return ident


class _Builder:
    def __init__(self, locations: Sequence[str], seed: int, currency: str) -> None:
        self.rng = random.Random(seed)
        self.ids = _Ids(self.rng)
        self.locations = tuple(locations)
        self.currency = currency
        self._version = _BASE_VERSION

    def obj(self, kind: str, data_key: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self._version += 1
        return {
            "type": kind,
            "id": extra.pop("id", None) or self.ids.new(),
            "updated_at": UPDATED_AT,
            "version": self._version,
            "is_deleted": False,
            "present_at_all_locations": True,
            **extra,
            data_key: data,
        }


def generate_catalog(
    variations: int = 240,
    locations: Sequence[str] = DEFAULT_LOCATIONS,
    seed: int = 7,
    *,
    currency: str = CURRENCY,
) -> GeneratedCatalog:
    """A restaurant catalog with exactly ``variations`` live item variations.

    :param variations: live (not deleted) ITEM_VARIATIONs to generate; deleted items add a few
        deleted variations on top.
    :param locations: location ids; the first is the main restaurant, the second (if any) gets
        price overrides, sold-out variations and items absent there.
    :param seed: same seed, same catalog (ids included).
    """
    if variations < 1:
        raise ValueError("variations must be >= 1")
    if not locations:
        raise ValueError("at least one location is needed")
    b = _Builder(locations, seed, currency)
    rng = b.rng
    locs = b.locations
    second = locs[1] if len(locs) > 1 else None
    objects: list[dict[str, Any]] = []

    categories = {
        name: b.obj("CATEGORY", "category_data", {"name": name, "is_top_level": True})
        for name in _CATEGORIES
    }
    objects.extend(categories.values())
    deleted_category = b.obj(
        "CATEGORY", "category_data", {"name": "Seasonal (retired)"}, is_deleted=True
    )
    objects.append(deleted_category)

    sales_tax = b.obj(
        "TAX",
        "tax_data",
        {
            "name": "Sales Tax",
            "calculation_phase": "TAX_SUBTOTAL_PHASE",
            "inclusion_type": "ADDITIVE",
            "percentage": "8.875",
            "applies_to_custom_amounts": True,
            "enabled": True,
        },
    )
    inclusive_tax = b.obj(
        "TAX",
        "tax_data",
        {
            "name": "Beverage Tax (included)",
            "calculation_phase": "TAX_SUBTOTAL_PHASE",
            "inclusion_type": "INCLUSIVE",
            "percentage": "5.0",
            "applies_to_custom_amounts": False,
            "enabled": True,
        },
    )
    objects.extend((sales_tax, inclusive_tax))

    # Modifier lists: the templates, repeated with a suffix for big catalogs.
    n_lists = max(len(_MODIFIER_LISTS), variations // 40)
    lists_by_template: dict[str, list[dict[str, Any]]] = {}
    modifier_count = 0
    for index in range(n_lists):
        name, selection, min_sel, max_sel, mods = _MODIFIER_LISTS[index % len(_MODIFIER_LISTS)]
        round_ = index // len(_MODIFIER_LISTS)
        list_id = b.ids.new()
        modifiers = []
        for ordinal, (mod_name, price) in enumerate(mods, start=1):
            modifiers.append(
                b.obj(
                    "MODIFIER",
                    "modifier_data",
                    {
                        "name": mod_name,
                        "price_money": money(price, currency),
                        "on_by_default": ordinal == 1 and name in ("Sauce", "Doneness"),
                        "ordinal": ordinal,
                        "modifier_list_id": list_id,
                    },
                )
            )
        modifier_count += len(modifiers)
        data: dict[str, Any] = {
            "name": name if round_ == 0 else f"{name} {round_ + 1}",
            "ordinal": index + 1,
            "selection_type": selection,
            "modifiers": modifiers,
            "modifier_type": "LIST",
        }
        if min_sel != -1 or max_sel != -1:
            data["min_selected_modifiers"] = min_sel
            data["max_selected_modifiers"] = max_sel
        modifier_list = b.obj("MODIFIER_LIST", "modifier_list_data", data, id=list_id)
        lists_by_template.setdefault(name, []).append(modifier_list)
        objects.append(modifier_list)

    options: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for option_name, values in _OPTIONS:
        option_id = b.ids.new()
        value_objs = [
            b.obj(
                "ITEM_OPTION_VAL",
                "item_option_value_data",
                {"item_option_id": option_id, "name": value_name, "ordinal": ordinal},
            )
            for ordinal, (value_name, _) in enumerate(values, start=1)
        ]
        option = b.obj(
            "ITEM_OPTION",
            "item_option_data",
            {"name": option_name, "display_name": option_name, "values": value_objs},
            id=option_id,
        )
        options.append((option, value_objs))
        objects.append(option)
    size_option, size_values = options[0]

    image_objs: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    live_variations = 0
    variable_priced = 0
    deleted_items = deleted_variations = 0
    items_with_lists = 0
    items_at = dict.fromkeys(locs, 0)
    variations_at = dict.fromkeys(locs, 0)
    sold_out_at = dict.fromkeys(locs, 0)
    variation_serial = 0
    item_index = 0
    while live_variations < variations:
        item_index += 1
        deleted = item_index % 40 == 39
        category_name = _CATEGORIES[item_index % len(_CATEGORIES)]
        dishes = _DISHES[category_name]
        dish = dishes[(item_index // len(_CATEGORIES)) % len(dishes)]
        style = _STYLES[(item_index // (len(_CATEGORIES) * len(dishes))) % len(_STYLES)]
        serial = item_index // (len(_CATEGORIES) * len(dishes) * len(_STYLES))
        item_name = f"{style}{dish}" + (f" #{serial + 1}" if serial else "")
        is_drink = category_name == "Drinks"
        remaining = variations - live_variations
        if is_drink:
            n_var = min(3, remaining) if not deleted else 3
        else:
            n_var = 1 + rng.randrange(3)
            if not deleted:
                n_var = min(n_var, remaining)

        item_id = b.ids.new()
        presence: dict[str, Any] = {"present_at_all_locations": True}
        if second is not None and item_index % 10 == 3:
            presence = {"present_at_all_locations": False, "present_at_location_ids": [locs[0]]}
        elif second is not None and item_index % 20 == 7:
            presence = {"present_at_all_locations": True, "absent_at_location_ids": [second]}

        base_price = _BASE_PRICES[category_name] + 25 * rng.randrange(8)
        variation_objs = []
        for ordinal in range(1, n_var + 1):
            variation_serial += 1
            if is_drink:
                value_name, surcharge = _OPTIONS[0][1][ordinal - 1]
                var_name = value_name
            else:
                var_name, surcharge = _SIZES[n_var][ordinal - 1]
            var_data: dict[str, Any] = {
                "item_id": item_id,
                "name": var_name,
                "ordinal": ordinal,
                "sku": f"SKU-{variation_serial:06d}",
                "sellable": True,
                "stockable": True,
                "track_inventory": False,
            }
            variable = not is_drink and variation_serial % 97 == 50
            if variable:
                var_data["pricing_type"] = "VARIABLE_PRICING"
            else:
                var_data["pricing_type"] = "FIXED_PRICING"
                var_data["price_money"] = money(base_price + surcharge, currency)
            if is_drink:
                var_data["item_option_values"] = [
                    {
                        "item_option_id": size_option["id"],
                        "item_option_value_id": size_values[ordinal - 1]["id"],
                    }
                ]
            var_presence = dict(presence)
            if (
                second is not None
                and ordinal > 1
                and variation_serial % 15 == 0
                and present_at(presence, second)
            ):
                var_presence["absent_at_location_ids"] = [
                    *presence.get("absent_at_location_ids", []),
                    second,
                ]
            overrides: dict[str, dict[str, Any]] = {}
            if second is not None and not variable and variation_serial % 4 == 1:
                overrides[second] = {
                    "location_id": second,
                    "price_money": money(base_price + surcharge + 50, currency),
                }
            if variation_serial % 20 == 10:
                overrides.setdefault(locs[0], {"location_id": locs[0]})["sold_out"] = True
            if second is not None and variation_serial % 31 == 5:
                overrides.setdefault(second, {"location_id": second})["sold_out"] = True
            if overrides:
                var_data["location_overrides"] = list(overrides.values())
            variation = b.obj(
                "ITEM_VARIATION",
                "item_variation_data",
                var_data,
                is_deleted=deleted,
                **var_presence,
            )
            variation_objs.append(variation)
            if deleted:
                deleted_variations += 1
                continue
            live_variations += 1
            variable_priced += variable
            for loc in locs:
                if present_at(presence, loc) and present_at(variation, loc):
                    variations_at[loc] += 1
                    if overrides.get(loc, {}).get("sold_out"):
                        sold_out_at[loc] += 1

        item_data: dict[str, Any] = {
            "name": item_name,
            "description": f"Our {item_name.lower()}, made to order.",
            "is_taxable": True,
            "categories": [{"id": categories[category_name]["id"], "ordinal": item_index}],
            "reporting_category": {"id": categories[category_name]["id"]},
            "tax_ids": [inclusive_tax["id"] if is_drink else sales_tax["id"]],
            "variations": variation_objs,
            "product_type": "FOOD_AND_BEV",
            "skip_modifier_screen": False,
        }
        if is_drink:
            item_data["item_options"] = [{"item_option_id": size_option["id"]}]
        if item_index % 3 == 0:
            image = b.obj(
                "IMAGE",
                "image_data",
                {
                    "name": item_name,
                    "url": f"https://items-images-sandbox.s3.amazonaws.com/files/"
                    f"{item_id.lower()}/original.jpeg",
                    "caption": item_name,
                },
            )
            image_objs.append(image)
            item_data["image_ids"] = [image["id"]]
        infos = []
        for list_index, template in enumerate(_LISTS_FOR[category_name]):
            if (item_index + list_index) % 3 == 2:
                continue
            candidates = lists_by_template[template]
            modifier_list = candidates[item_index % len(candidates)]
            info: dict[str, Any] = {
                "modifier_list_id": modifier_list["id"],
                "min_selected_modifiers": -1,
                "max_selected_modifiers": -1,
                "enabled": True,
                "ordinal": list_index + 1,
            }
            variant = (item_index + list_index) % 7
            list_data = modifier_list["modifier_list_data"]
            if variant == 1:
                info["min_selected_modifiers"] = 0
                info["max_selected_modifiers"] = min(2, len(list_data["modifiers"]))
            elif variant == 2:
                info["min_selected_modifiers"] = 1
                info["max_selected_modifiers"] = 0  # at least one, no maximum
            elif variant == 3:
                info["enabled"] = False
            elif variant == 4:
                info["modifier_overrides"] = [
                    {"modifier_id": list_data["modifiers"][-1]["id"], "on_by_default": True}
                ]
            infos.append(info)
        if infos:
            item_data["modifier_list_info"] = infos
            if not deleted:
                items_with_lists += 1
        item = b.obj("ITEM", "item_data", item_data, id=item_id, is_deleted=deleted, **presence)
        items.append(item)
        if deleted:
            deleted_items += 1
        else:
            for loc in locs:
                if present_at(presence, loc):
                    items_at[loc] += 1

    objects.extend(image_objs)
    objects.extend(items)
    live_items = len(items) - deleted_items
    n_options = len(options)
    n_option_values = sum(len(v) for _, v in options)
    counts = CatalogCounts(
        locations=locs,
        categories=len(categories),
        taxes=2,
        images=len(image_objs),
        modifier_lists=n_lists,
        modifiers=modifier_count,
        item_options=n_options,
        item_option_values=n_option_values,
        items=live_items,
        variations=live_variations,
        variable_priced=variable_priced,
        items_with_modifier_lists=items_with_lists,
        deleted_items=deleted_items,
        deleted_variations=deleted_variations,
        deleted_objects=deleted_items + 1,
        items_at=items_at,
        variations_at=variations_at,
        sold_out_at=sold_out_at,
        list_catalog_default=len(categories) + 2 + n_lists + n_options + live_items,
        top_level_objects=len(categories) + 2 + n_lists + n_options + live_items + len(image_objs),
    )
    return GeneratedCatalog(
        objects=objects,
        counts=counts,
        location_ids=locs,
        sales_tax_id=sales_tax["id"],
        inclusive_tax_id=inclusive_tax["id"],
    )

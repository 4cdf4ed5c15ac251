"""Hypothesis strategies for the universal menu: valid menus of varied shape and plausible edits.

:func:`menu_documents` draws a raw menu document (a dict ``Menu.model_validate`` accepts) that is
valid in the sense of :func:`posintegrator.model.menu_check.check_menu`: ids unique per
collection, every reference resolvable, categories and modifier nesting acyclic, every variant
priced in every price list, every required group and combo slot satisfiable. :func:`menus` parses
it; :func:`menu_pairs` draws a menu and an edited version of it, as a POS would send over time.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from posintegrator.model import DEFAULT_CHANNELS
from posintegrator.model.menu import Allergen, DietaryTag, Menu

Json = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]

TIMEZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Zurich",
    "America/New_York",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
)
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY", "SEK")
LANGUAGES = ("de", "en", "en-GB", "en-US", "fr", "fr-CH", "it", "es", "pt-BR", "zh-CN", "fil")
FOOD = (
    "Burger",
    "Cheeseburger",
    "Veggie Wrap",
    "Fries",
    "Sweet Potato Fries",
    "Cola",
    "Lemonade",
    "Espresso",
    "Flat White",
    "Caesar Salad",
    "Pizza Margherita",
    "Käsespätzle",
    "Crème brûlée",
    "Extra cheese",
    "No onions",
    "Size",
    "Sauces",
    "Drinks",
    "Mains",
    "Desserts",
)
ID_CHARS = string.ascii_letters + string.digits + "-_:"
MINUTES_PER_DAY = 24 * 60

prices_amount = st.integers(min_value=0, max_value=50_000)
names = st.one_of(st.sampled_from(FOOD), st.text(min_size=1, max_size=24))
optional_text = st.one_of(st.none(), names)
languages = st.one_of(
    st.sampled_from(LANGUAGES), st.from_regex(r"[a-z]{2,3}(-[A-Z]{2})?", fullmatch=True)
)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)
channels = st.lists(
    st.sampled_from([*DEFAULT_CHANNELS, "ubereats", "wolt"]), unique=True, max_size=4
)


_INTS: dict[tuple[int, int], st.SearchStrategy[int]] = {}
_BOOLS = st.booleans()


def _int(draw: Draw, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (strategies are cached: building them is costly)."""
    strategy = _INTS.get((low, high))
    if strategy is None:
        strategy = _INTS[low, high] = st.integers(low, high)
    return int(draw(strategy))


def _bool(draw: Draw) -> bool:
    return bool(draw(_BOOLS))


def _choose(draw: Draw, items: Sequence[Any]) -> Any:
    """One element of ``items`` (not empty)."""
    return items[_int(draw, 0, len(items) - 1)]


def _shuffled(draw: Draw, items: Sequence[Any]) -> list[Any]:
    """``items`` in a drawn order."""
    return _subset(draw, items, len(items), len(items))


def _subset(draw: Draw, items: Sequence[Any], min_size: int = 0, max_size: int = 99) -> list[Any]:
    """Some distinct elements of ``items``, in drawn order."""
    pool = list(items)
    count = _int(draw, min(min_size, len(pool)), min(max_size, len(pool)))
    return [pool.pop(_int(draw, 0, len(pool) - 1)) for _ in range(count)]


def _sometimes(draw: Draw, strategy: st.SearchStrategy[Any], empty: Any, chance: int = 3) -> Any:
    """A value from ``strategy`` about one time in ``chance``, else ``empty``."""
    return draw(strategy) if _int(draw, 0, chance - 1) == 0 else empty


_ID_TEXT = st.text(ID_CHARS, min_size=1, max_size=10)
_POS_ID = st.text(ID_CHARS, min_size=1, max_size=8)
_SUFFIX = st.text(ID_CHARS, min_size=0, max_size=6)
_REASONS = st.sampled_from(["sold out", "broken machine"])
_TEXT = st.fixed_dictionaries({}, optional={"name": optional_text, "description": optional_text})
_TRANSLATIONS = st.dictionaries(languages, _TEXT, min_size=1, max_size=3)
_SOME_ALLERGENS = st.lists(st.sampled_from(list(Allergen)), max_size=4)
_ALLERGENS = st.fixed_dictionaries({"contains": _SOME_ALLERGENS, "may_contain": _SOME_ALLERGENS})
tags = st.lists(st.sampled_from(list(DietaryTag)), max_size=3)
nutrition = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"per": st.sampled_from(["serving", "100g"])},
        optional={
            key: st.one_of(st.none(), st.integers(0, 200_000))
            for key in ("energy_kcal", "fat_mg", "sugars_mg", "protein_mg", "salt_mg")
        },
    ),
)


def draw_ids(draw: Draw, prefix: str, size: int) -> list[str]:
    """``size`` distinct ids: from a small shared pool (so unrelated menus share ids) or free."""
    if _bool(draw):
        return [f"{prefix}{n}" for n in _subset(draw, range(2 * size + 4), size, size)]
    taken: list[str] = []
    while len(taken) < size:
        candidate = draw(_ID_TEXT)
        taken.append(candidate if candidate not in taken else fresh_id(draw, taken, prefix))
    return taken


def fresh_id(draw: Draw, taken: set[str] | list[str], prefix: str = "new") -> str:
    """An id not in ``taken``."""
    candidate = f"{prefix}-{draw(_SUFFIX)}"
    while candidate in taken:
        candidate += "x"
    return candidate


def draw_time_slot(draw: Draw) -> Json:
    """A valid weekly window: some days, start before end, end may be 24:00."""
    days = _subset(draw, range(7), min_size=1)
    start = _int(draw, 0, MINUTES_PER_DAY - 1)
    end = _int(draw, start + 1, MINUTES_PER_DAY)
    return {"days": days, "start": _clock(start), "end": _clock(end)}


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def draw_availability(draw: Draw, *, may_86: bool = True) -> Json:
    """Mostly orderable; sometimes 86'd (maybe until a time), scheduled or channel-limited."""
    out: Json = {}
    if may_86 and _int(draw, 0, 5) == 0:
        out["available"] = False
        out["unavailable_until"] = _sometimes(draw, instants, None, 2)
        out["reason"] = _sometimes(draw, _REASONS, None, 2)
    if _int(draw, 0, 3) == 0:
        out["schedule"] = [draw_time_slot(draw) for _ in range(_int(draw, 1, 2))]
    out["channels"] = _sometimes(draw, channels, [], 4)
    return out


def draw_translations(draw: Draw) -> Json:
    """Usually none; sometimes names and descriptions in a few languages."""
    return dict(_sometimes(draw, _TRANSLATIONS, {}, 4))


def draw_allergens(draw: Draw) -> Json:
    """Declared and possible allergens (unsorted, maybe repeated: the model normalises)."""
    return dict(_sometimes(draw, _ALLERGENS, {}, 3))


def _is_on(entity: Json) -> bool:
    """Whether a drawn entity is not 86'd."""
    return bool(entity.get("availability", {}).get("available", True))


def _price_subset(draw: Draw, price_lists: list[str]) -> Json:
    chosen = _subset(draw, price_lists)
    return {p: draw(prices_amount) for p in chosen}


def _full_prices(draw: Draw, price_lists: list[str]) -> Json:
    return {p: draw(prices_amount) for p in price_lists}


def _variants(draw: Draw, price_lists: list[str], *, may_86: bool = True) -> list[Json]:
    variant_ids = draw_ids(draw, "v", _int(draw, 1, 3))
    return [
        {
            "id": v,
            "pos_id": _sometimes(draw, _POS_ID, None, 2),
            "name": draw(names),
            "translations": draw_translations(draw),
            "prices": _full_prices(draw, price_lists),
            "availability": draw_availability(draw, may_86=may_86),
        }
        for v in variant_ids
    ]


def _group(draw: Draw, group_id: str, nestable: list[str], price_lists: list[str]) -> Json:
    """A modifier group whose options nest only groups from ``nestable``; min is satisfiable."""
    option_ids = draw_ids(draw, "o", _int(draw, 0, 4))
    options = []
    for option_id in option_ids:
        nested = _subset(draw, nestable, max_size=2) if _int(draw, 0, 2) == 0 else []
        options.append(
            {
                "id": option_id,
                "name": draw(names),
                "translations": draw_translations(draw),
                "prices": _price_subset(draw, price_lists),
                "max_quantity": _int(draw, 1, 3),
                "default": _bool(draw),
                "modifier_group_ids": nested,
                "availability": draw_availability(draw),
                "allergens": draw_allergens(draw),
                "tags": _sometimes(draw, tags, []),
                "nutrition": _sometimes(draw, nutrition, None, 4),
            }
        )
    capacity = sum(o["max_quantity"] for o in options if _is_on(o))
    low = _int(draw, 0, min(capacity, 3))
    high = None if _int(draw, 0, 2) == 0 else _int(draw, low, low + 4)
    return {
        "id": group_id,
        "name": draw(names),
        "translations": draw_translations(draw),
        "min": low,
        "max": high,
        "free_quantity": _int(draw, 0, 2),
        "options": options,
    }


@st.composite
def menu_documents(
    draw: Draw,
    *,
    min_products: int = 0,
    max_products: int = 15,
    min_groups: int = 0,
    max_groups: int = 8,
    min_combos: int = 0,
    min_categories: int = 1,
) -> Json:
    """A raw, valid menu document (python values, ready for ``Menu.model_validate``)."""
    location = "loc-1" if _bool(draw) else draw(_ID_TEXT)

    price_list_ids = draw_ids(draw, "pl", _int(draw, 1, 3))
    price_lists = [
        {
            "id": p,
            "pos_id": _sometimes(draw, _POS_ID, None, 2),
            "name": draw(names),
            "channels": draw(channels),
            "locations": list(
                _choose(draw, [[], [location], [location, "elsewhere"], ["elsewhere"]])
            ),
        }
        for p in price_list_ids
    ]

    tax_ids = draw_ids(draw, "t", _int(draw, 0, 2))
    taxes = [
        {
            "id": t,
            "name": draw(names),
            "rate_ppm": _int(draw, 0, 1_000_000),
            "inclusive": _bool(draw),
        }
        for t in tax_ids
    ]

    # Categories: a parent always has a lower index before shuffling, so nesting is a forest.
    category_ids = draw_ids(draw, "c", _int(draw, min_categories, 5))
    categories = [
        {
            "id": c,
            "name": draw(names),
            "translations": draw_translations(draw),
            "parent_id": (category_ids[_int(draw, 0, i - 1)] if i and _bool(draw) else None),
            "sort": _int(draw, -5, 50),
            "image_url": f"https://img.example/{c}.png" if _int(draw, 0, 2) == 0 else None,
            "availability": draw_availability(draw),
        }
        for i, c in enumerate(category_ids)
    ]
    categories = _shuffled(draw, categories)

    # Modifier groups: options of group i nest only groups i+1.., so nesting is acyclic.
    group_ids = draw_ids(draw, "g", _int(draw, min_groups, max_groups))
    groups = [_group(draw, g, group_ids[i + 1 :], price_list_ids) for i, g in enumerate(group_ids)]
    groups_by_id = {g["id"]: g for g in groups}
    groups = _shuffled(draw, groups)

    product_count = _int(draw, max(min_products, min_combos + 1), max_products)
    combo_count = _int(draw, min_combos, min(2, product_count - 1))
    product_ids = draw_ids(draw, "p", product_count)
    products = []
    for index, product_id in enumerate(product_ids):
        product_groups = _subset(draw, group_ids, max_size=3)
        overridable = [(g, o["id"]) for g in product_groups for o in groups_by_id[g]["options"]]
        overrides = _subset(draw, overridable, max_size=3)
        products.append(
            {
                "id": product_id,
                "pos_id": _sometimes(draw, _POS_ID, None, 2),
                "name": draw(names),
                "description": _sometimes(draw, names, None),
                "translations": draw_translations(draw),
                "category_ids": _subset(draw, category_ids, min_size=1, max_size=3),
                # The first product stays orderable so combos always have a choice.
                "variants": _variants(draw, price_list_ids, may_86=index > 0),
                "modifier_group_ids": product_groups,
                "option_prices": [
                    {"group_id": g, "option_id": o, "prices": _price_subset(draw, price_list_ids)}
                    for g, o in overrides
                ],
                "slots": [],
                "tax_id": _choose(draw, [None, *tax_ids]),
                "image_url": f"https://img.example/{index}.jpg" if _bool(draw) else None,
                "availability": draw_availability(draw, may_86=index > 0),
                "allergens": draw_allergens(draw),
                "tags": _sometimes(draw, tags, []),
                "nutrition": _sometimes(draw, nutrition, None, 4),
            }
        )
    plain = products[: product_count - combo_count]
    orderable = [p for p in plain if _is_on(p) and any(_is_on(v) for v in p["variants"])]
    for combo in products[product_count - combo_count :]:
        slot_ids = draw_ids(draw, "s", _int(draw, 1, 3))
        for slot_id in slot_ids:
            low = _int(draw, 0, 2)
            targets = [_choose(draw, orderable) for _ in range(_int(draw, 1, 3))]
            combo["slots"].append(
                {
                    "id": slot_id,
                    "name": draw(names),
                    "translations": draw_translations(draw),
                    "min": low,
                    "max": _int(draw, max(low, 1), max(low, 1) + 2),
                    "choices": [
                        {
                            "product_id": target["id"],
                            # Only orderable variants: a slot must be fillable.
                            "variant_id": _choose(
                                draw, [None, *(v["id"] for v in target["variants"] if _is_on(v))]
                            ),
                            "upcharge": _price_subset(draw, price_list_ids),
                        }
                        for target in targets
                    ],
                }
            )
    products = _shuffled(draw, products)

    return {
        "location": location,
        "currency": _choose(draw, CURRENCIES),
        "timezone": _choose(draw, TIMEZONES),
        "default_language": _choose(draw, LANGUAGES),
        "price_lists": price_lists,
        "taxes": taxes,
        "categories": categories,
        "products": products,
        "modifier_groups": groups,
        "source_updated_at": _sometimes(draw, instants, None, 2),
    }


def menus(**kwargs: int) -> st.SearchStrategy[Menu]:
    """Valid menus; keyword arguments as for :func:`menu_documents` (e.g. ``min_combos=1``)."""
    return menu_documents(**kwargs).map(Menu.model_validate)


# --- Edits: each takes the menu as a JSON document and changes it in place, keeping it valid. ---


COLLECTIONS = ("price_lists", "taxes", "categories", "products", "modifier_groups")


def _pick(draw: Draw, items: list[Any]) -> Any:
    return _choose(draw, items)


def _choice_targets(data: Json) -> set[str]:
    return {
        choice["product_id"]
        for product in data["products"]
        for slot in product["slots"]
        for choice in slot["choices"]
    }


def _price_list_ids(data: Json) -> list[str]:
    return [p["id"] for p in data["price_lists"]]


def edit_reprice(draw: Draw, data: Json) -> None:
    """A variant's price changes in one price list."""
    if data["products"]:
        variant = _pick(draw, _pick(draw, data["products"])["variants"])
        variant["prices"][_pick(draw, _price_list_ids(data))] = draw(prices_amount)


def edit_rename(draw: Draw, data: Json) -> None:
    """Something gets a new name (or description)."""
    collection = _choose(draw, COLLECTIONS)
    if data[collection]:
        entity = _pick(draw, data[collection])
        entity["name"] = draw(names)
        if collection == "products":
            entity["description"] = draw(optional_text)
        if collection == "modifier_groups" and entity["options"]:
            _pick(draw, entity["options"])["name"] = draw(names)


def edit_toggle_86(draw: Draw, data: Json) -> None:
    """A product or option is 86'd or comes back, never breaking a combo slot or a group."""
    if _bool(draw) and data["products"]:
        product = _pick(draw, data["products"])
        availability = product["availability"]
        if not availability["available"]:
            availability.update(available=True, unavailable_until=None, reason=None)
        elif product["id"] not in _choice_targets(data):
            availability.update(
                available=False, unavailable_until=draw(st.one_of(st.none(), instants))
            )
            if availability["unavailable_until"] is not None:
                availability["unavailable_until"] = availability["unavailable_until"].isoformat()
    elif data["modifier_groups"]:
        group = _pick(draw, data["modifier_groups"])
        if not group["options"]:
            return
        option = _pick(draw, group["options"])
        availability = option["availability"]
        capacity = sum(
            o["max_quantity"] for o in group["options"] if o["availability"]["available"]
        )
        if not availability["available"]:
            availability["available"] = True
        elif capacity - option["max_quantity"] >= group["min"]:
            availability["available"] = False


def edit_add_product(draw: Draw, data: Json) -> None:
    """A new plain product appears somewhere in the list."""
    if not data["categories"]:
        return
    price_lists = _price_list_ids(data)
    product = {
        "id": fresh_id(draw, {p["id"] for p in data["products"]}, "prod"),
        "name": draw(names),
        "category_ids": [_pick(draw, data["categories"])["id"]],
        "variants": _variants(draw, price_lists),
        "modifier_group_ids": _subset(draw, [g["id"] for g in data["modifier_groups"]]),
        "tags": draw(tags),
    }
    data["products"].insert(_int(draw, 0, len(data["products"])), product)


def edit_remove_product(draw: Draw, data: Json) -> None:
    """A product no combo uses goes away."""
    targets = _choice_targets(data)
    removable = [p for p in data["products"] if p["id"] not in targets]
    if removable:
        data["products"].remove(_pick(draw, removable))


def edit_reorder(draw: Draw, data: Json) -> None:
    """A collection is re-sorted."""
    collection = _choose(draw, COLLECTIONS)
    data[collection] = _shuffled(draw, data[collection])


def edit_add_group(draw: Draw, data: Json) -> None:
    """A new modifier group, maybe nesting existing ones, maybe attached to a product."""
    existing = [g["id"] for g in data["modifier_groups"]]
    group = _group(draw, fresh_id(draw, existing, "grp"), existing, _price_list_ids(data))
    data["modifier_groups"].insert(_int(draw, 0, len(existing)), group)
    if data["products"] and _bool(draw):
        _pick(draw, data["products"])["modifier_group_ids"].append(group["id"])


def edit_remove_group(draw: Draw, data: Json) -> None:
    """A modifier group goes away, with every reference to it."""
    if not data["modifier_groups"]:
        return
    gone = _pick(draw, data["modifier_groups"])
    data["modifier_groups"].remove(gone)
    for product in data["products"]:
        product["modifier_group_ids"] = [
            g for g in product["modifier_group_ids"] if g != gone["id"]
        ]
        product["option_prices"] = [
            o for o in product["option_prices"] if o["group_id"] != gone["id"]
        ]
    for group in data["modifier_groups"]:
        for option in group["options"]:
            option["modifier_group_ids"] = [
                g for g in option["modifier_group_ids"] if g != gone["id"]
            ]


def edit_add_category(draw: Draw, data: Json) -> None:
    """A new (maybe nested) category, maybe holding an existing product."""
    existing = [c["id"] for c in data["categories"]]
    category = {
        "id": fresh_id(draw, existing, "cat"),
        "name": draw(names),
        "parent_id": _choose(draw, [None, *existing]),
        "sort": _int(draw, 0, 9),
    }
    data["categories"].insert(_int(draw, 0, len(existing)), category)
    if data["products"] and _bool(draw):
        _pick(draw, data["products"])["category_ids"].append(category["id"])


def edit_remove_category(draw: Draw, data: Json) -> None:
    """A leaf category goes away; its products move to another if it was their only one."""
    parents = {c["parent_id"] for c in data["categories"]}
    leaves = [c for c in data["categories"] if c["id"] not in parents]
    if len(data["categories"]) < 2 or not leaves:
        return
    gone = _pick(draw, leaves)
    data["categories"].remove(gone)
    fallback = _pick(draw, data["categories"])["id"]
    for product in data["products"]:
        kept = [c for c in product["category_ids"] if c != gone["id"]]
        product["category_ids"] = kept or [fallback]


def edit_menu_fields(draw: Draw, data: Json) -> None:
    """A menu-level field changes: time zone, currency, language or update time."""
    field = _choose(draw, ["timezone", "currency", "default_language", "source_updated_at"])
    if field == "timezone":
        data[field] = _choose(draw, TIMEZONES)
    elif field == "currency":
        data[field] = _choose(draw, CURRENCIES)
    elif field == "default_language":
        data[field] = _choose(draw, LANGUAGES)
    else:
        data[field] = draw(st.one_of(st.none(), instants.map(datetime.isoformat)))


def edit_taxes(draw: Draw, data: Json) -> None:
    """A tax rate changes, or a new tax is applied to a product."""
    if data["taxes"] and _bool(draw):
        _pick(draw, data["taxes"])["rate_ppm"] = _int(draw, 0, 1_000_000)
        return
    tax = {
        "id": fresh_id(draw, [t["id"] for t in data["taxes"]], "tax"),
        "name": draw(names),
        "rate_ppm": _int(draw, 0, 300_000),
    }
    data["taxes"].append(tax)
    if data["products"]:
        _pick(draw, data["products"])["tax_id"] = tax["id"]


def edit_product_details(draw: Draw, data: Json) -> None:
    """Allergens, tags, nutrition, schedule or translations of a product change."""
    if not data["products"]:
        return
    product = _pick(draw, data["products"])
    product["allergens"] = draw_allergens(draw)
    product["tags"] = draw(tags)
    product["nutrition"] = draw(nutrition)
    product["translations"] = draw_translations(draw)
    product["availability"]["schedule"] = [draw_time_slot(draw) for _ in range(_int(draw, 0, 2))]


def edit_add_price_list(draw: Draw, data: Json) -> None:
    """A new price list, priced for every variant."""
    price_list = {
        "id": fresh_id(draw, _price_list_ids(data), "list"),
        "name": draw(names),
        "channels": draw(channels),
    }
    data["price_lists"].append(price_list)
    for product in data["products"]:
        for variant in product["variants"]:
            variant["prices"][price_list["id"]] = draw(prices_amount)


def edit_remove_price_list(draw: Draw, data: Json) -> None:
    """A price list goes away, with every price in it."""
    if len(data["price_lists"]) < 2:
        return
    gone = _pick(draw, data["price_lists"])
    data["price_lists"].remove(gone)
    price_maps = [v["prices"] for p in data["products"] for v in p["variants"]]
    price_maps += [o["prices"] for p in data["products"] for o in p["option_prices"]]
    price_maps += [
        c["upcharge"] for p in data["products"] for s in p["slots"] for c in s["choices"]
    ]
    price_maps += [o["prices"] for g in data["modifier_groups"] for o in g["options"]]
    for prices in price_maps:
        prices.pop(gone["id"], None)


EDITS: tuple[Callable[[Draw, Json], None], ...] = (
    edit_reprice,
    edit_rename,
    edit_toggle_86,
    edit_add_product,
    edit_remove_product,
    edit_reorder,
    edit_add_group,
    edit_remove_group,
    edit_add_category,
    edit_remove_category,
    edit_menu_fields,
    edit_taxes,
    edit_product_details,
    edit_add_price_list,
    edit_remove_price_list,
)


@st.composite
def menu_pairs(draw: Draw, **kwargs: int) -> tuple[Menu, Menu]:
    """A valid menu and a valid edit of it (one to five changes a POS might make)."""
    before = draw(menus(**kwargs))
    data = before.model_dump(mode="json")
    for edit in [_choose(draw, EDITS) for _ in range(_int(draw, 1, 5))]:
        edit(draw, data)
        # Re-normalise so the next edit sees every field, as in a dumped menu.
        data = Menu.model_validate(data).model_dump(mode="json")
    return before, Menu.model_validate(data)

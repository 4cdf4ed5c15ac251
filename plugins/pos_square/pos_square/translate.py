"""Pure translation of Square's catalog into the universal menu, and of Square's orders into
status events (the order mapping the other way is in :mod:`pos_square.orders`).

No I/O here: every function takes decoded Square JSON and returns the universal side, so the
whole mapping is testable against recorded fixtures. Money stays in integer minor units on both
sides (Square's ``Money.amount`` already is).

How the Square catalog lands in the universal menu of one location:

* an ``ITEM`` becomes a :class:`Product` (id = the Square item id); its ``ITEM_VARIATION``s
  (sizes) become its :class:`Variant`s (id = the Square variation id, which is what an order
  names). A variation's price is the location override's ``price_money`` when the location has
  one, else its own ``price_money``. Variations with ``VARIABLE_PRICING`` (price entered at the
  till) have no price a channel could show and are left out; an item left without variations
  is left out too.
* there is one universal price list, ``"square"``, naming no channel, so it serves every channel
  the deployment has: Square has one price per variation and location.
* Square rounds every computed amount half to even (bankers' rounding), so the menu's
  ``tax_rounding`` is ``half_even``: an order's tax is checked as Square will compute it.
* ``CATEGORY`` -> :class:`Category` (``parent_category`` -> ``parent_id``); an item's
  ``categories[]`` (or the legacy ``category_id``) -> ``category_ids``; products are listed in
  category order, then by their ``ordinal`` in the category, then by name.
* ``TAX`` -> :class:`Tax`: ``percentage`` ("8.875") -> ``rate_ppm`` (88750) exactly, through
  :class:`~decimal.Decimal`; ``INCLUSIVE`` -> ``inclusive=True``, ``ADDITIVE`` (Square's default)
  -> ``False``. The universal product has one tax, so an item with several taxes gets a combined
  tax whose id joins theirs with ``+`` and whose rate is their sum (Square applies them all to
  the same subtotal).
* ``MODIFIER_LIST`` + ``MODIFIER``s -> :class:`ModifierGroup` + :class:`ModifierOption`s. The
  selection rule comes from the item's ``modifier_list_info`` (where ``-1`` means "not set: use
  the list's own value") or the list's ``min/max_selected_modifiers`` (``0`` or ``-1`` max = no
  limit; lists that set neither fall back to the deprecated ``selection_type``: ``SINGLE`` = at
  most one). Since the rule, ``allow_quantities`` and the ``on_by_default`` overrides can differ
  per item, one universal group is emitted per list and distinct rule: the list's own id when the
  item uses the list as it is, else the list id with a suffix (``@min-max``, max ``0`` meaning no
  limit; ``~q``/``~1`` for a different ``allow_quantities``; ``~d<hash>`` for different
  defaults). Option ids are always the Square modifier id, which is what an order names.
  Disabled (``enabled: false``) lists on an item and text modifier lists are left out.
* ``ITEM_OPTION`` values name a variation that has ``item_option_values`` ("Large, Oat milk").
* per-location presence (``present_at_all_locations``, ``present_at_location_ids``,
  ``absent_at_location_ids``) is honoured for items, variations, modifiers, categories and taxes;
  ``location_overrides[].sold_out`` (and ``sold_out_valid_until``) 86 a variation or a modifier.
* deleted (``is_deleted``) and archived (``is_archived``) objects are left out.
* ``IMAGE`` objects give ``image_url`` through ``image_ids`` (the first one).
* ``food_and_beverage_details``: standard ``ingredients`` (the 14 EU allergens) -> allergens,
  standard ``dietary_preferences`` -> tags, ``calorie_count`` -> nutrition.
* every entity keeps its Square id as ``pos_id``.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from posintegrator.model import (
    Allergen,
    Allergens,
    Availability,
    Category,
    DietaryTag,
    Menu,
    ModifierGroup,
    ModifierOption,
    Nutrition,
    OrderStatus,
    PriceList,
    Product,
    StatusEvent,
    Tax,
    Variant,
)

JSONDict = dict[str, Any]

#: The one universal price list of a Square menu.
PRICE_LIST_ID = "square"
#: ``source`` of every status event this plugin produces.
EVENT_SOURCE = "pos:square"
#: The catalog object types a menu needs from ListCatalog (variations, modifiers and option
#: values come nested in their item, list and option).
MENU_OBJECT_TYPES = ("ITEM", "CATEGORY", "TAX", "MODIFIER_LIST", "IMAGE", "ITEM_OPTION")
#: Per-option cap when a list allows quantities without a total limit.
UNLIMITED_MODIFIER_QUANTITY = 99

_FULFILLMENT_STATES: dict[str, OrderStatus] = {
    "PROPOSED": OrderStatus.ACCEPTED,
    "RESERVED": OrderStatus.IN_PREPARATION,
    "PREPARED": OrderStatus.READY,
    "COMPLETED": OrderStatus.COMPLETED,
    "CANCELED": OrderStatus.CANCELLED,
    "FAILED": OrderStatus.FAILED,
}

_INGREDIENTS: dict[str, Allergen] = {
    "CELERY": Allergen.CELERY,
    "CRUSTACEANS": Allergen.CRUSTACEANS,
    "EGGS": Allergen.EGGS,
    "FISH": Allergen.FISH,
    "GLUTEN": Allergen.GLUTEN,
    "LUPIN": Allergen.LUPIN,
    "MILK": Allergen.MILK,
    "MOLLUSCS": Allergen.MOLLUSCS,
    "MUSTARD": Allergen.MUSTARD,
    "PEANUTS": Allergen.PEANUTS,
    "SESAME": Allergen.SESAME,
    "SOY": Allergen.SOYBEANS,
    "SULPHITES": Allergen.SULPHITES,
    "TREE_NUTS": Allergen.NUTS,
}

_DIETARY: dict[str, DietaryTag] = {
    "DAIRY_FREE": DietaryTag.LACTOSE_FREE,
    "GLUTEN_FREE": DietaryTag.GLUTEN_FREE,
    "HALAL": DietaryTag.HALAL,
    "KOSHER": DietaryTag.KOSHER,
    "VEGAN": DietaryTag.VEGAN,
    "VEGETARIAN": DietaryTag.VEGETARIAN,
}


# ---------------------------------------------------------------------------------------------
# Menu: Square catalog -> universal
# ---------------------------------------------------------------------------------------------


def present_at(obj: JSONDict, square_location_id: str) -> bool:
    """Whether a catalog object exists (not deleted) and is present at the Square location."""
    if obj.get("is_deleted"):
        return False
    if square_location_id in (obj.get("absent_at_location_ids") or []):
        return False
    if obj.get("present_at_all_locations") is False:
        return square_location_id in (obj.get("present_at_location_ids") or [])
    return True


#: A modifier list as a group: the list, its modifiers present at the location, its own rule.
_ListShape = tuple[JSONDict, list[JSONDict], "_GroupRule"]


class _Catalog:
    """The catalog objects indexed by id and type, nested children flattened in."""

    def __init__(self, objects: Iterable[JSONDict]) -> None:
        self.by_id: dict[str, JSONDict] = {}
        self.by_type: dict[str, list[JSONDict]] = {}
        self._children: dict[tuple[str, str], dict[Any, list[JSONDict]]] = {}
        for obj in objects:
            self._add(obj)

    def _add(self, obj: JSONDict) -> None:
        object_id = obj["id"]
        if object_id in self.by_id:
            return
        self.by_id[object_id] = obj
        kind = obj["type"]
        self.by_type.setdefault(kind, []).append(obj)
        nesting = _NESTED.get(kind)
        if nesting is not None:
            data_field, children_field = nesting
            for child in (obj.get(data_field) or {}).get(children_field) or ():
                self._add(child)

    def of_type(self, kind: str) -> list[JSONDict]:
        return self.by_type.get(kind, [])

    def children(self, kind: str, parent_field: str, parent_id: str) -> list[JSONDict]:
        """Objects of ``kind`` whose data names ``parent_id`` in ``parent_field``, by ordinal.

        Indexed once per (kind, field) on first use: a catalog of 20,000 variations would
        otherwise be scanned once per item.
        """
        key = (kind, parent_field)
        index = self._children.get(key)
        if index is None:
            index = {}
            for obj in self.of_type(kind):
                index.setdefault(_data(obj).get(parent_field), []).append(obj)
            for siblings in index.values():
                if len(siblings) > 1:
                    siblings.sort(key=_by_ordinal)
            self._children[key] = index
        return index.get(parent_id, [])


#: Where objects of a type carry others inline (an item its variations, ...).
_NESTED = {
    "ITEM": ("item_data", "variations"),
    "MODIFIER_LIST": ("modifier_list_data", "modifiers"),
    "ITEM_OPTION": ("item_option_data", "values"),
}


def _by_ordinal(obj: JSONDict) -> tuple[int, str]:
    """Sort key of sibling objects: Square's ``ordinal``, then the id."""
    return (_data(obj).get("ordinal") or 0, obj["id"])


_DATA_FIELDS = {
    "ITEM": "item_data",
    "ITEM_VARIATION": "item_variation_data",
    "CATEGORY": "category_data",
    "TAX": "tax_data",
    "MODIFIER_LIST": "modifier_list_data",
    "MODIFIER": "modifier_data",
    "IMAGE": "image_data",
    "ITEM_OPTION": "item_option_data",
    "ITEM_OPTION_VAL": "item_option_value_data",
}


def _data(obj: JSONDict) -> JSONDict:
    """The type-specific ``*_data`` of a catalog object (empty for types we do not read)."""
    field = _DATA_FIELDS.get(obj["type"])
    return (obj.get(field) or {}) if field else {}


def menu_from_catalog(
    objects: list[JSONDict],
    location: str,
    square_location_id: str,
    currency: str,
    timezone: str,
) -> Menu:
    """Translate Square catalog objects into the universal menu of one location.

    :param objects: the ``objects`` of every ListCatalog page (top-level variations, modifiers
        and option values are accepted as well as nested ones).
    :param location: our location id.
    :param square_location_id: the Square location it is.
    :param currency: the location's currency (``Location.currency``).
    :param timezone: the location's IANA time zone (``Location.timezone``).
    """
    with _collector_paused():
        return _menu(objects, location, square_location_id, currency, timezone)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a CPU-bound translation.

    A large catalog keeps millions of decoded JSON containers alive; each collection pass walks
    them all and finds nothing to free (bench/menu_translation.py: over half of a 20,000-
    variation translation). Reference counting still frees memory as usual meanwhile.

    On the way out, what was made meanwhile (the menu, which lives until the next sync) is
    filed straight into the oldest generation (``gc.freeze`` then ``gc.unfreeze``), as if it
    had already survived the young collections: otherwise the first allocation after
    re-enabling walks all of it at once, a pause of a fifth of a second at 20,000
    variations. Full collections still see it like any long-lived data. Skipped when the
    process keeps frozen objects of its own (a pre-forking server's ``gc.freeze()``), which an
    ``unfreeze`` would release.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _menu(
    objects: list[JSONDict], location: str, square_location_id: str, currency: str, timezone: str
) -> Menu:
    catalog = _Catalog(objects)
    builder = _MenuBuilder(catalog, square_location_id)
    categories = builder.categories()
    products = builder.products({c.id: n for n, c in enumerate(categories)})
    return Menu(
        location=location,
        currency=currency,
        timezone=timezone or "UTC",
        price_lists=[PriceList(id=PRICE_LIST_ID, name="Square")],
        tax_rounding="half_even",
        taxes=list(builder.taxes.values()),
        categories=categories,
        products=products,
        modifier_groups=list(builder.groups.values()),
        source_updated_at=_latest(catalog.by_id.values()),
    )


class _MenuBuilder:
    """Builds the menu of one location; collects taxes and modifier groups as items use them."""

    def __init__(self, catalog: _Catalog, square_location_id: str) -> None:
        self.catalog = catalog
        self.loc = square_location_id
        self.images: dict[str, str | None] = {
            o["id"]: _data(o).get("url")
            for o in catalog.of_type("IMAGE")
            if not o.get("is_deleted")
        }
        self.taxes: dict[str, Tax] = {}
        for obj in catalog.of_type("TAX"):
            tax = self._tax(obj)
            if tax is not None:
                self.taxes[tax.id] = tax
        self.groups: dict[str, ModifierGroup] = {}
        self._group_of: dict[tuple[str, Hashable], str | None] = {}
        self._shapes: dict[str, _ListShape | None] = {}

    def _present(self, obj: JSONDict | None) -> bool:
        return obj is not None and present_at(obj, self.loc)

    def _override(self, data: JSONDict) -> JSONDict:
        """The ``location_overrides`` entry of this location (``{}`` when there is none)."""
        overrides: list[JSONDict] = data.get("location_overrides") or []
        for override in overrides:
            if override.get("location_id") == self.loc:
                return override
        return {}

    def _image(self, image_ids: list[str] | None) -> str | None:
        for image_id in image_ids or []:
            url = self.images.get(image_id)
            if url:
                return url
        return None

    # --- taxes ----------------------------------------------------------------------------

    def _tax(self, obj: JSONDict) -> Tax | None:
        data = _data(obj)
        if not self._present(obj) or data.get("enabled") is False:
            return None
        percentage = data.get("percentage")
        if percentage is None:
            return None
        return Tax(
            id=obj["id"],
            pos_id=obj["id"],
            name=data.get("name") or obj["id"],
            rate_ppm=percentage_to_ppm(percentage),
            inclusive=data.get("inclusion_type") == "INCLUSIVE",
        )

    def _item_tax(self, item: JSONDict) -> str | None:
        if item.get("is_taxable") is False:
            return None
        taxes = [self.taxes[t] for t in item.get("tax_ids") or [] if t in self.taxes]
        if not taxes:
            return None
        if len(taxes) == 1:
            return taxes[0].id
        taxes.sort(key=lambda t: t.id)
        combined_id = "+".join(t.id for t in taxes)
        if combined_id not in self.taxes:
            self.taxes[combined_id] = Tax(
                id=combined_id,
                pos_id=",".join(t.id for t in taxes),
                name=" + ".join(t.name for t in taxes),
                rate_ppm=sum(t.rate_ppm for t in taxes),
                inclusive=all(t.inclusive for t in taxes),
            )
        return combined_id

    # --- categories -----------------------------------------------------------------------

    def categories(self) -> list[Category]:
        present = [o for o in self.catalog.of_type("CATEGORY") if self._present(o)]
        ids = {o["id"] for o in present}
        result = []
        for obj in sorted(present, key=lambda o: ((_data(o).get("name") or "").lower(), o["id"])):
            data = _data(obj)
            parent = data.get("parent_category") or {}
            parent_id = parent.get("id") if parent.get("id") in ids else None
            result.append(
                Category(
                    id=obj["id"],
                    pos_id=obj["id"],
                    name=data.get("name") or obj["id"],
                    parent_id=parent_id,
                    sort=(parent.get("ordinal") or 0) if parent_id else 0,
                    image_url=self._image(data.get("image_ids")),
                )
            )
        return result

    # --- products -------------------------------------------------------------------------

    def products(self, category_rank: Mapping[str, int]) -> list[Product]:
        ranked: list[tuple[tuple[int, int, str, str], Product]] = []
        for obj in self.catalog.of_type("ITEM"):
            product, sort_key = self._product(obj, category_rank)
            if product is not None:
                ranked.append((sort_key, product))
        ranked.sort(key=lambda pair: pair[0])
        return [product for _, product in ranked]

    def _product(
        self, obj: JSONDict, category_rank: Mapping[str, int]
    ) -> tuple[Product | None, tuple[int, int, str, str]]:
        item: JSONDict = obj.get("item_data") or {}  # an ITEM
        name = item.get("name") or obj["id"]
        no_rank = (len(category_rank), 0, "", obj["id"])
        if not self._present(obj) or item.get("is_archived"):
            return None, no_rank
        variants = [
            variant
            for variation in self.catalog.children("ITEM_VARIATION", "item_id", obj["id"])
            if (variant := self._variant(variation, name)) is not None
        ]
        if not variants:
            return None, no_rank
        no_rank = (len(category_rank), 0, name.lower(), obj["id"])
        memberships = [
            (c["id"], c.get("ordinal") or 0)
            for c in item.get("categories") or []
            if c.get("id") in category_rank
        ]
        if not memberships and item.get("category_id") in category_rank:
            memberships = [(item["category_id"], 0)]
        sort_key = no_rank
        if memberships:
            first, ordinal = min(memberships, key=lambda m: (category_rank[m[0]], m[1]))
            sort_key = (category_rank[first], ordinal, name.lower(), obj["id"])
        food = item.get("food_and_beverage_details") or {}
        calories = food.get("calorie_count")
        product = Product(
            id=obj["id"],
            pos_id=obj["id"],
            name=name,
            description=item.get("description_plaintext") or item.get("description") or None,
            category_ids=[category for category, _ in memberships],
            variants=variants,
            modifier_group_ids=self._item_groups(obj["id"], item),
            tax_id=self._item_tax(item),
            image_url=self._image(item.get("image_ids")),
            allergens=Allergens(
                contains=[
                    _INGREDIENTS[i["standard_name"]]
                    for i in food.get("ingredients") or []
                    if i.get("standard_name") in _INGREDIENTS
                ]
            ),
            tags=[
                _DIETARY[p["standard_name"]]
                for p in food.get("dietary_preferences") or []
                if p.get("standard_name") in _DIETARY
            ],
            nutrition=None if calories is None else Nutrition(energy_kcal=int(calories)),
        )
        return product, sort_key

    def _variant(self, obj: JSONDict, item_name: str) -> Variant | None:
        """A variation as a variant, or None when absent here or priced at the till.

        ``VARIABLE_PRICING`` variations (and fixed ones without a price) are skipped: their price
        is typed in at the register, so a channel has nothing to show or charge.
        """
        data: JSONDict = obj.get("item_variation_data") or {}  # an ITEM_VARIATION
        if not self._present(obj) or data.get("sellable") is False:
            return None
        override = self._override(data)
        pricing = override.get("pricing_type") or data.get("pricing_type") or "FIXED_PRICING"
        money = override.get("price_money") or data.get("price_money")
        if pricing == "VARIABLE_PRICING" or money is None or money.get("amount") is None:
            return None
        return Variant(
            id=obj["id"],
            pos_id=obj["id"],
            name=self._variant_name(data) or data.get("name") or item_name,
            prices={PRICE_LIST_ID: int(money["amount"])},
            availability=_sold_out(override),
        )

    def _variant_name(self, data: JSONDict) -> str | None:
        names = []
        for value in data.get("item_option_values") or []:
            found = self.catalog.by_id.get(value.get("item_option_value_id") or "")
            if found is not None and _data(found).get("name"):
                names.append(_data(found)["name"])
        return ", ".join(names) or None

    # --- modifier groups ------------------------------------------------------------------

    def _item_groups(self, item_id: str, item: JSONDict) -> list[str]:
        infos = item.get("modifier_list_info") or []
        if len(infos) > 1:
            infos = sorted(infos, key=lambda i: i.get("ordinal") or 0)
        group_ids: list[str] = []
        for info in infos:
            if info.get("enabled") is False:
                continue
            group_id = self._group(info)
            if group_id is not None and group_id not in group_ids:
                group_ids.append(group_id)
        return group_ids

    def _group(self, info: JSONDict) -> str | None:
        """The id of the universal group for the list ``info`` names, as ``info`` applies it,
        made on first use; None for a list that is not here, is text, or has no modifiers here.

        Many items share a list, mostly on the same terms: the answer is remembered per list
        and per the parts of ``info`` that shape the group.
        """
        list_id = info["modifier_list_id"]
        key = (list_id, _info_key(info))
        if key in self._group_of:
            return self._group_of[key]
        shape = self._list_shape(list_id)
        group_id = None
        if shape is not None:
            mlist, modifiers, base = shape
            data = _data(mlist)
            rule = _GroupRule.of(data, info, modifiers)
            group_id = str(list_id) + rule.suffix_against(base)
            if group_id not in self.groups:
                self.groups[group_id] = ModifierGroup(
                    id=group_id,
                    pos_id=list_id,
                    name=data.get("name") or list_id,
                    min=rule.min,
                    max=rule.max,
                    options=[self._option(m, rule) for m in modifiers],
                )
        self._group_of[key] = group_id
        return group_id

    def _list_shape(self, list_id: str) -> _ListShape | None:
        """A modifier list present here, its modifiers present here and its own rule; None when
        it cannot be a group (absent, text, or no modifiers here). Worked out once per list."""
        if list_id not in self._shapes:
            self._shapes[list_id] = self._work_out_shape(list_id)
        return self._shapes[list_id]

    def _work_out_shape(self, list_id: str) -> _ListShape | None:
        mlist = self.catalog.by_id.get(list_id)
        if mlist is None or mlist["type"] != "MODIFIER_LIST" or not self._present(mlist):
            return None
        data = _data(mlist)
        if data.get("modifier_type") == "TEXT":
            return None
        modifiers = [
            m
            for m in self.catalog.children("MODIFIER", "modifier_list_id", list_id)
            if self._present(m)
        ]
        if not modifiers:
            return None
        return mlist, modifiers, _GroupRule.of(data, {}, modifiers)

    def _option(self, obj: JSONDict, rule: _GroupRule) -> ModifierOption:
        data: JSONDict = obj.get("modifier_data") or {}  # a MODIFIER
        override = self._override(data)
        money = override.get("price_money") or data.get("price_money") or {}
        max_quantity = (rule.max or UNLIMITED_MODIFIER_QUANTITY) if rule.allow_quantities else 1
        return ModifierOption(
            id=obj["id"],
            pos_id=obj["id"],
            name=data.get("name") or obj["id"],
            prices={PRICE_LIST_ID: int(money.get("amount") or 0)},
            max_quantity=max_quantity,
            default=obj["id"] in rule.defaults,
            availability=_sold_out(override),
            image_url=self._image([data["image_id"]] if data.get("image_id") else None),
        )


class _GroupRule:
    """The effective selection rule of a modifier list on one item."""

    def __init__(
        self, min_: int, max_: int | None, allow_quantities: bool, defaults: frozenset[str]
    ) -> None:
        self.min = min_
        self.max = max_
        self.allow_quantities = allow_quantities
        self.defaults = defaults

    @classmethod
    def of(cls, data: JSONDict, info: JSONDict, modifiers: list[JSONDict]) -> _GroupRule:
        """The rule of list ``data`` as item ``info`` applies it (``{}``: the list as it is)."""
        min_, max_ = selection_limits(data, info)
        toggle = info.get("allow_quantities")
        allow = toggle == "YES" if toggle in ("YES", "NO") else bool(data.get("allow_quantities"))
        overrides = {o["modifier_id"]: o for o in info.get("modifier_overrides") or []}
        defaults = frozenset(
            m["id"] for m in modifiers if _on_by_default(_data(m), overrides.get(m["id"]))
        )
        return cls(min_, max_, allow, defaults)

    def suffix_against(self, base: _GroupRule) -> str:
        """The group id suffix that tells this rule from the list's own (empty when equal)."""
        suffix = ""
        if (self.min, self.max) != (base.min, base.max):
            suffix += f"@{self.min}-{self.max or 0}"
        if self.allow_quantities != base.allow_quantities:
            suffix += "~q" if self.allow_quantities else "~1"
        if self.defaults != base.defaults:
            digest = hashlib.sha256(",".join(sorted(self.defaults)).encode()).hexdigest()
            suffix += f"~d{digest[:8]}"
        return suffix


def selection_limits(list_data: JSONDict, info: JSONDict) -> tuple[int, int | None]:
    """``(min, max)`` selections of a modifier list on an item; max None means no limit.

    Square's rules (``CatalogItemModifierListInfo`` / ``CatalogModifierList``): ``-1`` on the item
    means "not set": both -1 (or absent) uses the list's values, one -1 takes the list's value for
    that side. On the list, ``-1`` (or absent) min means none required, ``0`` or ``-1`` max means
    no limit, anything below ``-1`` is invalid and treated the same way. A list that sets neither
    falls back to its deprecated ``selection_type``: ``SINGLE`` allows at most one.
    """
    list_min = list_data.get("min_selected_modifiers")
    list_max = list_data.get("max_selected_modifiers")
    unset = (None, -1)
    if list_min in unset and list_max in unset:
        own: tuple[int, int | None] = (
            0,
            1 if list_data.get("selection_type") == "SINGLE" else None,
        )
    else:
        own = (max(list_min or 0, 0), list_max if (list_max or 0) > 0 else None)
    item_min = info.get("min_selected_modifiers")
    item_max = info.get("max_selected_modifiers")
    min_ = own[0] if item_min in unset else max(item_min, 0)
    max_ = own[1] if item_max in unset else (item_max if item_max > 0 else None)
    if max_ is not None and min_ > max_:
        min_ = max_
    return min_, max_


def _info_key(info: JSONDict) -> Hashable:
    """What of an item's ``modifier_list_info`` shapes its group (see :class:`_GroupRule`)."""
    overrides = info.get("modifier_overrides")
    return (
        info.get("min_selected_modifiers"),
        info.get("max_selected_modifiers"),
        info.get("allow_quantities"),
        tuple(
            (o.get("modifier_id"), o.get("on_by_default_override"), o.get("on_by_default"))
            for o in overrides
        )
        if overrides
        else (),
    )


def _on_by_default(modifier: JSONDict, override: JSONDict | None) -> bool:
    if override is not None:
        toggle = override.get("on_by_default_override")
        if toggle in ("YES", "NO"):
            return bool(toggle == "YES")
        if override.get("on_by_default") is not None:
            return bool(override["on_by_default"])
    return bool(modifier.get("on_by_default"))


def _sold_out(override: JSONDict) -> Availability:
    """Availability from a location override: 86'd while ``sold_out``, maybe until a time."""
    if not override.get("sold_out"):
        return Availability()
    return Availability(
        available=False,
        unavailable_until=parse_time(override.get("sold_out_valid_until")),
        reason="sold out",
    )


def percentage_to_ppm(percentage: str) -> int:
    """A Square tax ``percentage`` ("8.875") in parts per million (88750), exactly.

    :raises ValueError: for a value that is not a decimal number.
    """
    try:
        value = Decimal(str(percentage).strip())
    except InvalidOperation:
        raise ValueError(f"tax percentage {percentage!r} is not a number") from None
    return int((value * 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp of Square (``...Z`` or with an offset); None stays None."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _latest(objects: Iterable[JSONDict]) -> datetime | None:
    """The latest ``updated_at`` of ``objects``.

    Square writes them all as UTC with a ``Z`` and fixed-width fields; such strings sort as the
    times they name, so only the greatest is parsed. Any other mix is parsed in full.
    """
    stamps: list[str] = [stamp for o in objects if (stamp := o.get("updated_at"))]
    if not stamps:
        return None
    width = len(stamps[0])
    if all(len(stamp) == width and stamp.endswith("Z") for stamp in stamps):
        return parse_time(max(stamps))
    return max(t for stamp in stamps if (t := parse_time(stamp)) is not None)


def rfc3339(value: datetime) -> str:
    """A datetime as Square wants it: UTC, ``Z``, milliseconds."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------
# Status: Square -> universal
# ---------------------------------------------------------------------------------------------


def status_from_fulfillment(state: str) -> OrderStatus:
    """Map a Square ``FulfillmentState`` to the universal status.

    :raises ValueError: for a state this plugin does not know, rather than guessing.
    """
    try:
        return _FULFILLMENT_STATES[state]
    except KeyError:
        raise ValueError(f"unknown Square fulfillment state {state!r}") from None


def status_from_order_state(state: str | None, fulfillment_state: str | None) -> OrderStatus | None:
    """The status of an order from its ``state`` and its pickup fulfillment's state.

    ``CANCELED`` and ``COMPLETED`` orders are final whatever their fulfillment says; an ``OPEN``
    order follows its fulfillment (``ACCEPTED`` when it has none); ``DRAFT`` orders have no status
    to report (None).
    """
    if state == "CANCELED":
        return OrderStatus.CANCELLED
    if state == "COMPLETED":
        return OrderStatus.COMPLETED
    if state == "DRAFT":
        return None
    if fulfillment_state is None:
        return OrderStatus.ACCEPTED
    return status_from_fulfillment(fulfillment_state)


def pickup_state(square_order: JSONDict) -> str | None:
    """The state of the order's PICKUP fulfillment (else of its first one), if it has one."""
    fulfillments = square_order.get("fulfillments") or []
    chosen = next((f for f in fulfillments if f.get("type") == "PICKUP"), None)
    if chosen is None and fulfillments:
        chosen = fulfillments[0]
    return None if chosen is None else chosen.get("state")


def status_of_order(square_order: JSONDict) -> OrderStatus | None:
    """The universal status of a Square ``Order`` document (None for a draft)."""
    return status_from_order_state(square_order.get("state"), pickup_state(square_order))


def status_event_from_order(square_order: JSONDict) -> StatusEvent | None:
    """A status event for a Square ``Order`` document (from BatchRetrieveOrders); None for a
    draft. ``pos_event_id`` is the order id and version, so the host can drop repeats."""
    status = status_of_order(square_order)
    if status is None:
        return None
    return StatusEvent(
        order_id=square_order.get("reference_id") or None,
        pos_order_id=square_order["id"],
        status=status,
        occurred_at=parse_time(square_order.get("updated_at")) or datetime.now(UTC),
        source=EVENT_SOURCE,
        pos_event_id=f"{square_order['id']}:v{square_order.get('version', 0)}",
    )

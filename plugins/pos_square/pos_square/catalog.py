"""Square's catalog -> the universal menu of one location (pure: no I/O).

Takes the decoded objects of ListCatalog pages and returns the :class:`Menu`, so the whole
mapping is testable against recorded fixtures and benchmarked without a server
(``bench/menu_translation.py``). Money stays in integer minor units (Square's ``Money.amount``
already is).

How the Square catalog lands in the universal menu of one location:

* an ``ITEM`` becomes a :class:`Product` (id = the Square item id); its ``ITEM_VARIATION``s
  (sizes) become its :class:`Variant`s (id = the Square variation id, which is what an order
  names). A variation's price is the location override's ``price_money`` when the location has
  one, else its own ``price_money``. Variations with ``VARIABLE_PRICING`` (price entered at the
  till) have no price a channel could show and are left out; an item left without variations
  is left out too.

  Whatever is left out for what it is (not for being absent, deleted or unsellable here) goes
  into ``Menu.left_out`` with the reason, which the host's menu report shows: till-priced
  variations (or the item, when none is left), text modifier lists (the item stays: a line's
  note reaches Square as the line item's note), modifiers hidden online, categories hidden
  online (their items stay), and pricing rules in force (automatic discounts; prices stay the
  catalog's, and orders are sent without ``auto_apply_discounts``).
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
  tax whose id joins theirs with ``+`` (past 128 characters: ``+`` and a hash of that) and whose
  rate is their sum (Square applies them all to the same subtotal).
* ``MODIFIER_LIST`` + ``MODIFIER``s -> :class:`ModifierGroup` + :class:`ModifierOption`s. The
  selection rule comes from the item's ``modifier_list_info`` (where ``-1`` means "not set: use
  the list's own value") or the list's ``min/max_selected_modifiers`` (``0`` or ``-1`` max = no
  limit; lists that set neither fall back to the deprecated ``selection_type``: ``SINGLE`` = at
  most one). Since the rule, ``allow_quantities`` and the ``on_by_default`` overrides can differ
  per item, one universal group is emitted per list and distinct rule: the list's own id when the
  item uses the list as it is, else the list id with a suffix (``@min-max``, max ``0`` meaning no
  limit; ``~q``/``~1`` for a different ``allow_quantities``; ``~d<hash>`` for different
  defaults). Option ids are always the Square modifier id, which is what an order names.
  Disabled (``enabled: false``) lists on an item and text modifier lists are left out;
  modifiers hidden online (``hidden_online``, or the item's ``hidden_online_override``) are
  left out of the groups of the items they are hidden on (suffix ``~h<hash>`` where that set
  differs from the list's own).
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

import hashlib
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from pos_square.documents import MAX_INT, parse_time
from pos_square.reused_items import (
    ITEM_TYPES,
    ItemMemo,
    MadeGroup,
    MadeItem,
    PlaceItems,
    SortKey,
)
from posintegrator.documents import QUOTED_VALUE_MAX, error_reason, short_repr
from posintegrator.errors import PermanentError
from posintegrator.hooktypes import SharedMenu
from posintegrator.menus.collector import collector_paused
from posintegrator.model import (
    Allergen,
    Allergens,
    Availability,
    Category,
    DietaryTag,
    LeftOut,
    Menu,
    ModifierGroup,
    ModifierOption,
    Nutrition,
    PriceList,
    Product,
    Tax,
    Variant,
)
from posintegrator.settings import error_path

JSONDict = dict[str, Any]

#: The one universal price list of a Square menu.
PRICE_LIST_ID = "square"
#: The catalog object types a menu needs from ListCatalog (variations, modifiers and option
#: values come nested in their item, list and option).
MENU_OBJECT_TYPES = (
    "ITEM",
    "CATEGORY",
    "TAX",
    "MODIFIER_LIST",
    "IMAGE",
    "ITEM_OPTION",
    "PRICING_RULE",
    "DISCOUNT",
)
#: Per-option cap when a list allows quantities without a total limit.
UNLIMITED_MODIFIER_QUANTITY = 99
#: The longest catalog object id read: longer than any Square id, and short enough for the
#: suffixes a modifier group's id may get (``@<min>-<max>~q~d<hash>``) under the model's 200.
ID_MAX = 128
#: A tax rate of 100 %, in parts per million.
PPM_MAX = 1_000_000
#: Items a text modifier list's entry of ``Menu.left_out`` names (the count says how many more).
TEXT_LIST_ITEMS_NAMED = 5
#: The longest name and reason a ``Menu.left_out`` entry takes (the model's limits).
LEFT_OUT_NAME_MAX = 500
LEFT_OUT_REASON_MAX = 1000

# Why things are left out of the menu, as the menu report says (see ``Menu.left_out``).
TILL_PRICED = (
    "priced at the till (VARIABLE_PRICING): Square takes its price when it is sold, so there "
    "is no price a channel could show or charge"
)
NO_PRICE = "no price here (fixed pricing without a price_money)"
TEXT_LIST_REASON = (
    "the universal menu has no free-text field, so channels do not ask for it; a note the "
    "customer gives the line reaches Square as the line item's note"
)
PRICING_RULE_REASON = (
    "the universal menu has no automatic discounts, and orders are sent to Square without "
    "auto_apply_discounts, so channels show and charge the prices without it"
)
HIDDEN_CATEGORY = "hidden from Square Online (online_visibility false); its items stay"
HIDDEN_MODIFIER = (
    "hidden from online ordering in Square (hidden_online, or an item's "
    "hidden_online_override): left out of the items it is hidden on"
)

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


def present_at(obj: JSONDict, square_location_id: str) -> bool:
    """Whether a catalog object exists (not deleted) and is present at the Square location.

    :raises ValueError: for location id lists that are not lists.
    """
    if obj.get("is_deleted"):
        return False
    absent = obj.get("absent_at_location_ids")
    if absent and square_location_id in _list(obj, "absent_at_location_ids", obj):
        return False
    if obj.get("present_at_all_locations") is False:
        return square_location_id in _list(obj, "present_at_location_ids", obj)
    return True


# --- reading catalog objects -----------------------------------------------------------------
# Square's catalog is read as decoded JSON, without a schema pass (pydantic over every object
# would double the cost of a large menu sync). Where a value of the wrong type would break the
# translation itself (a container read, a dictionary key, a sort key, a time or a number to
# parse) the readers below check it as it is read; a value that goes straight into a universal
# model field is left to the model, whose refusal is reported for the catalog object being
# translated (:func:`_invalid`). Either way the error names the object and the field.


class CatalogError(ValueError):
    """A catalog object the translation cannot read; the message names it, the field and why."""


def _describe(owner: JSONDict) -> str:
    """The catalog object ``owner`` by type and id (``catalog`` for the list of objects)."""
    if not isinstance(owner.get("id"), str):
        return "catalog"
    kind = owner.get("type")
    shown = kind if isinstance(kind, str) and len(kind) <= QUOTED_VALUE_MAX else "object"
    return f"{shown} {_quote(owner['id'])}"


def _quote(value: Any) -> str:
    """``value`` as a message quotes it: a string or a number shortened, else its type."""
    if isinstance(value, str):
        shown = repr(value[: QUOTED_VALUE_MAX + 1])
        return shown if len(value) <= QUOTED_VALUE_MAX else f"{shown[:-2]}...'"
    return short_repr(value) or type(value).__name__


def _refuse(owner: JSONDict, field: str, expected: str, value: Any) -> CatalogError:
    return CatalogError(f"{_describe(owner)}: {field}: expected {expected}, got {_quote(value)}")


# The readers test ``type(value) is ...`` first: decoded JSON holds exactly these types, and
# a large catalog is read through them a few hundred thousand times.


def _object(container: JSONDict, key: str, owner: JSONDict) -> JSONDict:
    """``container[key]``, an object (``{}`` when absent or null)."""
    value = container.get(key)
    if type(value) is dict:
        return value
    if value is None:
        return {}
    raise _refuse(owner, key, "an object", value)


def _list(container: JSONDict, key: str, owner: JSONDict) -> list[Any]:
    """``container[key]``, a list (``[]`` when absent or null)."""
    value = container.get(key)
    if type(value) is list:
        return value
    if value is None:
        return []
    raise _refuse(owner, key, "a list", value)


def _objects(container: JSONDict, key: str, owner: JSONDict) -> list[JSONDict]:
    """``container[key]``, a list of objects (``[]`` when absent or null)."""
    values = container.get(key)
    if values is None:
        return []
    if type(values) is not list:
        raise _refuse(owner, key, "a list", values)
    for index, value in enumerate(values):
        if type(value) is not dict:
            raise _refuse(owner, f"{key}[{index}]", "an object", value)
    return values


def _ids(container: JSONDict, key: str, owner: JSONDict) -> list[str]:
    """``container[key]``, a list of ids (``[]`` when absent or null)."""
    values = _list(container, key, owner)
    for index, value in enumerate(values):
        if type(value) is not str:
            raise _refuse(owner, f"{key}[{index}]", "an id", value)
    return values


def _text(container: JSONDict, key: str, owner: JSONDict) -> str | None:
    """``container[key]``, a string or None."""
    value = container.get(key)
    if value is None or type(value) is str:
        return value
    raise _refuse(owner, key, "a string", value)


def _int(container: JSONDict, key: str, owner: JSONDict, minimum: int = -MAX_INT - 1) -> int | None:
    """``container[key]``, a whole number from ``minimum`` to :data:`MAX_INT`, or None."""
    value = container.get(key)
    if value is None or (type(value) is int and minimum <= value <= MAX_INT):
        return value
    expected = "a whole number" if minimum < 0 else "a whole number of at least 0"
    raise _refuse(owner, key, expected, value)


def _invalid(owner: JSONDict, exc: ValidationError) -> CatalogError:
    """The error for catalog object ``owner``, whose universal counterpart refused a value
    (the field is the model's: ``name``, ``variants[0].prices.square``)."""
    error = exc.errors(include_url=False)[0]
    return CatalogError(
        f"{_describe(owner)}: {error_path(tuple(error['loc']))}: {error_reason(error)}"
    )


def _hashable(container: JSONDict, key: str, owner: JSONDict) -> Hashable:
    """``container[key]`` when it is a scalar (a dictionary key), else refused."""
    value = container.get(key)
    if type(value) is list or type(value) is dict:
        raise _refuse(owner, key, "a single value", value)
    return value


#: A modifier list as a group: the list, its modifiers present at the location, its own rule.
_ListShape = tuple[JSONDict, list[JSONDict], "_GroupRule"]


class _Catalog:
    """The catalog objects indexed by id and type, nested children flattened in."""

    def __init__(self, objects: Iterable[Any]) -> None:
        self.by_id: dict[str, JSONDict] = {}
        self.by_type: dict[str, list[JSONDict]] = {}
        self._children: dict[tuple[str, str], dict[Any, list[JSONDict]]] = {}
        for index, obj in enumerate(objects):
            self._add(obj, index)

    def _add(self, top: Any, top_index: int) -> None:
        """Index the top-level object ``top`` and the objects nested in it, without recursion
        (how deep objects nest is Square's to choose)."""
        nested: list[tuple[list[Any], JSONDict]] = []
        self._index(top, {}, top_index, nested)
        while nested:
            children, parent = nested.pop()
            for index, child in enumerate(children):
                self._index(child, parent, index, nested)

    def _index(
        self, obj: Any, parent: JSONDict, index: int, nested: list[tuple[list[Any], JSONDict]]
    ) -> None:
        """Index one object; queue its nested objects on ``nested``.

        :param parent: the object ``obj`` is nested in (``{}`` for none) and ``index`` its
            place there: they name a malformed object in the error.
        """
        object_id = obj.get("id") if type(obj) is dict else None
        if type(object_id) is not str:
            raise _refuse(parent, _place(parent, index), "a catalog object with an id", obj)
        if object_id in self.by_id:
            return
        kind = obj.get("type")
        if type(kind) is not str or not object_id.strip() or len(object_id) > ID_MAX:
            if type(kind) is not str:
                raise _refuse(obj, "type", "a catalog object type", kind)
            raise _refuse(obj, "id", f"an id of 1 to {ID_MAX} characters", object_id)
        self.by_id[object_id] = obj
        self.by_type.setdefault(kind, []).append(obj)
        data_field = _DATA_FIELDS.get(kind)
        if data_field is None:
            return
        data = obj.get(data_field)
        if type(data) is not dict:
            if data is not None:
                raise _refuse(obj, data_field, "an object", data)
            return
        children_field = _NESTED.get(kind)
        if children_field is not None and (children := data.get(children_field)):
            if type(children) is not list:
                raise _refuse(obj, children_field, "a list", children)
            nested.append((children, obj))

    def of_type(self, kind: str) -> list[JSONDict]:
        return self.by_type.get(kind, [])

    @cached_property
    def latest_update(self) -> datetime | None:
        """The latest ``updated_at`` of any object: worked out once for every menu made from
        this catalog."""
        return _latest(self.by_id.values())

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
                parent = _data(obj).get(parent_field)
                if parent is not None and type(parent) is not str:
                    raise _refuse(obj, parent_field, "an id", parent)
                index.setdefault(parent, []).append(obj)
            for siblings in index.values():
                if len(siblings) > 1:
                    siblings.sort(key=_by_ordinal)
            self._children[key] = index
        return index.get(parent_id, [])


#: Where objects of a type carry others inline (an item its variations, ...), in their data.
_NESTED = {"ITEM": "variations", "MODIFIER_LIST": "modifiers", "ITEM_OPTION": "values"}


def _place(parent: JSONDict, index: int) -> str:
    """Where the ``index``-th object nested in ``parent`` is (in the list of objects for
    ``{}``)."""
    if not parent:
        return f"objects[{index}]"
    kind = parent["type"]
    return f"{_DATA_FIELDS[kind]}.{_NESTED[kind]}[{index}]"


def _by_ordinal(obj: JSONDict) -> tuple[int, str]:
    """Sort key of sibling objects: Square's ``ordinal``, then the id."""
    ordinal = _data(obj).get("ordinal") or 0
    if type(ordinal) is not int:
        raise _refuse(obj, "ordinal", "a whole number", ordinal)
    return (ordinal, obj["id"])


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
    "PRICING_RULE": "pricing_rule_data",
    "DISCOUNT": "discount_data",
}


def _data(obj: JSONDict) -> JSONDict:
    """The type-specific ``*_data`` of a catalog object (empty for types we do not read);
    checked to be an object when the catalog was indexed."""
    field = _DATA_FIELDS.get(obj["type"])
    return (obj.get(field) or {}) if field else {}


def catalog_page(page: Any) -> tuple[list[Any], str | None]:
    """The ``objects`` and the ``cursor`` (None on the last page) of a ListCatalog answer.

    :raises PermanentError: for objects that are not a list or a cursor that is not a string.
    """
    if not isinstance(page, dict):
        raise PermanentError("unreadable Square ListCatalog page: expected a JSON object")
    objects, cursor = page.get("objects") or [], page.get("cursor") or None
    if not isinstance(objects, list):
        raise PermanentError("unreadable Square ListCatalog page: objects: expected a list")
    if cursor is not None and not isinstance(cursor, str):
        raise PermanentError("unreadable Square ListCatalog page: cursor: expected a string")
    return objects, cursor


def currency_and_timezone(location: Any) -> tuple[str, str]:
    """The ``currency`` and ``timezone`` (UTC when it has none) of a Square ``Location``.

    :raises PermanentError: for a location without a currency, or with one or a time zone
        that is not a string.
    """
    if not isinstance(location, dict):
        raise PermanentError("unreadable Square location: expected a JSON object")
    currency, timezone = location.get("currency"), location.get("timezone") or "UTC"
    where = f"unreadable Square location {_quote(location.get('id'))}"
    if not isinstance(currency, str):
        raise PermanentError(f"{where}: currency: expected a currency code")
    if not isinstance(timezone, str):
        raise PermanentError(f"{where}: timezone: expected a time zone name")
    return currency, timezone


def menu_from_catalog(
    objects: list[Any],
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
    :raises PermanentError: for a catalog the translation cannot read (an object or a field
        of the wrong type, a tax rate that is not a percentage), naming the catalog object,
        the field and the reason; or for a location whose currency or time zone the menu
        cannot take. Square answered, so retrying will not help until the catalog is fixed;
        the last published menu stays live meanwhile.
    """
    try:
        with collector_paused():
            catalog = _Catalog(objects)
            return _menu(catalog, location, square_location_id, currency, timezone, None)[0]
    except (CatalogError, ValidationError) as exc:
        raise _unreadable(location, exc) from None


def _unreadable(location: str, exc: CatalogError | ValidationError) -> PermanentError:
    """The error for a catalog the menu of ``location`` could not be made from."""
    what = f"unreadable Square catalog for location {location!r}"
    if isinstance(exc, CatalogError):
        return PermanentError(f"{what}: {exc}")
    error = exc.errors(include_url=False)[0]  # a value the checks let through: still named
    problem = f"{error_path(tuple(error['loc'])) or exc.title}: {error_reason(error)}"
    return PermanentError(f"{what}: the menu it makes is invalid: {problem}")


@dataclass(frozen=True)
class Place:
    """One of our locations as Square knows it: where a menu is derived for."""

    location: str
    square_location_id: str
    currency: str
    timezone: str


def menus_from_catalog(
    objects: list[Any], places: list[Place], memo: ItemMemo | None = None
) -> list[SharedMenu]:
    """Translate one read of the catalog into the menus of several locations.

    The catalog is indexed once. A Square location that no object names (in its presence
    lists or its location overrides) sees the catalog exactly as every other such location
    does: those with the same currency and time zone share one translated menu. Each location
    an object does name gets its own. The objects are taken in a fixed order (by type and id),
    so the menus do not depend on the order Square listed them in, or on whether they came
    from a full read or a kept catalog with changes applied.

    :param memo: what the last translation of this catalog made (updated when this one
        succeeds): products of items whose objects did not change are reused
        (:mod:`pos_square.reused_items`).
    :raises PermanentError: as :func:`menu_from_catalog`, naming the first location of the
        menu that could not be made.
    """
    ordered = sorted(
        objects,
        key=lambda o: (str(o.get("type")), str(o.get("id"))) if type(o) is dict else ("", ""),
    )
    groups: dict[tuple[str, str, str], list[Place]] = {}
    try:
        with collector_paused():
            catalog = _Catalog(ordered)
            named = _named_locations(catalog)
            for place in places:
                square = place.square_location_id
                key = (square if square in named else "", place.currency, place.timezone)
                groups.setdefault(key, []).append(place)
            context = tuple(o for o in catalog.by_id.values() if o["type"] not in ITEM_TYPES)
            made: dict[Hashable, PlaceItems] = {}
            menus = []
            builders = []
            for key, members in groups.items():
                first = members[0]
                earlier = memo.places.get(key) if memo is not None else None
                menu, builder = _menu(
                    catalog,
                    first.location,
                    key[0] or first.square_location_id,
                    first.currency,
                    first.timezone,
                    earlier.reusable_with(context) if earlier is not None else None,
                )
                made[key] = PlaceItems(context, builder.made, builder.groups_made)
                menus.append(SharedMenu([p.location for p in members], menu))
                builders.append(builder)
            if memo is not None:
                memo.places = made
                memo.last = LastTranslation(
                    {o["id"]: o for o in ordered},
                    catalog,
                    list(places),
                    menus,
                    builders,
                    _one_day(builders),
                )
            return menus
    except (CatalogError, ValidationError) as exc:
        raise _unreadable(places[0].location, exc) from None


@dataclass
class LastTranslation:
    """A translation as :func:`menus_from_catalog` left it, for a patch of its menus when only
    some items change (:mod:`pos_square.menu_patches`).

    :param tops: the top-level objects translated, by id.
    :param catalog: their index.
    :param places: the places translated for.
    :param menus: the menus made, one per set of places the catalog treats alike.
    :param builders: the builder of each menu (what it made of each item).
    :param made_on: the UTC day it was made for (a pricing rule's end date is read against
        it; "" when that day changed while it was made).
    """

    tops: dict[str, JSONDict]
    catalog: _Catalog
    places: list[Place]
    menus: list[SharedMenu]
    builders: list[_MenuBuilder]
    made_on: str


def _one_day(builders: list[_MenuBuilder]) -> str:
    """The day every menu was made for; "" if they were not made for one day."""
    days = {b.today for b in builders}
    return days.pop() if len(days) == 1 else ""


def _named_locations(catalog: _Catalog) -> set[Any]:
    """Every Square location id an object names: in its presence lists or its overrides."""
    named: set[Any] = set()
    for obj in catalog.by_id.values():
        add_named_locations(obj, named)
    return named


def add_named_locations(obj: JSONDict, named: set[Any]) -> None:
    """Add to ``named`` the Square location ids one catalog object (with a ``type``) names."""
    for key in ("present_at_location_ids", "absent_at_location_ids"):
        ids = obj.get(key)
        if ids:
            named.update(i for i in _list(obj, key, obj) if type(i) is str)
    field = _DATA_FIELDS.get(obj["type"])
    data = obj.get(field) if field else None
    if type(data) is dict and data.get("location_overrides"):
        for override in _objects(data, "location_overrides", obj):
            named.add(_hashable(override, "location_id", obj))


def _menu(
    catalog: _Catalog,
    location: str,
    square_location_id: str,
    currency: str,
    timezone: str,
    earlier: PlaceItems | None,
) -> tuple[Menu, _MenuBuilder]:
    """The menu of one location, and its builder (what it made of each item and group, for the
    next translation).

    :param earlier: what the last translation made here, when it may be reused
        (:mod:`pos_square.reused_items`).
    """
    builder = _MenuBuilder(catalog, square_location_id, earlier)
    categories = builder.categories()
    products = builder.products({c.id: n for n, c in enumerate(categories)})
    left_out = builder.left_out + builder.text_lists_left_out() + builder.pricing_rules_left_out()
    menu = Menu(
        location=location,
        currency=currency,
        timezone=timezone or "UTC",
        price_lists=[PriceList(id=PRICE_LIST_ID, name="Square")],
        tax_rounding="half_even",
        taxes=list(builder.taxes.values()),
        categories=categories,
        products=products,
        modifier_groups=list(builder.groups.values()),
        source_updated_at=catalog.latest_update,
        left_out=left_out,
    )
    return menu, builder


class _MenuBuilder:
    """Builds the menu of one location; collects taxes and modifier groups as items use them."""

    def __init__(
        self, catalog: _Catalog, square_location_id: str, earlier: PlaceItems | None
    ) -> None:
        self.catalog = catalog
        self.loc = square_location_id
        self.earlier = earlier.items if earlier is not None else {}
        self.earlier_groups = earlier.groups if earlier is not None else {}
        self.made: dict[str, MadeItem] = {}
        """What was made of each item present here (for the next translation)."""
        self.groups_made: dict[Hashable, MadeGroup] = {}
        """What was made of each modifier list as items apply it (for the next translation)."""
        self.images: dict[str, str | None] = {}
        for image in catalog.of_type("IMAGE"):
            if not image.get("is_deleted"):
                self.images[image["id"]] = _text(_data(image), "url", image)
        self.taxes: dict[str, Tax] = {}
        for obj in catalog.of_type("TAX"):
            try:
                tax = self._tax(obj)
            except ValidationError as exc:
                raise _invalid(obj, exc) from None
            if tax is not None:
                self.taxes[tax.id] = tax
        self.groups: dict[str, ModifierGroup] = {}
        self._group_of: dict[tuple[str, Hashable], str | None] = {}
        self._shapes: dict[str, _ListShape | None] = {}
        self.left_out: list[LeftOut] = []
        """What the translation left out and why (see :attr:`Menu.left_out`)."""
        self._unpriced: list[tuple[JSONDict, str]] = []
        self._text_lists: dict[str, list[str]] = {}
        self._hidden_reported: set[str] = set()
        self.today = datetime.now(UTC).date().isoformat()
        """The UTC day the menu is made for (pricing rules end on a day)."""

    def _present(self, obj: JSONDict | None) -> bool:
        return obj is not None and present_at(obj, self.loc)

    def _override(self, data: JSONDict, owner: JSONDict) -> JSONDict:
        """The ``location_overrides`` entry of this location (``{}`` when there is none)."""
        if not data.get("location_overrides"):
            return {}
        for override in _objects(data, "location_overrides", owner):
            if override.get("location_id") == self.loc:
                return override
        return {}

    def _image(self, image_ids: list[str]) -> str | None:
        for image_id in image_ids:
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
        try:
            rate_ppm = percentage_to_ppm(percentage)
        except ValueError as exc:
            raise CatalogError(f"{_describe(obj)}: percentage: {exc}") from None
        return Tax(
            id=obj["id"],
            pos_id=obj["id"],
            name=data.get("name") or obj["id"],
            rate_ppm=rate_ppm,
            inclusive=data.get("inclusion_type") == "INCLUSIVE",
        )

    def _item_tax(self, obj: JSONDict, item: JSONDict) -> str | None:
        if item.get("is_taxable") is False:
            return None
        taxes = [self.taxes[t] for t in _ids(item, "tax_ids", obj) if t in self.taxes]
        if not taxes:
            return None
        if len(taxes) == 1:
            return taxes[0].id
        taxes.sort(key=lambda t: t.id)
        combined_id = "+".join(t.id for t in taxes)
        if len(combined_id) > ID_MAX:  # many taxes: an id of their ids, short enough
            combined_id = "+" + hashlib.sha256(combined_id.encode()).hexdigest()[:32]
        if combined_id not in self.taxes:
            rate_ppm = sum(t.rate_ppm for t in taxes)
            if rate_ppm > PPM_MAX:
                raise CatalogError(f"{_describe(obj)}: tax_ids: its taxes add up to over 100 %")
            self.taxes[combined_id] = Tax(
                id=combined_id,
                pos_id=",".join(t.id for t in taxes),
                name=" + ".join(t.name for t in taxes),
                rate_ppm=rate_ppm,
                inclusive=all(t.inclusive for t in taxes),
            )
        return combined_id

    # --- categories -----------------------------------------------------------------------

    def categories(self) -> list[Category]:
        present = []
        for obj in self.catalog.of_type("CATEGORY"):
            if not self._present(obj):
                continue
            if _data(obj).get("online_visibility") is False:
                self._leave_out(obj, "category", _text(_data(obj), "name", obj), HIDDEN_CATEGORY)
                continue
            present.append(obj)
        ids = {o["id"] for o in present}
        result = []
        named = [(_text(_data(o), "name", o) or "", o) for o in present]
        for name, obj in sorted(named, key=lambda pair: (pair[0].lower(), pair[1]["id"])):
            data = _data(obj)
            parent = _object(data, "parent_category", obj)
            parent_id = _hashable(parent, "id", obj)
            parent_id = parent_id if parent_id in ids else None
            try:
                category = Category(
                    id=obj["id"],
                    pos_id=obj["id"],
                    name=name or obj["id"],
                    parent_id=parent_id,
                    sort=(parent.get("ordinal") or 0) if parent_id else 0,
                    image_url=self._image(_ids(data, "image_ids", obj)),
                )
            except ValidationError as exc:
                raise _invalid(obj, exc) from None
            result.append(category)
        return result

    # --- products -------------------------------------------------------------------------

    def products(self, category_rank: Mapping[str, int]) -> list[Product]:
        ranked: list[tuple[SortKey, Product]] = []
        for obj in self.catalog.of_type("ITEM"):
            try:
                product, sort_key = self._product(obj, category_rank)
            except ValidationError as exc:
                raise _invalid(obj, exc) from None
            if product is not None:
                ranked.append((sort_key, product))
        ranked.sort(key=lambda pair: pair[0])
        return [product for _, product in ranked]

    def _product(
        self, obj: JSONDict, category_rank: Mapping[str, int]
    ) -> tuple[Product | None, SortKey]:
        item: JSONDict = obj.get("item_data") or {}  # an ITEM
        name = _text(item, "name", obj) or obj["id"]
        no_rank = (len(category_rank), 0, "", obj["id"])
        if not self._present(obj) or item.get("is_archived"):
            return None, no_rank
        variations = self.catalog.children("ITEM_VARIATION", "item_id", obj["id"])
        earlier = self.earlier.get(obj["id"])
        if earlier is not None and earlier.made_from(obj, variations):
            return self._again(earlier, obj, item)
        variants, unpriced = self.variants_of(obj, name, variations)
        if not variants:
            self._remember(obj, variations, None, no_rank, unpriced)
            return None, no_rank
        no_rank = (len(category_rank), 0, name.lower(), obj["id"])
        memberships = [
            (c["id"], _int(c, "ordinal", obj) or 0)
            for c in _objects(item, "categories", obj)
            if _hashable(c, "id", obj) in category_rank
        ]
        if not memberships and _hashable(item, "category_id", obj) in category_rank:
            memberships = [(item["category_id"], 0)]
        sort_key = no_rank
        if memberships:
            first, ordinal = min(memberships, key=lambda m: (category_rank[m[0]], m[1]))
            sort_key = (category_rank[first], ordinal, name.lower(), obj["id"])
        food = _object(item, "food_and_beverage_details", obj)
        calories = food.get("calorie_count")
        ingredients = _objects(food, "ingredients", obj) if food else []
        preferences = _objects(food, "dietary_preferences", obj) if food else []
        product = Product(
            id=obj["id"],
            pos_id=obj["id"],
            name=name,
            description=item.get("description_plaintext") or item.get("description") or None,
            category_ids=[category for category, _ in memberships],
            variants=variants,
            modifier_group_ids=self._item_groups(obj, item),
            tax_id=self._item_tax(obj, item),
            image_url=self._image(_ids(item, "image_ids", obj)),
            allergens=Allergens(
                contains=[
                    _INGREDIENTS[standard]
                    for i in ingredients
                    if (standard := _hashable(i, "standard_name", obj)) in _INGREDIENTS
                ]
            ),
            tags=[
                _DIETARY[standard]
                for p in preferences
                if (standard := _hashable(p, "standard_name", obj)) in _DIETARY
            ],
            nutrition=None if calories is None else Nutrition(energy_kcal=calories),
        )
        self._remember(obj, variations, product, sort_key, unpriced)
        return product, sort_key

    def _again(
        self, earlier: MadeItem, obj: JSONDict, item: JSONDict
    ) -> tuple[Product | None, SortKey]:
        """The product made last time, with what making it did to the rest of the menu done
        again, in the same order: what it left out, the groups it uses (made on first use,
        hidden modifiers reported), the text lists it asks for, its taxes."""
        self.left_out.extend(earlier.unpriced)
        if earlier.product is not None:
            self._item_groups(obj, item)
            self._item_tax(obj, item)
        self.made[obj["id"]] = earlier
        return earlier.product, earlier.sort_key

    def _remember(
        self,
        obj: JSONDict,
        variations: list[JSONDict],
        product: Product | None,
        sort_key: SortKey,
        unpriced: tuple[LeftOut, ...],
    ) -> None:
        made = MadeItem(obj, tuple(variations), product, sort_key, unpriced)
        self.made[obj["id"]] = made

    def variants_of(
        self, item: JSONDict, name: str, variations: list[JSONDict]
    ) -> tuple[list[Variant], tuple[LeftOut, ...]]:
        """The variants of item ``item`` (its product named ``name``) made from
        ``variations``, and what it leaves out for those without a price (also added to
        :attr:`left_out`)."""
        variants = [
            variant
            for variation in variations
            if (variant := self._variant(variation, name)) is not None
        ]
        reported = len(self.left_out)
        if self._unpriced:
            self._report_unpriced(item, name, whole_item=not variants)
        return variants, tuple(self.left_out[reported:])

    def variants_again(
        self, item: JSONDict, name: str, variations: list[JSONDict]
    ) -> tuple[list[Variant], tuple[LeftOut, ...]]:
        """:meth:`variants_of` for a menu already made: nothing of it is added to the menu."""
        reported = len(self.left_out)
        try:
            return self.variants_of(item, name, variations)
        finally:
            self._unpriced.clear()  # (an error may leave some: the next call starts clean)
            del self.left_out[reported:]

    def _variant(self, obj: JSONDict, item_name: str) -> Variant | None:
        """A variation as a variant, or None when absent here or priced at the till.

        ``VARIABLE_PRICING`` variations (and fixed ones without a price) are skipped: their price
        is typed in at the register, so a channel has nothing to show or charge.
        """
        data: JSONDict = obj.get("item_variation_data") or {}  # an ITEM_VARIATION
        if not self._present(obj) or data.get("sellable") is False:
            return None
        override = self._override(data, obj)
        pricing = override.get("pricing_type") or data.get("pricing_type") or "FIXED_PRICING"
        money = override.get("price_money") or data.get("price_money") or {}
        if type(money) is not dict:
            raise _refuse(obj, "price_money", "an object", money)
        amount = money.get("amount")
        if pricing == "VARIABLE_PRICING" or amount is None:
            self._unpriced.append((obj, TILL_PRICED if pricing == "VARIABLE_PRICING" else NO_PRICE))
            return None
        try:
            return Variant(
                id=obj["id"],
                pos_id=obj["id"],
                name=self._variant_name(obj, data) or data.get("name") or item_name,
                prices={PRICE_LIST_ID: amount},
                availability=_sold_out(override, obj),
            )
        except ValidationError as exc:
            raise _invalid(obj, exc) from None

    def _report_unpriced(self, item: JSONDict, name: str, *, whole_item: bool) -> None:
        """Leave out the variations :meth:`_variant` found without a price: the item as a
        whole when none of its variations is left, else each of them."""
        if whole_item:
            reasons = sorted({reason for _, reason in self._unpriced})
            self._leave_out(item, "item", name, "; ".join(reasons))
        else:
            for variation, reason in self._unpriced:
                data = _data(variation)
                shown = _text(data, "name", variation)
                self._leave_out(
                    variation, "variation", f"{name}, {shown}" if shown else name, reason
                )
        self._unpriced.clear()

    def _leave_out(self, obj: JSONDict, kind: str, name: str | None, reason: str) -> None:
        self.left_out.append(_left_out(obj, kind, name, reason))

    def text_lists_left_out(self) -> list[LeftOut]:
        """One entry per text modifier list the menu's items use, naming the items."""
        left_out = []
        for list_id, item_names in self._text_lists.items():
            mlist = self.catalog.by_id[list_id]
            data = _data(mlist)
            terms = []
            if data.get("text_required"):
                terms.append("required in Square")
            if (length := _int(data, "max_length", mlist, minimum=0)) is not None:
                terms.append(f"up to {length} characters")
            shown = ", ".join(_quote(n) for n in item_names[:TEXT_LIST_ITEMS_NAMED])
            if len(item_names) > TEXT_LIST_ITEMS_NAMED:
                shown += f" and {len(item_names) - TEXT_LIST_ITEMS_NAMED} more"
            asked = f"free text ({', '.join(terms)})" if terms else "free text"
            reason = f"{asked} asked on {shown}: {TEXT_LIST_REASON}"
            name = _text(data, "name", mlist)
            left_out.append(_left_out(mlist, "text modifier list", name, reason))
        return left_out

    def pricing_rules_left_out(self) -> list[LeftOut]:
        """One entry per pricing rule in force here (an automatic discount) today."""
        today = self.today
        left_out = []
        for rule in self.catalog.of_type("PRICING_RULE"):
            data = _data(rule)
            if not self._present(rule):
                continue
            until = _text(data, "valid_until_date", rule)
            if until is not None and until < today:
                continue  # over
            discount = self.catalog.by_id.get(_text(data, "discount_id", rule) or "")
            what = _discount_terms(discount) if self._present(discount) else "a discount"
            reason = f"{what} Square applies by itself: {PRICING_RULE_REASON}"
            name = _text(data, "name", rule)
            left_out.append(_left_out(rule, "pricing rule", name, reason))
        return left_out

    def _variant_name(self, obj: JSONDict, data: JSONDict) -> str | None:
        if not data.get("item_option_values"):
            return None
        names = []
        for value in _objects(data, "item_option_values", obj):
            found = self.catalog.by_id.get(_text(value, "item_option_value_id", obj) or "")
            if found is not None and (name := _text(_data(found), "name", found)):
                names.append(name)
        return ", ".join(names) or None

    # --- modifier groups ------------------------------------------------------------------

    def _item_groups(self, obj: JSONDict, item: JSONDict) -> list[str]:
        infos = _objects(item, "modifier_list_info", obj)
        if len(infos) > 1:
            infos = sorted(infos, key=lambda i: _int(i, "ordinal", obj) or 0)
        group_ids: list[str] = []
        for info in infos:
            if info.get("enabled") is False:
                continue
            group_id = self._group(obj, info)
            if group_id is None:
                self._note_text_list(obj, info)
            elif group_id not in group_ids:
                group_ids.append(group_id)
        return group_ids

    def _note_text_list(self, item: JSONDict, info: JSONDict) -> None:
        """Remember that ``item`` asks for the text of a text modifier list present here."""
        mlist = self.catalog.by_id.get(info["modifier_list_id"])
        if (
            mlist is not None
            and mlist["type"] == "MODIFIER_LIST"
            and _data(mlist).get("modifier_type") == "TEXT"
            and self._present(mlist)
        ):
            name = _text(_data(item), "name", item) or item["id"]
            self._text_lists.setdefault(mlist["id"], []).append(name)

    def _group(self, obj: JSONDict, info: JSONDict) -> str | None:
        """The id of the universal group for the list ``info`` (of item ``obj``) names, as
        ``info`` applies it, made on first use; None for a list that is not here, is text, or
        has no modifiers here.

        Many items share a list, mostly on the same terms: the answer is remembered per list
        and per the parts of ``info`` that shape the group, and taken from the last translation
        when its context is unchanged (:mod:`pos_square.reused_items`); either way the hidden
        modifiers are reported and the group added on its first use in this menu.
        """
        list_id = _text(info, "modifier_list_id", obj)
        if list_id is None:
            missing = "modifier_list_info: an entry has no modifier_list_id"
            raise CatalogError(f"{_describe(obj)}: {missing}")
        try:
            key = (list_id, _info_key(info))
            if key in self._group_of:
                return self._group_of[key]
        except (TypeError, AttributeError):  # a list where a value belongs, or worse
            raise _check_info(info, obj) from None
        made = self.earlier_groups.get(key)
        if made is None:
            made = self._make_group(obj, info, list_id)
        for modifier_id, left in made.hidden:  # reported once each, in the list's order
            if modifier_id not in self._hidden_reported:
                self._hidden_reported.add(modifier_id)
                self.left_out.append(left)
        if made.group_id is not None and made.group is not None:
            self.groups.setdefault(made.group_id, made.group)
        self._group_of[key] = made.group_id
        self.groups_made[key] = made
        return made.group_id

    def _make_group(self, obj: JSONDict, info: JSONDict, list_id: str) -> MadeGroup:
        """The group for list ``list_id`` as ``info`` (of item ``obj``) applies it, and the
        modifiers it hides; the group is made anew (the menu may already have one by its id)."""
        shape = self._list_shape(list_id)
        if shape is None:
            return MadeGroup(None, None, ())
        mlist, modifiers, base = shape
        data = _data(mlist)
        rule = _GroupRule.of(data, info, modifiers, obj)
        hidden = tuple(
            (m["id"], _left_out(m, "modifier", _text(_data(m), "name", m), HIDDEN_MODIFIER))
            for m in modifiers
            if m["id"] in rule.hidden
        )
        group_id = list_id + rule.suffix_against(base)
        shown = [m for m in modifiers if m["id"] not in rule.hidden]
        if not shown:
            return MadeGroup(None, None, hidden)
        existing = self.groups.get(group_id)
        if existing is not None:
            return MadeGroup(group_id, existing, hidden)
        options = [self._option(m, rule) for m in shown]
        try:
            group = ModifierGroup(
                id=group_id,
                pos_id=list_id,
                name=data.get("name") or list_id,
                min=rule.min,
                max=rule.max,
                options=options,
            )
        except ValidationError as exc:
            raise _invalid(mlist, exc) from None
        return MadeGroup(group_id, group, hidden)

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
        return mlist, modifiers, _GroupRule.of(data, {}, modifiers, mlist)

    def _option(self, obj: JSONDict, rule: _GroupRule) -> ModifierOption:
        data: JSONDict = obj.get("modifier_data") or {}  # a MODIFIER
        override = self._override(data, obj)
        money = _object(override, "price_money", obj) or _object(data, "price_money", obj)
        max_quantity = (rule.max or UNLIMITED_MODIFIER_QUANTITY) if rule.allow_quantities else 1
        image_id = _text(data, "image_id", obj)
        try:
            return ModifierOption(
                id=obj["id"],
                pos_id=obj["id"],
                name=data.get("name") or obj["id"],
                prices={PRICE_LIST_ID: money.get("amount") or 0},
                max_quantity=max_quantity,
                default=obj["id"] in rule.defaults,
                availability=_sold_out(override, obj),
                image_url=self._image([image_id] if image_id else []),
            )
        except ValidationError as exc:
            raise _invalid(obj, exc) from None


class _GroupRule:
    """The effective selection rule of a modifier list on one item."""

    def __init__(
        self,
        min_: int,
        max_: int | None,
        allow_quantities: bool,
        defaults: frozenset[str],
        hidden: frozenset[str] = frozenset(),
    ) -> None:
        self.min = min_
        self.max = max_
        self.allow_quantities = allow_quantities
        self.defaults = defaults
        self.hidden = hidden
        """The modifiers hidden from online ordering (left out of the group)."""

    @classmethod
    def of(
        cls, data: JSONDict, info: JSONDict, modifiers: list[JSONDict], owner: JSONDict
    ) -> _GroupRule:
        """The rule of list ``data`` as item ``info`` applies it (``{}``: the list as it is);
        ``owner`` is the catalog object ``info`` belongs to."""
        min_, max_ = selection_limits(data, info)
        toggle = info.get("allow_quantities")
        allow = toggle == "YES" if toggle in ("YES", "NO") else bool(data.get("allow_quantities"))
        overrides = {
            _hashable(o, "modifier_id", owner): o
            for o in _objects(info, "modifier_overrides", owner)
        }
        defaults = frozenset(
            m["id"] for m in modifiers if _on_by_default(_data(m), overrides.get(m["id"]))
        )
        hidden = frozenset(
            m["id"] for m in modifiers if _hidden_online(_data(m), overrides.get(m["id"]))
        )
        return cls(min_, max_, allow, defaults, hidden)

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
        if self.hidden != base.hidden:
            digest = hashlib.sha256(",".join(sorted(self.hidden)).encode()).hexdigest()
            suffix += f"~h{digest[:8]}"
        return suffix


def selection_limits(
    list_data: JSONDict, info: JSONDict, owner: JSONDict | None = None
) -> tuple[int, int | None]:
    """``(min, max)`` selections of a modifier list on an item; max None means no limit.

    Square's rules (``CatalogItemModifierListInfo`` / ``CatalogModifierList``): ``-1`` on the item
    means "not set": both -1 (or absent) uses the list's values, one -1 takes the list's value for
    that side. On the list, ``-1`` (or absent) min means none required, ``0`` or ``-1`` max means
    no limit, anything below ``-1`` is invalid and treated the same way. A list that sets neither
    falls back to its deprecated ``selection_type``: ``SINGLE`` allows at most one.

    :param owner: the catalog object being read, to name it in an error.
    :raises CatalogError: for a limit that is not a whole number.
    """
    owner = owner or {}
    list_min = _int(list_data, "min_selected_modifiers", owner)
    list_max = _int(list_data, "max_selected_modifiers", owner)
    unset = (None, -1)
    if list_min in unset and list_max in unset:
        own: tuple[int, int | None] = (
            0,
            1 if list_data.get("selection_type") == "SINGLE" else None,
        )
    else:
        own = (max(list_min or 0, 0), list_max if (list_max or 0) > 0 else None)
    item_min = _int(info, "min_selected_modifiers", owner)
    item_max = _int(info, "max_selected_modifiers", owner)
    min_ = own[0] if item_min is None or item_min == -1 else max(item_min, 0)
    max_ = own[1] if item_max is None or item_max == -1 else (item_max if item_max > 0 else None)
    if max_ is not None and min_ > max_:
        min_ = max_
    return min_, max_


def _info_key(info: JSONDict) -> Hashable:
    """What of an item's ``modifier_list_info`` shapes its group (see :class:`_GroupRule`).

    Read without checks, for speed: a value of the wrong type makes the key unhashable (or
    fails the reading), and :func:`_check_info` then says which.
    """
    overrides = info.get("modifier_overrides")
    return (
        info.get("min_selected_modifiers"),
        info.get("max_selected_modifiers"),
        info.get("allow_quantities"),
        tuple(
            (
                o.get("modifier_id"),
                o.get("on_by_default_override"),
                o.get("on_by_default"),
                o.get("hidden_online_override"),
            )
            for o in overrides
        )
        if overrides
        else (),
    )


def _check_info(info: JSONDict, owner: JSONDict) -> CatalogError:
    """The error for a ``modifier_list_info`` of item ``owner`` that :func:`_info_key` could
    not make a key of."""
    _int(info, "min_selected_modifiers", owner)
    _int(info, "max_selected_modifiers", owner)
    _hashable(info, "allow_quantities", owner)
    for override in _objects(info, "modifier_overrides", owner):
        for field in (
            "modifier_id",
            "on_by_default_override",
            "on_by_default",
            "hidden_online_override",
        ):
            _hashable(override, field, owner)
    return CatalogError(f"{_describe(owner)}: modifier_list_info: an entry cannot be read")


def _on_by_default(modifier: JSONDict, override: JSONDict | None) -> bool:
    if override is not None:
        toggle = override.get("on_by_default_override")
        if toggle in ("YES", "NO"):
            return bool(toggle == "YES")
        if override.get("on_by_default") is not None:
            return bool(override["on_by_default"])
    return bool(modifier.get("on_by_default"))


def _left_out(obj: JSONDict, kind: str, name: str | None, reason: str) -> LeftOut:
    """What the menu leaves of catalog object ``obj`` out, and why (long texts shortened)."""
    if name is not None and len(name) > LEFT_OUT_NAME_MAX:
        name = name[: LEFT_OUT_NAME_MAX - 3] + "..."
    if len(reason) > LEFT_OUT_REASON_MAX:
        reason = reason[: LEFT_OUT_REASON_MAX - 3] + "..."
    return LeftOut(kind=kind, pos_id=obj["id"], name=name or None, reason=reason)


def _hidden_online(modifier: JSONDict, override: JSONDict | None) -> bool:
    """Whether a modifier is hidden from online ordering on an item (the item's
    ``hidden_online_override`` ``YES``/``NO``, else the modifier's ``hidden_online``)."""
    if override is not None:
        toggle = override.get("hidden_online_override")
        if toggle in ("YES", "NO"):
            return bool(toggle == "YES")
    return bool(modifier.get("hidden_online"))


def _discount_terms(discount: JSONDict | None) -> str:
    """``the discount 'Happy hour' (10 % off)``, from a ``DISCOUNT`` object."""
    data = _data(discount) if discount is not None else {}
    name = data.get("name")
    named = f"the discount {_quote(name)}" if type(name) is str else "a discount"
    percentage, money = data.get("percentage"), data.get("amount_money")
    if type(percentage) is str:
        return f"{named} ({_quote(percentage)[1:-1]} % off)"
    if type(money) is dict and type(money.get("amount")) is int:
        currency = money.get("currency")
        unit = f"minor units of {currency}" if type(currency) is str else "minor units"
        return f"{named} ({money['amount']} {unit} off)"
    return named


def _sold_out(override: JSONDict, owner: JSONDict) -> Availability:
    """Availability from a location override: 86'd while ``sold_out``, maybe until a time."""
    if not override.get("sold_out"):
        return Availability()
    return Availability(
        available=False,
        unavailable_until=_time(override, "sold_out_valid_until", owner),
        reason="sold out",
    )


def _time(container: JSONDict, key: str, owner: JSONDict) -> datetime | None:
    """``container[key]``, a Square timestamp, as a UTC instant (None when absent)."""
    text = _text(container, key, owner)
    try:
        moment = parse_time(text)
        return None if moment is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _refuse(owner, key, "an RFC 3339 timestamp", text) from None


def percentage_to_ppm(percentage: str) -> int:
    """A Square tax ``percentage`` ("8.875") in parts per million (88750), exactly.

    :raises ValueError: for a value that is not a decimal number from 0 to 100.
    """
    try:
        value = Decimal(str(percentage).strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not (value.is_finite() and 0 <= value <= 100):
        raise ValueError(f"tax percentage {_quote(percentage)} is not a number from 0 to 100")
    return int((value * 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _latest(objects: Collection[JSONDict]) -> datetime | None:
    """The latest ``updated_at`` of ``objects``.

    Square writes them all as UTC with a ``Z`` and fixed-width fields; such strings sort as the
    times they name, so only the greatest is parsed. Any other mix is parsed in full.
    """
    stamps = [stamp for o in objects if (stamp := o.get("updated_at"))]
    if not stamps:
        return None
    width = len(stamps[0]) if type(stamps[0]) is str else -1
    if all(type(stamp) is str and len(stamp) == width and stamp.endswith("Z") for stamp in stamps):
        latest = max(stamps)
        try:
            return parse_time(latest)
        except ValueError:
            pass  # read it again below, to name the object it is in
    return max(t for o in objects if (t := _time(o, "updated_at", o)) is not None)

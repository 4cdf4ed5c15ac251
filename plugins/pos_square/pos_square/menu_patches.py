"""The menus of a catalog in which only some variations changed, patched from the last ones.

After a price change (or a sold-out override, a variation renamed or added) an incremental read
replaces one item in the kept catalog. The item's product is all that can differ in the menus:
the rest of the item (its name, categories, modifier lists, taxes, presence) is what it was,
so the groups, taxes and text lists it uses, where it sorts and what else the menu reports are
unchanged. Its variants are made again for each menu and the product replaced where it stood;
nothing else in a 10,000-item catalog is walked again.

Whenever that cannot be known to equal a fresh translation, no patch is made and the caller
translates as usual (:func:`pos_square.catalog.menus_from_catalog`, which reuses unchanged
items): an object other than an item changed, appeared or went; the item's other data changed;
its variations are not only its own (ids shared with other objects, or naming another item);
a variation now names locations the catalog did not (menus are shared by the locations no
object names); the item was not on a menu, leaves one, or reports what it left out
differently; the catalog's latest update would move back; the day changed (pricing rules end
on a day); or anything in the changed item is malformed (the translation names the problem).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from pos_square.catalog import (
    ID_MAX,
    CatalogError,
    LastTranslation,
    Place,
    _by_ordinal,
    _data,
    _latest,
    _MenuBuilder,
    _text,
    add_named_locations,
    menus_from_catalog,
)
from pos_square.reused_items import ItemMemo, MadeItem
from posintegrator.hooktypes import SharedMenu
from posintegrator.menus.collector import collector_paused
from posintegrator.model import Product

JSONDict = dict[str, Any]

#: More changed items than this and a patch is not worth its checks: translated as usual.
PATCHED_ITEMS_MAX = 100

#: Top-level fields that change with every edit and that the translation does not read beyond
#: the catalog's latest update (checked separately).
_EDIT_STAMPS = ("version", "updated_at")


def translated_menus(objects: list[Any], places: list[Place], memo: ItemMemo) -> list[SharedMenu]:
    """The menus of ``objects`` for ``places``: patched from the last ones when only some
    variations changed, else translated (reusing what did not change)."""
    patched = patched_menus(objects, places, memo)
    if patched is not None:
        return patched
    return menus_from_catalog(objects, places, memo)


def patched_menus(
    objects: list[Any], places: list[Place], memo: ItemMemo
) -> list[SharedMenu] | None:
    """The last menus with the products of changed items made again; None when a patch
    cannot be trusted to equal a fresh translation (see the module's documentation).

    On success the memo is brought up to date (the same way a translation would leave it).
    """
    last = memo.last
    today = datetime.now(UTC).date().isoformat()
    if last is None or places != last.places or last.made_on != today:
        return None
    with collector_paused():
        try:
            changes = _changed_items(objects, last)
            return _patched(last, changes) if changes else None
        except (CatalogError, ValidationError, TypeError, ValueError):
            return None  # the translation finds the same problem and names it


class _Change:
    """One changed item: the object translated last time and the new one, each with its
    variations (the new ones by ordinal, as the translation takes them)."""

    def __init__(self, old: JSONDict, new: JSONDict, new_variations: list[JSONDict]) -> None:
        self.old = old
        self.new = new
        self.old_variations = _nested_variations(old)
        self.new_variations = new_variations


def _changed_items(objects: list[Any], last: LastTranslation) -> list[_Change] | None:
    """The items that changed since ``last``, if only items changed and each of them in its
    variations only; else None."""
    if len(objects) != len(last.tops):
        return None
    tops: dict[Any, JSONDict] = last.tops
    changed = [o for o in objects if type(o) is not dict or tops.get(o.get("id")) is not o]
    if not changed or len(changed) > PATCHED_ITEMS_MAX:
        return None
    changes = []
    for new in changed:
        old = tops.get(new.get("id")) if type(new) is dict else None
        if old is None or old.get("type") != "ITEM" or new.get("type") != "ITEM":
            return None
        if last.catalog.by_id.get(old["id"]) is not old:
            return None  # another object took its id first: the item was not translated
        if _without_variations(old) != _without_variations(new):
            return None
        variations = _own_variations(new, last)
        if variations is None or not _only_its_own(old, last):
            return None
        if _names(old) != _names(new):
            return None
        changes.append(_Change(old, new, variations))
    return changes


def _without_variations(item: JSONDict) -> JSONDict:
    """An item as the translation reads it apart from its variations and edit stamps."""
    rest = {k: v for k, v in item.items() if k not in _EDIT_STAMPS}
    data = item.get("item_data")
    if type(data) is dict:
        rest["item_data"] = {k: v for k, v in data.items() if k != "variations"}
    return rest


def _nested_variations(item: JSONDict) -> list[Any]:
    data = item.get("item_data")
    variations = data.get("variations") if type(data) is dict else None
    return variations if type(variations) is list else []


def _own_variations(item: JSONDict, last: LastTranslation) -> list[JSONDict] | None:
    """The variations nested in ``item``, by ordinal, when each is well formed, names this
    item and no other object of the catalog (bar the item's old variations) has its id."""
    item_id = item["id"]
    old_ids = {v.get("id") for v in _nested_variations(last.tops[item_id]) if type(v) is dict}
    variations = _nested_variations(item)
    seen: set[str] = set()
    for variation in variations:
        if type(variation) is not dict:
            return None
        variation_id = variation.get("id")
        data = variation.get("item_variation_data")
        if (
            type(variation_id) is not str
            or not variation_id.strip()
            or len(variation_id) > ID_MAX
            or variation_id in seen
            or variation.get("type") != "ITEM_VARIATION"
            or type(data) is not dict
            or data.get("item_id") != item_id
            or (variation_id in last.catalog.by_id and variation_id not in old_ids)
        ):
            return None
        seen.add(variation_id)
    return sorted(variations, key=_by_ordinal)


def _only_its_own(old: JSONDict, last: LastTranslation) -> bool:
    """Whether the variations the last translation gave ``old`` were exactly those nested in
    it (no other object named it as its item, none of its own was another's)."""
    indexed = last.catalog.children("ITEM_VARIATION", "item_id", old["id"])
    nested = _nested_variations(old)
    return len(indexed) == len(nested) and all(any(v is n for n in nested) for v in indexed)


def _names(item: JSONDict) -> set[Any]:
    """The Square locations an item and its (well-formed) variations name."""
    named: set[Any] = set()
    for obj in (item, *_nested_variations(item)):
        add_named_locations(obj, named)
    return named


def _patched(last: LastTranslation, changes: list[_Change]) -> list[SharedMenu] | None:
    """Each menu with the changed items' products made again; None if one of them cannot be
    patched. Nothing is changed until every menu is made."""
    latest = _latest_after(last.catalog.latest_update, changes)
    if latest is _UNKNOWN:
        return None
    made: list[dict[str, MadeItem]] = []
    menus = []
    for shared, builder in zip(last.menus, last.builders, strict=True):
        products = list(shared.menu.products)
        positions: dict[str, int] | None = None
        now_made: dict[str, MadeItem] = {}
        for change in changes:
            earlier = builder.made.get(change.new["id"])
            if earlier is None:
                continue  # not on this menu before, and the item decides that: nor now
            product = _product_again(builder, earlier, change)
            if positions is None:
                positions = {p.id: n for n, p in enumerate(products)}
            if product is None or product.id not in positions:
                return None
            products[positions[product.id]] = product
            now_made[product.id] = MadeItem(
                change.new,
                tuple(change.new_variations),
                product,
                earlier.sort_key,
                earlier.unpriced,
            )
        made.append(now_made)
        update: dict[str, Any] = {"products": products, "source_updated_at": latest}
        menus.append(SharedMenu(shared.locations, shared.menu.model_copy(update=update)))
    _commit(last, changes, made, menus, latest)
    return menus


#: :func:`_latest_after` could not tell.
_UNKNOWN: Any = object()


def _latest_after(before: datetime | None, changes: list[_Change]) -> datetime | None:
    """The catalog's latest update once the changed items replace the old ones (objects'
    ``updated_at``), or :data:`_UNKNOWN` when the old items held the latest and the new ones
    are earlier (what the rest holds is not known here)."""
    new_latest = _latest([o for c in changes for o in (c.new, *c.new_variations)])
    if before is None:
        return new_latest
    old_latest = _latest([o for c in changes for o in (c.old, *c.old_variations)])
    if old_latest is not None and old_latest >= before:
        return new_latest if new_latest is not None and new_latest >= before else _UNKNOWN
    return before if new_latest is None else max(before, new_latest)


def _product_again(builder: _MenuBuilder, earlier: MadeItem, change: _Change) -> Product | None:
    """The changed item's product on ``builder``'s menu, made as the translation makes it,
    if only its variants differ from ``earlier``'s; else None."""
    if earlier.product is None:
        return None  # the item's groups and taxes were never worked out here
    item = change.new
    name = _text(_data(item), "name", item) or item["id"]
    variants, unpriced = builder.variants_again(item, name, change.new_variations)
    if not variants or unpriced != earlier.unpriced:
        return None
    return Product.model_validate({**dict(earlier.product), "variants": variants})


def _commit(
    last: LastTranslation,
    changes: list[_Change],
    made: list[dict[str, MadeItem]],
    menus: list[SharedMenu],
    latest: datetime | None,
) -> None:
    """Bring the last translation (and so the memo) to the patched catalog."""
    catalog = last.catalog
    items = catalog.by_type["ITEM"]
    variations = catalog.by_type.setdefault("ITEM_VARIATION", [])
    gone = {id(v) for c in changes for v in c.old_variations}
    variations[:] = [v for v in variations if id(v) not in gone]
    children = catalog._children.get(("ITEM_VARIATION", "item_id"))
    for change in changes:
        item_id = change.new["id"]
        last.tops[item_id] = change.new
        catalog.by_id[item_id] = change.new
        items[next(n for n, o in enumerate(items) if o is change.old)] = change.new
        for old in change.old_variations:
            catalog.by_id.pop(old["id"], None)
        for variation in change.new_variations:
            catalog.by_id[variation["id"]] = variation
            variations.append(variation)
        if children is not None:
            children[item_id] = list(change.new_variations)
    catalog.__dict__["latest_update"] = latest
    for builder, now_made in zip(last.builders, made, strict=True):
        builder.made.update(now_made)
    last.menus = menus

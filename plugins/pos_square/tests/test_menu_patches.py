"""Menus patched after a change to some variations equal a fresh translation; whenever that
cannot be known, no patch is made and the catalog is translated as usual."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from squaredouble.catalog import generate_catalog

from pos_square.catalog import Place, menus_from_catalog
from pos_square.menu_patches import patched_menus, translated_menus
from pos_square.reused_items import ItemMemo
from posintegrator.hooktypes import SharedMenu

JSONDict = dict[str, Any]
SQUARE_LOCATIONS = ("L1MAIN", "L2OVERRIDES", "L3PLAIN")
PLACES = [
    Place("main", "L1MAIN", "USD", "America/New_York"),
    Place("second", "L2OVERRIDES", "USD", "America/New_York"),
    Place("third", "L3PLAIN", "USD", "America/New_York"),
    Place("fourth", "L4UNNAMED", "USD", "America/New_York"),
]


@pytest.fixture(scope="module")
def catalog() -> list[JSONDict]:
    generated = generate_catalog(300, SQUARE_LOCATIONS)
    return [o for o in generated.objects if not o.get("is_deleted")]


def fresh(objects: list[JSONDict]) -> list[tuple[list[str], Any]]:
    """A translation from scratch, as comparable data."""
    return as_data(menus_from_catalog(copy.deepcopy(objects), PLACES))


def as_data(menus: list[SharedMenu]) -> list[tuple[list[str], Any]]:
    return sorted((sorted(m.locations), m.menu.model_dump(mode="json")) for m in menus)


def priced_items(objects: list[JSONDict]) -> list[JSONDict]:
    """Items present everywhere whose variations all have a fixed price."""
    return [
        o
        for o in objects
        if o["type"] == "ITEM"
        and o.get("present_at_all_locations", True)
        and not o.get("absent_at_location_ids")
        and not o["item_data"].get("is_archived")
        and o["item_data"].get("variations")
        and all(
            v["item_variation_data"].get("price_money")
            and v["item_variation_data"].get("pricing_type", "FIXED_PRICING") == "FIXED_PRICING"
            for v in o["item_data"]["variations"]
        )
    ]


def edited(
    objects: list[JSONDict], item: JSONDict, change: Callable[[JSONDict], None]
) -> list[JSONDict]:
    """``objects`` with ``item`` replaced by an edited copy (as the kept catalog replaces an
    item when one of its variations changes), stamped later; every other object the same."""
    new = copy.deepcopy(item)
    change(new)
    new["version"] = new.get("version", 0) + 1
    new["updated_at"] = "2031-01-01T00:00:00.000Z"
    for variation in new["item_data"]["variations"]:
        variation["updated_at"] = "2031-01-01T00:00:00.000Z"
    return [new if o is item else o for o in objects]


def first_variation(item: JSONDict) -> JSONDict:
    return item["item_data"]["variations"][0]


def new_price(item: JSONDict) -> None:
    first_variation(item)["item_variation_data"]["price_money"]["amount"] += 7


def sold_out_at_second(item: JSONDict) -> None:
    data = first_variation(item)["item_variation_data"]
    overrides = [o for o in data.get("location_overrides", []) if o["location_id"] != "L2OVERRIDES"]
    data["location_overrides"] = [*overrides, {"location_id": "L2OVERRIDES", "sold_out": True}]


def renamed_variation(item: JSONDict) -> None:
    first_variation(item)["item_variation_data"]["name"] = "Extra large"


def one_variation_more(item: JSONDict) -> None:
    extra = copy.deepcopy(first_variation(item))
    extra["id"] = item["id"] + "_EXTRA"
    extra["item_variation_data"]["ordinal"] = -1  # first on the menu
    item["item_data"]["variations"].append(extra)


@pytest.mark.parametrize(
    "change", [new_price, sold_out_at_second, renamed_variation, one_variation_more]
)
def test_a_change_to_variations_is_patched_and_equals_a_fresh_translation(
    catalog: list[JSONDict], change: Callable[[JSONDict], None]
) -> None:
    memo = ItemMemo()
    first = menus_from_catalog(catalog, PLACES, memo)
    item = priced_items(catalog)[3]
    changed = edited(catalog, item, change)
    patched = patched_menus(changed, PLACES, memo)
    assert patched is not None
    assert as_data(patched) == fresh(changed)
    kept = {id(p) for m in first for p in m.menu.products}
    assert {p.id for m in patched for p in m.menu.products if id(p) not in kept} == {item["id"]}
    # The memo now describes the patched catalog: a second patch, then a change to the rest
    # of the catalog (translated, reusing what the patches made), both equal fresh ones.
    again = edited(changed, next(o for o in changed if o["id"] == item["id"]), new_price)
    assert as_data(translated_menus(again, PLACES, memo)) == fresh(again)
    tax = next(o for o in again if o["type"] == "TAX")
    retaxed = [
        {**o, "tax_data": {**o["tax_data"], "percentage": "3.25"}} if o is tax else o for o in again
    ]
    assert patched_menus(retaxed, PLACES, memo) is None
    assert as_data(translated_menus(retaxed, PLACES, memo)) == fresh(retaxed)


def renamed_item(item: JSONDict) -> None:
    item["item_data"]["name"] = "Something else"


def variable_priced(item: JSONDict) -> None:
    data = first_variation(item)["item_variation_data"]
    data["pricing_type"] = "VARIABLE_PRICING"
    data.pop("price_money", None)


def absent_everywhere(item: JSONDict) -> None:
    for variation in item["item_data"]["variations"]:
        variation["present_at_all_locations"] = False


def names_another_location(item: JSONDict) -> None:
    data = first_variation(item)["item_variation_data"]
    data["location_overrides"] = [{"location_id": "L3PLAIN", "sold_out": True}]


def belongs_elsewhere(item: JSONDict) -> None:
    first_variation(item)["item_variation_data"]["item_id"] = "SOMEONE_ELSE"


def wrongly_typed_price(item: JSONDict) -> None:
    first_variation(item)["item_variation_data"]["price_money"] = [1]


@pytest.mark.parametrize(
    "change",
    [
        renamed_item,  # the item itself: it may sort, group or report differently
        variable_priced,  # reports a variation left out
        absent_everywhere,  # leaves the menus
        names_another_location,  # that location gets a menu of its own
        belongs_elsewhere,  # the variation is another item's
        wrongly_typed_price,  # the translation names the problem
    ],
)
def test_what_a_patch_cannot_know_is_translated(
    catalog: list[JSONDict], change: Callable[[JSONDict], None]
) -> None:
    memo = ItemMemo()
    menus_from_catalog(catalog, PLACES, memo)
    several = [i for i in priced_items(catalog) if len(i["item_data"]["variations"]) > 1]
    changed = edited(catalog, several[1], change)  # others of its variations stay priced
    assert patched_menus(changed, PLACES, memo) is None
    if change is wrongly_typed_price:
        with pytest.raises(Exception, match="price_money"):
            translated_menus(changed, PLACES, memo)
        return
    assert as_data(translated_menus(changed, PLACES, memo)) == fresh(changed)


def test_ids_of_other_objects_and_new_objects_are_not_patched(catalog: list[JSONDict]) -> None:
    memo = ItemMemo()
    menus_from_catalog(catalog, PLACES, memo)
    items = priced_items(catalog)
    taken = first_variation(items[1])["id"]

    def steals_an_id(item: JSONDict) -> None:
        first_variation(item)["id"] = taken

    changed = edited(catalog, items[2], steals_an_id)
    assert patched_menus(changed, PLACES, memo) is None
    assert as_data(translated_menus(changed, PLACES, memo)) == fresh(changed)
    more = [*catalog, {**copy.deepcopy(items[0]), "id": "A_NEW_ITEM"}]
    assert patched_menus(more, PLACES, memo) is None
    # One object gone (a full read that no longer lists it) beside a price change.
    priced = edited(catalog, items[3], new_price)
    gone = [o for o in priced if o["type"] == "CATEGORY"][-1]
    fewer = [o for o in priced if o is not gone]
    assert patched_menus(fewer, PLACES, memo) is None
    assert as_data(translated_menus(fewer, PLACES, memo)) == fresh(fewer)


def test_an_item_whose_id_another_object_took_is_not_patched(catalog: list[JSONDict]) -> None:
    """A variation of an earlier item with the id of a later one: the catalog keeps the first
    object of an id, so the later item was never translated; changing it is translated too."""
    items = sorted(priced_items(catalog), key=lambda o: o["id"])
    first, later = items[0], items[-1]
    copied = copy.deepcopy(first)
    first_variation(copied)["id"] = later["id"]
    bare = copy.deepcopy(later)  # no variations of its own yet
    bare["item_data"]["variations"] = []
    hostile = [copied if o is first else bare if o is later else o for o in catalog]
    memo = ItemMemo()
    menus_from_catalog(hostile, PLACES, memo)

    def variations_back(item: JSONDict) -> None:
        item["item_data"]["variations"] = copy.deepcopy(later["item_data"]["variations"])

    changed = edited(hostile, bare, variations_back)
    assert patched_menus(changed, PLACES, memo) is None
    assert as_data(translated_menus(changed, PLACES, memo)) == fresh(changed)


def test_no_patch_across_a_day_or_for_other_places(
    catalog: list[JSONDict], monkeypatch: pytest.MonkeyPatch
) -> None:
    memo = ItemMemo()
    menus_from_catalog(catalog, PLACES, memo)
    changed = edited(catalog, priced_items(catalog)[0], new_price)
    assert patched_menus(changed, PLACES[:2], memo) is None
    assert memo.last is not None
    monkeypatch.setattr(memo.last, "made_on", "2000-01-01")  # pricing rules may have ended
    assert patched_menus(changed, PLACES, memo) is None


def test_the_latest_update_never_moves_back(catalog: list[JSONDict]) -> None:
    """When the changed item held the catalog's latest update and its new stamp is earlier,
    what the rest holds is not known to a patch: translated."""
    item = priced_items(catalog)[4]
    latest = edited(catalog, item, lambda _: None)  # the item now holds the latest update
    memo = ItemMemo()
    menus_from_catalog(latest, PLACES, memo)
    now_item = next(o for o in latest if o["id"] == item["id"])
    earlier = copy.deepcopy(now_item)
    new_price(earlier)
    earlier["updated_at"] = "2020-01-01T00:00:00.000Z"
    for variation in earlier["item_data"]["variations"]:
        variation["updated_at"] = "2020-01-01T00:00:00.000Z"
    changed = [earlier if o is now_item else o for o in latest]
    assert patched_menus(changed, PLACES, memo) is None
    assert as_data(translated_menus(changed, PLACES, memo)) == fresh(changed)

"""A translation that reuses what the last one made of unchanged items equals a fresh one,
whatever the changed item did to the rest of the menu (groups, hidden modifiers, text lists,
what it left out)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_translate import load

from pos_square.catalog import Place, menus_from_catalog
from pos_square.reused_items import ItemMemo
from posintegrator.hooktypes import SharedMenu

PLACES = [Place("downtown", "L1DOWNTOWN", "USD", "America/New_York")]


def edited(objects: list[dict[str, Any]], item_id: str, **data: Any) -> list[dict[str, Any]]:
    """``objects`` with item ``item_id`` replaced by a new object with ``data`` changed (as
    the kept catalog replaces a changed object); every other object the same one."""
    return [
        {**o, "item_data": {**o["item_data"], **data}} if o["id"] == item_id else o for o in objects
    ]


def products(menus: list[SharedMenu]) -> list[Any]:
    return [p for shared in menus for p in shared.menu.products]


@pytest.mark.parametrize(
    ("item_id", "data"),
    [
        ("ITEM_TART", {"name": "Plum tart"}),  # uses no list: nothing else moves
        ("ITEM_CAKE", {"name": "Big cake"}),  # the first to use both lists
        ("ITEM_CAKE", {"modifier_list_info": []}),  # stops using them: the cupcake reports
        ("ITEM_CUPCAKE", {"is_archived": True}),  # gone: its own group and notes go too
    ],
)
def test_reusing_the_last_translation_gives_the_fresh_one(item_id: str, data: Any) -> None:
    objects = load("catalog_left_out.json")["objects"]
    memo = ItemMemo()
    first = menus_from_catalog(objects, PLACES, memo)
    changed = edited(objects, item_id, **data)
    again = menus_from_catalog(changed, PLACES, memo)
    fresh = menus_from_catalog(copy.deepcopy(changed), PLACES)
    assert again[0].menu == fresh[0].menu
    assert again[0].menu.left_out == fresh[0].menu.left_out
    before = {id(p) for p in products(first)}
    reused = [p.id for p in products(again) if id(p) in before]
    assert reused == [p.id for p in products(again) if p.id != item_id]


def test_nothing_is_reused_when_the_rest_of_the_catalog_changed() -> None:
    objects = load("catalog_left_out.json")["objects"]
    memo = ItemMemo()
    first = menus_from_catalog(objects, PLACES, memo)
    candles = next(o for o in objects if o["id"] == "ML_CANDLES")
    renamed = {**candles, "modifier_list_data": {**candles["modifier_list_data"], "name": "Fire"}}
    changed = [renamed if o is candles else o for o in objects]
    again = menus_from_catalog(changed, PLACES, memo)
    assert again[0].menu == menus_from_catalog(copy.deepcopy(changed), PLACES)[0].menu
    assert not {id(p) for p in products(first)} & {id(p) for p in products(again)}


def test_a_full_read_of_an_unchanged_catalog_reuses_every_product() -> None:
    """The daily full read brings new objects equal to the kept ones: compared by value, every
    product is the one made last time (so the host need not check any of them again)."""
    objects = load("catalog_left_out.json")["objects"]
    memo = ItemMemo()
    first = menus_from_catalog(objects, PLACES, memo)
    again = menus_from_catalog(copy.deepcopy(objects), PLACES, memo)
    assert again[0].menu == first[0].menu
    assert again[0].menu.left_out == first[0].menu.left_out
    assert [id(p) for p in products(again)] == [id(p) for p in products(first)]
    # One price changed in a copy: that item is made again, every other one reused.
    changed = copy.deepcopy(objects)
    variation = next(
        v
        for o in changed
        if o["type"] == "ITEM" and o["id"] == "ITEM_TART"
        for v in o["item_data"]["variations"]
    )
    variation["item_variation_data"]["price_money"]["amount"] += 1
    third = menus_from_catalog(changed, PLACES, memo)
    assert third[0].menu == menus_from_catalog(copy.deepcopy(changed), PLACES)[0].menu
    kept = {id(p) for p in products(again)}
    assert [p.id for p in products(third) if id(p) not in kept] == ["ITEM_TART"]

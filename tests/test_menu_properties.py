"""Property-based tests of the universal menu: serialisation, diffs and the publish checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from menu_strategies import Draw, fresh_id, menu_documents, menu_pairs, menus

from posintegrator.menus import canonical as canonical_module
from posintegrator.menus.canonical import CanonicalMenu
from posintegrator.model.menu import Availability, ComboSlot, Menu, ModifierGroup, ModifierOption
from posintegrator.model.menu_check import (
    Code,
    Finding,
    Severity,
    check_menu,
    check_menu_data,
    errors_in,
)
from posintegrator.model.menu_diff import MenuDiff, apply_diff, diff_menus


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _show(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings) or "(no findings)"


# --- 1. Serialisation ---------------------------------------------------------------------------


@_settings(40)
@given(menus())
def test_json_round_trip_is_lossless(menu: Menu) -> None:
    assert Menu.model_validate_json(menu.model_dump_json()) == menu
    via_orjson = orjson.loads(orjson.dumps(menu.model_dump(mode="json")))
    assert Menu.model_validate(via_orjson) == menu


@_settings(40)
@given(menus(), st.text(max_size=20))
def test_the_canonical_json_made_a_product_at_a_time_is_the_one_shot_json(
    menu: Menu, location: str
) -> None:
    """What is stored, served and hashed is ``orjson.dumps`` with sorted keys, byte for byte,
    however it was put together."""
    dumped = menu.model_dump(mode="json")
    canonical = CanonicalMenu.of(dumped)
    as_location = {**dumped, "location": location}
    assert canonical.body().of(location) == orjson.dumps(as_location, option=orjson.OPT_SORT_KEYS)
    offered = {k: v for k, v in dumped.items() if k not in ("location", "source_updated_at")}
    one_shot = hashlib.sha256(orjson.dumps(offered, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert canonical.content_hash() == one_shot
    assert CanonicalMenu.of(as_location).content_hash() == one_shot, "the same at any location"
    with pytest.MonkeyPatch.context() as patch:  # products joined in pieces of one, of two
        for per_piece in (1, 2):
            patch.setattr(canonical_module, "PRODUCTS_PER_PIECE", per_piece)
            pieces = CanonicalMenu.of(dumped)
            assert pieces.body() == canonical.body()
            assert pieces.content_hash() == one_shot


# --- 2./3. Diffs ----------------------------------------------------------------------------------


@_settings(20)
@given(menus())
def test_diff_of_a_menu_with_itself_is_empty(menu: Menu) -> None:
    diff = diff_menus(menu, menu)
    assert diff.is_empty
    assert diff.counts() == {"added": 0, "removed": 0, "changed": 0}
    assert apply_diff(menu, diff) == menu


def _check_diff(before: Menu, after: Menu) -> None:
    diff = diff_menus(before, after)
    assert diff.is_empty == (before == after)
    assert apply_diff(before, diff) == after
    # A diff is sent instead of the whole menu: it must survive its own JSON too.
    sent = MenuDiff.model_validate_json(diff.model_dump_json())
    assert apply_diff(before, sent) == after


@_settings(50)
@given(menu_pairs())
def test_applying_the_diff_of_an_edit_gives_the_edited_menu(pair: tuple[Menu, Menu]) -> None:
    before, after = pair
    assert errors_in(check_menu(after)) == [], _show(check_menu(after))
    _check_diff(before, after)


@_settings(20)
@given(menus(), menus())
def test_applying_the_diff_of_unrelated_menus_gives_the_second(first: Menu, second: Menu) -> None:
    second = second.model_copy(update={"location": first.location})
    _check_diff(first, second)
    _check_diff(second, first)


# --- 4. Valid menus pass ------------------------------------------------------------------------


@_settings(60)
@given(menus())
def test_generated_menus_have_no_errors(menu: Menu) -> None:
    findings = check_menu(menu)
    assert errors_in(findings) == [], _show(findings)
    # Errors come first, then warnings.
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=lambda s: s != Severity.ERROR)


@_settings(15)
@given(menu_documents())
def test_check_menu_data_accepts_generated_documents(document: dict[str, Any]) -> None:
    menu, findings = check_menu_data(document)
    assert menu == Menu.model_validate(document)
    assert errors_in(findings) == [], _show(findings)


# --- 5. Corruptions are caught ------------------------------------------------------------------

#: A broken copy of the menu, the code it must be reported with and the paths that may carry it.
Broken = tuple[Menu, Code, set[str]]
Corruption = Callable[[Draw, Menu], Broken]


def corruption(*, any_severity: bool = False, **needs: int) -> Callable[[Corruption], Corruption]:
    """Mark a corruption with what its menu needs (``menus`` keyword arguments).

    ``any_severity``: the finding may be a warning (86'd entities are a fact of the day, which
    the checker reports without blocking the menu); otherwise it must be an error.
    """

    def mark(function: Corruption) -> Corruption:
        function.needs = needs  # type: ignore[attr-defined]
        function.any_severity = any_severity  # type: ignore[attr-defined]
        return function

    return mark


def _index(draw: Draw, items: list[Any]) -> int:
    return int(draw(st.integers(0, len(items) - 1)))


def _indices(draw: Draw, items: list[Any], most: int) -> list[int]:
    """1 to ``most`` distinct indices into ``items``, in drawn order."""
    chosen = draw(
        st.lists(
            st.integers(0, len(items) - 1), min_size=1, max_size=min(most, len(items)), unique=True
        )
    )
    return list(chosen)


@corruption(min_products=1)
def duplicate_product_id(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    original = _index(draw, broken.products)
    others = [i for i in range(len(broken.products)) if i != original]
    if others and draw(st.booleans()):
        broken.products[draw(st.sampled_from(others))].id = broken.products[original].id
    else:
        copy = broken.products[original].model_copy(deep=True)
        copy.name = draw(st.sampled_from([copy.name, "Copy"]))
        products = list(broken.products)
        products.insert(draw(st.integers(0, len(products))), copy)
        broken.products = products
    return broken, Code.DUPLICATE_ID, {"products"}


@corruption(min_products=1)
def dangling_modifier_group(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i = _index(draw, broken.products)
    product = broken.products[i]
    ghost = fresh_id(draw, {g.id for g in broken.modifier_groups}, "ghost")
    groups = list(product.modifier_group_ids)
    groups.insert(draw(st.integers(0, len(groups))), ghost)
    product.modifier_group_ids = groups
    return broken, Code.UNKNOWN_REFERENCE, {f"products[{i}].modifier_group_ids"}


@corruption()
def dangling_category_parent(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i = _index(draw, broken.categories)
    broken.categories[i].parent_id = fresh_id(draw, {c.id for c in broken.categories}, "ghost")
    return broken, Code.UNKNOWN_REFERENCE, {f"categories[{i}].parent_id"}


@corruption()
def category_cycle(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    members = _indices(draw, broken.categories, 3)
    for position, i in enumerate(members):
        parent = members[(position + 1) % len(members)]
        broken.categories[i].parent_id = broken.categories[parent].id
    paths = {f"categories[{i}]{suffix}" for i in members for suffix in ("", ".parent_id")}
    return broken, Code.CATEGORY_CYCLE, paths


@corruption(min_groups=1)
def modifier_cycle(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    members = _indices(draw, broken.modifier_groups, 3)
    for position, i in enumerate(members):
        group = broken.modifier_groups[i]
        nested = broken.modifier_groups[members[(position + 1) % len(members)]].id
        if not group.options or draw(st.booleans()):
            option_ids = {o.id for o in group.options}
            option = ModifierOption(id=fresh_id(draw, option_ids, "loop"), name="Loop")
            group.options = [*group.options, option]
        option = group.options[_index(draw, group.options)]
        option.modifier_group_ids = [*option.modifier_group_ids, nested]
    return broken, Code.MODIFIER_CYCLE, {f"modifier_groups[{i}]" for i in members}


@corruption(min_groups=1)
def group_min_exceeds_max(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i = _index(draw, broken.modifier_groups)
    group = broken.modifier_groups[i]
    group.max = draw(st.integers(0, 3))
    group.min = group.max + draw(st.integers(1, 3))
    return broken, Code.MIN_EXCEEDS_MAX, {f"modifier_groups[{i}]"}


def _require(draw: Draw, menu: Menu) -> tuple[int, ModifierGroup]:
    i = _index(draw, menu.modifier_groups)
    group = menu.modifier_groups[i]
    group.min = draw(st.integers(1, 3))
    group.max = draw(st.one_of(st.none(), st.integers(group.min, group.min + 2)))
    return i, group


@corruption(min_groups=1)
def required_group_without_options(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i, group = _require(draw, broken)
    group.options = []
    return broken, Code.REQUIRED_GROUP_UNSATISFIABLE, {f"modifier_groups[{i}]"}


@corruption(min_groups=1, any_severity=True)
def required_group_with_every_option_86d(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i, group = _require(draw, broken)
    if not group.options:
        group.options = [ModifierOption(id="only", name="Only")]
    for option in group.options:
        option.availability = Availability(available=False, reason="sold out")
    return broken, Code.REQUIRED_GROUP_UNSATISFIABLE, {f"modifier_groups[{i}]"}


@corruption(min_products=1)
def missing_variant_price(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i = _index(draw, broken.products)
    j = _index(draw, broken.products[i].variants)
    variant = broken.products[i].variants[j]
    gone = draw(st.sampled_from(sorted(variant.prices)))
    variant.prices = {k: v for k, v in variant.prices.items() if k != gone}
    return broken, Code.MISSING_PRICE, {f"products[{i}].variants[{j}].prices"}


@corruption(min_products=1)
def price_in_unknown_price_list(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i = _index(draw, broken.products)
    j = _index(draw, broken.products[i].variants)
    variant = broken.products[i].variants[j]
    ghost = fresh_id(draw, {p.id for p in broken.price_lists}, "ghost")
    variant.prices = {**variant.prices, ghost: draw(st.integers(0, 9999))}
    return broken, Code.UNKNOWN_REFERENCE, {f"products[{i}].variants[{j}].prices.{ghost}"}


def _combo_slot(draw: Draw, menu: Menu) -> tuple[int, int]:
    combos = [i for i, p in enumerate(menu.products) if p.is_combo]
    i = draw(st.sampled_from(combos))
    return i, _index(draw, menu.products[i].slots)


def _required_slot(draw: Draw, menu: Menu) -> tuple[int, int, ComboSlot]:
    i, j = _combo_slot(draw, menu)
    slot = menu.products[i].slots[j]
    slot.min = max(slot.min, draw(st.integers(1, 2)))
    slot.max = max(slot.max, slot.min)
    return i, j, slot


@corruption(min_combos=1)
def combo_slot_without_choices(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i, j, slot = _required_slot(draw, broken)
    slot.choices = []
    return broken, Code.COMBO_SLOT_UNSATISFIABLE, {f"products[{i}].slots[{j}]"}


@corruption(min_combos=1, any_severity=True)
def combo_slot_with_every_choice_86d(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i, j, slot = _required_slot(draw, broken)
    chosen = {c.product_id for c in slot.choices}
    for product in broken.products:
        if product.id in chosen:
            product.availability = Availability(available=False, reason="sold out")
    return broken, Code.COMBO_SLOT_UNSATISFIABLE, {f"products[{i}].slots[{j}]"}


@corruption(min_combos=1, any_severity=True)
def combo_slot_with_only_86d_variants(draw: Draw, menu: Menu) -> Broken:
    """Every choice names an 86'd variant (or a product whose variants are all 86'd)."""
    broken = menu.model_copy(deep=True)
    i, j = _combo_slot(draw, broken)
    slot = broken.products[i].slots[j]
    slot.min = max(slot.min, 1)
    slot.max = max(slot.max, slot.min)
    for choice in slot.choices:
        target = broken.product(choice.product_id)
        assert target is not None
        for variant in target.variants:
            if choice.variant_id in (None, variant.id):
                variant.availability = Availability(available=False, reason="sold out")
    return broken, Code.COMBO_SLOT_UNSATISFIABLE, {f"products[{i}].slots[{j}]"}


@corruption(min_combos=1)
def combo_choice_with_unknown_variant(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i, j = _combo_slot(draw, broken)
    choices = broken.products[i].slots[j].choices
    k = _index(draw, choices)
    target = broken.product(choices[k].product_id)
    assert target is not None
    choices[k].variant_id = fresh_id(draw, {v.id for v in target.variants}, "ghost")
    return broken, Code.UNKNOWN_REFERENCE, {f"products[{i}].slots[{j}].choices[{k}].variant_id"}


@corruption(min_products=1)
def unknown_tax(draw: Draw, menu: Menu) -> Broken:
    broken = menu.model_copy(deep=True)
    i = _index(draw, broken.products)
    broken.products[i].tax_id = fresh_id(draw, {t.id for t in broken.taxes}, "ghost")
    return broken, Code.UNKNOWN_REFERENCE, {f"products[{i}].tax_id"}


CORRUPTIONS: list[Corruption] = [
    duplicate_product_id,
    dangling_modifier_group,
    dangling_category_parent,
    category_cycle,
    modifier_cycle,
    group_min_exceeds_max,
    required_group_without_options,
    required_group_with_every_option_86d,
    missing_variant_price,
    price_in_unknown_price_list,
    combo_slot_without_choices,
    combo_slot_with_every_choice_86d,
    combo_choice_with_unknown_variant,
    unknown_tax,
]


def _assert_caught(corrupt: Corruption, data: st.DataObject) -> None:
    menu = data.draw(menus(**corrupt.needs), label="menu")  # type: ignore[attr-defined]
    broken, code, paths = corrupt(data.draw, menu)
    findings = check_menu(broken)
    if not corrupt.any_severity:  # type: ignore[attr-defined]
        findings = errors_in(findings)
    assert any(f.code == code and f.path in paths for f in findings), (
        f"expected {code} at one of {sorted(paths)}; got:\n{_show(findings)}"
    )


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda c: c.__name__)
@_settings(15)
@given(data=st.data())
def test_corruption_is_caught(corrupt: Corruption, data: st.DataObject) -> None:
    _assert_caught(corrupt, data)


# Generating a combo whose choices are all 86'd is slow: fewer examples, no shrinking.
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_combo_slot_with_only_86d_variants_is_caught(data: st.DataObject) -> None:
    _assert_caught(combo_slot_with_only_86d_variants, data)


@_settings(15)
@given(data=st.data())
def test_negative_price_in_a_document_is_an_invalid_value(data: st.DataObject) -> None:
    document = data.draw(menus(min_products=1), label="menu").model_dump(mode="json")
    i = _index(data.draw, document["products"])
    j = _index(data.draw, document["products"][i]["variants"])
    prices = document["products"][i]["variants"][j]["prices"]
    price_list = data.draw(st.sampled_from(sorted(prices)))
    prices[price_list] = -data.draw(st.integers(1, 10_000))
    menu, findings = check_menu_data(document)
    assert menu is None
    assert errors_in(findings) == findings
    path = f"products[{i}].variants[{j}].prices.{price_list}"
    assert any(f.code == Code.INVALID_VALUE and f.path == path for f in findings), _show(findings)


@_settings(15)
@given(data=st.data())
def test_uncategorised_product_is_only_a_warning(data: st.DataObject) -> None:
    menu = data.draw(menus(min_products=1), label="menu")
    broken = menu.model_copy(deep=True)
    i = _index(data.draw, broken.products)
    broken.products[i].category_ids = []
    findings = check_menu(broken)
    assert errors_in(findings) == [], _show(findings)
    assert any(
        f.code == Code.UNCATEGORISED_PRODUCT
        and f.path == f"products[{i}]"
        and f.severity == Severity.WARNING
        for f in findings
    ), _show(findings)

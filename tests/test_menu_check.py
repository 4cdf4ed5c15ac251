"""Each menu validation rule, with the real demo menu broken to trigger it; and the report as
the API and the CLI show it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakepos import ScriptedPos
from helpers import NO_PERIODIC_SYNC, restarted_host

from pos_demo.simulator.menu import MenuCatalog
from pos_demo.translate import menu_from_pos
from posintegrator.menus.sync import MenuRejected
from posintegrator.model import Menu
from posintegrator.model.menu_check import Code, Severity, check_menu, check_menu_data
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import one_product_menu, running_host


@pytest.fixture(scope="module")
def demo_data() -> dict[str, Any]:
    """The demo downtown menu as universal JSON."""
    menu = menu_from_pos(MenuCatalog().menu_for("downtown"), "downtown")
    data: dict[str, Any] = menu.model_dump(mode="json")
    return data


def index(items: list[dict[str, Any]], entity_id: str) -> int:
    return next(i for i, item in enumerate(items) if item["id"] == entity_id)


def break_with(data: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> Menu:
    broken = orjson.loads(orjson.dumps(data))
    change(broken)
    return Menu.model_validate(broken)


def test_the_demo_menu_is_clean(demo_data: dict[str, Any]) -> None:
    assert check_menu(Menu.model_validate(demo_data)) == []


def p(data: dict[str, Any], product: str) -> dict[str, Any]:
    found: dict[str, Any] = data["products"][index(data["products"], product)]
    return found


def g(data: dict[str, Any], group: str) -> dict[str, Any]:
    found: dict[str, Any] = data["modifier_groups"][index(data["modifier_groups"], group)]
    return found


CASES: list[tuple[str, Callable[[dict[str, Any]], None], Code, Callable[[dict[str, Any]], str]]] = [
    (
        "duplicate product id",
        lambda d: d["products"].append(p(d, "fries")),
        Code.DUPLICATE_ID,
        lambda d: "products",
    ),
    (
        "duplicate variant id",
        lambda d: p(d, "fries")["variants"].append(p(d, "fries")["variants"][0]),
        Code.DUPLICATE_ID,
        lambda d: f"products[{index(d['products'], 'fries')}].variants",
    ),
    (
        "dangling modifier group",
        lambda d: p(d, "fries")["modifier_group_ids"].append("sauces"),
        Code.UNKNOWN_REFERENCE,
        lambda d: f"products[{index(d['products'], 'fries')}].modifier_group_ids",
    ),
    (
        "dangling nested group",
        lambda d: g(d, "burger_sauce")["options"][0]["modifier_group_ids"].append("nowhere"),
        Code.UNKNOWN_REFERENCE,
        lambda d: (
            f"modifier_groups[{index(d['modifier_groups'], 'burger_sauce')}]"
            ".options[0].modifier_group_ids"
        ),
    ),
    (
        "modifier nesting cycle",
        lambda d: g(d, "sauce_amount")["options"][0]["modifier_group_ids"].append("burger_sauce"),
        Code.MODIFIER_CYCLE,
        lambda d: f"modifier_groups[{index(d['modifier_groups'], 'burger_sauce')}]",
    ),
    (
        "category cycle",
        lambda d: d["categories"][0].update(parent_id=d["categories"][0]["id"]),
        Code.CATEGORY_CYCLE,
        lambda d: "categories[0].parent_id",
    ),
    (
        "min > max",
        lambda d: g(d, "burger_sauce").update(min=3, max=2),
        Code.MIN_EXCEEDS_MAX,
        lambda d: f"modifier_groups[{index(d['modifier_groups'], 'burger_sauce')}]",
    ),
    (
        "required group without options",
        lambda d: g(d, "nugget_dip").update(options=[]),
        Code.REQUIRED_GROUP_UNSATISFIABLE,
        lambda d: f"modifier_groups[{index(d['modifier_groups'], 'nugget_dip')}]",
    ),
    (
        "missing price for a price list",
        lambda d: p(d, "cola")["variants"][1]["prices"].pop("delivery"),
        Code.MISSING_PRICE,
        lambda d: f"products[{index(d['products'], 'cola')}].variants[1].prices",
    ),
    (
        "price in an unknown price list",
        lambda d: p(d, "cola")["variants"][0]["prices"].update(happy_hour=100),
        Code.UNKNOWN_REFERENCE,
        lambda d: f"products[{index(d['products'], 'cola')}].variants[0].prices.happy_hour",
    ),
    (
        "combo slot that can never be filled",
        lambda d: p(d, "burger_menu")["slots"][0].update(choices=[]),
        Code.COMBO_SLOT_UNSATISFIABLE,
        lambda d: f"products[{index(d['products'], 'burger_menu')}].slots[0]",
    ),
    (
        "combo choice with an unknown variant",
        lambda d: p(d, "burger_menu")["slots"][1]["choices"][0].update(variant_id="jumbo"),
        Code.UNKNOWN_REFERENCE,
        lambda d: f"products[{index(d['products'], 'burger_menu')}].slots[1].choices[0].variant_id",
    ),
    (
        "option price override for an option the product lacks",
        lambda d: p(d, "double_cheeseburger")["option_prices"][0].update(option_id="extra_gold"),
        Code.UNKNOWN_REFERENCE,
        lambda d: (
            f"products[{index(d['products'], 'double_cheeseburger')}].option_prices[0].option_id"
        ),
    ),
    (
        "unknown tax",
        lambda d: p(d, "fries").update(tax_id="vat_luxury"),
        Code.UNKNOWN_REFERENCE,
        lambda d: f"products[{index(d['products'], 'fries')}].tax_id",
    ),
]


@pytest.mark.parametrize(("name", "change", "code", "path"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_catches_its_breakage(
    demo_data: dict[str, Any],
    name: str,
    change: Callable[[dict[str, Any]], None],
    code: Code,
    path: Callable[[dict[str, Any]], str],
) -> None:
    findings = check_menu(break_with(demo_data, change))
    errors = [(f.code, f.path) for f in findings if f.severity == Severity.ERROR]
    assert (code, path(demo_data)) in errors, errors


def test_negative_price_is_an_invalid_value(demo_data: dict[str, Any]) -> None:
    broken = orjson.loads(orjson.dumps(demo_data))
    p(broken, "fries")["variants"][0]["prices"]["instore"] = -250
    menu, findings = check_menu_data(broken)
    assert menu is None
    where = f"products[{index(broken['products'], 'fries')}].variants[0].prices.instore"
    assert [(f.code, f.path) for f in findings] == [(Code.INVALID_VALUE, where)]


def test_86d_choices_only_warn_so_the_menu_still_publishes(demo_data: dict[str, Any]) -> None:
    def all_burgers_86d(data: dict[str, Any]) -> None:
        for choice in p(data, "burger_menu")["slots"][0]["choices"]:
            p(data, choice["product_id"])["availability"]["available"] = False
        for option in g(data, "nugget_dip")["options"]:
            option["availability"]["available"] = False

    findings = check_menu(break_with(demo_data, all_burgers_86d))
    codes = {(f.severity, f.code) for f in findings}
    assert (Severity.WARNING, Code.COMBO_SLOT_UNSATISFIABLE) in codes
    assert (Severity.WARNING, Code.REQUIRED_GROUP_UNSATISFIABLE) in codes
    assert not [f for f in findings if f.severity == Severity.ERROR]


def test_an_uncategorised_product_is_only_a_warning(demo_data: dict[str, Any]) -> None:
    menu = break_with(demo_data, lambda d: p(d, "fries").update(category_ids=[]))
    [finding] = check_menu(menu)
    assert (finding.severity, finding.code) == (Severity.WARNING, Code.UNCATEGORISED_PRODUCT)


def test_cli_checks_a_menu_file(tmp_path: Path, demo_data: dict[str, Any]) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps(demo_data))
    run = subprocess.run(
        [sys.executable, "-m", "posintegrator.cli", "menu", "check", str(good)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "0 error(s), 0 warning(s)" in run.stdout
    broken = orjson.loads(orjson.dumps(demo_data))
    g(broken, "burger_sauce").update(min=3, max=2)
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(broken))
    run = subprocess.run(
        [sys.executable, "-m", "posintegrator.cli", "menu", "check", str(bad), "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    report = orjson.loads(run.stdout)
    assert report["errors"] == 1
    assert report["findings"][0]["code"] == "min_exceeds_max"


async def test_rejected_menu_keeps_the_last_good_one_and_the_report_says_why(
    tmp_path: Path,
) -> None:
    fake = ScriptedPos()
    connection = ConnectionSettings(
        name="fake",
        plugin="fake",
        locations=["loc"],
        status_source="polling",
        menu_sync_seconds=NO_PERIODIC_SYNC,
    )
    # The scheduler syncs nothing by itself meanwhile: the reports are those of the test's syncs.
    async with restarted_host(
        tmp_path, [connection], plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        status, report = await harness.request("GET", "/v1/locations/loc/menu/report")
        assert status == 200 and report["outcome"] == "unchanged" and report["errors"] == 0
        assert report["live_version"] == 1
        broken = one_product_menu("loc")
        broken.products[0].variants[0].prices = {}
        fake.menus["loc"] = broken
        with pytest.raises(MenuRejected):
            await harness.host.connections["fake"].menusync.sync("loc")
        status, report = await harness.request("GET", "/v1/locations/loc/menu/report")
        assert report["outcome"] == "rejected" and report["live_version"] == 1
        assert report["findings"][0]["path"] == "products[0].variants[0].prices"
        assert report["findings"][0]["code"] == "missing_price"
        menu = await harness.wait_for_menu("loc")
        assert menu.products[0].variants[0].prices == {"default": 500}, "last good menu stays"


async def test_diff_since_a_version(tmp_path: Path) -> None:
    fake = ScriptedPos()
    connection = ConnectionSettings(
        name="fake", plugin="fake", locations=["loc"], status_source="polling"
    )
    async with running_host(
        tmp_path, [connection], plugins=PluginHost.from_objects({"fake": fake})
    ) as harness:
        changed = one_product_menu("loc")
        changed.products[0].name = "Burger Royale"
        fake.menus["loc"] = changed
        await harness.host.connections["fake"].menusync.sync("loc")
        status, body = await harness.request("GET", "/v1/locations/loc/menu?since=1")
        assert status == 200
        assert (body["from_version"], body["to_version"]) == (1, 2)
        assert body["diff"]["products"]["changed"] == [
            {"id": "burger", "fields": {"name": "Burger Royale"}}
        ]
        status, body = await harness.request("GET", "/v1/locations/loc/menu?since=2")
        assert status == 200 and body["diff"]["products"]["changed"] == []
        status, problem = await harness.request("GET", "/v1/locations/loc/menu?since=9")
        assert status == 404 and problem["title"] == "Unknown version"
        status, problem = await harness.request("GET", "/v1/locations/loc/menu?since=x")
        assert status == 400 and problem["errors"][0]["field"] == "since"

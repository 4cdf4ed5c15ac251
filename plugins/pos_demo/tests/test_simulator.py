"""Behavioural tests of the DemoPOS simulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from pos_demo.simulator import RunningSimulator
from pos_demo.simulator.errors import ApiError
from pos_demo.simulator.menu import MenuCatalog
from pos_demo.simulator.validation import validate_order

pytestmark = pytest.mark.asyncio

SimulatorFactory = Callable[..., Awaitable[RunningSimulator]]

EU_ALLERGENS = {
    "gluten", "crustaceans", "eggs", "fish", "peanuts", "soybeans", "milk", "nuts",
    "celery", "mustard", "sesame", "sulphites", "lupin", "molluscs",
}  # fmt: skip
CHANNELS = {"kiosk", "web", "dine_in", "delivery", "ubereats"}
DIETARY_TAGS = {
    "vegetarian", "vegan", "halal", "kosher", "gluten_free", "lactose_free", "spicy", "organic",
}  # fmt: skip
PLUGIN_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def order_body(reference: str = "ref-1", **overrides: Any) -> dict[str, Any]:
    """A valid order: a cheeseburger with a nested sauce modifier and a large cola."""
    body: dict[str, Any] = {
        "reference": reference,
        "location": "downtown",
        "type": "takeaway",
        "total": 800 + 350,
        "payments": [{"method": "card", "amount": 800 + 350, "paid": True}],
        "currency": "EUR",
        "note": None,
        "pickup_at": None,
        "customer": {"name": "Ada", "phone": "+49 30 1234"},
        "lines": [
            {
                "item": "cheeseburger",
                "size": None,
                "qty": 1,
                "unit_price": 800,
                "mods": [
                    {
                        "option": "sauce_chipotle_mayo",
                        "qty": 1,
                        "mods": [{"option": "amount_extra", "qty": 1, "mods": []}],
                    }
                ],
            },
            {"item": "cola", "size": "large", "qty": 1, "unit_price": 350, "mods": []},
        ],
    }
    body.update(overrides)
    if "total" not in overrides and isinstance(body.get("lines"), list):
        # What the till adds up: the lines as given (a test that breaks a line still sends
        # amounts that add up, so the line is what the POS refuses).
        total = sum(
            line.get("unit_price", 0) * line.get("qty", 1)
            for line in body["lines"]
            if isinstance(line, dict)
            and isinstance(line.get("unit_price"), int)
            and isinstance(line.get("qty", 1), int)
        )
        body["total"] = total
        body["payments"] = [{"method": "card", "amount": total, "paid": True}]
    return body


async def post_order(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    body: Any,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST /orders with a fresh (or given) Idempotency-Key; returns (status, json)."""
    hdrs = {"Idempotency-Key": key or uuid.uuid4().hex, **(headers or {})}
    async with http.post(f"{sim.url}/orders", data=orjson.dumps(body), headers=hdrs) as resp:
        return resp.status, orjson.loads(await resp.read())


async def get_json(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET a URL; returns (status, json)."""
    async with http.get(url, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


async def wait_for_state(
    http: aiohttp.ClientSession, sim: RunningSimulator, order_id: str, state: str
) -> dict[str, Any]:
    """Poll an order until it reaches ``state`` (fails after 20 s)."""
    async with asyncio.timeout(20):
        while True:
            status, order = await get_json(http, f"{sim.url}/orders/{order_id}")
            assert status == 200
            if order["state"] == state:
                return dict(order)
            await asyncio.sleep(0.02)


def check_menu_consistency(menu: dict[str, Any]) -> None:
    """Assert referential integrity, price coverage and acyclic modifier nesting."""
    levels = {pl["id"] for pl in menu["price_levels"]}
    taxes = {t["id"] for t in menu["taxes"]}
    cats = {c["id"] for c in menu["categories"]}
    groups = {g["id"]: g for g in menu["modifier_groups"]}
    items = {i["id"]: i for i in menu["items"]}
    assert len(items) == len(menu["items"]), "duplicate item ids"
    for cat in menu["categories"]:
        assert cat["parent"] is None or cat["parent"] in cats
        assert "de" in cat["names"]
    for item in menu["items"]:
        assert item["category"] in cats and item["tax"] in taxes
        assert item["sizes"], item["id"]
        for size in item["sizes"]:
            assert set(size["prices"]) == levels, item["id"]
            assert all(isinstance(v, int) and v > 0 for v in size["prices"].values())
        assert all(g in groups for g in item["modifier_groups"]), item["id"]
        allergens = item["allergens"]["contains"] + item["allergens"]["may_contain"]
        assert set(allergens) <= EU_ALLERGENS, item["id"]
        assert "de" in item["names"] and "de" in item["descriptions"], item["id"]
        assert set(item.get("channels") or []) <= CHANNELS, item["id"]
        for override in item.get("option_prices", []):
            assert override["group"] in item["modifier_groups"], item["id"]
            option_ids = {o["id"] for o in groups[override["group"]]["options"]}
            assert override["option"] in option_ids, item["id"]
            assert set(override["prices"]) == levels, item["id"]
    for group in menu["modifier_groups"]:
        assert 0 <= group["min"] <= group["max"], group["id"]
        assert 0 <= group["free"] <= group["max"], group["id"]
        orderable = [o for o in group["options"] if o["available"]]
        assert sum(o["max_qty"] for o in orderable) >= group["min"], group["id"]
        assert sum(o["default"] for o in group["options"]) <= group["max"], group["id"]
        assert "de" in group["names"], group["id"]
        for option in group["options"]:
            assert set(option["prices"]) == levels
            assert all(g in groups for g in option["modifier_groups"]), option["id"]
            assert "de" in option["names"], option["id"]
            if "allergens" in option:
                declared = option["allergens"]["contains"] + option["allergens"]["may_contain"]
                assert set(declared) <= EU_ALLERGENS, option["id"]
            assert set(option.get("tags", [])) <= DIETARY_TAGS, option["id"]

    def visit(group_id: str, path: tuple[str, ...]) -> None:
        assert group_id not in path, f"cycle {(*path, group_id)}"
        for option in groups[group_id]["options"]:
            for child in option["modifier_groups"]:
                visit(child, (*path, group_id))

    for group_id in groups:
        visit(group_id, ())
    for combo in menu["combos"]:
        assert combo["category"] in cats and set(combo["prices"]) == levels
        for slot in combo["slots"]:
            assert 0 <= slot["min"] <= slot["max"]
            for choice in slot["choices"]:
                assert choice["item"] in items
                sizes = {s["id"] for s in items[choice["item"]]["sizes"]}
                assert choice["size"] is None or choice["size"] in sizes
                assert set(choice["upcharge"]) == levels


# --------------------------------------------------------------------------- menu


async def test_health_locations_and_menu_shape(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession
) -> None:
    http, sim = simulator_http, simulator
    assert await get_json(http, f"{sim.url}/health") == (200, {"status": "ok"})
    status, body = await get_json(http, f"{sim.url}/locations")
    assert status == 200
    locs = {loc["id"]: loc for loc in body["locations"]}
    assert set(locs) == {"downtown", "airport"}
    assert locs["downtown"]["currency"] == "EUR"
    assert locs["downtown"]["timezone"] == "Europe/Berlin"

    status, menu = await get_json(http, f"{sim.url}/menu?location=downtown")
    assert status == 200
    assert menu["location"] == "downtown" and menu["currency"] == "EUR"
    assert menu["timezone"] == "Europe/Berlin"
    assert datetime.fromisoformat(menu["updated_at"]).tzinfo is not None
    check_menu_consistency(menu)
    items = {i["id"]: i for i in menu["items"]}
    groups = {g["id"]: g for g in menu["modifier_groups"]}
    assert len(items) >= 40
    assert {pl["id"] for pl in menu["price_levels"]} == {"instore", "delivery", "ubereats"}
    assert {"burgers", "chicken", "sides", "drinks", "desserts", "breakfast"} <= {
        c["id"] for c in menu["categories"]
    }
    # nested modifiers: burger -> Sauce -> Chipotle mayo -> Sauce amount
    sauce = groups["burger_sauce"]
    assert "burger_sauce" in items["cheeseburger"]["modifier_groups"]
    chipotle = next(o for o in sauce["options"] if o["id"] == "sauce_chipotle_mayo")
    assert chipotle["modifier_groups"] == ["sauce_amount"]
    assert {o["name"] for o in groups["sauce_amount"]["options"]} == {"Light", "Normal", "Extra"}
    # a drink in three sizes
    assert [s["id"] for s in items["cola"]["sizes"]] == ["small", "medium", "large"]
    # the combo: burger, side, drink slots offering items with their own modifier groups
    combo = next(c for c in menu["combos"] if c["name"] == "Burger Menu")
    assert [s["id"] for s in combo["slots"]] == ["burger", "side", "drink"]
    burger_choice = items[combo["slots"][0]["choices"][0]["item"]]
    assert burger_choice["modifier_groups"]
    # 86'd item, back tomorrow 06:00 UTC
    sold_out = items["chicken_wrap"]
    assert sold_out["available"] is False
    assert sold_out["unavailable_reason"] == "out of stock"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    until = datetime.fromisoformat(sold_out["unavailable_until"])
    assert until == datetime(tomorrow.year, tomorrow.month, tomorrow.day, 6, tzinfo=UTC)
    assert all(i["unavailable_until"] is None for i in menu["items"] if i["available"])
    # breakfast only 06:00-11:00
    assert items["breakfast_muffin"]["hours"] == [
        {"days": [0, 1, 2, 3, 4, 5, 6], "from": "06:00", "to": "11:00"}
    ]
    # a price that differs for delivery
    cheese_prices = items["cheeseburger"]["sizes"][0]["prices"]
    assert cheese_prices["delivery"] > cheese_prices["instore"]
    # translated names and descriptions
    assert items["cheeseburger"]["descriptions"]["de"].startswith("Rindfleisch-Patty")
    assert items["fries"]["sizes"][2]["names"] == {"de": "Groß"}
    assert groups["bun_choice"]["names"] == {"de": "Brötchen"}
    assert combo["names"] == {"de": "Burger Menü"}
    assert [s["names"]["de"] for s in combo["slots"]] == ["Burger", "Beilage", "Getränk"]
    # beer (and melting ice cream) are not sold for delivery; everything else on all channels
    not_delivered = ["kiosk", "web", "dine_in"]
    assert {i: it["channels"] for i, it in items.items() if "channels" in it} == {
        "craft_beer": not_delivered,
        "sundae": not_delivered,
    }
    # a product-specific option price: extra cheese is cheaper on the double cheeseburger
    extra_cheese = next(o for o in groups["burger_extras"]["options"] if o["id"] == "extra_cheese")
    assert extra_cheese["prices"] == {"instore": 80, "delivery": 90, "ubereats": 90}
    assert items["double_cheeseburger"]["option_prices"] == [
        {
            "group": "burger_extras",
            "option": "extra_cheese",
            "prices": {"instore": 50, "delivery": 60, "ubereats": 60},
        }
    ]
    assert "option_prices" not in items["cheeseburger"]
    # free selections and defaults
    assert (groups["nugget_dip"]["min"], groups["nugget_dip"]["free"]) == (1, 1)
    assert groups["burger_sauce"]["free"] == 0
    defaults = {o["id"] for g in groups.values() for o in g["options"] if o["default"]}
    assert {"bun_brioche", "ice_normal", "amount_normal", "milk_whole"} <= defaults
    # option allergens and tags
    bun = {o["id"]: o for o in groups["bun_choice"]["options"]}
    assert bun["bun_sesame"]["allergens"] == {"contains": ["gluten", "sesame"], "may_contain": []}
    assert bun["bun_gluten_free"]["tags"] == ["gluten_free", "vegan"]
    assert extra_cheese["allergens"]["contains"] == ["milk"]
    assert extra_cheese["kcal"] == 70

    status, airport = await get_json(http, f"{sim.url}/menu?location=airport")
    assert status == 200
    check_menu_consistency(airport)
    airport_items = {i["id"]: i for i in airport["items"]}
    assert set(items) - set(airport_items) == {"chili_burger"}
    for item_id, item in airport_items.items():
        for size, down_size in zip(item["sizes"], items[item_id]["sizes"], strict=True):
            assert size["prices"] == {k: v + 50 for k, v in down_size["prices"].items()}
    airport_combo = next(c for c in airport["combos"] if c["id"] == combo["id"])
    assert airport_combo["prices"] == {k: v + 50 for k, v in combo["prices"].items()}
    assert airport["timezone"] == "Europe/Berlin"
    # option prices (and their per-product overrides) are the same everywhere
    assert airport["modifier_groups"] == menu["modifier_groups"]
    assert (
        airport_items["double_cheeseburger"]["option_prices"]
        == (items["double_cheeseburger"]["option_prices"])
    )

    status, err = await get_json(http, f"{sim.url}/menu?location=moon")
    assert status == 404 and err["error"] == "unknown_location" and err["message"]


# --------------------------------------------------------------------------- auth


async def test_api_key_required_except_health(
    simulator_factory: SimulatorFactory, simulator_http: aiohttp.ClientSession
) -> None:
    sim = await simulator_factory(api_key="s3cret")
    http = simulator_http
    assert (await get_json(http, f"{sim.url}/health"))[0] == 200
    for headers in (None, {"X-Api-Key": "wrong"}):
        status, err = await get_json(http, f"{sim.url}/locations", headers)
        assert status == 401 and err["error"] == "unauthorized"
        status, err = await post_order(http, sim, order_body(), headers=headers)
        assert status == 401
    status, _ = await get_json(http, f"{sim.url}/menu?location=downtown", {"X-Api-Key": "s3cret"})
    assert status == 200
    status, order = await post_order(http, sim, order_body(), headers={"X-Api-Key": "s3cret"})
    assert status == 201 and order["id"] == "D-000001"


# --------------------------------------------------------------------------- validation


async def test_order_validation_errors(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession
) -> None:
    http, sim = simulator_http, simulator
    async with http.post(f"{sim.url}/orders", data=orjson.dumps(order_body())) as resp:
        assert resp.status == 400
        assert orjson.loads(await resp.read())["error"] == "missing_idempotency_key"

    bad_item = order_body(lines=[{"item": "unicorn_burger", "qty": 1, "unit_price": 1}])
    status, err = await post_order(http, sim, bad_item)
    assert status == 422 and err["error"] == "invalid_order"
    assert "lines[0].item" in err["message"] and "unicorn_burger" in err["message"]

    sold_out = order_body(lines=[{"item": "chicken_wrap", "qty": 1, "unit_price": 720}])
    status, err = await post_order(http, sim, sold_out)
    assert (status, err["error"], err["item"]) == (409, "sold_out", "chicken_wrap")

    broken: list[tuple[dict[str, Any], str]] = [
        (order_body(location="moon"), "location"),
        (order_body(type="teleport"), "type"),
        (order_body(lines=[]), "lines"),
        (order_body(lines=[{"item": "cola", "size": "large", "qty": 0, "unit_price": 1}]),
         "lines[0].qty"),
        (order_body(lines=[{"item": "cola", "size": "huge", "qty": 1, "unit_price": 1}]),
         "lines[0].size"),
        (order_body(lines=[{"item": "cola", "size": "large", "qty": 1, "unit_price": 1,
                            "mods": [{"option": "sauce_mayo", "qty": 1}]}]),
         "lines[0].mods[0].option"),
        (order_body(lines=[{"item": "cheeseburger", "qty": 1, "unit_price": 1,
                            "mods": [{"option": "sauce_mayo", "qty": 1,
                                      "mods": [{"option": "nope", "qty": 1}]}]}]),
         "lines[0].mods[0].mods[0].option"),
        (order_body(lines=[{"combo": "burger_menu", "qty": 1, "unit_price": 990,
                            "components": [{"slot": "burger", "item": "cheeseburger"}]}]),
         "lines[0].components"),
    ]  # fmt: skip
    for body, field in broken:
        status, err = await post_order(http, sim, body)
        assert (status, err["error"]) == (422, "invalid_order"), (field, err)
        assert field in err["message"], (field, err)

    status, _ = await get_json(http, f"{sim.url}/orders")
    assert _ == {"orders": []}, "rejected orders must not be stored"

    combo = order_body(
        lines=[
            {
                "combo": "burger_menu",
                "size": None,
                "qty": 2,
                "unit_price": 1140,
                "components": [
                    {
                        "slot": "burger",
                        "item": "bacon_burger",
                        "size": None,
                        "mods": [{"option": "extra_patty", "qty": 1,
                                  "mods": [{"option": "cooking_medium", "qty": 1}]}],
                    },
                    {"slot": "side", "item": "fries", "size": "large", "mods": []},
                    {"slot": "drink", "item": "cola", "size": "medium",
                     "mods": [{"option": "ice_none", "qty": 1}]},
                ],
            }
        ]
    )  # fmt: skip
    status, order = await post_order(http, sim, combo)
    assert status == 201, order
    assert order["state"] == "accepted" and order["lines"][0]["combo"] == "burger_menu"
    assert order["lines"][0]["components"][0]["mods"][0]["mods"][0]["option"] == "cooking_medium"
    assert (await get_json(http, f"{sim.url}/orders/D-999999"))[0] == 404


async def test_example_order_prices_add_up() -> None:
    """The prices ``examples/order.json`` (at the repo root) relies on, with no free selection."""
    menu = MenuCatalog().menu_for("downtown")
    items = {i["id"]: i for i in menu["items"]}
    groups = {g["id"]: g for g in menu["modifier_groups"]}
    options = {o["id"]: o for g in groups.values() for o in g["options"]}
    combo = next(c for c in menu["combos"] if c["id"] == "burger_menu")
    drink = next(s for s in combo["slots"] if s["id"] == "drink")
    cola_large = next(c for c in drink["choices"] if (c["item"], c["size"]) == ("cola", "large"))
    assert [groups[g]["free"] for g in ("burger_sauce", "sauce_amount", "shake_topping")] == [0] * 3
    assert "option_prices" not in items["cheeseburger"]
    burger_menu = (
        combo["prices"]["instore"]
        + options["sauce_chipotle_mayo"]["prices"]["instore"]
        + options["amount_extra"]["prices"]["instore"]
        + cola_large["upcharge"]["instore"]
    )
    assert burger_menu == 990 + 50 + 20 + 50 == 1110
    vanilla = next(s for s in items["vanilla_shake"]["sizes"] if s["id"] == "medium")
    shake = vanilla["prices"]["instore"] + options["topping_whipped_cream"]["prices"]["instore"]
    assert shake == 390 + 50 == 440


async def test_breakfast_only_served_in_the_morning() -> None:
    catalog = MenuCatalog()
    body = order_body(lines=[{"item": "pancakes", "qty": 1, "unit_price": 490}])
    # January: Berlin is UTC+1, so 07:30 UTC is 08:30 local and 12:00 UTC is 13:00 local.
    ok = validate_order(body, catalog, datetime(2026, 1, 14, 7, 30, tzinfo=UTC))
    assert ok["lines"][0]["item"] == "pancakes"
    with pytest.raises(ApiError) as info:
        validate_order(body, catalog, datetime(2026, 1, 14, 12, 0, tzinfo=UTC))
    assert (info.value.status, info.value.code) == (409, "outside_hours")


# --------------------------------------------------------------------------- idempotency


async def test_idempotency_key_dedupes_even_concurrently(
    simulator_factory: SimulatorFactory, simulator_http: aiohttp.ClientSession
) -> None:
    sim = await simulator_factory(stage_seconds=60.0, submit_delay_seconds=0.2)
    http = simulator_http
    body = order_body("ref-idem")
    results = await asyncio.gather(*(post_order(http, sim, body, key="key-1") for _ in range(5)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 200, 201]
    assert len({order["id"] for _, order in results}) == 1

    status, again = await post_order(http, sim, body, key="key-1")
    assert status == 200 and again["id"] == results[0][1]["id"]
    status, err = await post_order(http, sim, order_body("ref-other"), key="key-1")
    assert (status, err["error"]) == (422, "idempotency_key_reused")

    _, listed = await get_json(http, f"{sim.url}/orders?reference=ref-idem")
    assert len(listed["orders"]) == 1
    _, everything = await get_json(http, f"{sim.url}/orders")
    assert len(everything["orders"]) == 1
    _, feed = await get_json(http, f"{sim.url}/events")
    assert [e["state"] for e in feed["events"]] == ["accepted"]


# --------------------------------------------------------------------------- kitchen


async def test_kitchen_moves_orders_through_stages(
    simulator_factory: SimulatorFactory, simulator_http: aiohttp.ClientSession
) -> None:
    sim = await simulator_factory(stage_seconds=0.05)
    http = simulator_http
    status, first = await post_order(http, sim, order_body("ref-a"))
    assert status == 201 and first["state"] == "accepted"
    done = await wait_for_state(http, sim, first["id"], "picked_up")
    assert [h["state"] for h in done["history"]] == [
        "accepted", "preparing", "ready", "picked_up",
    ]  # fmt: skip

    _, feed = await get_json(http, f"{sim.url}/events?after=0")
    assert [e["state"] for e in feed["events"]] == ["accepted", "preparing", "ready", "picked_up"]
    assert [e["seq"] for e in feed["events"]] == [1, 2, 3, 4]
    assert feed["last_seq"] == 4
    assert all(
        e["order_id"] == first["id"] and e["reference"] == "ref-a" and e["location"] == "downtown"
        for e in feed["events"]
    )
    _, page = await get_json(http, f"{sim.url}/events?after=1&limit=2")
    assert [e["seq"] for e in page["events"]] == [2, 3] and page["last_seq"] == 3
    _, empty = await get_json(http, f"{sim.url}/events?after=4")
    assert empty == {"events": [], "last_seq": 4, "has_more": False}

    async with http.post(f"{sim.url}/orders/{first['id']}/cancel") as resp:
        assert resp.status == 409
        assert orjson.loads(await resp.read())["error"] == "not_cancellable"

    sim.config.stage_seconds = 0.3  # runtime change applies to the next order
    _, second = await post_order(http, sim, order_body("ref-b"))
    async with http.post(f"{sim.url}/orders/{second['id']}/cancel") as resp:
        assert resp.status == 200
        assert orjson.loads(await resp.read())["state"] == "cancelled"
    # A third order, placed after the second, is the clock: once its first stage is over, the
    # second's would have been too, had the cancel not stopped its timer.
    _, third = await post_order(http, sim, order_body("ref-c"))
    await wait_for_state(http, sim, third["id"], "preparing")
    _, after = await get_json(http, f"{sim.url}/orders/{second['id']}")
    assert after["state"] == "cancelled"
    _, feed = await get_json(http, f"{sim.url}/events?after=4")
    second_events = [e["state"] for e in feed["events"] if e["order_id"] == second["id"]]
    assert second_events == ["accepted", "cancelled"]


# --------------------------------------------------------------------------- webhooks


@pytest_asyncio.fixture
async def webhook_receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A loopback HTTP endpoint that fails its first call with 500, then records calls."""
    received: list[tuple[dict[str, str], bytes]] = []
    calls = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=500)
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook", received
    finally:
        await runner.cleanup()


async def test_webhooks_are_signed_retried_and_ordered(
    simulator_factory: SimulatorFactory,
    simulator_http: aiohttp.ClientSession,
    webhook_receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = webhook_receiver
    sim = await simulator_factory(stage_seconds=0.05, webhook_retry_delays=(0.05, 0.05, 0.05))
    sim.set_webhook(url, "whsec")  # configured at runtime
    _, order = await post_order(simulator_http, sim, order_body("ref-hook"))
    await wait_for_state(simulator_http, sim, order["id"], "picked_up")
    await sim.wait_webhooks_idle(5)

    _, feed = await get_json(simulator_http, f"{sim.url}/events")
    assert len(received) == 4  # the first (failed) attempt was retried
    for (headers, raw), event in zip(received, feed["events"], strict=True):
        expected = "sha256=" + hmac.new(b"whsec", raw, hashlib.sha256).hexdigest()
        assert headers["X-DemoPOS-Signature"] == expected
        assert orjson.loads(raw) == event
        assert headers["X-DemoPOS-Event"] == str(event["seq"])
    assert [orjson.loads(raw)["state"] for _, raw in received] == [
        "accepted", "preparing", "ready", "picked_up",
    ]  # fmt: skip


# --------------------------------------------------------------------------- durability


async def test_restart_keeps_state_and_resumes_kitchen(
    simulator_factory: SimulatorFactory, simulator_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    http = simulator_http
    sim = await simulator_factory(stage_seconds=60.0)
    _, first = await post_order(http, sim, order_body("ref-1"), key="k1")
    _, second = await post_order(http, sim, order_body("ref-2"), key="k2")
    await sim.close()
    assert (tmp_path / "demopos" / "demopos.sqlite3").exists()

    sim = await simulator_factory(stage_seconds=0.05)
    _, listed = await get_json(http, f"{sim.url}/orders")
    assert [o["id"] for o in listed["orders"]] == [first["id"], second["id"]]
    status, again = await post_order(http, sim, order_body("ref-1"), key="k1")
    assert (status, again["id"]) == (200, first["id"])
    status, err = await post_order(http, sim, order_body("ref-x"), key="k2")
    assert (status, err["error"]) == (422, "idempotency_key_reused")

    for order in (first, second):
        await wait_for_state(http, sim, order["id"], "picked_up")
    status, third = await post_order(http, sim, order_body("ref-3"), key="k3")
    assert (status, third["id"]) == (201, "D-000003")
    _, feed = await get_json(http, f"{sim.url}/events?limit=1000")
    seqs = [e["seq"] for e in feed["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    for order in (first, second):
        states = [e["state"] for e in feed["events"] if e["order_id"] == order["id"]]
        assert states == ["accepted", "preparing", "ready", "picked_up"]
    await sim.close()

    sim = await simulator_factory(stage_seconds=0.05)
    _, feed2 = await get_json(http, f"{sim.url}/events?after={feed['last_seq']}")
    assert feed2["last_seq"] >= feed["last_seq"]
    assert all(e["seq"] > feed["last_seq"] for e in feed2["events"])


# --------------------------------------------------------------------------- availability


async def post_availability(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: Any
) -> tuple[int, Any]:
    """POST /availability (a staff 86 action); returns (status, json)."""
    async with http.post(f"{sim.url}/availability", data=orjson.dumps(body)) as resp:
        return resp.status, orjson.loads(await resp.read())


def menu_entity(menu: dict[str, Any], entity_id: str) -> dict[str, Any]:
    """An item, combo or modifier option of a native menu by id."""
    options = [o for g in menu["modifier_groups"] for o in g["options"]]
    found = [e for e in [*menu["items"], *menu["combos"], *options] if e["id"] == entity_id]
    assert len(found) == 1, entity_id
    return dict(found[0])


def fries_order(reference: str) -> dict[str, Any]:
    """An order of medium fries with a dip."""
    return order_body(
        reference,
        amount=390,
        lines=[
            {
                "item": "fries",
                "size": "medium",
                "qty": 1,
                "unit_price": 390,
                "mods": [{"option": "fries_dip_mayo", "qty": 1, "mods": []}],
            }
        ],
    )


async def test_86_an_item_and_bring_it_back(
    simulator_factory: SimulatorFactory,
    simulator_http: aiohttp.ClientSession,
    webhook_receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    http = simulator_http
    url, received = webhook_receiver
    sim = await simulator_factory(stage_seconds=60.0, webhook_retry_delays=(0.05, 0.05))
    sim.set_webhook(url, "whsec")
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    status, event = await post_availability(
        http,
        sim,
        {
            "location": "downtown",
            "item": "fries",
            "available": False,
            "until": until.isoformat(),
            "reason": "fryer broken",
        },
    )
    until_text = until.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert status == 200
    assert {k: v for k, v in event.items() if k != "at"} == {
        "type": "availability",
        "seq": 1,
        "location": "downtown",
        "item": "fries",
        "available": False,
        "until": until_text,
        "reason": "fryer broken",
        "hours": None,
        "channels": None,
    }

    _, menu = await get_json(http, f"{sim.url}/menu?location=downtown")
    fries = menu_entity(menu, "fries")
    assert (fries["available"], fries["unavailable_until"], fries["unavailable_reason"]) == (
        False, until_text, "fryer broken",
    )  # fmt: skip
    _, airport = await get_json(http, f"{sim.url}/menu?location=airport")
    assert menu_entity(airport, "fries")["available"] is True  # per location
    status, err = await post_order(http, sim, fries_order("ref-fries-1"))
    assert (status, err["error"], err["item"]) == (409, "sold_out", "fries")
    assert "fryer broken" in err["message"]

    await sim.wait_webhooks_idle(5)
    assert len(received) == 1  # the first (failed) attempt was retried
    headers, raw = received[0]
    assert headers["X-DemoPOS-Signature"] == (
        "sha256=" + hmac.new(b"whsec", raw, hashlib.sha256).hexdigest()
    )
    assert headers["X-DemoPOS-Event"] == "availability-1"
    assert orjson.loads(raw) == event
    _, feed = await get_json(http, f"{sim.url}/events")
    assert feed["events"] == []  # the order feed holds order events only
    await sim.close()

    sim = await simulator_factory(stage_seconds=60.0)  # a restart keeps the 86
    sim.set_webhook(url, "whsec")
    _, menu = await get_json(http, f"{sim.url}/menu?location=downtown")
    assert menu_entity(menu, "fries")["available"] is False
    status, err = await post_order(http, sim, fries_order("ref-fries-2"))
    assert (status, err["error"]) == (409, "sold_out")

    back = sim.set_availability("downtown", item="fries", available=True, reason="ignored")
    assert (back["seq"], back["available"], back["until"], back["reason"]) == (2, True, None, None)
    _, menu = await get_json(http, f"{sim.url}/menu?location=downtown")
    fries = menu_entity(menu, "fries")
    assert (fries["available"], fries["unavailable_until"], fries["unavailable_reason"]) == (
        True, None, None,
    )  # fmt: skip
    status, _ = await post_order(http, sim, fries_order("ref-fries-3"))
    assert status == 201
    await sim.wait_webhooks_idle(5)
    bodies = [orjson.loads(raw) for _, raw in received]
    assert [b["available"] for b in bodies if b.get("type") == "availability"] == [False, True]
    assert [b["state"] for b in bodies if "type" not in b] == ["accepted"]  # order body as before
    assert sim.core.menu_requests == {"downtown": 2}  # counted per run of the simulator


async def test_86_an_option(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession
) -> None:
    http = simulator_http
    event = simulator.set_availability(
        "downtown", option="fries_dip_mayo", available=False, reason="out of stock"
    )
    assert (event["option"], event["group"], event["until"]) == (
        "fries_dip_mayo",
        "fries_dip",
        None,
    )
    assert "item" not in event
    _, menu = await get_json(http, f"{simulator.url}/menu?location=downtown")
    option = menu_entity(menu, "fries_dip_mayo")
    assert (option["available"], option["unavailable_reason"]) == (False, "out of stock")
    status, err = await post_order(http, simulator, fries_order("ref-dip-1"))
    assert (status, err["error"], err["item"]) == (409, "sold_out", "fries_dip_mayo")

    simulator.set_availability("downtown", option="fries_dip_mayo", available=True)
    status, _ = await post_order(http, simulator, fries_order("ref-dip-2"))
    assert status == 201


async def test_86_with_until_in_the_past_no_longer_applies(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession
) -> None:
    simulator.set_availability(
        "downtown", item="fries", available=False, until=datetime.now(UTC) - timedelta(seconds=1)
    )
    _, menu = await get_json(simulator_http, f"{simulator.url}/menu?location=downtown")
    assert menu_entity(menu, "fries")["available"] is True
    status, _ = await post_order(simulator_http, simulator, fries_order("ref-late"))
    assert status == 201


async def test_restoring_an_item_86d_in_the_base_menu(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession
) -> None:
    simulator.set_availability("downtown", item="chicken_wrap", available=True)
    _, menu = await get_json(simulator_http, f"{simulator.url}/menu?location=downtown")
    wrap = menu_entity(menu, "chicken_wrap")
    assert (wrap["available"], wrap["unavailable_until"], wrap["unavailable_reason"]) == (
        True, None, None,
    )  # fmt: skip


async def test_86_carries_hours_and_channels(
    simulator: RunningSimulator, simulator_http: aiohttp.ClientSession
) -> None:
    combo = simulator.set_availability("downtown", item="breakfast_menu", available=False)
    assert combo["item"] == "breakfast_menu"
    pancakes = simulator.set_availability("downtown", item="pancakes", available=False)
    assert pancakes["hours"] == [{"days": [0, 1, 2, 3, 4, 5, 6], "from": "06:00", "to": "11:00"}]
    beer = simulator.set_availability("downtown", item="craft_beer", available=False)
    assert beer["channels"] == ["kiosk", "web", "dine_in"]
    _, menu = await get_json(simulator_http, f"{simulator.url}/menu?location=downtown")
    assert menu_entity(menu, "breakfast_menu")["available"] is False


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"location": "mars", "item": "fries", "available": False}, 404, "unknown_location"),
        ({"location": "downtown", "item": "caviar", "available": False}, 422, "invalid_request"),
        ({"location": "airport", "item": "chili_burger", "available": False}, 422,
         "invalid_request"),
        ({"location": "downtown", "option": "nope", "available": False}, 422, "invalid_request"),
        ({"location": "downtown", "available": False}, 422, "invalid_request"),
        ({"location": "downtown", "item": "fries", "option": "sauce_bbq", "available": False},
         422, "invalid_request"),
        ({"location": "downtown", "item": "fries", "available": "no"}, 422, "invalid_request"),
        ({"location": "downtown", "item": "fries", "available": False, "until": "tomorrow"},
         422, "invalid_request"),
        ({"location": "downtown", "item": "fries", "available": False,
          "until": "2030-01-01T10:00:00"}, 422, "invalid_request"),
        ({"location": "downtown", "item": "fries", "available": False, "reason": 5}, 422,
         "invalid_request"),
        ([1], 422, "invalid_request"),
    ],
)  # fmt: skip
async def test_availability_request_errors(
    simulator: RunningSimulator,
    simulator_http: aiohttp.ClientSession,
    body: Any,
    status: int,
    code: str,
) -> None:
    got, err = await post_availability(simulator_http, simulator, body)
    assert (got, err["error"]) == (status, code)
    assert simulator.core.storage.state.availability == {}


# --------------------------------------------------------------------------- CLI


async def start_simulator_cli(
    *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m pos_demo.simulator --port 0 ...`` in a subprocess, and the URL it serves.

    The OS picks the port and the simulator prints it once it listens: no port is guessed, and
    no request is sent before the simulator is ready.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pos_demo.simulator", "--port", "0", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while line := (await proc.stdout.readline()).decode():
                found = re.search(r"listening on (http://\S+)", line)
                if found:
                    return proc, found.group(1)
        raise AssertionError(f"the simulator exited ({await proc.wait()}) before it listened")
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise


async def test_cli_serves_health(tmp_path: Path, simulator_http: aiohttp.ClientSession) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN_ROOT), *sys.path])}
    proc, url = await start_simulator_cli("--data-dir", str(tmp_path / "cli-data"), env=env)
    try:
        status, body = await get_json(simulator_http, f"{url}/health")
        assert (status, body) == (200, {"status": "ok"})
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0
    assert (tmp_path / "cli-data").is_dir()

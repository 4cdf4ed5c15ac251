"""Tests of the Square double itself, over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from spec import SpecViolation, SquareSpec
from squaredouble import (
    SIGNATURE_HEADER,
    SUBSCRIPTION_ID,
    RunningDouble,
    generate_catalog,
    present_at,
    sign,
    start_double,
)


class Client:
    """A tiny Square client that checks every answer against the spec independently."""

    def __init__(self, double: RunningDouble, session: aiohttp.ClientSession) -> None:
        self.double = double
        self.session = session
        self.spec = SquareSpec.load()

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        async with self.session.request(
            method,
            self.double.url + path,
            json=body,
            params=params,
            headers=headers if headers is not None else self.double.headers,
        ) as response:
            data = await response.json()
        self.spec.validate_response(method, path, response.status, data, strict=True)
        return response.status, data, response


@pytest.fixture
async def double() -> AsyncIterator[RunningDouble]:
    running = await start_double()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def client(double: RunningDouble) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(double, session)


def _sellable(double: RunningDouble, location: str, *, with_lists: bool = False) -> dict[str, Any]:
    """A live variation present and not sold out at ``location`` whose item needs no modifier."""
    state = double.state
    for obj in state.objects:
        if obj["type"] != "ITEM" or obj.get("is_deleted") or not present_at(obj, location):
            continue
        infos = [i for i in obj["item_data"].get("modifier_list_info") or () if i["enabled"]]
        needs = any(state.modifier_limits(i)[0] > 0 for i in infos)
        if needs or bool(infos) != with_lists:
            continue
        for variation in obj["item_data"]["variations"]:
            data = variation["item_variation_data"]
            sold_out = any(
                o.get("sold_out") and o["location_id"] == location
                for o in data.get("location_overrides") or ()
            )
            if present_at(variation, location) and not sold_out and "price_money" in data:
                return dict(variation)
    raise AssertionError("no sellable variation")


def _order(location: str, variation_id: str, quantity: str = "2", **extra: Any) -> dict[str, Any]:
    return {
        "location_id": location,
        "line_items": [{"catalog_object_id": variation_id, "quantity": quantity}],
        "fulfillments": [
            {
                "type": "PICKUP",
                "state": "PROPOSED",
                "pickup_details": {
                    "recipient": {"display_name": "Ada L.", "phone_number": "+12125550100"},
                    "pickup_at": "2030-01-01T12:00:00Z",
                },
            }
        ],
        **extra,
    }


async def test_locations_and_auth(client: Client, double: RunningDouble) -> None:
    status, body, _ = await client.call("GET", "/v2/locations")
    assert status == 200
    assert [loc["id"] for loc in body["locations"]] == double.location_ids
    status, body, _ = await client.call("GET", "/v2/locations", headers={})
    assert status == 401
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    double.double.revoke(double.token)
    status, body, _ = await client.call("GET", "/v2/locations")
    assert (status, body["errors"][0]["code"]) == (401, "ACCESS_TOKEN_REVOKED")
    assert body["errors"][0]["category"] == "AUTHENTICATION_ERROR"
    double.assert_clean()


async def test_list_catalog_pages_and_cursor_types(client: Client, double: RunningDouble) -> None:
    counts = double.double.catalog.counts
    seen: list[str] = []
    cursor = None
    first_cursor = None
    pages = 0
    while True:
        params = {"types": "ITEM_VARIATION"} | ({"cursor": cursor} if cursor else {})
        status, body, _ = await client.call("GET", "/v2/catalog/list", params=params)
        assert status == 200
        pages += 1
        assert len(body["objects"]) <= 100
        seen += [o["id"] for o in body["objects"]]
        assert all(not o["is_deleted"] for o in body["objects"])
        cursor = body.get("cursor")
        if cursor is None:
            break
        first_cursor = first_cursor or cursor
    assert pages == 3
    assert first_cursor is not None
    assert len(seen) == len(set(seen)) == counts.variations
    status, body, _ = await client.call(
        "GET", "/v2/catalog/list", params={"types": "ITEM", "cursor": first_cursor}
    )
    assert (status, body["errors"][0]["code"]) == (400, "INVALID_CURSOR")
    # Default types: top-level objects, IMAGE and nested types excluded, deleted ones excluded.
    total = 0
    cursor = None
    while True:
        status, body, _ = await client.call(
            "GET", "/v2/catalog/list", params={"cursor": cursor} if cursor else None
        )
        total += len(body.get("objects", []))
        cursor = body.get("cursor")
        if not cursor:
            break
    assert total == counts.list_catalog_default
    double.assert_clean()


async def test_search_catalog_deleted_objects(client: Client, double: RunningDouble) -> None:
    counts = double.double.catalog.counts
    found: dict[bool, int] = {}
    for include in (False, True):
        items, cursor = 0, None
        while True:
            body_in: dict[str, Any] = {
                "object_types": ["ITEM"],
                "include_deleted_objects": include,
                "limit": 50,
            }
            if cursor:
                body_in["cursor"] = cursor
            status, body, _ = await client.call("POST", "/v2/catalog/search", body_in)
            assert status == 200
            items += len(body.get("objects", []))
            cursor = body.get("cursor")
            if not cursor:
                break
        found[include] = items
    assert found[False] == counts.items
    assert found[True] == counts.items + counts.deleted_items
    double.assert_clean()


async def test_request_breaking_the_spec_is_refused(client: Client, double: RunningDouble) -> None:
    location = double.location_ids[0]
    variation = _sellable(double, location)
    bad = _order(location, variation["id"])
    bad["line_items"][0]["quantity"] = 2
    request = {"idempotency_key": "q", "order": bad}
    status, body, _ = await client.call("POST", "/v2/orders", request)
    assert status == 400
    error = body["errors"][0]
    assert error["category"] == "INVALID_REQUEST_ERROR"
    assert error["code"] == "EXPECTED_STRING"
    assert error["field"] == "order.line_items[0].quantity"
    assert "CreateOrder" in error["detail"]
    assert len(double.spec_violations) == 1
    typo = _order(location, variation["id"])
    typo["line_items"][0]["quantitty"] = "1"
    status, body, _ = await client.call("POST", "/v2/orders", {"order": typo})
    assert (status, body["errors"][0]["code"]) == (400, "UNKNOWN_BODY_PARAMETER")
    assert "did you mean 'quantity'" in body["errors"][0]["detail"]
    assert len(double.spec_violations) == 2
    assert all(v.direction == "request" for v in double.spec_violations)
    with pytest.raises(SpecViolation, match=r"\$\.order\.line_items\[0\]\.quantity"):
        client.spec.validate_request("POST", "/v2/orders", {"order": bad})
    status, body, _ = await client.call("GET", "/v2/catalog/list", params={"typez": "ITEM"})
    assert (status, body["errors"][0]["code"]) == (400, "UNKNOWN_QUERY_PARAMETER")


async def test_create_order_idempotency_and_totals(client: Client, double: RunningDouble) -> None:
    location = double.location_ids[0]
    variation = _sellable(double, location)
    order = _order(location, variation["id"], "3")
    request = {"idempotency_key": "key-1", "order": order}
    status, first, _ = await client.call("POST", "/v2/orders", request)
    assert status == 200, first
    status, again, _ = await client.call("POST", "/v2/orders", request)
    assert again["order"]["id"] == first["order"]["id"]
    assert len(double.state.orders) == 1
    other = {"idempotency_key": "key-1", "order": _order(location, variation["id"], "1")}
    status, body, _ = await client.call("POST", "/v2/orders", other)
    assert (status, body["errors"][0]["code"]) == (400, "IDEMPOTENCY_KEY_REUSED")
    created = first["order"]
    price = variation["item_variation_data"]["price_money"]["amount"]
    line = created["line_items"][0]
    assert line["gross_sales_money"]["amount"] == 3 * price
    assert created["total_money"]["amount"] == 3 * price
    assert created["fulfillments"][0]["state"] == "PROPOSED"
    # Auto-applied catalog taxes.
    taxed = {
        "idempotency_key": "key-2",
        "order": _order(location, variation["id"], "1", pricing_options={"auto_apply_taxes": True}),
    }
    status, body, _ = await client.call("POST", "/v2/orders", taxed)
    assert status == 200, body
    tax = body["order"]["taxes"][0]
    if tax["type"] == "ADDITIVE":
        expected = round(price * float(tax["percentage"]) / 100)
        assert body["order"]["total_money"]["amount"] == price + expected
    assert body["order"]["total_tax_money"]["amount"] > 0
    double.assert_clean()


async def test_item_id_sold_out_and_modifiers(client: Client, double: RunningDouble) -> None:
    location = double.location_ids[0]
    variation = _sellable(double, location)
    item_id = variation["item_variation_data"]["item_id"]
    status, body, _ = await client.call("POST", "/v2/orders", {"order": _order(location, item_id)})
    assert (status, body["errors"][0]["code"]) == (400, "INVALID_VALUE")
    assert body["errors"][0]["field"] == "order.line_items[0].catalog_object_id"
    assert "ITEM_VARIATION" in body["errors"][0]["detail"]
    double.double.set_sold_out(variation["id"], location, True)
    status, body, _ = await client.call(
        "POST", "/v2/orders", {"order": _order(location, variation["id"])}
    )
    assert status == 400
    assert "sold out" in body["errors"][0]["detail"]
    assert body["errors"][0]["field"] == "order.line_items[0].catalog_object_id"
    # A modifier of a list enabled on the item is accepted, one of another list is not.
    with_mods = _sellable(double, location, with_lists=True)
    item = double.state.parent[with_mods["id"]]
    info = next(i for i in item["item_data"]["modifier_list_info"] if i["enabled"])
    modifier_list = double.state.by_id[info["modifier_list_id"]]
    modifier = modifier_list["modifier_list_data"]["modifiers"][0]
    order = _order(location, with_mods["id"], "1")
    order["line_items"][0]["modifiers"] = [{"catalog_object_id": modifier["id"], "quantity": "1"}]
    status, body, _ = await client.call("POST", "/v2/orders", {"order": order})
    assert status == 200, body
    mod_price = modifier["modifier_data"]["price_money"]["amount"]
    line = body["order"]["line_items"][0]
    assert line["gross_sales_money"]["amount"] == line["base_price_money"]["amount"] + mod_price
    enabled = {
        i["modifier_list_id"] for i in item["item_data"]["modifier_list_info"] if i["enabled"]
    }
    foreign = next(
        o for o in double.state.objects if o["type"] == "MODIFIER_LIST" and o["id"] not in enabled
    )
    order["line_items"][0]["modifiers"] = [
        {"catalog_object_id": foreign["modifier_list_data"]["modifiers"][0]["id"]}
    ]
    status, body, _ = await client.call("POST", "/v2/orders", {"order": order})
    assert (status, body["errors"][0]["field"]) == (
        400,
        "order.line_items[0].modifiers[0].catalog_object_id",
    )
    double.assert_clean()


async def test_fulfillment_search_payment(client: Client, double: RunningDouble) -> None:
    location = double.location_ids[0]
    variation = _sellable(double, location)
    status, body, _ = await client.call(
        "POST", "/v2/orders", {"idempotency_key": "o1", "order": _order(location, variation["id"])}
    )
    order = body["order"]
    uid = order["fulfillments"][0]["uid"]
    for state in ("RESERVED", "PREPARED"):
        status, body, _ = await client.call(
            "PUT",
            f"/v2/orders/{order['id']}",
            {
                "order": {
                    "version": order["version"],
                    "location_id": location,
                    "fulfillments": [{"uid": uid, "state": state}],
                },
                "idempotency_key": f"u-{state}",
            },
        )
        assert status == 200, body
        assert body["order"]["version"] == order["version"] + 1
        order = body["order"]
    status, body, _ = await client.call(
        "PUT",
        f"/v2/orders/{order['id']}",
        {"order": {"version": 1, "location_id": location}},
    )
    assert status == 400  # stale version
    status, body, _ = await client.call(
        "POST",
        "/v2/payments",
        {
            "idempotency_key": "p1",
            "source_id": "EXTERNAL",
            "order_id": order["id"],
            "amount_money": order["total_money"],
            "external_details": {"type": "OTHER", "source": "Cloud ordering platform"},
        },
    )
    assert status == 200, body
    assert body["payment"]["status"] == "COMPLETED"
    double.double.advance_fulfillment(order["id"], "COMPLETED")
    status, body, _ = await client.call(
        "POST", "/v2/orders/batch-retrieve", {"order_ids": [order["id"], "missing"]}
    )
    [paid] = body["orders"]
    assert paid["tenders"][0]["type"] == "OTHER"
    assert paid["net_amount_due_money"]["amount"] == 0
    assert paid["state"] == "COMPLETED"
    status, body, _ = await client.call(
        "POST",
        "/v2/orders/search",
        {
            "location_ids": [location],
            "query": {
                "filter": {
                    "state_filter": {"states": ["COMPLETED"]},
                    "date_time_filter": {"updated_at": {"start_at": "2020-01-01T00:00:00Z"}},
                },
                "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
            },
        },
    )
    assert status == 200, body
    assert [o["id"] for o in body["orders"]] == [order["id"]]
    status, body, _ = await client.call(
        "POST",
        "/v2/orders/search",
        {"location_ids": [location], "query": {"filter": {"state_filter": {"states": ["OPEN"]}}}},
    )
    assert body.get("orders", []) == []
    status, body, _ = await client.call("GET", f"/v2/orders/{order['id']}")
    assert body["order"]["fulfillments"][0]["state"] == "COMPLETED"
    double.assert_clean()


async def test_rate_limit(client: Client, double: RunningDouble) -> None:
    double.double.rate_limit(2, retry_after=3)
    for _ in range(2):
        status, body, response = await client.call("GET", "/v2/locations")
        assert (status, body["errors"][0]["code"]) == (429, "RATE_LIMITED")
        assert body["errors"][0]["category"] == "RATE_LIMIT_ERROR"
        assert response.headers["Retry-After"] == "3"
    status, _, _ = await client.call("GET", "/v2/locations")
    assert status == 200
    double.double.faults.plan.update({"fail_5xx": 1.0, "methods": ("GET",)})
    async with client.session.get(double.url + "/v2/locations", headers=double.headers) as resp:
        assert resp.status == 503
    assert double.double.faults.counts["fail_5xx"] == 1


async def test_webhooks_signed_and_shaped() -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/pos/square-main/webhook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/pos/square-main/webhook"
    key = "whsec-test-key"
    double = await start_double(notification_url=url, signature_key=key)
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(double, session)
            location = double.location_ids[0]
            variation = _sellable(double, location)
            status, body, _ = await client.call(
                "POST", "/v2/orders", {"order": _order(location, variation["id"])}
            )
            assert status == 200
            double.double.advance_fulfillment(body["order"]["id"], "RESERVED")
            double.double.set_sold_out(variation["id"], location)
            await double.double.webhooks.drain()
        types = []
        spec = SquareSpec.load()
        schemas = {
            "order.created": "OrderCreatedEvent",
            "order.updated": "OrderUpdatedEvent",
            "order.fulfillment.updated": "OrderFulfillmentUpdatedEvent",
            "catalog.version.updated": "CatalogVersionUpdatedEvent",
        }
        for raw, headers in received:
            expected = base64.b64encode(
                hmac.new(key.encode(), (url + raw.decode()).encode(), hashlib.sha256).digest()
            ).decode()
            assert headers["x-square-hmacsha256-signature"] == expected
            event = json.loads(raw)
            spec.validate_schema(schemas[event["type"]], event, strict=True)
            assert event["merchant_id"] == double.double.state.merchant_id
            types.append(event["type"])
        assert types == [
            "order.created",
            "order.updated",
            "order.fulfillment.updated",
            "catalog.version.updated",
        ]
        ids = [json.loads(raw)["event_id"] for raw, _ in received]
        assert len(set(ids)) == len(ids)
        fulfillment = json.loads(received[2][0])["data"]["object"]
        update = fulfillment["order_fulfillment_updated"]["fulfillment_update"][0]
        assert (update["old_state"], update["new_state"]) == ("PROPOSED", "RESERVED")
        double.assert_clean()
    finally:
        await double.close()
        await runner.cleanup()


async def test_signature_key_rotation_signs_later_events_with_the_new_key(
    client: Client, double: RunningDouble
) -> None:
    webhooks = double.double.webhooks
    webhooks.enabled = False  # record the signed events, send nothing
    webhooks.notification_url = url = "https://integrator.example.com/pos/square-main/webhook"
    old = webhooks.signature_key
    double.double.bump_catalog()
    path = f"/v2/webhooks/subscriptions/{SUBSCRIPTION_ID}/signature-key"
    status, body, _ = await client.call("POST", path, {"idempotency_key": "rotate-1"})
    assert status == 200
    new = body["signature_key"]
    assert new != old
    status, again, _ = await client.call("POST", path, {"idempotency_key": "rotate-1"})
    assert (status, again["signature_key"]) == (200, new), "a repeat answers the same key"
    double.double.bump_catalog()
    first, second = webhooks.deliveries
    assert first.headers[SIGNATURE_HEADER] == sign(old, url, first.body)
    assert second.headers[SIGNATURE_HEADER] == sign(new, url, second.body)
    status, missing, _ = await client.call(
        "POST", "/v2/webhooks/subscriptions/wbhk_unknown/signature-key", {}
    )
    assert (status, missing["errors"][0]["code"]) == (404, "NOT_FOUND")
    double.assert_clean()


def test_generator_counts_1000() -> None:
    generated = generate_catalog(1000, ["LOC1", "LOC2"], seed=3)
    counts = generated.counts
    assert counts.variations == 1000
    live_items = [o for o in generated.objects if o["type"] == "ITEM" and not o["is_deleted"]]
    assert counts.items == len(live_items)
    variations = [v for i in live_items for v in i["item_data"]["variations"]]
    assert len(variations) == 1000
    for loc in ("LOC1", "LOC2"):
        assert counts.items_at[loc] == sum(present_at(i, loc) for i in live_items)
        assert counts.variations_at[loc] == sum(
            present_at(i, loc) and present_at(v, loc)
            for i in live_items
            for v in i["item_data"]["variations"]
        )
    assert counts.items_at["LOC2"] < counts.items_at["LOC1"]
    assert counts.sold_out_at["LOC1"] > 0 and counts.sold_out_at["LOC2"] > 0
    assert counts.deleted_items > 0
    assert counts.modifier_lists == sum(o["type"] == "MODIFIER_LIST" for o in generated.objects)
    maxes = {
        i["max_selected_modifiers"]
        for it in live_items
        for i in it["item_data"].get("modifier_list_info", ())
    }
    assert {-1, 0} <= maxes
    assert generate_catalog(1000, ["LOC1", "LOC2"], seed=3).objects == generated.objects
    SquareSpec.load().validate_schema("ListCatalogResponse", {"objects": generated.objects})
    # CPU time of this process, not wall time: other processes on a busy machine stretch the
    # latter (a 1.5 s generation took 5 s of wall time here), not the former.
    start = time.process_time()
    big = generate_catalog(20_000)
    assert big.counts.variations == 20_000
    assert time.process_time() - start < 5


async def test_obtain_token_issues_expiring_tokens_and_refuses_bad_grants() -> None:
    running = await start_double(
        refresh_tokens=["refresh-1"], oauth_application=("sq0idp-app", "sq0csp-secret")
    )
    grant = {
        "client_id": "sq0idp-app",
        "client_secret": "sq0csp-secret",
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
    }
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(running, session)
            status, issued, _ = await client.call("POST", "/oauth2/token", grant, headers={})
            assert status == 200, issued
            assert issued["refresh_token"] == "refresh-1"  # the code flow keeps it
            expires = datetime.fromisoformat(issued["expires_at"])
            assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
            bearer = {"Authorization": f"Bearer {issued['access_token']}"}
            status, _, _ = await client.call("GET", "/v2/locations", headers=bearer)
            assert status == 200
            running.double.expire(issued["access_token"])
            status, body, _ = await client.call("GET", "/v2/locations", headers=bearer)
            assert (status, body["errors"][0]["code"]) == (401, "ACCESS_TOKEN_EXPIRED")
            for wrong in ({"client_secret": "guess"}, {"refresh_token": "refresh-2"}):
                status, body, _ = await client.call(
                    "POST", "/oauth2/token", {**grant, **wrong}, headers={}
                )
                assert (status, body["errors"][0]["code"]) == (401, "UNAUTHORIZED")
            # A request the spec does not allow is refused like any other.
            status, body, _ = await client.call(
                "POST", "/oauth2/token", {"grant_type": "refresh_token"}, headers={}
            )
            assert status == 400, body
            assert len(running.double.tokens.issued) == 1
            running.double.spec_violations.clear()  # the last request broke the spec on purpose
            running.assert_clean()
    finally:
        await running.close()

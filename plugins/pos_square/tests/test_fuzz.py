"""Fuzzing what Square sends the plugin: webhook notifications, catalog pages and orders.

Whatever arrives, the plugin answers with a result or one of the framework's error kinds
(``WebhookRejected`` for a webhook; ``PermanentError`` for a catalog, location or order it cannot
read; a ``PosError`` when it has to ask Square about an order and that fails), never another
exception and never a hang. The inputs are random bytes, random JSON, and real documents (the
recorded fixtures, and what the Square double sends) with a few parts dropped, replaced,
retyped, made huge or deeply nested. Notifications are signed with the subscription's key over
the notification URL, as Square signs them, so the fault reaches the reading behind the
signature check; webhooks that need the order's state fetch it from a running Square double.

Examples are drawn from a fixed seed (``derandomize``), so every run tests the same inputs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger
from spec import SquareSpec
from squaredouble import RunningDouble, start_double

from pos_square import plugin
from pos_square.catalog import catalog_page, currency_and_timezone, menu_from_catalog
from pos_square.settings import SquareSettings
from pos_square.translate import status_event_from_order
from posintegrator.context import ConnectionContext
from posintegrator.errors import PermanentError, PosError, WebhookRejected
from posintegrator.hooktypes import InboundWebhook, TrackedOrder, WebhookResult
from posintegrator.menus.checked import content_hash
from posintegrator.model import Menu, OrderStatus, StatusEvent
from posintegrator.testing.fuzz import header_values, json_values, mutated, nested_json

FIXTURES = Path(__file__).parent / "fixtures"
SIGNATURE_KEY = "fuzz-signature-key"
URL = "https://integrator.example.com/pos/square-fuzz/webhook"
#: A rejection or error message quotes what is wrong, never a whole huge document.
MESSAGE_MAX = 2_000
PATHOLOGICAL_DEPTH = 100_000
PATHOLOGICAL_LENGTH = 5_000_000
ACCEPTED, IN_PREPARATION = OrderStatus.ACCEPTED, OrderStatus.IN_PREPARATION


def fuzz_settings(examples: int) -> settings:
    """A fixed seed, a bounded number of examples, and a generous deadline per example."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=2_000,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            # The Square double is started once per test and shared by its examples; each
            # example gets a fresh connection context (and so a fresh webhook memory).
            HealthCheck.function_scoped_fixture,
        ],
    )


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


NOTIFICATIONS = [
    fixture("webhook_order_updated.json"),
    fixture("webhook_order_fulfillment_updated.json"),
    fixture("webhook_catalog_version_updated.json"),
    fixture("webhook_order_created.json"),  # recorded from the Square double
]
PAGES = [fixture("catalog_page1.json"), fixture("catalog_page2.json")]
LOCATION = fixture("location_downtown.json")["location"]
ORDER = fixture("order_reserved.json")  # recorded from the Square double


class MemoryState:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def double(square_spec: SquareSpec) -> AsyncIterator[RunningDouble]:
    running = await start_double(spec=square_spec)
    try:
        yield running
    finally:
        await running.close()


def context(http: aiohttp.ClientSession, double: RunningDouble) -> ConnectionContext:
    """A connection context like the host builds, against the running Square double."""
    return ConnectionContext(
        name="square-fuzz",
        plugin="square",
        locations=("downtown", "main"),
        settings=SquareSettings(
            base_url=double.url,
            access_token=next(iter(double.double.access_tokens)),
            webhook_signature_key=SIGNATURE_KEY,
            location_ids={
                "downtown": "L1DOWNTOWN",
                "main": NOTIFICATIONS[3]["data"]["object"]["order_created"]["location_id"],
            },
            request_timeout_seconds=5,
        ),
        http=http,
        log=logger,
        state=MemoryState(),
        webhook_url=URL,
    )


def sign(body: bytes, key: str = SIGNATURE_KEY, url: str = URL) -> str:
    digest = hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def encode(document: Any) -> bytes:
    """JSON text of a drawn document (the stdlib writes integers of any size; a lone
    surrogate becomes an escape Square's JSON reader refuses, which is fair input too)."""
    return json.dumps(document).encode()


async def parse(ctx: ConnectionContext, body: bytes, headers: dict[str, str]) -> WebhookResult:
    return await plugin.pos_parse_webhook(ctx, InboundWebhook(url=URL, headers=headers, body=body))


async def parse_signed(ctx: ConnectionContext, body: bytes) -> WebhookResult | Exception:
    """The result of a correctly signed notification, or its rejection, which must be for
    content (or a failure to ask Square about the order, a framework error kind)."""
    try:
        return await parse(ctx, body, {"x-square-hmacsha256-signature": sign(body)})
    except WebhookRejected as exc:
        assert exc.status == 400, exc.message
        assert exc.message.startswith("unreadable Square "), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return exc
    except PosError as exc:  # fetching an OPEN order's state from the double failed
        assert len(exc.message) <= MESSAGE_MAX
        return exc


# ---------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------


@fuzz_settings(150)
@given(body=st.binary(max_size=512))
async def test_signed_random_bytes_are_read_or_rejected_as_content(
    http: aiohttp.ClientSession, double: RunningDouble, body: bytes
) -> None:
    await parse_signed(context(http, double), body)


@fuzz_settings(200)
@given(document=json_values())
async def test_signed_random_json_is_read_or_rejected_as_content(
    http: aiohttp.ClientSession, double: RunningDouble, document: Any
) -> None:
    await parse_signed(context(http, double), encode(document))


@fuzz_settings(300)
@given(document=st.sampled_from(NOTIFICATIONS).flatmap(mutated))
async def test_signed_mutated_notifications_are_read_or_rejected_as_content(
    http: aiohttp.ClientSession, double: RunningDouble, document: Any
) -> None:
    result = await parse_signed(context(http, double), encode(document))
    if isinstance(result, WebhookResult):
        assert len(result.events) <= 1
        assert all(isinstance(event, StatusEvent) for event in result.events)
        assert result.menu_changed_locations in ([], ["downtown", "main"])


def _forgeries(body: bytes) -> st.SearchStrategy[dict[str, str]]:
    """Headers that do not carry Square's signature of this body to our URL with our key."""
    header = "x-square-hmacsha256-signature"
    return st.one_of(
        st.just({}),
        st.just({header: sign(body, key="someone-else")}),
        st.just({header: sign(body, url=URL + "/other")}),
        st.just({header: sign(body + b" ")}),
        st.just({header: base64.b64encode(hmac.new(b"k", body, "sha256").digest()).decode()}),
        st.just({header: sign(body)[:-2]}),
        st.just({header: ""}),
        st.just({"x-square-signature": sign(body)}),
        header_values().map(lambda text: {header: text}),
    )


@fuzz_settings(120)
@given(
    forged=st.one_of(
        st.binary(max_size=256), st.sampled_from(NOTIFICATIONS).flatmap(mutated).map(encode)
    ).flatmap(lambda body: st.tuples(st.just(body), _forgeries(body)))
)
async def test_unsigned_and_forged_notifications_are_refused_before_reading(
    http: aiohttp.ClientSession, double: RunningDouble, forged: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = forged
    with pytest.raises(WebhookRejected) as caught:
        await parse(context(http, double), body, headers)
    assert caught.value.status == 401


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(nested_json(PATHOLOGICAL_DEPTH), "not JSON", id="100k-deep-arrays"),
        pytest.param(
            nested_json(PATHOLOGICAL_DEPTH, opener=b'{"a":', closer=b"}"),
            "not JSON",
            id="100k-deep-objects",
        ),
        pytest.param(
            encode({**NOTIFICATIONS[0], "event_id": "x" * PATHOLOGICAL_LENGTH}),
            "event_id: String should have at most 200 characters",
            id="5MB-event-id",
        ),
        pytest.param(
            encode({**NOTIFICATIONS[0], "created_at": "9" * PATHOLOGICAL_LENGTH}),
            "created_at: ",
            id="5MB-time",
        ),
    ],
)
async def test_pathological_notifications_end_quickly_with_a_clear_error(
    http: aiohttp.ClientSession, double: RunningDouble, body: bytes, problem: str
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        await parse(context(http, double), body, {"x-square-hmacsha256-signature": sign(body)})
    assert caught.value.status == 400
    assert problem in caught.value.message
    assert len(caught.value.message) <= MESSAGE_MAX


# ---------------------------------------------------------------------------------------------
# Menus: ListCatalog pages and the location
# ---------------------------------------------------------------------------------------------


def translate_catalog(pages: list[Any], location: Any = LOCATION) -> Menu | PermanentError:
    """The menu the pages translate to (as ``pos_fetch_menu`` reads them), or why not."""
    try:
        objects: list[Any] = []
        for page in pages:
            objects.extend(catalog_page(page)[0])
        currency, timezone = currency_and_timezone(location)
        menu = menu_from_catalog(objects, "downtown", "L1DOWNTOWN", currency, timezone)
    except PermanentError as exc:
        assert exc.message.startswith("unreadable Square "), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return exc
    # What the host does next must work too: validate it again (what was left out is not
    # part of the document), and hash it for publishing.
    assert Menu.model_validate(menu.model_dump()) == menu.model_copy(update={"left_out": []})
    content_hash(menu)
    return menu


@fuzz_settings(300)
@given(st.sampled_from([0, 1]).flatmap(lambda n: st.tuples(st.just(n), mutated(PAGES[n]))))
def test_mutated_catalog_pages_translate_or_fail_clearly(changed: tuple[int, Any]) -> None:
    number, page = changed
    pages = [page, PAGES[1]] if number == 0 else [PAGES[0], page]
    translate_catalog(pages)


@fuzz_settings(100)
@given(st.dictionaries(st.sampled_from(["objects", "cursor"]), json_values()))
def test_random_catalog_pages_translate_or_fail_clearly(page: dict[str, Any]) -> None:
    translate_catalog([page])


@fuzz_settings(100)
@given(mutated(LOCATION))
def test_mutated_locations_translate_or_fail_clearly(location: Any) -> None:
    translate_catalog(PAGES, location)


def _item(object_id: str, **item_data: Any) -> dict[str, Any]:
    return {"type": "ITEM", "id": object_id, "item_data": item_data}


def _deeply_nested_items(depth: int) -> dict[str, Any]:
    """An item whose "variation" is an item whose variation is an item... ``depth`` times."""
    innermost: dict[str, Any] = _item(f"ITEM-{depth}")
    for level in range(depth - 1, -1, -1):
        innermost = _item(f"ITEM-{level}", variations=[innermost])
    return innermost


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        pytest.param(
            _item("X" * PATHOLOGICAL_LENGTH),
            "id: expected an id of 1 to 128 characters",
            id="5MB-id",
        ),
        pytest.param(
            _item("DEEP", name=_deep_list(PATHOLOGICAL_DEPTH)),
            "ITEM 'DEEP': name: expected a string, got list",
            id="100k-deep-name",
        ),
    ],
)
def test_pathological_catalogs_end_quickly_with_a_clear_error(
    extra: dict[str, Any], problem: str
) -> None:
    result = translate_catalog([{"objects": [extra, *PAGES[0]["objects"]]}, PAGES[1]])
    assert isinstance(result, PermanentError)
    assert problem in result.message


@pytest.mark.timeout(60)
def test_items_nested_100k_deep_end_quickly() -> None:
    """Nesting is read without recursion: no RecursionError, just items without variations."""
    result = translate_catalog([{"objects": [_deeply_nested_items(PATHOLOGICAL_DEPTH)]}, *PAGES])
    assert isinstance(result, Menu)
    assert result.product("ITEM-5") is None


# ---------------------------------------------------------------------------------------------
# Status: orders from BatchRetrieveOrders
# ---------------------------------------------------------------------------------------------


@fuzz_settings(200)
@given(st.one_of(mutated(ORDER), json_values()))
def test_mutated_orders_give_a_status_or_fail_clearly(document: Any) -> None:
    try:
        event = status_event_from_order(document)
    except PermanentError as exc:
        assert exc.message.startswith("unreadable Square order"), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return
    assert event is None or isinstance(event, StatusEvent)


async def test_poll_passes_over_an_order_it_cannot_read(
    http: aiohttp.ClientSession, square_spec: SquareSpec
) -> None:
    """One order Square sends that cannot be read (found by the test above: a ``fulfillments``
    that is not a list raised AttributeError and failed the whole poll, every time) is logged
    and passed over; the others still report their status."""
    broken = {**ORDER, "id": "BROKEN", "reference_id": "cloud-43", "fulfillments": "RESERVED"}
    async with await start_double(spec=square_spec, validate_responses=False) as running:
        running.state.orders.update({ORDER["id"]: ORDER, "BROKEN": broken})
        tracked = [
            TrackedOrder(order_id=order, pos_order_id=pos, location="main", status=ACCEPTED)
            for order, pos in (("cloud-42", ORDER["id"]), ("cloud-43", "BROKEN"))
        ]
        events = await plugin.pos_poll_status(context(http, running), tracked)
    assert [(e.order_id, e.status) for e in events] == [("cloud-42", IN_PREPARATION)]

"""Fuzzing what DemoPOS sends the plugin: webhooks, menus and events-feed pages.

Whatever arrives, the plugin answers with a result or one of the framework's error kinds
(``WebhookRejected`` for a webhook, ``PermanentError`` for a menu or feed document it cannot
read), never another exception and never a hang. The inputs are random bytes, random JSON, and
real documents (recorded from the simulator, plus the simulator's live menus) with a few parts
dropped, replaced, retyped, made huge or deeply nested; webhook bodies are signed with the
connection's secret, so the fault reaches the content parsing behind the signature check.

Examples are drawn from a fixed seed (``derandomize``), so every run tests the same inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger

from pos_demo import plugin
from pos_demo.settings import DemoPosSettings
from pos_demo.simulator.menu import MenuCatalog
from pos_demo.translate import FeedPage, feed_page_from_pos, menu_from_pos, status_event_from_pos
from posintegrator.context import ConnectionContext
from posintegrator.errors import PermanentError, WebhookRejected
from posintegrator.hooktypes import InboundWebhook, WebhookResult
from posintegrator.menus.checked import content_hash
from posintegrator.model import Menu, StatusEvent
from posintegrator.testing.fuzz import header_values, json_values, mutated, nested_json

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "whsec-fuzz"
URL = "http://127.0.0.1:9/webhooks/demo-fuzz"
#: A rejection or error message quotes what is wrong, never a whole huge document.
MESSAGE_MAX = 2_000
PATHOLOGICAL_DEPTH = 100_000
PATHOLOGICAL_LENGTH = 5_000_000


def fuzz_settings(examples: int) -> settings:
    """A fixed seed, a bounded number of examples, and a generous deadline per example."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=2_000,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


WEBHOOKS = [
    fixture("webhook_order.json"),
    fixture("webhook_availability_item.json"),
    fixture("webhook_availability_option.json"),
]
FEED_PAGE = fixture("events_page.json")
_CLOCK = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
_SIMULATOR = MenuCatalog(updated_at=_CLOCK)
MENUS = [
    fixture("menu_downtown.json"),
    _SIMULATOR.menu_for("downtown", now=_CLOCK),
    _SIMULATOR.menu_for("airport", now=_CLOCK),
]


class MemoryState:
    async def get(self, key: str) -> str | None:
        return None

    async def set(self, key: str, value: str) -> None:
        raise AssertionError("parsing a webhook keeps no state")


def context() -> ConnectionContext:
    """A connection context like the host builds; webhook parsing never calls the POS."""
    return ConnectionContext(
        name="demo-fuzz",
        plugin="demo",
        locations=("downtown", "airport"),
        settings=DemoPosSettings(base_url="http://127.0.0.1:9", webhook_secret=SECRET),
        http=None,  # type: ignore[arg-type]  # parsing a webhook never reaches the POS
        log=logger,
        state=MemoryState(),
        webhook_url=URL,
    )


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(document: Any) -> bytes:
    """JSON text of a drawn document (the stdlib writes integers of any size; a lone
    surrogate becomes an escape DemoPOS's JSON reader refuses, which is fair input too)."""
    return json.dumps(document).encode()


async def parse(body: bytes, headers: dict[str, str]) -> WebhookResult:
    request = InboundWebhook(url=URL, headers=headers, body=body)
    return await plugin.pos_parse_webhook(ctx=context(), request=request)


async def parse_signed(body: bytes) -> WebhookResult | WebhookRejected:
    """The result of a correctly signed webhook, or its rejection, which must be for content."""
    try:
        return await parse(body, {"X-DemoPOS-Signature": sign(body)})
    except WebhookRejected as exc:
        assert exc.status == 400, exc.message
        assert exc.message.startswith("unreadable DemoPOS "), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return exc


# ---------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------


@fuzz_settings(150)
@given(st.binary(max_size=512))
async def test_signed_random_bytes_are_read_or_rejected_as_content(body: bytes) -> None:
    await parse_signed(body)


@fuzz_settings(200)
@given(json_values())
async def test_signed_random_json_is_read_or_rejected_as_content(document: Any) -> None:
    await parse_signed(encode(document))


@fuzz_settings(300)
@given(st.sampled_from(WEBHOOKS).flatmap(mutated))
async def test_signed_mutated_webhooks_are_read_or_rejected_as_content(document: Any) -> None:
    result = await parse_signed(encode(document))
    if isinstance(result, WebhookResult):
        assert len(result.events) + len(result.availability) <= 1
        assert all(isinstance(event, StatusEvent) for event in result.events)
        assert result.menu_changed_locations == []


def _forgeries(body: bytes) -> st.SearchStrategy[dict[str, str]]:
    """Headers that do not carry this body's signature under the connection's secret."""
    right = sign(body)
    return st.one_of(
        st.just({}),
        st.just({"X-DemoPOS-Signature": sign(body, "someone-else")}),
        st.just({"X-DemoPOS-Signature": sign(body + b" ")}),
        st.just({"X-DemoPOS-Signature": right.removeprefix("sha256=")}),
        st.just({"X-DemoPOS-Signature": right.upper()}),
        st.just({"X-DemoPOS-Signature": right[:-1]}),
        st.just({"X-DemoPOS-Signature": ""}),
        st.just({"X-Other-Signature": right}),
        header_values().map(lambda text: {"X-DemoPOS-Signature": text}),
    )


@fuzz_settings(120)
@given(
    st.one_of(
        st.binary(max_size=256), st.sampled_from(WEBHOOKS).flatmap(mutated).map(encode)
    ).flatmap(lambda body: st.tuples(st.just(body), _forgeries(body)))
)
async def test_unsigned_and_forged_webhooks_are_refused_before_reading(
    forged: tuple[bytes, dict[str, str]],
) -> None:
    body, headers = forged
    with pytest.raises(WebhookRejected) as caught:
        await parse(body, headers)
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
            encode({**WEBHOOKS[0], "reference": "x" * PATHOLOGICAL_LENGTH}),
            "reference: String should have at most 200 characters",
            id="5MB-reference",
        ),
        pytest.param(
            encode({**WEBHOOKS[0], "state": "x" * PATHOLOGICAL_LENGTH}),
            "state: unknown DemoPOS order state",
            id="5MB-state",
        ),
    ],
)
async def test_pathological_webhooks_end_quickly_with_a_clear_error(
    body: bytes, problem: str
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        await parse(body, {"X-DemoPOS-Signature": sign(body)})
    assert caught.value.status == 400
    assert problem in caught.value.message
    assert len(caught.value.message) <= MESSAGE_MAX


# ---------------------------------------------------------------------------------------------
# Menus
# ---------------------------------------------------------------------------------------------


def translate_menu(document: Any) -> Menu | PermanentError:
    """The menu a document translates to, or the error saying why it cannot."""
    try:
        menu = menu_from_pos(document, "downtown")
    except PermanentError as exc:
        assert exc.message.startswith("unreadable DemoPOS menu of 'downtown': "), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return exc
    # What the host does next must work too: validate it again, and hash it for publishing.
    assert Menu.model_validate(menu.model_dump()) == menu
    content_hash(menu)
    return menu


@fuzz_settings(200)
@given(st.sampled_from(MENUS).flatmap(mutated))
def test_mutated_menus_translate_or_fail_clearly(document: Any) -> None:
    translate_menu(document)


@fuzz_settings(100)
@given(json_values())
def test_random_json_menus_translate_or_fail_clearly(document: Any) -> None:
    translate_menu(document)


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(
            {"categories": _deep_list(PATHOLOGICAL_DEPTH)},
            "categories[0]: Input should be a valid dictionary",
            id="100k-deep-categories",
        ),
        pytest.param(
            {"timezone": "x" * PATHOLOGICAL_LENGTH},
            "timezone: unknown time zone",
            id="5MB-timezone",
        ),
        pytest.param(
            {"currency": "€" * PATHOLOGICAL_LENGTH},
            "currency: String should match pattern",
            id="5MB-currency",
        ),
    ],
)
def test_pathological_menus_end_quickly_with_a_clear_error(
    change: dict[str, Any], problem: str
) -> None:
    result = translate_menu({**MENUS[0], **change})
    assert isinstance(result, PermanentError)
    assert problem in result.message


# ---------------------------------------------------------------------------------------------
# Status: the events feed
# ---------------------------------------------------------------------------------------------


@fuzz_settings(200)
@given(mutated(FEED_PAGE))
def test_mutated_feed_pages_are_read_or_fail_clearly(document: Any) -> None:
    try:
        page = feed_page_from_pos(document)
    except PermanentError as exc:
        assert exc.message.startswith("unreadable DemoPOS events page: "), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return
    assert isinstance(page, FeedPage)
    assert len(page.events) + len(page.unreadable) == len(document["events"])
    assert all(len(problem) <= MESSAGE_MAX for problem in page.unreadable)


@fuzz_settings(200)
@given(st.one_of(mutated(FEED_PAGE["events"][0]), json_values()))
def test_mutated_feed_entries_are_read_or_fail_clearly(entry: Any) -> None:
    try:
        event = status_event_from_pos(entry)
    except PermanentError as exc:
        assert exc.message.startswith("unreadable DemoPOS order event: "), exc.message
        assert len(exc.message) <= MESSAGE_MAX
        return
    assert event.order_id == entry["reference"].strip()


# ---------------------------------------------------------------------------------------------
# The seeds are what the simulator sends
# ---------------------------------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """The keys and JSON types of a document, without its values."""
    if isinstance(value, dict):
        return {key: _shape(child) for key, child in value.items()}
    if isinstance(value, list):
        return sorted({json.dumps(_shape(child), sort_keys=True) for child in value})
    return type(value).__name__


def test_recorded_webhooks_have_the_shape_the_simulator_sends(tmp_path: Path) -> None:
    """The recorded seeds must not drift from what the simulator really sends."""
    from pos_demo.simulator.availability import AvailabilityBoard
    from pos_demo.simulator.orders import OrderBook
    from pos_demo.simulator.storage import Storage

    storage = Storage(tmp_path)
    storage.load()
    sent: list[dict[str, Any]] = []
    book = OrderBook(storage, on_event=sent.append)
    order = book.create("key", "hash", {"reference": "cloud-1", "location": "downtown"})
    book.transition(order["id"], "preparing", None)
    board = AvailabilityBoard(storage, MenuCatalog(), on_event=sent.append)
    board.set("downtown", item="pancakes", available=False, until=_CLOCK, reason="batter")
    board.set("downtown", option="sauce_bbq", available=False, reason="out of stock")
    batch, last_seq, has_more = book.events_after(0, 1)
    storage.close()
    live_page = {"events": batch, "last_seq": last_seq, "has_more": has_more}

    assert [_shape(document) for document in sent[1:]] == [_shape(w) for w in WEBHOOKS]
    assert _shape(live_page) == _shape({**FEED_PAGE, "events": FEED_PAGE["events"][:1]})

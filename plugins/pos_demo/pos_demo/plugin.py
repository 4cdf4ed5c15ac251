"""The DemoPOS hook implementations (entry point ``demo``).

Deliberately thin: each hook builds a :class:`~pos_demo.client.DemoPosClient` for the connection,
makes its vendor calls and hands the documents to :mod:`pos_demo.translate`. The module keeps no
state of its own; the events-feed cursor lives in ``ctx.state``.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

from pos_demo.client import DemoPosClient
from pos_demo.settings import DemoPosSettings
from pos_demo.translate import (
    availability_change_from_pos,
    feed_page_from_pos,
    menu_from_pos,
    order_to_pos,
    status_event_from_pos,
    status_from_pos,
)
from posintegrator.context import ConnectionContext
from posintegrator.errors import PermanentError, WebhookRejected
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import (
    CancelResult,
    Capabilities,
    Deployment,
    FoundOrder,
    InboundWebhook,
    OrderFeature,
    SubmitResult,
    TrackedOrder,
    WebhookResult,
)
from posintegrator.model import Menu, Order, OrderType, PaymentMode, StatusEvent

#: The plugin API range this plugin is built for (checked by the host at start-up).
POSINTEGRATOR_PLUGIN_API = ">=1.0,<2"

#: ``ctx.state`` key of the last events-feed ``seq`` already read.
EVENTS_CURSOR_KEY = "events_cursor"
#: Feed entries asked for per ``GET /events`` request.
EVENTS_PAGE_SIZE = 100
SIGNATURE_HEADER = "X-DemoPOS-Signature"
_SIGNATURE_PREFIX = "sha256="


def _client(ctx: ConnectionContext) -> DemoPosClient:
    return DemoPosClient(
        ctx.http, ctx.settings_as(DemoPosSettings), max_response_bytes=ctx.max_response_bytes
    )


@hookimpl
def pos_settings_model() -> type[DemoPosSettings]:
    """DemoPOS connections are configured by :class:`DemoPosSettings`."""
    return DemoPosSettings


@hookimpl
def pos_capabilities() -> Capabilities:
    """DemoPOS can do everything: lookup by reference, idempotent submit, cancellation while an
    order waits in the kitchen's queue, webhooks and feed; it carries every part of an order."""
    return Capabilities(
        menu=True,
        orders=True,
        order_lookup=True,
        idempotent_submit=True,
        status_webhooks=True,
        status_polling=True,
        order_types=list(OrderType),
        payment_modes=list(PaymentMode),
        order_features=list(OrderFeature),
        order_cancel=True,
        deployments=[Deployment.CENTRAL, Deployment.LOCAL, Deployment.HYBRID],
    )


@hookimpl
async def pos_fetch_menu(ctx: ConnectionContext, location: str) -> Menu:
    """Fetch ``GET /menu`` of the location and translate it."""
    native = await _client(ctx).menu(location)
    return menu_from_pos(native, location)


@hookimpl
async def pos_submit_order(
    ctx: ConnectionContext, order: Order, idempotency_key: str
) -> SubmitResult:
    """``POST /orders`` with the host's key as ``Idempotency-Key``; our id is the reference."""
    created = await _client(ctx).create_order(order_to_pos(order), idempotency_key)
    ctx.log.info("order {} is DemoPOS order {}", order.id, created["id"])
    return SubmitResult(pos_order_id=created["id"], status=status_from_pos(created["state"]))


@hookimpl
async def pos_find_order(ctx: ConnectionContext, order_id: str, location: str) -> FoundOrder | None:
    """Look the order up by reference; None when the POS has no order with it."""
    found = await _client(ctx).find_orders(order_id)
    if not found:
        return None
    native = found[0]
    return FoundOrder(pos_order_id=native["id"], status=status_from_pos(native["state"]))


@hookimpl
async def pos_cancel_order(
    ctx: ConnectionContext, order_id: str, pos_order_id: str | None, location: str, reason: str
) -> CancelResult:
    """``POST /orders/{id}/cancel``: DemoPOS cancels an order only while it waits in the kitchen's
    queue, and answers 409 ``not_cancellable`` once the kitchen has started on it."""
    client = _client(ctx)
    if pos_order_id is None:
        found = await client.find_orders(order_id)
        if not found:
            return CancelResult(cancelled=False, reason="DemoPOS has no order with this reference")
        pos_order_id = str(found[0]["id"])
    try:
        cancelled = await client.cancel_order(pos_order_id, reason)
    except PermanentError as exc:
        if exc.code in ("not_cancellable", "not_found"):
            return CancelResult(cancelled=False, reason=exc.reason)
        raise
    ctx.log.info("order {} (DemoPOS {}) cancelled: {}", order_id, pos_order_id, reason)
    return CancelResult(cancelled=cancelled["state"] == "cancelled")


@hookimpl
async def pos_poll_status(ctx: ConnectionContext, orders: list[TrackedOrder]) -> list[StatusEvent]:
    """Read the events feed after the stored cursor and keep the events of tracked orders.

    The POS's ``last_seq`` becomes the new cursor and is saved after every page, so the next
    poll continues where this one stopped (and a POS whose feed was reset is followed back).
    A feed entry that cannot be read is logged and passed over, so it cannot hold up the
    entries after it.
    """
    client = _client(ctx)
    tracked = {order.order_id for order in orders}
    cursor = int(await ctx.state.get(EVENTS_CURSOR_KEY) or 0)
    events: list[StatusEvent] = []
    while True:
        page = feed_page_from_pos(await client.events(after=cursor, limit=EVENTS_PAGE_SIZE))
        for problem in page.unreadable:
            ctx.log.warning("skipping a DemoPOS feed entry after seq {}: {}", cursor, problem)
        events.extend(event for event in page.events if event.order_id in tracked)
        if page.last_seq != cursor:
            cursor = page.last_seq
            await ctx.state.set(EVENTS_CURSOR_KEY, str(cursor))
        if not (page.events or page.unreadable) or not page.has_more:
            return events


@hookimpl
async def pos_parse_webhook(ctx: ConnectionContext, request: InboundWebhook) -> WebhookResult:
    """Verify ``X-DemoPOS-Signature`` over the raw body, then read what it carries.

    The signature may be made with ``webhook_secret`` or, during a rotation,
    ``webhook_secret_next``.

    An ``availability`` webhook (an item or option 86'd or back) becomes one availability
    change for the host's fast path; any other body is one order feed entry (order webhooks
    carry no ``type``; ``"order"`` is accepted too). Unknown types are acknowledged and ignored,
    so a newer POS cannot make the host's webhook route fail (and be retried) forever.
    """
    keys = ctx.settings_as(DemoPosSettings).webhook_secrets()
    if not keys:
        raise WebhookRejected("no webhook_secret configured: cannot verify DemoPOS webhooks")
    given = _header(request, SIGNATURE_HEADER)
    if given is None:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
    if not any(_signed_with(key, request.body, given) for key in keys):
        raise WebhookRejected(f"wrong {SIGNATURE_HEADER}")
    try:
        document = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRejected(f"unreadable DemoPOS webhook: not JSON ({exc})", status=400) from None
    if not isinstance(document, dict):
        raise WebhookRejected("unreadable DemoPOS webhook: not a JSON object", status=400)
    kind = document.get("type", "order")
    try:
        if kind == "availability":
            return WebhookResult(availability=[availability_change_from_pos(document)])
        if kind == "order":
            return WebhookResult(events=[status_event_from_pos(document)])
    except PermanentError as exc:
        raise WebhookRejected(exc.message, status=400) from exc
    ctx.log.warning("ignoring DemoPOS webhook of unknown type {!r:.80}", kind)
    return WebhookResult()


def _signed_with(key: bytes, body: bytes, given: str) -> bool:
    """Whether ``given`` is DemoPOS's signature of ``body`` with ``key`` (constant time).

    A header that is not UTF-8 (aiohttp hands it over with surrogate escapes) is compared as
    the bytes it was: a wrong signature, not a crash.
    """
    digest = hmac.new(key, body, hashlib.sha256).hexdigest()
    given_bytes = given.encode(errors="surrogateescape")
    return hmac.compare_digest(given_bytes, f"{_SIGNATURE_PREFIX}{digest}".encode())


def _header(request: InboundWebhook, name: str) -> str | None:
    """A request header by name, case-insensitively whatever mapping the host passed."""
    wanted = name.lower()
    return next((value for key, value in request.headers.items() if key.lower() == wanted), None)

"""The Square hook implementations (entry point ``square``).

Thin: each hook builds a :class:`~pos_square.client.SquareClient` for the connection, makes its
Square calls and hands the documents to :mod:`pos_square.catalog` (menus),
:mod:`pos_square.translate` (statuses), :mod:`pos_square.orders` (orders, payments,
cancellations) and :mod:`pos_square.webhooks`. The module keeps no state of its own; the webhook
dedup memory, the payments an order still has to record and a renewed OAuth token (see
:mod:`pos_square.oauth`) live in ``ctx.state``.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pos_square.catalog import (
    MENU_OBJECT_TYPES,
    Place,
    catalog_page,
    currency_and_timezone,
    menus_from_catalog,
)
from pos_square.catalog_reads import read_catalog
from pos_square.client import SquareClient
from pos_square.kept_catalog import KeptCatalog
from pos_square.menu_patches import translated_menus
from pos_square.oauth import access_tokens
from pos_square.orders import (
    ORDER_SOURCE_NAME,
    cancel_request,
    missing_payment,
    order_to_square,
    payments_for,
)
from pos_square.reused_items import ItemMemo
from pos_square.settings import SquareSettings
from pos_square.translate import (
    pickup_state,
    rfc3339,
    status_event_from_order,
    status_of_order,
    status_of_order_document,
)
from pos_square.webhooks import (
    CATALOG_EVENT,
    SIGNATURE_HEADER,
    read_notification,
    verify_signature,
)
from posintegrator.context import ConnectionContext
from posintegrator.errors import (
    AmbiguousError,
    PermanentError,
    RetryableError,
    WebhookRejected,
)
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import (
    CancelResult,
    Capabilities,
    Deployment,
    FoundOrder,
    InboundWebhook,
    OrderFeature,
    SharedMenu,
    SubmitResult,
    TrackedOrder,
    WebhookResult,
)
from posintegrator.model import Menu, Order, OrderStatus, OrderType, PaymentMode, StatusEvent

#: The plugin API range this plugin is built for (checked by the host at start-up).
POSINTEGRATOR_PLUGIN_API = ">=1.0,<2"

#: ``ctx.state`` key: JSON list of the most recent webhook ``event_id``s.
SEEN_EVENTS_KEY = "square_seen_event_ids"
SEEN_EVENTS_MAX = 500
#: How often a cancellation reads the order and names its version before it gives up for now:
#: each read's update fails when the order changed in the meantime.
CANCEL_READS = 3
#: ``ctx.state`` key: JSON object Square order id -> highest order ``version`` seen by webhook.
ORDER_VERSIONS_KEY = "square_order_versions"
ORDER_VERSIONS_MAX = 2000
#: ``ctx.state`` key prefix: the CreatePayment bodies (without the Square order id) an order
#: still has to record, kept from before CreateOrder until every payment is recorded.
PENDING_PAYMENTS_KEY = "square_pending_payments:"
#: How far back a lookup searches for one of our orders (by ``created_at``).
LOOKUP_WINDOW = timedelta(days=2)
SEARCH_PAGE_SIZE = 500


def _settings(ctx: ConnectionContext) -> SquareSettings:
    return ctx.settings_as(SquareSettings)


def _client(ctx: ConnectionContext) -> SquareClient:
    """A client of the connection's Square account, with its current (renewed) access token."""
    return SquareClient(
        ctx.http,
        _settings(ctx),
        max_response_bytes=ctx.max_response_bytes,
        tokens=access_tokens(ctx),
    )


@hookimpl
def pos_settings_model() -> type[SquareSettings]:
    """Square connections are configured by :class:`SquareSettings`."""
    return SquareSettings


@hookimpl
def pos_capabilities() -> Capabilities:
    """Menu; PICKUP and DELIVERY orders (idempotent, with lookup by reference) with discounts,
    service charges, tips and several payments; cancellation; status by webhook and polling.
    Square has no tables and keeps no fiscal receipt: orders with those are refused."""
    return Capabilities(
        menu=True,
        orders=True,
        order_lookup=True,
        idempotent_submit=True,
        status_webhooks=True,
        status_polling=True,
        order_types=[OrderType.TAKE_AWAY, OrderType.DELIVERY],
        payment_modes=list(PaymentMode),
        order_features=[
            OrderFeature.LINE_DISCOUNTS,
            OrderFeature.DISCOUNTS,
            OrderFeature.CHARGES,
            OrderFeature.TIP,
            OrderFeature.SPLIT_PAYMENTS,
            OrderFeature.DELIVERY_DETAILS,
        ],
        order_cancel=True,
        deployments=[Deployment.CENTRAL],
    )


@hookimpl
async def pos_fetch_menu(ctx: ConnectionContext, location: str) -> Menu:
    """RetrieveLocation for currency and time zone, then every ListCatalog page (the host
    uses :func:`pos_fetch_menus` instead; this serves callers that want one location).

    Each page's ``cursor`` is sent back with the same ``types`` (a cursor is only valid with its
    original query); a page without a cursor is the last.
    """
    client = _client(ctx)
    square_location = _settings(ctx).square_location(location)
    currency, timezone = currency_and_timezone(await client.retrieve_location(square_location))
    objects: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page_objects, cursor = catalog_page(await client.list_catalog(MENU_OBJECT_TYPES, cursor))
        objects.extend(page_objects)
        if cursor is None:
            break
        if cursor in seen:
            raise RetryableError("Square ListCatalog returned the same cursor twice")
        seen.add(cursor)
    place = Place(location, square_location, currency, timezone)
    shared = await asyncio.to_thread(menus_from_catalog, objects, [place])
    return shared[0].menu


@hookimpl
async def pos_fetch_menus(ctx: ConnectionContext, locations: list[str]) -> list[SharedMenu]:
    """One ListLocations and one read of the catalog for all ``locations``.

    The catalog is read through :func:`pos_square.catalog_reads.read_catalog`: in full now
    and then, otherwise only the objects changed since the catalog kept from the last read.
    Locations the catalog treats alike share one menu (:func:`menus_from_catalog`); the
    translation runs in a worker thread, so the event loop keeps serving meanwhile.
    """
    settings = _settings(ctx)
    client = _client(ctx)
    square_locations = {loc.get("id"): loc for loc in await client.list_locations()}
    places = []
    for location in locations:
        square_location = settings.square_location(location)
        found = square_locations.get(square_location)
        if found is None:
            raise PermanentError(
                f"Square location {square_location!r} (of location {location!r}) is not among "
                "the seller's locations: check location_ids and the token's seller",
                reason="unknown Square location",
            )
        currency, timezone = currency_and_timezone(found)
        places.append(Place(location, square_location, currency, timezone))
    full_every = timedelta(hours=settings.full_catalog_read_hours)
    last = _last_menus.get(ctx.name)
    if last is not None and last.ctx() is not ctx:
        last = None
    known = last.version if last is not None and last.places == places else None
    read = await read_catalog(ctx, client, full_every, known, last.kept if last else None)
    if read.objects is None and last is not None:
        return last.menus  # the very same objects: the host skips checking them again
    assert read.objects is not None
    memo = last.memo if last is not None else ItemMemo()
    menus = await asyncio.to_thread(translated_menus, read.objects, places, memo)
    _last_menus[ctx.name] = _LastMenus(
        weakref.ref(ctx), places, read.version, menus, read.kept, memo
    )
    return menus


@dataclass(frozen=True)
class _LastMenus:
    """A connection's last menus, from the catalog of ``version``, for ``places``; the catalog
    as kept then, and what its translation made of each item (both reused next round)."""

    ctx: weakref.ref[ConnectionContext]
    places: list[Place]
    version: str
    menus: list[SharedMenu]
    kept: KeptCatalog | None
    memo: ItemMemo


#: Connection name -> its last menus in this process; for a connection of another host in the
#: same process (tests) the ``ctx`` differs and they are not used.
_last_menus: dict[str, _LastMenus] = {}


async def _variations_of_single_variant_items(client: SquareClient, order: Order) -> dict[str, str]:
    """Item id -> its only variation id, for lines that name no variant (a read)."""
    wanted = sorted(
        {line.product_id for line in order.lines if line.variant_id is None and not line.components}
    )
    if not wanted:
        return {}
    document = await client.batch_retrieve_catalog(wanted)
    found: dict[str, str] = {}
    for obj in document.get("objects") or []:
        variations = (obj.get("item_data") or {}).get("variations") or []
        if obj.get("type") == "ITEM" and len(variations) == 1:
            found[obj["id"]] = variations[0]["id"]
    return found


@hookimpl
async def pos_submit_order(
    ctx: ConnectionContext, order: Order, idempotency_key: str
) -> SubmitResult:
    """CreateOrder with the host's key, then a CreatePayment (EXTERNAL) per PREPAID payment.

    The payments are kept in ``ctx.state`` before CreateOrder, so a lookup after a submission
    cut short between the calls records the same ones. A failure between the calls is retried
    as a whole: the same idempotency key makes Square answer CreateOrder with the order it
    already created, and each payment's key is derived from ours, so nothing is made twice.
    That is also why an unknown payment outcome is reported as retryable rather than ambiguous:
    a lookup would find the order and record the payments only from the state.

    An order Square totals differently from the cloud is cancelled in Square and refused: the
    kitchen must not make an order whose till total is not what the customer paid.
    """
    settings = _settings(ctx)
    client = _client(ctx)
    square_location = settings.square_location(order.location)
    variations = await _variations_of_single_variant_items(client, order)
    try:
        body = order_to_square(
            order,
            square_location,
            idempotency_key,
            variations=variations,
            delivery_prep=f"PT{settings.delivery_prep_minutes}M",
        )
    except ValueError as exc:
        raise PermanentError(str(exc), reason=str(exc), code="unsupported_order") from exc
    payments = (
        payments_for(order, "", idempotency_key, square_location_id=square_location)
        if settings.record_prepaid_as_external_payment
        else []
    )
    if payments:
        await ctx.state.set(PENDING_PAYMENTS_KEY + order.id, orjson.dumps(payments).decode())
    created = await client.create_order(body)
    square_order_id = str(created["id"])
    ctx.log.info("order {} is Square order {}", order.id, square_order_id)
    expected = order.total - order.tip  # Square adds tips with the payments that carry them
    total = (created.get("total_money") or {}).get("amount")
    if total is not None and total != expected and not created.get("tenders"):
        reason = (
            f"Square totals the order at {total}, the order says {expected} before its tip: "
            "it was cancelled in Square"
        )
        await client.update_order(square_order_id, cancel_request(created, reason[:100]))
        raise PermanentError(reason, reason=reason, code="total_mismatch")
    await _record_payments(ctx, client, order.id, square_order_id)
    return SubmitResult(
        pos_order_id=square_order_id, status=status_of_order(created) or OrderStatus.ACCEPTED
    )


async def _record_payments(
    ctx: ConnectionContext, client: SquareClient, order_id: str, square_order_id: str
) -> None:
    """Record the payments ``ctx.state`` keeps for the order, then forget them."""
    key = PENDING_PAYMENTS_KEY + order_id
    payments = await _load_json(ctx, key, [])
    for payment in payments:
        await _record_payment(client, {**payment, "order_id": square_order_id}, order_id)
    if payments:
        await ctx.state.delete(key)


async def _record_payment(client: SquareClient, payment: dict[str, Any], order_id: str) -> None:
    try:
        await client.create_payment(payment)
    except AmbiguousError as exc:
        raise RetryableError(
            f"{exc.message} (payment of order {order_id}; resending is safe: same keys)"
        ) from exc
    except PermanentError as exc:
        reason = f"Square order {payment['order_id']} was created but its payment was refused: "
        raise PermanentError(exc.message, reason=reason + exc.reason, code=exc.code) from exc


@hookimpl
async def pos_find_order(ctx: ConnectionContext, order_id: str, location: str) -> FoundOrder | None:
    """SearchOrders of the location (our source, created in the last two days, newest first),
    page by page, for the order whose ``reference_id`` is ours.

    Square cannot filter by reference. A found order whose submission stopped before its
    payments were recorded gets them now, the same requests with the same keys.
    """
    settings = _settings(ctx)
    client = _client(ctx)
    since = datetime.now(UTC) - LOOKUP_WINDOW
    query: dict[str, Any] = {
        "location_ids": [settings.square_location(location)],
        "query": {
            "filter": {
                "date_time_filter": {"created_at": {"start_at": rfc3339(since)}},
                "source_filter": {"source_names": [ORDER_SOURCE_NAME]},
            },
            "sort": {"sort_field": "CREATED_AT", "sort_order": "DESC"},
        },
        "limit": SEARCH_PAGE_SIZE,
    }
    cursor: str | None = None
    while True:
        page = await client.search_orders(query if cursor is None else {**query, "cursor": cursor})
        match = next(
            (o for o in page.get("orders") or [] if o.get("reference_id") == order_id), None
        )
        if match is not None:
            await _record_payments(ctx, client, order_id, str(match["id"]))
            payment = missing_payment(match)
            if payment is not None and settings.record_prepaid_as_external_payment:
                await _record_payment(client, payment, order_id)
            return FoundOrder(
                pos_order_id=str(match["id"]),
                status=status_of_order(match) or OrderStatus.ACCEPTED,
            )
        cursor = page.get("cursor") or None
        if cursor is None:
            return None


@hookimpl
async def pos_cancel_order(
    ctx: ConnectionContext, order_id: str, pos_order_id: str | None, location: str, reason: str
) -> CancelResult:
    """UpdateOrder: the order's state ``CANCELED`` and its fulfillment ``CANCELED`` with the
    reason. Square refuses to cancel an order that is completed; so does this hook, for an order
    handed over (its fulfillment ``COMPLETED``).

    The update names the version read just before; when the order changed in between (the
    kitchen moved it on, a payment was added), Square refuses it and the order is read again,
    up to :data:`CANCEL_READS` times, before the host is asked to retry later."""
    client = _client(ctx)
    if pos_order_id is None:
        found = await pos_find_order(ctx, order_id, location)
        if found is None:
            return CancelResult(cancelled=False, reason="Square has no order with this reference")
        pos_order_id = found.pos_order_id
    reads = 0
    while True:
        reads += 1
        documents = await client.batch_retrieve_orders([pos_order_id])
        if not documents:
            return CancelResult(cancelled=False, reason=f"Square has no order {pos_order_id}")
        square_order = documents[0]
        if square_order.get("state") == "CANCELED":
            return CancelResult(cancelled=True)
        if square_order.get("state") == "COMPLETED" or pickup_state(square_order) == "COMPLETED":
            return CancelResult(cancelled=False, reason="too late: the order was handed over")
        try:
            updated = await client.update_order(pos_order_id, cancel_request(square_order, reason))
        except PermanentError as exc:
            if exc.code not in ("CONFLICT", "VERSION_MISMATCH"):
                return CancelResult(cancelled=False, reason=exc.reason)
            if reads >= CANCEL_READS:
                raise RetryableError(f"{exc.message} (changed meanwhile: asking again)") from exc
            continue
        ctx.log.info("order {} (Square {}) cancelled: {}", order_id, pos_order_id, reason)
        return CancelResult(cancelled=updated.get("state") == "CANCELED")


@hookimpl
async def pos_poll_status(ctx: ConnectionContext, orders: list[TrackedOrder]) -> list[StatusEvent]:
    """BatchRetrieveOrders of the tracked orders' Square ids; status from their PICKUP
    fulfillment (or the order's final state). An order Square sends that cannot be read is
    logged and passed over."""
    ids = sorted({order.pos_order_id for order in orders if order.pos_order_id})
    if not ids:
        return []
    events: list[StatusEvent] = []
    for document in await _client(ctx).batch_retrieve_orders(ids):
        try:
            event = status_event_from_order(document)
        except PermanentError as exc:  # one unreadable order must not hide the others
            ctx.log.warning("skipping a Square order: {}", exc.message)
            continue
        if event is not None:
            events.append(event)
    return sorted(events, key=lambda e: e.occurred_at)


@hookimpl
async def pos_parse_webhook(ctx: ConnectionContext, request: InboundWebhook) -> WebhookResult:
    """Verify ``x-square-hmacsha256-signature`` first, then read the notification.

    The signature may be made with ``webhook_signature_key`` or, during a key rotation,
    ``webhook_signature_key_next``.

    Repeated deliveries (same ``event_id``) and order notifications older than one already seen
    (lower order ``version``) give an empty result. An ``order.updated`` of an ``OPEN`` order
    carries no fulfillment state, so the order is fetched to report where it stands.

    :raises WebhookRejected: 401 for a missing or wrong signature, 400 (naming the field) for a
        signed body that cannot be read.
    :raises RetryableError: (or another ``PosError``) fetching the order failed; the host
        answers 503 and Square delivers the notification again later.
    """
    settings = _settings(ctx)
    keys = settings.webhook_signature_keys()
    if not keys:
        raise WebhookRejected("no webhook_signature_key configured: cannot verify Square webhooks")
    given = _header(request, SIGNATURE_HEADER)
    if not given:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
    urls = _notification_urls(settings, ctx)
    if not any(verify_signature(key, url, request.body, given) for key in keys for url in urls):
        raise WebhookRejected(f"wrong {SIGNATURE_HEADER}")
    try:
        notification = read_notification(request.body)
    except PermanentError as exc:
        raise WebhookRejected(exc.message, status=400) from exc
    event_id, notice = notification.event_id, notification.notice

    seen = await _load_json(ctx, SEEN_EVENTS_KEY, [])
    if event_id in seen:
        return WebhookResult()
    result = WebhookResult()
    if notification.type == CATALOG_EVENT:
        result = WebhookResult(menu_changed_locations=list(ctx.locations))
    elif notice is not None and _serves(ctx, settings, notice.square_location_id):
        versions: dict[str, int] = await _load_json(ctx, ORDER_VERSIONS_KEY, {})
        highest = versions.get(notice.square_order_id)
        if notice.version is None or highest is None or notice.version >= highest:
            status = None
            if notice.needs_order:
                found = await _client(ctx).batch_retrieve_orders([notice.square_order_id])
                status = status_of_order_document(found[0]) if found else None
            event = notice.event(status)
            result = WebhookResult(events=[] if event is None else [event])
            if notice.version is not None:
                versions.pop(notice.square_order_id, None)
                versions[notice.square_order_id] = max(notice.version, highest or 0)
                excess = len(versions) - ORDER_VERSIONS_MAX
                for old in list(versions)[: max(excess, 0)]:
                    del versions[old]
                await ctx.state.set(ORDER_VERSIONS_KEY, orjson.dumps(versions).decode())
        else:
            ctx.log.debug(
                "stale Square event {} (version {} < {})", event_id, notice.version, highest
            )
    seen = [*seen, event_id][-SEEN_EVENTS_MAX:]
    await ctx.state.set(SEEN_EVENTS_KEY, orjson.dumps(seen).decode())
    return result


def _serves(ctx: ConnectionContext, settings: SquareSettings, square_location: str | None) -> bool:
    """Whether an event of this Square location concerns the connection (unknown: yes)."""
    if square_location is None:
        return True
    return settings.our_location(square_location) in ctx.locations


def _notification_urls(settings: SquareSettings, ctx: ConnectionContext) -> list[str]:
    """The URL Square signed: the configured one (with and without a bare trailing slash, as URL
    parsing may add one), else the host's webhook URL."""
    if settings.webhook_notification_url is None:
        return [ctx.webhook_url]
    url = str(settings.webhook_notification_url)
    return [url, url.rstrip("/")] if url.endswith("/") else [url]


async def _load_json(ctx: ConnectionContext, key: str, default: Any) -> Any:
    raw = await ctx.state.get(key)
    if raw is None:
        return default
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return default
    return value if isinstance(value, type(default)) else default


def _header(request: InboundWebhook, name: str) -> str | None:
    """A request header by name, case-insensitively whatever mapping the host passed."""
    wanted = name.lower()
    return next((value for key, value in request.headers.items() if key.lower() == wanted), None)

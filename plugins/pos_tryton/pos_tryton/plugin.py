"""The Tryton hook implementations (entry point ``tryton``).

Thin: each hook reads what it needs from Tryton in a bounded number of JSON-RPC calls (never one
per product or per order) and hands the records to :mod:`pos_tryton.translate`; the order flows
live in :mod:`pos_tryton.sales`. The module keeps no state of its own: an order's pending-sale
record lives in ``ctx.state``, and the login session in the client's in-memory cache.
"""

from __future__ import annotations

from pos_tryton import sales
from pos_tryton.settings import TrytonSettings
from pos_tryton.translate import (
    CATEGORY_FIELDS,
    PRODUCT_FIELDS,
    menu_from_tryton,
    status_event,
)
from posintegrator.context import ConnectionContext
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import (
    Capabilities,
    Deployment,
    FoundOrder,
    SubmitResult,
    TrackedOrder,
)
from posintegrator.model import Menu, Order, OrderType, PaymentMode, StatusEvent

#: The plugin API range this plugin is built for (checked by the host at start-up).
POSINTEGRATOR_PLUGIN_API = ">=1.0,<2"


@hookimpl
def pos_settings_model() -> type[TrytonSettings]:
    """Tryton connections are configured by :class:`TrytonSettings`."""
    return TrytonSettings


@hookimpl
def pos_capabilities() -> Capabilities:
    """Menu, orders of every type and payment mode, lookup by marker note, status by polling.

    Tryton does not deduplicate submissions (no idempotency key), and pushes nothing, so the
    plugin reconciles with lookups and polls. It runs beside a venue's Tryton (local) or
    against a Tryton the hub reaches (central).
    """
    return Capabilities(
        menu=True,
        orders=True,
        order_lookup=True,
        idempotent_submit=False,
        status_webhooks=False,
        status_polling=True,
        order_types=list(OrderType),
        payment_modes=list(PaymentMode),
        deployments=[Deployment.LOCAL, Deployment.CENTRAL],
    )


@hookimpl
async def pos_fetch_menu(ctx: ConnectionContext, location: str) -> Menu:
    """The sale point (currency, time zone, tax mode), the menu categories, the salable products
    and their taxes: four calls, plus one per further page of 500 products."""
    settings, client = sales.client_for(ctx)
    point = await sales.read_point(client, sales.sale_point_of(settings, location))
    categories = await client.search_read(
        "product.category", [("accounting", "=", False)], CATEGORY_FIELDS
    )
    products = await client.search_read("product.product", [("salable", "=", True)], PRODUCT_FIELDS)
    taxes = await sales.read_taxes(client, products)
    translation = menu_from_tryton(location, point, categories, products, taxes)
    for product, reason in sorted(translation.skipped.items()):
        ctx.log.warning("Tryton product {} is not on the menu of {}: {}", product, location, reason)
    return translation.menu


@hookimpl
async def pos_submit_order(
    ctx: ConnectionContext, order: Order, idempotency_key: str
) -> SubmitResult:
    """Create the order's sale at its location's sale point (see :func:`sales.submit`).

    Tryton takes no idempotency key; the order's marker note and pending-sale record serve
    instead.
    """
    return await sales.submit(ctx, order)


@hookimpl
async def pos_find_order(ctx: ConnectionContext, order_id: str, location: str) -> FoundOrder | None:
    """Find the order's sale by its marker note or, failing that, by its content."""
    return await sales.find(ctx, order_id)


@hookimpl
async def pos_poll_status(ctx: ConnectionContext, orders: list[TrackedOrder]) -> list[StatusEvent]:
    """The state and last change of every tracked sale, in one call per 500 sales.

    A tracked sale Tryton no longer shows (deleted by a cashier, or no longer visible to the
    integration user) gets no event: it is logged, and an operator decides.
    """
    ids = sorted({int(pos_id) for o in orders if (pos_id := o.pos_order_id) and pos_id.isdigit()})
    if not ids:
        return []
    _, client = sales.client_for(ctx)
    records = await client.search_read(
        sales.SALE, [("id", "in", ids)], ("state", "write_date", "create_date")
    )
    events = []
    for record in records:
        event = status_event(record)
        if event is None:
            state = record["state"]
            ctx.log.warning("Tryton sale {} is in unknown state {!r}", record["id"], state)
        else:
            events.append(event)
    gone = sorted(set(ids) - {int(r["id"]) for r in records})
    if gone:
        ctx.log.warning("Tryton sales {} are gone (deleted in Tryton?): no status for them", gone)
    return sorted(events, key=lambda e: e.occurred_at)

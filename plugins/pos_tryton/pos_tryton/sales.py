"""An order's life in Tryton: create its sale, mark the sale as the order's, record a prepayment;
and, after an unknown outcome, find the sale again (the rules are in :mod:`pos_tryton.reconcile`).

Every call goes through :class:`~pos_tryton.client.TrytonClient`; the only state kept is the
order's :class:`~pos_tryton.reconcile.Pending` record, in the connection's durable state, written
before Tryton is asked to create anything.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pos_tryton.client import TrytonClient
from pos_tryton.reconcile import (
    Found,
    Missing,
    Pending,
    SaleFacts,
    Unsettled,
    decide,
    line_key,
    marker,
    owners,
    resource,
)
from pos_tryton.settings import TrytonSettings
from pos_tryton.translate import (
    POINT_FIELDS,
    PRODUCT_FIELDS,
    TAX_FIELDS,
    PointInfo,
    TaxRule,
    from_minor,
    named_products,
    note_message,
    sale_lines,
    sale_total,
    status_of_sale,
    tax_ids,
)
from posintegrator.context import ConnectionContext
from posintegrator.errors import (
    AmbiguousError,
    AuthError,
    NeedsAttentionError,
    PermanentError,
    PosError,
    RetryableError,
)
from posintegrator.hooktypes import FoundOrder, SubmitResult
from posintegrator.model import Order, OrderStatus, PaymentMode, utcnow

SALE = "sale.point.sale"
#: What a lookup reads of each candidate sale.
SALE_FIELDS = ("total", "state", "create_date")


def pending_key(order_id: str) -> str:
    """The ``ctx.state`` key of an order's pending-sale record."""
    return f"tryton_pending:{order_id}"


async def load_pending(ctx: ConnectionContext, order_id: str) -> Pending | None:
    """The order's pending-sale record, or None when the plugin never tried to create its sale."""
    raw = await ctx.state.get(pending_key(order_id))
    return None if raw is None else Pending.loads(raw)


async def save_pending(ctx: ConnectionContext, order_id: str, pending: Pending) -> None:
    """Store the order's pending-sale record durably."""
    await ctx.state.set(pending_key(order_id), pending.dumps())


def client_for(ctx: ConnectionContext) -> tuple[TrytonSettings, TrytonClient]:
    """The connection's settings and a client for its Tryton."""
    settings = ctx.settings_as(TrytonSettings)
    return settings, TrytonClient(ctx.http, settings, max_response_bytes=ctx.max_response_bytes)


def sale_point_of(settings: TrytonSettings, location: str) -> int:
    """The sale point of a location.

    :raises PermanentError: the settings name none for it.
    """
    try:
        return settings.sale_point(location)
    except KeyError:
        reason = f"location {location!r} has no Tryton sale point (settings: sale_points)"
        raise PermanentError(reason, reason=reason, code="no_sale_point") from None


async def read_point(client: TrytonClient, point_id: int) -> PointInfo:
    """A sale point with its company's currency and time zone."""
    (record,) = await client.read("sale.point", [point_id], POINT_FIELDS)
    return PointInfo.from_tryton(record)


async def read_taxes(client: TrytonClient, products: list[dict[str, Any]]) -> dict[int, TaxRule]:
    """The customer taxes the products use, by id."""
    records = await client.read("account.tax", tax_ids(products), TAX_FIELDS)
    return {int(r["id"]): TaxRule.from_tryton(r) for r in records}


async def submit(ctx: ConnectionContext, order: Order) -> SubmitResult:
    """Create the order's sale, mark it, and record the prepayment of a PREPAID order.

    :raises PermanentError: Tryton cannot take the order as it is (a product no longer active
        and salable, a line it has no place for), or refused it or its payment.
    :raises AmbiguousError: the answer to the creation was lost, or any later step failed
        once the sale existed (never :class:`RetryableError` then: that means "send it again").
    """
    settings, client = client_for(ctx)
    point = await read_point(client, sale_point_of(settings, order.location))
    product_ids, template_ids = named_products(order)
    domain: list[Any] = ["OR", ("id", "in", product_ids), ("template", "in", template_ids)]
    records = await client.search_read("product.product", domain, PRODUCT_FIELDS)
    taxes = await read_taxes(client, records)
    try:
        lines = sale_lines(order, point, {int(r["id"]): r for r in records}, taxes)
    except ValueError as exc:
        raise PermanentError(str(exc), reason=str(exc), code="not_sellable") from exc

    earlier = await load_pending(ctx, order.id)
    pending = Pending(
        started_at=earlier.started_at if earlier is not None else utcnow(),
        point=point.id,
        lines=line_key((line.product, line.quantity) for line in lines),
        total=sale_total(lines, point.digits),
        prepaid=(
            from_minor(prepaid, point.digits)
            if (prepaid := sum(p.amount for p in order.payments if p.mode == PaymentMode.PREPAID))
            else None
        ),
        note=note_message(marker(order.id), order, point.digits),
    )
    await save_pending(ctx, order.id, pending)
    values = {
        "point": point.id,
        "company": point.company,
        "lines": [["create", [line.values() for line in lines]]],
    }
    (sale_id,) = await client.create(SALE, [values])
    pending = pending.with_sale(sale_id)
    await save_pending(ctx, order.id, pending)
    ctx.log.info("order {} is Tryton sale {}", order.id, sale_id)
    try:
        await mark(client, sale_id, order.id, pending.note)
        try:
            await settle(ctx, client, settings, sale_id, pending)
        except PermanentError as exc:
            with suppress(PosError):
                await client.button(SALE, "cancel", [sale_id])
            reason = f"Tryton refused the payment, so sale {sale_id} was cancelled: {exc.reason}"
            raise PermanentError(exc.message, reason=reason, code=exc.code) from exc
    except (RetryableError, AuthError) as exc:
        # The sale exists now: "not taken, send it again" would make a second one. The host
        # looks the order up instead, which marks and pays the sale as far as still needed.
        raise AmbiguousError(
            f"{exc.message} (after Tryton created sale {sale_id} for order {order.id!r}: it "
            "will be looked up, not created again)"
        ) from exc
    # The submission's answer is that Tryton took the order (its sale was created open); what
    # became of it since (done once a prepayment closed it) reaches the cloud by polling, like
    # any later change, so the cloud always hears ACCEPTED first.
    return SubmitResult(pos_order_id=str(sale_id), status=OrderStatus.ACCEPTED)


async def mark(client: TrytonClient, sale_id: int, order_id: str, note: str) -> None:
    """Put the order's marker note on a sale, then check the order owns it (the first marker).

    :raises RetryableError: another order marked the sale first; the note is taken back.
    """
    (note_id,) = await client.create("ir.note", [{"resource": resource(sale_id), "message": note}])
    notes = await client.search_read(
        "ir.note", [("resource", "=", resource(sale_id))], ("resource", "message")
    )
    owner = owners(notes).get(sale_id)
    if owner != order_id:
        with suppress(PosError):
            await client.delete("ir.note", [note_id])
        raise RetryableError(
            f"Tryton sale {sale_id} was marked as order {owner!r} first; order {order_id!r} "
            "will be looked up or sent again"
        )


async def settle(
    ctx: ConnectionContext,
    client: TrytonClient,
    settings: TrytonSettings,
    sale_id: int,
    pending: Pending,
) -> OrderStatus:
    """Record a PREPAID order's payment once and close its sale; the sale's status after that.

    The payment is created only while the sale has none, so repeating this after a lost answer
    never pays twice. When Tryton's total differs from what was paid, the payment still records
    the money actually taken and the sale stays open for the cashier to settle.
    """
    (sale,) = await client.read(SALE, [sale_id], ("state", "total", "amount_paid"))
    state = str(sale["state"])
    if pending.prepaid is not None and state == "open":
        paid = Decimal(sale["amount_paid"] or 0)
        if not paid:
            payment = {
                "sale": sale_id,
                "method": settings.prepaid_payment_method,
                "amount": pending.prepaid,
            }
            await client.create("sale.point.payment", [payment])
            paid = pending.prepaid
        if paid == Decimal(sale["total"]):
            await client.button(SALE, "process", [sale_id])
            (sale,) = await client.read(SALE, [sale_id], ("state",))
            state = str(sale["state"])
        else:
            ctx.log.warning(
                "Tryton sale {} totals {} but {} was prepaid: left open for the cashier",
                sale_id,
                sale["total"],
                paid,
            )
    return status_of_sale(state) or OrderStatus.ACCEPTED


async def find(ctx: ConnectionContext, order_id: str) -> FoundOrder | None:
    """Find the order's sale after an unknown outcome (see :mod:`pos_tryton.reconcile`).

    :returns: the sale, marked and paid as the order wants; None when Tryton certainly does not
        have it.
    :raises NeedsAttentionError: Tryton's data cannot settle it.
    """
    pending = await load_pending(ctx, order_id)
    if pending is None:
        return None  # the record is written before any create: none was ever sent
    settings, client = client_for(ctx)
    since = pending.started_at - timedelta(seconds=settings.clock_skew_seconds)
    sales = await client.search_read(
        SALE,
        [
            ("point", "=", pending.point),
            ("create_uid", "=", await client.user_id()),
            ("create_date", ">=", since),
        ],
        SALE_FIELDS,
    )
    facts = await _facts(client, sales)
    notes = (
        await client.search_read(
            "ir.note",
            [("resource", "in", [resource(s.id) for s in facts])],
            ("resource", "message"),
        )
        if facts
        else []
    )
    decision = decide(order_id, pending, facts, owners(notes))
    if isinstance(decision, Missing):
        return None
    if isinstance(decision, Unsettled):
        raise NeedsAttentionError(decision.reason)
    assert isinstance(decision, Found)
    if not decision.marked:
        await mark(client, decision.sale_id, order_id, pending.note)
    pending = pending.with_sale(decision.sale_id)
    await save_pending(ctx, order_id, pending)
    ctx.log.info("order {} found as Tryton sale {}", order_id, decision.sale_id)
    status = await settle(ctx, client, settings, decision.sale_id, pending)
    return FoundOrder(pos_order_id=str(decision.sale_id), status=status)


async def _facts(client: TrytonClient, sales: list[dict[str, Any]]) -> list[SaleFacts]:
    """The sales with their lines, in one read of all their lines."""
    if not sales:
        return []
    lines = await client.search_read(
        "sale.point.sale.line",
        [("sale", "in", [int(s["id"]) for s in sales])],
        ("sale", "product", "quantity"),
    )
    by_sale: dict[int, list[tuple[int, Decimal]]] = {}
    for line in lines:
        by_sale.setdefault(int(line["sale"]), []).append(
            (int(line["product"]), Decimal(str(line["quantity"])))
        )
    return [
        SaleFacts(int(s["id"]), Decimal(s["total"]), line_key(by_sale.get(int(s["id"]), [])))
        for s in sales
    ]

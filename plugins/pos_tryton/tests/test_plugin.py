"""The plugin's hooks against a real Tryton server: menu, orders, payments, errors, sessions,
status, and finding an order again after its answer was lost. Every check of what Tryton did
reads Tryton's own database file."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from conftest import LOCATION, MemoryState, cashier_pays, context_for, user_client

from pos_tryton import plugin
from pos_tryton.testing import TrytonServer
from pos_tryton.testing.faults import LossyRpcProxy
from posintegrator.context import ConnectionContext
from posintegrator.errors import AmbiguousError, AuthError, NeedsAttentionError, PermanentError
from posintegrator.hooktypes import TrackedOrder
from posintegrator.model import Menu, Order, OrderStatus

CREATE_SALE = "model.sale.point.sale.create"


def num(value: Any) -> Decimal:
    """A number as Tryton's SQLite database stores it (numerics as text)."""
    return Decimal(value.decode() if isinstance(value, bytes) else str(value))


def order_of(menu: Menu, order_id: str, items: dict[str, int], *, prepaid: bool) -> Order:
    """An order of the named menu products (first variant), priced from the menu."""
    lines = []
    for name, quantity in items.items():
        product = next(p for p in menu.products if p.name == name)
        variant = product.variants[0]
        lines.append(
            {
                "product_id": product.id,
                "variant_id": variant.id,
                "quantity": quantity,
                "unit_price": variant.prices["tryton"],
            }
        )
    total = sum(line["unit_price"] * line["quantity"] for line in lines)
    return Order.model_validate(
        {
            "id": order_id,
            "location": LOCATION,
            "type": "TAKE_AWAY",
            "currency": "EUR",
            "lines": lines,
            "total": total,
            "payments": [{"mode": "PREPAID" if prepaid else "AT_COUNTER", "amount": total}],
            "customer": {"name": "Ada"},
        }
    )


@pytest.fixture
async def menu(ctx: ConnectionContext) -> Menu:
    return await plugin.pos_fetch_menu(ctx, LOCATION)


@pytest.fixture
async def counted_http() -> AsyncIterator[tuple[aiohttp.ClientSession, Counter[str]]]:
    """An HTTP session that counts the JSON-RPC methods it sends."""
    calls: Counter[str] = Counter()

    async def on_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        calls["requests"] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        yield session, calls


async def test_the_menu_is_read_in_a_bounded_number_of_calls(
    tryton: TrytonServer, counted_http: tuple[aiohttp.ClientSession, Counter[str]]
) -> None:
    http, calls = counted_http
    ctx = context_for(http, tryton.plugin_settings(LOCATION))
    menu = await plugin.pos_fetch_menu(ctx, LOCATION)
    assert len(menu.products) == 35
    # login, the user's context, the sale point, categories, products, taxes: not one per product
    assert calls["requests"] == 6
    await plugin.pos_fetch_menu(ctx, LOCATION)
    assert calls["requests"] == 10, "the session is reused: no second login"
    names = {p.name for p in menu.products}
    assert "Truffle special" not in names, "inactive in Tryton"
    assert "Flour 25 kg" not in names, "not salable"


async def test_a_prepaid_order_is_paid_and_done_an_order_paid_at_the_counter_stays_open(
    tryton: TrytonServer, ctx: ConnectionContext, menu: Menu
) -> None:
    prepaid = order_of(menu, "web-1", {"Pizza Margherita": 2, "Cola": 1}, prepaid=True)
    result = await plugin.pos_submit_order(ctx, prepaid, "key-1")
    assert result.status == OrderStatus.ACCEPTED
    sale = int(result.pos_order_id)
    assert tryton.order_sales("web-1") == [sale]
    assert tryton.sale_state(sale) == "done"
    payments = tryton.query("SELECT method, amount FROM sale_point_payment WHERE sale = ?", sale)
    online = int(tryton.seeded.ids["payment_methods"]["online"])
    assert [(method, num(amount)) for method, amount in payments] == [(online, Decimal("22.90"))]
    lines = tryton.query(
        "SELECT product, quantity, unit_gross_price FROM sale_point_sale_line WHERE sale = ? "
        "ORDER BY product",
        sale,
    )
    assert [(product, num(quantity), num(price)) for product, quantity, price in lines] == [
        (tryton.product("Pizza Margherita"), 2, Decimal("9.50")),
        (tryton.product("Cola"), 1, Decimal("3.90")),
    ]
    resource = f"sale.point.sale,{sale}"
    ((note,),) = tryton.query("SELECT message FROM ir_note WHERE resource = ?", resource)
    assert note.startswith('posintegrator order "web-1"\n') and "Customer: Ada" in note

    at_counter = order_of(menu, "web-2", {"Lasagne": 1}, prepaid=False)
    sale_2 = int((await plugin.pos_submit_order(ctx, at_counter, "key-2")).pos_order_id)
    assert tryton.sale_state(sale_2) == "open"
    assert tryton.query("SELECT id FROM sale_point_payment WHERE sale = ?", sale_2) == []


async def test_products_tryton_no_longer_sells_are_refused_before_anything_is_created(
    tryton: TrytonServer, ctx: ConnectionContext, menu: Menu
) -> None:
    order = order_of(menu, "web-3", {"Tiramisu": 1}, prepaid=True)
    body = order.model_dump(mode="json")
    for inactive in ("Truffle special", "Flour 25 kg"):
        body["lines"][0]["variant_id"] = f"variant-{tryton.product(inactive)}"
        with pytest.raises(PermanentError, match="not active and salable"):
            await plugin.pos_submit_order(ctx, Order.model_validate(body), "key-3")
    assert tryton.sale_ids() == []


async def test_a_refused_payment_cancels_the_sale_and_rejects_the_order(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    ctx = context_for(http, tryton.plugin_settings(LOCATION, prepaid_payment_method=999))
    order = order_of(menu, "web-4", {"Tiramisu": 1}, prepaid=True)
    with pytest.raises(PermanentError) as refused:
        await plugin.pos_submit_order(ctx, order, "key-4")
    (sale,) = tryton.sale_ids()
    assert f"sale {sale} was cancelled" in refused.value.reason
    assert tryton.sale_state(sale) == "cancelled"


async def test_wrong_credentials_and_an_unknown_database_are_auth_errors(
    tryton: TrytonServer, http: aiohttp.ClientSession
) -> None:
    for overrides in ({"password": "wrong"}, {"database": "nowhere"}):
        ctx = context_for(http, tryton.plugin_settings(LOCATION, **overrides))
        with pytest.raises(AuthError, match="check the settings"):
            await plugin.pos_fetch_menu(ctx, LOCATION)


async def test_a_lost_session_is_renewed_without_an_operator(
    tryton: TrytonServer,
    http: aiohttp.ClientSession,
    counted_http: tuple[aiohttp.ClientSession, Counter[str]],
) -> None:
    counting, calls = counted_http
    ctx = context_for(counting, tryton.plugin_settings(LOCATION))
    await plugin.pos_fetch_menu(ctx, LOCATION)
    # An administrator resets the integration user's password (to the same one): Tryton ends
    # every session of that user.
    admin = user_client(tryton, http, "admin")
    user_id = int(tryton.seeded.ids["users"]["integration"])
    password = tryton.seeded.logins["integration"][1]
    await admin.call("model.res.user.write", [user_id], {"password": password}, write=True)
    before = calls["requests"]
    menu = await plugin.pos_fetch_menu(ctx, LOCATION)
    assert len(menu.products) == 35
    # refused call, login, context, then the four calls of the menu
    assert calls["requests"] - before == 7


async def test_tryton_down_is_retryable_and_a_lost_write_is_ambiguous(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    async with LossyRpcProxy(tryton.url) as proxy:
        ctx = context_for(http, tryton.plugin_settings(LOCATION, base_url=proxy.url))
        proxy.lose_answer(CREATE_SALE)
        order = order_of(menu, "web-5", {"Espresso": 2}, prepaid=False)
        with pytest.raises(AmbiguousError):
            await plugin.pos_submit_order(ctx, order, "key-5")
        assert proxy.lost[CREATE_SALE] == 1
    assert len(tryton.sale_ids()) == 1, "Tryton created the sale; only its answer was lost"


async def test_after_a_lost_answer_the_lookup_finds_the_sale_and_marks_and_pays_it(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    state = MemoryState()
    async with LossyRpcProxy(tryton.url) as proxy:
        ctx = context_for(http, tryton.plugin_settings(LOCATION, base_url=proxy.url), state)
        order = order_of(menu, "web-6", {"Calzone": 1, "Peroni": 2}, prepaid=True)
        proxy.lose_answer(CREATE_SALE)
        with pytest.raises(AmbiguousError):
            await plugin.pos_submit_order(ctx, order, "key-6")
        (sale,) = tryton.sale_ids()
        assert tryton.order_sales("web-6") == [], "not marked yet: the answer never arrived"
        found = await plugin.pos_find_order(ctx, "web-6", LOCATION)
    assert found is not None and found.pos_order_id == str(sale)
    assert found.status == OrderStatus.COMPLETED, "the prepayment was recorded and closed it"
    assert tryton.order_sales("web-6") == [sale]
    assert tryton.sale_ids() == [sale]
    assert len(tryton.query("SELECT id FROM sale_point_payment WHERE sale = ?", sale)) == 1
    ctx = context_for(http, tryton.plugin_settings(LOCATION), state)
    again = await plugin.pos_find_order(ctx, "web-6", LOCATION)
    assert again is not None and again.pos_order_id == str(sale)
    assert len(tryton.query("SELECT id FROM sale_point_payment WHERE sale = ?", sale)) == 1


async def test_a_read_that_fails_once_the_sale_exists_is_ambiguous_never_a_resend(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    # A failed read is retryable ("not taken: send it again") before the sale exists; after,
    # the host must look the order up instead, or it would create a second sale.
    state = MemoryState()
    async with LossyRpcProxy(tryton.url) as proxy:
        ctx = context_for(http, tryton.plugin_settings(LOCATION, base_url=proxy.url), state)
        order = order_of(menu, "web-12", {"Pizza Margherita": 1}, prepaid=True)
        proxy.lose_answer("model.ir.note.search_read")  # the check after the marker note
        with pytest.raises(AmbiguousError, match="not created again"):
            await plugin.pos_submit_order(ctx, order, "key-12")
        (sale,) = tryton.sale_ids()
        found = await plugin.pos_find_order(ctx, "web-12", LOCATION)
    assert found is not None and found.pos_order_id == str(sale)
    assert found.status == OrderStatus.COMPLETED
    assert tryton.sale_ids() == [sale] and tryton.order_sales("web-12") == [sale]
    assert len(tryton.query("SELECT id FROM sale_point_payment WHERE sale = ?", sale)) == 1


async def test_a_lookup_answers_none_only_when_tryton_certainly_lacks_the_order(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    state = MemoryState()
    async with LossyRpcProxy(tryton.url) as proxy:
        ctx = context_for(http, tryton.plugin_settings(LOCATION, base_url=proxy.url), state)
        assert await plugin.pos_find_order(ctx, "never-sent", LOCATION) is None
        # Tryton is unreachable at create time: the pending record exists, no sale does.
        await proxy.close()
        order = order_of(menu, "web-7", {"Tea": 1}, prepaid=False)
        with pytest.raises(Exception) as failed:
            await plugin.pos_submit_order(ctx, order, "key-7")
        assert not isinstance(failed.value, AmbiguousError)
    ctx = context_for(http, tryton.plugin_settings(LOCATION), state)
    assert await plugin.pos_find_order(ctx, "web-7", LOCATION) is None
    assert tryton.sale_ids() == []


async def test_two_identical_orders_with_lost_answers_need_a_person(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    state = MemoryState()
    async with LossyRpcProxy(tryton.url) as proxy:
        ctx = context_for(http, tryton.plugin_settings(LOCATION, base_url=proxy.url), state)
        proxy.lose_answer(CREATE_SALE, times=2)
        for order_id in ("web-8", "web-9"):
            order = order_of(menu, order_id, {"Cannoli": 2}, prepaid=False)
            with pytest.raises(AmbiguousError):
                await plugin.pos_submit_order(ctx, order, order_id)
    assert len(tryton.sale_ids()) == 2
    ctx = context_for(http, tryton.plugin_settings(LOCATION), state)
    with pytest.raises(NeedsAttentionError, match="2 unmarked sales"):
        await plugin.pos_find_order(ctx, "web-8", LOCATION)


async def test_a_sale_marked_for_one_order_is_never_claimed_by_another(
    tryton: TrytonServer, http: aiohttp.ClientSession, menu: Menu
) -> None:
    state = MemoryState()
    async with LossyRpcProxy(tryton.url) as proxy:
        ctx = context_for(http, tryton.plugin_settings(LOCATION, base_url=proxy.url), state)
        proxy.lose_answer(CREATE_SALE)
        first = order_of(menu, "web-10", {"Affogato": 1}, prepaid=False)
        with pytest.raises(AmbiguousError):
            await plugin.pos_submit_order(ctx, first, "key-10")
        found = await plugin.pos_find_order(ctx, "web-10", LOCATION)
        assert found is not None
        # An identical order whose create never reached Tryton (refused at the door).
        await proxy.close()
        second = order_of(menu, "web-11", {"Affogato": 1}, prepaid=False)
        with pytest.raises(Exception):  # noqa: B017 - any refusal: Tryton was not reached
            await plugin.pos_submit_order(ctx, second, "key-11")
    ctx = context_for(http, tryton.plugin_settings(LOCATION), state)
    assert await plugin.pos_find_order(ctx, "web-11", LOCATION) is None
    assert tryton.order_sales("web-10") == [int(found.pos_order_id)]


async def test_polling_reports_what_the_cashier_did(
    tryton: TrytonServer, ctx: ConnectionContext, http: aiohttp.ClientSession, menu: Menu
) -> None:
    sales = {}
    for order_id in ("web-12", "web-13", "web-14"):
        order = order_of(menu, order_id, {"Minestrone": 1}, prepaid=False)
        sales[order_id] = int((await plugin.pos_submit_order(ctx, order, order_id)).pos_order_id)
    cashier = user_client(tryton, http, "cashier")
    await cashier_pays(cashier, tryton, sales["web-12"])
    await cashier.button("sale.point.sale", "cancel", [sales["web-13"]])
    tracked = [
        TrackedOrder(
            order_id=order_id, pos_order_id=str(sale), location=LOCATION, status="ACCEPTED"
        )
        for order_id, sale in sales.items()
    ]
    events = await plugin.pos_poll_status(ctx, tracked)
    assert {e.pos_order_id: e.status for e in events} == {
        str(sales["web-12"]): OrderStatus.COMPLETED,
        str(sales["web-13"]): OrderStatus.CANCELLED,
        str(sales["web-14"]): OrderStatus.ACCEPTED,
    }
    paid = tryton.query("SELECT amount FROM sale_point_payment WHERE sale = ?", sales["web-12"])
    assert [num(amount) for (amount,) in paid] == [Decimal("7.00")]


async def test_a_closed_accounting_period_does_not_stop_orders(
    tryton: TrytonServer, ctx: ConnectionContext, http: aiohttp.ClientSession, menu: Menu
) -> None:
    admin = user_client(tryton, http, "admin")
    periods = await admin.search_read(
        "account.period",
        [("start_date", "<=", dt.date.today()), ("end_date", ">=", dt.date.today())],
        ("state",),
    )
    ids = [int(p["id"]) for p in periods]
    await admin.button("account.period", "close", ids)
    assert [p["state"] for p in await admin.read("account.period", ids, ("state",))] == ["closed"]
    order = order_of(menu, "web-15", {"Prosecco": 2}, prepaid=True)
    sale = int((await plugin.pos_submit_order(ctx, order, "key-15")).pos_order_id)
    assert tryton.sale_state(sale) == "done", "Tryton checks periods when posting, not before"

"""The local deployment end to end: a hub, a venue agent beside a real Tryton, the link between
them on loopback. An order posted to the hub lands in Tryton through the agent exactly once, even
when Tryton's answer to the creation is lost; what a cashier does in Tryton reaches the cloud
through the agent in order, even when the link to the hub is down at the time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from conftest import LOCATION, cashier_pays, user_client

from pos_tryton.testing import TrytonServer
from pos_tryton.testing.faults import LossyRpcProxy
from posintegrator.model import OrderStatus
from posintegrator.runtime.host import Host
from posintegrator.settings import ConnectionSettings, HostSettings
from posintegrator.testing import HostHarness, eventually, running_host, sample_order
from posintegrator.testing.faults import FaultProxy
from posintegrator.testing.local import HUB_LINK, agent_settings, pair_agent, running_agent

CREATE_SALE = "model.sale.point.sale.create"
TIMEOUT = 60.0


class Venue:
    """A hub, and the venue agent that serves its location (restartable)."""

    def __init__(self, hub: HostHarness, agent_settings: HostSettings) -> None:
        self.hub = hub
        self._agent_settings = agent_settings
        self._agent_run = AsyncExitStack()
        self._agent: Host | None = None

    @property
    def agent(self) -> Host:
        assert self._agent is not None, "the agent is not running"
        return self._agent

    async def start_agent(self) -> None:
        """Start the agent from its store; return once its link to the hub is up."""
        self._agent = await self._agent_run.enter_async_context(running_agent(self._agent_settings))

    async def stop_agent(self) -> None:
        """Stop the agent; a call to Tryton still under way after the grace period is cut."""
        await self._agent_run.aclose()
        self._agent = None


@asynccontextmanager
async def local_deployment(
    tmp_path: Path, tryton_settings: dict[str, Any], *, link_proxy: FaultProxy | None = None
) -> AsyncIterator[Venue]:
    """A hub whose location is served by a paired venue agent, the agent reaching Tryton with
    ``tryton_settings``, and its link to the hub through ``link_proxy`` when given."""
    hub_side = ConnectionSettings(
        name="trattoria", plugin="tryton", locations=[LOCATION], placement="local"
    )
    async with running_host(tmp_path / "hub", [hub_side], settings=HUB_LINK) as hub:
        await pair_agent(hub.url, hub.token, tmp_path / "agent", "trattoria-agent", [LOCATION])
        hub_url = hub.url
        if link_proxy is not None:
            address = urlsplit(hub.url)
            assert address.hostname is not None and address.port is not None
            link_proxy.upstream = (address.hostname, address.port)
            await link_proxy.accept()
            hub_url = link_proxy.url
        venue_side = ConnectionSettings(
            name="pos",
            plugin="tryton",
            locations=[LOCATION],
            placement="local",
            settings=tryton_settings,
            status_poll_seconds=0.2,
            menu_sync_seconds=3600,
        )
        venue = Venue(hub, agent_settings(tmp_path / "agent", hub_url, venue_side))
        await venue.start_agent()
        try:
            yield venue
        finally:
            await venue.stop_agent()


def cloud_heard(hub: HostHarness, order_id: str) -> list[tuple[int, str]]:
    """(sequence, status) of each status change the cloud received for an order."""
    return [
        (e["sequence"], e["status"])
        for e in hub.receiver.events
        if e.get("type") == "order.status_changed" and e.get("order_id") == order_id
    ]


#: Each call of an order's life in Tryton, whose answer the test loses in turn: the writes
#: (outcome unknown) and the read that checks the marker note once it is written.
LOST_ANSWERS = (
    CREATE_SALE,
    "model.ir.note.create",
    "model.ir.note.search_read",
    "model.sale.point.payment.create",
    "model.sale.point.sale.process",
)


async def test_an_order_lands_once_through_the_agent_whichever_answer_from_tryton_is_lost(
    tryton: TrytonServer, tmp_path: Path
) -> None:
    attempts: dict[str, list[str]] = {}
    views: dict[str, dict[str, Any]] = {}
    async with LossyRpcProxy(tryton.url) as tryton_proxy:
        settings = tryton.plugin_settings(LOCATION, base_url=tryton_proxy.url)
        async with local_deployment(tmp_path, settings) as venue:
            hub = venue.hub
            menu = await hub.wait_for_menu(LOCATION, TIMEOUT)
            assert len(menu.products) > 30, "the agent sent Tryton's menu to the hub"

            async def settled(order_id: str) -> None:
                views[order_id] = await hub.wait_for_status(
                    order_id, {OrderStatus.COMPLETED}, TIMEOUT
                )
                await hub.wait_for_events(
                    lambda _: [s for _, s in cloud_heard(hub, order_id)][-1:] == ["COMPLETED"],
                    TIMEOUT,
                )
                store = venue.agent.store
                attempts[order_id] = [a.outcome for a in await store.attempts_of(order_id)]

            for number, method in enumerate(LOST_ANSWERS, start=1):
                tryton_proxy.lose_answer(method)
                status, body = await hub.post_order(sample_order(menu, f"cloud-{number}"))
                assert status == 202, body
                await settled(f"cloud-{number}")
                assert tryton_proxy.lost[method] == 1, f"the answer to {method} was lost"

            # The agent is stopped while Tryton's answer to the creation is on its way; it
            # starts again from its store.
            restarted = f"cloud-{len(LOST_ANSWERS) + 1}"
            tryton_proxy.hold_answer(CREATE_SALE)
            status, body = await hub.post_order(sample_order(menu, restarted))
            assert status == 202, body
            await eventually(lambda: tryton_proxy.held[CREATE_SALE] == 1, TIMEOUT, "created")
            await venue.stop_agent()
            await venue.start_agent()
            await settled(restarted)
    orders = len(LOST_ANSWERS) + 1
    assert tryton_proxy.calls[CREATE_SALE] == orders, "one sale created per order"
    assert len(tryton.sale_ids()) == orders
    assert attempts[restarted] == ["interrupted", "found in the POS"]
    for number in range(1, orders + 1):
        order_id = f"cloud-{number}"
        lost = LOST_ANSWERS[number - 1] if number <= len(LOST_ANSWERS) else CREATE_SALE
        why = f"{order_id}, whose answer to {lost} was lost"
        if order_id != restarted:
            assert attempts[order_id] == ["unknown", "found in the POS"], why
        (sale,) = tryton.order_sales(order_id)
        assert views[order_id]["pos_order_id"] == str(sale), why
        assert tryton.sale_state(sale) == "done", why
        payments = tryton.query("SELECT id FROM sale_point_payment WHERE sale = ?", sale)
        assert len(payments) == 1, f"{why}: paid once"
        heard = cloud_heard(hub, order_id)
        assert heard == [(1, "RECEIVED"), (2, "SUBMITTING"), (3, "COMPLETED")], why


async def at_counter(hub: HostHarness, order_id: str) -> int:
    """Post an order paid at the counter; its sale id once the hub hears Tryton took it."""
    menu = await hub.wait_for_menu(LOCATION, TIMEOUT)
    order = sample_order(menu, order_id)
    order["payments"][0]["mode"] = "AT_COUNTER"
    status, body = await hub.post_order(order)
    assert status == 202, body
    view = await hub.wait_for_status(order_id, {OrderStatus.ACCEPTED}, TIMEOUT)
    return int(view["pos_order_id"])


async def agent_status(agent: Host, order_id: str) -> OrderStatus:
    record = await agent.store.get_order(order_id)
    assert record is not None
    return record.status


async def test_a_cashiers_payment_and_cancellation_reach_the_cloud_after_the_link_is_back(
    tryton: TrytonServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    link_proxy = FaultProxy("127.0.0.1", 1)  # pointed at the hub once it runs
    try:
        async with local_deployment(
            tmp_path, tryton.plugin_settings(LOCATION), link_proxy=link_proxy
        ) as venue:
            hub, agent = venue.hub, venue.agent
            paid_sale = await at_counter(hub, "cloud-2")
            cancelled_sale = await at_counter(hub, "cloud-3")
            assert tryton.sale_state(paid_sale) == tryton.sale_state(cancelled_sale) == "open"

            await link_proxy.refuse()  # the venue's internet line is down
            assert agent.agent_link is not None
            link = agent.agent_link
            await eventually(lambda: not link.connected.is_set(), TIMEOUT, "the link is down")

            cashier = user_client(tryton, http, "cashier")
            await cashier_pays(cashier, tryton, paid_sale)
            await cashier.button("sale.point.sale", "cancel", [cancelled_sale])

            # The agent keeps polling Tryton while the hub is out of reach.
            async def agent_knows() -> bool:
                return (await agent_status(agent, "cloud-2")) == OrderStatus.COMPLETED and (
                    await agent_status(agent, "cloud-3")
                ) == OrderStatus.CANCELLED

            await eventually(agent_knows, TIMEOUT, "the agent saw the cashier's changes")
            assert (await hub.order("cloud-2"))["status"] == "ACCEPTED", "the hub has not heard"
            assert (await hub.order("cloud-3"))["status"] == "ACCEPTED"

            await link_proxy.accept()
            await hub.wait_for_events(
                lambda _: (
                    [s for _, s in cloud_heard(hub, "cloud-2")][-1:] == ["COMPLETED"]
                    and [s for _, s in cloud_heard(hub, "cloud-3")][-1:] == ["CANCELLED"]
                ),
                TIMEOUT,
            )
            assert (await hub.order("cloud-3"))["status"] == "CANCELLED"
    finally:
        await link_proxy.close()
    for order_id, final in (("cloud-2", "COMPLETED"), ("cloud-3", "CANCELLED")):
        heard = cloud_heard(hub, order_id)
        assert [s for _, s in heard] == ["RECEIVED", "SUBMITTING", "ACCEPTED", final], order_id
        assert [n for n, _ in heard] == [1, 2, 3, 4], "in sequence, no gap"
    assert tryton.count_orders("cloud-2") == tryton.count_orders("cloud-3") == 1
    assert len(tryton.sale_ids()) == 2

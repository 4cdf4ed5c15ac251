"""Cancellations and operator actions asked at a hub for orders its venue agents hold: forwarded
over the link, carried out by the agent against its POS, answered by the usual events.

Real parts throughout: a hub and an agent over a WebSocket on loopback, the demo POS, the
cloud's receiver, and each end's own SQLite store.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, eventually, pos_orders
from linkharness import agent_settings, hub_and_receiver, pair, running_agent

from pos_demo.simulator import RunningSimulator
from posintegrator.link.actions import OrderAction
from posintegrator.link.protocol import Message
from posintegrator.model import Menu
from posintegrator.runtime.host import Host
from posintegrator.settings import HostSettings
from posintegrator.testing import one_product_menu, sample_order

CANCEL = {"requested_by": "customer", "reason": "ordered twice"}
#: Where an order stands while the agent tries a POS that cannot be reached.
BEFORE_POS = ("SUBMITTING", "NEEDS_ATTENTION")


async def _api(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.request(method, url + path, json=body) as response,
    ):
        return response.status, await response.json()


async def _order(url: str, token: str, order_id: str) -> dict[str, Any]:
    status, view = await _api(url, token, "GET", f"/v1/orders/{order_id}")
    assert status == 200, view
    found: dict[str, Any] = view
    return found


def _events(cloud: Any, order_id: str) -> list[dict[str, Any]]:
    return [e for e in cloud.events if e.get("order_id") == order_id]


def _in_sequence(events: list[dict[str, Any]]) -> bool:
    """Every event once, numbered 1, 2, 3... (a redelivery of the same event is allowed)."""
    numbers = sorted({e["sequence"] for e in events})
    return numbers == list(range(1, len(numbers) + 1))


async def _menu_from_agent(hub: Host, token: str, agent: Host) -> Menu:
    await agent.connections["pos"].menusync.sync("downtown")
    menu: Menu | None = None

    async def published() -> bool:
        nonlocal menu
        status, body = await _api(hub.url, token, "GET", "/v1/locations/downtown/menu")
        menu = Menu.model_validate(body) if status == 200 else None
        return menu is not None

    await eventually(published, timeout=20)
    assert menu is not None
    return menu


async def _accepted(hub: Host, token: str, order_id: str) -> str:
    """Wait until the hub has ``order_id`` ACCEPTED; the POS's id of it."""

    async def accepted() -> bool:
        return (await _order(hub.url, token, order_id))["status"] == "ACCEPTED"

    await eventually(accepted, timeout=30)
    pos_id = (await _order(hub.url, token, order_id))["pos_order_id"]
    assert isinstance(pos_id, str)
    return pos_id


async def test_a_hub_cancels_an_order_its_agent_holds_through_the_agent(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """The POS cancels the first order (still in the kitchen's queue): CANCELLED reaches the
    cloud. The kitchen has started on the second: the POS refuses, and the cloud hears
    ``order.cancel_refused``; the order goes on."""
    simulator.set_stage_seconds(3600)  # orders wait in the kitchen's queue until told
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        settings = agent_settings(tmp_path / "agent", hub.url, simulator, "downtown")
        async with running_agent(settings) as agent:
            simulator.set_webhook(
                agent.connections["pos"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
            )
            menu = await _menu_from_agent(hub, token, agent)
            for order_id in ("queued-1", "started-1"):
                status, _ = await _api(
                    hub.url, token, "POST", "/v1/orders", sample_order(menu, order_id)
                )
                assert status == 202
            await _accepted(hub, token, "queued-1")
            simulator.start_preparing(await _accepted(hub, token, "started-1"))

            status, view = await _api(hub.url, token, "POST", "/v1/orders/queued-1/cancel", CANCEL)
            assert status == 202, view
            assert view["cancellation"]["state"] == "requested"
            assert view["status"] == "ACCEPTED", "the hub waits for the agent's answer"

            async def cancelled() -> bool:
                return (await _order(hub.url, token, "queued-1"))["status"] == "CANCELLED"

            await eventually(cancelled, timeout=30)
            [in_pos] = await pos_orders(simulator, "queued-1")
            assert in_pos["state"] == "cancelled"
            seen = _events(cloud, "queued-1")
            assert seen[-1]["status"] == "CANCELLED" and "ordered twice" in seen[-1]["reason"]
            assert _in_sequence(seen)
            view = await _order(hub.url, token, "queued-1")
            assert view["cancellation"]["state"] == "done"

            status, view = await _api(hub.url, token, "POST", "/v1/orders/started-1/cancel", CANCEL)
            assert status == 202, view

            async def refused() -> bool:
                return any(e["type"] == "order.cancel_refused" for e in _events(cloud, "started-1"))

            await eventually(refused, timeout=30)
            seen = _events(cloud, "started-1")
            refusal = next(e for e in seen if e["type"] == "order.cancel_refused")
            assert "too late" in refusal["reason"] and refusal["requested_by"] == "cloud:customer"
            assert _in_sequence(seen)
            view = await _order(hub.url, token, "started-1")
            assert view["cancellation"]["state"] == "refused"
            assert view["status"] != "CANCELLED"
            [in_pos] = await pos_orders(simulator, "started-1")
            assert in_pos["state"] != "cancelled"
            _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
            assert fleet["agents"][0]["waiting_to_agent"] == 0, "every action acknowledged"


@contextmanager
def unreachable_pos() -> Iterator[str]:
    """The URL of a POS that refuses every connection: a loopback port bound, never listened
    on, and kept for the test's length (so no one else gets it)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


def _with_pos(settings: HostSettings, url: str) -> HostSettings:
    connection = settings.connections[0]
    pos = connection.model_copy(
        update={"settings": {"base_url": url, "api_key": POS_API_KEY}, "status_source": "polling"}
    )
    return settings.model_copy(update={"connections": [pos]})


def _agent_actions(agent: Host, order_id: str) -> list[str]:
    """The operator actions recorded in the agent's history of ``order_id``."""
    rows = agent.store.db.execute(
        "SELECT note FROM status_history WHERE order_id = ? AND note LIKE 'action:%' "
        "ORDER BY rowid",
        (order_id,),
    ).fetchall()
    return [row[0] for row in rows]


async def test_actions_asked_while_the_agent_is_offline_are_carried_out_once_it_is_back(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """The venue's POS is down, so the agent cannot deliver. With the agent offline, an
    operator at the hub retries the order and then reports it found in the POS: both wait in
    the hub's store, reach the agent when it reconnects, and are carried out there once each,
    in the order they were asked. A second agent restart (the same messages could be sent
    again) changes nothing."""
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        menu = one_product_menu("downtown")
        await hub.connections["venue"].menusync.publish_fetched("downtown", menu)
        with unreachable_pos() as dead:
            settings = _with_pos(
                agent_settings(tmp_path / "agent", hub.url, simulator, "downtown"), dead
            )
            async with running_agent(settings) as agent:
                status, _ = await _api(
                    hub.url, token, "POST", "/v1/orders", sample_order(menu, "stuck-1")
                )
                assert status == 202

                async def tried() -> bool:
                    view = await _order(hub.url, token, "stuck-1")
                    return view["status"] in BEFORE_POS

                await eventually(tried, timeout=30)
            before = (await _order(hub.url, token, "stuck-1"))["status"]
            # The agent is offline now.
            retry = {"operator": "dana", "note": "POS back after the power cut"}
            status, view = await _api(hub.url, token, "POST", "/v1/orders/stuck-1/retry", retry)
            assert status == 202, view
            found = {"operator": "dana", "pos_order_id": "D-000777", "note": "on the screen"}
            status, view = await _api(hub.url, token, "POST", "/v1/orders/stuck-1/found", found)
            assert status == 202, view
            assert view["status"] == before, "nothing changes before the agent acts"
            notes = [h["note"] for h in view["history"] if not h["applied"]]
            assert "action: retry (sent to agent downtown-agent)" in notes
            assert "action: found in the POS (sent to agent downtown-agent)" in notes
            _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
            assert fleet["agents"][0]["waiting_to_agent"] == 2

            async with running_agent(settings) as agent:

                async def accepted() -> bool:
                    view = await _order(hub.url, token, "stuck-1")
                    return bool(view["status"] == "ACCEPTED")

                await eventually(accepted, timeout=30)
                view = await _order(hub.url, token, "stuck-1")
                assert view["pos_order_id"] == "D-000777"
                assert _agent_actions(agent, "stuck-1") == [
                    "action: retry",
                    "action: found in the POS",
                ]

                async def all_acknowledged() -> bool:
                    _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
                    return bool(fleet["agents"][0]["waiting_to_agent"] == 0)

                await eventually(all_acknowledged, timeout=20)

            async with running_agent(settings) as agent:
                _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
                assert fleet["agents"][0]["connected"] is True
                assert _agent_actions(agent, "stuck-1") == [
                    "action: retry",
                    "action: found in the POS",
                ]
        accepted_events = [e for e in _events(cloud, "stuck-1") if e.get("status") == "ACCEPTED"]
        assert {e["event_id"] for e in accepted_events} == {accepted_events[0]["event_id"]}
        assert accepted_events[0]["pos_order_id"] == "D-000777"
        assert accepted_events[0]["source"].startswith("agent:downtown-agent:operator:dana")


async def test_an_action_carried_out_twice_changes_nothing_more(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """An agent that crashed after carrying out an action but before recording its number
    processes the message again when the hub resends it: the order has moved on, so the second
    time is refused (the hub notes it) and nothing reaches the cloud twice."""
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        menu = one_product_menu("downtown")
        await hub.connections["venue"].menusync.publish_fetched("downtown", menu)
        with unreachable_pos() as dead:
            settings = _with_pos(
                agent_settings(tmp_path / "agent", hub.url, simulator, "downtown"), dead
            )
            async with running_agent(settings) as agent:
                status, _ = await _api(
                    hub.url, token, "POST", "/v1/orders", sample_order(menu, "twice-1")
                )
                assert status == 202

                async def with_agent() -> bool:
                    return await agent.store.get_order("twice-1") is not None

                await eventually(with_agent, timeout=30)
                found = {"operator": "dana", "pos_order_id": "D-1"}
                status, _ = await _api(hub.url, token, "POST", "/v1/orders/twice-1/found", found)
                assert status == 202

                async def accepted() -> bool:
                    return (await _order(hub.url, token, "twice-1"))["status"] == "ACCEPTED"

                await eventually(accepted, timeout=30)
                # The same message once more, as after a crash before its number was stored.
                action = OrderAction(order_id="twice-1", action="found", request=found)
                again = Message(seq=10**6, kind="action", body=action.model_dump(mode="json"))
                assert agent.agent_link is not None
                await agent.agent_link.handle([again])

                async def noted() -> bool:
                    view = await _order(hub.url, token, "twice-1")
                    return any(
                        (h["note"] or "").startswith("found refused by agent downtown-agent")
                        for h in view["history"]
                    )

                await eventually(noted, timeout=20)
                assert _agent_actions(agent, "twice-1") == ["action: found in the POS"]
        accepted_events = [e for e in _events(cloud, "twice-1") if e.get("status") == "ACCEPTED"]
        assert len({e["event_id"] for e in accepted_events}) == 1
        assert (await _order(hub.url, token, "twice-1"))["status"] == "ACCEPTED"


async def test_a_cancellation_its_revoked_agent_never_answered_is_refused(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """The agent holds an order and goes offline; the customer cancels (forwarded, waiting for
    the agent); then an operator revokes the agent. Nobody will ever answer that cancellation:
    the hub refuses it at once, and the cloud hears ``order.cancel_refused``."""
    simulator.set_stage_seconds(3600)
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        settings = agent_settings(tmp_path / "agent", hub.url, simulator, "downtown")
        async with running_agent(settings) as agent:
            menu = await _menu_from_agent(hub, token, agent)
            status, _ = await _api(hub.url, token, "POST", "/v1/orders", sample_order(menu, "o-9"))
            assert status == 202
            await _accepted(hub, token, "o-9")
        status, view = await _api(hub.url, token, "POST", "/v1/orders/o-9/cancel", CANCEL)
        assert status == 202, view
        assert view["cancellation"]["state"] == "requested"
        status, _ = await _api(
            hub.url, token, "POST", "/v1/agents/downtown-agent/revoke", {"operator": "test"}
        )
        assert status == 200

        async def refused() -> bool:
            return any(e["type"] == "order.cancel_refused" for e in _events(cloud, "o-9"))

        await eventually(refused, timeout=30)
        refusal = next(e for e in _events(cloud, "o-9") if e["type"] == "order.cancel_refused")
        assert "revoked" in refusal["reason"]
        assert _in_sequence(_events(cloud, "o-9"))
        view = await _order(hub.url, token, "o-9")
        assert view["cancellation"]["state"] == "refused"
        assert view["status"] == "ACCEPTED"
        _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
        assert fleet["agents"][0]["waiting_to_agent"] == 0

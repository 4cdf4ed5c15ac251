"""A hub and a venue agent over a real WebSocket on loopback: pairing, orders out, statuses and
menus back, and everything refused that must be."""

from __future__ import annotations

import asyncio
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, eventually, pos_orders
from linkharness import (
    agent_settings,
    hub_and_receiver,
    hub_settings,
    make_tls_files,
    pair,
    running_agent,
)

from pos_demo.simulator import RunningSimulator
from posintegrator import __version__
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.link.identity import KEY_FILE, AgentKey
from posintegrator.link.protocol import (
    PROTOCOLS,
    Ack,
    Auth,
    Hello,
    Refused,
    Welcome,
    decode,
    encode,
    encode_message,
)
from posintegrator.model import Menu, OrderStatus, utcnow
from posintegrator.runtime.host import Host
from posintegrator.settings import ConnectionSettings, HostSettings
from posintegrator.store.link import HandingOver
from posintegrator.testing import one_product_menu, sample_order
from posintegrator.testing.faults import FaultProxy


async def _api(hub_url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.request(method, hub_url + path, json=body) as response,
    ):
        return response.status, await response.json()


async def _menu(hub_url: str, token: str, location: str) -> Menu | None:
    status, body = await _api(hub_url, token, "GET", f"/v1/locations/{location}/menu")
    return Menu.model_validate(body) if status == 200 else None


async def test_an_order_reaches_the_venue_pos_through_the_agent(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        settings = agent_settings(tmp_path / "agent", hub.url, simulator, "downtown")
        async with running_agent(settings) as agent:
            simulator.set_webhook(
                agent.connections["pos"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
            )
            await agent.connections["pos"].menusync.sync("downtown")
            menu = None

            async def published() -> bool:
                nonlocal menu
                menu = await _menu(hub.url, token, "downtown")
                return menu is not None

            await eventually(published, timeout=20)
            assert menu is not None
            order = sample_order(menu, "via-agent-1")
            status, body = await _api(hub.url, token, "POST", "/v1/orders", order)
            assert status == 202, body

            async def completed() -> bool:
                _, view = await _api(hub.url, token, "GET", "/v1/orders/via-agent-1")
                return bool(view["status"] == OrderStatus.COMPLETED)

            await eventually(completed, timeout=30)
            assert len(await pos_orders(simulator, "via-agent-1")) == 1
            seen = [e["status"] for e in cloud.events if e.get("order_id") == "via-agent-1"]
            assert seen[0] == "RECEIVED" and seen[-1] == "COMPLETED"
            assert [e["sequence"] for e in cloud.events if e.get("order_id") == "via-agent-1"] == [
                *range(1, len(seen) + 1)
            ]
            status, fleet = await _api(hub.url, token, "GET", "/v1/agents")
            [view] = fleet["agents"]
            assert view["name"] == "downtown-agent" and view["connected"] is True
            assert view["locations"] == ["downtown"]

            async def reported_ok() -> bool:
                _, listed = await _api(hub.url, token, "GET", "/v1/connections")
                [venue] = listed["connections"]
                return bool(
                    venue["placement"] == "local"
                    and venue["agents"] == ["downtown-agent"]
                    and venue["health"] == "ok"
                )

            await eventually(reported_ok, timeout=20)


# --- refusals ---------------------------------------------------------------------------------


async def _handshake(url: str, key: AgentKey, *, signature: str | None = None) -> Any:
    """Speak the agent's side of the handshake by hand; the hub's answer frame."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "/v1/link") as ws:
        hello = decode((await ws.receive(timeout=10)).data)
        assert isinstance(hello, Hello)
        auth = Auth(
            protocols=PROTOCOLS,
            version=__version__,
            key=key.public_key,
            signature=signature or key.sign(hello.nonce),
            received=0,
        )
        await ws.send_bytes(encode(auth))
        return decode((await ws.receive(timeout=10)).data), hello.nonce


async def _hub_state(hub: Any) -> tuple[int, int, list[Any]]:
    """What a refused link must not change: orders, menus, agents."""
    db = hub.store.db
    orders = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    menus = db.execute("SELECT COUNT(*) FROM menus").fetchone()[0]
    agents = db.execute("SELECT name, status, version FROM agents ORDER BY name").fetchall()
    return orders, menus, agents


async def test_unpaired_forged_replayed_and_revoked_agents_are_refused(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, _, token):
        before = await _hub_state(hub)
        stranger = AgentKey.generate()
        answer, _ = await _handshake(hub.url, stranger)
        assert isinstance(answer, Refused) and "not paired" in answer.reason

        key = await pair(hub.url, token, tmp_path / "agent", "venue-agent", ["downtown"])
        accepted, nonce = await _handshake(hub.url, key)
        assert isinstance(accepted, Welcome)
        paired = await _hub_state(hub)
        # Someone who knows the public key but not the private one cannot sign the challenge.
        answer, _ = await _handshake(hub.url, key, signature=stranger.sign("anything"))
        assert isinstance(answer, Refused) and "signature" in answer.reason
        # A signature recorded from an earlier handshake is useless: each challenge is new.
        answer, _ = await _handshake(hub.url, key, signature=key.sign(nonce))
        assert isinstance(answer, Refused) and "signature" in answer.reason
        assert await _hub_state(hub) == paired, "refusals change nothing"
        assert before[2] == []

        settings = agent_settings(tmp_path / "agent", hub.url, simulator, "downtown")
        async with running_agent(settings) as agent:
            status, _ = await _api(
                hub.url, token, "POST", "/v1/agents/venue-agent/revoke", {"operator": "test"}
            )
            assert status == 200
            assert agent.agent_link is not None
            link = agent.agent_link
            await eventually(lambda: _false(link.connected.is_set()), timeout=20)
            # The first error may be the closing connection (the agent was writing when the hub
            # ended the link); its next attempt is refused, saying why.
            await eventually(lambda: _true("revoked" in (link.last_error or "")), timeout=30)
            answer, _ = await _handshake(hub.url, key)
            assert isinstance(answer, Refused) and "revoked" in answer.reason
            _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
            assert fleet["agents"][0]["status"] == "revoked"
            assert fleet["agents"][0]["connected"] is False


async def test_an_agent_speaks_only_for_its_own_locations(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    venues = {"venue-a": "downtown", "venue-b": "airport"}
    async with hub_and_receiver(tmp_path / "hub", venues) as (hub, cloud, token):
        key = await pair(hub.url, token, tmp_path / "agent", "agent-a", ["downtown"])
        # A menu from agent a's own POS, published for its location through a real agent.
        settings = agent_settings(tmp_path / "agent", hub.url, simulator, "downtown")
        async with running_agent(settings) as agent:
            await agent.connections["pos"].menusync.sync("downtown")
            await eventually(lambda: _published(hub.url, token, "downtown"), timeout=20)
        menu = await _menu(hub.url, token, "downtown")
        assert menu is not None
        airport_menu = menu.model_copy(update={"location": "airport"})
        # Orders of the other venue exist at the hub, waiting for its own agent.
        await hub.connections["venue-b"].menusync.publish_fetched("airport", airport_menu)
        status, _ = await _api(
            hub.url, token, "POST", "/v1/orders", sample_order(airport_menu, "b-order")
        )
        assert status == 202
        # Its RECEIVED is the last event the cloud may see about it.
        await eventually(
            lambda: _true(any(e.get("order_id") == "b-order" for e in cloud.events)), 20
        )
        before = await _hub_state(hub)
        events_before = len(cloud.events)
        # Agent a now claims statuses and a menu of venue b, over a link it opens by hand.
        forged = [
            ("event", {**_status("b-order", "airport"), "status": "COMPLETED"}),
            ("event", {**_status("b-order", "downtown"), "status": "COMPLETED"}),
            ("event", _menu_notice("airport", airport_menu)),
            ("refused", {"order_id": "b-order", "reason": "not mine"}),
        ]
        await _speak(hub.url, key, forged)
        await eventually(lambda: _true(hub.links is not None and hub.links.refusals >= 4), 20)
        assert await _hub_state(hub) == before
        assert len(cloud.events) == events_before
        _, view = await _api(hub.url, token, "GET", "/v1/orders/b-order")
        assert view["status"] == "RECEIVED"


def _status(order_id: str, location: str) -> dict[str, Any]:
    return {
        "type": "order.status_changed",
        "event_id": f"forged-{order_id}-{location}",
        "sequence": 2,
        "order_id": order_id,
        "location": location,
        "status": "ACCEPTED",
        "previous_status": "RECEIVED",
        "occurred_at": "2026-11-30T12:00:00Z",
        "reason": None,
        "pos_order_id": "X-1",
        "source": "pos:demo",
    }


def _menu_notice(location: str, menu: Menu) -> dict[str, Any]:
    return {
        "type": "menu.published",
        "event_id": "forged-menu",
        "sequence": 9,
        "location": location,
        "version": 9,
        "content_hash": "x",
        "published_at": "2026-11-30T12:00:00Z",
        "menu_url": f"/v1/locations/{location}/menu",
        "menu": menu.model_dump(mode="json"),
    }


async def _speak(url: str, key: AgentKey, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Open a link as the agent with ``key`` and send ``messages``; wait for their ack."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "/v1/link") as ws:
        hello = decode((await ws.receive(timeout=10)).data)
        assert isinstance(hello, Hello)
        await ws.send_bytes(
            encode(
                Auth(
                    protocols=PROTOCOLS,
                    version=__version__,
                    key=key.public_key,
                    signature=key.sign(hello.nonce),
                    received=0,
                )
            )
        )
        welcome = decode((await ws.receive(timeout=10)).data)
        assert isinstance(welcome, Welcome)
        first = welcome.received + 1
        for offset, (kind, body) in enumerate(messages):
            await ws.send_bytes(encode_message(first + offset, kind, orjson.dumps(body)))
        last = first + len(messages) - 1
        while True:
            frame = decode((await ws.receive(timeout=10)).data)
            if isinstance(frame, Ack) and frame.seq >= last:
                return


async def _published(url: str, token: str, location: str) -> bool:
    return await _menu(url, token, location) is not None


async def _true(value: bool) -> bool:
    return value


async def _false(value: bool) -> bool:
    return not value


# --- drops, outages, deadlines ----------------------------------------------------------------


async def _statuses(url: str, token: str, ids: list[str]) -> dict[str, str]:
    found = {}
    for order_id in ids:
        _, view = await _api(url, token, "GET", f"/v1/orders/{order_id}")
        found[order_id] = view["status"]
    return found


async def test_orders_survive_link_cuts_and_an_offline_agent(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        await pair(hub.url, token, tmp_path / "agent", "venue-agent", ["downtown"])
        proxy = FaultProxy("127.0.0.1", hub.port)
        await proxy.accept()
        settings = agent_settings(tmp_path / "agent", proxy.url, simulator, "downtown")
        try:
            async with running_agent(settings) as agent:
                simulator.set_webhook(
                    agent.connections["pos"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
                )
                await agent.connections["pos"].menusync.sync("downtown")
                await eventually(lambda: _published(hub.url, token, "downtown"), timeout=20)
                menu = await _menu(hub.url, token, "downtown")
                assert menu is not None
                ids = [f"cut-{n}" for n in range(30)]
                for index, order_id in enumerate(ids):
                    status, _ = await _api(
                        hub.url, token, "POST", "/v1/orders", sample_order(menu, order_id)
                    )
                    assert status == 202
                    if index % 10 == 5:  # cut the link in the middle of the flow
                        await proxy.refuse()
                        await asyncio.sleep(0.2)
                        await proxy.accept()

                async def all_completed() -> bool:
                    found = await _statuses(hub.url, token, ids)
                    return set(found.values()) == {"COMPLETED"}

                await eventually(all_completed, timeout=60)
                for order_id in ids:
                    assert len(await pos_orders(simulator, order_id)) == 1, order_id
                    seen = [e for e in cloud.events if e.get("order_id") == order_id]
                    sequences = [e["sequence"] for e in seen]
                    assert sorted(set(sequences)) == list(range(1, max(sequences) + 1))
                    assert seen[-1]["status"] == "COMPLETED"
                assert proxy.counts["refuse"] == 3

            # The agent is gone: orders wait at the hub; one whose pickup time passes fails.
            late = sample_order(menu, "offline-late")
            late["pickup_time"] = (utcnow() + timedelta(seconds=2)).isoformat()
            status, _ = await _api(hub.url, token, "POST", "/v1/orders", late)
            assert status == 202
            waiting = [f"offline-{n}" for n in range(5)]
            for order_id in waiting:
                status, _ = await _api(
                    hub.url, token, "POST", "/v1/orders", sample_order(menu, order_id)
                )
                assert status == 202

            async def late_failed() -> bool:
                return (await _statuses(hub.url, token, ["offline-late"]))["offline-late"] == (
                    "FAILED"
                )

            await eventually(late_failed, timeout=30)
            _, fleet = await _api(hub.url, token, "GET", "/v1/agents")
            assert fleet["agents"][0]["connected"] is False
            assert fleet["agents"][0]["waiting_to_agent"] == len(waiting)
            # Back online: the waiting orders reach the POS, the failed one never does.
            async with running_agent(settings):

                async def delivered() -> bool:
                    found = await _statuses(hub.url, token, waiting)
                    return set(found.values()) <= {
                        "ACCEPTED",
                        "IN_PREPARATION",
                        "READY",
                        "COMPLETED",
                    }

                await eventually(delivered, timeout=30)
            for order_id in waiting:
                assert len(await pos_orders(simulator, order_id)) == 1
            assert await pos_orders(simulator, "offline-late") == []
        finally:
            await proxy.close()


# --- hybrid, TLS, versions ----------------------------------------------------------------------


async def test_hybrid_menu_at_the_hub_orders_through_the_agent(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    secret = generate_secret()
    cloud = CloudReceiver([secret])
    await cloud.start()
    token = "hybrid-token"
    settings = hub_settings(tmp_path / "hub2", cloud, secret, token, {})
    hybrid = ConnectionSettings(
        name="venue",
        plugin="demo",
        locations=["downtown"],
        placement="hybrid",
        menu_sync_seconds=3600,
        settings={"base_url": simulator.url, "api_key": POS_API_KEY},
    )
    hub = Host(settings.model_copy(update={"connections": [hybrid]}))
    await hub.start()
    try:
        await pair(hub.url, token, tmp_path / "agent", "venue-agent", ["downtown"])
        # The hub fetches the menu itself, through the POS's central API.
        await hub.connections["venue"].menusync.sync("downtown")
        menu = await _menu(hub.url, token, "downtown")
        assert menu is not None
        agent_conf = agent_settings(
            tmp_path / "agent", hub.url, simulator, "downtown", placement="hybrid"
        )
        async with running_agent(agent_conf) as agent:
            assert [name for name, _ in agent.connections["pos"].jobs()] == ["pos:delivery"], (
                "the agent of a hybrid venue syncs no menu (status by webhook: no polling)"
            )
            simulator.set_webhook(
                agent.connections["pos"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
            )
            status, _ = await _api(
                hub.url, token, "POST", "/v1/orders", sample_order(menu, "hybrid-1")
            )
            assert status == 202

            async def completed() -> bool:
                found = await _statuses(hub.url, token, ["hybrid-1"])
                return found["hybrid-1"] == "COMPLETED"

            await eventually(completed, timeout=30)
        assert len(await pos_orders(simulator, "hybrid-1")) == 1
        jobs = [name for name, _ in hub.connections["venue"].jobs()]
        assert jobs == ["venue:menu", "venue:delivery"], "the hub hands orders over, polls none"
    finally:
        await hub.stop(grace_seconds=2.0)
        await cloud.stop()


def test_a_placement_the_plugin_cannot_serve_is_refused_at_start(tmp_path: Path) -> None:
    from posintegrator.plugins import PluginHost
    from posintegrator.settings import SettingsError

    plugins = PluginHost.load(["square"])
    settings = HostSettings(
        connections=[
            ConnectionSettings(
                name="sq", plugin="square", locations=["L1"], placement="local", settings={}
            )
        ]
    )
    with pytest.raises(SettingsError) as refused:
        plugins.validate_connections(settings)
    [problem] = refused.value.problems
    assert problem.path == "connections[0].placement"
    assert "cannot serve a local deployment" in problem.message and "square" in problem.message


async def test_tls_link_with_a_private_ca(tmp_path: Path, simulator: RunningSimulator) -> None:
    ca_file, cert_file, key_file = make_tls_files(tmp_path / "tls")
    secret = generate_secret()
    cloud = CloudReceiver([secret])
    await cloud.start()
    token = "tls-token"
    settings = hub_settings(tmp_path / "hub", cloud, secret, token, {"venue": "downtown"})
    api = settings.api.model_copy(update={"tls_certificate": cert_file, "tls_key": key_file})
    hub = Host(settings.model_copy(update={"api": api}))
    await hub.start()
    https = hub.url.replace("http://", "https://")
    try:
        trusted = ssl.create_default_context(cafile=str(ca_file))
        async with (
            aiohttp.ClientSession() as http,
            http.get(https + "/healthz", ssl=trusted) as response,
        ):
            assert response.status == 200
        key = AgentKey.generate()
        key.save(tmp_path / "agent" / KEY_FILE)
        started = await pairing(https, key, trusted)
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
            http.post(
                https + "/v1/agents/approve",
                json={"code": started["code"], "locations": ["downtown"], "name": "tls-agent"},
                ssl=trusted,
            ) as response,
        ):
            assert response.status == 200
        # Without the private CA the agent does not trust the hub, and never links.
        untrusting = agent_settings(tmp_path / "agent", https, simulator, "downtown")
        agent = Host(untrusting)
        await agent.start()
        try:
            assert agent.agent_link is not None
            link = agent.agent_link
            await eventually(lambda: _true(link.last_error is not None), timeout=20)
            assert "certificate" in (link.last_error or "").lower()
            assert not link.connected.is_set()
        finally:
            await agent.stop(grace_seconds=1.0)
        trusting = agent_settings(tmp_path / "agent", https, simulator, "downtown")
        agent_part = trusting.agent
        assert agent_part is not None
        trusting = trusting.model_copy(
            update={"agent": agent_part.model_copy(update={"ca_file": ca_file})}
        )
        async with running_agent(trusting):
            _, fleet = await _api_tls(https, token, "/v1/agents", trusted)
            assert fleet["agents"][0]["connected"] is True
    finally:
        await hub.stop(grace_seconds=1.0)
        await cloud.stop()


async def pairing(url: str, key: AgentKey, context: ssl.SSLContext) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + "/v1/link/pairings", json={"public_key": key.public_key}, ssl=context
        ) as response,
    ):
        assert response.status == 201
        started: dict[str, Any] = await response.json()
        return started


async def _api_tls(url: str, token: str, path: str, context: ssl.SSLContext) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.get(url + path, ssl=context) as response,
    ):
        return response.status, await response.json()


async def test_hub_and_agent_of_incompatible_protocols_refuse_with_a_clear_message(
    tmp_path: Path,
) -> None:
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, _, token):
        key = await pair(hub.url, token, tmp_path / "agent", "venue-agent", ["downtown"])
        async with aiohttp.ClientSession() as http, http.ws_connect(hub.url + "/v1/link") as ws:
            hello = decode((await ws.receive(timeout=10)).data)
            assert isinstance(hello, Hello)
            future = (PROTOCOLS[1] + 1, PROTOCOLS[1] + 2)
            await ws.send_bytes(
                encode(
                    Auth(
                        protocols=future,
                        version="9.0.0",
                        key=key.public_key,
                        signature=key.sign(hello.nonce),
                        received=0,
                    )
                )
            )
            answer = decode((await ws.receive(timeout=10)).data)
        assert isinstance(answer, Refused)
        assert "upgrade the hub" in answer.reason and f"{future[0]}-{future[1]}" in answer.reason


async def _order_for_old_agent(hub: Host, token: str, tmp_path: Path) -> Menu:
    """Pair ``old-agent`` for downtown, publish a menu there and post order ``o-1``."""
    await pair(hub.url, token, tmp_path / "old", "old-agent", ["downtown"])
    menu = one_product_menu("downtown")
    await hub.connections["venue"].menusync.publish_fetched("downtown", menu)
    status, _ = await _api(hub.url, token, "POST", "/v1/orders", sample_order(menu, "o-1"))
    assert status == 202
    return menu


async def test_revoking_an_agent_takes_back_the_orders_it_never_received(tmp_path: Path) -> None:
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, _, token):
        await _order_for_old_agent(hub, token, tmp_path)

        async def queued_for(agent: str) -> bool:
            waiting = await hub.store.handovers("venue")
            return [(w.record.order.id, w.agent, w.sent) for w in waiting] == [
                ("o-1", agent, False)
            ]

        await eventually(lambda: queued_for("old-agent"), timeout=20)
        status, _ = await _api(
            hub.url, token, "POST", "/v1/agents/old-agent/revoke", {"operator": "test"}
        )
        assert status == 200

        async def waiting_without_agent() -> bool:
            _, view = await _api(hub.url, token, "GET", "/v1/orders/o-1")
            return bool(view["last_error"] and "no venue agent" in view["last_error"])

        await eventually(waiting_without_agent, timeout=20)
        await pair(hub.url, token, tmp_path / "new", "new-agent", ["downtown"])
        await eventually(lambda: queued_for("new-agent"), timeout=20)
        _, view = await _api(hub.url, token, "GET", "/v1/orders/o-1")
        assert view["status"] == "RECEIVED"
        notes = [h["note"] for h in view["history"] if not h["applied"]]
        assert notes == [
            "queued for agent old-agent",
            "taken back from revoked agent old-agent",
            "queued for agent new-agent",
        ]


async def test_an_agent_revoked_by_another_worker_gets_no_more_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub routes by the agents it last read; another worker's revocation is not among them.
    The order goes to the location's new agent after one refused attempt, not into a loop of
    refusals while the hub's list is still fresh."""
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, _, token):
        menu = await _order_for_old_agent(hub, token, tmp_path)

        async def queued(order_id: str, agent: str) -> bool:
            waiting = await hub.store.handovers("venue")
            return (order_id, agent) in [(w.record.order.id, w.agent) for w in waiting]

        await eventually(lambda: queued("o-1", "old-agent"), timeout=20)
        await hub.store.agent_revoke("old-agent")  # as another worker sharing the store does
        await pair(hub.url, token, tmp_path / "new", "new-agent", ["downtown"])
        hand_over = hub.store.hand_over
        calls: list[list[str]] = []

        async def counted(handovers: list[HandingOver]) -> list[int | None]:
            calls.append([h.agent for h in handovers])
            return await hand_over(handovers)

        monkeypatch.setattr(hub.store, "hand_over", counted)
        status, _ = await _api(hub.url, token, "POST", "/v1/orders", sample_order(menu, "o-2"))
        assert status == 202
        await eventually(lambda: queued("o-2", "new-agent"), timeout=20)
        assert calls in ([["new-agent"]], [["old-agent"], ["new-agent"]])


async def test_a_hub_cancels_at_once_what_has_not_left_it(tmp_path: Path) -> None:
    """An order still waiting at the hub, or queued for an agent that has not been sent it,
    is cancelled there (200) and never reaches the agent. (One the agent may have is cancelled
    through the agent: tests/test_link_actions.py.)"""
    async with hub_and_receiver(tmp_path / "hub", {"venue": "downtown"}) as (hub, cloud, token):
        menu = one_product_menu("downtown")
        await hub.connections["venue"].menusync.publish_fetched("downtown", menu)
        status, _ = await _api(hub.url, token, "POST", "/v1/orders", sample_order(menu, "o-c1"))
        assert status == 202

        async def waiting_without_agent() -> bool:
            _, view = await _api(hub.url, token, "GET", "/v1/orders/o-c1")
            return bool(view["last_error"] and "no venue agent" in view["last_error"])

        await eventually(waiting_without_agent, timeout=20)
        cancel = {"requested_by": "customer", "reason": "changed my mind"}
        status, view = await _api(hub.url, token, "POST", "/v1/orders/o-c1/cancel", cancel)
        assert status == 200 and view["status"] == "CANCELLED"
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        status, _ = await _api(hub.url, token, "POST", "/v1/orders", sample_order(menu, "o-c2"))
        assert status == 202

        async def queued() -> bool:
            waiting = await hub.store.handovers("venue")
            return [(w.record.order.id, w.sent) for w in waiting] == [("o-c2", False)]

        await eventually(queued, timeout=20)
        status, view = await _api(hub.url, token, "POST", "/v1/orders/o-c2/cancel", cancel)
        assert status == 200 and view["status"] == "CANCELLED", view
        notes = [h["note"] for h in view["history"] if not h["applied"]]
        assert notes == ["queued for agent downtown-agent", "withdrawn from agent downtown-agent"]
        assert await hub.store.handovers("venue") == []
        assert await hub.store.link_waiting("downtown-agent") == 0, "nothing left to send"
        _, view = await _api(hub.url, token, "GET", "/v1/orders/o-c1")
        assert view["status"] == "CANCELLED", "never handed over"
        assert not [h for h in view["history"] if (h["note"] or "").startswith("queued")]
        for order_id in ("o-c1", "o-c2"):

            async def heard(order_id: str = order_id) -> bool:
                return any(
                    e.get("status") == "CANCELLED" and e.get("order_id") == order_id
                    for e in cloud.events
                )

            await eventually(heard, timeout=20)

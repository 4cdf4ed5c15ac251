"""Venue agents when several hub workers share one PostgreSQL (docs/scaling.md): an agent links
to any worker, and what the other workers queue for it, or decide about it, reaches that link."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import aiohttp
from helpers import POS_WEBHOOK_SECRET, eventually, pos_orders
from linkharness import agent_settings, hub_settings, pair, running_agent
from pgserver import PostgresServer
from pydantic import SecretStr

from pos_demo.simulator import RunningSimulator
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import Menu
from posintegrator.runtime.host import Host
from posintegrator.settings import StoreSettings
from posintegrator.store.link import LinkNotice
from posintegrator.store.postgres import PostgresStore
from posintegrator.testing import sample_order


async def test_messages_queued_by_two_workers_are_never_overtaken(
    postgres: PostgresServer,
) -> None:
    """Two workers queue messages for one agent at once while a third end sends them in number
    order, each time resuming after the last number it saw (as a link does): none is skipped."""
    url = SecretStr(postgres.new_database())
    workers = [PostgresStore(url) for _ in range(2)]
    sender = PostgresStore(url)
    for store in (*workers, sender):
        await store.open()
    queued: set[int] = set()
    seen: list[int] = []
    done = asyncio.Event()

    async def queue(store: PostgresStore, worker: int) -> None:
        for n in range(150):
            numbers = await asyncio.gather(
                *(store.link_enqueue("venue-agent", "event", b"{}") for _ in range(4))
            )
            queued.update(numbers)
            if n % 10 == worker:
                await asyncio.sleep(0)

    async def send() -> None:
        while True:
            finished = done.is_set()
            after = seen[-1] if seen else 0
            seen.extend(m.seq for m in await sender.link_take("venue-agent", after, 1000))
            if finished:
                return

    try:
        sending = asyncio.create_task(send())
        await asyncio.gather(*(queue(store, n) for n, store in enumerate(workers)))
        done.set()
        await sending
    finally:
        for store in (*workers, sender):
            await store.close()
    assert len(queued) == 2 * 150 * 4
    assert seen == sorted(queued), f"{len(set(queued) - set(seen))} message(s) were overtaken"


async def test_workers_hear_of_each_others_links_but_not_their_own(
    postgres: PostgresServer,
) -> None:
    url = SecretStr(postgres.new_database())
    first, second = PostgresStore(url), PostgresStore(url)
    heard: list[tuple[str, LinkNotice]] = []
    for store in (first, second):
        await store.open()
    watchers = [
        asyncio.create_task(store.watch_links(lambda n, who=who: heard.append((who, n))))
        for who, store in (("first", first), ("second", second))
    ]
    try:

        async def both_listening() -> bool:
            return sorted(who for who, n in heard if n.kind == "resumed") == ["first", "second"]

        await eventually(both_listening, timeout=20)
        await first.link_enqueue("venue-agent", "event", b"{}")
        await second.agent_seen("venue-agent", "1.0")

        async def both_heard() -> bool:
            return len(heard) == 4

        await eventually(both_heard, timeout=20)
        await asyncio.sleep(0.2)  # nothing else may arrive: each store's own notices stay home
        assert sorted(heard[2:], key=lambda h: h[0]) == [
            ("first", LinkNotice("connected", "venue-agent")),
            ("second", LinkNotice("queued", "venue-agent")),
        ]
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for store in (first, second):
            await store.close()


async def _api(hub: Host, token: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.request(method, hub.url + path, json=body) as response,
    ):
        return response.status, await response.json()


async def test_an_agent_linked_to_one_worker_gets_the_orders_of_another(
    tmp_path: Path, simulator: RunningSimulator, postgres: PostgresServer
) -> None:
    url = SecretStr(postgres.new_database())
    secret = generate_secret()
    receiver = CloudReceiver([secret])
    await receiver.start()
    token = secrets.token_urlsafe(16)
    hubs: list[Host] = []
    for name in ("a", "b"):
        settings = hub_settings(tmp_path / name, receiver, secret, token, {"venue": "downtown"})
        hubs.append(Host(settings.model_copy(update={"store": StoreSettings(url=url)})))
    try:
        for hub in hubs:
            await hub.start()
        accepting, linked = hubs
        await pair(linked.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        settings = agent_settings(tmp_path / "agent", linked.url, simulator, "downtown")
        async with running_agent(settings) as agent:
            simulator.set_webhook(
                agent.connections["pos"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
            )
            await agent.connections["pos"].menusync.sync("downtown")
            menu: Menu | None = None

            async def published_at_the_other_worker() -> bool:
                nonlocal menu
                status, body = await _api(accepting, token, "GET", "/v1/locations/downtown/menu")
                menu = Menu.model_validate(body) if status == 200 else None
                return menu is not None

            await eventually(published_at_the_other_worker, timeout=30)
            assert menu is not None
            for n in range(5):
                order = sample_order(menu, f"across-{n}")
                status, body = await _api(accepting, token, "POST", "/v1/orders", order)
                assert status == 202, body

            async def all_in_the_pos() -> bool:
                return len(await pos_orders(simulator)) >= 5

            # Without the notice from the accepting worker, the link would sit idle until a
            # heartbeat's worth of nothing: the orders would never be sent.
            await eventually(all_in_the_pos, timeout=30)
            references = sorted(o["reference"] for o in await pos_orders(simulator))
            assert references == [f"across-{n}" for n in range(5)]

            # The other worker knows the agent is linked (to the first), and says so.
            status, body = await _api(accepting, token, "GET", "/v1/agents")
            assert status == 200
            assert [(a["name"], a["connected"]) for a in body["agents"]] == [
                ("downtown-agent", True)
            ]
            status, body = await _api(accepting, token, "GET", "/v1/connections")
            venue = next(c for c in body["connections"] if c["name"] == "venue")
            assert venue["health"] != "agent_offline", venue
            assert linked.worker in venue["last_error"], venue

            status, _ = await _api(
                accepting, token, "POST", "/v1/agents/downtown-agent/revoke", {"operator": "test"}
            )
            assert status == 200

            async def link_ended_at_the_other_worker() -> bool:
                assert linked.links is not None
                return linked.links.link_of("downtown-agent") is None

            await eventually(link_ended_at_the_other_worker, timeout=30)

            async def offline_everywhere() -> bool:
                _, body = await _api(accepting, token, "GET", "/v1/agents")
                return [a["connected"] for a in body["agents"]] == [False]

            await eventually(offline_everywhere, timeout=30)
    finally:
        for hub in reversed(hubs):
            await hub.stop(grace_seconds=2.0)
        await receiver.stop()

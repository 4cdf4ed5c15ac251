"""Hubs and venue agents in the test process: settings, pairing, and waiting on their links."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, eventually
from pydantic import SecretStr

from pos_demo.simulator import RunningSimulator
from posintegrator import __version__
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.link.identity import KEY_FILE, AgentKey
from posintegrator.runtime.host import Host
from posintegrator.settings import (
    AgentSettings,
    ApiSettings,
    CloudSettings,
    ConnectionSettings,
    HostSettings,
    LinkSettings,
    StoreSettings,
)

LINK = LinkSettings(heartbeat_seconds=0.5, window=64)


def hub_settings(
    data: Path, receiver: CloudReceiver, secret: str, token: str, venues: dict[str, str]
) -> HostSettings:
    """A hub serving each venue (connection name -> its location) through an agent."""
    return HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0, token=SecretStr(token)),
        store=StoreSettings(path=data / "hub.db", synchronous="NORMAL"),
        cloud=CloudSettings(webhook_url=receiver.url, webhook_secrets=[SecretStr(secret)]),
        link=LINK,
        connections=[
            ConnectionSettings(name=name, plugin="demo", locations=[location], placement="local")
            for name, location in venues.items()
        ],
    )


def agent_settings(
    data: Path, hub_url: str, simulator: RunningSimulator, location: str, **extra: Any
) -> HostSettings:
    """A venue agent serving ``location`` with the demo POS ``simulator``."""
    return HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0),
        store=StoreSettings(path=data / "agent.db", synchronous="NORMAL"),
        link=LINK,
        agent=AgentSettings(hub_url=hub_url, reconnect_max_seconds=1.0),
        connections=[
            ConnectionSettings(
                name="pos",
                plugin="demo",
                locations=[location],
                placement=extra.pop("placement", "local"),
                status_source="webhook",
                menu_sync_seconds=3600,
                settings={
                    "base_url": simulator.url,
                    "api_key": POS_API_KEY,
                    "webhook_secret": POS_WEBHOOK_SECRET,
                },
            )
        ],
        **extra,
    )


async def pair(
    hub_url: str, token: str, data: Path, name: str, locations: list[str]
) -> AgentKey:
    """Make an agent key in ``data``, ask the hub to pair, and approve the code as an
    operator would."""
    key = AgentKey.generate()
    key.save(data / KEY_FILE)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{hub_url}/v1/link/pairings",
            json={"public_key": key.public_key, "name": name, "version": __version__},
        ) as response:
            assert response.status == 201, await response.text()
            started = await response.json()
        async with http.post(
            f"{hub_url}/v1/agents/approve",
            json={"code": started["code"], "locations": locations},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 200, await response.text()
    return key


@asynccontextmanager
async def hub_and_receiver(
    data: Path, venues: dict[str, str]
) -> AsyncIterator[tuple[Host, CloudReceiver, str]]:
    """A started hub with its cloud receiver, and its API token."""
    secret = generate_secret()
    receiver = CloudReceiver([secret])
    await receiver.start()
    token = secrets.token_urlsafe(16)
    hub = Host(hub_settings(data, receiver, secret, token, venues))
    await hub.start()
    try:
        yield hub, receiver, token
    finally:
        await hub.stop(grace_seconds=2.0)
        await receiver.stop()


@asynccontextmanager
async def running_agent(settings: HostSettings) -> AsyncIterator[Host]:
    """A started venue agent, connected to its hub."""
    agent = Host(settings)
    await agent.start()
    try:
        assert agent.agent_link is not None
        link = agent.agent_link
        await eventually(lambda: _is_set(link.connected.is_set()), timeout=20)
        yield agent
    finally:
        await agent.stop(grace_seconds=2.0)


async def _is_set(value: bool) -> bool:
    return value

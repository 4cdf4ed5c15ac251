"""The local deployment in the test process: a hub, a paired venue agent beside a POS, the link
between them on loopback. For testing a plugin end to end as a venue runs it::

    hub_side = ConnectionSettings(name="venue", plugin="x", locations=["downtown"],
                                  placement="local")
    async with running_host(tmp_path / "hub", [hub_side], settings=HUB_LINK) as hub:
        await pair_agent(hub.url, hub.token, tmp_path / "agent", "downtown-agent", ["downtown"])
        pos_side = ConnectionSettings(name="pos", plugin="x", locations=["downtown"],
                                      placement="local", settings={...})
        async with running_agent(agent_settings(tmp_path / "agent", hub.url, pos_side)) as agent:
            ...  # post orders to the hub; the agent delivers them to the POS

The hub is a :func:`~posintegrator.testing.running_host` whose connection has
``placement="local"`` (no POS settings: the agent holds them) and whose ``link`` settings come
from :data:`HUB_LINK`; its orders reach the POS only through the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from posintegrator import __version__
from posintegrator.link.identity import KEY_FILE, AgentKey
from posintegrator.runtime.host import Host
from posintegrator.settings import (
    AgentSettings,
    ApiSettings,
    ConnectionSettings,
    HostSettings,
    LinkSettings,
    StoreSettings,
)

#: Link settings quick enough for tests: a lost link is noticed within a second.
LINK = LinkSettings(heartbeat_seconds=0.5, window=64)
#: The ``settings`` argument of :func:`~posintegrator.testing.running_host` for a hub.
HUB_LINK: dict[str, dict[str, Any]] = {"link": LINK.model_dump()}
#: How long an agent may take to connect to its hub.
CONNECT_SECONDS = 20.0


def agent_settings(
    data_dir: Path, hub_url: str, *connections: ConnectionSettings, **extra: Any
) -> HostSettings:
    """A venue agent's settings: its store (and key) in ``data_dir``, its link to ``hub_url``,
    its POS ``connections`` (``placement`` local or hybrid, with the plugin's settings).

    :param extra: further sections of :class:`HostSettings`.
    """
    return HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0),
        store=StoreSettings(path=data_dir / "agent.db", synchronous="NORMAL"),
        link=LINK,
        agent=AgentSettings.model_validate({"hub_url": hub_url, "reconnect_max_seconds": 1.0}),
        connections=list(connections),
        **extra,
    )


async def pair_agent(
    hub_url: str, token: str, data_dir: Path, name: str, locations: list[str]
) -> AgentKey:
    """Make an agent key in ``data_dir`` (where :func:`agent_settings` puts the agent's store),
    ask the hub to pair it, and approve the code for ``locations`` with the hub's API ``token``,
    as an operator would."""
    key = AgentKey.generate()
    key.save(data_dir / KEY_FILE)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{hub_url}/v1/link/pairings",
            json={"public_key": key.public_key, "name": name, "version": __version__},
        ) as response:
            if response.status != 201:
                raise AssertionError(f"pairing refused: {response.status} {await response.text()}")
            started = await response.json()
        async with http.post(
            f"{hub_url}/v1/agents/approve",
            json={"code": started["code"], "locations": locations},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            if response.status != 200:
                raise AssertionError(f"approval refused: {response.status} {await response.text()}")
    return key


@asynccontextmanager
async def running_agent(settings: HostSettings) -> AsyncIterator[Host]:
    """A started venue agent, once its link to the hub is up; stopped afterwards."""
    agent = Host(settings)
    await agent.start()
    try:
        link = agent.agent_link
        if link is None:
            raise AssertionError("these settings are not a venue agent's (no [agent] section)")
        try:
            await asyncio.wait_for(link.connected.wait(), CONNECT_SECONDS)
        except TimeoutError:
            raise AssertionError(
                f"the agent did not connect within {CONNECT_SECONDS}s: {link.last_error}"
            ) from None
        yield agent
    finally:
        await agent.stop(grace_seconds=2.0)

"""A hub and a venue agent over a real WebSocket on loopback: pairing, orders out, statuses and
menus back, and everything refused that must be."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from helpers import POS_WEBHOOK_SECRET, eventually, pos_orders
from linkharness import agent_settings, hub_and_receiver, pair, running_agent

from pos_demo.simulator import RunningSimulator
from posintegrator.model import Menu, OrderStatus
from posintegrator.testing import sample_order


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
            await asyncio.sleep(0)

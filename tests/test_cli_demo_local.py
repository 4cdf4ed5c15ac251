"""``posintegrator demo --local`` as a user runs it: the hub, one agent process and one demo POS
per venue; paste every printed command, follow an order through an agent, stop, resume."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from demoprocess import Demo, cli, run

from posintegrator.model import Menu
from posintegrator.testing import sample_order

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="the demo prints curl commands; curl is not installed"
)

VENUES = ("downtown", "airport")
#: Two agent processes start and link, and a first menu sync may wait a few seconds.
START_SECONDS = 120.0


def processes_mentioning(text: str) -> list[str]:
    """The command lines of live processes that mention ``text`` (from /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # it exited meanwhile
        if any(text in arg for arg in args):
            found.append(" ".join(args))
    return found


def venue_row(demo: Demo, location: str) -> re.Match[str]:
    """The banner's row of venue ``location``: its agent, whether linked, its POS URL."""
    pattern = (
        rf"Venue {location}\s+agent (?P<agent>\S+) (?P<linked>linked|NOT linked) at "
        r"(?P<agent_url>\S+), demo POS (?P<pos_url>\S+)$"
    )
    for line in demo.lines:
        if (found := re.search(pattern, line)) is not None:
            return found
    raise AssertionError(f"no row for venue {location} in:\n" + "\n".join(demo.lines))


def pos_look(demo: Demo, location: str) -> str:
    """The printed command that lists what ``location``'s POS holds."""
    pos_url = venue_row(demo, location)["pos_url"]
    [command] = [c for c in demo.commands() if f"{pos_url}/orders" in c]
    return command


async def pos_references(demo: Demo, location: str) -> list[str]:
    """Our order ids in ``location``'s POS, by pasting the printed command."""
    held = orjson.loads(await run(pos_look(demo, location)))["orders"]
    return [order["reference"] for order in held]


async def printed_agents(demo: Demo) -> dict[str, Any]:
    """The hub's venue agents, by pasting the printed command."""
    [command] = [c for c in demo.commands() if "/v1/agents" in c]
    return {agent["name"]: agent for agent in orjson.loads(await run(command))["agents"]}


async def test_local_demo_end_to_end_and_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    demo = Demo(data_dir, "--local", start_timeout=START_SECONDS)
    await demo.start()
    try:
        token = (await demo.wait_for_line(r"API token")).split()[-1]
        for location in VENUES:
            row = venue_row(demo, location)
            assert row["agent"] == f"agent-{location}" and row["linked"] == "linked"
            await demo.wait_for_line(rf"agent-{location} paired with the hub for {location}")
        # Every printed command works as pasted, in the order a user would try them.
        assert await pos_references(demo, "downtown") == []
        assert await pos_references(demo, "airport") == []
        agents = await printed_agents(demo)
        assert sorted(agents) == ["agent-airport", "agent-downtown"]
        for location in VENUES:
            view = agents[f"agent-{location}"]
            assert view["connected"] is True and view["locations"] == [location]
        [menu] = [c for c in demo.commands() if "/menu" in c]
        assert (await run(menu)).startswith('{"')  # the head of the downtown menu
        [post] = [c for c in demo.commands() if "-X POST" in c and "/order.json" in c]
        answer = orjson.loads(await run(post))
        assert answer == {"id": "demo-order-0001", "status": "RECEIVED"}
        await demo.wait_for_line(r"cloud <- order demo-order-0001 #\d+: COMPLETED", 60)
        [follow] = [c for c in demo.commands() if c.endswith("/v1/orders/demo-order-0001; echo")]
        view = orjson.loads(await run(follow))
        assert view["status"] == "COMPLETED" and view["pos_order_id"].startswith("D-")
        assert any(h["source"].startswith("agent:agent-downtown:") for h in view["history"])
        # It reached the downtown POS through the downtown agent, and only that POS.
        assert await pos_references(demo, "downtown") == ["demo-order-0001"]
        assert await pos_references(demo, "airport") == []
        assert orjson.loads(await run(post)) == answer, "the same order again: the same answer"
        # The aggregator's delivery order reaches the venue's POS whole, through its agent; the
        # banner offers no cancellation (the hub cannot cancel what an agent has).
        [delivery] = [c for c in demo.commands() if "delivery-order.json" in c]
        assert not [c for c in demo.commands() if "/cancel" in c]
        answer = orjson.loads(await run(delivery))
        assert answer == {"id": "demo-delivery-0001", "status": "RECEIVED"}
        await demo.wait_for_line(r"cloud <- order demo-delivery-0001 #\d+: COMPLETED", 60)
        held = orjson.loads(await run(pos_look(demo, "downtown")))["orders"]
        [pos_delivery] = [o for o in held if o["reference"] == "demo-delivery-0001"]
        # examples/delivery-order.json: 16.73 EUR in two payments.
        assert pos_delivery["total"] == 1673 and len(pos_delivery["payments"]) == 2
        config = str(data_dir / "demo.toml")
        code, out = await cli("orders", "show", "demo-order-0001", "--config", config)
        assert code == 0 and "COMPLETED" in out
        keys = {loc: (data_dir / f"agent-{loc}" / "agent-key.pem").read_bytes() for loc in VENUES}
    finally:
        assert await demo.stop() == 0
    for location in VENUES:
        assert f"agent-{location} stopped" in demo.lines, "each agent stopped cleanly (exit 0)"
    assert processes_mentioning(str(data_dir)) == [], "no agent process outlives the demo"

    # The other demo cannot carry on from this one's data.
    code, out = await cli("demo", "--port", "0", "--data-dir", str(data_dir))
    assert code == 1 and "holds the data of `posintegrator demo --local`" in out

    again = Demo(data_dir, "--local", start_timeout=START_SECONDS)
    await again.start()
    try:
        assert any("posintegrator demo --local is running (resumed)" in x for x in again.lines)
        assert (await again.wait_for_line(r"API token")).split()[-1] == token
        assert not any("paired with the hub" in line for line in again.lines), "no re-pairing"
        for location in VENUES:
            assert venue_row(again, location)["linked"] == "linked"
            key = (data_dir / f"agent-{location}" / "agent-key.pem").read_bytes()
            assert key == keys[location], "the same key"
        agents = await printed_agents(again)
        assert sorted(agents) == ["agent-airport", "agent-downtown"], "the same two agents"
        assert all(agent["connected"] for agent in agents.values())
        assert await pos_references(again, "downtown") == [
            "demo-order-0001",
            "demo-delivery-0001",
        ], "the POS kept them"
        # A new order for the other venue goes through its agent.
        hub_url = (await again.wait_for_line(r"Integrator API")).split()[-3]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.get(f"{hub_url}/v1/locations/airport/menu") as response:
                menu = Menu.model_validate_json(await response.read())
            order = sample_order(menu, "airport-order-1")
            async with http.post(f"{hub_url}/v1/orders", json=order) as response:
                assert response.status == 202, await response.text()
        await again.wait_for_line(r"cloud <- order airport-order-1 #\d+: COMPLETED", 60)
        assert await pos_references(again, "airport") == ["airport-order-1"]
        assert await pos_references(again, "downtown") == ["demo-order-0001", "demo-delivery-0001"]
    finally:
        assert await again.stop() == 0
    assert processes_mentioning(str(data_dir)) == []

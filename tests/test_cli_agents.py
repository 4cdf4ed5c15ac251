"""Pairing a venue agent as people do it: `agent pair` in the venue shows a code, an operator
approves it with `agents approve` at the hub, `agents list` and `agents revoke` manage the fleet."""

from __future__ import annotations

import asyncio
import re
import stat
import sys
from pathlib import Path

from hostprocess import ServeProcess

from posintegrator.link.identity import KEY_FILE

TOKEN = "cli-agents-token"


def _hub_config(path: Path, store: Path) -> None:
    path.write_text(
        f"""
[api]
port = 0
token = "{TOKEN}"

[store]
path = "{store}"

[[connections]]
name = "venue"
plugin = "demo"
locations = ["downtown"]
placement = "local"
""",
        encoding="utf-8",
    )


def _agent_config(path: Path, store: Path, hub_url: str) -> None:
    path.write_text(
        f"""
[agent]
hub_url = "{hub_url}"

[api]
port = 0

[store]
path = "{store}"

[[connections]]
name = "pos"
plugin = "demo"
locations = ["downtown"]
placement = "local"

[connections.settings]
base_url = "http://127.0.0.1:9"
""",
        encoding="utf-8",
    )


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posintegrator.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_pair_approve_list_and_revoke_from_the_command_line(tmp_path: Path) -> None:
    hub_file = tmp_path / "hub.toml"
    _hub_config(hub_file, tmp_path / "hub" / "hub.db")
    hub = ServeProcess(hub_file, tmp_path / "hub.log", TOKEN, menu_locations=())
    await hub.start()
    try:
        agent_file = tmp_path / "agent.toml"
        _agent_config(agent_file, tmp_path / "agent" / "agent.db", hub.url)
        code, out = await _cli("agent", "--config", str(agent_file))
        assert code == 1 and "not paired" in out and "agent pair" in out, out

        pairing = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "posintegrator.cli",
            "agent",
            "pair",
            "--config",
            str(agent_file),
            "--name",
            "downtown-agent",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert pairing.stdout is not None
        shown = ""
        while "Waiting for the approval" not in shown:
            line = await asyncio.wait_for(pairing.stdout.readline(), 30)
            assert line, f"pairing ended early: {shown}"
            shown += line.decode()
        match = re.search(r"Pairing code: (\S+)", shown)
        assert match is not None
        pasted = re.search(r"posintegrator agents approve (\S+) --locations (\S+)", shown)
        assert pasted is not None and pasted.group(1) == match.group(1)
        api = ("--url", hub.url, "--token", TOKEN)
        code, out = await _cli("agents", "approve", match.group(1), "--locations", "airport", *api)
        assert code == 1 and "not served by a local or hybrid connection" in out, out
        code, out = await _cli(
            "agents", "approve", match.group(1), "--locations", pasted.group(2), *api
        )
        assert code == 0 and "downtown-agent approved for downtown" in out, out
        rest, _ = await asyncio.wait_for(pairing.communicate(), 30)
        assert pairing.returncode == 0, shown + rest.decode()
        assert "Paired as agent downtown-agent for downtown" in rest.decode()
        key = tmp_path / "agent" / KEY_FILE
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        code, out = await _cli("agents", "approve", match.group(1), "--locations", "downtown", *api)
        assert code == 1 and "already used" in out, "a code approves once"

        code, out = await _cli("agents", "list", *api)
        assert code == 0 and "downtown-agent  offline" in out, out
        code, out = await _cli("agents", "revoke", "downtown-agent", *api)
        assert code == 0 and "revoked" in out
        code, out = await _cli("agents", "list", *api, "--json")
        assert code == 0 and '"status": "revoked"' in out
    finally:
        await hub.stop()

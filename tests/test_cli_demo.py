"""The demo as a user runs it: start, paste the printed curl, follow the order, stop, resume."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="the demo prints curl commands; curl is not installed"
)


class Demo:
    """``posintegrator demo`` in a subprocess, with its output collected line by line."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "posintegrator.cli",
            "demo",
            "--port",
            "0",
            "--data-dir",
            str(self.data_dir),
            "--stage-seconds",
            "0.2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for_line("Stop with Ctrl-C")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip())

    async def wait_for_line(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for line in self.lines:
                if re.search(pattern, line):
                    return line
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.proc.wait(), 15)
        if self._reader is not None:
            await self._reader
        return code


async def run(command: str) -> str:
    proc = await asyncio.create_subprocess_shell(command, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, command
    return out.decode()


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posintegrator.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_demo_end_to_end_and_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    demo = Demo(data_dir)
    await demo.start()
    try:
        token = (await demo.wait_for_line(r"API token")).split()[-1]
        post = next(line.strip() for line in demo.lines if "-X POST" in line)
        answer = orjson.loads(await run(post))
        assert answer == {"id": "demo-order-0001", "status": "RECEIVED"}
        await demo.wait_for_line(r"cloud <- order demo-order-0001 #\d+: READY")
        await demo.wait_for_line(r"cloud <- order demo-order-0001 #\d+: COMPLETED")
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = (await demo.wait_for_line(r"Integrator API")).split()[-1]
            async with session.get(f"{url}/v1/orders/demo-order-0001") as response:
                view = await response.json()
            assert view["status"] == "COMPLETED" and view["pos_order_id"].startswith("D-")
            async with session.get(f"{url}/v1/locations/downtown/menu") as response:
                assert response.status == 200
                assert len((await response.json())["products"]) >= 40
        config = str(data_dir / "demo.toml")
        code, out = await cli("orders", "show", "demo-order-0001", "--config", config)
        assert code == 0 and "COMPLETED" in out and "READY" in out
        code, out = await cli("menu", "show", "downtown", "--config", config, "--json")
        assert code == 0 and orjson.loads(out)["location"] == "downtown"
        code, out = await cli("orders", "show", "nope", "--config", config)
        assert code == 1 and "no order with id 'nope'" in out
    finally:
        assert await demo.stop() == 0

    again = Demo(data_dir)
    await again.start()
    try:
        assert any("(resumed)" in line for line in again.lines)
        new_token = (await again.wait_for_line(r"API token")).split()[-1]
        assert new_token == token
        code, out = await cli(
            "orders", "show", "demo-order-0001", "--config", str(data_dir / "demo.toml"), "--json"
        )
        assert code == 0 and orjson.loads(out)["status"] == "COMPLETED"
        # The printed look into the POS works as pasted.
        look = next(line.strip() for line in again.lines if "/orders; echo" in line)
        held = orjson.loads(await run(look))["orders"]
        assert [o["reference"] for o in held] == ["demo-order-0001"], "the POS kept its orders"
        # Pasting the same curl again gives the same answer and no second POS order.
        post = next(line.strip() for line in again.lines if "-X POST" in line)
        assert orjson.loads(await run(post)) == {"id": "demo-order-0001", "status": "RECEIVED"}
    finally:
        assert await again.stop() == 0

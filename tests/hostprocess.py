"""``posintegrator serve`` as a real subprocess, for tests that kill and restart the host."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


class ServeProcess:
    """``posintegrator serve`` in a subprocess, and an API client for it."""

    def __init__(self, config: Path, port: int, log: Path, token: str) -> None:
        self.config = config
        self.token = token
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "posintegrator.cli",
                "serve",
                "--config",
                str(self.config),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "POSINTEGRATOR_LOG_LEVEL": "INFO"},
            )
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc.returncode is None, self.log.read_text()
                # Ready for orders once the menu they are checked against is live.
                try:
                    async with session.get(
                        self.url + "/v1/locations/downtown/menu",
                        headers={"Authorization": f"Bearer {self.token}"},
                    ) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"host did not start:\n{self.log.read_text()}")

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"}) as session,
            session.request(method, self.url + path, json=body) as response,
        ):
            return response.status, await response.json()

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)

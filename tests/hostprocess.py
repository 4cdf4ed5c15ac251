"""``posintegrator serve`` (or ``posintegrator agent``) as a real subprocess, for tests that kill
and restart the host.

The host listens on a port the OS picks (``api.port = 0``) and says which, as systemd would hear
it, through ``NOTIFY_SOCKET``: no test ever guesses a free port. Each start may get another
port, so the URL is read again after every start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from posintegrator.runtime.notify import URL_FIELD


def _notified_url(message: bytes) -> str | None:
    for line in message.decode().splitlines():
        name, _, value = line.partition("=")
        if name == URL_FIELD:
            return value
    return None


class ServeProcess:
    """``posintegrator serve`` in a subprocess, and an API client for it.

    :param on_started: called with the host's URL after each start, before it is used (e.g. to
        point a POS's webhooks at it).
    :param command: the subcommand: ``serve``, or ``agent`` for a venue agent.
    :param menu_locations: a start is complete once the host serves the menus of these
        locations (orders are checked against them); none: once it reported its URL. A test may
        change it between starts (a hub has no menu before its agents sent theirs).
    """

    def __init__(
        self,
        config: Path,
        log: Path,
        token: str,
        on_started: Callable[[str], Awaitable[None] | None] | None = None,
        *,
        command: str = "serve",
        menu_locations: Sequence[str] = ("downtown",),
    ) -> None:
        self.config = config
        self.token = token
        self.url = ""
        self.log = log
        self.on_started = on_started
        self.command = command
        self.menu_locations = tuple(menu_locations)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        address = f"\0posintegrator-test-{uuid.uuid4().hex}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            notify.setblocking(False)
            with self.log.open("ab") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "posintegrator.cli",
                    self.command,
                    "--config",
                    str(self.config),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={
                        **os.environ,
                        "POSINTEGRATOR_LOG_LEVEL": "INFO",
                        "NOTIFY_SOCKET": "@" + address[1:],
                    },
                )
            self.url = await self._wait_for_url(notify)
        if self.on_started is not None:
            started = self.on_started(self.url)
            if started is not None:
                await started
        for location in self.menu_locations:
            await self._wait_for_menu(location)

    async def _wait_for_url(self, notify: socket.socket) -> str:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
            try:
                message = await asyncio.wait_for(loop.sock_recv(notify, 4096), 0.5)
            except TimeoutError:
                continue
            url = _notified_url(message)
            if url is not None:
                return url
        raise AssertionError(f"host did not report it was ready:\n{self.log.read_text()}")

    async def _wait_for_menu(self, location: str) -> None:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
                # Ready for orders once the menu they are checked against is live.
                try:
                    async with session.get(
                        f"{self.url}/v1/locations/{location}/menu",
                        headers={"Authorization": f"Bearer {self.token}"},
                    ) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"host has no menu of {location}:\n{self.log.read_text()}")

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

"""``posintegrator demo`` as a user runs it: a subprocess whose printed lines are pasted."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path


class Demo:
    """``posintegrator demo [extra...]`` in a subprocess, with its output collected by line.

    :param start_timeout: how long it may take to print its banner.
    """

    def __init__(self, data_dir: Path, *extra: str, start_timeout: float = 20.0) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.start_timeout = start_timeout
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
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for_line("Stop with Ctrl-C", self.start_timeout)

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

    def commands(self) -> list[str]:
        """Every command the banner printed (its indented ``curl`` lines)."""
        return [line.strip() for line in self.lines if line.startswith("  curl ")]

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        if self._reader is not None:
            await self._reader
        return code


async def run(command: str) -> str:
    """Run a printed command as pasted into a shell; its output (it must succeed)."""
    proc = await asyncio.create_subprocess_shell(command, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, command
    return out.decode()


async def cli(*args: str) -> tuple[int, str]:
    """Run ``posintegrator ARGS``; its exit code and output."""
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

"""A private, throwaway PostgreSQL server for the tests: Debian's package, started here.

``initdb`` into a fresh folder, ``postgres`` listening only on a unix socket in that folder (no
TCP port, so nothing to race for), stopped and removed at the end. PostgreSQL refuses to run as
root, so under root (as in CI) the server runs as ``nobody``. Nothing needs to be running
beforehand; the package itself is installed by tox (``tox.ini``, env ``host``) when missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import psycopg

PG_ROOT = Path("/usr/lib/postgresql")


def pg_bin() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder.

    :raises RuntimeError: PostgreSQL is not installed (``apt-get install postgresql``).
    """
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            f"PostgreSQL is not installed (no {PG_ROOT}/*/bin/initdb): run "
            "`apt-get install postgresql`, or the tests through tox (env host installs it)"
        )
    return versions[-1]


class PostgresServer:
    """A running private server; :meth:`new_database` gives each test its own database."""

    def __init__(self, folder: Path, user: str | None, *, durable: bool) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.socket_dir = folder
        self._user = user
        self._durable = durable
        self._names = count(1)
        self._bin = pg_bin()

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._user, "--", *args] if self._user else list(args)

    def start(self) -> None:
        subprocess.run(
            self._command(
                str(self._bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ),
            check=True,
            capture_output=True,
        )
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{self.socket_dir}'",
            "-c max_connections=200",
        ]
        if not self._durable:  # test data: no disk flushes (the host's crash tests kill hosts)
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        subprocess.run(
            self._command(
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.folder / "server.log"),
                "-o",
                " ".join(options),
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            self._command(
                str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
            ),
            check=False,
            capture_output=True,
        )

    def postmaster_pid(self) -> int:
        """The server's main process (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server (as the superuser, over the socket)."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A new empty database: its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


@contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the duration of the block."""
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    user: str | None = None
    if os.geteuid() == 0:
        user = "nobody"
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(folder, user, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

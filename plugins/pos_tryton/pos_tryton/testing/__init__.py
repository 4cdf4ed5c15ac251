"""A real Tryton point-of-sale server for tests: seeded once, copied per test, on loopback.

Needs ``trytond``, ``trytond-sale-point`` and ``proteus`` installed (the test environment does;
the plugin does not depend on them)::

    seeded = build_database(cache_dir)            # once per test session: about a minute
    async with running_tryton(seeded, tmp_path) as tryton:
        settings = tryton.plugin_settings("venue")   # the connection's settings for the plugin
        ...
        assert tryton.count_orders("order-1") == 1  # read from Tryton's own database file

:func:`build_database` activates ``sale_point`` in a fresh SQLite database and seeds a restaurant
(:mod:`pos_tryton.testing.seed`, data in ``restaurant.json``); the result is cached in
``cache_dir`` under a key of the Tryton versions and the seed, so a later session reuses it.
:func:`running_tryton` copies the file for one test and starts ``trytond`` on a loopback socket
bound here first (port 0) and handed to the server, so no other process can take the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pos_tryton.reconcile import owners

DATABASE = "restaurant"
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "admin-password-1"  # noqa: S105 - of throwaway test databases
#: How long a copied database may take to answer after ``trytond`` starts (loads every module).
READY_SECONDS = 120.0
_HERE = Path(__file__).parent
_SEED_DATA = _HERE / "restaurant.json"
_SEED_SCRIPT = _HERE / "seed.py"


@dataclass(frozen=True)
class SeededDatabase:
    """A seeded restaurant database file and the ids of what the seed created.

    :param path: the SQLite file, to be copied, never served itself.
    :param ids: ``company``, ``sale_point``, ``payment_methods`` (``online``, ``cash``),
        ``products`` (name -> ``product.product`` id; ``"Name/CODE"`` for variants) and
        ``users`` (``integration``, ``cashier``).
    """

    path: Path
    ids: dict[str, Any]

    @property
    def logins(self) -> dict[str, tuple[str, str]]:
        """User key -> (login, password), the admin included."""
        users = json.loads(_SEED_DATA.read_text(encoding="utf-8"))["users"]
        found = {key: (u["login"], u["password"]) for key, u in users.items()}
        found["admin"] = (ADMIN_LOGIN, ADMIN_PASSWORD)
        return found


def _tool(name: str) -> str:
    """A Tryton command installed beside this Python (the test environment's)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install trytond trytond-sale-point")
    return found


def _cache_key() -> str:
    """Tryton's versions and the seed's content: a change to any builds a new database."""
    digest = hashlib.sha256()
    for package in ("trytond", "trytond-sale-point", "proteus"):
        digest.update(f"{package}={importlib.metadata.version(package)};".encode())
    digest.update(_SEED_SCRIPT.read_bytes())
    digest.update(_SEED_DATA.read_bytes())
    return f"tryton-{importlib.metadata.version('trytond')}-{digest.hexdigest()[:16]}"


def _write_config(directory: Path) -> Path:
    config = directory / "trytond.conf"
    config.write_text(
        "[database]\n"
        "uri = sqlite://\n"
        f"path = {directory}\n"
        "[web]\n"
        # Not used when the server is handed its socket; port 0 if it ever binds one itself.
        "listen = 127.0.0.1:0\n",
        encoding="utf-8",
    )
    return config


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=900
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def build_database(cache_dir: Path) -> SeededDatabase:
    """The seeded restaurant database, built once and kept in ``cache_dir``.

    Two sessions building at once each build their own copy; the first to finish keeps its.
    """
    target = cache_dir / _cache_key()
    if not (target / "seeded.json").exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="building-", dir=cache_dir))
        config = _write_config(work)
        (work / f"{DATABASE}.sqlite").touch()  # trytond's SQLite backend wants the file
        password_file = work / "admin-password"
        password_file.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
        _run(
            [
                _tool("trytond-admin"),
                *("-c", str(config), "-d", DATABASE),
                *("-u", "sale_point", "--activate-dependencies"),
                *("--email", "admin@example.com"),
            ],
            "activating sale_point",
            env={**os.environ, "TRYTONPASSFILE": str(password_file)},
        )
        seeded = _run(
            [sys.executable, str(_SEED_SCRIPT), str(config), DATABASE, str(_SEED_DATA)],
            "seeding the restaurant",
        )
        (work / "seeded.json").write_text(seeded.strip().splitlines()[-1], encoding="utf-8")
        try:
            work.rename(target)
        except OSError:
            shutil.rmtree(work)  # another session finished first: use its database
    ids = json.loads((target / "seeded.json").read_text(encoding="utf-8"))
    return SeededDatabase(path=target / f"{DATABASE}.sqlite", ids=ids)


@dataclass
class TrytonServer:
    """A running ``trytond`` serving a copy of the seeded database."""

    url: str
    database: str
    db_path: Path
    seeded: SeededDatabase
    log_path: Path

    @property
    def sale_point(self) -> int:
        """The seeded sale point's id."""
        return int(self.seeded.ids["sale_point"])

    def product(self, name: str) -> int:
        """The ``product.product`` id of a seeded product (``"House red wine/RED-C"``)."""
        return int(self.seeded.ids["products"][name])

    def plugin_settings(self, *locations: str, **overrides: Any) -> dict[str, Any]:
        """Settings of a connection whose locations all sell at the seeded sale point."""
        login, password = self.seeded.logins["integration"]
        settings: dict[str, Any] = {
            "base_url": self.url,
            "database": self.database,
            "username": login,
            "password": password,
            "sale_points": {location: self.sale_point for location in locations or ("venue",)},
            "prepaid_payment_method": int(self.seeded.ids["payment_methods"]["online"]),
            "request_timeout_seconds": 30.0,
        }
        settings.update(overrides)
        return settings

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows from Tryton's own database file, read-only (what Tryton really stored)."""
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def sale_ids(self) -> list[int]:
        """Every point-of-sale sale in the database."""
        return [int(r[0]) for r in self.query("SELECT id FROM sale_point_sale ORDER BY id")]

    def order_sales(self, order_id: str) -> list[int]:
        """The sales that belong to an order (the first marker note on them names it)."""
        notes = [
            {"id": r[0], "resource": r[1], "message": r[2]}
            for r in self.query(
                "SELECT id, resource, message FROM ir_note WHERE resource LIKE 'sale.point.sale,%'"
            )
        ]
        return sorted(sale for sale, owner in owners(notes).items() if owner == order_id)

    def count_orders(self, order_id: str) -> int:
        """How many sales belong to an order."""
        return len(self.order_sales(order_id))

    def sale_state(self, sale_id: int) -> str:
        """A sale's state, read from the database."""
        ((state,),) = self.query("SELECT state FROM sale_point_sale WHERE id = ?", sale_id)
        return str(state)


def _log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]


async def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll ``common.server.version`` until it answers; fail early if ``trytond`` exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_SECONDS
    body = {"id": 0, "method": "common.server.version", "params": []}
    async with aiohttp.ClientSession() as http:
        while True:
            if process.poll() is not None:
                log = _log_tail(log_path)
                raise RuntimeError(f"trytond exited with {process.returncode}:\n{log}")
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                async with http.post(f"{url}/rpc/", json=body, timeout=timeout) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if loop.time() > deadline:
                log = _log_tail(log_path)
                raise RuntimeError(f"trytond did not answer in {READY_SECONDS}s:\n{log}")
            await asyncio.sleep(0.2)


def _start(seeded: SeededDatabase, work_dir: Path) -> tuple[subprocess.Popen[bytes], TrytonServer]:
    """Copy the database, bind the socket, start ``trytond`` on it (see :func:`running_tryton`)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = _write_config(work_dir)
    db_path = work_dir / f"{DATABASE}.sqlite"
    shutil.copyfile(seeded.path, db_path)
    log_path = work_dir / "trytond.log"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        env = {
            **os.environ,
            "WERKZEUG_RUN_MAIN": "true",
            "WERKZEUG_SERVER_FD": str(listener.fileno()),
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [_tool("trytond"), "-c", str(config), "-d", DATABASE],
                env=env,
                pass_fds=[listener.fileno()],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    # Our copy of the socket is closed; the server's stays open and keeps the port.
    server = TrytonServer(f"http://127.0.0.1:{port}", DATABASE, db_path, seeded, log_path)
    return process, server


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@asynccontextmanager
async def running_tryton(seeded: SeededDatabase, work_dir: Path) -> AsyncIterator[TrytonServer]:
    """Serve a fresh copy of ``seeded`` from ``work_dir`` on loopback; stop it afterwards.

    The socket is bound (port 0) and listening before ``trytond`` starts, and handed to it with
    werkzeug's ``WERKZEUG_SERVER_FD``/``WERKZEUG_RUN_MAIN`` (how its own reloader passes a bound
    socket to the serving process): requests sent before the server is ready wait in the
    socket's backlog instead of being refused.
    """
    process, server = await asyncio.to_thread(_start, seeded, work_dir)
    try:
        await _wait_until_ready(server.url, process, server.log_path)
        yield server
    finally:
        await asyncio.to_thread(_stop, process)

"""``posintegrator store backup`` and ``store check``: a backup taken (by the command in its own
process) while orders flow opens, and a host restored from it serves its orders."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from fakepos import ScriptedPos
from helpers import eventually

from posintegrator.cli import main
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.store import MenuBody, SQLiteStore
from posintegrator.store.migrations import LATEST_VERSION
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order

MENU = one_product_menu("loc")
CONNECTION = ConnectionSettings(name="fake", plugin="fake", locations=["loc"])


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def command(*args: str | Path) -> Ran:
    """The ``posintegrator`` command, run in this process."""
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    return Ran(result.exit_code, result.stdout, result.stderr)


async def command_async(*args: str | Path) -> tuple[int, str]:
    """The command in its own process while this event loop keeps the host running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posintegrator.cli",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


class Load:
    """Posts orders one after the other until stopped; remembers when each was acknowledged."""

    def __init__(self, harness: HostHarness) -> None:
        self.harness = harness
        self.acknowledged: list[tuple[str, float]] = []
        self._stop = asyncio.Event()

    async def run(self, workers: int = 8) -> None:
        numbers = iter(range(1_000_000))

        async def worker() -> None:
            while not self._stop.is_set():
                order_id = f"o-{next(numbers)}"
                status, body = await self.harness.post_order(sample_order(MENU, order_id))
                assert status == 202, body
                self.acknowledged.append((order_id, time.monotonic()))

        await asyncio.gather(*(worker() for _ in range(workers)))

    def stop(self) -> None:
        self._stop.set()

    def before(self, moment: float) -> list[str]:
        return [order_id for order_id, at in self.acknowledged if at < moment]


async def test_a_backup_taken_under_load_restores_into_a_host_that_serves_its_orders(
    tmp_path: Path,
) -> None:
    backup = tmp_path / "backups" / "posintegrator-backup.db"
    backup.parent.mkdir()
    live = tmp_path / "live"
    async with running_host(
        live, [CONNECTION], plugins=PluginHost.from_objects({"fake": ScriptedPos()})
    ) as harness:
        load = Load(harness)
        posting = asyncio.create_task(load.run())

        async def some_orders() -> bool:
            return len(load.acknowledged) >= 200

        await eventually(some_orders, timeout=60)
        started = time.monotonic()
        code, out = await command_async("store", "backup", backup, "--db", live / "host.db")
        finished = time.monotonic()
        count_at_finish = len(load.acknowledged)

        async def more_orders() -> bool:
            return len(load.acknowledged) >= count_at_finish + 50

        await eventually(more_orders, timeout=60)
        load.stop()
        await posting
    assert code == 0, out
    assert f"to {backup}" in out and f"schema version {LATEST_VERSION}" in out
    assert not list(backup.parent.glob(".*partial")), "no partial file is left behind"
    assert load.before(finished)[-1] not in load.before(started), "orders flowed during it"

    checked = command("store", "check", "--db", backup, "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True and report["integrity"] == ["ok"]
    assert (report["schema_version"], report["schema"]) == (LATEST_VERSION, "current")
    in_backup = report["rows"]["orders"]
    assert len(load.before(started)) <= in_backup <= len(load.before(finished))

    # Restore as the deployer guide says: the host stopped, the file in place, start it.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(backup, restored / "host.db")
    async with running_host(
        restored, [CONNECTION], plugins=PluginHost.from_objects({"fake": ScriptedPos()})
    ) as harness:
        for order_id in load.before(started):
            view = await harness.order(order_id)
            assert view["history"][0]["status"] == "RECEIVED", order_id
        for order_id, _ in load.acknowledged[-20:]:
            status, _ = await harness.request("GET", f"/v1/orders/{order_id}")
            assert status == 404, "orders acknowledged after the backup are not in it"
        status, _ = await harness.post_order(sample_order(MENU, "after-restore"))
        assert status == 202, "the restored host takes new orders"
    with sqlite3.connect(restored / "host.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION


async def test_the_backup_of_a_closed_store_is_the_same_data(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.state_set("fake", "cursor", "42")
    await store.publish_menu("loc", "fake", "hash-1", MenuBody(b'{"location":', b',"n":1}'))
    await store.close()
    done = command("store", "backup", tmp_path / "copy.db", "--db", tmp_path / "s.db")
    assert done.returncode == 0, done.stderr
    copy = SQLiteStore(tmp_path / "copy.db")
    await copy.open()
    try:
        assert await copy.state_get("fake", "cursor") == "42"
        menu = await copy.latest_menu("loc")
        assert menu is not None and menu.body == b'{"location":"loc","n":1}'
    finally:
        await copy.close()


def test_backup_refuses_to_overwrite_or_to_copy_what_is_not_there(tmp_path: Path) -> None:
    existing = tmp_path / "old-backup.db"
    existing.write_bytes(b"keep me")
    refused = command("store", "backup", existing, "--db", tmp_path / "missing.db")
    assert refused.returncode == 1 and "exists already" in refused.stderr
    assert existing.read_bytes() == b"keep me"
    missing = command("store", "backup", tmp_path / "new.db", "--db", tmp_path / "missing.db")
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-backup.db"]
    neither = command("store", "backup", tmp_path / "new.db")
    assert neither.returncode == 1 and "--config" in neither.stderr


def test_a_postgresql_store_is_not_backed_up_as_a_file(tmp_path: Path) -> None:
    """With ``store.url`` set, the SQLite file named by ``store.path`` is not the store: the
    command says so, naming the setting, instead of copying or checking a stray file."""
    config = tmp_path / "host.toml"
    config.write_text(
        '[api]\ntoken = "a-token-long-enough-123"\n'
        '[store]\nurl = "postgresql://posi:secret-pw@db.internal/posintegrator"\n',
        encoding="utf-8",
    )
    for args in (("backup", tmp_path / "copy.db"), ("check",)):
        result = command("store", *args, "--config", config)
        assert result.returncode == 1 and "store.url" in result.stderr, result.stderr
        assert "secret-pw" not in result.stderr + result.stdout
    assert not (tmp_path / "copy.db").exists()


async def test_store_check_exits_non_zero_on_every_kind_of_problem(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello " * 1000)
    result = command("store", "check", "--db", not_a_db)
    assert result.returncode == 1 and "cannot be read as a SQLite database" in result.stderr

    result = command("store", "check", "--db", tmp_path / "missing.db")
    assert result.returncode == 1 and "no such file" in result.stderr

    future = tmp_path / "future.db"
    store = SQLiteStore(future)
    await store.open()
    await store.close()
    with sqlite3.connect(future) as db:
        db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    result = command("store", "check", "--db", future)
    assert result.returncode == 1 and "newer than this release" in result.stderr

    broken = tmp_path / "broken.db"  # an index that no longer matches its table
    store = SQLiteStore(broken)
    await store.open()
    for number in range(20):
        await store.state_set("fake", f"key-{number}", f"value-{number}")
    await store.close()
    db = sqlite3.connect(broken, isolation_level=None)
    db.execute("CREATE INDEX plugin_state_value ON plugin_state (value)")
    db.execute("PRAGMA writable_schema = ON")
    db.execute(
        "UPDATE sqlite_schema SET sql = 'CREATE INDEX plugin_state_value ON plugin_state (key)' "
        "WHERE name = 'plugin_state_value'"
    )
    db.close()
    result = command("store", "check", "--db", broken)
    assert result.returncode == 1
    assert "integrity: PROBLEMS" in result.stdout
    assert "problem: integrity: row 1 missing from index plugin_state_value" in result.stderr

    scribbled = tmp_path / "scribbled.db"  # pages overwritten: SQLite cannot read it at all
    shutil.copyfile(broken, scribbled)
    with scribbled.open("r+b") as raw:
        raw.seek(4096 + 16)
        raw.write(b"\xff" * 256)
    result = command("store", "check", "--db", scribbled)
    assert result.returncode == 1
    assert "malformed" in result.stderr or "integrity" in result.stderr, result.stderr

    healthy = tmp_path / "healthy.db"
    store = SQLiteStore(healthy)
    await store.open()
    await store.close()
    result = command("store", "check", "--db", healthy)
    assert result.returncode == 0, result.stderr
    assert f"schema: version {LATEST_VERSION} (current)" in result.stdout
    assert "rows: " in result.stdout and "orders 0" in result.stdout

"""Backing up and checking a SQLite store file, safely while a host writes to it.

Copying the file of a live WAL database is not a backup: the last commits may be only in the
``-wal`` file, and a copy taken in the middle of a checkpoint can be torn. :func:`backup` uses
SQLite's online backup API from a separate connection instead: it copies one consistent
snapshot (a read transaction, which in WAL mode never blocks the host's writer), as of the
moment it starts. :func:`check` reports what a deployer wants to know of a file before trusting
it: its integrity, its schema version, its row counts.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from posintegrator.store.migrations import LATEST_VERSION

#: Integrity problems listed at most (SQLite can report thousands for one broken file).
MAX_PROBLEMS = 20


class BackupError(Exception):
    """The backup cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    """A backup just written.

    :param bytes: the size of the backup file.
    :param seconds: how long the copy and its check took.
    :param schema_version: the schema version of the copy.
    """

    path: Path
    bytes: int
    seconds: float
    schema_version: int


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check` found in a store file.

    :param integrity: ``ok``, or the problems SQLite's ``integrity_check`` reported.
    :param schema: ``current``, ``older`` (migrated when a host opens it) or ``newer`` (this
        release cannot open it).
    :param rows: rows per table.
    :param free_bytes: space inside the file that deleted rows freed, ready for reuse.
    :param waiting_events: events not yet delivered to the cloud (or the hub).
    """

    path: Path
    integrity: list[str]
    schema_version: int
    schema: str
    rows: dict[str, int]
    file_bytes: int
    free_bytes: int
    journal_mode: str
    waiting_events: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the file can be trusted by this release."""
        return not self.problems


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing database file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)


def backup(source: Path, target: Path) -> BackupResult:
    """Copy the store at ``source`` to the new file ``target``, while a host may be writing.

    The copy is written next to ``target`` under a temporary name, checked with SQLite's
    ``quick_check``, made durable, and only then renamed to ``target``: a failed backup never
    leaves a file that looks like one. The copy is a single self-contained file (rollback
    journal mode, no ``-wal`` beside it); a host opening it switches it back to WAL.

    :raises BackupError: ``source`` is missing or not a database, ``target`` exists, or the
        copy does not check out.
    """
    started = time.monotonic()
    if target.exists():
        raise BackupError(f"{target} exists already; choose a new file name (nothing written)")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such folder")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with closing(_read_only(source)) as src, closing(sqlite3.connect(partial)) as copy:
            # One step (pages=-1) copies one snapshot under one read transaction: the host's
            # commits meanwhile neither block nor restart it.
            src.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode = DELETE")
            verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
            version = int(copy.execute("PRAGMA user_version").fetchone()[0])
        if verdict != "ok":
            raise BackupError(
                f"the copy of {source} does not check out ({verdict}); run 'store check'"
            )
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        partial.rename(target)
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(target, target.stat().st_size, time.monotonic() - started, version)


def check(path: Path) -> CheckReport:
    """Check the store file at ``path`` without changing it (safe while a host runs).

    :raises FileNotFoundError: there is no such file.
    :raises sqlite3.DatabaseError: it is not a SQLite database.
    """
    with closing(_read_only(path)) as db:
        db.execute("BEGIN")  # one snapshot for every figure below
        integrity = [row[0] for row in db.execute("PRAGMA integrity_check").fetchmany(MAX_PROBLEMS)]
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {
            name: int(db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])  # noqa: S608
            for name in tables
        }
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
        journal = str(db.execute("PRAGMA journal_mode").fetchone()[0])
        waiting = None
        if "outbox" in tables:
            waiting = int(
                db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
            )
    problems = [] if integrity == ["ok"] else [f"integrity: {p}" for p in integrity]
    if version > LATEST_VERSION:
        schema = "newer"
        problems.append(
            f"schema version {version} is newer than this release knows ({LATEST_VERSION}): "
            "upgrade posintegrator before opening it"
        )
    elif version == 0 and not tables:
        schema = "older"
        problems.append("no posintegrator tables: this is an empty database, not a store")
    else:
        schema = "current" if version == LATEST_VERSION else "older"
    return CheckReport(
        path=path,
        integrity=integrity,
        schema_version=version,
        schema=schema,
        rows=rows,
        file_bytes=page_size * pages,
        free_bytes=page_size * free,
        journal_mode=journal,
        waiting_events=waiting,
        problems=problems,
    )

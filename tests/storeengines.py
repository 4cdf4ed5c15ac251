"""The store tests' two engines: a SQLite file, and a database on the private PostgreSQL server
(:mod:`pgserver`), so the same test checks both."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
from pydantic import SecretStr

from posintegrator.store import SQLiteStore
from posintegrator.store.postgres import PostgresStore

ENGINES = ("sqlite", "postgresql")

#: Makes a store (not yet open) on the test's database; each call the same database.
StoreFactory = Callable[[], SQLiteStore]


def sqlite_factory(path: Path) -> StoreFactory:
    return lambda: SQLiteStore(path)


def postgres_factory(url: str) -> StoreFactory:
    return lambda: PostgresStore(SecretStr(url))


def row_count(store: SQLiteStore, table: str) -> int:
    """Rows in ``table``, read past the store (as an operator's query would)."""
    query = f"SELECT COUNT(*) FROM {table}"  # noqa: S608
    if isinstance(store, PostgresStore):
        with psycopg.connect(store.url.get_secret_value()) as db:
            row = db.execute(query).fetchone()  # type: ignore[call-overload]
    else:
        with sqlite3.connect(store.path) as db:
            row = db.execute(query).fetchone()
    assert row is not None
    return int(row[0])

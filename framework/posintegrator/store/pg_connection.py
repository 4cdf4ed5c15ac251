"""A PostgreSQL connection (psycopg 3) that runs the stores' portable SQL.

The store's statements use ``?`` placeholders and SQLite's two-argument ``MIN``/``MAX``; this is
the one place that spells them the PostgreSQL way (``%s``, ``LEAST``/``GREATEST``), so a
statement is written once for both engines. Write transactions are SERIALIZABLE: each behaves as
if it were the only one, as SQLite's single writer guarantees, and a conflict between workers is
reported as a serialization failure that the group-commit writer answers by running its batch
again (:func:`is_conflict`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors

from posintegrator.store.sql import SQLCursor

#: What opens a write transaction on PostgreSQL.
BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE"

_SCALAR_MIN_MAX = re.compile(r"\b(MIN|MAX)\(([^(),]+),([^(),]+)\)")


@lru_cache(maxsize=1024)
def postgres_sql(sql: str, *, placeholders: bool = True) -> str:
    """``sql`` as PostgreSQL spells it; ``placeholders`` when it is run with parameters (psycopg
    then reads ``%`` as the start of one).

    >>> postgres_sql("UPDATE t SET a = MIN(a, ?) WHERE b LIKE '%x'")
    "UPDATE t SET a = LEAST(a, %s) WHERE b LIKE '%%x'"
    """
    if sql.strip() == "BEGIN IMMEDIATE":
        return BEGIN
    spelled = sql.replace("%", "%%").replace("?", "%s") if placeholders else sql
    return _SCALAR_MIN_MAX.sub(
        lambda m: f"{'LEAST' if m[1] == 'MIN' else 'GREATEST'}({m[2]},{m[3]})", spelled
    )


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` means a concurrent transaction won: the work is to be run again."""
    return isinstance(error, errors.SerializationFailure | errors.DeadlockDetected)


class PostgresConnection:
    """A psycopg connection in autocommit mode: a statement outside ``BEGIN`` commits alone."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection

    @classmethod
    def connect(cls, url: str) -> PostgresConnection:
        """Connect to the database at ``url`` (``postgresql://user@host/db``)."""
        return cls(psycopg.connect(url, autocommit=True))

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> SQLCursor:
        if not parameters:  # the simple protocol: several statements may run at once
            return self.raw.execute(postgres_sql(sql, placeholders=False))
        cursor: SQLCursor = self.raw.execute(postgres_sql(sql), parameters)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> SQLCursor:
        cursor = self.raw.cursor()
        cursor.executemany(postgres_sql(sql), parameters)
        result: SQLCursor = cursor
        return result

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()

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
from collections.abc import Iterable, Iterator, Sequence
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


#: Statements that open a transaction or a savepoint, or release a savepoint: held back and sent
#: with the next statement rather than on their own (:class:`PostgresConnection`).
_HELD_BACK = re.compile(r"\s*(BEGIN|SAVEPOINT|RELEASE)\b", re.IGNORECASE)
#: Between statements sent together: the line break ends a ``--`` comment a statement ends with.
_THEN = "\n; "


class _NoResult:
    """The result of a statement held back: it has no rows (none of those statements has)."""

    rowcount = -1

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def fetchmany(self, size: int = 0, /) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class PostgresConnection:
    """A psycopg connection in autocommit mode: a statement outside ``BEGIN`` commits alone.

    ``BEGIN``, ``SAVEPOINT`` and ``RELEASE`` are held back and go to the server in one message
    with the statement after them (several statements in one simple query), in the order they
    were run: a unit of work in the group-commit writer opens a transaction and a savepoint and
    ends with a release and a commit, and sent one by one those cost four round trips (and four
    waits for the writer thread to get the interpreter lock back) around work that is often a
    single statement. Nothing changes in what runs or in what order; an error in a held
    statement is raised by the statement it went with.
    """

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection
        self._held: list[str] = []

    @classmethod
    def connect(cls, url: str) -> PostgresConnection:
        """Connect to the database at ``url`` (``postgresql://user@host/db``)."""
        return cls(psycopg.connect(url, autocommit=True))

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> SQLCursor:
        if parameters:
            self._send_held()
            cursor: SQLCursor = self.raw.execute(postgres_sql(sql), parameters)
            return cursor
        spelled = postgres_sql(sql, placeholders=False)
        if _HELD_BACK.match(spelled):
            self._held.append(spelled)
            return _NoResult()
        script = _THEN.join([*self._take_held(), spelled])  # the simple protocol runs them all
        last = self.raw.execute(script)
        while last.nextset():  # the result is the last statement's
            pass
        return last

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> SQLCursor:
        self._send_held()
        cursor = self.raw.cursor()
        cursor.executemany(postgres_sql(sql), parameters)
        result: SQLCursor = cursor
        return result

    def _take_held(self) -> list[str]:
        held, self._held = self._held, []
        return held

    def _send_held(self) -> None:
        """Send what is held back on its own (a statement with parameters cannot go with it)."""
        if self._held:
            self.raw.execute(_THEN.join(self._take_held()))

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open, or held back to be opened."""
        open_ = self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        return open_ or bool(self._held)

    def close(self) -> None:
        self._held = []
        self.raw.close()

"""The part of a DB-API connection the SQL stores use, so one body of SQL serves two engines.

The SQLite store's queries are written in the SQL both SQLite and PostgreSQL speak, with ``?``
placeholders; :class:`SQLConnection` is what they run on: a ``sqlite3.Connection`` as it is, or
the PostgreSQL connection of :mod:`posintegrator.store.pg_connection`, which spells the few
differences the PostgreSQL way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class SQLCursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SQLConnection(Protocol):
    """A connection that runs one statement at a time with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> SQLCursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> SQLCursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...

"""The PostgreSQL connection the stores run on: transaction and savepoint statements held back
and sent with the statement after them, with nothing changed in what runs or in what order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pgserver import PostgresServer

from posintegrator.store.pg_connection import BEGIN, PostgresConnection

THEN = "\n; "  # how statements sent together are joined


class CountingRaw:
    """A psycopg connection that counts the statements sent to the server (each ``execute``
    is one message and one wait for its answer)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self._raw = raw
        self.sent: list[str] = []

    def execute(self, query: Any, params: Any = None) -> Any:
        self.sent.append(str(query))
        return self._raw.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[tuple[PostgresConnection, CountingRaw]]:
    raw = psycopg.connect(postgres.new_database(), autocommit=True)
    counting = CountingRaw(raw)
    connection = PostgresConnection(raw)
    connection.raw = counting  # type: ignore[assignment]
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    counting.sent.clear()
    yield connection, counting
    raw.close()


def rows(connection: PostgresConnection) -> list[tuple[int, str]]:
    return [tuple(r) for r in connection.execute("SELECT id, note FROM t ORDER BY id").fetchall()]


def test_a_unit_of_work_of_one_statement_costs_two_round_trips_not_five(db: Any) -> None:
    connection, counting = db
    connection.execute(BEGIN)
    connection.execute("SAVEPOINT job1")
    assert connection.in_transaction  # held back, but as good as open
    connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (1, "one"))
    connection.execute("RELEASE job1")
    connection.execute("COMMIT")
    assert not connection.in_transaction
    assert counting.sent == [
        THEN.join([BEGIN, "SAVEPOINT job1"]),
        "INSERT INTO t (id, note) VALUES (%s, %s)",
        THEN.join(["RELEASE job1", "COMMIT"]),
    ]
    assert rows(connection) == [(1, "one")]


def test_a_statement_without_parameters_goes_with_what_was_held_and_answers_for_itself(
    db: Any,
) -> None:
    connection, counting = db
    connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (7, "seven"))
    counting.sent.clear()
    connection.execute(BEGIN)
    connection.execute("SAVEPOINT job1")
    found = connection.execute("SELECT note FROM t WHERE id = 7").fetchall()
    assert found == [("seven",)]  # the SELECT's rows, not the BEGIN's empty answer
    assert counting.sent == [
        THEN.join([BEGIN, "SAVEPOINT job1", "SELECT note FROM t WHERE id = 7"])
    ]
    connection.execute("RELEASE job1")
    connection.execute("COMMIT")


def test_a_failed_statement_rolls_back_to_its_savepoint_and_the_rest_commits(db: Any) -> None:
    connection, _ = db
    connection.execute(BEGIN)
    connection.execute("SAVEPOINT job1")
    connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (1, "kept"))
    connection.execute("RELEASE job1")
    connection.execute("SAVEPOINT job2")
    connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (2, "gone"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (1, "clash"))
    connection.execute("ROLLBACK TO job2")
    connection.execute("RELEASE job2")
    connection.execute("COMMIT")
    assert rows(connection) == [(1, "kept")]


def test_an_error_in_a_held_statement_is_raised_by_the_statement_it_went_with(db: Any) -> None:
    connection, _ = db
    connection.execute(BEGIN)
    connection.execute("RELEASE never_made")  # no such savepoint: held, not yet an error
    with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
        connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (3, "three"))
    connection.execute("ROLLBACK")
    assert not connection.in_transaction
    assert rows(connection) == []


def test_a_comment_at_the_end_of_a_held_statement_hides_nothing_after_it(db: Any) -> None:
    connection, _ = db
    connection.execute(f"{BEGIN} -- the writer's batch")
    connection.execute("INSERT INTO t (id, note) VALUES (5, 'five')")
    connection.execute("COMMIT")
    assert rows(connection) == [(5, "five")]


def test_a_rollback_with_the_begin_still_held_leaves_nothing_open(db: Any) -> None:
    connection, _ = db
    connection.execute(BEGIN)
    connection.execute("SAVEPOINT job1")
    connection.execute("ROLLBACK")
    assert not connection.in_transaction
    connection.execute("INSERT INTO t (id, note) VALUES (?, ?)", (4, "alone"))  # autocommits
    assert rows(connection) == [(4, "alone")]

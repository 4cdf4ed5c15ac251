"""The ``posintegrator`` commands for running a deployment: backing up and checking the store
file (``store``), and the streams of events to the cloud that are stuck (``streams``).

``store`` works on the database file itself, safely while a host runs; ``streams`` asks the
running host through its API, like ``orders``. The options of an operator's action and the
call-then-print of an API command are here too, shared with those of ``cli``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from posintegrator.cli_common import (
    api_options,
    api_target,
    fail,
    fetch,
    print_json,
    settings_or_fail,
)
from posintegrator.store.backup import BackupError, backup, check


def operator_options(recorded: str) -> Callable[[Any], Any]:
    """The options of a command an operator acts with: --operator (required) and --note, each
    "recorded ``recorded``" (say, "in the history") in their help."""

    def add(func: Any) -> Any:
        func = click.option("--note", default=None, help=f"Why, recorded {recorded}.")(func)
        func = click.option("--operator", required=True, help=f"Your name, recorded {recorded}.")(
            func
        )
        return func

    return add


def call_and_print(
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
    path: str,
    show: Callable[[Any], None],
    body: dict[str, Any] | None = None,
) -> None:
    """Call ``path`` of the API that --config, --url and --token name (POST ``body`` if
    given, else GET) and print its answer: as JSON with --json, else with ``show``."""
    api, key = api_target(config, url, token)
    result = fetch(api, key, path, "GET" if body is None else "POST", body)
    if as_json:
        print_json(result)
    else:
        show(result)


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def _store_options(func: Any) -> Any:
    func = click.option(
        "--secrets-dir", type=click.Path(path_type=Path, file_okay=False), default=None
    )(func)
    func = click.option(
        "--db",
        "db",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="The database file itself (instead of --config).",
    )(func)
    func = click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Settings file of the host (its store.path is used).",
    )(func)
    return func


def _store_path(config: Path | None, db: Path | None, secrets_dir: Path | None) -> Path:
    if (config is None) == (db is None):
        fail("give either --config FILE (the host's settings) or --db FILE (the database file)")
    if db is not None:
        return db
    assert config is not None
    store = settings_or_fail(config, secrets_dir).store
    if store.url is not None:
        fail(
            "store.url: this host's store is PostgreSQL; back it up and check it with "
            "PostgreSQL's own tools (pg_dump, pg_amcheck), see docs/scaling.md"
        )
    return store.path


@click.group("store")
def store_group() -> None:
    """The store file: back it up, check it."""


@store_group.command("backup")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_store_options
def store_backup(
    file: Path, config: Path | None, db: Path | None, secrets_dir: Path | None
) -> None:
    """Back up the store to the new FILE, safely while the host runs.

    Uses SQLite's online backup: FILE holds the store as it was when the backup started, checked
    and complete. Restore it with the host stopped (docs/deployer-guide.md#backup-and-restore).
    """
    source = _store_path(config, db, secrets_dir)
    try:
        result = backup(source, file)
    except BackupError as exc:
        fail(str(exc))
    click.secho(
        f"Backed up {source} to {result.path}: {_megabytes(result.bytes)}, schema version "
        f"{result.schema_version}, in {result.seconds:.1f}s",
        fg="green",
    )


@store_group.command("check")
@_store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def store_check(
    config: Path | None, db: Path | None, secrets_dir: Path | None, as_json: bool
) -> None:
    """Check the store file (or a backup of it): integrity, schema version, row counts.

    Changes nothing, safe while the host runs. Exits 1 when the file cannot be trusted.
    """
    path = _store_path(config, db, secrets_dir)
    try:
        report = check(path)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except sqlite3.DatabaseError as exc:
        fail(f"{path} cannot be read as a SQLite database: {exc}")
    if as_json:
        print_json(
            {
                "path": str(report.path),
                "ok": report.ok,
                "problems": report.problems,
                "integrity": report.integrity,
                "schema_version": report.schema_version,
                "schema": report.schema,
                "rows": report.rows,
                "file_bytes": report.file_bytes,
                "free_bytes": report.free_bytes,
                "journal_mode": report.journal_mode,
                "waiting_events": report.waiting_events,
            }
        )
    else:
        verdict = click.style("OK", fg="green") if report.ok else click.style("PROBLEM", fg="red")
        click.echo(f"{path}: {verdict}")
        integrity = "ok" if report.integrity == ["ok"] else "PROBLEMS (below)"
        click.echo(f"  integrity: {integrity}")
        note = {"older": "older; migrated when a host opens it"}.get(report.schema, report.schema)
        click.echo(f"  schema: version {report.schema_version} ({note})")
        click.echo(
            f"  file: {_megabytes(report.file_bytes)}, {_megabytes(report.free_bytes)} free for "
            f"reuse; journal mode {report.journal_mode}"
        )
        if report.waiting_events is not None:
            click.echo(f"  events waiting for delivery: {report.waiting_events}")
        click.echo("  rows: " + ", ".join(f"{name} {n}" for name, n in report.rows.items()))
        for problem in report.problems:
            click.secho(f"problem: {problem}", fg="red", err=True)
    if not report.ok:
        raise SystemExit(1)


@click.group("streams")
def streams_group() -> None:
    """Streams of events to the cloud whose head event fails: list, retry, skip."""


@streams_group.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@api_options
def streams_list(
    limit: int, config: Path | None, url: str | None, token: str | None, as_json: bool
) -> None:
    """List the streams whose head event failed, the longest waiting first."""
    call_and_print(config, url, token, as_json, f"/v1/streams?limit={limit}", _print_streams)


def _print_streams(listing: dict[str, Any]) -> None:
    if not listing["streams"]:
        click.echo("no stream waits on a failed event")
    for stream in listing["streams"]:
        flag = click.style("  STUCK", fg="red") if stream["stuck"] else ""
        click.echo(
            f"{stream['stream']}  event {stream['sequence']} {stream['event_id']}  "
            f"waiting {stream['age_seconds']:.0f}s  {stream['attempts']} failed  "
            f"{stream['waiting']} queued{flag}"
        )
        click.echo(f"    last answer: {stream['last_error']}")


def _print_result(result: dict[str, Any]) -> None:
    head = result["head"]
    click.secho(f"{result['stream']}: {result['action']} of event {result['event_id']}", bold=True)
    if head is None:
        click.echo("  nothing else waits in this stream")
    else:
        click.echo(
            f"  head now: event {head['sequence']} {head['event_id']}, next attempt "
            f"{head['next_attempt_at']}"
        )


@streams_group.command("retry")
@click.argument("stream")
@operator_options("with the action")
@api_options
def streams_retry(
    stream: str,
    operator: str,
    note: str | None,
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Try the head event of STREAM (order:<id> or menu:<location>) now."""
    path = f"/v1/streams/{quote(stream, safe=':')}/retry"
    body = {"operator": operator, "note": note}
    call_and_print(config, url, token, as_json, path, _print_result, body)


@streams_group.command("skip")
@click.argument("stream")
@click.option("--event-id", required=True, help="The head event to skip, as listed.")
@operator_options("with the action")
@api_options
def streams_skip(
    stream: str,
    event_id: str,
    operator: str,
    note: str | None,
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Skip the head event of STREAM: it is never delivered; the events behind it follow.

    The cloud sees a gap in the stream's sequence numbers where the event was.
    """
    path = f"/v1/streams/{quote(stream, safe=':')}/skip"
    body = {"operator": operator, "note": note, "event_id": event_id}
    call_and_print(config, url, token, as_json, path, _print_result, body)

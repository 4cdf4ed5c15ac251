"""What the ``posintegrator`` commands share: failing with a message, printing JSON, reading
the settings, and calling a running host's API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import click
import orjson

from posintegrator.apiclient import ApiError, call_json
from posintegrator.settings import HostSettings, SettingsError, load_settings


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def fail(message: str, hint: str | None = None) -> NoReturn:
    """Say what went wrong (and what to do) on standard error, and exit with status 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    if hint:
        click.echo(hint, err=True)
    sys.exit(1)


def settings_or_fail(config: Path, secrets_dir: Path | None) -> HostSettings:
    """The settings in ``config``, or exit with every problem they have."""
    try:
        return load_settings(config, secrets_dir=secrets_dir)
    except SettingsError as exc:
        fail(
            "the settings cannot be used:\n" + "\n".join(f"  {p}" for p in exc.problems),
            f"check them with: posintegrator config check {config}",
        )


def api_target(config: Path | None, url: str | None, token: str | None) -> tuple[str, str | None]:
    """The API URL and token to use: given ones, else those of the settings, else defaults."""
    if config is not None:
        try:
            settings = load_settings(config)
        except SettingsError as exc:
            fail(str(exc))
        api = settings.api
        url = url or f"http://{api.host}:{api.port}"
        if token is None and api.token is not None:
            token = api.token.get_secret_value()
    return url or "http://127.0.0.1:8080", token or os.environ.get("POSINTEGRATOR_API_TOKEN")


def api_options(func: Any) -> Any:
    """The options of a command that calls a running host: --config, --url, --token, --json."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    func = click.option("--token", default=None, help="API token (default: from --config or env).")(
        func
    )
    func = click.option("--url", default=None, help="API URL (default: from --config).")(func)
    func = click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Settings file of the host (for its URL and token).",
    )(func)
    return func


def fetch(url: str, token: str | None, path: str, method: str = "GET", body: Any = None) -> Any:
    """Call the API of the host at ``url``; its JSON answer, or exit saying what went wrong."""
    try:
        return asyncio.run(call_json(method, url, token, path, body))
    except ApiError as exc:
        fail(exc.detail, "check the id or location, and the token" if exc.status < 500 else None)
    except aiohttp.ClientError as exc:
        fail(f"cannot reach the API at {url}: {exc}", "is the host running? (posintegrator serve)")

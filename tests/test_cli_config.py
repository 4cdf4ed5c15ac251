"""The real ``posintegrator`` command, run as a subprocess: ``config check`` and ``plugins``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

from pos_demo.plugin import pos_capabilities

GOOD_TOML = """\
[api]
port = 8123
token = "tok-SECRET-1111"

[cloud]
webhook_secrets = ["whsec_aG9vay1TRUNSRVQtMjIyMiBvZiAzMiBieXRlcyBvaw=="]

[[connections]]
name = "main"
plugin = "demo"
locations = ["loc-1", "loc-2"]
settings = { base_url = "http://127.0.0.1:8765", api_key = "key-SECRET-3333" }
"""

# connections[1] has a bad URL, connections[2] a plugin that is not installed.
BAD_CONNECTIONS_TOML = """\
[api]
port = {port}
token = "tok-SECRET-1111"

[[connections]]
name = "main"
plugin = "demo"
locations = ["loc-1"]
settings = {{ base_url = "http://127.0.0.1:8765", api_key = "key-SECRET-3333" }}

[[connections]]
name = "broken-url"
plugin = "demo"
locations = ["loc-2"]
settings = {{ base_url = "not a url", api_key = "key-SECRET-4444" }}

[[connections]]
name = "ghost"
plugin = "nosuchpos"
locations = ["loc-3"]
"""

SECRETS = (
    "tok-SECRET-1111",
    "whsec_aG9vay1TRUNSRVQtMjIyMiBvZiAzMiBieXRlcyBvaw==",
    "hook-SECRET-2222",
    "key-SECRET-3333",
    "key-SECRET-4444",
)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


Cli = Callable[..., Run]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("POSINTEGRATOR_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # stevedore's entry-point cache
    env["NO_COLOR"] = "1"

    def run(*args: str) -> Run:
        done = subprocess.run(
            [sys.executable, "-m", "posintegrator.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def write(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_secret(text: str) -> None:
    for value in SECRETS:
        assert value not in text


def test_config_check_accepts_a_good_file(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_TOML)

    run = cli("config", "check", str(path))

    assert run.code == 0, run.output
    assert f"{path}: OK (1 connection(s), 2 location(s))" in run.stdout
    assert "problem" not in run.output
    assert_no_secret(run.output)


def test_config_check_reports_every_connection_problem(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, BAD_CONNECTIONS_TOML.format(port=8123))

    run = cli("config", "check", str(path))

    assert run.code == 1
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    [url_line] = [line for line in lines if "connections[1].settings.base_url" in line]
    assert url_line.startswith(f"{path}: connections[1].settings.base_url: invalid URL")
    [plugin_line] = [line for line in lines if "connections[2].plugin" in line]
    assert "'nosuchpos'" in plugin_line
    assert "not installed" in plugin_line
    assert "connections[0]" not in run.stderr
    assert lines[-1] == "2 problem(s) found"
    assert_no_secret(run.output)


def test_config_check_reports_a_bad_port(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_TOML.replace("port = 8123", "port = 70000"))

    run = cli("config", "check", str(path))

    assert run.code == 1
    assert f"{path}: api.port: " in run.stderr
    assert "65535" in run.stderr
    assert_no_secret(run.output)


def test_config_check_reports_host_and_connection_problems_together(
    cli: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path, BAD_CONNECTIONS_TOML.format(port=70000))

    run = cli("config", "check", str(path))

    assert run.code == 1
    assert "api.port" in run.stderr
    assert "connections[1].settings.base_url: invalid URL" in run.stderr
    assert "connections[2].plugin" in run.stderr


def test_config_check_json(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, BAD_CONNECTIONS_TOML.format(port=8123))

    run = cli("config", "check", "--json", str(path))

    assert run.code == 1
    report = json.loads(run.stdout)
    assert report["ok"] is False
    problems = {p["path"]: p["message"] for p in report["problems"]}
    assert set(problems) == {"connections[1].settings.base_url", "connections[2].plugin"}
    assert problems["connections[1].settings.base_url"].startswith("invalid URL")
    assert "nosuchpos" in problems["connections[2].plugin"]
    assert_no_secret(run.output)

    good = cli("config", "check", "--json", str(write(tmp_path, GOOD_TOML, "good.toml")))

    assert good.code == 0, good.output
    assert json.loads(good.stdout) == {"ok": True, "problems": []}


def test_config_check_with_secrets_dir_and_missing_token(cli: Cli, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "main").mkdir(parents=True)
    (secrets / "main" / "api_key").write_text("key-SECRET-3333\n", encoding="utf-8")
    (secrets / "main" / "webhook_secret").write_text("hook-SECRET-2222\n", encoding="utf-8")
    # No token, and a misspelt key in the plugin settings.
    text = GOOD_TOML.replace('token = "tok-SECRET-1111"\n', "").replace(
        ', api_key = "key-SECRET-3333"', ", timeout = 5"
    )
    path = write(tmp_path, text)

    run = cli("config", "check", "--json", "--secrets-dir", str(secrets), str(path))

    assert run.code == 1
    problems = {p["path"]: p["message"] for p in json.loads(run.stdout)["problems"]}
    assert set(problems) == {"connections[0].settings.timeout", "api.token"}
    assert problems["connections[0].settings.timeout"].startswith("unknown setting")
    assert "POSINTEGRATOR_API_TOKEN" in problems["api.token"]
    assert_no_secret(run.output)


def test_plugins_json_lists_the_demo_plugin(cli: Cli) -> None:
    run = cli("plugins", "--json")

    assert run.code == 0, run.output
    rows = {row["name"]: row for row in json.loads(run.stdout)}
    demo = rows["demo"]
    assert demo["version"] == version("posintegrator-pos-demo")
    assert demo["capabilities"] == pos_capabilities().model_dump(mode="json")
    assert demo["capabilities"]["orders"] is True

"""No secret leaks: the whole flow (the demo POS, the Square double, signed cloud webhooks, bad
requests and refused credentials) runs with known secret values, and none of them may appear in
any log line, any answer of the API, or the host's database. Files the host writes holding a
credential are readable by their owner only.

This lives with the Square plugin's tests because it needs the Square double; the demo POS is
installed in every test environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from loguru import logger
from pos_demo.simulator import SimulatorConfig, start_simulator
from pos_demo.simulator import sign_webhook as sign_demo_webhook
from squaredouble import sign, start_double
from test_integration import kitchen

from posintegrator.cloud.signatures import generate_secret
from posintegrator.demo import prepare_data_dir, write_demo_config
from posintegrator.model import OrderStatus
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import running_host, sample_order

DEMO_KEY = "demo-api-key-SECRET-5d1c"
DEMO_WEBHOOK_SECRET = "demo-webhook-SECRET-9f2a"
WRONG_DEMO_KEY = "wrong-demo-key-SECRET-77e0"
SQUARE_TOKEN = "EAAA-square-token-SECRET-31b7"
SQUARE_SIGNATURE_KEY = "square-signature-SECRET-c4d8"
SQUARE_OAUTH_TOKEN = "EAAA-square-oauth-token-SECRET-6a1f"
SQUARE_REFRESH_TOKEN = "square-refresh-SECRET-e07b"
SQUARE_APP = ("sq0idp-secrets-test", "sq0csp-app-SECRET-2b94")
CLOUD_SECRET = generate_secret()


@contextlib.contextmanager
def all_logs() -> Iterator[list[str]]:
    """Every log line written meanwhile, at every level: loguru's and the standard library's
    (aiohttp and plugins' vendor libraries log there), exceptions with their tracebacks."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="TRACE",
        format="{level} {name} {message} {extra} {exception}",
        backtrace=True,
        diagnose=True,
    )

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logging.Formatter().format(record))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        logger.remove(sink)


#: Access tokens the Square double issued by ObtainToken during the test.
ISSUED: list[str] = []


def secrets(api_token: str) -> list[str]:
    return [
        *ISSUED,
        SQUARE_OAUTH_TOKEN,
        SQUARE_REFRESH_TOKEN,
        SQUARE_APP[1],
        DEMO_KEY,
        DEMO_WEBHOOK_SECRET,
        WRONG_DEMO_KEY,
        SQUARE_TOKEN,
        SQUARE_SIGNATURE_KEY,
        CLOUD_SECRET,
        CLOUD_SECRET.removeprefix("whsec_"),
        api_token,
    ]


def _read_store(folder: Path) -> bytes:
    """The database file and whatever its write-ahead log still holds."""
    return b"".join(path.read_bytes() for path in folder.glob("host.db*") if path.is_file())


def leaks(text: str, api_token: str) -> list[str]:
    return [secret for secret in secrets(api_token) if secret in text]


async def test_no_secret_in_logs_answers_or_the_database(tmp_path: Path) -> None:
    demo = await start_simulator(
        SimulatorConfig(data_dir=tmp_path / "pos", api_key=DEMO_KEY, stage_seconds=0.1)
    )
    double = await start_double(
        access_tokens=[SQUARE_TOKEN, SQUARE_OAUTH_TOKEN],
        signature_key=SQUARE_SIGNATURE_KEY,
        refresh_tokens=[SQUARE_REFRESH_TOKEN],
        oauth_application=SQUARE_APP,
    )
    ISSUED[:] = []
    cooking = asyncio.create_task(kitchen(double))
    connections = [
        ConnectionSettings(
            name="demo",
            plugin="demo",
            locations=["downtown"],
            status_source="webhook",
            settings={
                "base_url": demo.url,
                "api_key": DEMO_KEY,
                "webhook_secret": DEMO_WEBHOOK_SECRET,
            },
        ),
        ConnectionSettings(
            name="demo-wrong-key",
            plugin="demo",
            locations=["airport"],
            settings={"base_url": demo.url, "api_key": WRONG_DEMO_KEY},
        ),
        ConnectionSettings(
            name="square",
            plugin="square",
            locations=[double.location_ids[0]],
            status_source="webhook",
            settings={
                "base_url": double.url,
                "access_token": SQUARE_TOKEN,
                "webhook_signature_key": SQUARE_SIGNATURE_KEY,
                "request_timeout_seconds": 2.0,
            },
        ),
        # An OAuth connection: its token is renewed (ObtainToken), kept, and renewed again
        # when Square calls it expired; then the seller revokes the app and renewal is refused.
        ConnectionSettings(
            name="square-oauth",
            plugin="square",
            locations=[double.location_ids[1]],
            settings={
                "base_url": double.url,
                "access_token": SQUARE_OAUTH_TOKEN,
                "refresh_token": SQUARE_REFRESH_TOKEN,
                "application_id": SQUARE_APP[0],
                "application_secret": SQUARE_APP[1],
                "request_timeout_seconds": 2.0,
            },
        ),
    ]

    async def point_webhooks(host: Any) -> None:
        demo.set_webhook(host.connections["demo"].connection.ctx.webhook_url, DEMO_WEBHOOK_SECRET)
        double.double.webhooks.notification_url = host.connections[
            "square"
        ].connection.ctx.webhook_url

    answers: list[str] = []
    try:
        with all_logs() as lines:
            async with running_host(
                tmp_path, connections, after_start=point_webhooks, cloud_secrets=[CLOUD_SECRET]
            ) as harness:
                api_token = harness.client.headers["Authorization"].removeprefix("Bearer ")
                for location in ("downtown", double.location_ids[0]):
                    menu = await harness.wait_for_menu(location)
                    order = sample_order(menu, f"secret-{location}")
                    status, body = await harness.post_order(order)
                    answers.append(orjson.dumps(body).decode())
                    assert status == 202, body
                    await harness.wait_for_status(order["id"], {OrderStatus.COMPLETED}, timeout=30)
                # The cloud heard of them through signed webhooks.
                await harness.wait_for_events(
                    lambda events: sum(e.get("status") == "COMPLETED" for e in events) == 2
                )
                # The OAuth connection renewed its token for its first sync; renew again.
                oauth_sync = harness.host.connections["square-oauth"].menusync
                double.double.expire(double.double.tokens.issued[-1])
                await oauth_sync.sync(double.location_ids[1])
                double.double.tokens.revoke_refresh_token(SQUARE_REFRESH_TOKEN)
                double.double.expire(double.double.tokens.issued[-1])
                with contextlib.suppress(Exception):
                    await oauth_sync.sync(double.location_ids[1])
                ISSUED[:] = double.double.tokens.issued
                assert len(ISSUED) == 2, ISSUED
                # The connection with a wrong key fails its menu sync (an auth error logged).
                with contextlib.suppress(Exception):
                    await harness.host.connections["demo-wrong-key"].menusync.sync("airport")
                # Refused requests: wrong tokens, forged and bad webhooks, bad orders.
                async with aiohttp.ClientSession() as anonymous:
                    for path, headers, body in (
                        ("/v1/plugins", {"Authorization": f"Bearer {DEMO_KEY}"}, None),
                        ("/v1/orders", {"Authorization": "Bearer nope"}, b"{}"),
                        (
                            "/pos/demo/webhook",
                            {"X-DemoPOS-Signature": sign_demo_webhook("guess", b"{}")},
                            b"{}",
                        ),
                        (
                            "/pos/square/webhook",
                            {"X-Square-HmacSha256-Signature": sign("guess", "u", b"{}")},
                            b"{}",
                        ),
                    ):
                        method = "GET" if body is None else "POST"
                        async with anonymous.request(
                            method, harness.url + path, headers=headers, data=body
                        ) as response:
                            answers.append(await response.text())
                            assert response.status in (400, 401), path
                for bad in ({"id": "x"}, {**order, "lines": []}):
                    status, body = await harness.post_order(bad)
                    answers.append(orjson.dumps(body).decode())
                    assert status == 422
                for path in ("/v1/connections", "/v1/plugins", "/openapi.json"):
                    status, body = await harness.request("GET", path)
                    answers.append(orjson.dumps(body).decode())
                    assert status == 200
                connections_view = answers[-3]
                assert connections_view.count("auth_failed") >= 2, connections_view
                # The cloud's copies of what the host signed, headers included.
                for delivery in harness.receiver.deliveries:
                    answers.append(f"{delivery.headers!r} {delivery.body!r}")
            store_bytes = _read_store(tmp_path)
    finally:
        cooking.cancel()
        await double.close()
        await demo.close()

    assert len(lines) > 20, "the logs were captured"
    assert any("auth" in line.lower() for line in lines), "the refused key was logged about"
    assert any("refused to renew" in line for line in lines), "the refused renewal too"
    leaked = {line: leaks(line, api_token) for line in lines if leaks(line, api_token)}
    assert not leaked, f"secrets in log lines: {leaked}"
    leaked = {answer: leaks(answer, api_token) for answer in answers if leaks(answer, api_token)}
    assert not leaked, f"secrets in API answers: {leaked}"
    stored = store_bytes.decode("latin-1")
    assert "secret-downtown" in stored, "the store was read"
    assert not leaks(stored, api_token), "secrets in the database"


def test_settings_errors_never_echo_a_secret(tmp_path: Path) -> None:
    config = tmp_path / "host.toml"
    config.write_text(
        f"""
[api]
token = 12345

[cloud]
webhook_url = "http://127.0.0.1:9/hook"
webhook_secrets = ["{DEMO_WEBHOOK_SECRET}"]

[[connections]]
name = "square"
plugin = "square"
locations = ["L1"]

[connections.settings]
base_url = "not a url"
access_token = "{SQUARE_TOKEN}"
webhook_signature_key = ["{SQUARE_SIGNATURE_KEY}"]
""",
        encoding="utf-8",
    )
    run = subprocess.run(
        [sys.executable, "-m", "posintegrator.cli", "config", "check", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "POSINTEGRATOR_LOG_LEVEL": "DEBUG"},
    )
    assert run.returncode == 1
    output = run.stdout + run.stderr
    assert "cloud.webhook_secrets" in output and "base_url" in output, output
    assert not leaks(output, "unused-token"), output


def test_credential_files_the_host_writes_are_owner_only(tmp_path: Path) -> None:
    values, _ = prepare_data_dir(tmp_path / "demo")
    config = write_demo_config(
        tmp_path / "demo", 0, values, "http://127.0.0.1:1", "http://127.0.0.1:2/hook"
    )
    for path in (tmp_path / "demo" / "demo-secrets.json", config):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path.name} has mode {oct(mode)}"

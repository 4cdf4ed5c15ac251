"""OAuth access tokens the plugin renews (ObtainToken with the refresh token), against the Square
double, which issues tokens with an expiry, expires them on demand and serves ObtainToken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from cryptography.fernet import Fernet
from loguru import logger
from pydantic import SecretStr, ValidationError
from squaredouble import RunningDouble, start_double

import pos_square.plugin
from pos_square.oauth import TOKEN_STATE_KEY, _key_from
from pos_square.settings import SquareSettings
from posintegrator.context import ConnectionContext
from posintegrator.errors import AuthError
from posintegrator.hookspecs import hookimpl
from posintegrator.plugins import PluginHost
from posintegrator.settings import ConnectionSettings
from posintegrator.testing import running_host

APP = ("sq0idp-test-app", "sq0csp-app-SECRET-8d2e")
REFRESH = "refresh-token-SECRET-41aa"
FIRST = "EAAA-first-token-SECRET-0c9b"


class MemoryState:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


class AlertLog:
    """An extension plugin that records connection alerts."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, str, str]] = []

    @hookimpl
    def posintegrator_connection_alert(self, connection: str, kind: str, message: str) -> None:
        self.alerts.append((connection, kind, message))


@pytest.fixture
async def double() -> AsyncIterator[RunningDouble]:
    running = await start_double(
        variations=12, access_tokens=[FIRST], refresh_tokens=[REFRESH], oauth_application=APP
    )
    try:
        yield running
    finally:
        await running.close()


def oauth_settings(double: RunningDouble, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": double.url,
        "access_token": FIRST,
        "refresh_token": REFRESH,
        "application_id": APP[0],
        "application_secret": APP[1],
        "request_timeout_seconds": 5.0,
        **extra,
    }


def context(
    double: RunningDouble, http: aiohttp.ClientSession, state: MemoryState, **extra: Any
) -> ConnectionContext:
    return ConnectionContext(
        name="square-oauth",
        plugin="square",
        locations=(double.location_ids[0],),
        settings=SquareSettings(**oauth_settings(double, **extra)),
        http=http,
        log=logger,
        state=state,
        webhook_url="http://127.0.0.1:9/pos/square-oauth/webhook",
    )


def oauth_key() -> bytes:
    return _key_from(SecretStr(APP[1]))


def obtain_token_calls(double: RunningDouble) -> int:
    return sum(path == "/oauth2/token" for _, path, _ in double.double.requests)


async def test_a_token_near_its_expiry_is_renewed_before_the_call(double: RunningDouble) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    double.double.tokens.expires[FIRST] = soon  # still good: Square would take it for an hour
    state = MemoryState()
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, state, access_token_expires_at=soon)
        await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
        await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
    issued = double.double.tokens.issued
    assert len(issued) == 1 and obtain_token_calls(double) == 1
    assert FIRST not in double.double.tokens.used, "the expiring token was renewed first"
    assert set(double.double.tokens.used) == {issued[0]}
    kept = state.values[TOKEN_STATE_KEY]
    assert issued[0] not in kept and REFRESH not in kept, "kept encrypted"
    double.assert_clean()


async def test_a_token_with_time_left_is_used_as_configured(double: RunningDouble) -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, MemoryState(), access_token_expires_at=later)
        await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
    assert obtain_token_calls(double) == 0
    assert set(double.double.tokens.used) == {FIRST}


async def test_a_short_lived_token_is_renewed_at_half_its_life_not_at_every_call(
    double: RunningDouble,
) -> None:
    double.double.tokens.token_lifetime = timedelta(hours=24)  # within the 23-day margin
    state = MemoryState()
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, state)
        for _ in range(3):
            await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
        assert obtain_token_calls(double) == 1
        # Past half its life (as kept in the state after a restart), it is renewed.
        record = orjson.loads(Fernet(oauth_key()).decrypt(state.values[TOKEN_STATE_KEY]))
        record["issued_at"] = (datetime.now(UTC) - timedelta(hours=13)).isoformat()
        record["expires_at"] = (datetime.now(UTC) + timedelta(hours=11)).isoformat()
        state.values[TOKEN_STATE_KEY] = Fernet(oauth_key()).encrypt(orjson.dumps(record)).decode()
        async with aiohttp.ClientSession() as other_http:
            await pos_square.plugin.pos_fetch_menu(
                context(double, other_http, state), double.location_ids[0]
            )
    assert obtain_token_calls(double) == 2


async def test_a_token_square_calls_expired_is_renewed_and_the_call_sent_again(
    double: RunningDouble,
) -> None:
    double.double.expire(FIRST)
    later = datetime.now(UTC) + timedelta(days=30)  # what we were told; Square knows better
    state = MemoryState()
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, state, access_token_expires_at=later)
        menu = await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
        assert menu.products
        double.double.expire(double.double.tokens.issued[-1])
        await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
    assert obtain_token_calls(double) == 2
    assert double.double.tokens.used[-1] == double.double.tokens.issued[-1]


async def test_calls_needing_a_refresh_at_once_share_one_obtain_token(
    double: RunningDouble,
) -> None:
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, MemoryState())  # expiry unknown: renewed before first use
        location = double.location_ids[0]
        await asyncio.gather(*(pos_square.plugin.pos_fetch_menu(ctx, location) for _ in range(5)))
    assert obtain_token_calls(double) == 1
    assert set(double.double.tokens.used) == set(double.double.tokens.issued)


async def test_a_rotated_refresh_token_is_kept_and_used_next(double: RunningDouble) -> None:
    double.double.tokens.rotate_refresh_tokens = True
    state = MemoryState()
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, state)
        await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
        assert REFRESH not in double.double.tokens.refresh_tokens, "Square rotated it"
        double.double.expire(double.double.tokens.issued[-1])
        # Another process (a restart) reading the same state renews with the rotated one.
        async with aiohttp.ClientSession() as other_http:
            other = context(double, other_http, state)
            await pos_square.plugin.pos_fetch_menu(other, double.location_ids[0])
    assert obtain_token_calls(double) == 2
    assert len(double.double.tokens.issued) == 2


async def test_a_refused_refresh_is_an_auth_error_that_names_what_to_do(
    double: RunningDouble,
) -> None:
    double.double.tokens.revoke_refresh_token(REFRESH)
    async with aiohttp.ClientSession() as http:
        ctx = context(double, http, MemoryState())
        with pytest.raises(AuthError) as caught:
            await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
    message = caught.value.message
    assert "refresh_token" in message and "authorize the seller again" in message
    assert REFRESH not in message and APP[1] not in message
    assert FIRST not in double.double.tokens.used, "no call went out with an unchecked token"


async def test_a_personal_access_token_is_never_refreshed(double: RunningDouble) -> None:
    async with aiohttp.ClientSession() as http:
        ctx = ConnectionContext(
            name="square-pat",
            plugin="square",
            locations=(double.location_ids[0],),
            settings=SquareSettings(base_url=double.url, access_token=FIRST),
            http=http,
            log=logger,
            state=MemoryState(),
            webhook_url="http://127.0.0.1:9/pos/square-pat/webhook",
        )
        await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
        double.double.expire(FIRST)
        with pytest.raises(AuthError):
            await pos_square.plugin.pos_fetch_menu(ctx, double.location_ids[0])
    assert obtain_token_calls(double) == 0


def test_refreshing_needs_the_refresh_token_and_the_application_together() -> None:
    with pytest.raises(ValidationError) as caught:
        SquareSettings(access_token=FIRST, refresh_token=REFRESH, application_id=APP[0])
    text = str(caught.value)
    assert "application_secret missing" in text
    assert REFRESH not in text


def read_store(folder: Path) -> bytes:
    """The host's database file and whatever its write-ahead log still holds."""
    return b"".join(path.read_bytes() for path in folder.glob("host.db*") if path.is_file())


def connection(double: RunningDouble) -> ConnectionSettings:
    return ConnectionSettings(
        name="square",
        plugin="square",
        locations=[double.location_ids[0]],
        menu_sync_seconds=3600,
        settings=oauth_settings(double),
    )


async def test_a_restart_keeps_the_renewed_token(tmp_path: Path, double: RunningDouble) -> None:
    location = double.location_ids[0]
    plugins = PluginHost.from_objects({"square": pos_square.plugin})
    async with running_host(tmp_path, [connection(double)], plugins=plugins) as harness:
        await harness.wait_for_menu(location)
    assert obtain_token_calls(double) == 1
    renewed = double.double.tokens.issued[0]
    double.double.expire(FIRST)  # only the renewed token can work now
    plugins = PluginHost.from_objects({"square": pos_square.plugin})
    async with running_host(tmp_path, [connection(double)], plugins=plugins) as harness:
        await harness.host.connections["square"].menusync.sync(location)
        _, body = await harness.request("GET", "/v1/connections")
    assert obtain_token_calls(double) == 1, "the kept token was used, not renewed again"
    assert double.double.tokens.used[-1] == renewed
    assert body["connections"][0]["health"] == "ok"
    assert renewed.encode() not in read_store(tmp_path), "the token is kept encrypted"


async def test_a_refused_refresh_raises_a_connection_alert(
    tmp_path: Path, double: RunningDouble
) -> None:
    double.double.tokens.revoke_refresh_token(REFRESH)
    alerts = AlertLog()
    plugins = PluginHost.from_objects({"square": pos_square.plugin, "alerts": alerts})
    async with running_host(tmp_path, [connection(double)], plugins=plugins) as harness:
        _, body = await harness.request("GET", "/v1/connections")
        deadline = asyncio.get_running_loop().time() + 10
        while not alerts.alerts:
            assert asyncio.get_running_loop().time() < deadline, "no alert"
            await asyncio.sleep(0.02)
    assert body["connections"][0]["health"] == "auth_failed"
    (name, kind, message), *_ = alerts.alerts
    assert (name, kind) == ("square", "auth_failed")
    assert "refused to renew the access token" in message
    assert REFRESH not in message and APP[1] not in message

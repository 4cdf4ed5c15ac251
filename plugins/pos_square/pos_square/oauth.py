"""The access token a Square connection sends, kept fresh when it is an OAuth token.

A personal access token (no ``refresh_token`` configured) is sent as configured, for ever.
An OAuth access token expires (30 days); with ``refresh_token``, ``application_id`` and
``application_secret`` configured, :class:`OAuthTokens` renews it with ObtainToken
(``POST /oauth2/token``, ``grant_type: refresh_token``) once it has less than
``token_refresh_margin`` left, or at once when Square answers ``ACCESS_TOKEN_EXPIRED``.

The token in use, its expiry and the refresh token to use next (Square may return a new one)
are kept in the connection's state, encrypted (Fernet) under a key derived from the
application secret, so a restart goes on with them and the host's database holds no usable
credential. They are tied to the configured refresh token: configuring a new one (a seller
authorized again) starts over from the configured tokens.

One :class:`OAuthTokens` serves a connection for the life of its HTTP session, so concurrent
calls needing a refresh wait for one ObtainToken rather than each sending their own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from pos_square.client import error_from_response
from pos_square.settings import SquareSettings
from pos_square.tokens import AccessTokens, StaticToken
from posintegrator.context import ConnectionContext, PluginState
from posintegrator.errors import AuthError, PosError, RetryableError
from posintegrator.poshttp import json_object, send

#: ``ctx.state`` key: the encrypted token record (see :class:`IssuedToken`).
TOKEN_STATE_KEY = "square_oauth_token"  # noqa: S105 (a key name, not a secret)
OBTAIN_TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path)
#: How long an access token ObtainToken issues lasts when the answer does not say (Square's
#: documented lifetime).
DEFAULT_LIFETIME = timedelta(days=30)


@dataclass(frozen=True)
class IssuedToken:
    """An access token, when it expires (None: unknown) and the refresh token to renew it;
    ``issued_at`` when ObtainToken issued it (None for the configured one)."""

    access_token: SecretStr
    expires_at: datetime | None
    refresh_token: SecretStr
    issued_at: datetime | None = None


class OAuthTokens:
    """The OAuth access token of one connection, renewed before it expires.

    :param client_id: the application id; ``client_secret`` its secret.
    :param configured: the token, expiry and refresh token from the settings.
    :param margin_seconds: renew once less than this is left before ``expires_at`` (or half
        the token's lifetime, when that is shorter: a short-lived token is not renewed on
        every call).
    """

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        configured: IssuedToken,
        margin_seconds: float,
        timeout: aiohttp.ClientTimeout,
        max_response_bytes: int,
    ) -> None:
        self._url = base_url.rstrip("/") + OBTAIN_TOKEN_PATH
        self._client_id = client_id
        self._client_secret = client_secret
        self._configured = configured
        self._margin = margin_seconds
        self._timeout = timeout
        self._max_bytes = max_response_bytes
        self._fernet = Fernet(_key_from(client_secret))
        self._for = _fingerprint(configured.refresh_token)
        self._token: IssuedToken | None = None
        self._lock = asyncio.Lock()

    async def current_for(self, http: aiohttp.ClientSession, state: PluginState) -> str:
        """The access token to send now, renewed first when it expires within the margin."""
        token = self._token or await self._load(state)
        if self._fresh(token):
            return token.access_token.get_secret_value()
        async with self._lock:
            token = self._token or await self._load(state)
            if not self._fresh(token):
                token = await self._refresh(http, state, token)
            return token.access_token.get_secret_value()

    async def renew_for(
        self, http: aiohttp.ClientSession, state: PluginState, refused: str
    ) -> str | None:
        """A new token after Square refused ``refused`` as expired (unless another call has
        renewed it meanwhile: then that one)."""
        async with self._lock:
            token = self._token or await self._load(state)
            if token.access_token.get_secret_value() == refused:
                token = await self._refresh(http, state, token)
            return token.access_token.get_secret_value()

    def _fresh(self, token: IssuedToken) -> bool:
        """Whether ``token`` has enough time left to be sent without renewing it first."""
        if token.expires_at is None:
            return False
        margin = self._margin
        if token.issued_at is not None:
            margin = min(margin, (token.expires_at - token.issued_at).total_seconds() / 2)
        return (token.expires_at - datetime.now(UTC)).total_seconds() > margin

    async def _load(self, state: PluginState) -> IssuedToken:
        """The kept token when there is one for the configured refresh token, else the
        configured one."""
        raw = await state.get(TOKEN_STATE_KEY)
        token = self._configured
        if raw is not None:
            token = self._decrypt(raw) or token
        self._token = token
        return token

    def _decrypt(self, raw: str) -> IssuedToken | None:
        try:
            record = orjson.loads(self._fernet.decrypt(raw.encode()))
        except (InvalidToken, orjson.JSONDecodeError):
            return None  # written under another application secret, or damaged: start over
        if not isinstance(record, dict) or record.get("for") != self._for:
            return None  # kept for a refresh token no longer configured
        try:
            return IssuedToken(
                access_token=SecretStr(str(record["access_token"])),
                expires_at=datetime.fromisoformat(record["expires_at"]),
                refresh_token=SecretStr(str(record["refresh_token"])),
                issued_at=datetime.fromisoformat(record["issued_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    async def _refresh(
        self, http: aiohttp.ClientSession, state: PluginState, token: IssuedToken
    ) -> IssuedToken:
        """ObtainToken with the refresh token; keep and return the new token."""
        what = f"Square POST {OBTAIN_TOKEN_PATH} (refreshing the OAuth access token)"
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token.get_secret_value(),
        }
        reply = await send(
            http,
            "POST",
            self._url,
            what=what,
            write=False,
            timeout=self._timeout,
            max_bytes=self._max_bytes,
            json=body,
            headers={"Accept": "application/json"},
        )
        if not reply.ok:
            raise _refusal(what, reply.status, reply.body, reply.retry_after)
        document = json_object(what, reply.body, write=False)
        issued = _issued(what, document, token.refresh_token)
        record = {
            "for": self._for,
            "access_token": issued.access_token.get_secret_value(),
            "expires_at": issued.expires_at.isoformat(),
            "refresh_token": issued.refresh_token.get_secret_value(),
            "issued_at": issued.issued_at.isoformat(),
        }
        await state.set(TOKEN_STATE_KEY, self._fernet.encrypt(orjson.dumps(record)).decode())
        self._token = issued
        return issued


class _BoundTokens:
    """An :class:`OAuthTokens` with the HTTP session and state of one hook call."""

    def __init__(self, tokens: OAuthTokens, http: aiohttp.ClientSession, state: PluginState):
        self._tokens, self._http, self._state = tokens, http, state

    async def current(self) -> str:
        """See :meth:`OAuthTokens.current_for`."""
        return await self._tokens.current_for(self._http, self._state)

    async def renew(self, refused: str) -> str | None:
        """See :meth:`OAuthTokens.renew_for`."""
        return await self._tokens.renew_for(self._http, self._state, refused)


#: The token keepers of each HTTP session (one per host), by connection name.
_KEEPERS: weakref.WeakKeyDictionary[aiohttp.ClientSession, dict[str, OAuthTokens]] = (
    weakref.WeakKeyDictionary()
)


def access_tokens(ctx: ConnectionContext) -> AccessTokens:
    """The tokens a client of this connection sends: static, or renewed OAuth tokens."""
    settings = ctx.settings_as(SquareSettings)
    if (
        settings.refresh_token is None
        or settings.application_id is None
        or settings.application_secret is None
    ):
        return StaticToken(settings.access_token)
    keepers = _KEEPERS.setdefault(ctx.http, {})
    keeper = keepers.get(ctx.name)
    if keeper is None:
        keeper = keepers[ctx.name] = OAuthTokens(
            base_url=str(settings.base_url),
            client_id=settings.application_id,
            client_secret=settings.application_secret,
            configured=IssuedToken(
                settings.access_token, settings.access_token_expires_at, settings.refresh_token
            ),
            margin_seconds=settings.token_refresh_margin.total_seconds(),
            timeout=aiohttp.ClientTimeout(total=settings.request_timeout_seconds),
            max_response_bytes=ctx.max_response_bytes,
        )
    return _BoundTokens(keeper, ctx.http, ctx.state)


def _refusal(what: str, status: int, raw: bytes, retry_after: float | None) -> PosError:
    """The error for a refused ObtainToken: Square down -> retry; any other refusal means the
    authorization is gone (revoked, wrong application secret): a person must act."""
    if status == 429 or status >= 500:
        return RetryableError(f"{what}: HTTP {status}", retry_after=retry_after)
    cause = error_from_response(what, status, raw, retry_after)
    detail = getattr(cause, "message", str(cause))
    return AuthError(
        f"{detail}. Square refused to renew the access token: authorize the seller again "
        "and configure the new refresh_token (and check application_id and "
        "application_secret)"
    )


@dataclass(frozen=True)
class _Issued(IssuedToken):
    """A token ObtainToken issued: its expiry and issue time are known."""

    expires_at: datetime
    issued_at: datetime


def _issued(what: str, document: dict[str, object], used: SecretStr) -> _Issued:
    """The token ObtainToken returned (expiring after :data:`DEFAULT_LIFETIME` when Square
    does not say); the refresh token stays ``used`` unless Square sent a new one."""
    now = datetime.now(UTC)
    access = document.get("access_token")
    if not isinstance(access, str) or not access:
        raise RetryableError(f"{what}: the answer has no access_token")
    expires = document.get("expires_at")
    try:
        expires_at = datetime.fromisoformat(expires) if isinstance(expires, str) else None
    except ValueError:
        raise RetryableError(f"{what}: expires_at is not an ISO 8601 time") from None
    if expires_at is None:
        expires_at = now + DEFAULT_LIFETIME
    elif expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    rotated = document.get("refresh_token")
    refresh = SecretStr(rotated) if isinstance(rotated, str) and rotated else used
    return _Issued(SecretStr(access), expires_at, refresh, now)


def _key_from(secret: SecretStr) -> bytes:
    """The Fernet key the kept tokens are encrypted under, derived from the app secret."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"pos_square oauth token store"
    ).derive(secret.get_secret_value().encode())
    return base64.urlsafe_b64encode(key)


def _fingerprint(refresh_token: SecretStr) -> str:
    """Which configured refresh token a kept record belongs to (not the token itself)."""
    return hashlib.sha256(refresh_token.get_secret_value().encode()).hexdigest()[:16]

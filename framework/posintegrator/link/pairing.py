"""Pairing a venue agent with a hub, by a short code an operator approves (a device-code flow).

1. The agent makes its key pair and asks the hub to pair: ``POST /v1/link/pairings`` with its
   public key. The hub answers with a short one-time code (shown to the person installing the
   agent) and a long poll token (kept by the agent).
2. An operator approves the code at the hub (``posintegrator agents approve CODE --locations
   a,b``, or ``POST /v1/agents/approve``), naming the locations the agent serves.
3. The agent polls with its token until the code is approved (or expires); from then on it
   connects with its key. Nothing secret ever crosses the network: the hub keeps the public key,
   the private key stays in the venue.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import aiohttp
import orjson
from pydantic import BaseModel, Field

from posintegrator.model import Id, utcnow
from posintegrator.store.link import LinkStore

#: Letters and digits that cannot be mistaken for one another when read aloud or typed.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#: Pairing requests waiting at once: a flood of requests cannot grow the table without end.
MAX_WAITING = 100
POLL_SECONDS = 2.0


class PairingRequest(BaseModel):
    """What an agent sends to be paired."""

    public_key: str = Field(
        pattern=r"^[A-Za-z0-9+/]{43}=$", description="Base64 of its Ed25519 public key."
    )
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    version: str | None = Field(default=None, max_length=100)
    locations: list[Id] = Field(default_factory=list, max_length=1000)


class PairingStarted(BaseModel):
    """The hub's answer: the code to show, the token to poll with."""

    code: str
    poll_token: str
    expires_at: datetime
    poll_seconds: float


class PairingPoll(BaseModel):
    """An agent asking whether its code was approved."""

    poll_token: str = Field(min_length=1, max_length=200)


class PairingStatus(BaseModel):
    """Where a pairing request stands."""

    status: Literal["pending", "approved", "expired"]
    agent: str | None = None
    locations: list[str] = Field(default_factory=list)


class Approval(BaseModel):
    """An operator approving an agent's code."""

    code: str = Field(min_length=1, max_length=20)
    locations: list[Id] = Field(min_length=1, max_length=1000)
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    operator: str = Field(default="api", min_length=1, max_length=100)


class TooManyPairings(Exception):
    """Too many pairing requests are waiting; try again later."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_code(code: str) -> str:
    """A code as typed (any case, with or without the dash) in its stored form."""
    letters = "".join(c for c in code.upper() if c.isalnum())
    return f"{letters[:4]}-{letters[4:]}"


async def start_pairing(
    store: LinkStore, request: PairingRequest, ttl_seconds: float, waiting: int
) -> PairingStarted:
    """Record a pairing request and make its code and poll token.

    :param waiting: how many requests wait already.
    :raises TooManyPairings: :data:`MAX_WAITING` requests wait already.
    """
    if waiting >= MAX_WAITING:
        raise TooManyPairings
    code = normalise_code("".join(secrets.choice(CODE_ALPHABET) for _ in range(8)))
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    await store.pairing_create(
        code=code,
        poll_token_hash=_hash(token),
        public_key=request.public_key,
        name=request.name,
        version=request.version,
        locations=request.locations,
        expires_at=expires_at,
    )
    return PairingStarted(
        code=code, poll_token=token, expires_at=expires_at, poll_seconds=POLL_SECONDS
    )


async def pairing_status(store: LinkStore, token: str) -> PairingStatus | None:
    """Where the request polled with ``token`` stands; None for an unknown token."""
    pairing = await store.pairing_by_poll(_hash(token))
    if pairing is None:
        return None
    if pairing.agent is not None:
        agent = await store.agent(pairing.agent)
        locations = list(agent.locations) if agent is not None else []
        return PairingStatus(status="approved", agent=pairing.agent, locations=locations)
    if pairing.expires_at < utcnow():
        return PairingStatus(status="expired")
    return PairingStatus(status="pending")


class PairingFailed(Exception):
    """The hub refused the pairing, or it expired; the message says what to do."""


async def pair(
    hub_url: str,
    request: PairingRequest,
    *,
    ca_file: Path | None,
    show_code: Callable[[PairingStarted], None],
) -> PairingStatus:
    """Ask the hub at ``hub_url`` to pair, show the code, and wait until it is approved.

    :raises PairingFailed: refused, or expired before an operator approved it.
    :raises aiohttp.ClientError: the hub cannot be reached.
    """
    context: ssl.SSLContext | bool = True
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
    base = hub_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        started = PairingStarted.model_validate(
            await _post(http, f"{base}/v1/link/pairings", request.model_dump(), context)
        )
        show_code(started)
        while True:
            await asyncio.sleep(started.poll_seconds)
            status = PairingStatus.model_validate(
                await _post(
                    http,
                    f"{base}/v1/link/pairings/poll",
                    {"poll_token": started.poll_token},
                    context,
                )
            )
            if status.status == "approved":
                return status
            if status.status == "expired":
                raise PairingFailed(
                    f"code {started.code} expired before an operator approved it; pair again"
                )


async def _post(
    http: aiohttp.ClientSession, url: str, body: object, context: ssl.SSLContext | bool
) -> object:
    async with http.post(url, json=body, ssl=context) as response:
        payload = await response.read()
        if response.status >= 400:
            try:
                detail = orjson.loads(payload).get("detail") or response.reason
            except (orjson.JSONDecodeError, AttributeError):
                detail = response.reason
            raise PairingFailed(f"the hub refused the pairing: {response.status} {detail}")
        return orjson.loads(payload)

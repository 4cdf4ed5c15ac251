"""The frames of the link protocol (docs/link.md) and the choice of protocol version.

Every frame is one binary WebSocket message holding one JSON object; ``t`` says which frame it
is. A frame that does not parse as one of these ends the link: the peer does not speak the
protocol (or is not who it claims to be).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

#: The link protocol versions this release speaks, lowest and highest.
PROTOCOLS = (1, 1)
#: What an agent signs: this prefix, then the hub's nonce (so a signature means nothing else).
SIGNED_PREFIX = b"posintegrator-link-v1\x00"
#: The largest frame either end accepts (a whole menu travels in one).
MAX_FRAME_BYTES = 256 * 1024 * 1024


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hello(_Frame):
    """Hub -> agent, first: who the hub is and what to sign."""

    t: Literal["hello"] = "hello"
    protocols: tuple[int, int]
    version: str
    nonce: str = Field(max_length=200, description="Base64 of 32 random bytes.")


class Auth(_Frame):
    """Agent -> hub: its key, the signed nonce, and how far it has received from the hub."""

    t: Literal["auth"] = "auth"
    protocols: tuple[int, int]
    version: str = Field(max_length=100)
    key: str = Field(max_length=200, description="Base64 of its Ed25519 public key.")
    signature: str = Field(max_length=200)
    received: int = Field(ge=0)


class Welcome(_Frame):
    """Hub -> agent: accepted."""

    t: Literal["welcome"] = "welcome"
    protocol: int
    agent: str
    locations: list[str]
    received: int = Field(ge=0)
    heartbeat_seconds: float
    window: int


class Refused(_Frame):
    """Either end: the link is refused or ended, and why (for a person to read)."""

    t: Literal["refused"] = "refused"
    reason: str = Field(max_length=2000)


class Message(_Frame):
    """A numbered message; its body is the JSON object the kind defines."""

    t: Literal["msg"] = "msg"
    seq: int = Field(ge=1)
    kind: str = Field(max_length=50)
    body: dict[str, Any]


class Ack(_Frame):
    """Everything through ``seq`` is stored by the receiver."""

    t: Literal["ack"] = "ack"
    seq: int = Field(ge=0)


class Ping(_Frame):
    """Alive; ``state`` is the sender's current condition (not numbered, not stored)."""

    t: Literal["ping"] = "ping"
    at: float
    state: dict[str, Any] = Field(default_factory=dict)


class Pong(_Frame):
    """The answer to a ping, echoing its ``at`` (the round trip is measured from it)."""

    t: Literal["pong"] = "pong"
    at: float


Frame = Annotated[
    Hello | Auth | Welcome | Refused | Message | Ack | Ping | Pong, Field(discriminator="t")
]
_FRAMES: TypeAdapter[Frame] = TypeAdapter(Frame)


class ProtocolError(Exception):
    """The peer sent something the protocol does not allow."""


def decode(data: bytes | str) -> Frame:
    """One frame from its JSON.

    :raises ProtocolError: it is not a frame of this protocol.
    """
    try:
        return _FRAMES.validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ProtocolError(f"not a link frame ({where}: {first['msg']})") from None


def encode(frame: _Frame) -> bytes:
    """The JSON of ``frame``."""
    return orjson.dumps(frame.model_dump(mode="json"))


def encode_message(seq: int, kind: str, body: bytes) -> bytes:
    """A :class:`Message` frame around a body that is already JSON (not parsed again)."""
    return orjson.dumps({"t": "msg", "seq": seq, "kind": kind, "body": orjson.Fragment(body)})


def choose_protocol(ours: tuple[int, int], theirs: tuple[int, int]) -> int | None:
    """The highest protocol version both ends speak, or None."""
    low, high = max(ours[0], theirs[0]), min(ours[1], theirs[1])
    return high if low <= high else None


def incompatible(hub: tuple[int, int], agent: tuple[int, int]) -> str:
    """Why a hub and an agent cannot talk, and what to do."""
    older = "hub" if hub[1] < agent[0] else "agent"
    return (
        f"the hub speaks link protocol {hub[0]}-{hub[1]} and the agent {agent[0]}-{agent[1]}: "
        f"upgrade the {older}"
    )

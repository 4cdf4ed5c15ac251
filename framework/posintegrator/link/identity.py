"""An agent's identity: an Ed25519 key pair made when it pairs.

The private key never leaves the venue (a file readable only by its owner); the hub keeps only
the public key. To connect, the agent signs a fresh random challenge from the hub, so a
recorded handshake cannot be replayed and nothing secret crosses the network.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from posintegrator.link.protocol import SIGNED_PREFIX

#: The file, in the agent's data folder, that holds its private key.
KEY_FILE = "agent-key.pem"


class NotPaired(Exception):
    """The agent has no key yet: it must pair with its hub first."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_nonce() -> str:
    """A fresh challenge for an agent to sign."""
    return _b64(secrets.token_bytes(32))


class AgentKey:
    """An agent's private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> AgentKey:
        """A new key pair."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> AgentKey:
        """The key stored at ``path``.

        :raises NotPaired: there is none.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotPaired(f"no agent key at {path}") from None
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise NotPaired(f"{path} does not hold an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key to ``path``, readable and writable by its owner only (mode 0600)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = path.with_name(path.name + ".new")
        with os.fdopen(
            os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"
        ) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        temporary.replace(path)

    @property
    def public_key(self) -> str:
        """The public key, as the hub records it (base64 of its 32 bytes)."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return _b64(raw)

    def sign(self, nonce: str) -> str:
        """The signature of the hub's challenge ``nonce``."""
        return _b64(self._private.sign(SIGNED_PREFIX + nonce.encode()))


def verify(public_key: str, nonce: str, signature: str) -> bool:
    """Whether ``signature`` is the holder of ``public_key`` signing ``nonce``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), SIGNED_PREFIX + nonce.encode())
    except (InvalidSignature, ValueError):
        return False
    return True

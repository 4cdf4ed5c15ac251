"""Standard Webhooks signatures on the host's webhooks to the cloud: secrets, signing, checking.

The scheme is `Standard Webhooks <https://github.com/standard-webhooks/standard-webhooks>`_
(symmetric, ``v1``), so a cloud can verify with the standard's ready-made libraries. Each
delivery carries three headers:

* ``webhook-id``: the event's unique id, the same on every attempt (deduplicate on it);
* ``webhook-timestamp``: Unix seconds when this attempt was signed;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over ``f"{id}.{timestamp}.{body}"``, once
  per active secret, space-separated, so that a receiver holding any one of them can verify
  while secrets are rotated.

A secret is written ``whsec_`` + base64 of 24 to 64 random bytes (the standard's form); the
decoded bytes are the HMAC key. Nothing here logs or echoes a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the standard's prefix, not a secret)
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_SECRET_BYTES = 32
#: How far a delivery's timestamp may be from the receiver's clock, either way (the standard's
#: libraries use the same five minutes).
TOLERANCE_SECONDS = 300
_VERSION = "v1"
_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)


class SignatureRejected(Exception):
    """A delivery did not pass the check; the message says why (never a secret)."""


def generate_secret(size: int = DEFAULT_SECRET_BYTES) -> str:
    """A new random secret in the standard's form, ``whsec_`` + base64 of ``size`` bytes."""
    if not MIN_SECRET_BYTES <= size <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {size}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for.

    :raises ValueError: the text is not a secret in the standard's form; the message says what
        is wrong without repeating the secret.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(
            f"not a Standard Webhooks secret: it must start with {SECRET_PREFIX} "
            "(generate one with `posintegrator webhook-secret`)"
        )
    try:
        # Strict, padding included, so that every Standard Webhooks library reads the same key.
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError(
            f"not a Standard Webhooks secret: after {SECRET_PREFIX} comes standard base64 "
            "(A-Z, a-z, 0-9, + and /, padded with = to a multiple of 4 characters)"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"the secret's key has {len(key)} bytes; the standard asks for "
            f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes "
            "(generate one with `posintegrator webhook-secret`)"
        )
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of one delivery, signed with every key (in the order given).

    :raises ValueError: without a key, or for an id containing a full stop (the standard
        forbids it: the id is delimited by one in the signed text).
    """
    if not keys:
        raise ValueError("at least one key is needed to sign a webhook")
    if "." in msg_id:
        raise ValueError(f"a webhook id must not contain a full stop: {msg_id!r}")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signature(key, msg_id, timestamp, body) for key in keys),
    }


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> str:
    """Check a delivery as a cloud receiver does; returns its ``webhook-id``.

    Passes when the timestamp is within ``tolerance`` of ``now`` and any ``v1`` signature of
    the header matches any of ``keys`` (compared in constant time over the raw ``body``).

    :param headers: the request's headers; names are matched case-insensitively.
    :raises SignatureRejected: with the reason.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER, "")
    stamp = lowered.get(TIMESTAMP_HEADER, "")
    given = lowered.get(SIGNATURE_HEADER, "")
    missing = [
        name for name, value in zip(_HEADERS, (msg_id, stamp, given), strict=True) if not value
    ]
    if missing:
        raise SignatureRejected(f"missing header(s): {', '.join(missing)}")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureRejected(f"{TIMESTAMP_HEADER} is not whole Unix seconds") from None
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {'old' if skew > 0 else 'in the future'}; "
            f"at most {tolerance:.0f} s are accepted"
        )
    offered = [
        value
        for version, _, value in (part.partition(",") for part in given.split())
        if version == _VERSION
    ]
    for key in keys:
        expected = signature(key, msg_id, timestamp, body).partition(",")[2].encode()
        if any(hmac.compare_digest(expected, value.encode()) for value in offered):
            return msg_id
    raise SignatureRejected(f"no {_VERSION} signature in {SIGNATURE_HEADER} matches")

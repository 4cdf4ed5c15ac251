"""Operators' password hashes: scrypt from the standard library, in one self-describing string.

The format is ``scrypt$<log2 N>$<r>$<p>$<salt>$<hash>``, salt and hash in unpadded URL-safe
base64: ``posintegrator ui hash-password`` writes it, the settings file holds it
(``ui.users[].password_hash``), and signing in recomputes it with the parameters it names, so
stronger parameters can be adopted later without invalidating existing hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
#: CPU/memory cost (N = 2**15), block size and parallelism: 32 MiB and some tens of
#: milliseconds per check, OWASP's recommended minimum for scrypt.
LOG2_N = 15
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32
#: Bounds on the parameters a stored hash may name (a hash is configuration, not user input,
#: but a typo must not make every sign-in take minutes or gigabytes).
_MAX_LOG2_N = 20
_MAX_R_P = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r * p
    )


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` in this module's format."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(password, salt, LOG2_N, BLOCK_SIZE, PARALLELISM, HASH_BYTES)
    return f"{SCHEME}${LOG2_N}${BLOCK_SIZE}${PARALLELISM}${_b64(salt)}${_b64(digest)}"


def parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """The parameters, salt and digest of a stored hash.

    :raises ValueError: naming what is wrong (never echoing the value).
    """
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError(
            "not a password hash of the form scrypt$N$r$p$salt$hash "
            "(make one with `posintegrator ui hash-password`)"
        )
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("the password hash has a malformed number or base64 part") from None
    if not (10 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R_P and 1 <= p <= _MAX_R_P):
        raise ValueError(
            f"the password hash's scrypt parameters are out of range (log2 N from 10 to "
            f"{_MAX_LOG2_N}, r and p from 1 to {_MAX_R_P})"
        )
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("the password hash's salt or digest is too short")
    return log2_n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the stored hash ``encoded`` (in constant time)."""
    log2_n, r, p, salt, digest = parse_hash(encoded)
    return hmac.compare_digest(_derive(password, salt, log2_n, r, p, len(digest)), digest)

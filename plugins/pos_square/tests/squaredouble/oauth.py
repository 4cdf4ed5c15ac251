"""Square's OAuth for the double: access tokens that expire, ObtainToken with a refresh token.

As Square documents ObtainToken (``grant_type: refresh_token``): with the application's
``client_id`` and ``client_secret`` (the code flow) Square answers a new access token, its
``expires_at``, and the same refresh token; ``rotate_refresh_tokens`` makes the double answer a
new refresh token each time instead (as the PKCE flow does), the old one then refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import SquareError


def rfc3339(moment: datetime) -> str:
    """``2026-11-30T17:00:00Z``, as Square writes ``expires_at``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenAuthority:
    """Which access tokens are good, until when, and the refresh tokens that renew them.

    :param access_tokens: accepted tokens that never expire (personal access tokens).
    :param refresh_tokens: refresh tokens ObtainToken accepts.
    :param application: (client_id, client_secret) of the one OAuth application.
    :param token_lifetime: how long an access token ObtainToken issues is good for.
    """

    def __init__(
        self,
        *,
        access_tokens: Iterable[str],
        revoked_tokens: Iterable[str] = (),
        refresh_tokens: Iterable[str] = (),
        application: tuple[str, str] | None = None,
        merchant_id: str,
        token_lifetime: timedelta = timedelta(days=30),
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.access_tokens = set(access_tokens)
        self.revoked_tokens = set(revoked_tokens)
        self.refresh_tokens = set(refresh_tokens)
        self.application = application
        self.merchant_id = merchant_id
        self.token_lifetime = token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.expires: dict[str, datetime] = {}
        self.issued: list[str] = []
        """Access tokens ObtainToken issued, oldest first."""
        self.used: list[str] = []
        """The access token of every API request that passed, in order."""

    def expire(self, token: str) -> None:
        """From now on, ``token`` gets 401 ``ACCESS_TOKEN_EXPIRED``."""
        self.expires[token] = datetime.now(UTC) - timedelta(seconds=1)

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """ObtainToken refuses ``refresh_token`` from now on (the seller revoked the app)."""
        self.refresh_tokens.discard(refresh_token)

    def check(self, token: str) -> None:
        """Let a request with bearer ``token`` through, or raise Square's 401."""
        if token in self.revoked_tokens:
            raise SquareError(401, "ACCESS_TOKEN_REVOKED", "The access token has been revoked.")
        if token not in self.access_tokens:
            raise SquareError(401, "UNAUTHORIZED", "This request could not be authorized.")
        expires = self.expires.get(token)
        if expires is not None and expires <= datetime.now(UTC):
            raise SquareError(401, "ACCESS_TOKEN_EXPIRED", "The access token has expired.")
        self.used.append(token)

    def obtain_token(self, body: dict[str, Any]) -> dict[str, Any]:
        """ObtainToken: a new access token for a good refresh token and application."""
        if body.get("grant_type") != "refresh_token":
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double serves the refresh_token grant only.",
                field="grant_type",
            )
        if (
            self.application is None
            or (
                body.get("client_id"),
                body.get("client_secret"),
            )
            != self.application
        ):
            raise SquareError(401, "UNAUTHORIZED", "Invalid client_id or client_secret.")
        refresh_token = body.get("refresh_token")
        if refresh_token not in self.refresh_tokens:
            raise SquareError(401, "UNAUTHORIZED", "The refresh token is invalid or revoked.")
        access_token = "EAAAl-double-" + secrets.token_urlsafe(24)
        expires_at = datetime.now(UTC) + self.token_lifetime
        self.access_tokens.add(access_token)
        self.expires[access_token] = expires_at
        self.issued.append(access_token)
        if self.rotate_refresh_tokens:
            self.refresh_tokens.discard(refresh_token)
            refresh_token = "double-refresh-" + secrets.token_urlsafe(24)
            self.refresh_tokens.add(refresh_token)
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_at": rfc3339(expires_at),
            "merchant_id": self.merchant_id,
            "refresh_token": refresh_token,
            "short_lived": False,
        }

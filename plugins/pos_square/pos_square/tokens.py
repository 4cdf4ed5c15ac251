"""Where a :class:`~pos_square.client.SquareClient` gets the access token of each request."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class AccessTokens(Protocol):
    """The access token to send, asked for before every request."""

    async def current(self) -> str:
        """The access token to send now."""
        ...

    async def renew(self, refused: str) -> str | None:
        """A token to try instead of ``refused``, which Square said has expired; None when
        there is none to try."""
        ...


class StaticToken:
    """A personal access token (or an OAuth token nobody refreshes): always the same."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    async def current(self) -> str:
        """The configured token."""
        return self._token.get_secret_value()

    async def renew(self, refused: str) -> str | None:
        """Nothing to renew with."""
        return None

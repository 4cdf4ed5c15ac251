"""The connection context every per-POS hook receives.

One plugin may serve several connections (two accounts of the same POS), and a plugin is
registered once, so it keeps no per-connection state of its own: everything about the connection
arrives here on each call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import aiohttp
from pydantic import BaseModel

from posintegrator.poshttp import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from loguru import Logger

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class PluginState(Protocol):
    """A small durable key-value store the host keeps for one connection (cursors, tokens)."""

    async def get(self, key: str) -> str | None:
        """The stored value, or None."""
        ...

    async def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, durably."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is not there)."""
        ...


@dataclass(frozen=True)
class ConnectionContext:
    """Everything a plugin needs to talk to the POS of one connection.

    :param name: the connection's name from settings.
    :param plugin: the plugin's entry-point name.
    :param locations: the location ids this connection serves.
    :param settings: the plugin's settings for this connection, validated by its own model.
    :param http: the shared HTTP client session; never create one of your own.
    :param log: a logger bound to the connection and plugin.
    :param state: durable key-value state for this connection.
    :param webhook_url: the URL at which the host receives this connection's POS webhooks.
    :param max_response_bytes: the largest POS answer to read (pass it to
        :func:`posintegrator.poshttp.send`).
    """

    name: str
    plugin: str
    locations: tuple[str, ...]
    settings: BaseModel
    http: aiohttp.ClientSession
    log: Logger
    state: PluginState
    webhook_url: str
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """The settings, checked to be of the plugin's own model class."""
        if not isinstance(self.settings, model):
            raise TypeError(f"connection {self.name!r} settings are not a {model.__name__}")
        return self.settings

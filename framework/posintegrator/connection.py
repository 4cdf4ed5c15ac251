"""A configured connection at run time: its settings, plugin, context, health and call limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from posintegrator.context import ConnectionContext
from posintegrator.health import ConnectionHealth
from posintegrator.plugins import PosPlugin
from posintegrator.settings import ConnectionSettings


@dataclass
class Connection:
    """One POS connection as the scheduler, delivery and API see it.

    ``limiter`` bounds the calls in flight to this POS at once, across menu sync, order delivery
    and status polling.
    """

    settings: ConnectionSettings
    plugin: PosPlugin
    ctx: ConnectionContext
    health: ConnectionHealth
    limiter: asyncio.Semaphore

    @property
    def name(self) -> str:
        """The connection's name."""
        return self.settings.name

    def uses_polling(self) -> bool:
        """Whether status for this connection is polled rather than pushed by webhooks."""
        caps = self.plugin.capabilities()
        if self.settings.status_source == "polling":
            return True
        if self.settings.status_source == "webhook":
            return False
        return caps.status_polling and not caps.status_webhooks

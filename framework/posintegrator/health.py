"""Per-connection health, as shown in ``GET /v1/connections``.

An outage is logged once when it starts and once when it ends, not on every failed call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from loguru import logger

from posintegrator.model import utcnow


class HealthState(StrEnum):
    """How a connection's POS is doing."""

    UNKNOWN = "unknown"
    OK = "ok"
    FAILING = "failing"
    AUTH_FAILED = "auth_failed"
    """The POS refused our credentials; a person must fix the settings."""


@dataclass
class MenuSyncInfo:
    """The latest menu sync of one location."""

    at: datetime
    ok: bool
    version: int | None
    error: str | None = None


@dataclass
class ConnectionHealth:
    """What the host knows about one connection's POS right now."""

    name: str
    state: HealthState = HealthState.UNKNOWN
    last_error: str | None = None
    since: datetime = field(default_factory=utcnow)
    consecutive_failures: int = 0
    menu_syncs: dict[str, MenuSyncInfo] = field(default_factory=dict)

    def succeeded(self) -> None:
        """A call to the POS worked."""
        if self.state in (HealthState.FAILING, HealthState.AUTH_FAILED):
            logger.info("connection {}: POS reachable again", self.name)
        if self.state != HealthState.OK:
            self.state, self.since = HealthState.OK, utcnow()
        self.consecutive_failures = 0
        self.last_error = None

    def failed(self, error: str, *, auth: bool = False) -> None:
        """A call to the POS failed; ``auth`` when it refused our credentials."""
        new_state = HealthState.AUTH_FAILED if auth else HealthState.FAILING
        if self.state != new_state:
            logger.warning("connection {}: {} ({})", self.name, new_state.value, error)
            self.state, self.since = new_state, utcnow()
        self.consecutive_failures += 1
        self.last_error = error

"""Per-connection health and the circuit breaker that protects a POS that is down.

After ``failure_threshold`` failed calls in a row (or at once when the POS refuses our
credentials) the circuit opens: no calls go to the POS until a cool-down has passed, then one
probe call is let through (half-open). Its success closes the circuit; its failure opens it
again for a longer cool-down. An outage is logged once when it starts and once when it ends,
not on every failed call, and an alert goes to the plugins that observe them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from loguru import logger

from posintegrator.model import utcnow
from posintegrator.runtime.backoff import Backoff


class HealthState(StrEnum):
    """How a connection's POS is doing."""

    UNKNOWN = "unknown"
    OK = "ok"
    FAILING = "failing"
    AUTH_FAILED = "auth_failed"
    """The POS refused our credentials; a person must fix the settings."""


class CircuitState(StrEnum):
    """Whether calls may go to the POS."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    """One probe call is under way."""


@dataclass
class MenuSyncInfo:
    """The latest menu sync of one location."""

    at: datetime
    ok: bool
    version: int | None
    error: str | None = None
    errors: int = 0
    """Error findings of the last check (a menu with any is not published)."""
    warnings: int = 0
    last_ok_at: datetime | None = None
    """When the location's menu last synced successfully."""


#: Called with (connection, kind, message) when a person should look at a connection.
AlertSink = Callable[[str, str, str], None]


@dataclass
class ConnectionHealth:
    """What the host knows about one connection's POS right now, and whether to call it.

    :param failure_threshold: failed calls in a row that open the circuit.
    :param cooldown: how long the circuit stays open, growing with each reopening.
    :param alert: told when the POS refuses our credentials or the circuit opens.
    """

    name: str
    failure_threshold: int = 5
    cooldown: Backoff = field(default_factory=lambda: Backoff(base=2.0, cap=60.0))
    alert: AlertSink | None = None
    state: HealthState = HealthState.UNKNOWN
    last_error: str | None = None
    since: datetime = field(default_factory=utcnow)
    consecutive_failures: int = 0
    circuit: CircuitState = CircuitState.CLOSED
    probe_at: datetime | None = None
    openings: int = 0
    menu_syncs: dict[str, MenuSyncInfo] = field(default_factory=dict)

    def blocked_for(self, now: datetime | None = None) -> float:
        """Seconds until a call may go to the POS (0 when it may go now)."""
        if self.circuit == CircuitState.CLOSED:
            return 0.0
        if self.circuit == CircuitState.HALF_OPEN or self.probe_at is None:
            return self.cooldown.base
        return max(0.0, (self.probe_at - (now or utcnow())).total_seconds())

    def try_call(self) -> bool:
        """Whether a call may go now; when the circuit is open and the cool-down over, this
        call becomes the probe."""
        if self.circuit == CircuitState.CLOSED:
            return True
        if self.circuit == CircuitState.OPEN and self.blocked_for() == 0.0:
            self.circuit = CircuitState.HALF_OPEN
            return True
        return False

    def succeeded(self) -> None:
        """A call to the POS worked (the POS answered, even if it refused the request)."""
        if self.state in (HealthState.FAILING, HealthState.AUTH_FAILED):
            logger.info("connection {}: POS reachable again", self.name)
        if self.state != HealthState.OK:
            self.state, self.since = HealthState.OK, utcnow()
        self.consecutive_failures = 0
        self.last_error = None
        self.circuit, self.probe_at, self.openings = CircuitState.CLOSED, None, 0

    def failed(self, error: str, *, auth: bool = False) -> None:
        """A call to the POS failed; ``auth`` when it refused our credentials."""
        new_state = HealthState.AUTH_FAILED if auth else HealthState.FAILING
        if self.state != new_state:
            log = logger.error if auth else logger.warning
            log("connection {}: {} ({})", self.name, new_state.value, error)
            self.state, self.since = new_state, utcnow()
            if auth:
                self._alert(
                    "auth_failed",
                    f"the POS refused the credentials of connection {self.name!r}: {error}. "
                    "Fix its settings; calls are paused and probed until they work.",
                )
        self.consecutive_failures += 1
        self.last_error = error
        if (
            auth
            or self.circuit == CircuitState.HALF_OPEN
            or self.consecutive_failures >= self.failure_threshold
        ):
            self._open()

    def probe_abandoned(self) -> None:
        """A call ended without telling whether the POS works (cancelled): probe again."""
        if self.circuit == CircuitState.HALF_OPEN:
            self.circuit = CircuitState.OPEN
            self.probe_at = utcnow()

    def _open(self) -> None:
        was_closed = self.circuit == CircuitState.CLOSED
        self.openings += 1
        delay = self.cooldown.delay(self.openings)
        self.circuit = CircuitState.OPEN
        self.probe_at = utcnow() + timedelta(seconds=delay)
        if was_closed:
            self._alert(
                "circuit_open",
                f"connection {self.name!r}: calls paused after {self.consecutive_failures} "
                f"failure(s) ({self.last_error}); probing the POS until it answers",
            )

    def _alert(self, kind: str, message: str) -> None:
        if self.alert is not None:
            self.alert(self.name, kind, message)

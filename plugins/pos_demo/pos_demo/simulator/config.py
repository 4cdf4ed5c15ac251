"""Runtime settings of the DemoPOS simulator.

Kept in one mutable dataclass so tests (and the running server) can change behaviour such as
the webhook target or kitchen speed without restarting the simulated POS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from posintegrator.testing.faults import FaultPlan


@dataclass
class SimulatorConfig:
    """Settings of one simulated POS instance.

    Every component reads the values at the moment it needs them, so mutating an instance
    while the simulator is running takes effect for the next order, stage or webhook.
    """

    data_dir: Path
    """Directory holding ``demopos.sqlite3`` (orders, events, idempotency map, kitchen timers,
    availability overrides, counters); see :mod:`.storage`."""
    api_key: str | None = None
    """When set, every route except ``/health`` requires a matching ``X-Api-Key`` header."""
    stage_seconds: float = 3.0
    """Seconds an order spends in each kitchen stage before moving on."""
    webhook_url: str | None = None
    """Where state-change events are POSTed; ``None`` disables outbound webhooks."""
    webhook_secret: str | None = None
    """HMAC-SHA256 key for the ``X-DemoPOS-Signature`` header."""
    submit_delay_seconds: float = 0.0
    """Delay after committing an order before answering (simulates a slow/crashing POS)."""
    webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
    """Pauses between webhook delivery attempts; its length is the number of retries."""
    webhook_timeout_seconds: float = 5.0
    """Per-attempt timeout of an outbound webhook request."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    """Faults injected into API requests (5xx, timeouts, commit-then-drop, ...); see
    :mod:`posintegrator.testing.faults`. Changeable at run time, also via ``PUT /_faults``."""
    webhook_duplicate_rate: float = 0.0
    """Probability that a delivered webhook is sent a second time."""
    webhook_reorder_rate: float = 0.0
    """Probability that an order's next two webhooks are sent in swapped order."""
    fault_seed: int | None = None
    """Seed of the fault dice, for repeatable runs."""

"""Wiring of the simulator's parts (storage, menu, availability, order book, kitchen, webhooks).

Kept separate from the HTTP layer so routes stay thin and the same object can be driven
in-process by tests.
"""

from __future__ import annotations

from collections import Counter

from posintegrator.testing.faults import FaultInjector

from .availability import AvailabilityBoard
from .config import SimulatorConfig
from .kitchen import Kitchen
from .menu import MenuCatalog
from .orders import OrderBook
from .storage import Storage
from .webhooks import WebhookDispatcher


class SimulatorCore:
    """All state and background machinery of one simulated POS."""

    def __init__(self, config: SimulatorConfig, catalog: MenuCatalog | None = None) -> None:
        self.config = config
        self.catalog = catalog or MenuCatalog()
        self.storage = Storage(config.data_dir)
        self.faults = FaultInjector(config.faults, seed=config.fault_seed)
        self.webhooks = WebhookDispatcher(config)
        self.book = OrderBook(self.storage, on_event=self.webhooks.enqueue)
        self.availability = AvailabilityBoard(
            self.storage, self.catalog, on_event=self.webhooks.enqueue
        )
        self.catalog.overrides = self.availability.overrides
        self.menu_requests: Counter[str] = Counter()
        """``GET /menu`` requests served, per location (lets tests see full menu fetches)."""
        self.kitchen = Kitchen(self.book, lambda: self.config.stage_seconds)

    def start(self) -> None:
        """Load the persisted state and resume kitchen timers of unfinished orders.

        Must be called from within the running event loop.
        """
        self.storage.load()
        self.kitchen.resume_all()

    async def close(self) -> None:
        """Stop timers and webhook deliveries; on-disk state stays resumable."""
        await self.kitchen.close()
        await self.webhooks.close()
        self.storage.close()

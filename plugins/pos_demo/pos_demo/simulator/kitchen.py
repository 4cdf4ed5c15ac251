"""Kitchen timers that move orders accepted -> preparing -> ready -> picked_up.

Each unfinished order has one asyncio task. Stage deadlines are chained from the *nominal*
start of the previous stage (persisted in the database), so after a restart every stage
whose time passed during the downtime advances immediately, in order, and later stages keep
their normal rhythm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .orders import KITCHEN_FLOW, OrderBook

log = logging.getLogger(__name__)


class Kitchen:
    """Runs one timer task per unfinished order."""

    def __init__(self, book: OrderBook, stage_seconds: Callable[[], float]) -> None:
        self.book = book
        self.stage_seconds = stage_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, order_id: str) -> None:
        """Start (or keep) the timer of an order that is still in the kitchen."""
        task = self._tasks.get(order_id)
        if task is not None and not task.done():
            return
        self._tasks[order_id] = asyncio.create_task(
            self._run(order_id), name=f"demopos-kitchen-{order_id}"
        )

    def resume_all(self) -> None:
        """Restart the timers of every unfinished order (after loading the persisted state)."""
        for order_id in self.book.unfinished():
            self.start(order_id)

    def stop(self, order_id: str) -> None:
        """Stop an order's timer (e.g. it was cancelled)."""
        task = self._tasks.pop(order_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        """Cancel all timers without changing any order (state stays resumable)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, order_id: str) -> None:
        """Advance one order stage by stage until it is picked up."""
        try:
            while True:
                order = self.book.get(order_id)
                if order is None:
                    return
                next_state = KITCHEN_FLOW.get(order["state"])
                stage_started = self.book.unfinished().get(order_id)
                if next_state is None or stage_started is None:
                    return
                due = stage_started + self.stage_seconds()
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    current = self.book.get(order_id)
                    if current is None or current["state"] != order["state"]:
                        continue  # changed meanwhile (e.g. cancelled); re-evaluate
                self.book.transition(order_id, next_state, due)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("kitchen timer of %s failed", order_id)
        finally:
            if self._tasks.get(order_id) is asyncio.current_task():
                del self._tasks[order_id]

"""Waiting for work: an event that says "look now", or the time the next item falls due."""

from __future__ import annotations

import asyncio


async def wait_for_wakeup(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass (forever when None).

    :returns: True when woken by the event, False on timeout.
    """
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True

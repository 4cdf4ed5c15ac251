"""Waiting for work: an event that says "look now", or the time the next item falls due."""

from __future__ import annotations

import asyncio


async def wait_for_wakeup(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass (forever when None).

    Built on :func:`asyncio.timeout` rather than :func:`asyncio.wait_for`: on Python 3.11,
    ``wait_for`` returns normally when the task is cancelled in the same instant the event
    is set, so a job loop cancelled at shutdown would go on forever and ``stop()`` would hang.

    :returns: True when woken by the event, False on timeout.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True

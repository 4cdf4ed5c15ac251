"""Job loops wait on a wake-up event; a cancel (shutdown) must end them whatever the timing."""

from __future__ import annotations

import asyncio

from posintegrator.runtime.wakeup import wait_for_wakeup


async def _job_loop(event: asyncio.Event, woken: list[bool]) -> None:
    """What the delivery, relay and menu jobs do: wait, work, wait again."""
    while True:
        woken.append(await wait_for_wakeup(event, 10.0))
        event.clear()


async def test_a_cancel_in_the_same_instant_as_a_wakeup_ends_the_loop() -> None:
    event = asyncio.Event()
    woken: list[bool] = []
    task = asyncio.create_task(_job_loop(event, woken))
    await asyncio.sleep(0)  # the loop is now waiting
    event.set()  # e.g. a delivery just finished ...
    task.cancel()  # ... as the scheduler stops
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done, "the job loop swallowed its cancellation and kept running"
    assert task.cancelled()


async def test_it_reports_a_wakeup_and_a_timeout() -> None:
    event = asyncio.Event()
    assert await wait_for_wakeup(event, 0.01) is False
    event.set()
    assert await wait_for_wakeup(event, 10.0) is True
    event.clear()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_for_wakeup(event, None) is True

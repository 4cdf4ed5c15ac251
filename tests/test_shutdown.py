"""A stopping host waits a bounded time for its tasks, even for one that ignores its cancel."""

from __future__ import annotations

import asyncio

from posintegrator.runtime.shutdown import cancel_and_wait


async def test_well_behaved_tasks_are_cancelled_and_awaited() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(60)) for _ in range(3)]
    assert await cancel_and_wait(tasks, seconds=5.0) == []
    assert all(task.cancelled() for task in tasks)


async def test_a_task_that_swallows_its_cancel_does_not_hold_up_shutdown() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:  # like a plugin hook that catches BaseException
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await release.wait()

    polite = asyncio.create_task(asyncio.sleep(60))
    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        assert await cancel_and_wait([polite, task], seconds=0.1) == [task]
    assert polite.cancelled()
    release.set()
    await task

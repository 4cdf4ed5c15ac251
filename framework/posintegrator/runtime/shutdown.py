"""Ending background tasks at shutdown in bounded time, even when one will not end."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from loguru import logger

#: How long cancelled tasks get to unwind before shutdown goes on without them.
UNWIND_SECONDS = 5.0


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[None]], seconds: float = UNWIND_SECONDS
) -> list[asyncio.Task[None]]:
    """Cancel ``tasks`` and wait up to ``seconds`` for them to end.

    A task that swallows its cancellation (typically a plugin hook catching
    ``BaseException``) would otherwise hold up a stopping host forever. It is named in the
    log instead, so an operator's SIGTERM still ends the process.

    :returns: the tasks still running after ``seconds``.
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    _done, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        logger.error(
            "task {} did not stop within {}s of being cancelled; shutting down without it",
            task.get_name(),
            seconds,
        )
    return list(pending)

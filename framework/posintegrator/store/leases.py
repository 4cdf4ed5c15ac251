"""Leases: a job that must run on exactly one worker at a time, moving when its worker dies.

A location's menu sync and a connection's status polling run where their lease is held. The
holder renews it each time it runs the job; a lease not renewed for its duration (the worker
died, or lost the database) is free for another worker to take. Each change of hands increases
the lease's token (a fencing token), so a holder can tell it was replaced.
"""

from __future__ import annotations

from typing import Protocol


class LeaseStore(Protocol):
    """Leases kept in the store, shared by the workers using it."""

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> int | None:
        """Take or renew lease ``name`` for ``owner`` for ``seconds`` from now.

        :returns: the lease's token when ``owner`` holds it now, None when another worker
            holds it and its time has not run out.
        """
        ...

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up lease ``name`` if ``owner`` holds it (a worker stopping)."""
        ...

    async def lease_holders(self) -> dict[str, tuple[str, int]]:
        """Every lease still in force: its owner and token, by name."""
        ...

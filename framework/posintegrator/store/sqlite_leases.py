"""Lease methods of the SQL stores (the table is in both engines' migrations)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

from posintegrator.model import utcnow
from posintegrator.store.sql import SQLConnection

T = TypeVar("T")


class LeaseTables:
    """:class:`~posintegrator.store.leases.LeaseStore` on the ``leases`` table."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[..., T], *args: object) -> T: ...

        def _transaction(self) -> AbstractContextManager[SQLConnection]: ...

        @property
        def db(self) -> SQLConnection: ...

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> int | None:
        return await self._run(self._acquire_lease, name, owner, seconds)

    def _acquire_lease(self, name: str, owner: str, seconds: float) -> int | None:
        now = utcnow().timestamp()
        with self._transaction() as tx:
            row = tx.execute(
                "SELECT owner, token, expires_at FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                tx.execute(
                    "INSERT INTO leases (name, owner, token, expires_at) VALUES (?, ?, 1, ?)",
                    (name, owner, now + seconds),
                )
                return 1
            holder, token, expires_at = str(row[0]), int(row[1]), float(row[2])
            if holder != owner:
                if expires_at > now:
                    return None
                token += 1  # changes hands: the old holder's token is fenced off
            tx.execute(
                "UPDATE leases SET owner = ?, token = ?, expires_at = ? WHERE name = ?",
                (owner, token, now + seconds, name),
            )
            return token

    async def release_lease(self, name: str, owner: str) -> None:
        await self._run(self._release_lease, name, owner)

    def _release_lease(self, name: str, owner: str) -> None:
        with self._transaction() as tx:
            tx.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ?", (name, owner)
            )

    async def lease_holders(self) -> dict[str, tuple[str, int]]:
        return await self._run(self._lease_holders)

    def _lease_holders(self) -> dict[str, tuple[str, int]]:
        rows = self.db.execute(
            "SELECT name, owner, token FROM leases WHERE expires_at > ?",
            (utcnow().timestamp(),),
        ).fetchall()
        return {str(name): (str(owner), int(token)) for name, owner, token in rows}

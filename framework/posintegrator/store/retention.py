"""What the store deletes when it is old enough, and what it never deletes.

Each method deletes one small batch in one transaction and says how many rows of each table went,
so the caller (:mod:`posintegrator.runtime.retention`) can pause between batches and the writer
keeps serving orders in between. Nothing unfinished or undelivered is ever deleted:

* an order goes only once its status is final, it has not changed since ``before``, the cloud
  (or, in a venue agent, the hub) has every event of it, and no message of a link still names
  it; its status history, delivery attempts and events go with it;
* an event goes only once it was delivered (or skipped by an operator) before ``before``;
* a record of an operator's action on a stream goes once it is older than ``before``;
* a menu version goes only when it is not among the latest ``keep_latest`` of its location, so
  the live menu always stays;
* a pairing request goes only once it expired before ``before``.

Approved agents, link messages and link positions, plugin state and menu reports are never
pruned: they are small and a link or a plugin still needs them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

#: Rows deleted by one batch, by table name.
Pruned = dict[str, int]


class RetentionStore(Protocol):
    """The store's part for retention (implemented by every :class:`~posintegrator.store.Store`)."""

    async def prune_orders(self, before: datetime, limit: int) -> Pruned:
        """Delete up to ``limit`` finished orders last changed before ``before``, with their
        history, attempts and events (see the module's rules)."""
        ...

    async def prune_events(self, before: datetime, limit: int) -> Pruned:
        """Delete up to ``limit`` events delivered (or skipped) before ``before``."""
        ...

    async def prune_menus(self, before: datetime, keep_latest: int, limit: int) -> Pruned:
        """Delete up to ``limit`` menu versions published before ``before`` that are not among
        the ``keep_latest`` newest of their location (``keep_latest`` >= 1), and the shared
        bodies no version names any more."""
        ...

    async def prune_stream_actions(self, before: datetime, limit: int) -> Pruned:
        """Delete up to ``limit`` records of operator actions on streams made before ``before``."""
        ...

    async def prune_pairings(self, before: datetime, limit: int) -> Pruned:
        """Delete up to ``limit`` pairing requests that expired before ``before``."""
        ...

"""Agent links across workers sharing one PostgreSQL (docs/scaling.md).

An agent holds one link, to whichever worker it reached; an order accepted by another worker
is queued for it in the database. Two things make that work:

- **Numbering in commit order.** The link's messages to one agent are numbered by a sequence,
  and the worker holding the link sends them in number order, resuming after the last one
  sent. Were two workers to queue messages for one agent at once, number 11 could commit before
  number 10, be sent, and leave 10 behind for good. So queueing for an agent takes a lock on
  that agent first (held until the commit): its messages commit in the order of their numbers.
- **Notices.** A worker that queues messages for an agent, revokes it or takes its link tells
  the others with PostgreSQL's NOTIFY, sent on commit; each worker LISTENs and wakes the link it
  holds (or ends it). Notices can be missed while a worker's listening connection is down, so
  after each reconnect the worker treats every link it holds as woken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
import psycopg
from loguru import logger
from pydantic import SecretStr

from posintegrator.runtime.backoff import Backoff
from posintegrator.store.link import AgentRecord, LinkNotice
from posintegrator.store.sql import SQLConnection
from posintegrator.store.sqlite_link import LinkTables

#: The NOTIFY channel of link notices.
CHANNEL = "posintegrator_link"
#: The first key of the advisory locks that order an agent's messages (the second is a hash of
#: the agent's name), apart from the migration lock's.
_QUEUE_LOCK = 0x706C6B  # "plk"
_RECONNECT = Backoff(base=0.5, cap=10.0)


class PostgresLinkTables(LinkTables):
    """The link methods of :class:`~posintegrator.store.postgres.PostgresStore`."""

    if TYPE_CHECKING:
        url: SecretStr

    #: Tells this store's own notices from the other workers' (it has acted on its own).
    _origin: str
    #: Agent name -> the transaction id that recorded its link to this worker.
    _linked_at: dict[str, int]

    def _insert_message(
        self, tx: SQLConnection, peer: str, kind: str, body: bytes, order_id: str | None
    ) -> int:
        tx.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_QUEUE_LOCK, peer))
        seq = super()._insert_message(tx, peer, kind, body, order_id)
        self._notify(tx, "queued", peer)
        return seq

    def _agent_revoke(self, name: str) -> AgentRecord:
        agent = super()._agent_revoke(name)
        # The batch's transaction: the notice leaves when the revocation commits.
        with self._transaction() as tx:
            self._notify(tx, "revoked", name)
        return agent

    def _agent_seen(self, name: str, version: str) -> None:
        super()._agent_seen(name, version)
        with self._transaction() as tx:
            # Transaction ids grow: a later connection of the agent has a larger one, which
            # tells a worker whether another's "connected" is newer than its own link.
            row = tx.execute("SELECT pg_current_xact_id()::text").fetchone()
            self._linked_at[name] = int(row[0])
            self._notify(tx, "connected", name, at=int(row[0]))

    def _notify(self, tx: SQLConnection, kind: str, peer: str, at: int = 0) -> None:
        notice = {"kind": kind, "peer": peer, "origin": self._origin, "at": at}
        tx.execute("SELECT pg_notify(?, ?)", (CHANNEL, orjson.dumps(notice).decode()))

    async def watch_links(self, notice: Callable[[LinkNotice], None]) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url.get_secret_value(), autocommit=True
                ) as db:
                    await db.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    notice(LinkNotice("resumed", ""))
                    async for message in db.notifies():
                        received = self._notice(message.payload)
                        if received is not None:
                            notice(received)
            except psycopg.Error as exc:
                failures += 1
                delay = _RECONNECT.delay(failures)
                logger.warning(
                    "link notices from other workers interrupted ({}); listening again in {:.1f} s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    def _notice(self, payload: str) -> LinkNotice | None:
        """The notice in ``payload``; none if this store sent it, if it is about a link older
        than the one this worker holds, or if it is not one of ours."""
        try:
            body = orjson.loads(payload)
            kind, peer, origin = body["kind"], str(body["peer"]), body["origin"]
            at = int(body["at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("a link notice that is not ours was ignored: {!r}", payload[:200])
            return None
        if origin == self._origin or kind not in ("queued", "revoked", "connected"):
            return None
        if kind == "connected" and at < self._linked_at.get(peer, 0):
            return None
        return LinkNotice(kind, peer)

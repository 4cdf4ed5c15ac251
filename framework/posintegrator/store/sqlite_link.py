"""The SQLite tables of links and agents (see :mod:`posintegrator.store.link`), as a part of
:class:`~posintegrator.store.sqlite.SQLiteStore` that works on the same connection and writer."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from posintegrator.model import StatusEvent, utcnow
from posintegrator.store.base import CancelState, OrderRecord, Transition
from posintegrator.store.link import (
    AgentRecord,
    HandingOver,
    Handover,
    LinkMessage,
    LinkNotice,
    PairingError,
    PairingRecord,
    PeerState,
)
from posintegrator.store.sql import SQLConnection

T = TypeVar("T")

_AGENT_COLUMNS = (
    "name, public_key, locations, status, approved_at, approved_by, revoked_at, version"
)
_PAIRING_COLUMNS = "code, public_key, name, version, locations, created_at, expires_at, agent"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _agent(row: tuple[Any, ...]) -> AgentRecord:
    name, key, locations, status, approved_at, approved_by, revoked_at, version = row
    return AgentRecord(
        name=name,
        public_key=key,
        locations=tuple(orjson.loads(locations)),
        status=status,
        approved_at=datetime.fromisoformat(approved_at),
        approved_by=approved_by,
        revoked_at=None if revoked_at is None else datetime.fromisoformat(revoked_at),
        version=version,
    )


def _pairing(row: tuple[Any, ...]) -> PairingRecord:
    code, key, name, version, locations, created_at, expires_at, agent = row
    return PairingRecord(
        code=code,
        public_key=key,
        name=name,
        version=version,
        locations=tuple(orjson.loads(locations)),
        created_at=datetime.fromisoformat(created_at),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
        agent=agent,
    )


def _note(tx: SQLConnection, order_id: str, note: str, source: str) -> None:
    """A history row that records a step of the order's handover (not a status change)."""
    status = tx.execute("SELECT status FROM orders WHERE id = ?", (order_id,)).fetchone()
    if status is None:
        return
    tx.execute(
        "INSERT INTO status_history (order_id, at, status, applied, note, source) "
        "VALUES (?, ?, ?, 0, ?, ?)",
        (order_id, _iso(utcnow()), status[0], note, source),
    )


class LinkTables:
    """Link and agent methods of the SQLite store."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[..., T], *args: object) -> T: ...

        def _transaction(self) -> AbstractContextManager[SQLConnection]: ...

        @property
        def db(self) -> SQLConnection: ...

        def _order_row(self, db: SQLConnection, order_id: str) -> OrderRecord | None: ...

        def _transition(
            self,
            tx: SQLConnection,
            order_id: str,
            event: StatusEvent,
            connection: str | None = None,
        ) -> Transition: ...

        def _refuse_cancel_in(
            self, tx: SQLConnection, order_id: str, reason: str, source: str
        ) -> None: ...

        def _action(
            self,
            tx: SQLConnection,
            record: OrderRecord,
            source: str,
            action: str,
            note: str | None,
        ) -> None: ...

    # --- messages -------------------------------------------------------------------------------

    async def link_enqueue(
        self, peer: str, kind: str, body: bytes, order_id: str | None = None
    ) -> int:
        return await self._run(self._link_enqueue, peer, kind, body, order_id)

    def _link_enqueue(self, peer: str, kind: str, body: bytes, order_id: str | None) -> int:
        with self._transaction() as tx:
            return self._insert_message(tx, peer, kind, body, order_id)

    def _insert_message(
        self, tx: SQLConnection, peer: str, kind: str, body: bytes, order_id: str | None
    ) -> int:
        row = tx.execute(
            "INSERT INTO link_outbox (peer, kind, order_id, body, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING seq",
            (peer, kind, order_id, body, _iso(utcnow())),
        ).fetchone()
        return int(row[0])

    async def link_take(self, peer: str, after: int, limit: int) -> list[LinkMessage]:
        return await self._run(self._link_take, peer, after, limit)

    def _link_take(self, peer: str, after: int, limit: int) -> list[LinkMessage]:
        with self._transaction() as tx:
            rows = tx.execute(
                "SELECT seq, kind, order_id, body FROM link_outbox WHERE peer = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (peer, after, limit),
            ).fetchall()
            if rows:
                tx.execute(
                    "INSERT INTO link_peers (peer, sent_through) VALUES (?, ?) "
                    "ON CONFLICT (peer) DO UPDATE SET "
                    "sent_through = MAX(link_peers.sent_through, excluded.sent_through)",
                    (peer, rows[-1][0]),
                )
        return [LinkMessage(seq, kind, order_id, bytes(body)) for seq, kind, order_id, body in rows]

    async def link_acknowledged(self, peer: str, through: int) -> list[str]:
        return await self._run(self._link_acknowledged, peer, through)

    def _link_acknowledged(self, peer: str, through: int) -> list[str]:
        with self._transaction() as tx:
            handed = [
                row[0]
                for row in tx.execute(
                    "SELECT order_id FROM link_outbox WHERE peer = ? AND seq <= ? "
                    "AND kind = 'order'",
                    (peer, through),
                )
            ]
            now = _iso(utcnow())
            for order_id in handed:
                tx.execute(
                    "UPDATE orders SET handed_over_at = ? WHERE id = ? AND handed_over_at IS NULL",
                    (now, order_id),
                )
                _note(tx, order_id, f"handed over to agent {peer}", f"agent:{peer}")
            tx.execute("DELETE FROM link_outbox WHERE peer = ? AND seq <= ?", (peer, through))
        return handed

    async def link_peer(self, peer: str) -> PeerState:
        return await self._run(self._link_peer, peer)

    def _link_peer(self, peer: str) -> PeerState:
        row = self.db.execute(
            "SELECT received_through, sent_through FROM link_peers WHERE peer = ?", (peer,)
        ).fetchone()
        return PeerState(0, 0) if row is None else PeerState(int(row[0]), int(row[1]))

    async def link_received(self, peer: str, through: int) -> None:
        await self._run(self._link_received, peer, through)

    def _link_received(self, peer: str, through: int) -> None:
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO link_peers (peer, received_through) VALUES (?, ?) "
                "ON CONFLICT (peer) DO UPDATE SET "
                "received_through = MAX(link_peers.received_through, excluded.received_through)",
                (peer, through),
            )

    async def watch_links(self, notice: Callable[[LinkNotice], None]) -> None:
        """Nothing to watch: one process uses a SQLite store."""

    async def link_waiting(self, peer: str) -> int:
        return await self._run(self._link_waiting, peer)

    def _link_waiting(self, peer: str) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM link_outbox WHERE peer = ?", (peer,)).fetchone()
        return int(row[0])

    # --- handing orders to agents ---------------------------------------------------------------

    async def hand_over(self, handovers: list[HandingOver]) -> list[int | None]:
        return await self._run(self._hand_over, handovers)

    def _hand_over(self, handovers: list[HandingOver]) -> list[int | None]:
        numbers: list[int | None] = []
        with self._transaction() as tx:
            for handing in handovers:
                # Only an order still to be sent, and not cancelled (nor with a cancellation
                # waiting) since it was found due: this and a cancellation are serialised here.
                # Only to an agent still approved: one revoked since the caller looked it up
                # would never take the order, and its revocation has already released what
                # it held, so nothing else would hand the order on.
                taken = tx.execute(
                    "UPDATE orders SET agent = ?, next_attempt_at = NULL, updated_at = ? "
                    "WHERE id = ? AND agent IS NULL AND status IN ('RECEIVED', 'SUBMITTING') "
                    "AND (cancel_state IS NULL OR cancel_state != 'requested') "
                    "AND EXISTS (SELECT 1 FROM agents WHERE name = ? AND status = 'approved') "
                    "RETURNING id",
                    (handing.agent, _iso(utcnow()), handing.order_id, handing.agent),
                ).fetchone()
                if taken is None:
                    numbers.append(None)
                    continue
                numbers.append(
                    self._insert_message(tx, handing.agent, "order", handing.body, handing.order_id)
                )
                _note(tx, handing.order_id, f"queued for agent {handing.agent}", "host")
        return numbers

    async def handovers(self, connection: str) -> list[Handover]:
        return await self._run(self._handovers, connection)

    def _handovers(self, connection: str) -> list[Handover]:
        rows = self.db.execute(
            "SELECT o.id, m.peer, m.seq, m.seq <= COALESCE(p.sent_through, 0) "
            "FROM orders o JOIN link_outbox m ON m.order_id = o.id AND m.kind = 'order' "
            "LEFT JOIN link_peers p ON p.peer = m.peer "
            "WHERE o.connection = ? AND o.handed_over_at IS NULL ORDER BY m.seq",
            (connection,),
        ).fetchall()
        found = []
        for order_id, agent, seq, sent in rows:
            record = self._order_row(self.db, order_id)
            if record is not None:
                found.append(Handover(record, agent, int(seq), bool(sent)))
        return found

    def _withdraw_unsent(self, tx: SQLConnection, order_id: str) -> bool:
        """Take back an order queued for an agent if its message has certainly not left: it
        waits at the hub again, with no agent. False when there is no such message, or when it
        may have left."""
        row = tx.execute(
            "SELECT m.seq, m.peer, COALESCE(p.sent_through, 0) FROM link_outbox m "
            "LEFT JOIN link_peers p ON p.peer = m.peer "
            "WHERE m.order_id = ? AND m.kind = 'order'",
            (order_id,),
        ).fetchone()
        if row is None or row[0] <= row[2]:
            return False
        seq, agent, _ = row
        tx.execute("DELETE FROM link_outbox WHERE seq = ?", (seq,))
        tx.execute("UPDATE orders SET agent = NULL WHERE id = ?", (order_id,))
        _note(tx, order_id, f"withdrawn from agent {agent}", "host")
        return True

    async def forward_action(
        self, order_id: str, body: bytes, *, operator: str, action: str, note: str | None
    ) -> str | None:
        return await self._run(self._forward_action, order_id, body, operator, action, note)

    def _forward_action(
        self, order_id: str, body: bytes, operator: str, action: str, note: str | None
    ) -> str | None:
        with self._transaction() as tx:
            row = tx.execute("SELECT agent FROM orders WHERE id = ?", (order_id,)).fetchone()
            if row is None:
                raise KeyError(order_id)
            agent: str | None = row[0]
            record = self._order_row(tx, order_id)
            if agent is None or record is None:
                return None
            self._action(
                tx, record, f"operator:{operator}", f"{action} (sent to agent {agent})", note
            )
            self._insert_message(tx, agent, "action", body, order_id)
        return agent

    async def order_note(self, order_id: str, note: str, source: str) -> None:
        await self._run(self._order_note, order_id, note, source)

    def _order_note(self, order_id: str, note: str, source: str) -> None:
        with self._transaction() as tx:
            _note(tx, order_id, note, source)

    async def withdraw_handover(self, order_id: str, event: StatusEvent) -> Transition | None:
        return await self._run(self._withdraw_handover, order_id, event)

    def _withdraw_handover(self, order_id: str, event: StatusEvent) -> Transition | None:
        with self._transaction() as tx:
            row = tx.execute(
                "SELECT m.seq, m.peer, COALESCE(p.sent_through, 0) FROM link_outbox m "
                "LEFT JOIN link_peers p ON p.peer = m.peer "
                "WHERE m.order_id = ? AND m.kind = 'order'",
                (order_id,),
            ).fetchone()
            if row is not None:
                seq, agent, sent_through = row
                if seq <= sent_through:
                    return None
                tx.execute("DELETE FROM link_outbox WHERE seq = ?", (seq,))
                _note(tx, order_id, f"withdrawn from agent {agent}", "host")
            return self._transition(tx, order_id, event)

    async def release_handovers(self, agent: str, event: StatusEvent) -> list[Transition]:
        return await self._run(self._release_handovers, agent, event)

    def _release_handovers(self, agent: str, event: StatusEvent) -> list[Transition]:
        changed: list[Transition] = []
        with self._transaction() as tx:
            sent_through = int(
                (
                    tx.execute(
                        "SELECT sent_through FROM link_peers WHERE peer = ?", (agent,)
                    ).fetchone()
                    or (0,)
                )[0]
            )
            rows = tx.execute(
                "SELECT seq, order_id FROM link_outbox WHERE peer = ? AND kind = 'order'",
                (agent,),
            ).fetchall()
            # Actions (a cancellation, a retry) for its orders will never be carried out; a
            # cancellation it was asked for, sent or not, will never be answered: refused, so
            # the cloud does not wait for it forever.
            tx.execute("DELETE FROM link_outbox WHERE peer = ? AND kind = 'action'", (agent,))
            waiting = tx.execute(
                "SELECT id FROM orders WHERE agent = ? AND cancel_state = ?",
                (agent, CancelState.REQUESTED.value),
            ).fetchall()
            for (order_id,) in waiting:
                self._refuse_cancel_in(
                    tx,
                    order_id,
                    f"venue agent {agent} was revoked before it answered the cancellation: "
                    "check the venue's POS",
                    "host",
                )
            now = utcnow()
            for seq, order_id in rows:
                tx.execute("DELETE FROM link_outbox WHERE seq = ?", (seq,))
                if seq > sent_through:
                    tx.execute(
                        "UPDATE orders SET agent = NULL, next_attempt_at = ?, updated_at = ? "
                        "WHERE id = ?",
                        (now.timestamp(), _iso(now), order_id),
                    )
                    _note(tx, order_id, f"taken back from revoked agent {agent}", "host")
                    continue
                mine = event.model_copy(update={"order_id": order_id})
                transition = self._transition(tx, order_id, mine)
                if transition.applied:
                    changed.append(transition)
        return changed

    # --- agents and pairing ---------------------------------------------------------------------

    async def pairing_create(
        self,
        *,
        code: str,
        poll_token_hash: str,
        public_key: str,
        name: str | None,
        version: str | None,
        locations: list[str],
        expires_at: datetime,
    ) -> None:
        await self._run(
            self._pairing_create,
            code,
            poll_token_hash,
            public_key,
            name,
            version,
            locations,
            expires_at,
        )

    def _pairing_create(
        self,
        code: str,
        poll_token_hash: str,
        public_key: str,
        name: str | None,
        version: str | None,
        locations: list[str],
        expires_at: datetime,
    ) -> None:
        with self._transaction() as tx:
            tx.execute(
                "DELETE FROM pairings WHERE expires_at < ? AND agent IS NULL",
                (utcnow().timestamp(),),
            )
            tx.execute(
                "INSERT INTO pairings (code, poll_token_hash, public_key, name, version, "
                "locations, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    code,
                    poll_token_hash,
                    public_key,
                    name,
                    version,
                    orjson.dumps(locations),
                    _iso(utcnow()),
                    expires_at.timestamp(),
                ),
            )

    async def pairings_waiting(self) -> int:
        return await self._run(self._pairings_waiting)

    def _pairings_waiting(self) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM pairings WHERE agent IS NULL AND expires_at >= ?",
            (utcnow().timestamp(),),
        ).fetchone()
        return int(row[0])

    async def pairing_by_poll(self, poll_token_hash: str) -> PairingRecord | None:
        return await self._run(self._pairing_by_poll, poll_token_hash)

    def _pairing_by_poll(self, poll_token_hash: str) -> PairingRecord | None:
        row = self.db.execute(
            f"SELECT {_PAIRING_COLUMNS} FROM pairings WHERE poll_token_hash = ?",  # noqa: S608
            (poll_token_hash,),
        ).fetchone()
        return None if row is None else _pairing(row)

    async def agent_approve(
        self, *, code: str, name: str | None, locations: list[str], approved_by: str
    ) -> AgentRecord:
        return await self._run(self._agent_approve, code, name, locations, approved_by)

    def _agent_approve(
        self, code: str, name: str | None, locations: list[str], approved_by: str
    ) -> AgentRecord:
        with self._transaction() as tx:
            row = tx.execute(
                f"SELECT {_PAIRING_COLUMNS} FROM pairings WHERE code = ?",  # noqa: S608
                (code,),
            ).fetchone()
            if row is None:
                raise PairingError(f"no pairing request has code {code!r}; check the code")
            pairing = _pairing(row)
            if pairing.agent is not None:
                raise PairingError(f"code {code!r} was already used (agent {pairing.agent!r})")
            if pairing.expires_at < utcnow():
                raise PairingError(
                    f"code {code!r} has expired; start the pairing again on the agent"
                )
            chosen = name or pairing.name
            if not chosen:
                raise PairingError("the agent proposed no name: give one with --name")
            if tx.execute("SELECT 1 FROM agents WHERE name = ?", (chosen,)).fetchone():
                raise PairingError(f"an agent is already called {chosen!r}; choose another name")
            if tx.execute(
                "SELECT 1 FROM agents WHERE public_key = ?", (pairing.public_key,)
            ).fetchone():
                raise PairingError("this agent's key is already approved under another name")
            for other_name, other_locations in tx.execute(
                "SELECT name, locations FROM agents WHERE status = 'approved'"
            ):
                taken = sorted(set(locations) & set(orjson.loads(other_locations)))
                if taken:
                    raise PairingError(
                        f"location(s) {', '.join(taken)} already served by agent {other_name!r}; "
                        "revoke it first"
                    )
            tx.execute(
                "INSERT INTO agents (name, public_key, locations, status, approved_at, "
                "approved_by, version) VALUES (?, ?, ?, 'approved', ?, ?, ?)",
                (
                    chosen,
                    pairing.public_key,
                    orjson.dumps(sorted(set(locations))),
                    _iso(utcnow()),
                    approved_by,
                    pairing.version,
                ),
            )
            tx.execute("UPDATE pairings SET agent = ? WHERE code = ?", (chosen, code))
            agent = tx.execute(
                f"SELECT {_AGENT_COLUMNS} FROM agents WHERE name = ?",  # noqa: S608
                (chosen,),
            ).fetchone()
        return _agent(agent)

    async def agent_by_key(self, public_key: str) -> AgentRecord | None:
        return await self._run(self._agent_where, "public_key", public_key)

    async def agent(self, name: str) -> AgentRecord | None:
        return await self._run(self._agent_where, "name", name)

    def _agent_where(self, column: str, value: str) -> AgentRecord | None:
        assert column in ("name", "public_key")
        row = self.db.execute(
            f"SELECT {_AGENT_COLUMNS} FROM agents WHERE {column} = ?",  # noqa: S608
            (value,),
        ).fetchone()
        return None if row is None else _agent(row)

    async def agents(self) -> list[AgentRecord]:
        return await self._run(self._agents)

    def _agents(self) -> list[AgentRecord]:
        rows = self.db.execute(
            f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY name"  # noqa: S608
        ).fetchall()
        return [_agent(row) for row in rows]

    async def agent_revoke(self, name: str) -> AgentRecord:
        return await self._run(self._agent_revoke, name)

    def _agent_revoke(self, name: str) -> AgentRecord:
        with self._transaction() as tx:
            row = tx.execute(
                "UPDATE agents SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?) "  # noqa: S608
                f"WHERE name = ? RETURNING {_AGENT_COLUMNS}",
                (_iso(utcnow()), name),
            ).fetchone()
            if row is None:
                raise PairingError(f"no agent is called {name!r}")
        return _agent(row)

    async def agent_seen(self, name: str, version: str) -> None:
        await self._run(self._agent_seen, name, version)

    def _agent_seen(self, name: str, version: str) -> None:
        with self._transaction() as tx:
            tx.execute("UPDATE agents SET version = ? WHERE name = ?", (version, name))

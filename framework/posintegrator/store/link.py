"""What the store keeps for venue agents and the link between a hub and its agents.

Both ends of a link keep the messages they sent and the other end has not yet acknowledged
(``link_outbox``), and how far they have received (``link_peers``): that is what lets a link
resume after a drop or a crash without losing or repeating anything (docs/link.md). A hub also
keeps the agents an operator approved, the pairing requests waiting for approval, and which agent
each order was handed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from posintegrator.model import StatusEvent
    from posintegrator.store.base import OrderRecord, Transition


@dataclass(frozen=True)
class LinkMessage:
    """One numbered message of a link, as stored until the other end acknowledges it.

    :param seq: its number; numbers only grow, so one is never reused.
    :param kind: what it carries (``order``, ``action``, ``event``, ``refused``).
    :param order_id: the order it is about, if any.
    :param body: its JSON body.
    """

    seq: int
    kind: str
    order_id: str | None
    body: bytes


@dataclass(frozen=True)
class PeerState:
    """How far this end has got with one peer.

    :param received_through: the highest message number received from the peer (and stored).
    :param sent_through: the highest of this end's message numbers that may have been sent.
    """

    received_through: int
    sent_through: int


@dataclass(frozen=True)
class AgentRecord:
    """A venue agent approved at the hub (or revoked)."""

    name: str
    public_key: str
    locations: tuple[str, ...]
    status: str
    """``approved`` or ``revoked``."""
    approved_at: datetime
    approved_by: str
    revoked_at: datetime | None
    version: str | None
    """The release it last said it runs."""


@dataclass(frozen=True)
class PairingRecord:
    """An agent's request to be paired, waiting for an operator (or answered)."""

    code: str
    public_key: str
    name: str | None
    version: str | None
    locations: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    agent: str | None
    """The approved agent's name, once an operator approved the code."""


class PairingError(Exception):
    """A pairing or approval cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class HandingOver:
    """An order to queue for an agent: its id, the agent's name, the ``order`` message's body."""

    order_id: str
    agent: str
    body: bytes


@dataclass(frozen=True)
class Handover:
    """An order queued for an agent, not yet acknowledged by it."""

    record: OrderRecord
    agent: str
    seq: int
    sent: bool
    """Whether its message may have left (then only the agent can settle it)."""


@dataclass(frozen=True)
class LinkNotice:
    """What another worker sharing the store did to an agent's link (see
    :meth:`LinkStore.watch_links`)."""

    kind: Literal["queued", "revoked", "connected", "resumed"]
    """``queued``: messages wait for ``peer``; ``revoked``: ``peer`` was revoked; ``connected``:
    ``peer`` linked to that worker (a link to it held here is stale); ``resumed``: listening
    again after an interruption, so notices may have been missed (``peer`` is empty)."""
    peer: str


class LinkStore(Protocol):
    """The store's part for links and agents (implemented by every :class:`Store`)."""

    # --- messages -------------------------------------------------------------------------------

    async def link_enqueue(
        self, peer: str, kind: str, body: bytes, order_id: str | None = None
    ) -> int:
        """Queue a message for ``peer``; its number."""
        ...

    async def link_take(self, peer: str, after: int, limit: int) -> list[LinkMessage]:
        """The next messages for ``peer`` after number ``after``, recorded as possibly sent
        in the same transaction (so none can be withdrawn once taken)."""
        ...

    async def link_acknowledged(self, peer: str, through: int) -> list[str]:
        """``peer`` has every message through ``through``: forget them.

        :returns: the ids of orders whose handover this completes.
        """
        ...

    async def link_peer(self, peer: str) -> PeerState:
        """How far this end has got with ``peer``."""
        ...

    async def link_received(self, peer: str, through: int) -> None:
        """Every message from ``peer`` through ``through`` is stored."""
        ...

    async def link_waiting(self, peer: str) -> int:
        """How many messages for ``peer`` wait for its acknowledgement."""
        ...

    async def watch_links(self, notice: Callable[[LinkNotice], None]) -> None:
        """Until cancelled, pass to ``notice`` what the other workers sharing this store do to
        agents' links. Only a :attr:`~posintegrator.store.base.Store.shared` store has other
        workers; any other returns at once."""
        ...

    # --- handing orders to agents (hub) -------------------------------------------------------

    async def hand_over(self, handovers: list[HandingOver]) -> list[int | None]:
        """Queue orders for their agents and take them out of the hub's own delivery, all in
        one transaction (one disk flush for a whole due batch).

        :returns: per order, its message's number, or None when the order is no longer to be
            sent (it was cancelled, or handed over, since it was found due) or its agent is no
            longer approved (revoked since it was looked up): such an order stays with the hub.
        """
        ...

    async def forward_action(
        self, order_id: str, body: bytes, *, operator: str, action: str, note: str | None
    ) -> str | None:
        """Queue ``body``, an ``action`` message, for the agent holding the order, and record
        the operator's action in the order's history, in one transaction.

        :returns: the agent's name; None (and nothing changed) when no agent holds the order.
        :raises KeyError: no such order.
        """
        ...

    async def order_note(self, order_id: str, note: str, source: str) -> None:
        """Note a step in the order's history that is not a status change (e.g. an agent could
        not carry out an action)."""
        ...

    async def handovers(self, connection: str) -> list[Handover]:
        """Orders of ``connection`` queued for an agent and not yet acknowledged by it."""
        ...

    async def withdraw_handover(self, order_id: str, event: StatusEvent) -> Transition | None:
        """Take back an order whose message has certainly not left, and apply ``event`` (its
        FAILED status) in the same transaction; None when the message may have left."""
        ...

    async def release_handovers(self, agent: str, event: StatusEvent) -> list[Transition]:
        """Take back the orders queued for ``agent`` and not acknowledged (it was revoked).

        Those whose message has certainly not left wait again for an agent of their location;
        those that may have reached the agent get ``event`` (NEEDS_ATTENTION: a person must
        check its POS), all in one transaction.

        :returns: the status changes made.
        """
        ...

    # --- agents and pairing (hub) ------------------------------------------------------------

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
        """Record a pairing request (and forget expired ones)."""
        ...

    async def pairings_waiting(self) -> int:
        """How many pairing requests wait for an operator (expired ones not counted)."""
        ...

    async def pairing_by_poll(self, poll_token_hash: str) -> PairingRecord | None:
        """The pairing request polled with this token."""
        ...

    async def agent_approve(
        self, *, code: str, name: str | None, locations: list[str], approved_by: str
    ) -> AgentRecord:
        """Approve the pairing request with ``code``: its key becomes agent ``name``.

        :raises PairingError: unknown, expired or used code; the name or key taken; a location
            already served by another agent.
        """
        ...

    async def agent_by_key(self, public_key: str) -> AgentRecord | None:
        """The agent with this public key."""
        ...

    async def agent(self, name: str) -> AgentRecord | None:
        """The agent called ``name``."""
        ...

    async def agents(self) -> list[AgentRecord]:
        """Every agent, approved or revoked, by name."""
        ...

    async def agent_revoke(self, name: str) -> AgentRecord:
        """Revoke agent ``name``: its link is refused from now on.

        :raises PairingError: no such agent.
        """
        ...

    async def agent_seen(self, name: str, version: str) -> None:
        """Agent ``name`` connected, running ``version``."""
        ...

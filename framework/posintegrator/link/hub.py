"""The hub's end of its agents' links: who may connect, what they may say, where orders go.

An agent connects to ``GET /v1/link`` (a WebSocket), proves it holds the key an operator
approved by signing a fresh challenge, and from then on sends the status changes and menus of
its approved locations and receives their orders. Anything it says about another location, or
about an order that is not its own, is refused and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from loguru import logger
from pydantic import BaseModel, ValidationError

from posintegrator import __version__
from posintegrator.cloud.events import MenuPublished, OrderCancelRefused, OrderStatusChanged
from posintegrator.link.actions import ActionRefused
from posintegrator.link.identity import new_nonce, verify
from posintegrator.link.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOLS,
    Auth,
    Hello,
    Message,
    ProtocolError,
    Refused,
    Welcome,
    choose_protocol,
    encode,
    incompatible,
)
from posintegrator.link.session import LinkClosed, LinkSession, receive_frame
from posintegrator.menus.sync import MenuRejected
from posintegrator.model import Menu, OrderStatus, StatusEvent
from posintegrator.store.link import AgentRecord, LinkMessage, LinkNotice

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

#: Seconds an agent has to answer the hub's hello.
HANDSHAKE_SECONDS = 10.0
#: Leases named ``link:<agent>`` say which worker holds an agent's link (when workers share
#: the store); one not renewed for this long no longer counts.
_PRESENCE = "link:"
PRESENCE_SECONDS = 60.0


class OrderRefusal(BaseModel):
    """An agent's refusal of an order it cannot serve (it does not serve the location)."""

    order_id: str
    reason: str


@dataclass
class AgentLinkState:
    """A connected agent, as the hub sees it."""

    agent: AgentRecord
    session: LinkSession
    protocol: int
    version: str
    state: dict[str, Any] = field(default_factory=dict)


class HubEnd:
    """What the hub does with one agent's messages (the hub's :class:`LinkEnd`)."""

    def __init__(self, hub: LinkHub, agent: AgentRecord) -> None:
        self.peer = agent.name
        self._hub = hub
        self._agent = agent
        self.state_of_peer: dict[str, Any] = {}

    async def handle(self, messages: list[Message]) -> None:
        # Status changes of different orders are independent: stored side by side (one disk
        # flush for the batch); those of one order stay in the order they came, and so do the
        # menus of one location (else an older version could be published last, and stay live).
        by_subject: dict[str, list[Message]] = {}
        for message in messages:
            by_subject.setdefault(_subject(message), []).append(message)
        await asyncio.gather(*(self._in_order(group) for group in by_subject.values()))

    async def _in_order(self, group: list[Message]) -> None:
        for message in group:
            await self._hub.receive(self._agent, message)

    async def outgoing(self, message: LinkMessage) -> bytes:
        return message.body

    def acknowledged(self, order_ids: list[str]) -> None:
        for order_id in order_ids:
            logger.debug("order {} handed over to agent {}", order_id, self._agent.name)

    async def state(self) -> dict[str, Any]:
        await self._hub.present(self.peer)  # a heartbeat: the link is alive
        return {"version": __version__}

    def peer_state(self, state: dict[str, Any]) -> None:
        self.state_of_peer = state


#: How long the hub routes orders by the approved agents it last read. A revocation it has not
#: read yet misroutes nothing (the store queues orders only for an agent still approved, and
#: the handover then calls :meth:`LinkHub.forget_agents`); a location no agent in the list
#: serves is looked up afresh at once.
AGENTS_FRESH_SECONDS = 2.0


class LinkHub:
    """The agents connected to this hub, and the route they connect to."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._links: dict[str, AgentLinkState] = {}
        self._ends: dict[str, HubEnd] = {}
        self.offline_since: dict[str, datetime] = {}
        self.refusals = 0
        #: Links being ended on another worker's notice.
        self._closing: set[asyncio.Task[None]] = set()
        #: When this worker last renewed its presence lease for each agent it holds.
        self._presence_renewed: dict[str, float] = {}
        #: The approved agents as last read, and when (monotonic seconds).
        self._approved: tuple[float, list[AgentRecord]] | None = None

    # --- who serves what ------------------------------------------------------------------------

    async def agent_for(self, location: str) -> AgentRecord | None:
        """The approved agent serving ``location``, if any (see :data:`AGENTS_FRESH_SECONDS`)."""
        cached = self._approved
        if cached is not None and time.monotonic() - cached[0] < AGENTS_FRESH_SECONDS:
            serving = _serving(cached[1], location)
            if serving is not None:
                return serving
        read_at = time.monotonic()
        approved = [a for a in await self._host.store.agents() if a.status == "approved"]
        self._approved = (read_at, approved)
        return _serving(approved, location)

    def forget_agents(self) -> None:
        """Read the approved agents afresh for the next order (one was approved or revoked)."""
        self._approved = None

    def link_of(self, name: str) -> AgentLinkState | None:
        """The live link of agent ``name``, if it is connected."""
        return self._links.get(name)

    def peer_state(self, name: str) -> dict[str, Any]:
        """What agent ``name`` last said of itself (its connections, its backlog)."""
        end = self._ends.get(name)
        return end.state_of_peer if end is not None else {}

    def wake(self, name: str) -> None:
        """Messages wait for agent ``name``."""
        link = self._links.get(name)
        if link is not None:
            link.session.wake()

    async def revoke(self, name: str) -> AgentRecord:
        """Revoke agent ``name`` and end its link at once."""
        agent = await self._host.store.agent_revoke(name)
        self.forget_agents()
        link = self._links.pop(name, None)
        if link is not None:
            await link.session.close("this agent was revoked at the hub")
        event = StatusEvent(
            order_id=f"revoked:{name}",
            status=OrderStatus.NEEDS_ATTENTION,
            source="host",
            reason=f"handed to venue agent {name}, revoked before it confirmed the order: check "
            "the venue's POS, then mark the order found or missing",
        )
        for transition in await self._host.store.release_handovers(name, event):
            await self._host.intake.changed(transition, event)
        self._host.notifier.wake()  # cancellations it never answered were refused
        for jobs in self._host.connections.values():
            if set(jobs.connection.settings.locations) & set(agent.locations):
                jobs.delivery.wake()
        logger.warning("agent {} revoked", name)
        return agent

    async def watch(self) -> None:
        """Act on what other workers sharing the store do to links (only a shared store has
        them): wake a link whose agent has messages queued elsewhere, end one whose agent was
        revoked or has linked to another worker."""
        await self._host.store.watch_links(self._noticed)

    def _noticed(self, notice: LinkNotice) -> None:
        if notice.kind == "queued":
            self.wake(notice.peer)
        elif notice.kind == "resumed":  # notices may have been missed meanwhile
            for held in self._links.values():
                held.session.wake()
        else:
            link = self._links.pop(notice.peer, None)
            if link is not None:
                why = (
                    "this agent was revoked at the hub"
                    if notice.kind == "revoked"
                    else "replaced by a newer connection of the same agent to another worker"
                )
                task = asyncio.create_task(link.session.close(why))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        """End every link (the hub is stopping)."""
        for link in list(self._links.values()):
            await link.session.close("the hub is stopping")

    # --- the route ------------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /v1/link``: one agent's link, from handshake to close."""
        link_settings = self._host.settings.link
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES)
        nonce = new_nonce()
        try:
            await ws.prepare(request)
            await ws.send_bytes(
                encode(Hello(protocols=PROTOCOLS, version=__version__, nonce=nonce))
            )
            auth = await receive_frame(ws, HANDSHAKE_SECONDS)
            if not isinstance(auth, Auth):
                raise ProtocolError("the first frame of an agent must be 'auth'")
            agent, protocol = await self._authenticate(auth, nonce)
            peer = await self._host.store.link_peer(agent.name)
            welcome = Welcome(
                protocol=protocol,
                agent=agent.name,
                locations=list(agent.locations),
                received=peer.received_through,
                heartbeat_seconds=link_settings.heartbeat_seconds,
                window=link_settings.window,
            )
            await ws.send_bytes(encode(welcome))
        except (LinkClosed, ProtocolError) as exc:
            await _refuse(ws, str(exc), request)
            return ws
        except ConnectionError as exc:  # the agent went away: a flaky network, not a fault here
            logger.warning("link from {} lost during the handshake: {}", request.remote, exc)
            return ws
        end = HubEnd(self, agent)
        session = LinkSession(
            ws,
            end,
            self._host.store,
            peer_received=auth.received,
            received_through=peer.received_through,
            window=link_settings.window,
            heartbeat=link_settings.heartbeat_seconds,
        )
        # Recorded first: workers sharing the store then end any older link of this agent, and
        # a notice about an older link reaching this worker later is told apart.
        await self._host.store.agent_seen(agent.name, auth.version)
        earlier = self._links.get(agent.name)
        if earlier is not None:
            await earlier.session.close("replaced by a new connection of the same agent")
        self._links[agent.name] = AgentLinkState(agent, session, protocol, auth.version)
        self._ends[agent.name] = end
        self.offline_since.pop(agent.name, None)
        logger.info(
            "agent {} connected (version {}, protocol {}, from {})",
            agent.name,
            auth.version,
            protocol,
            request.remote,
        )
        await self.present(agent.name)
        try:
            reason = await session.run()
        finally:
            held = self._links.get(agent.name)
            if held is None or held.session is session:  # not replaced by a newer link here
                self._presence_renewed.pop(agent.name, None)
                if self._host.store.shared:
                    try:
                        await self._host.store.release_lease(
                            _presence(agent.name), self._host.worker
                        )
                    except Exception as exc:  # the store is closing: the lease runs out anyway
                        logger.debug("presence of agent {} not released: {}", agent.name, exc)
        if self._links.get(agent.name) is not None and self._links[agent.name].session is session:
            del self._links[agent.name]
            self.offline_since[agent.name] = datetime.now(UTC)
        logger.info("agent {} disconnected: {}", agent.name, reason)
        return ws

    # --- presence across workers ----------------------------------------------------------------

    async def present(self, name: str) -> None:
        """Tell the other workers sharing the store that this one holds agent ``name``'s link
        (a lease, renewed with the link's heartbeats; nothing to tell on a store of one)."""
        if not self._host.store.shared or name not in self._links:
            return
        now = time.monotonic()
        if now - self._presence_renewed.get(name, -PRESENCE_SECONDS) < PRESENCE_SECONDS / 3:
            return
        self._presence_renewed[name] = now
        await self._host.store.acquire_lease(_presence(name), self._host.worker, PRESENCE_SECONDS)

    async def linked_elsewhere(self) -> dict[str, str]:
        """Agents linked to another worker sharing the store: name -> that worker."""
        if not self._host.store.shared:
            return {}
        return {
            name.removeprefix(_PRESENCE): owner
            for name, (owner, _) in (await self._host.store.lease_holders()).items()
            if name.startswith(_PRESENCE) and owner != self._host.worker
        }

    async def _authenticate(self, auth: Auth, nonce: str) -> tuple[AgentRecord, int]:
        agent = await self._host.store.agent_by_key(auth.key)
        if agent is None:
            raise LinkClosed(
                "this agent is not paired with this hub: run 'posintegrator agent pair' and have "
                "an operator approve its code"
            )
        if agent.status != "approved":
            raise LinkClosed(f"agent {agent.name!r} was revoked at the hub")
        if not verify(agent.public_key, nonce, auth.signature):
            raise LinkClosed("the signature does not match the agent's key")
        protocol = choose_protocol(PROTOCOLS, auth.protocols)
        if protocol is None:
            raise LinkClosed(incompatible(PROTOCOLS, auth.protocols))
        return agent, protocol

    # --- what agents say ------------------------------------------------------------------------

    async def receive(self, agent: AgentRecord, message: Message) -> None:
        """Apply one message from ``agent`` (a refused one changes nothing)."""
        try:
            if message.kind == "event" and message.body.get("type") == "order.status_changed":
                await self._status(agent, OrderStatusChanged.model_validate(message.body))
            elif message.kind == "event" and message.body.get("type") == "order.cancel_refused":
                await self._cancel_refused(agent, OrderCancelRefused.model_validate(message.body))
            elif message.kind == "event" and message.body.get("type") == "menu.published":
                await self._menu(agent, message.body)
            elif message.kind == "refused":
                await self._refused(agent, OrderRefusal.model_validate(message.body))
            elif message.kind == "action_refused":
                await self._action_refused(agent, ActionRefused.model_validate(message.body))
            else:
                self._refuse(agent, f"message {message.seq} of unknown kind {message.kind!r}")
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            self._refuse(
                agent, f"message {message.seq} is malformed: {first['loc']} {first['msg']}"
            )

    def _refuse(self, agent: AgentRecord, why: str) -> None:
        self.refusals += 1
        logger.warning("agent {}: {}: ignored", agent.name, why)

    async def _own_order(self, agent: AgentRecord, order_id: str) -> str | None:
        """The connection of order ``order_id`` if it is one ``agent`` may speak for."""
        record = await self._host.store.get_order(order_id)
        if record is None or record.order.location not in agent.locations:
            return None
        jobs = self._host.connections.get(record.connection)
        if jobs is None or jobs.connection.settings.placement == "central":
            return None
        return record.connection

    async def _status(self, agent: AgentRecord, event: OrderStatusChanged) -> None:
        connection = await self._own_order(agent, event.order_id)
        if connection is None or event.location not in agent.locations:
            self._refuse(agent, f"a status of order {event.order_id!r}, not one of its orders")
            return
        await self._host.intake.apply(
            connection,
            StatusEvent(
                order_id=event.order_id,
                pos_order_id=event.pos_order_id,
                status=event.status,
                occurred_at=event.occurred_at,
                reason=event.reason,
                source=f"agent:{agent.name}:{event.source}"[:200],
            ),
        )

    async def _cancel_refused(self, agent: AgentRecord, event: OrderCancelRefused) -> None:
        """The agent's POS refused a cancellation the hub forwarded: the cloud hears it."""
        connection = await self._own_order(agent, event.order_id)
        if connection is None or event.location not in agent.locations:
            self._refuse(agent, f"a refused cancellation of {event.order_id!r}, not its order")
            return
        await self._host.store.refuse_cancel(
            event.order_id, reason=event.reason, source=f"agent:{agent.name}:{event.source}"[:200]
        )
        self._host.notifier.wake()

    async def _action_refused(self, agent: AgentRecord, refusal: ActionRefused) -> None:
        """The agent could not carry out an action the hub forwarded (the order moved on)."""
        if await self._own_order(agent, refusal.order_id) is None:
            self._refuse(agent, f"an answer about order {refusal.order_id!r}, not its order")
            return
        logger.warning(
            "order {}: agent {} could not {}: {}",
            refusal.order_id,
            agent.name,
            refusal.action,
            refusal.reason,
        )
        if refusal.action == "cancel":
            await self._host.store.refuse_cancel(
                refusal.order_id, reason=refusal.reason, source=f"agent:{agent.name}"
            )
            self._host.notifier.wake()
            return
        await self._host.store.order_note(
            refusal.order_id,
            f"{refusal.action} refused by agent {agent.name}: {refusal.reason}"[:2000],
            f"agent:{agent.name}",
        )

    async def _menu(self, agent: AgentRecord, body: dict[str, Any]) -> None:
        menu_json = body.get("menu")
        notice = MenuPublished.model_validate({k: v for k, v in body.items() if k != "menu"})
        location = notice.location
        jobs = self._host.connection_for_location(location)
        if location not in agent.locations or jobs is None:
            self._refuse(agent, f"a menu of location {location!r}, which it does not serve")
            return
        if jobs.connection.settings.placement != "local":
            self._refuse(agent, f"a menu of {location!r}, whose menu the hub fetches itself")
            return
        if not isinstance(menu_json, dict):
            self._refuse(agent, f"a menu notice of {location!r} without its menu")
            return
        menu = Menu.model_validate(menu_json)
        try:
            await jobs.menusync.publish_fetched(location, menu)
        except MenuRejected as exc:
            logger.error("agent {}: {}", agent.name, exc)

    async def _refused(self, agent: AgentRecord, refusal: OrderRefusal) -> None:
        connection = await self._own_order(agent, refusal.order_id)
        if connection is None:
            self._refuse(agent, f"a refusal of order {refusal.order_id!r}, not one of its orders")
            return
        await self._host.intake.apply(
            connection,
            StatusEvent(
                order_id=refusal.order_id,
                status=OrderStatus.FAILED,
                source=f"agent:{agent.name}",
                reason=refusal.reason[:2000],
            ),
        )


def _presence(agent: str) -> str:
    return f"{_PRESENCE}{agent}"


def _subject(message: Message) -> str:
    """What a message is about: its order, or the location of its menu."""
    if order_id := message.body.get("order_id"):
        return f"order:{order_id}"
    if message.body.get("type") == "menu.published":
        return f"menu:{message.body.get('location')}"
    return f"seq:{message.seq}"


async def _refuse(ws: web.WebSocketResponse, reason: str, request: web.Request) -> None:
    logger.warning("link from {} refused: {}", request.remote, reason)
    with contextlib.suppress(ConnectionError):  # the agent may be gone already
        await ws.send_bytes(encode(Refused(reason=reason)))
        await ws.close(code=4001, message=b"refused")


def order_message(record_order: Any, received_at: datetime) -> bytes:
    """The body of an ``order`` message: the order and when the hub received it."""
    return orjson.dumps(
        {"order": record_order.model_dump(mode="json"), "received_at": received_at.isoformat()}
    )


def _serving(agents: list[AgentRecord], location: str) -> AgentRecord | None:
    """The one of ``agents`` approved for ``location``, if any."""
    return next((agent for agent in agents if location in agent.locations), None)

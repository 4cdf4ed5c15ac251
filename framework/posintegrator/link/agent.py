"""The venue agent's end of the link: one connection out to the hub, kept up for good.

The agent connects, proves who it is by signing the hub's challenge, and from then on takes
the orders of its locations into its own store (they are its to deliver from then on) and sends
the hub what its store records for the cloud: status changes and new menu versions (with the
menu itself). While the hub is out of reach nothing stops: the POS keeps getting its orders and
the statuses pile up in the store, to be sent on reconnect from where the hub left off.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from loguru import logger
from pydantic import BaseModel, ValidationError

from posintegrator import __version__
from posintegrator.api import handlers
from posintegrator.api.problems import ProblemError
from posintegrator.api.schemas import CancelOrder, FoundInPos, OperatorAction
from posintegrator.link.actions import ActionRefused, OrderAction
from posintegrator.link.identity import AgentKey
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
from posintegrator.model import Order
from posintegrator.orders.intake import accept_order
from posintegrator.runtime.backoff import Backoff
from posintegrator.settings import AgentSettings, LinkSettings
from posintegrator.store.link import LinkMessage

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

#: The agent's name for the hub in its link tables.
HUB = "hub"
HANDSHAKE_SECONDS = 10.0
#: How long an action from the hub waits for a submission of its order under way to end, and
#: how often it looks.
IN_FLIGHT_WAIT_SECONDS = 60.0
IN_FLIGHT_POLL_SECONDS = 0.1


class OrderHandedOver(BaseModel):
    """The body of an ``order`` message from the hub."""

    order: Order
    received_at: datetime


class AgentLink:
    """Keeps the link to the hub up, and is the agent's end of it."""

    peer = HUB

    def __init__(
        self, host: Host, settings: AgentSettings, link: LinkSettings, key: AgentKey
    ) -> None:
        self._host = host
        self._settings = settings
        self._link = link
        self._key = key
        self._session: LinkSession | None = None
        self._backoff = Backoff(base=0.5, cap=settings.reconnect_max_seconds)
        self.name: str | None = None
        self.connected = asyncio.Event()
        self.last_error: str | None = None
        self.hub_state: dict[str, Any] = {}

    def wake(self) -> None:
        """The store has new events for the hub."""
        if self._session is not None:
            self._session.wake()

    @property
    def session(self) -> LinkSession | None:
        """The live session, while connected."""
        return self._session

    async def run(self) -> None:
        """Connect, and reconnect after every drop, with growing pauses, until cancelled."""
        failures = 0
        while True:
            try:
                await self._connect_once()
                failures = 0
            except (aiohttp.ClientError, OSError, TimeoutError, LinkClosed, ProtocolError) as exc:
                failures += 1
                message = exc.reason if isinstance(exc, LinkClosed) else str(exc) or repr(exc)
                if message != self.last_error:
                    logger.warning("link to the hub: {}", message)
                self.last_error = message
            finally:
                self._session = None
                self.connected.clear()
            await asyncio.sleep(self._backoff.delay(max(1, failures)))

    async def _connect_once(self) -> None:
        http = self._host.http
        url = str(self._settings.hub_url).rstrip("/") + "/v1/link"
        context: ssl.SSLContext | bool = True
        if self._settings.ca_file is not None:
            context = ssl.create_default_context(cafile=str(self._settings.ca_file))
        async with http.ws_connect(
            url, max_msg_size=MAX_FRAME_BYTES, ssl=context, timeout=aiohttp.ClientWSTimeout()
        ) as ws:
            hello = await receive_frame(ws, HANDSHAKE_SECONDS)
            if not isinstance(hello, Hello):
                raise ProtocolError("the hub did not start with 'hello'")
            if choose_protocol(PROTOCOLS, hello.protocols) is None:
                raise LinkClosed(incompatible(hello.protocols, PROTOCOLS))
            state = await self._host.store.link_peer(HUB)
            await ws.send_bytes(
                encode(
                    Auth(
                        protocols=PROTOCOLS,
                        version=__version__,
                        key=self._key.public_key,
                        signature=self._key.sign(hello.nonce),
                        received=state.received_through,
                    )
                )
            )
            answer = await receive_frame(ws, HANDSHAKE_SECONDS)
            if isinstance(answer, Refused):
                raise LinkClosed(f"the hub refused the link: {answer.reason}")
            if not isinstance(answer, Welcome):
                raise ProtocolError("the hub did not answer 'welcome' or 'refused'")
            self.name = answer.agent
            session = LinkSession(
                ws,
                self,
                self._host.store,
                peer_received=answer.received,
                received_through=state.received_through,
                window=min(answer.window, self._link.window),
                heartbeat=answer.heartbeat_seconds,
            )
            self._session = session
            self.connected.set()
            if self.last_error is not None:
                logger.info("link to the hub is up again")
            else:
                logger.info("linked to the hub as agent {}", answer.agent)
            self.last_error = None
            reason = await session.run()
            raise LinkClosed(f"the link closed: {reason}")

    # --- the agent's end of the link ------------------------------------------------------------

    async def handle(self, messages: list[Message]) -> None:
        # Orders are independent and taken side by side; what concerns one order (the order,
        # then an action on it) is carried out in the order the hub sent it.
        by_order: dict[str, list[Message]] = {}
        for message in messages:
            by_order.setdefault(_order_of(message), []).append(message)
        await asyncio.gather(*(self._in_order(group) for group in by_order.values()))

    async def _in_order(self, group: list[Message]) -> None:
        for message in group:
            await self._receive(message)

    async def _receive(self, message: Message) -> None:
        if message.kind == "action":
            await self._action(message)
            return
        if message.kind != "order":
            logger.warning("the hub sent a message of unknown kind {!r}: ignored", message.kind)
            return
        try:
            handed = OrderHandedOver.model_validate(message.body)
        except ValidationError as exc:
            logger.error("the hub sent an unreadable order (message {}): {}", message.seq, exc)
            return
        order = handed.order
        jobs = self._host.connection_for_location(order.location)
        if jobs is None:
            reason = f"this venue agent does not serve location {order.location!r}"
            body = orjson.dumps({"order_id": order.id, "reason": reason})
            await self._host.store.link_enqueue(HUB, "refused", body, order.id)
            self.wake()
            return
        await accept_order(self._host.store, order, jobs, at=handed.received_at)

    async def _action(self, message: Message) -> None:
        """Carry out an action the hub forwarded; tell the hub when it cannot be."""
        try:
            action = OrderAction.model_validate(message.body)
        except ValidationError as exc:
            logger.error("the hub sent an unreadable action (message {}): {}", message.seq, exc)
            return
        why = await carry_out(self._host, action)
        if why is None:
            logger.info("order {}: {} asked by the hub, done", action.order_id, action.action)
            return
        logger.warning(
            "order {}: cannot {} as the hub asks: {}", action.order_id, action.action, why
        )
        refusal = ActionRefused(order_id=action.order_id, action=action.action, reason=why[:2000])
        body = orjson.dumps(refusal.model_dump(mode="json"))
        await self._host.store.link_enqueue(HUB, "action_refused", body, action.order_id)
        self.wake()

    async def outgoing(self, message: LinkMessage) -> bytes:
        """A menu notice travels with its menu, which the hub checks and publishes."""
        if message.kind != "event" or b'"menu.published"' not in message.body:
            return message.body
        notice = orjson.loads(message.body)
        snapshot = await self._host.store.menu_version(notice["location"], notice["version"])
        if snapshot is None:
            return message.body
        return orjson.dumps({**notice, "menu": orjson.Fragment(snapshot.body)})

    def acknowledged(self, order_ids: list[str]) -> None:
        """The hub has the statuses; nothing to do."""

    async def state(self) -> dict[str, Any]:
        """What the hub's fleet view shows of this agent."""
        connections = []
        for jobs in self._host.connections.values():
            health = jobs.connection.health
            connections.append(
                {
                    "name": jobs.connection.name,
                    "locations": list(jobs.connection.settings.locations),
                    "health": health.state.value,
                    "circuit": health.circuit.value,
                    "last_error": health.last_error,
                }
            )
        waiting = await self._host.store.link_waiting(HUB)
        return {"version": __version__, "waiting": waiting, "connections": connections}

    def peer_state(self, state: dict[str, Any]) -> None:
        self.hub_state = state


def _order_of(message: Message) -> str:
    """The order a message from the hub is about (its number when it is about none)."""
    order = message.body.get("order")
    order_id = order.get("id") if isinstance(order, dict) else message.body.get("order_id")
    return order_id if isinstance(order_id, str) else f"seq:{message.seq}"


async def carry_out(host: Host, action: OrderAction) -> str | None:
    """Carry out ``action`` as the agent's own API would, had it one: through the same
    functions a host serving its POS directly uses. An action that finds its order being sent
    to the POS waits for that attempt's outcome (up to :data:`IN_FLIGHT_WAIT_SECONDS`), where
    an operator at the API would be told to try again in a moment.

    Carrying out an action a second time (its message processed again after a crash between
    carrying it out and recording its number) mostly changes nothing: the order has moved on and
    the second is refused, or finds the cancellation asked already. docs/link.md says where it
    could matter.

    :returns: why it could not be carried out, or None.
    """
    deadline = asyncio.get_running_loop().time() + IN_FLIGHT_WAIT_SECONDS
    while True:
        try:
            return await _carry_out_once(host, action)
        except ProblemError as exc:
            busy = exc.problem.title == handlers.SUBMISSION_UNDER_WAY
            if not busy or asyncio.get_running_loop().time() >= deadline:
                return exc.problem.detail or exc.problem.title
        await asyncio.sleep(IN_FLIGHT_POLL_SECONDS)


async def _carry_out_once(host: Host, action: OrderAction) -> str | None:
    try:
        if action.action == "cancel":
            await handlers.cancel(host, action.order_id, CancelOrder.model_validate(action.request))
        elif action.action == "found":
            found = FoundInPos.model_validate(action.request)
            await handlers.mark_found(host, action.order_id, found)
        else:
            await handlers.requeue(
                host,
                action.order_id,
                OperatorAction.model_validate(action.request),
                known_missing=action.action == "missing",
            )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"the {action.action} request is malformed ({where}: {first['msg']})"
    return None

"""The durable store's interface and the records it returns.

The host talks to storage only through :class:`Store`, so a server-grade backend can replace the
embedded SQLite default. Every method that changes an order's status also writes the event for
the cloud in the same transaction (transactional outbox).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Protocol

import orjson

from posintegrator.cloud.events import MenuNotice
from posintegrator.hooktypes import TrackedOrder
from posintegrator.model import Order, OrderStatus, StatusEvent
from posintegrator.store.leases import LeaseStore
from posintegrator.store.link import LinkStore
from posintegrator.store.retention import RetentionStore
from posintegrator.store.streams import StreamsStore


class AcceptOutcome(StrEnum):
    """What happened to an order posted to the inbox."""

    CREATED = "created"
    REPLAYED = "replayed"
    """The same id with the same content was accepted before."""
    CONFLICT = "conflict"
    """The same id was accepted before with other content."""


class CancelState(StrEnum):
    """Where a cancellation asked of an order stands."""

    REQUESTED = "requested"
    """Asked for; the POS is (or will be) asked to cancel the order."""
    REFUSED = "refused"
    """The POS refused (too late, already handed over); the order goes on."""
    DONE = "done"
    """The order is CANCELLED."""


@dataclass(frozen=True)
class Cancellation:
    """A cancellation asked of an order, and how it went."""

    state: CancelState
    requested_by: str
    """Who asked: ``customer``, ``aggregator``, ``platform`` or ``operator:<name>``."""
    reason: str
    requested_at: datetime
    outcome: str | None
    """Why the POS refused it, or the last error while asking the POS."""


class CancelOutcome(StrEnum):
    """The store's answer to a cancellation request."""

    CANCELLED = "cancelled"
    """Cancelled at once: the POS certainly did not have the order."""
    REQUESTED = "requested"
    """Recorded: the POS must be asked (the answer follows as cloud events)."""
    ALREADY_REQUESTED = "already_requested"
    """A cancellation was already waiting for the POS's answer; nothing changed."""
    FINAL = "final"
    """The order is in a final status: nothing changed."""
    FORWARDED = "forwarded"
    """The order was handed to a venue agent: the request is recorded and queued for the agent
    (the answer follows as cloud events)."""


@dataclass(frozen=True)
class OrderRecord:
    """An order in the inbox and where its delivery stands."""

    order: Order
    connection: str
    status: OrderStatus
    status_reason: str | None
    pos_order_id: str | None
    idempotency_key: str
    content_hash: str
    created_at: datetime
    updated_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    maybe_in_pos: bool
    """An attempt may have reached the POS without us learning the outcome."""
    last_error: str | None
    cancellation: Cancellation | None = None

    @property
    def cancel_pending(self) -> bool:
        """Whether a cancellation waits for the POS's answer."""
        return self.cancellation is not None and self.cancellation.state == CancelState.REQUESTED

    @classmethod
    def received(
        cls,
        order: Order,
        connection: str,
        content_hash: str,
        idempotency_key: str,
        at: datetime,
    ) -> OrderRecord:
        """An order just accepted into the inbox at ``at``: RECEIVED, due for delivery now."""
        return cls(
            order=order,
            connection=connection,
            status=OrderStatus.RECEIVED,
            status_reason=None,
            pos_order_id=None,
            idempotency_key=idempotency_key,
            content_hash=content_hash,
            created_at=at,
            updated_at=at,
            attempts=0,
            next_attempt_at=at,
            maybe_in_pos=False,
            last_error=None,
        )


@dataclass(frozen=True)
class DueDeliveries:
    """What a delivery loop learns in one look at the store."""

    records: list[OrderRecord]
    """Orders with work for the POS due now, the earliest due first."""
    next_at: datetime | None
    """When the earliest of the connection's other orders falls due (a retry, a postponed
    order, a cancellation), if any waits."""


@dataclass(frozen=True)
class HistoryEntry:
    """One status event an order received, applied or not."""

    at: datetime
    status: OrderStatus
    applied: bool
    note: str | None
    """Why an event was not applied (``stale``, ``duplicate``), or a delivery remark."""
    source: str
    reason: str | None
    sequence: int | None
    """The sequence number of the cloud event it produced, when applied."""


@dataclass(frozen=True)
class Attempt:
    """One submission attempt of an order and how it ended."""

    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    """in_flight, interrupted (the host stopped during it), retry, unknown (the POS may have
    the order), or the status it led to (ACCEPTED, REJECTED, NEEDS_ATTENTION, FAILED)."""
    error: str | None


@dataclass(frozen=True)
class Transition:
    """The result of offering a status event to an order's state machine."""

    order_id: str
    applied: bool
    old: OrderStatus
    new: OrderStatus
    note: str | None = None


@dataclass(frozen=True)
class CancelRequestResult:
    """The store's answer to a cancellation request, and the order as it is now.

    :param transition: the change to CANCELLED, when the order was cancelled at once.
    """

    outcome: CancelOutcome
    record: OrderRecord
    transition: Transition | None = None
    agent: str | None = None
    """The venue agent holding the order, when it is with one."""


@dataclass(frozen=True)
class AcceptResult:
    """The inbox's answer to a posted order."""

    outcome: AcceptOutcome
    record: OrderRecord


@dataclass(frozen=True)
class OutboxEvent:
    """An event waiting to be delivered to the cloud."""

    event_id: str
    stream: str
    sequence: int
    body: bytes
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class OrderQuery:
    """What an operator searches orders by; every part that is given must match.

    :param text: part of the order's id or of the POS's id for it.
    """

    text: str | None = None
    location: str | None = None
    statuses: tuple[OrderStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 100


@dataclass(frozen=True)
class CloudEventRecord:
    """An event for the cloud as the outbox holds it: what was sent, when, and how it went."""

    event_id: str
    sequence: int
    body: bytes
    created_at: datetime
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class MenuBody:
    """A menu's stored JSON without its location: the part every location offering the same
    menu shares, kept once however many locations publish it.

    The JSON of one location's menu is ``before``, the location as a JSON string, ``after``
    (the menu's canonical JSON cut around its top-level ``location`` value). A chain of 500
    locations on one 20,000-variation catalog stores one 11 MB body, not 500.
    """

    before: bytes
    after: bytes

    def of(self, location: str) -> bytes:
        """The menu's JSON as ``location``'s."""
        return self.before + orjson.dumps(location) + self.after

    @cached_property
    def digest(self) -> str:
        """Names the body's content (SHA-256 of both parts, the cut between them included)."""
        hashed = hashlib.sha256(len(self.before).to_bytes(8, "big"))
        hashed.update(self.before)
        hashed.update(self.after)
        return hashed.hexdigest()


@dataclass(frozen=True)
class MenuSnapshot:
    """A published menu version of one location.

    :param stored: the shared body (:class:`MenuBody`), or the whole JSON of a version stored
        before bodies were shared.
    """

    location: str
    connection: str
    version: int
    content_hash: str
    stored: MenuBody | bytes
    published_at: datetime

    @property
    def body(self) -> bytes:
        """The menu's JSON, as served."""
        if isinstance(self.stored, bytes):
            return self.stored
        return self.stored.of(self.location)


class Store(LinkStore, LeaseStore, RetentionStore, StreamsStore, Protocol):
    """Durable state of the host. All methods are safe to call from the event loop."""

    shared: bool
    """Whether several worker processes may use this store at once (PostgreSQL): jobs that
    must run once then take a lease (:class:`~posintegrator.store.leases.LeaseStore`)."""

    async def open(self) -> None:
        """Create or migrate the schema, then get ready for use."""
        ...

    async def close(self) -> None:
        """Finish pending work and release the database."""
        ...

    async def check_writable(self) -> None:
        """Take the write lock and commit an empty transaction (a readiness probe).

        :raises Exception: the store cannot be written now.
        """
        ...

    # --- orders inbox -------------------------------------------------------------------------

    async def accept_order(
        self,
        order: Order,
        connection: str,
        content_hash: str,
        idempotency_key: str,
        *,
        at: datetime | None = None,
    ) -> AcceptResult:
        """Store a new order as RECEIVED (with its first cloud event), or report a replay.

        :param at: when it was received, if earlier than now (an agent stores the hub's time,
            so both ends agree on the order's deadline).
        """
        ...

    async def get_order(self, order_id: str) -> OrderRecord | None:
        """The order with this id."""
        ...

    async def order_content_hash(self, order_id: str) -> str | None:
        """The content hash of the order with this id, if there is one (a cheap replay check)."""
        ...

    async def order_history(self, order_id: str) -> list[HistoryEntry]:
        """Every status event the order received, oldest first."""
        ...

    async def order_id_for_pos_id(self, connection: str, pos_order_id: str) -> str | None:
        """Our id of the order the POS calls ``pos_order_id``."""
        ...

    async def orders_by_status(self, statuses: list[OrderStatus], limit: int) -> list[OrderRecord]:
        """Orders currently in one of ``statuses``, oldest first."""
        ...

    async def search_orders(self, query: OrderQuery) -> list[OrderRecord]:
        """Orders matching ``query``, newest first, at most ``query.limit``."""
        ...

    async def operator_requeue(
        self, order_id: str, *, operator: str, action: str, note: str | None, clear_maybe: bool
    ) -> OrderRecord:
        """Send an order to the POS again now, at an operator's request.

        An order parked as NEEDS_ATTENTION moves back to SUBMITTING (an operator's transition,
        which POS events cannot make); ``clear_maybe`` records the operator's finding that the
        POS does not have the order, so no lookup comes first. The action is recorded in the
        order's history with the operator's name.
        """
        ...

    async def record_action(
        self, order_id: str, *, operator: str, action: str, note: str | None
    ) -> None:
        """Record an operator's action in the order's history."""
        ...

    # --- cancellation ---------------------------------------------------------------------------

    async def request_cancel(
        self, order_id: str, cancel: StatusEvent, *, forward: bytes
    ) -> CancelRequestResult:
        """Ask for an order to be cancelled, in one transaction.

        ``cancel`` is the CANCELLED event: its ``source`` says who asks (``cloud:customer``,
        ``operator:dana``), its ``reason`` why. An order the POS certainly does not have (not
        confirmed, no attempt that may have reached it) is CANCELLED at once by it. Otherwise
        the request is recorded, due now, for the delivery engine to take to the POS; a request
        already waiting is left as it is.

        At a hub, an order queued for a venue agent whose message has certainly not left is
        taken back and treated as above. One the agent may have is the agent's to cancel: the
        request is recorded (not due at the hub) and ``forward``, the ``action`` message, is
        queued for the agent in the same transaction (``FORWARDED``).

        :raises KeyError: no such order.
        """
        ...

    async def refuse_cancel(self, order_id: str, *, reason: str, source: str) -> None:
        """Record that the POS refused a waiting cancellation, with the cloud's
        ``order.cancel_refused`` event (next in the order's sequence) in the same transaction."""
        ...

    async def cancel_later(self, order_id: str, *, error: str, due_at: datetime) -> None:
        """A cancellation could not be taken to the POS now: try again at ``due_at``."""
        ...

    # --- status ---------------------------------------------------------------------------------

    async def apply_status(
        self, order_id: str, event: StatusEvent, *, connection: str | None = None
    ) -> Transition:
        """Offer ``event`` to the order's state machine; record it and, if applied, its event.

        :param connection: when given, the order must belong to this connection.
        :raises KeyError: no such order (of ``connection``).
        """
        ...

    async def orders_in_flight(self, connection: str) -> list[TrackedOrder]:
        """Orders the POS has and that are not final, for status polling."""
        ...

    # --- delivery -------------------------------------------------------------------------------

    async def due_deliveries(self, connection: str, now: datetime, limit: int) -> DueDeliveries:
        """Orders of ``connection`` with work for the POS due by ``now`` (a submission attempt,
        or a cancellation to take to it), and when the next one after ``now`` falls due: both
        in one call, since a delivery loop asks for both each time it looks."""
        ...

    async def postpone(self, order_id: str, until: datetime, reason: str) -> None:
        """Leave an order waiting for delivery until ``until``, saying why (no attempt made)."""
        ...

    async def begin_attempt(self, order_id: str, lease_seconds: float = 60.0) -> int | None:
        """Record, durably and before the POS is called, that an attempt starts now.

        The order may be in the POS from now on until an outcome says otherwise, and it is not
        due again for ``lease_seconds`` (the attempt's time budget). Nothing is recorded for an
        order that is no longer to be sent (cancelled meanwhile, or a cancellation waits): the
        attempt must not call the POS.

        :returns: the attempt's number (1 for the first), or None when it must not start.
        """
        ...

    async def end_attempt(
        self,
        order_id: str,
        *,
        maybe_in_pos: bool,
        error: str,
        next_attempt_at: datetime,
        attempt: int | None = None,
    ) -> None:
        """Record an attempt that ended without the POS accepting or refusing the order.

        :param maybe_in_pos: whether the POS may have the order after all (outcome unknown), so
            the next attempt must look it up before sending it again.
        :param attempt: the attempt's number from :meth:`begin_attempt` (its fencing token):
            nothing is recorded when a later attempt has started since (this one's lease ran
            out and another worker took the order over).
        """
        ...

    async def finish_attempt(
        self, order_id: str, outcome: str, error: str | None = None, *, attempt: int | None = None
    ) -> None:
        """Record how the order's latest attempt (or attempt number ``attempt``, if it is
        still in flight) ended, when it settled the order."""
        ...

    async def attempts_of(self, order_id: str) -> list[Attempt]:
        """Every submission attempt of the order, oldest first."""
        ...

    # --- outbox ---------------------------------------------------------------------------------

    async def outbox_due(self, now: datetime, limit: int) -> list[OutboxEvent]:
        """The oldest undelivered event of each stream whose retry time has come."""
        ...

    async def outbox_claim(
        self, now: datetime, limit: int, lease_seconds: float
    ) -> list[OutboxEvent]:
        """The events :meth:`outbox_due` lists, taken for sending: where several workers share
        the store, each is claimed for ``lease_seconds`` (not due for another worker meanwhile,
        unless its delivery is recorded), so one worker at a time sends a stream's head."""
        ...

    async def outbox_next_at(self) -> datetime | None:
        """When the next outbox delivery is due, if any event is waiting."""
        ...

    async def outbox_delivered(self, event_id: str) -> None:
        """Mark an event as acknowledged by the cloud."""
        ...

    async def outbox_failed(self, event_id: str, error: str, next_attempt_at: datetime) -> None:
        """Record a failed delivery and when to try again."""
        ...

    async def outbox_pending(self) -> int:
        """How many events wait for delivery."""
        ...

    async def outbox_backlog(self) -> list[tuple[str, int, datetime]]:
        """Per stream kind (``order``, ``menu``): events waiting and when the oldest was made."""
        ...

    async def stream_events(self, stream: str, after: int = 0) -> list[CloudEventRecord]:
        """The events of one outbox stream (an order's, a menu's) numbered above ``after``,
        delivered or not, in order."""
        ...

    async def order_counts(self) -> list[tuple[str, str, int]]:
        """How many orders each connection has in each status."""
        ...

    def observe_writes(self, observer: Callable[[float], None]) -> None:
        """Call ``observer`` with the duration in seconds of every commit (for metrics)."""
        ...

    # --- menus ----------------------------------------------------------------------------------

    async def publish_menu(
        self,
        location: str,
        connection: str,
        content_hash: str,
        body: MenuBody,
        notice: MenuNotice | None = None,
    ) -> MenuSnapshot | None:
        """Store a new menu version and its cloud event; None when the hash is unchanged.

        :param body: stored once for every location publishing the same one
            (:attr:`MenuBody.digest`).
        :param notice: what changed since the previous version, for the cloud event.
        """
        ...

    async def latest_menu(self, location: str) -> MenuSnapshot | None:
        """The last published menu of ``location``."""
        ...

    async def menu_locations(self) -> set[str]:
        """The locations with at least one published menu."""
        ...

    async def menu_version(self, location: str, version: int) -> MenuSnapshot | None:
        """One published version of ``location``'s menu, if it exists."""
        ...

    async def save_menu_report(self, location: str, body: bytes) -> None:
        """Keep the latest validation report of ``location`` (replacing the previous one)."""
        ...

    async def menu_report(self, location: str) -> bytes | None:
        """The latest validation report of ``location``."""
        ...

    # --- plugin state ---------------------------------------------------------------------------

    async def state_get(self, connection: str, key: str) -> str | None:
        """A value a plugin stored for its connection."""
        ...

    async def state_set(self, connection: str, key: str, value: str) -> None:
        """Store a value for a plugin's connection."""
        ...

    async def state_delete(self, connection: str, key: str) -> None:
        """Forget a value a plugin stored for its connection."""
        ...

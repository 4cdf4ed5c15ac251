"""Response bodies of the Integrator API (requests are the universal model itself)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from posintegrator.hooktypes import Capabilities
from posintegrator.model import Order, OrderStatus
from posintegrator.model.menu_diff import MenuDiff


class Health(BaseModel):
    """Liveness of the host."""

    status: str = Field(description="ok, or stopping while shutting down.")
    version: str


class Readiness(BaseModel):
    """Whether the host should get traffic, and why not."""

    status: Literal["ready", "starting", "stopping", "store_unavailable"]
    detail: str | None = None
    locations_without_menu: list[str] = Field(
        default_factory=list,
        description="Locations whose orders are refused (503) until their first menu arrives. "
        "Informational: one venue's POS being down does not make the host unready.",
    )


class OrderAccepted(BaseModel):
    """The answer to a posted order."""

    id: str
    status: OrderStatus


class HistoryItem(BaseModel):
    """One status event an order received; ``applied`` is false for stale or duplicate ones."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    status: OrderStatus
    applied: bool
    note: str | None
    source: str
    reason: str | None
    sequence: int | None


class AttemptView(BaseModel):
    """One submission attempt and how it ended."""

    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None


class CancellationView(BaseModel):
    """A cancellation asked of the order: ``requested`` (the POS is being asked), ``refused``
    (the POS said no: ``outcome`` says why; the order goes on) or ``done`` (CANCELLED)."""

    model_config = ConfigDict(from_attributes=True)

    state: str
    requested_by: str
    reason: str
    requested_at: datetime
    outcome: str | None = Field(
        description="The POS's words on a refusal, or the last error while asking it."
    )


class OrderView(BaseModel):
    """An order, where it stands, and how it got there."""

    order: Order
    status: OrderStatus
    status_reason: str | None
    pos_order_id: str | None
    connection: str
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    history: list[HistoryItem]
    delivery_attempts: list[AttemptView]
    cancellation: CancellationView | None = None


class PluginView(BaseModel):
    """A loaded plugin."""

    name: str
    version: str
    distribution: str | None
    capabilities: Capabilities


class MenuSyncView(BaseModel):
    """The latest menu sync of one location."""

    location: str
    at: datetime
    ok: bool
    version: int | None
    error: str | None


class ConnectionView(BaseModel):
    """A configured connection and how its POS is doing."""

    name: str
    plugin: str
    locations: list[str]
    health: str
    health_since: datetime
    last_error: str | None
    circuit: str = Field(description="closed, open (calls paused) or half_open (probing).")
    probe_at: datetime | None = Field(description="When the next probe may go, while open.")
    status_source: str
    orders_in_flight: int
    menu_syncs: list[MenuSyncView]
    placement: str = Field(description="central, local or hybrid: where its streams run.")
    agents: list[str] = Field(
        default_factory=list,
        description="For a local or hybrid connection: the venue agents serving its locations "
        "(see GET /v1/agents); its health is then what they report of their POS.",
    )


class PluginList(BaseModel):
    """Every loaded plugin."""

    plugins: list[PluginView]


class ConnectionList(BaseModel):
    """Every configured connection."""

    connections: list[ConnectionView]


class MenuDiffView(BaseModel):
    """What changed in a location's menu from one version to the latest."""

    location: str
    from_version: int
    to_version: int
    content_hash: str = Field(description="Hash of the latest version (its ETag).")
    diff: MenuDiff


class OrderSummary(BaseModel):
    """An order in a list: where it stands, without its content."""

    id: str
    location: str
    connection: str
    status: OrderStatus
    status_reason: str | None
    pos_order_id: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class OrderList(BaseModel):
    """Orders, oldest first."""

    orders: list[OrderSummary]


class OperatorAction(BaseModel):
    """Who acts on an order, and why (recorded in the order's history)."""

    model_config = ConfigDict(extra="forbid")

    operator: str = Field(min_length=1, max_length=100, description="Who does it.")
    note: str | None = Field(default=None, max_length=1000)


class FoundInPos(OperatorAction):
    """An operator found the order in the POS."""

    pos_order_id: str = Field(min_length=1, max_length=200, description="The POS's id of it.")


class WebhookReceived(BaseModel):
    """What a POS webhook carried, once its plugin has verified and read it."""

    received: int = Field(description="Status events it carried.")
    availability: int = Field(description="Availability changes (86 and back) it carried.")


class AgentConnectionView(BaseModel):
    """A connection of a venue agent, as the agent last reported it."""

    name: str
    locations: list[str]
    health: str
    circuit: str
    last_error: str | None = None


class AgentView(BaseModel):
    """A venue agent: what it may serve, and how its link is doing."""

    name: str
    status: str = Field(description="approved, or revoked (its link is refused).")
    version: str | None = Field(description="The release it last said it runs.")
    locations: list[str]
    connected: bool
    since: datetime = Field(description="When it connected, or went offline (or was approved).")
    last_heartbeat: datetime | None
    rtt_ms: float | None = Field(description="Round trip of the last heartbeat.")
    waiting_to_agent: int = Field(description="Messages for the agent not yet acknowledged.")
    waiting_from_agent: int | None = Field(
        description="Messages the agent holds for the hub, as it last reported."
    )
    connections: list[AgentConnectionView]


class AgentList(BaseModel):
    """Every venue agent."""

    agents: list[AgentView]


class CancelledBy(StrEnum):
    """Who asks for an order to be cancelled."""

    CUSTOMER = "customer"
    AGGREGATOR = "aggregator"
    PLATFORM = "platform"
    OPERATOR = "operator"


class CancelOrder(BaseModel):
    """A cancellation: who asks, and why (shown to the POS's staff and recorded)."""

    model_config = ConfigDict(extra="forbid")

    requested_by: CancelledBy
    reason: str = Field(min_length=1, max_length=1000)
    operator: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        validate_default=True,
        description="Who, when requested_by is operator (recorded in the history).",
    )

    @field_validator("operator")
    @classmethod
    def _operator_named(cls, operator: str | None, info: ValidationInfo) -> str | None:
        by_operator = info.data.get("requested_by") == CancelledBy.OPERATOR
        if by_operator and operator is None:
            raise ValueError("name the operator who cancels")
        if not by_operator and operator is not None:
            raise ValueError("only an operator's cancellation names one (requested_by operator)")
        return operator

    @property
    def source(self) -> str:
        """Who asks, as the order's history and the cloud's events name it."""
        if self.operator is not None:
            return f"operator:{self.operator}"
        return f"cloud:{self.requested_by.value}"


class StreamView(BaseModel):
    """A stream of events to the cloud, and the head event the rest of it waits for."""

    stream: str = Field(description="order:<order id> or menu:<location>.")
    connection: str | None = Field(description="The connection of its order or location.")
    event_id: str = Field(description="The head event: the stream's oldest undelivered one.")
    sequence: int = Field(description="The head event's sequence number in its stream.")
    created_at: datetime = Field(description="When the head event was made.")
    age_seconds: float = Field(description="How long the stream has waited for its head.")
    attempts: int = Field(description="Failed deliveries of the head event.")
    last_error: str | None = Field(
        description="The last failure: the cloud's answer (HTTP status and the start of its "
        "body), or why there was none."
    )
    next_attempt_at: datetime = Field(description="When the head event is tried next.")
    waiting: int = Field(description="Undelivered events of the stream, the head included.")
    stuck: bool = Field(description="Waiting longer than cloud.stuck_after_seconds.")


class StreamList(BaseModel):
    """Streams whose head event failed, the longest waiting first."""

    streams: list[StreamView]
    stuck_after_seconds: float = Field(description="cloud.stuck_after_seconds of this host.")


class SkipEvent(OperatorAction):
    """An operator skips a stream's head event: it is never delivered."""

    event_id: str = Field(
        min_length=1,
        max_length=100,
        description="The head event to skip, as listed (409 if the head is another one by then).",
    )


class StreamActionResult(BaseModel):
    """What an operator's action on a stream did."""

    stream: str
    action: str = Field(description="retry or skip.")
    event_id: str = Field(description="The event acted on.")
    head: StreamView | None = Field(description="The stream's head now; null when none waits.")

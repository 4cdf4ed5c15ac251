"""Order status vocabulary, the forward-only state machine, and status events."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from posintegrator.model.base import Id, UniversalModel, UtcDateTime, utcnow


class OrderStatus(StrEnum):
    """Where an order stands, as the cloud sees it."""

    RECEIVED = "RECEIVED"
    """Accepted by the Integrator API and stored; not yet sent to the POS."""
    SUBMITTING = "SUBMITTING"
    """Being delivered to the POS (retries stay here)."""
    ACCEPTED = "ACCEPTED"
    """The POS has the order."""
    IN_PREPARATION = "IN_PREPARATION"
    READY = "READY"
    COMPLETED = "COMPLETED"
    """Handed over; final."""
    REJECTED = "REJECTED"
    """The POS refused the order; final."""
    FAILED = "FAILED"
    """The order could not be delivered; final."""
    CANCELLED = "CANCELLED"
    """Final."""
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    """An operator must check whether the POS has the order (outcome unknown, no safe retry)."""


FINAL_STATUSES = frozenset(
    {OrderStatus.COMPLETED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.CANCELLED}
)

#: The happy path, in order. A status may skip ahead along it but never go back.
_PROGRESS = (
    OrderStatus.RECEIVED,
    OrderStatus.SUBMITTING,
    OrderStatus.ACCEPTED,
    OrderStatus.IN_PREPARATION,
    OrderStatus.READY,
    OrderStatus.COMPLETED,
)
_RANK = {status: rank for rank, status in enumerate(_PROGRESS)}
# NEEDS_ATTENTION sits between SUBMITTING and ACCEPTED: the POS may or may not have the order.
_RANK[OrderStatus.NEEDS_ATTENTION] = _RANK[OrderStatus.SUBMITTING]


def is_final(status: OrderStatus) -> bool:
    """Whether nothing can follow ``status``."""
    return status in FINAL_STATUSES


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    """Whether an order in ``current`` may move to ``new``.

    Status only moves forward: along the happy path (skipping is fine, e.g. ACCEPTED -> READY),
    into a final status from any non-final one, and into NEEDS_ATTENTION before the POS has
    confirmed the order. A repeated or older status is refused, and nothing leaves a final status.
    Leaving NEEDS_ATTENTION for SUBMITTING is an operator's decision, see
    :func:`can_retry_delivery`, not something a POS event can do.
    """
    if is_final(current) or new == current:
        return False
    if is_final(new):
        return True
    if new == OrderStatus.NEEDS_ATTENTION:
        return current in (OrderStatus.RECEIVED, OrderStatus.SUBMITTING)
    if current == OrderStatus.NEEDS_ATTENTION and new == OrderStatus.SUBMITTING:
        return False
    return _RANK[new] > _RANK[current]


def can_retry_delivery(current: OrderStatus) -> bool:
    """Whether an operator may send an order to the POS again."""
    return current in (OrderStatus.NEEDS_ATTENTION, OrderStatus.RECEIVED, OrderStatus.SUBMITTING)


class StatusEvent(UniversalModel):
    """Something a POS (or the host, or an operator) says about one order's status.

    A plugin names the order by our id (``order_id``, which the POS usually stores as its external
    reference) or by the POS's own id (``pos_order_id``); the host maps the latter back.
    """

    order_id: Id | None = None
    pos_order_id: Id | None = None
    status: OrderStatus
    occurred_at: UtcDateTime = Field(default_factory=utcnow)
    reason: str | None = Field(default=None, max_length=2000)
    source: str = Field(default="pos", max_length=200)
    pos_event_id: str | None = Field(
        default=None, max_length=200, description="The POS's id for this event, for dedup."
    )

    @model_validator(mode="after")
    def _names_an_order(self) -> StatusEvent:
        if self.order_id is None and self.pos_order_id is None:
            raise ValueError("a status event needs order_id or pos_order_id")
        return self

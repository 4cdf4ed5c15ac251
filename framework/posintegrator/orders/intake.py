"""Taking an order from the cloud into the inbox: checks that need the deployment, the content
hash that tells a replay from a conflict, and the order's stable idempotency key."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from posintegrator.model import Order
from posintegrator.runtime.scheduler import ConnectionJobs
from posintegrator.store import AcceptResult, Store

#: Namespace of the idempotency keys we derive from order ids (UUID v5: stable, 36 characters,
#: short enough for POS APIs that cap key length, e.g. Square's 45).
_KEY_NAMESPACE = uuid.UUID("5f0b8f36-5c3c-4d8f-9a55-6a1f3f2b7d10")


@dataclass(frozen=True)
class OrderProblem(Exception):
    """An order this deployment cannot take: which field, and why."""

    field: str
    reason: str


def idempotency_key(order_id: str) -> str:
    """The key every submission of this order carries: the same on every retry and restart."""
    return str(uuid.uuid5(_KEY_NAMESPACE, order_id))


def order_content_hash(order: Order) -> str:
    """A hash of the order's meaning: independent of key order, whitespace and defaults.

    The model serialises its fields in a fixed order with defaults filled in, so its JSON is a
    canonical form of the order.
    """
    return hashlib.sha256(order.model_dump_json().encode()).hexdigest()


def check_order(order: Order, jobs: ConnectionJobs | None) -> None:
    """Refuse an order no connection of this deployment can deliver.

    :raises OrderProblem: naming the field and the reason.
    """
    if jobs is None:
        raise OrderProblem("location", f"no connection serves location {order.location!r}")
    caps = jobs.connection.plugin.capabilities()
    if not caps.orders:
        raise OrderProblem("location", f"the POS of {order.location!r} does not take orders")
    if order.type not in caps.order_types:
        raise OrderProblem(
            "type", f"the POS of {order.location!r} does not take {order.type} orders"
        )
    if order.payment.mode not in caps.payment_modes:
        raise OrderProblem(
            "payment.mode",
            f"the POS of {order.location!r} does not take {order.payment.mode} payments",
        )


async def accept_order(store: Store, order: Order, jobs: ConnectionJobs) -> AcceptResult:
    """Store ``order`` in the inbox (the exactly-once dedup point) and wake its delivery."""
    result = await store.accept_order(
        order, jobs.connection.name, order_content_hash(order), idempotency_key(order.id)
    )
    jobs.delivery.wake()
    return result

"""Taking an order from the cloud into the inbox: checks that need the deployment, the content
hash that tells a replay from a conflict, and the order's stable idempotency key."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from posintegrator.model import Order
from posintegrator.runtime.scheduler import ConnectionJobs
from posintegrator.settings import OrderSettings
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


def check_order(order: Order, jobs: ConnectionJobs | None, limits: OrderSettings) -> None:
    """Refuse an order that is larger than this deployment's limits, or that no connection of it
    can deliver.

    :raises OrderProblem: naming the field and the reason.
    """
    check_size(order, limits)
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


def check_size(order: Order, limits: OrderSettings) -> None:
    """Refuse an order with more lines, modifiers or modifier nesting than ``limits`` allow.

    :raises OrderProblem: naming the first field over a limit.
    """
    if len(order.lines) > limits.max_lines:
        raise OrderProblem("lines", f"{len(order.lines)} lines; at most {limits.max_lines}")
    for index, line in enumerate(order.lines):
        lists = [(f"lines[{index}].modifiers", line.modifiers, 1)]
        lists += [
            (f"lines[{index}].components[{c}].modifiers", component.modifiers, 1)
            for c, component in enumerate(line.components)
        ]
        count = 0
        while lists:
            path, modifiers, depth = lists.pop()
            if modifiers and depth > limits.max_modifier_depth:
                raise OrderProblem(
                    path, f"modifiers nested {depth} deep; at most {limits.max_modifier_depth}"
                )
            count += len(modifiers)
            lists.extend(
                (f"{path}[{m}].modifiers", modifier.modifiers, depth + 1)
                for m, modifier in enumerate(modifiers)
            )
        if count > limits.max_modifiers_per_line:
            raise OrderProblem(
                f"lines[{index}]",
                f"{count} modifiers; at most {limits.max_modifiers_per_line} per line",
            )


async def accept_order(
    store: Store, order: Order, jobs: ConnectionJobs, *, at: datetime | None = None
) -> AcceptResult:
    """Store ``order`` in the inbox (the exactly-once dedup point) and wake its delivery.

    :param at: when the order was first received, when that was elsewhere (a venue agent
        passes its hub's time).
    """
    result = await store.accept_order(
        order, jobs.connection.name, order_content_hash(order), idempotency_key(order.id), at=at
    )
    jobs.delivery.wake()
    return result

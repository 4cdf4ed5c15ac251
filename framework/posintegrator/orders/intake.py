"""Taking an order from the cloud into the inbox: checks that need the deployment, the content
hash that tells a replay from a conflict (:func:`order_content_hash`), and the order's stable
idempotency key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from posintegrator.hooktypes import OrderFeature, features_of
from posintegrator.model import Order
from posintegrator.model.order import order_content_hash
from posintegrator.runtime.scheduler import ConnectionJobs
from posintegrator.settings import OrderSettings
from posintegrator.store import AcceptOutcome, AcceptResult, Store

__all__ = ["OrderProblem", "accept_order", "check_order", "idempotency_key", "order_content_hash"]

#: Namespace of the idempotency keys we derive from order ids (UUID v5: stable, 36 characters,
#: short enough for POS APIs that cap key length, e.g. Square's 45).
_KEY_NAMESPACE = uuid.UUID("5f0b8f36-5c3c-4d8f-9a55-6a1f3f2b7d10")


@dataclass(frozen=True)
class OrderProblem:
    """Why this deployment cannot take an order: which field, and why."""

    field: str
    reason: str


#: What each optional part of an order is, for a refusal.
_FEATURE_NAMES: dict[OrderFeature, str] = {
    OrderFeature.LINE_DISCOUNTS: "discounts on lines",
    OrderFeature.DISCOUNTS: "discounts on the order",
    OrderFeature.CHARGES: "charges (delivery, service, packaging or bag fees)",
    OrderFeature.TIP: "a tip",
    OrderFeature.SPLIT_PAYMENTS: "more than one payment",
    OrderFeature.DELIVERY_DETAILS: "delivery details",
    OrderFeature.TABLE: "a table",
    OrderFeature.FISCAL_DOCUMENT: "a fiscal document",
}


def idempotency_key(order_id: str) -> str:
    """The key every submission of this order carries: the same on every retry and restart."""
    return str(uuid.uuid5(_KEY_NAMESPACE, order_id))


def check_order(
    order: Order, jobs: ConnectionJobs | None, limits: OrderSettings, channels: frozenset[str]
) -> list[OrderProblem]:
    """Why this deployment cannot take ``order`` as it is (empty: it can).

    The order must be within the deployment's size ``limits``, its channel one of the
    deployment's ``channels``; a connection must serve its location, and that connection's POS
    plugin must take its type and payment modes and carry every optional part it uses, rather
    than drop one on the way to the POS.
    """
    problems = size_problems(order, limits)
    if order.channel not in channels:
        known = ", ".join(sorted(channels))
        problems.append(
            OrderProblem(
                "channel", f"unknown channel {order.channel!r}; this deployment's are {known}"
            )
        )
    if jobs is None:
        problems.append(
            OrderProblem("location", f"no connection serves location {order.location!r}")
        )
        return problems
    caps = jobs.connection.plugin.capabilities()
    where = f"the POS of {order.location!r}"
    if not caps.orders:
        problems.append(OrderProblem("location", f"{where} does not take orders"))
        return problems
    if order.type not in caps.order_types:
        problems.append(OrderProblem("type", f"{where} does not take {order.type} orders"))
    for index, payment in enumerate(order.payments):
        if payment.mode not in caps.payment_modes:
            problems.append(
                OrderProblem(
                    f"payments[{index}].mode", f"{where} does not take {payment.mode} payments"
                )
            )
    for feature, field in features_of(order):
        if feature not in caps.order_features:
            problems.append(
                OrderProblem(
                    field,
                    f"{where} cannot carry {_FEATURE_NAMES[feature]} to the POS (its plugin "
                    f"does not declare {feature.value!r}); the order would lose them",
                )
            )
    return problems


def size_problems(order: Order, limits: OrderSettings) -> list[OrderProblem]:
    """The first field of ``order`` with more lines, modifiers or modifier nesting than
    ``limits`` allow, if any."""
    if len(order.lines) > limits.max_lines:
        return [OrderProblem("lines", f"{len(order.lines)} lines; at most {limits.max_lines}")]
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
                return [
                    OrderProblem(
                        path, f"modifiers nested {depth} deep; at most {limits.max_modifier_depth}"
                    )
                ]
            count += len(modifiers)
            lists.extend(
                (f"{path}[{m}].modifiers", modifier.modifiers, depth + 1)
                for m, modifier in enumerate(modifiers)
            )
        if count > limits.max_modifiers_per_line:
            return [
                OrderProblem(
                    f"lines[{index}]",
                    f"{count} modifiers; at most {limits.max_modifiers_per_line} per line",
                )
            ]
    return []


async def accept_order(
    store: Store, order: Order, jobs: ConnectionJobs, *, at: datetime | None = None
) -> AcceptResult:
    """Store ``order`` in the inbox (the exactly-once dedup point) and offer it to its delivery.

    :param at: when the order was first received, when that was elsewhere (a venue agent
        passes its hub's time).
    """
    result = await store.accept_order(
        order, jobs.connection.name, order_content_hash(order), idempotency_key(order.id), at=at
    )
    if result.outcome == AcceptOutcome.CREATED:
        jobs.delivery.offer(result.record)
    else:
        jobs.delivery.wake()
    return result

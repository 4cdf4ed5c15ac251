"""The order book: committing orders, state transitions and the global change feed.

All mutations are synchronous (no ``await`` inside), which makes each of them atomic on the
event loop: two concurrent requests with the same Idempotency-Key can never both create an
order. Every mutation is persisted before it is announced to listeners (webhooks).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import ApiError, JSONDict
from .menu import iso
from .storage import Storage, Touched

KITCHEN_FLOW: dict[str, str] = {
    "accepted": "preparing",
    "preparing": "ready",
    "ready": "picked_up",
}
"""Next kitchen stage of every unfinished state."""
CANCELLABLE = frozenset({"accepted"})
"""An order can be cancelled only while it waits in the kitchen's queue: once the kitchen is
preparing it, it is too late."""
FINAL_STATES = frozenset({"picked_up", "cancelled"})

EventListener = Callable[[JSONDict], None]


class OrderBook:
    """Owns orders, idempotency records and events inside the persisted state."""

    def __init__(self, storage: Storage, on_event: EventListener | None = None) -> None:
        self.storage = storage
        self.on_event = on_event

    def get(self, order_id: str) -> JSONDict | None:
        """Return a copy of one order, or ``None``."""
        order = self.storage.state.orders.get(order_id)
        return copy.deepcopy(order) if order is not None else None

    def find(self, reference: str | None = None, location: str | None = None) -> list[JSONDict]:
        """Return copies of all orders (optionally filtered), oldest first."""
        return [
            copy.deepcopy(order)
            for order in self.storage.state.orders.values()
            if (reference is None or order["reference"] == reference)
            and (location is None or order["location"] == location)
        ]

    def unfinished(self) -> dict[str, float]:
        """Return order id -> stage start for orders still moving through the kitchen."""
        return dict(self.storage.state.kitchen)

    def lookup_idempotent(self, key: str, body_hash: str) -> JSONDict | None:
        """Return the order already created for ``key``; 422 if the body differs."""
        record = self.storage.state.idempotency.get(key)
        if record is None:
            return None
        if record["body_hash"] != body_hash:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body",
            )
        return self.get(record["order_id"])

    def create(self, key: str, body_hash: str, order_input: JSONDict) -> JSONDict:
        """Commit a validated order in state ``accepted`` and emit its first event."""
        state = self.storage.state
        state.last_order_number += 1
        order_id = f"D-{state.last_order_number:06d}"
        now = datetime.now(UTC)
        order: JSONDict = {
            "id": order_id,
            **order_input,
            "state": "accepted",
            "created_at": iso(now),
            "updated_at": iso(now),
            "history": [],
        }
        state.orders[order_id] = order
        state.idempotency[key] = {"order_id": order_id, "body_hash": body_hash}
        state.kitchen[order_id] = time.time()
        event = self._append_event(order, "accepted", now)
        self.storage.save(
            Touched(orders={order_id}, events=[event], idempotency={key}, kitchen={order_id})
        )
        self._announce(event)
        return copy.deepcopy(order)

    def transition(self, order_id: str, new_state: str, stage_started: float | None) -> JSONDict:
        """Move an order to ``new_state``, record the event, persist and announce it.

        ``stage_started`` is when the new stage nominally began (used to resume timers after
        a restart); it is dropped once the order reaches a final state.
        """
        state = self.storage.state
        order = state.orders[order_id]
        now = datetime.now(UTC)
        order["state"] = new_state
        order["updated_at"] = iso(now)
        if new_state in FINAL_STATES or stage_started is None:
            state.kitchen.pop(order_id, None)
        else:
            state.kitchen[order_id] = stage_started
        event = self._append_event(order, new_state, now)
        self.storage.save(Touched(orders={order_id}, events=[event], kitchen={order_id}))
        self._announce(event)
        return copy.deepcopy(order)

    def cancel(self, order_id: str, reason: str | None = None) -> JSONDict:
        """Cancel an order still waiting in the kitchen's queue (again: the same answer);
        404 for an unknown order, 409 ``not_cancellable`` once the kitchen has started it."""
        order = self.storage.state.orders.get(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"order {order_id!r} does not exist")
        if order["state"] == "cancelled":
            return copy.deepcopy(order)
        if order["state"] not in CANCELLABLE:
            raise ApiError(
                409,
                "not_cancellable",
                f"too late: order {order_id!r} is {order['state']}",
                state=order["state"],
            )
        order["cancel_reason"] = reason
        return self.transition(order_id, "cancelled", None)

    def events_after(self, after: int, limit: int) -> tuple[list[JSONDict], int, bool]:
        """Return up to ``limit`` events with ``seq > after``, the cursor and a more-flag."""
        events = self.storage.state.events
        start = max(after, 0)
        # seq numbers are contiguous from 1, so seq N sits at index N-1; fall back to a scan
        # if that invariant were ever broken.
        if not (start < len(events) and events[start]["seq"] == start + 1):
            start = next((i for i, ev in enumerate(events) if ev["seq"] > after), len(events))
        batch = copy.deepcopy(events[start : start + limit])
        last = batch[-1]["seq"] if batch else self.storage.state.last_seq
        return batch, last, start + limit < len(events)

    def _append_event(self, order: JSONDict, new_state: str, now: datetime) -> JSONDict:
        """Add a change-feed entry and the matching history entry to the order."""
        state = self.storage.state
        state.last_seq += 1
        event = {
            "seq": state.last_seq,
            "order_id": order["id"],
            "reference": order["reference"],
            "location": order["location"],
            "state": new_state,
            "at": iso(now),
        }
        state.events.append(event)
        order["history"].append({"seq": event["seq"], "state": new_state, "at": event["at"]})
        return event

    def _announce(self, event: JSONDict) -> None:
        """Tell the listener (webhook dispatcher) about a persisted event."""
        if self.on_event is not None:
            self.on_event(copy.deepcopy(event))

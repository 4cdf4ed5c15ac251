"""Durable state: the :class:`Store` interface and its embedded SQLite implementation."""

from posintegrator.store.base import (
    AcceptOutcome,
    AcceptResult,
    Attempt,
    Cancellation,
    CancelOutcome,
    CancelRequestResult,
    CancelState,
    CloudEventRecord,
    DueDeliveries,
    HistoryEntry,
    MenuBody,
    MenuSnapshot,
    OrderQuery,
    OrderRecord,
    OutboxEvent,
    Store,
    Transition,
)
from posintegrator.store.sqlite import SQLiteStore

__all__ = [
    "AcceptOutcome",
    "AcceptResult",
    "Attempt",
    "CancelOutcome",
    "CancelRequestResult",
    "CancelState",
    "Cancellation",
    "CloudEventRecord",
    "DueDeliveries",
    "HistoryEntry",
    "MenuBody",
    "MenuSnapshot",
    "OrderQuery",
    "OrderRecord",
    "OutboxEvent",
    "SQLiteStore",
    "Store",
    "Transition",
]

"""Durable state of the simulated POS in a single JSON file.

Everything a restart must survive (orders, the change feed, the idempotency map, sequence
counters, kitchen schedules and staff availability overrides) lives in
``<data_dir>/demopos.json``. The file is rewritten atomically (temp file, fsync,
``os.replace``) after every change, so a crash leaves either the old or the new state on disk,
never a torn file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import JSONDict

FILE_NAME = "demopos.json"
FORMAT_VERSION = 1


@dataclass
class PosState:
    """In-memory mirror of ``demopos.json``."""

    orders: dict[str, JSONDict] = field(default_factory=dict)
    """POS order id -> order document, in creation order."""
    events: list[JSONDict] = field(default_factory=list)
    """The global change feed, ascending by ``seq``."""
    idempotency: dict[str, JSONDict] = field(default_factory=dict)
    """Idempotency-Key -> ``{"order_id", "body_hash"}``."""
    kitchen: dict[str, float] = field(default_factory=dict)
    """Unfinished order id -> epoch seconds when its current stage (nominally) began."""
    availability: dict[str, JSONDict] = field(default_factory=dict)
    """Location -> staff availability overrides ``{"items": {id: record}, "options": {...}}``;
    a record is ``{"available", "until", "reason", "at"}`` (see :mod:`.availability`)."""
    last_order_number: int = 0
    last_seq: int = 0
    last_availability_seq: int = 0
    """Counter of availability webhooks (separate from the order change feed's ``seq``)."""

    def to_json(self) -> JSONDict:
        """Serialise to the on-disk document."""
        return {
            "version": FORMAT_VERSION,
            "last_order_number": self.last_order_number,
            "last_seq": self.last_seq,
            "orders": list(self.orders.values()),
            "events": self.events,
            "idempotency": self.idempotency,
            "kitchen": self.kitchen,
            "availability": self.availability,
            "last_availability_seq": self.last_availability_seq,
        }

    @classmethod
    def from_json(cls, doc: Any) -> PosState:
        """Rebuild from the on-disk document (raises ``ValueError`` when malformed)."""
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported {FILE_NAME} format")
        return cls(
            orders={order["id"]: order for order in doc["orders"]},
            events=list(doc["events"]),
            idempotency=dict(doc["idempotency"]),
            kitchen={k: float(v) for k, v in doc["kitchen"].items()},
            last_order_number=int(doc["last_order_number"]),
            last_seq=int(doc["last_seq"]),
            # Absent from files written before availability overrides existed.
            availability=dict(doc.get("availability") or {}),
            last_availability_seq=int(doc.get("last_availability_seq") or 0),
        )


class Storage:
    """Loads and atomically saves :class:`PosState` in a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / FILE_NAME
        self.state = PosState()

    def load(self) -> PosState:
        """Read the state file if present (creating the directory otherwise)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            try:
                self.state = PosState.from_json(orjson.loads(self.path.read_bytes()))
            except (ValueError, KeyError, TypeError) as exc:
                raise RuntimeError(f"cannot load {self.path}: {exc}") from exc
        return self.state

    def save(self) -> None:
        """Write the whole state atomically: temp file + fsync + ``os.replace``."""
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        data = orjson.dumps(self.state.to_json())
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

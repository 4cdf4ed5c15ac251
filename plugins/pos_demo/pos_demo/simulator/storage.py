"""Durable state of the simulated POS in one SQLite database.

Everything a restart must survive (orders, the change feed, the idempotency map, sequence
counters, kitchen schedules and staff availability overrides) lives in
``<data_dir>/demopos.sqlite3``, one row per order, event, key, ... The simulator works on an
in-memory mirror (:class:`PosState`) and, after each change, writes only the rows that change
touched (:class:`Touched`) in one transaction, so a change costs the same however many orders
the POS already holds. The database runs in WAL mode with ``synchronous=FULL``: a commit is on
disk before the change is answered or announced, and a crash (even ``kill -9``) leaves either
the state before or after a change, never half of one.

A data directory from before this database (``demopos.json``, the whole state rewritten per
change) is migrated once: its state is imported in one transaction and the file renamed to
``demopos.json.migrated``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import JSONDict

DB_NAME = "demopos.sqlite3"
LEGACY_FILE_NAME = "demopos.json"
"""The whole-state JSON file of earlier versions, migrated on first load."""
LEGACY_FORMAT_VERSION = 1
SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; a database with another version is refused."""

_SCHEMA = f"""
BEGIN;
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, order_id TEXT NOT NULL, body_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kitchen (order_id TEXT PRIMARY KEY, stage_started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS availability (
    location TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (location, kind, key)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
PRAGMA user_version={SCHEMA_VERSION};
COMMIT;
"""
COUNTERS = ("last_order_number", "last_seq", "last_availability_seq")


@dataclass
class PosState:
    """In-memory mirror of the database; the simulator reads and changes this."""

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

    @classmethod
    def from_legacy_json(cls, doc: Any) -> PosState:
        """Rebuild from a ``demopos.json`` document (raises ``ValueError`` when malformed)."""
        if not isinstance(doc, dict) or doc.get("version") != LEGACY_FORMAT_VERSION:
            raise ValueError(f"unsupported {LEGACY_FILE_NAME} format")
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


@dataclass
class Touched:
    """What one change touched in :class:`PosState`: the rows :meth:`Storage.save` writes.

    A key listed here is written from the state as it is now, or deleted from the database if
    the state no longer holds it (a kitchen entry of a finished order). The counters are
    always written (three small rows).
    """

    orders: set[str] = field(default_factory=set)
    """Order ids."""
    events: list[JSONDict] = field(default_factory=list)
    """New change-feed entries (the feed is append-only)."""
    idempotency: set[str] = field(default_factory=set)
    """Idempotency keys."""
    kitchen: set[str] = field(default_factory=set)
    """Order ids whose kitchen entry was set or removed."""
    availability: set[tuple[str, str, str]] = field(default_factory=set)
    """``(location, "items" | "options", id)`` of availability records."""


class Storage:
    """Loads :class:`PosState` from the data directory's database and saves changes to it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.legacy_path = self.data_dir / LEGACY_FILE_NAME
        self.state = PosState()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection (after :meth:`load`)."""
        if self._db is None:
            raise RuntimeError("storage is not loaded")
        return self._db

    def load(self) -> PosState:
        """Open (or create) the database, migrate a legacy state file, read the state."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.close()
        db = sqlite3.connect(self.path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise RuntimeError(
                    f"cannot load {self.path}: schema version {version}, expected {SCHEMA_VERSION}"
                )
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        self._db = db
        try:
            if self.legacy_path.exists():
                self._migrate_legacy_file()
            self.state = self._read_state()
        except BaseException:
            self.close()
            raise
        return self.state

    def save(self, touched: Touched) -> None:
        """Write the rows ``touched`` names, and the counters, in one durable transaction."""
        state, db = self.state, self.db
        with db:
            for order_id in touched.orders:
                db.execute(
                    "INSERT INTO orders (id, doc) VALUES (?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                    (order_id, _dumps(state.orders[order_id])),
                )
            db.executemany(
                "INSERT INTO events (seq, doc) VALUES (?, ?)",
                [(event["seq"], _dumps(event)) for event in touched.events],
            )
            for key in touched.idempotency:
                record = state.idempotency[key]
                db.execute(
                    "INSERT OR REPLACE INTO idempotency (key, order_id, body_hash)"
                    " VALUES (?, ?, ?)",
                    (key, record["order_id"], record["body_hash"]),
                )
            for order_id in touched.kitchen:
                started = state.kitchen.get(order_id)
                if started is None:
                    db.execute("DELETE FROM kitchen WHERE order_id = ?", (order_id,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO kitchen (order_id, stage_started) VALUES (?, ?)",
                        (order_id, started),
                    )
            for location, kind, key in touched.availability:
                record = state.availability[location][kind][key]
                db.execute(
                    "INSERT INTO availability (location, kind, key, doc) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (location, kind, key) DO UPDATE SET doc = excluded.doc",
                    (location, kind, key, _dumps(record)),
                )
            db.executemany(
                "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
                [(name, getattr(state, name)) for name in COUNTERS],
            )

    def close(self) -> None:
        """Close the database (the state stays on disk); :meth:`load` opens it again."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _read_state(self) -> PosState:
        db = self.db
        state = PosState(
            orders={
                order_id: orjson.loads(doc)
                for order_id, doc in db.execute("SELECT id, doc FROM orders ORDER BY rowid")
            },
            events=[
                orjson.loads(doc) for (doc,) in db.execute("SELECT doc FROM events ORDER BY seq")
            ],
            idempotency={
                key: {"order_id": order_id, "body_hash": body_hash}
                for key, order_id, body_hash in db.execute(
                    "SELECT key, order_id, body_hash FROM idempotency"
                )
            },
            kitchen=dict(db.execute("SELECT order_id, stage_started FROM kitchen")),
        )
        for location, kind, key, doc in db.execute(
            "SELECT location, kind, key, doc FROM availability ORDER BY rowid"
        ):
            state.availability.setdefault(location, {}).setdefault(kind, {})[key] = orjson.loads(
                doc
            )
        for name, value in db.execute("SELECT name, value FROM counters"):
            if name in COUNTERS:
                setattr(state, name, int(value))
        return state

    def _migrate_legacy_file(self) -> None:
        """Import ``demopos.json`` in one transaction, then rename it out of the way.

        A crash between the commit and the rename leaves a database that already holds the
        file's state; the next start sees the counters row and only renames the file.
        """
        already_imported = self.db.execute("SELECT 1 FROM counters LIMIT 1").fetchone()
        if already_imported is None:
            try:
                legacy = PosState.from_legacy_json(orjson.loads(self.legacy_path.read_bytes()))
            except (ValueError, KeyError, TypeError) as exc:
                raise RuntimeError(f"cannot migrate {self.legacy_path}: {exc}") from exc
            self.state = legacy
            self.save(
                Touched(
                    orders=set(legacy.orders),
                    events=legacy.events,
                    idempotency=set(legacy.idempotency),
                    kitchen=set(legacy.kitchen),
                    availability={
                        (location, kind, key)
                        for location, kinds in legacy.availability.items()
                        for kind, records in kinds.items()
                        for key in records
                    },
                )
            )
        self.legacy_path.replace(self.legacy_path.with_name(f"{LEGACY_FILE_NAME}.migrated"))


def _dumps(document: JSONDict) -> str:
    return orjson.dumps(document).decode()

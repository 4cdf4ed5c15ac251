"""Versioned schema of the SQLite store. Append new steps; never edit a released one.

A step is an SQL script, or a function for what SQL alone cannot do (rewriting stored order
documents into a new format). Each step runs in its own transaction, and ``PRAGMA user_version``
records the last step applied, so an interrupted upgrade resumes at the step that failed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import orjson
from pydantic import ValidationError

from posintegrator.model.legacy import upgrade_order
from posintegrator.model.order import Order, PaymentMode, order_content_hash

#: A migration step: an SQL script, or a function run inside the step's transaction.
Step = str | Callable[[sqlite3.Connection], None]


def rewrite_orders(db: sqlite3.Connection) -> None:
    """Bring every stored order document to the current format and recompute what is derived
    from it: its content hash (so a replay of the order is still told from a conflict), the
    amount prepaid (for refunds) and its currency.

    Uses the current model, so a later release may run it again as a step of its own.

    :raises RuntimeError: naming an order the current model cannot read.
    """
    rows = db.execute("SELECT id, body FROM orders").fetchall()
    for order_id, body in rows:
        document = upgrade_order(orjson.loads(body))
        try:
            order = Order.model_validate(document)
        except ValidationError as exc:
            raise RuntimeError(
                f"order {order_id!r} stored by an earlier release cannot be brought to the "
                f"current format: {exc}"
            ) from None
        prepaid = sum(p.amount for p in order.payments if p.mode == PaymentMode.PREPAID)
        db.execute(
            "UPDATE orders SET body = ?, content_hash = ?, prepaid = ?, currency = ? WHERE id = ?",
            (
                order.model_dump_json().encode(),
                order_content_hash(order),
                prepaid,
                order.currency,
                order_id,
            ),
        )


MIGRATIONS: tuple[tuple[int, Step], ...] = (
    (
        1,
        """
        CREATE TABLE orders (
            id               TEXT PRIMARY KEY,
            connection       TEXT NOT NULL,
            location         TEXT NOT NULL,
            body             BLOB NOT NULL,
            content_hash     TEXT NOT NULL,
            idempotency_key  TEXT NOT NULL,
            status           TEXT NOT NULL,
            status_reason    TEXT,
            status_seq       INTEGER NOT NULL DEFAULT 0,
            pos_order_id     TEXT,
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  REAL,
            maybe_in_pos     INTEGER NOT NULL DEFAULT 0,
            last_error       TEXT,
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL
        );
        CREATE INDEX orders_due ON orders (connection, next_attempt_at)
            WHERE next_attempt_at IS NOT NULL;
        CREATE INDEX orders_status ON orders (status, created_at);
        CREATE INDEX orders_pos_id ON orders (connection, pos_order_id);

        CREATE TABLE status_history (
            order_id   TEXT NOT NULL REFERENCES orders (id),
            at         TEXT NOT NULL,
            status     TEXT NOT NULL,
            applied    INTEGER NOT NULL,
            note       TEXT,
            source     TEXT NOT NULL,
            reason     TEXT,
            sequence   INTEGER,
            pos_event_id TEXT
        );
        CREATE INDEX status_history_order ON status_history (order_id);

        CREATE TABLE outbox (
            event_id        TEXT PRIMARY KEY,
            stream          TEXT NOT NULL,
            sequence        INTEGER NOT NULL,
            body            BLOB NOT NULL,
            created_at      TEXT NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_error      TEXT,
            delivered_at    TEXT,
            UNIQUE (stream, sequence)
        );
        CREATE INDEX outbox_pending ON outbox (stream, sequence) WHERE delivered_at IS NULL;

        CREATE TABLE menus (
            location      TEXT NOT NULL,
            version       INTEGER NOT NULL,
            connection    TEXT NOT NULL,
            content_hash  TEXT NOT NULL,
            body          BLOB NOT NULL,
            published_at  TEXT NOT NULL,
            PRIMARY KEY (location, version)
        );

        CREATE TABLE plugin_state (
            connection TEXT NOT NULL,
            key        TEXT NOT NULL,
            value      TEXT NOT NULL,
            PRIMARY KEY (connection, key)
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE menu_reports (
            location    TEXT PRIMARY KEY,
            checked_at  TEXT NOT NULL,
            body        BLOB NOT NULL
        );
        """,
    ),
    (
        3,
        """
        CREATE TABLE delivery_attempts (
            order_id     TEXT NOT NULL REFERENCES orders (id),
            number       INTEGER NOT NULL,
            started_at   TEXT NOT NULL,
            finished_at  TEXT,
            outcome      TEXT NOT NULL,
            error        TEXT,
            PRIMARY KEY (order_id, number)
        );
        """,
    ),
)

# Venue agents and the link to them (docs/link.md). On a hub: the approved agents, pairing
# requests waiting for an operator, and which agent each order was handed to. On both ends:
# the messages to the other end not yet acknowledged (``seq`` only grows, so a message number
# is never reused), and how far each end has received and acknowledged.
MIGRATIONS += (
    (
        4,
        """
        CREATE TABLE agents (
            name         TEXT PRIMARY KEY,
            public_key   TEXT NOT NULL UNIQUE,
            locations    TEXT NOT NULL,
            status       TEXT NOT NULL,
            approved_at  TEXT NOT NULL,
            approved_by  TEXT NOT NULL,
            revoked_at   TEXT,
            version      TEXT
        );

        CREATE TABLE pairings (
            code             TEXT PRIMARY KEY,
            poll_token_hash  TEXT NOT NULL UNIQUE,
            public_key       TEXT NOT NULL,
            name             TEXT,
            version          TEXT,
            locations        TEXT NOT NULL,
            created_at       TEXT NOT NULL,
            expires_at       REAL NOT NULL,
            agent            TEXT
        );

        CREATE TABLE link_outbox (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            peer        TEXT NOT NULL,
            kind        TEXT NOT NULL,
            order_id    TEXT,
            body        BLOB NOT NULL,
            created_at  TEXT NOT NULL
        );
        CREATE INDEX link_outbox_peer ON link_outbox (peer, seq);
        CREATE INDEX link_outbox_order ON link_outbox (order_id) WHERE order_id IS NOT NULL;

        CREATE TABLE link_peers (
            peer              TEXT PRIMARY KEY,
            received_through  INTEGER NOT NULL DEFAULT 0,
            sent_through      INTEGER NOT NULL DEFAULT 0
        );

        ALTER TABLE orders ADD COLUMN agent TEXT;
        ALTER TABLE orders ADD COLUMN handed_over_at TEXT;
        """,
    ),
)

# The complete universal order (docs/changelog.md): what an order prepaid and in which currency
# (for the refund its cancellation signals), a cancellation asked of it and how it went; then
# every stored order brought to the new format.
MIGRATIONS += (
    (
        5,
        """
        ALTER TABLE orders ADD COLUMN prepaid INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE orders ADD COLUMN currency TEXT;
        ALTER TABLE orders ADD COLUMN cancel_state TEXT;
        ALTER TABLE orders ADD COLUMN cancel_by TEXT;
        ALTER TABLE orders ADD COLUMN cancel_reason TEXT;
        ALTER TABLE orders ADD COLUMN cancel_requested_at TEXT;
        ALTER TABLE orders ADD COLUMN cancel_due_at REAL;
        ALTER TABLE orders ADD COLUMN cancel_outcome TEXT;
        CREATE INDEX orders_cancel_due ON orders (connection, cancel_due_at)
            WHERE cancel_due_at IS NOT NULL;
        """,
    ),
    (6, rewrite_orders),
)

# Running it in production (docs/deployer-guide.md): retention prunes delivered events by the
# time they were delivered (an index, so a batch does not scan the whole outbox); an operator
# may skip the head event of a stuck stream (``skipped_at``: the event left the queue without
# being delivered; ``delivered_at`` is set too, as for every event that left it), and every
# operator action on a stream is kept with who did it and why.
MIGRATIONS += (
    (
        7,
        """
        CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
        ALTER TABLE outbox ADD COLUMN skipped_at TEXT;

        CREATE TABLE stream_actions (
            at        TEXT NOT NULL,
            stream    TEXT NOT NULL,
            event_id  TEXT NOT NULL,
            sequence  INTEGER NOT NULL,
            action    TEXT NOT NULL,
            operator  TEXT NOT NULL,
            note      TEXT
        );
        CREATE INDEX stream_actions_stream ON stream_actions (stream, at);
        CREATE INDEX stream_actions_at ON stream_actions (at);
        """,
    ),
)

# Scale-out (docs/scaling.md): a job that must run on exactly one worker at a time (a
# location's menu sync, a connection's status polling) runs while its worker holds the job's
# lease; ``token`` grows each time the lease changes hands (a fencing token). One process owns a
# SQLite file, so there it always does; the table is the same as PostgreSQL's.
MIGRATIONS += (
    (
        8,
        """
        CREATE TABLE leases (
            name        TEXT PRIMARY KEY,
            owner       TEXT NOT NULL,
            token       INTEGER NOT NULL,
            expires_at  REAL NOT NULL
        );
        """,
    ),
)

# Menu bodies shared by the locations publishing the same menu (a chain's central catalog):
# ``menu_bodies`` holds each once, cut around the location (``head`` + location + ``tail``,
# see MenuBody), and a version names its body by ``body_hash``. Versions stored before keep
# their whole JSON in ``menus.body`` (and no ``body_hash``); new ones store an empty ``body``.
MIGRATIONS += (
    (
        9,
        """
        CREATE TABLE menu_bodies (
            body_hash  TEXT PRIMARY KEY,
            head       BLOB NOT NULL,
            tail       BLOB NOT NULL
        );
        ALTER TABLE menus ADD COLUMN body_hash TEXT;
        CREATE INDEX menus_body_hash ON menus (body_hash) WHERE body_hash IS NOT NULL;
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to the latest version, one transaction per step.

    :returns: the schema version now in force.
    :raises RuntimeError: the database was written by a newer release.
    """
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > LATEST_VERSION:
        raise RuntimeError(
            f"the database has schema version {current}, newer than this release knows "
            f"({LATEST_VERSION}); upgrade posintegrator or use another store path"
        )
    for version, script in MIGRATIONS:
        if version <= current:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if callable(script):
                script(db)
            else:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        current = version
    return current

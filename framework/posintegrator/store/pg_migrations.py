"""Versioned schema of the PostgreSQL store. Append new steps; never edit a released one.

Version 1 is the SQLite store's schema as of its version 7 (plus the worker leases), in
PostgreSQL's types: the same tables and columns, so the stores share their SQL. Times are kept
as the SQLite store keeps them (ISO text, and epoch seconds where they are compared), tables that
SQLite orders by ``rowid`` have a ``rowid`` column of their own, and ``instr`` exists as a
function. ``schema_version`` records the last step applied; each step runs in its own
transaction under an advisory lock, so workers starting together migrate once.
"""

from __future__ import annotations

from posintegrator.store.sql import SQLConnection

#: The advisory lock key that serialises migrations ("posi" in ASCII).
_MIGRATION_LOCK = 0x706F7369

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
            LANGUAGE sql IMMUTABLE AS 'SELECT strpos(haystack, needle)';

        CREATE TABLE orders (
            id                   TEXT PRIMARY KEY,
            connection           TEXT NOT NULL,
            location             TEXT NOT NULL,
            body                 BYTEA NOT NULL,
            content_hash         TEXT NOT NULL,
            idempotency_key      TEXT NOT NULL,
            status               TEXT NOT NULL,
            status_reason        TEXT,
            status_seq           BIGINT NOT NULL DEFAULT 0,
            pos_order_id         TEXT,
            attempts             BIGINT NOT NULL DEFAULT 0,
            next_attempt_at      DOUBLE PRECISION,
            maybe_in_pos         INTEGER NOT NULL DEFAULT 0,
            last_error           TEXT,
            created_at           TEXT NOT NULL,
            updated_at           TEXT NOT NULL,
            agent                TEXT,
            handed_over_at       TEXT,
            prepaid              BIGINT NOT NULL DEFAULT 0,
            currency             TEXT,
            cancel_state         TEXT,
            cancel_by            TEXT,
            cancel_reason        TEXT,
            cancel_requested_at  TEXT,
            cancel_due_at        DOUBLE PRECISION,
            cancel_outcome       TEXT
        );
        CREATE INDEX orders_due ON orders (connection, next_attempt_at)
            WHERE next_attempt_at IS NOT NULL;
        CREATE INDEX orders_status ON orders (status, created_at);
        CREATE INDEX orders_pos_id ON orders (connection, pos_order_id);
        CREATE INDEX orders_cancel_due ON orders (connection, cancel_due_at)
            WHERE cancel_due_at IS NOT NULL;

        CREATE TABLE status_history (
            rowid         BIGSERIAL PRIMARY KEY,
            order_id      TEXT NOT NULL REFERENCES orders (id),
            at            TEXT NOT NULL,
            status        TEXT NOT NULL,
            applied       INTEGER NOT NULL,
            note          TEXT,
            source        TEXT NOT NULL,
            reason        TEXT,
            sequence      BIGINT,
            pos_event_id  TEXT
        );
        CREATE INDEX status_history_order ON status_history (order_id);

        CREATE TABLE outbox (
            rowid            BIGSERIAL UNIQUE,
            event_id         TEXT PRIMARY KEY,
            stream           TEXT NOT NULL,
            sequence         BIGINT NOT NULL,
            body             BYTEA NOT NULL,
            created_at       TEXT NOT NULL,
            attempts         BIGINT NOT NULL DEFAULT 0,
            next_attempt_at  DOUBLE PRECISION NOT NULL,
            last_error       TEXT,
            delivered_at     TEXT,
            skipped_at       TEXT,
            UNIQUE (stream, sequence)
        );
        CREATE INDEX outbox_pending ON outbox (stream, sequence) WHERE delivered_at IS NULL;
        CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

        CREATE TABLE menus (
            rowid         BIGSERIAL UNIQUE,
            location      TEXT NOT NULL,
            version       BIGINT NOT NULL,
            connection    TEXT NOT NULL,
            content_hash  TEXT NOT NULL,
            body          BYTEA NOT NULL,
            published_at  TEXT NOT NULL,
            PRIMARY KEY (location, version)
        );

        CREATE TABLE plugin_state (
            connection  TEXT NOT NULL,
            key         TEXT NOT NULL,
            value       TEXT NOT NULL,
            PRIMARY KEY (connection, key)
        );

        CREATE TABLE menu_reports (
            location    TEXT PRIMARY KEY,
            checked_at  TEXT NOT NULL,
            body        BYTEA NOT NULL
        );

        CREATE TABLE delivery_attempts (
            order_id     TEXT NOT NULL REFERENCES orders (id),
            number       BIGINT NOT NULL,
            started_at   TEXT NOT NULL,
            finished_at  TEXT,
            outcome      TEXT NOT NULL,
            error        TEXT,
            PRIMARY KEY (order_id, number)
        );

        CREATE TABLE agents (
            name         TEXT PRIMARY KEY,
            public_key   TEXT NOT NULL UNIQUE,
            locations    BYTEA NOT NULL,
            status       TEXT NOT NULL,
            approved_at  TEXT NOT NULL,
            approved_by  TEXT NOT NULL,
            revoked_at   TEXT,
            version      TEXT
        );

        CREATE TABLE pairings (
            rowid            BIGSERIAL UNIQUE,
            code             TEXT PRIMARY KEY,
            poll_token_hash  TEXT NOT NULL UNIQUE,
            public_key       TEXT NOT NULL,
            name             TEXT,
            version          TEXT,
            locations        BYTEA NOT NULL,
            created_at       TEXT NOT NULL,
            expires_at       DOUBLE PRECISION NOT NULL,
            agent            TEXT
        );

        CREATE TABLE link_outbox (
            seq         BIGSERIAL PRIMARY KEY,
            peer        TEXT NOT NULL,
            kind        TEXT NOT NULL,
            order_id    TEXT,
            body        BYTEA NOT NULL,
            created_at  TEXT NOT NULL
        );
        CREATE INDEX link_outbox_peer ON link_outbox (peer, seq);
        CREATE INDEX link_outbox_order ON link_outbox (order_id) WHERE order_id IS NOT NULL;

        CREATE TABLE link_peers (
            peer              TEXT PRIMARY KEY,
            received_through  BIGINT NOT NULL DEFAULT 0,
            sent_through      BIGINT NOT NULL DEFAULT 0
        );

        CREATE TABLE stream_actions (
            rowid     BIGSERIAL PRIMARY KEY,
            at        TEXT NOT NULL,
            stream    TEXT NOT NULL,
            event_id  TEXT NOT NULL,
            sequence  BIGINT NOT NULL,
            action    TEXT NOT NULL,
            operator  TEXT NOT NULL,
            note      TEXT
        );
        CREATE INDEX stream_actions_stream ON stream_actions (stream, at);
        CREATE INDEX stream_actions_at ON stream_actions (at);

        CREATE TABLE leases (
            name        TEXT PRIMARY KEY,
            owner       TEXT NOT NULL,
            token       BIGINT NOT NULL,
            expires_at  DOUBLE PRECISION NOT NULL
        );
        """,
    ),
)

# Menu bodies shared by the locations publishing the same menu: as the SQLite store's step 9.
MIGRATIONS += (
    (
        2,
        """
        CREATE TABLE menu_bodies (
            body_hash  TEXT PRIMARY KEY,
            head       BYTEA NOT NULL,
            tail       BYTEA NOT NULL
        );
        ALTER TABLE menus ADD COLUMN body_hash TEXT;
        CREATE INDEX menus_body_hash ON menus (body_hash) WHERE body_hash IS NOT NULL;
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]


def migrate(db: SQLConnection) -> int:
    """Bring the schema to the latest version, one transaction per step.

    :returns: the schema version now in force.
    :raises RuntimeError: the database was written by a newer release.
    """
    # Workers started together race here; CREATE TABLE IF NOT EXISTS alone is not safe against
    # a concurrent create in PostgreSQL, so it too waits for the migration lock.
    db.execute("BEGIN")
    try:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    for version, script in MIGRATIONS:
        db.execute("BEGIN")
        try:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = int(row[0] or 0)
            if current > LATEST_VERSION:
                raise RuntimeError(
                    f"the database has schema version {current}, newer than this release knows "
                    f"({LATEST_VERSION}); upgrade posintegrator or use another database"
                )
            if version > current:
                db.execute(script)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0])

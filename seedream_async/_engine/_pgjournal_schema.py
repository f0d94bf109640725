"""The PostgreSQL journal's schema: created on first open, checked on every open.

Kept apart from the journal's calls (``_pgjournal.py``), as ``_sqlite_schema.py`` is for
SQLite. The version is a row in ``seedream_meta``; a newer schema is refused. Table names
are prefixed ``seedream_``; the DSN's password never reaches a message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeGuard

from .._base._exceptions import JournalError

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "ensure_schema", "is_postgres_dsn", "redact_dsn"]

SCHEMA_VERSION = 2
_LOCK_ID = 0x53444A31  # pg_advisory_xact_lock id while creating or checking the schema

_SCHEMA = """
CREATE TABLE seedream_meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE seedream_items (
    seq bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    fingerprint text NOT NULL,
    name text NOT NULL,
    name_folded text NOT NULL UNIQUE,
    state text NOT NULL,
    item text,
    request text,
    prediction_id text,
    outputs text NOT NULL DEFAULT '[]',
    files text NOT NULL DEFAULT '[]',
    error text,
    error_type text,
    cost double precision NOT NULL DEFAULT 0,
    predict_time double precision,
    attempts integer NOT NULL DEFAULT 0,
    owner text,
    lease_expires double precision,
    reserved double precision NOT NULL DEFAULT 0,
    updated_at double precision NOT NULL,
    request_id text,
    price_rule text,
    flagged integer
);
CREATE INDEX seedream_items_free ON seedream_items (seq)
    WHERE owner IS NULL AND state IN ('pending', 'intent', 'submitted', 'done');
CREATE INDEX seedream_items_held ON seedream_items (lease_expires)
    WHERE owner IS NOT NULL AND state IN ('pending', 'intent', 'submitted', 'done');
CREATE INDEX seedream_items_owner ON seedream_items (owner) WHERE owner IS NOT NULL;
CREATE TABLE seedream_attempts (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    number integer NOT NULL,
    fingerprint text NOT NULL,
    owner text NOT NULL,
    state text NOT NULL,
    prediction_id text,
    cost double precision NOT NULL DEFAULT 0,
    error text,
    webhook_id text,
    started_at double precision NOT NULL,
    ended_at double precision NOT NULL,
    UNIQUE (key, number)
);
CREATE TABLE seedream_spend (
    id integer PRIMARY KEY CHECK (id = 1),
    billed double precision NOT NULL DEFAULT 0,
    reserved double precision NOT NULL DEFAULT 0
);
INSERT INTO seedream_spend (id) VALUES (1);
"""


def is_postgres_dsn(value: object) -> TypeGuard[str]:
    """Whether ``value`` names a PostgreSQL journal (``postgresql://`` or ``postgres://``)."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def redact_dsn(dsn: str) -> str:
    """``dsn`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", re.sub(r"password=\S+", "password=***", dsn))


_ADDED_COLUMNS = {"request_id": "text", "price_rule": "text", "flagged": "integer"}
"""Nullable columns added to version 1 without a new version (older code ignores them):
the submit's X-Request-ID, the price rule it was billed by, outputs flagged NSFW."""


def _add_columns(conn: psycopg.Connection[Any]) -> None:
    """Add the :data:`_ADDED_COLUMNS` a journal made by an older version lacks (looked up
    first: an ALTER would wait for every open transaction on the table)."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'seedream_items'::regclass "
        "AND attnum > 0 AND NOT attisdropped"
    ).fetchall()
    present = {row[0] for row in rows}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE seedream_items ADD COLUMN {name} {kind}")


def ensure_schema(conn: psycopg.Connection[Any], where: str) -> None:
    """Create the tables on first use, or check an existing journal's version. Runs in the
    caller's transaction, under an advisory lock so that workers starting together do not
    race to create them."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
    found = conn.execute("SELECT to_regclass('seedream_meta') IS NOT NULL").fetchone()
    if found is not None and found[0]:
        row = conn.execute("SELECT value FROM seedream_meta WHERE name = 'schema_version'")
        version_row = row.fetchone()
        version = int(version_row[0]) if version_row is not None else 0
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"the journal at {where} has schema version {version}, newer than this "
                f"version of seedream-async understands ({SCHEMA_VERSION}); upgrade "
                "seedream-async on every worker"
            )
        if version == 1:  # version 2 records which webhook delivery answered an attempt
            conn.execute("ALTER TABLE seedream_attempts ADD COLUMN IF NOT EXISTS webhook_id text")
            conn.execute(
                "UPDATE seedream_meta SET value = %s WHERE name = 'schema_version'",
                (str(SCHEMA_VERSION),),
            )
        if version < 1:
            raise JournalError(
                f"the database at {where} has a seedream_meta table without a schema "
                "version: it is not a seedream-async journal; use another database or schema"
            )
        _add_columns(conn)
        return
    clash = conn.execute("SELECT to_regclass('seedream_items') IS NOT NULL").fetchone()
    if clash is not None and clash[0]:
        raise JournalError(
            f"the database at {where} has a seedream_items table but no seedream_meta: it "
            "belongs to something else; use another database or schema"
        )
    conn.execute(_SCHEMA)
    conn.execute(
        "INSERT INTO seedream_meta (name, value) VALUES ('schema_version', %s)",
        (str(SCHEMA_VERSION),),
    )

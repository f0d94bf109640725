"""The SQLite journal's file: its schema, opening and checking it, migrating version 1.

Kept apart from the journal's calls (``_sqlite.py``): this is what runs once, when a file
is opened. A file is ours when its header carries our ``application_id``; its
``user_version`` is the schema version. Creation and migration run in one transaction, so
a file is never half made.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from .._base._exceptions import JournalError
from ._journal_types import JournalState
from ._names import fold, output_stem

__all__ = ["SCHEMA_VERSION", "Tx", "connect"]

SCHEMA_VERSION = 3
APPLICATION_ID = 0x53444A31  # "SDJ1", in the SQLite header: marks the file as ours
_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    name TEXT NOT NULL,
    name_fold TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    request TEXT,
    prediction_id TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    files TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    error_type TEXT,
    cost REAL NOT NULL DEFAULT 0,
    reserved REAL NOT NULL DEFAULT 0,
    predict_time REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_expires REAL,
    updated_at REAL NOT NULL,
    request_id TEXT,
    price_rule TEXT,
    flagged INTEGER);
CREATE INDEX IF NOT EXISTS items_owner ON items (owner);
CREATE INDEX IF NOT EXISTS items_state ON items (state);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    number INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    prediction_id TEXT,
    cost REAL NOT NULL DEFAULT 0,
    error TEXT,
    webhook_id TEXT,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    UNIQUE (key, number));
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    billed REAL NOT NULL DEFAULT 0,
    reserved REAL NOT NULL DEFAULT 0);
INSERT OR IGNORE INTO totals (id, billed, reserved) VALUES (1, 0, 0);
"""


_ADDED_COLUMNS = {"request_id": "TEXT", "price_rule": "TEXT", "flagged": "INTEGER"}
"""Nullable columns added to version 2 without a new version (older code ignores them):
the submit's X-Request-ID, the price rule it was billed by, outputs flagged NSFW."""


def _add_columns(conn: sqlite3.Connection) -> None:
    """Add the :data:`_ADDED_COLUMNS` a file made by an older version lacks."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE items ADD COLUMN {name} {kind}")


def _create(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript would COMMIT the open transaction first.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


class Tx:
    """A ``BEGIN IMMEDIATE`` ... ``COMMIT`` block (``ROLLBACK`` on any error); a plain
    ``BEGIN`` for one that only reads (it takes no write lock, so it never waits for one)."""

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.conn = conn
        self.begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(self.begin)
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _enter_wal(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch to WAL, waiting out another process that is opening the same journal.

    SQLite may answer ``database is locked`` to the switch at once, without its busy
    handler, while a second run opens a fresh journal beside this one.
    """
    deadline = time.monotonic() + patience
    pause = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def connect(path: Path, durable: bool) -> sqlite3.Connection:
    """Open (creating if missing), check and migrate the file; runs in a worker thread."""
    fresh = not path.exists() or path.stat().st_size == 0
    if not fresh and not path.is_dir():
        with path.open("rb") as f:
            if f.read(16) != _MAGIC:
                raise JournalError(
                    f"journal {str(path)!r} is not an SQLite database; pass another journal "
                    "path, or move this file aside if it is a journal you no longer need"
                )
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")  # wait for another process's commit
        if not fresh:
            _quick_check(conn)
        _enter_wal(conn)
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        with Tx(conn):
            version = _check_schema(conn, path)
            if version == 1:
                _migrate_v1(conn)
            elif version == 2:
                _migrate_v2(conn)
            elif version == 0:
                _create(conn)
            else:
                _add_columns(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        return conn
    except sqlite3.OperationalError as err:  # locked, read-only, disk full: not the file's fault
        conn.close()
        raise JournalError(f"cannot open journal {str(path)!r}: {err}") from err
    except sqlite3.DatabaseError as err:
        conn.close()
        raise JournalError(
            f"journal {str(path)!r} is corrupt or unreadable ({err}); check it with "
            f"`sqlite3 {path} 'PRAGMA quick_check'`, or move it aside to start a fresh "
            "journal (items already submitted would then be paid for again)"
        ) from err
    except BaseException:
        conn.close()
        raise


def _quick_check(conn: sqlite3.Connection) -> None:
    # O(size of the file), but a journal is small and a corrupt one must not run a batch.
    problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("; ".join(problems[:3]))


def _check_schema(conn: sqlite3.Connection, path: Path) -> int:
    """Return the file's schema version (0: new); refuse another application's file."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_")
    }
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {str(path)!r} has schema version {version}, newer than this version "
                f"of seedream-async understands ({SCHEMA_VERSION}); upgrade seedream-async"
            )
        if version < 1:
            raise JournalError(f"journal {str(path)!r} has no schema version; move it aside")
        return int(version)
    if app_id != 0 or tables:
        raise JournalError(
            f"{str(path)!r} is an SQLite database of another application (tables: "
            f"{', '.join(sorted(tables)) or 'none'}); pass a new path for the journal"
        )
    return 0


# Version 1's states, and what each means now. FAILED is split by whether the prediction
# was billed and how it failed: only the API's own "failed" stays failed.
def _v1_state(state: str, prediction_id: str | None, error_type: str | None) -> JournalState:
    if state == "succeeded":
        return JournalState.DELIVERED
    if state == "submitted":
        return JournalState.SUBMITTED
    if state in ("intent", "ambiguous"):
        return JournalState.AMBIGUOUS
    if state == "failed" and prediction_id:
        if error_type == "PredictionFailed":
            return JournalState.API_FAILED
        return JournalState.SUBMITTED  # billed, not delivered: fetch it again by id
    if state == "not_submitted":
        return JournalState.NOT_SUBMITTED
    return JournalState.PENDING


def _migrate_v1(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT key, fingerprint, state, request, prediction_id, outputs, files, error, "
        "error_type, cost, predict_time, updated_at FROM entries ORDER BY seq"
    ).fetchall()
    history = conn.execute(
        "SELECT key, fingerprint, state, prediction_id, cost, error, updated_at "
        "FROM history ORDER BY seq"
    ).fetchall()
    conn.execute("ALTER TABLE entries RENAME TO entries_v1")
    conn.execute("ALTER TABLE history RENAME TO history_v1")
    _create(conn)
    numbers: dict[str, int] = {}
    billed = 0.0
    for key, fp, state, pid, cost, error, updated in history:
        numbers[key] = numbers.get(key, 0) + 1
        new_state = _v1_state(state, pid, None)
        conn.execute(
            "INSERT INTO attempts (key, number, fingerprint, owner, state, prediction_id, cost, "
            "error, started_at, ended_at) VALUES (?, ?, ?, 'v1', ?, ?, ?, ?, ?, ?)",
            (key, numbers[key], fp, new_state, pid, cost, error, updated, updated),
        )
        billed += cost
    taken: set[str] = set()
    for key, fp, state, request, pid, outputs, files, error, etype, cost, ptime, updated in rows:
        new_state = _v1_state(state, pid, etype)
        name = output_stem(key)
        if fold(name) in taken:  # case twins from before the check: the later one yields
            name = f"{name}-{len(taken)}"
        taken.add(fold(name))
        attempts = numbers.get(key, 0)
        if cost > 0 or new_state is not JournalState.PENDING:
            attempts += 1
            conn.execute(
                "INSERT INTO attempts (key, number, fingerprint, owner, state, prediction_id, "
                "cost, error, started_at, ended_at) VALUES (?, ?, ?, 'v1', ?, ?, ?, ?, ?, ?)",
                (key, attempts, fp, new_state, pid, cost, error, updated, updated),
            )
        billed += cost
        conn.execute(
            "INSERT INTO items (key, fingerprint, name, name_fold, state, request, "
            "prediction_id, outputs, files, error, error_type, cost, predict_time, attempts, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, fp, name, fold(name), new_state, request, pid, outputs, files, error, etype,
             cost, ptime, attempts, updated),
        )  # fmt: skip
    conn.execute("UPDATE totals SET billed = ?", (billed,))
    conn.execute("DROP TABLE entries_v1")
    conn.execute("DROP TABLE history_v1")


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Version 3 records which webhook delivery answered an attempt (issue 20)."""
    conn.execute("ALTER TABLE attempts ADD COLUMN webhook_id TEXT")

"""A crash-safe record of a batch's items, so a killed batch resumes without paying twice.

One SQLite file, one row per item key. An item moves through these states::

    PENDING ──► INTENT ──► SUBMITTED ──► SUCCEEDED | FAILED
                  │                        (or AMBIGUOUS / NOT_SUBMITTED from the engine)
                  └─ written *before* the POST, with the request about to be sent

On resume the batch engine applies these rules:

- ``SUCCEEDED``: yielded from the journal; no request is made.
- ``SUBMITTED`` (has a prediction id): polled, never submitted again.
- ``INTENT`` without a prediction id: the process died between the POST and its answer,
  so the submit may have been billed. Reported as ambiguous and not sent again unless the
  caller opts in (``resubmit_ambiguous=True``). ``AMBIGUOUS`` rows are treated the same.
- ``PENDING``, ``FAILED``, ``NOT_SUBMITTED``: run again.

An item whose fingerprint (a hash of its request inputs) changed is a different job: its old
row moves to a history table and a fresh ``PENDING`` row takes its place.

Durability: the file is in WAL mode and every ``record_*`` call commits before it returns, in
one statement or one transaction, so there are no half-written states. With the default
``synchronous=NORMAL`` a committed row survives a crash or ``kill -9`` of the process; to
survive power loss or an OS crash too, open with ``durable=True`` (``synchronous=FULL``, one
fsync per commit). SQLite calls run in a worker thread, one at a time, so the event loop never
waits on the disk. The API key is never written here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import JournalError

__all__ = ["Journal", "JournalEntry", "JournalState"]

_T = TypeVar("_T")

SCHEMA_VERSION = 1
APPLICATION_ID = 0x53444A31  # "SDJ1", in the SQLite header: marks the file as ours
_MAGIC = b"SQLite format 3\x00"
_COLUMNS = (
    "key, fingerprint, state, request, prediction_id, outputs, files, "
    "error, error_type, cost, predict_time, updated_at"
)
_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL, request TEXT, prediction_id TEXT, outputs TEXT NOT NULL DEFAULT '[]',
    files TEXT NOT NULL DEFAULT '[]', error TEXT, error_type TEXT, cost REAL NOT NULL DEFAULT 0,
    predict_time REAL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    state TEXT NOT NULL, request TEXT, prediction_id TEXT, outputs TEXT NOT NULL,
    files TEXT NOT NULL, error TEXT, error_type TEXT, cost REAL NOT NULL, predict_time REAL,
    updated_at REAL NOT NULL, superseded_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_key ON history (key, seq);
PRAGMA user_version = {SCHEMA_VERSION};
PRAGMA application_id = {APPLICATION_ID};
COMMIT;
"""
# Every new attempt starts from a clean slate; the request is set by record_intent.
_RESET = "prediction_id = NULL, outputs = '[]', files = '[]', error = NULL, error_type = NULL, "
_RESET += "cost = 0, predict_time = NULL"


class JournalState(StrEnum):
    """Where an item stands; see the module docstring for what resume does with each."""

    PENDING = "pending"
    INTENT = "intent"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"
    NOT_SUBMITTED = "not_submitted"


_RESULT_STATES = frozenset(JournalState) - {
    JournalState.PENDING,
    JournalState.INTENT,
    JournalState.SUBMITTED,
}


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    """One item's row. ``request`` is the JSON payload of the latest attempt (no headers);
    ``cost`` is the latest attempt's; ``error_type`` is an exception class name."""

    key: str
    fingerprint: str
    state: JournalState
    request: dict[str, Any] | None = None
    prediction_id: str | None = None
    outputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    cost: float = 0.0
    predict_time: float | None = None
    updated_at: float = 0.0


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    key, fp, state, request, pid, outputs, files, error, etype, cost, ptime, updated = row
    return JournalEntry(
        key=key,
        fingerprint=fp,
        state=JournalState(state),
        request=None if request is None else json.loads(request),
        prediction_id=pid,
        outputs=tuple(json.loads(outputs)),
        files=tuple(json.loads(files)),
        error=error,
        error_type=etype,
        cost=cost,
        predict_time=ptime,
        updated_at=updated,
    )


def _connect(path: Path, durable: bool) -> sqlite3.Connection:
    """Open (creating if missing) and check the file; runs in a worker thread."""
    fresh = not path.exists() or path.stat().st_size == 0
    if not fresh and not path.is_dir():
        with path.open("rb") as f:
            if f.read(16) != _MAGIC:
                raise JournalError(
                    f"journal {str(path)!r} is not an SQLite database; pass another journal "
                    "path, or move this file aside if it is a journal you no longer need"
                )
    # isolation_level=None: we issue BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")  # wait up to 5 s for another writer
        if not fresh:
            _quick_check(conn)
        _check_schema(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.executescript(_SCHEMA)  # one transaction: tables and version appear together
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


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_")
    }
    # Our tables and our application_id are written in one transaction, so a file is either
    # ours (our id), new (no id, no tables), or someone else's.
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {str(path)!r} has schema version {version}, newer than this version "
                f"of seedream-async understands ({SCHEMA_VERSION}); upgrade seedream-async"
            )
    elif app_id != 0 or tables:
        raise JournalError(
            f"{str(path)!r} is an SQLite database of another application (tables: "
            f"{', '.join(sorted(tables)) or 'none'}); pass a new path for the journal"
        )


class Journal:
    """The journal of one batch. Open with ``async with await Journal.open(path) as journal``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._limiter = anyio.CapacityLimiter(1)  # one sqlite call at a time, in order

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, durable: bool = False) -> Journal:
        """Open the journal at ``path``, creating the file and its tables if missing.

        Args:
            path: the SQLite file.
            durable: fsync every commit so entries survive power loss too, not only a crash
                of the process. Slower. Default False.

        Raises:
            JournalError: the file is not an SQLite database, is corrupt, belongs to another
                application, or was written by a newer seedream-async.
        """
        path = Path(path)
        try:
            conn = await anyio.to_thread.run_sync(_connect, path, durable)
        except sqlite3.Error as err:
            raise JournalError(f"cannot open journal {str(path)!r}: {err}") from err
        return cls(conn, path)

    async def aclose(self) -> None:
        """Close the file. Safe to call twice."""

        def close() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        with anyio.CancelScope(shield=True):  # a cancelled close must not leak the connection
            await anyio.to_thread.run_sync(close, limiter=self._limiter)

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        # Not cancellable once started (anyio's default): a commit either happens or not.
        def call() -> _T:
            if self._conn is None:
                raise JournalError(f"journal {str(self._path)!r} is closed")
            return fn(self._conn)

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except sqlite3.Error as err:
            raise JournalError(f"journal {str(self._path)!r}: {err}") from err

    def _update(
        self, key: str, assignments: str, *params: Any
    ) -> Callable[[sqlite3.Connection], None]:
        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"UPDATE entries SET {assignments}, updated_at = ? WHERE key = ?",
                (*params, time.time(), key),
            )
            if cursor.rowcount == 0:
                raise JournalError(f"item {key!r} is not in the journal; call begin() first")

        return update

    async def get(self, key: str) -> JournalEntry | None:
        """The current entry for ``key``, or None."""
        sql = f"SELECT {_COLUMNS} FROM entries WHERE key = ?"
        row = await self._run(lambda conn: conn.execute(sql, (key,)).fetchone())
        return None if row is None else _entry(row)

    async def begin(self, key: str, fingerprint: str) -> JournalEntry:
        """Start or resume ``key``: its entry if the fingerprint matches, else a fresh PENDING.

        An entry with another fingerprint moves to :meth:`history` first.
        """

        def begin(conn: sqlite3.Connection) -> tuple[Any, ...]:
            select = f"SELECT {_COLUMNS} FROM entries WHERE key = ?"
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(select, (key,)).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO entries (key, fingerprint, state, updated_at) "
                        "VALUES (?, ?, ?, ?)",
                        (key, fingerprint, JournalState.PENDING, now),
                    )
                elif row[1] != fingerprint:
                    conn.execute(
                        f"INSERT INTO history ({_COLUMNS}, superseded_at) "
                        f"SELECT {_COLUMNS}, ? FROM entries WHERE key = ?",
                        (now, key),
                    )
                    conn.execute(
                        f"UPDATE entries SET fingerprint = ?, state = ?, request = NULL, {_RESET}, "
                        "updated_at = ? WHERE key = ?",
                        (fingerprint, JournalState.PENDING, now, key),
                    )
                row = conn.execute(select, (key,)).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return tuple(row)

        return _entry(await self._run(begin))

    async def record_intent(self, key: str, request: dict[str, Any]) -> None:
        """INTENT: ``request`` is about to be POSTed. Clears the previous attempt's fields."""
        payload = json.dumps(request)
        await self._run(
            self._update(key, f"state = ?, request = ?, {_RESET}", JournalState.INTENT, payload)
        )

    async def record_submitted(self, key: str, prediction_id: str, cost: float) -> None:
        """SUBMITTED: the API accepted the request as ``prediction_id``, billed ``cost``."""
        update = self._update(
            key,
            "state = ?, prediction_id = ?, cost = ?",
            JournalState.SUBMITTED,
            prediction_id,
            cost,
        )
        await self._run(update)

    async def record_result(
        self,
        key: str,
        state: JournalState,
        *,
        outputs: Sequence[str] = (),
        files: Sequence[str | os.PathLike[str]] = (),
        error: str | None = None,
        error_type: str | None = None,
        predict_time: float | None = None,
        cost: float | None = None,
    ) -> None:
        """How the item ended.

        Args:
            key: the item.
            state: SUCCEEDED, FAILED, AMBIGUOUS or NOT_SUBMITTED.
            outputs: output URLs.
            files: paths of the downloaded files.
            error: the error message, for a failure.
            error_type: the exception's class name, for a failure.
            predict_time: the model's reported seconds.
            cost: replaces the recorded cost; None keeps it.
        """
        if state not in _RESULT_STATES:
            raise ValueError(f"{state!r} is not a result state")
        update = self._update(
            key,
            "state = ?, outputs = ?, files = ?, error = ?, error_type = ?, predict_time = ?, "
            "cost = COALESCE(?, cost)",
            JournalState(state),
            json.dumps(list(outputs)),
            json.dumps([os.fspath(f) for f in files]),
            error,
            error_type,
            predict_time,
            cost,
        )
        await self._run(update)

    async def history(self, key: str) -> list[JournalEntry]:
        """Entries of ``key`` superseded by a fingerprint change, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM history WHERE key = ? ORDER BY seq"
        rows = await self._run(lambda conn: conn.execute(sql, (key,)).fetchall())
        return [_entry(row) for row in rows]

    async def entries(self) -> list[JournalEntry]:
        """Every current entry, in the order their keys were first begun."""
        sql = f"SELECT {_COLUMNS} FROM entries ORDER BY seq"
        rows = await self._run(lambda conn: conn.execute(sql).fetchall())
        return [_entry(row) for row in rows]

    async def counts(self) -> dict[JournalState, int]:
        """How many current entries are in each state (every state present, zeros included)."""
        sql = "SELECT state, COUNT(*) FROM entries GROUP BY state"
        rows = await self._run(lambda conn: conn.execute(sql).fetchall())
        counts = dict.fromkeys(JournalState, 0)
        counts.update({JournalState(state): n for state, n in rows})
        return counts

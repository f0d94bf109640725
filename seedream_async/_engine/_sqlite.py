"""The SQLite journal: :class:`~._store.JournalStore` in one file, shared safely by processes.

WAL mode, and every call is one short ``BEGIN IMMEDIATE`` transaction (the write lock is
taken at the start, so two processes never both read a row and then both write it), run in
a worker thread one at a time. ``busy_timeout`` makes a writer wait for another process's
transaction instead of failing. A committed row survives a crash or ``kill -9`` of the
process; ``durable=True`` (``synchronous=FULL``) survives power loss too.

Tables (schema version 2):

- ``items``: one row per key: state, the latest attempt's request and prediction id, the
  reserved output name and its case-folded form (UNIQUE, so two keys can never share a
  file), the claim (owner, lease expiry), what the key has cost over all its attempts.
- ``attempts``: every paid (or possibly paid) attempt of every key, never deleted.
- ``totals``: one row, billed and reserved dollars over the whole journal, kept in the same
  transactions as the rows, so a budget check is one read.

A claim expires on the journal's clock (``time.time()`` of the process that writes); a run
on the same machine whose process is gone (its pid no longer exists) has its claims taken
over at once, without waiting for the lease to run out.

A version-1 journal (seedream-async before the claims) is migrated in place, in one
transaction, the first time it is opened: a row that failed *after* its prediction was
billed (a download, a deadline, a disk error) becomes SUBMITTED, so the resume fetches it
by id instead of paying for it again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from .._exceptions import JournalError
from ._sqlite_schema import SCHEMA_VERSION, Tx, connect
from ._sqljournal import SQLJournal
from ._sqltx import Dialect, JournalTx

__all__ = ["SCHEMA_VERSION", "SQLiteJournal"]

_T = TypeVar("_T")

_DIALECT = Dialect(items="items", attempts="attempts", totals="totals", fold="name_fold")


class SQLiteJournal(SQLJournal):
    """The journal in one SQLite file. ``async with await SQLiteJournal.open(path) as j``.

    Implements :class:`~._store.JournalStore`; see there for what each call does, and
    ``_sqljournal.py`` for the statements each call runs.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._limiter = anyio.CapacityLimiter(1)  # one sqlite call at a time, in order

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, durable: bool = False) -> SQLiteJournal:
        """Open the journal at ``path``, creating the file and its tables if missing, and
        migrating a version-1 journal.

        Args:
            path: the SQLite file.
            durable: fsync every commit so entries survive power loss too. Slower.

        Raises:
            JournalError: the file is not an SQLite database, is corrupt, belongs to another
                application, or was written by a newer seedream-async.
        """
        path = Path(path)
        try:
            conn = await anyio.to_thread.run_sync(connect, path, durable)
        except sqlite3.Error as err:
            raise JournalError(f"cannot open journal {str(path)!r}: {err}") from err
        return cls(conn, path)

    async def aclose(self) -> None:
        """Close the file. Safe to call twice."""

        def close() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close, limiter=self._limiter)

    def _transact(self, fn: Callable[[JournalTx], _T], *, read_only: bool) -> _T:
        # BEGIN IMMEDIATE takes the write lock at the start, so no row needs locking on its
        # own; a read takes none.
        if self._conn is None:
            raise JournalError(f"journal {str(self.path)!r} is closed")
        with Tx(self._conn, read_only=read_only) as conn:
            return fn(JournalTx(conn, _DIALECT, time.time()))

    def _failure(self, err: Exception) -> JournalError | None:
        if isinstance(err, sqlite3.Error):
            return JournalError(f"journal {str(self.path)!r}: {err}")
        return None

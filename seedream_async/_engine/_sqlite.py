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

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from .._base._exceptions import JournalError, JournalUnavailable
from ._sqlite_schema import SCHEMA_VERSION, Tx, connect
from ._sqljournal import SQLJournal
from ._sqltx import Dialect, JournalTx

__all__ = ["SCHEMA_VERSION", "SQLiteJournal"]

_T = TypeVar("_T")
logger = logging.getLogger("seedream_async")


def wall_clock() -> float:
    """The journal's clock: wall time, the one clock every process on the machine (and the
    file, across reboots) shares. A jump moves leases only: forward, a run renews its own
    expired lease before a paid attempt (nobody took the item); backward, leases last
    longer. Waits and deadlines never use it (they run on the monotonic clock)."""
    return time.time()


_DIALECT = Dialect(items="items", attempts="attempts", totals="totals", fold="name_fold")


class SQLiteJournal(SQLJournal):
    """The journal in one SQLite file. ``async with await SQLiteJournal.open(path) as j``.

    Implements :class:`~._store.JournalStore`; see there for what each call does, and
    ``_sqljournal.py`` for the statements each call runs.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, durable: bool = False) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._durable = durable
        self._file = _file_id(path)
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
        except JournalError as err:
            cause = err.__cause__
            if isinstance(cause, sqlite3.Error | OSError):
                raise unavailable(path, cause) or err from cause
            raise
        except (sqlite3.Error, OSError) as err:
            raise unavailable(path, err) or JournalError(
                f"cannot open journal {str(path)!r}: {err}"
            ) from err
        return cls(conn, path, durable=durable)

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
        if _file_id(self.path) != self._file:
            self._reopen()  # deleted or replaced while in use
        with Tx(self._conn, read_only=read_only) as conn:
            return fn(JournalTx(conn, _DIALECT, wall_clock()))

    def _failure(self, err: Exception) -> JournalError | None:
        if isinstance(err, sqlite3.Error | OSError):
            return unavailable(self.path, err) or JournalError(f"journal {str(self.path)!r}: {err}")
        return None

    def _reopen(self) -> None:
        """The file at :attr:`path` is not the one this connection has open: it was deleted
        (a write would land in a file no later run sees) or replaced. A deleted journal is
        restored from the open connection (SQLite's online backup, page for page), then
        the journal is opened again at its path. Runs in the worker thread, before a
        transaction, so no write is lost in between."""
        assert self._conn is not None
        restored = False
        if _file_id(self.path) is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spare = self.path.with_name(f".{self.path.name}.restore-{os.getpid()}")
            target = sqlite3.connect(spare)
            try:
                self._conn.backup(target)
            finally:
                target.close()
            self._conn.close()  # the last user of the old file: its -wal and -shm go
            try:
                os.link(spare, self.path)  # unless another run restored it first
                restored = True
            except FileExistsError:
                pass
            finally:
                spare.unlink(missing_ok=True)
        else:
            self._conn.close()
        self._conn = connect(self.path, self._durable)
        self._file = _file_id(self.path)
        logger.warning(
            "the journal %s was %s while in use; %s",
            self.path, "deleted" if restored or self._file is None else "replaced",
            "restored it from the open connection: nothing is lost" if restored
            else "opened the file now there",
        )  # fmt: skip


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


_FAULTS = {
    # sqlite3 error names (Python 3.11+) whose cause is the machinery, not the file's content.
    "SQLITE_FULL": ("its disk is full", "free space on the disk holding it"),
    "SQLITE_READONLY_DBMOVED": (
        "its file was deleted or moved while in use",
        "every billed id it held is saved to a sidecar file beside it, which the next run reads",
    ),
    "SQLITE_READONLY": (
        "it is read-only",
        "fix its permissions (and its folder's: SQLite writes a -wal file beside it)",
    ),
    "SQLITE_CANTOPEN": (
        "its file cannot be opened",
        "check that its folder exists and is writable",
    ),
    "SQLITE_IOERR": ("the disk reported an I/O error", "check the disk holding it"),
    "SQLITE_BUSY": ("another process keeps it locked", "wait for it, or stop it"),
}


def unavailable(path: Path, err: BaseException) -> JournalUnavailable | None:
    """``err`` as a :class:`JournalUnavailable` naming the file and what to do, or None
    when it is not the infrastructure's fault (a corrupt file, a bug)."""
    resource = str(path)
    if isinstance(err, OSError):
        reason = err.strerror or type(err).__name__
        if err.errno == 28:  # ENOSPC
            return JournalUnavailable(resource, "its disk is full", _hint("free space"))
        return JournalUnavailable(resource, reason, _hint("check the disk and permissions"))
    name = getattr(err, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR")) and (
        _read_only(path)
    ):
        reason, hint = _FAULTS["SQLITE_READONLY"]
        return JournalUnavailable(resource, reason, _hint(hint))
    for prefix, (reason, hint) in _FAULTS.items():
        if name.startswith(prefix):
            gone = prefix == "SQLITE_READONLY_DBMOVED"
            return JournalUnavailable(resource, reason, _hint(hint), gone=gone)
    text = str(err).lower()
    if "disk is full" in text:
        return JournalUnavailable(resource, "its disk is full", _hint("free space"))
    if "readonly" in text or "read-only" in text:
        return JournalUnavailable(resource, "it is read-only", _hint("fix its permissions"))
    return None


def _read_only(path: Path) -> bool:
    """The file, or its folder (SQLite writes a -wal and -shm beside it), is not writable
    (a read-only mount says so even to root)."""
    folder = path.parent
    return (folder.exists() and not os.access(folder, os.W_OK)) or (
        path.exists() and not os.access(path, os.W_OK)
    )


def _hint(what: str) -> str:
    return f"{what}, then re-run the same command (nothing billed is paid again)"

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

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import JournalError
from ._names import fold
from ._sqlite_schema import SCHEMA_VERSION, Tx, connect
from ._store import (
    UNDELIVERED_STATES,
    Attempt,
    Claim,
    ClaimOutcome,
    ClaimStatus,
    ItemRecord,
    JournalState,
    LostClaim,
    Page,
    Spend,
    attempt_from_row,
    record_from_row,
)

__all__ = ["SCHEMA_VERSION", "SQLiteJournal", "new_owner"]

_T = TypeVar("_T")

_HOST = socket.gethostname()

_ITEM_COLUMNS = (
    "key, seq, fingerprint, name, state, request, prediction_id, outputs, files, error, "
    "error_type, cost, predict_time, attempts, owner, lease_expires, updated_at"
)


def new_owner() -> str:
    """A run id: host, process id and a random part (``host:pid:hex``)."""
    return f"{_HOST}:{os.getpid()}:{os.urandom(4).hex()}"


def _owner_gone(owner: str) -> bool:
    """True when ``owner`` ran on this machine in a process that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


class SQLiteJournal:
    """The journal in one SQLite file. ``async with await SQLiteJournal.open(path) as j``.

    Implements :class:`~._store.JournalStore`; see there for what each call does.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._limiter = anyio.CapacityLimiter(1)  # one sqlite call at a time, in order

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

    async def __aenter__(self) -> SQLiteJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        # Not cancellable once started (anyio's default): a commit either happens or not.
        def call() -> _T:
            if self._conn is None:
                raise JournalError(f"journal {str(self.path)!r} is closed")
            return fn(self._conn)

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except sqlite3.Error as err:
            raise JournalError(f"journal {str(self.path)!r}: {err}") from err

    # -- claims ------------------------------------------------------------------------

    async def claim(
        self, owner: str, claims: Sequence[Claim], *, lease: float
    ) -> list[ClaimOutcome]:
        def run(conn: sqlite3.Connection) -> list[ClaimOutcome]:
            now = time.time()
            with Tx(conn):
                return [self._claim_one(conn, owner, claim, now, lease) for claim in claims]

        return await self._run(run)

    def _claim_one(
        self, conn: sqlite3.Connection, owner: str, claim: Claim, now: float, lease: float
    ) -> ClaimOutcome:
        row = conn.execute(
            "SELECT state, fingerprint, name_fold, owner, lease_expires, reserved "
            "FROM items WHERE key = ?",
            (claim.key,),
        ).fetchone()
        name_fold = fold(claim.name)
        if row is None or row[2] != name_fold:
            other = conn.execute(
                "SELECT key FROM items WHERE name_fold = ? AND key != ?", (name_fold, claim.key)
            ).fetchone()
            if other is not None:
                return ClaimOutcome(status=ClaimStatus.NAME_TAKEN, conflict=other[0])
        expires = now + lease
        if row is None:
            conn.execute(
                "INSERT INTO items (key, fingerprint, name, name_fold, state, owner, "
                "lease_expires, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (claim.key, claim.fingerprint, claim.name, name_fold, JournalState.PENDING,
                 owner, expires, now),
            )  # fmt: skip
            return ClaimOutcome(status=ClaimStatus.CLAIMED, record=self._get(conn, claim.key))
        state, fingerprint, _, holder, holder_expires, reserved = row
        taken_over: str | None = None
        if holder is not None and holder != owner:
            if holder_expires is not None and holder_expires > now and not _owner_gone(holder):
                return ClaimOutcome(
                    status=ClaimStatus.BUSY,
                    record=self._get(conn, claim.key),
                    retry_after=holder_expires - now,
                )
            taken_over = holder
        if state == JournalState.INTENT and holder != owner:
            # Its run stopped between the intent and the answer: the submit may have been
            # billed. Count the reservation as billed, to be safe.
            conn.execute("UPDATE totals SET billed = billed + ?, reserved = reserved - ?",
                         (reserved, reserved))  # fmt: skip
            conn.execute(
                "UPDATE items SET state = ?, cost = cost + reserved, reserved = 0, error = ? "
                "WHERE key = ?",
                (JournalState.AMBIGUOUS, "the run that sent this submit stopped before its "
                 "answer came; it may have been billed", claim.key),
            )  # fmt: skip
            self._close_attempt(conn, claim.key, JournalState.AMBIGUOUS, cost=reserved, now=now)
        if fingerprint != claim.fingerprint:
            # A different job under the same key: its paid attempts stay in `attempts`.
            conn.execute(
                "UPDATE items SET fingerprint = ?, state = ?, request = NULL, "
                "prediction_id = NULL, outputs = '[]', files = '[]', error = NULL, "
                "error_type = NULL, predict_time = NULL WHERE key = ?",
                (claim.fingerprint, JournalState.PENDING, claim.key),
            )
        conn.execute(
            "UPDATE items SET owner = ?, lease_expires = ?, name = ?, name_fold = ?, "
            "updated_at = ? WHERE key = ?",
            (owner, expires, claim.name, name_fold, now, claim.key),
        )
        return ClaimOutcome(
            status=ClaimStatus.CLAIMED,
            record=self._get(conn, claim.key),
            taken_over_from=taken_over,
        )

    async def heartbeat(self, owner: str, *, lease: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            with Tx(conn):
                cursor = conn.execute(
                    "UPDATE items SET lease_expires = ? WHERE owner = ?",
                    (time.time() + lease, owner),
                )
                return cursor.rowcount

        return await self._run(run)

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with Tx(conn):
                conn.executemany(
                    "UPDATE items SET owner = NULL, lease_expires = NULL "
                    "WHERE key = ? AND owner = ?",
                    [(key, owner) for key in keys],
                )

        await self._run(run)

    # -- transitions -------------------------------------------------------------------

    def _fenced(
        self,
        conn: sqlite3.Connection,
        owner: str,
        key: str,
        allowed: frozenset[JournalState] | None,
        action: str,
    ) -> tuple[JournalState, float, int]:
        """Check, inside the transaction, that ``owner`` holds ``key`` in an allowed state;
        return its state, reservation and attempt count."""
        row = conn.execute(
            "SELECT state, owner, reserved, attempts FROM items WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            raise JournalError(f"item {key!r} is not in the journal; claim it first")
        state, holder, reserved, attempts = JournalState(row[0]), row[1], row[2], row[3]
        if holder != owner:
            raise LostClaim(key, owner, holder)
        if allowed is not None and state not in allowed:
            raise JournalError(f"item {key!r} is {state.value}; it cannot be {action}")
        return state, reserved, attempts

    def _close_attempt(
        self,
        conn: sqlite3.Connection,
        key: str,
        state: JournalState,
        *,
        now: float,
        cost: float | None = None,
        prediction_id: str | None = None,
        error: str | None = None,
    ) -> None:
        conn.execute(
            "UPDATE attempts SET state = ?, cost = COALESCE(?, cost), "
            "prediction_id = COALESCE(?, prediction_id), error = COALESCE(?, error), "
            "ended_at = ? WHERE key = ? AND number = (SELECT attempts FROM items WHERE key = ?)",
            (state, cost, prediction_id, error, now, key, key),
        )

    async def reserve(
        self,
        owner: str,
        key: str,
        *,
        request: Mapping[str, Any],
        amount: float,
        budget: float | None,
    ) -> bool:
        payload = json.dumps(dict(request))

        def run(conn: sqlite3.Connection) -> bool:
            now = time.time()
            with Tx(conn):
                state, _, attempts = self._fenced(conn, owner, key, None, "submitted")
                (expires,) = conn.execute(
                    "SELECT lease_expires FROM items WHERE key = ?", (key,)
                ).fetchone()
                if expires is None or expires <= now:
                    # Stalled past its lease: another run may be about to take the item
                    # over, so this one may not start a paid attempt on it.
                    raise LostClaim(key, owner, None)
                if state in UNDELIVERED_STATES or state is JournalState.DELIVERED:
                    raise JournalError(
                        f"item {key!r} already has prediction; submitting it again would pay "
                        "for it twice"
                    )
                if state is JournalState.INTENT:
                    raise JournalError(f"item {key!r} has a submit on the wire already")
                if budget is not None:
                    billed, reserved = conn.execute(
                        "SELECT billed, reserved FROM totals"
                    ).fetchone()
                    if billed + reserved + amount > budget + 1e-9:
                        return False
                fingerprint = conn.execute(
                    "SELECT fingerprint FROM items WHERE key = ?", (key,)
                ).fetchone()[0]
                conn.execute(
                    "UPDATE items SET state = ?, request = ?, prediction_id = NULL, "
                    "outputs = '[]', files = '[]', error = NULL, error_type = NULL, "
                    "predict_time = NULL, reserved = ?, attempts = ?, updated_at = ? "
                    "WHERE key = ?",
                    (JournalState.INTENT, payload, amount, attempts + 1, now, key),
                )
                conn.execute("UPDATE totals SET reserved = reserved + ?", (amount,))
                conn.execute(
                    "INSERT INTO attempts (key, number, fingerprint, owner, state, started_at, "
                    "ended_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, attempts + 1, fingerprint, owner, JournalState.INTENT, now, now),
                )
                return True

        return await self._run(run)

    async def submitted(self, owner: str, key: str, *, prediction_id: str, cost: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = time.time()
            with Tx(conn):
                _, reserved, _ = self._fenced(
                    conn, owner, key, frozenset({JournalState.INTENT}), "marked submitted"
                )
                conn.execute(
                    "UPDATE items SET state = ?, prediction_id = ?, cost = cost + ?, "
                    "reserved = 0, updated_at = ? WHERE key = ?",
                    (JournalState.SUBMITTED, prediction_id, cost, now, key),
                )
                conn.execute(
                    "UPDATE totals SET billed = billed + ?, reserved = reserved - ?",
                    (cost, reserved),
                )
                self._close_attempt(
                    conn, key, JournalState.SUBMITTED, now=now, cost=cost,
                    prediction_id=prediction_id,
                )  # fmt: skip

        await self._run(run)

    async def refund(self, owner: str, key: str, *, error: str | None = None) -> None:
        await self._unbilled(owner, key, JournalState.PENDING, error, None, refund_only=True)

    async def not_submitted(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        await self._unbilled(owner, key, JournalState.NOT_SUBMITTED, error, error_type)

    async def _unbilled(
        self,
        owner: str,
        key: str,
        target: JournalState,
        error: str | None,
        error_type: str | None,
        *,
        refund_only: bool = False,
    ) -> None:
        allowed = frozenset({JournalState.INTENT})
        if not refund_only:
            allowed |= {
                JournalState.PENDING,
                JournalState.NOT_SUBMITTED,
                JournalState.API_FAILED,
                JournalState.AMBIGUOUS,
            }

        def run(conn: sqlite3.Connection) -> None:
            now = time.time()
            with Tx(conn):
                state, reserved, _ = self._fenced(conn, owner, key, allowed, target.value)
                if state is JournalState.INTENT:
                    self._close_attempt(conn, key, target, now=now, cost=0.0, error=error)
                    conn.execute("UPDATE totals SET reserved = reserved - ?", (reserved,))
                elif state in (JournalState.API_FAILED, JournalState.AMBIGUOUS):
                    return  # billed before; a refused retry leaves the paid state as it was
                conn.execute(
                    "UPDATE items SET state = ?, reserved = 0, error = ?, error_type = ?, "
                    "updated_at = ? WHERE key = ?",
                    (target, error, error_type, now, key),
                )

        await self._run(run)

    async def ambiguous(self, owner: str, key: str, *, cost: float, error: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = time.time()
            with Tx(conn):
                _, reserved, _ = self._fenced(
                    conn, owner, key, frozenset({JournalState.INTENT}), "marked ambiguous"
                )
                conn.execute(
                    "UPDATE items SET state = ?, cost = cost + ?, reserved = 0, error = ?, "
                    "error_type = 'AmbiguousSubmission', updated_at = ? WHERE key = ?",
                    (JournalState.AMBIGUOUS, cost, error, now, key),
                )
                conn.execute(
                    "UPDATE totals SET billed = billed + ?, reserved = reserved - ?",
                    (cost, reserved),
                )
                self._close_attempt(
                    conn, key, JournalState.AMBIGUOUS, now=now, cost=cost, error=error
                )

        await self._run(run)

    async def done(
        self, owner: str, key: str, *, outputs: Sequence[str], predict_time: float | None
    ) -> None:
        allowed = frozenset({JournalState.SUBMITTED, JournalState.DONE})
        await self._after_id(
            owner, key, allowed, JournalState.DONE,
            "outputs = ?, predict_time = COALESCE(?, predict_time), error = NULL, "
            "error_type = NULL", (json.dumps(list(outputs)), predict_time),
        )  # fmt: skip

    async def api_failed(self, owner: str, key: str, *, error: str) -> None:
        allowed = frozenset({JournalState.SUBMITTED, JournalState.DONE})
        await self._after_id(
            owner, key, allowed, JournalState.API_FAILED,
            "error = ?, error_type = 'PredictionFailed'", (error,), attempt_error=error,
        )  # fmt: skip

    async def delivered(
        self, owner: str, key: str, *, files: Sequence[str], outputs: Sequence[str]
    ) -> None:
        allowed = frozenset({JournalState.SUBMITTED, JournalState.DONE, JournalState.DELIVERED})
        await self._after_id(
            owner, key, allowed, JournalState.DELIVERED,
            "files = ?, outputs = ?, error = NULL, error_type = NULL, owner = NULL, "
            "lease_expires = NULL",
            (json.dumps([os.fspath(f) for f in files]), json.dumps(list(outputs))),
        )  # fmt: skip

    async def note_error(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with Tx(conn):
                self._fenced(conn, owner, key, None, "noted")
                conn.execute(
                    "UPDATE items SET error = ?, error_type = ?, updated_at = ? WHERE key = ?",
                    (error, error_type, time.time(), key),
                )

        await self._run(run)

    async def _after_id(
        self,
        owner: str,
        key: str,
        allowed: frozenset[JournalState],
        target: JournalState,
        assignments: str,
        params: tuple[Any, ...],
        *,
        attempt_error: str | None = None,
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = time.time()
            with Tx(conn):
                self._fenced(conn, owner, key, allowed, target.value)
                conn.execute(
                    f"UPDATE items SET state = ?, {assignments}, updated_at = ? WHERE key = ?",
                    (target, *params, now, key),
                )
                self._close_attempt(conn, key, target, now=now, error=attempt_error)

        await self._run(run)

    # -- reading -----------------------------------------------------------------------

    def _get(self, conn: sqlite3.Connection, key: str) -> ItemRecord:
        row = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE key = ?", (key,)).fetchone()
        return record_from_row(row)

    async def get(self, key: str) -> ItemRecord | None:
        sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE key = ?"
        row = await self._run(lambda conn: conn.execute(sql, (key,)).fetchone())
        return None if row is None else record_from_row(row)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ItemRecord]:
        def run(conn: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE key IN ({marks})"
                rows.extend(conn.execute(sql, chunk).fetchall())
            return rows

        return {record.key: record for record in map(record_from_row, await self._run(run))}

    async def history(self, key: str) -> list[Attempt]:
        sql = (
            "SELECT number, fingerprint, owner, state, prediction_id, cost, error, started_at, "
            "ended_at FROM attempts WHERE key = ? ORDER BY number"
        )
        rows = await self._run(lambda conn: conn.execute(sql, (key,)).fetchall())
        return [attempt_from_row(row) for row in rows]

    async def spend(self) -> Spend:
        def run(conn: sqlite3.Connection) -> tuple[float, float, int]:
            billed, reserved = conn.execute("SELECT billed, reserved FROM totals").fetchone()
            (in_flight,) = conn.execute(
                "SELECT COUNT(*) FROM items WHERE state = ?", (JournalState.SUBMITTED,)
            ).fetchone()
            return billed, reserved, in_flight

        billed, reserved, in_flight = await self._run(run)
        return Spend(billed=round(billed, 9), reserved=round(max(reserved, 0.0), 9),
                     in_flight=in_flight)  # fmt: skip

    async def counts(self) -> dict[JournalState, int]:
        sql = "SELECT state, COUNT(*) FROM items GROUP BY state"
        rows = await self._run(lambda conn: conn.execute(sql).fetchall())
        counts = dict.fromkeys(JournalState, 0)
        counts.update({JournalState(state): n for state, n in rows})
        return counts

    async def page(self, *, after: int = 0, limit: int = 1000) -> Page:
        sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE seq > ? ORDER BY seq LIMIT ?"
        rows = await self._run(lambda conn: conn.execute(sql, (after, limit)).fetchall())
        records = [record_from_row(row) for row in rows]
        return Page(records=records, next_after=records[-1].seq if len(records) == limit else None)

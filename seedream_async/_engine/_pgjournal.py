"""The journal on PostgreSQL: one catalog shared by many workers on many machines.

Implements :class:`~._store.JournalStore` (read its docstring for the states, claims and
budget) on a PostgreSQL server, plus what a fleet needs on top: a manifest loaded into the
journal once (:meth:`PostgresJournal.load`), and workers that take their work from it in
batches (:meth:`PostgresJournal.claim_next`) instead of from an iterable of their own.

How the promise "every item done once, no prediction paid twice" holds across machines:

- **Claims are leases on the server's clock.** ``claim_next`` picks unclaimed (or expired)
  rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, so N workers asking at once get disjoint
  batches without waiting on each other, and stamps them with the worker's id and an expiry
  that the worker's heartbeat renews. A worker that dies stops renewing; once its leases run
  out, the next claimer takes its rows over *as they were left*: an item with a prediction id
  is polled by that id, an item caught between reserve and id is ambiguous, never re-sent.
- **Every state change is fenced** by the owner (``LostClaim`` if the row is no longer the
  caller's); :meth:`reserve` also needs the lease to be live, so a worker that stalled past
  its lease cannot start a submit on an item someone else may be carrying on.
- **One budget for the fleet.** ``reserve`` locks the single ``seedream_spend`` row, checks
  billed + every worker's reservations + this submit against the budget, and records the
  intent, in one transaction; ``submitted`` / ``refund`` / ``ambiguous`` settle it.

Blocking psycopg 3 calls run in worker threads (``anyio.to_thread``) on a psycopg-pool
connection pool, so the journal works under asyncio and trio alike; a started call is not
cancelled (its transaction commits or not). The schema is created by the library on first
open and versioned by a row in ``seedream_meta``; a newer schema is refused. Table names are
prefixed ``seedream_``; point ``search_path`` at another schema (``?options=-csearch_path%3Dx``
in the DSN) to keep several journals in one database. The DSN's password is never logged or
put in an error message.

Beside it: connecting (``_pgjournal_pool.py``), the tables (``_pgjournal_schema.py``), the
values a fleet's calls take and give (``_fleet_types.py``), the statements every SQL journal
runs (``_sqljournal.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from .._base._exceptions import JournalError
from ._fleet_types import ClaimedItem, FleetStatus, LoadReport, LoadRow
from ._journal_types import JournalState
from ._names import fold
from ._pgjournal_pool import CHECKOUT, connect_pool, down, reason
from ._pgjournal_schema import is_postgres_dsn, redact_dsn
from ._rules import (
    DRAINABLE_STATES,
    RETAKEN_STATES,
    SUPERSEDED_MID_SUBMIT,
    ClaimRow,
    left_mid_submit,
    stopped_mid_submit,
)
from ._sqljournal import SQLJournal
from ._sqltx import ITEM_COLUMNS, Dialect, JournalTx, record_from_row

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

__all__ = [
    "DRAINABLE_STATES",
    "ClaimedItem",
    "FleetStatus",
    "LoadReport",
    "LoadRow",
    "PostgresJournal",
    "is_postgres_dsn",
    "redact_dsn",
]

_T = TypeVar("_T")

_DIALECT = Dialect(
    items="seedream_items",
    attempts="seedream_attempts",
    totals="seedream_spend",
    fold="name_folded",
    param="%s",
    lock=" FOR UPDATE",
)
_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"
_LIVE = "(" + ", ".join(f"'{state}'" for state in sorted(DRAINABLE_STATES)) + ")"
_NOTED = "(state IN ('submitted', 'done') AND error IS NOT NULL)"
_RETAKEN = "(" + ", ".join(f"'{state}'" for state in sorted(RETAKEN_STATES)) + ")"
# _rules.retaken() as SQL: left waiting (not submitted, or billed with a failed delivery)
# before the drain started (the first parameter).
_RETAKE = f"((state IN {_RETAKEN} OR {_NOTED}) AND updated_at < ?)"


class PostgresJournal(SQLJournal):
    """A journal on a PostgreSQL server, shared by any number of workers.

    Open with ``async with await PostgresJournal.open("postgresql://...") as journal``.
    Implements :class:`~._store.JournalStore` (the statements are in ``_sqljournal.py``),
    plus a fleet's calls: :meth:`load`, :meth:`claim_next` and :meth:`fleet`.
    """

    def __init__(self, pool: ConnectionPool[Any], dsn: str, pool_size: int) -> None:
        self._pool: ConnectionPool[Any] | None = pool
        self._dsn = redact_dsn(dsn)
        self._limiter = anyio.CapacityLimiter(pool_size)
        # One more connection than ordinary calls may take, kept for the heartbeat: a
        # worker busy with journal calls must not lose its leases waiting in their queue.
        self._beat_limiter = anyio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"PostgresJournal({self._dsn!r})"

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        outage_wait: float = 120.0,
    ) -> PostgresJournal:
        """Connect to ``dsn`` and create (or check) the journal's tables.

        Args:
            dsn: ``postgresql://user[:password]@host[:port]/dbname[?options]``.
            pool_size: the most journal calls at once (one more connection is kept for
                the heartbeat).
            connect_timeout: seconds to wait for the first connection.
            outage_wait: seconds a journal call waits out a lost server (a restart, an
                outage) before it raises :class:`JournalUnavailable`.

        Raises:
            JournalError: the server cannot be reached, the tables belong to another
                application, or were written by a newer seedream-async.
        """
        try:
            pool = await anyio.to_thread.run_sync(connect_pool, dsn, pool_size, connect_timeout)
        except JournalError:
            raise
        except Exception as err:  # PoolTimeout, OperationalError: say where, not the password
            raise down(redact_dsn(dsn), err) from None
        journal = cls(pool, dsn, pool_size)
        journal.outage_wait = outage_wait
        return journal

    async def aclose(self) -> None:
        """Close the connections. Safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(pool.close)

    async def __aenter__(self) -> PostgresJournal:
        return self

    def _transact(self, fn: Callable[[JournalTx], _T], *, read_only: bool) -> _T:
        """One transaction on a pooled connection, on the server's clock; a deadlock or a
        serialization failure is tried again (up to five times). A lost or refused
        connection is :class:`JournalUnavailable` (``maybe_committed`` when it came at the
        COMMIT), which :meth:`SQLJournal._tx` waits out."""
        import psycopg.errors

        if self._pool is None:
            raise JournalError(f"the journal {self._dsn} is closed")
        for attempt in range(5):
            committing = False
            try:
                with self._pool.connection(timeout=CHECKOUT) as conn:
                    with conn.transaction():
                        row = conn.execute(_NOW).fetchone()
                        assert row is not None
                        result = fn(JournalTx(conn, _DIALECT, float(row[0])))
                        committing = True
                    return result
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == 4:
                    raise
            except psycopg.OperationalError as err:
                raise down(self._dsn, err, maybe_committed=committing) from err
        raise AssertionError("unreachable")

    def _failure(self, err: Exception) -> JournalError | None:
        import psycopg

        if isinstance(err, psycopg.Error):
            return JournalError(f"journal {self._dsn}: {reason(err)}")
        return None

    # -- a fleet --------------------------------------------------------------------------

    async def claim_next(
        self,
        owner: str,
        *,
        limit: int,
        lease: float,
        retry_noted: bool = False,
        since: float | None = None,
    ) -> list[ClaimedItem]:
        """Claim up to ``limit`` loaded items that still need work, in manifest order.

        Rows held by a live worker are skipped (``FOR UPDATE SKIP LOCKED`` keeps workers
        asking at once from waiting on each other); rows whose lease ran out are taken over
        as they were left, the caller's own included. Only rows loaded with :meth:`load`
        (which carry their item) are handed out. Rows left NOT_SUBMITTED, and billed items
        whose delivery failed (an error noted by :meth:`note_error`), are taken again when
        they were left so before ``since`` (the store-clock time the drain started, see
        :meth:`clock` and :func:`~._rules.retaken`), so every plain drain picks up what
        the last one could not do, and still ends; ``retry_noted`` also takes the noted
        rows of this drain.
        """
        noted = "TRUE" if retry_noted else f"NOT {_NOTED}"
        since_value = -1.0 if since is None else since

        def pick(tx: JournalTx, which: str, limit: int) -> list[tuple[Any, ...]]:
            return tx.all(
                f"""
                WITH picked AS (
                    SELECT key, owner AS previous FROM {{items}}
                    WHERE item IS NOT NULL AND ((state IN {_LIVE} AND {noted}) OR {_RETAKE})
                    AND {which}
                    ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED)
                UPDATE {{items}} AS i SET owner = ?, lease_expires = ?
                FROM picked WHERE i.key = picked.key
                RETURNING i.key, picked.previous
                """,
                (since_value, tx.now, limit, owner, tx.now + lease),
            )

        def claim_next(tx: JournalTx) -> list[ClaimedItem]:
            # Two index scans rather than one with an OR: expired leases first (a dead
            # worker's items, maybe billed, are the oldest work), then rows nobody holds.
            # Rows held by live workers are never scanned, however many are in flight.
            rows = pick(tx, "owner IS NOT NULL AND lease_expires <= ?", limit)
            if len(rows) < limit:
                rows += pick(tx, "owner IS NULL AND ? IS NOT NULL", limit - len(rows))
            return sorted(
                (_handed_out(tx, owner, key, previous) for key, previous in rows),
                key=lambda claimed: claimed.record.seq,
            )

        return await self._tx(claim_next)

    async def load(self, rows: Iterable[LoadRow], *, chunk: int = 500) -> LoadReport:
        """Load manifest rows, idempotently: new keys are added as PENDING, unchanged ones
        are left alone (not even touched), and a key whose fingerprint changed becomes a new
        job (its paid attempts stay in its history). One transaction per ``chunk`` rows.

        A key whose output name another key holds (case-insensitively) is not loaded; it is
        listed in the report's ``name_conflicts``.
        """
        tally = {"added": 0, "unchanged": 0, "changed": 0}
        conflicts: list[tuple[str, str]] = []

        def load(tx: JournalTx, batch: list[LoadRow]) -> None:
            current = {
                row[0]: row[1:]
                for row in tx.all(
                    "SELECT key, fingerprint, name, state, owner, lease_expires, item "
                    "FROM {items} WHERE key = ANY(?) ORDER BY key FOR UPDATE",
                    ([row.key for row in batch],),
                )
            }
            for row in batch:
                outcome = _load_one(tx, row, current.get(row.key))
                if isinstance(outcome, tuple):
                    conflicts.append(outcome)
                else:
                    tally[outcome] += 1

        batch: list[LoadRow] = []
        for row in [*rows, None]:
            if row is not None:
                batch.append(row)
            if batch and (row is None or len(batch) >= chunk):
                current_batch, batch = batch, []
                await self._tx(lambda tx, b=current_batch: load(tx, b))  # type: ignore[misc]
        return LoadReport(**tally, name_conflicts=tuple(conflicts))

    async def clock(self) -> float:
        """The server's clock now (seconds since the epoch): where a drain starts."""
        return await self._tx(lambda tx: tx.now)

    async def fleet(self, *, since: float | None = None) -> FleetStatus:
        """Who holds the unfinished items right now: live owners, stale leases, unclaimed
        (rows a drain started at ``since`` takes again counted as unclaimed)."""
        since_value = -1.0 if since is None else since

        def fleet(tx: JournalTx) -> FleetStatus:
            rows = tx.all(
                f"SELECT owner, lease_expires > ?, {_NOTED}, {_RETAKE}, "
                f"state IN {_RETAKEN}, count(*) FROM {{items}} "
                f"WHERE state IN {_LIVE} OR state IN {_RETAKEN} GROUP BY 1, 2, 3, 4, 5",
                (tx.now, since_value),
            )
            owners: dict[str, int] = {}
            stale = unclaimed = noted = 0
            for owner, live, was_noted, retake, not_submitted, n in rows:
                if owner is not None and live:
                    owners[owner] = owners.get(owner, 0) + n
                elif retake:
                    unclaimed += n
                elif not_submitted:
                    continue  # for the next drain
                elif was_noted:
                    noted += n
                elif owner is not None:
                    stale += n
                else:
                    unclaimed += n
            return FleetStatus(owners=owners, stale=stale, unclaimed=unclaimed, noted=noted)

        return await self._tx(fleet)


def _load_one(tx: JournalTx, row: LoadRow, old: Sequence[Any] | None) -> str | tuple[str, str]:
    """Load one row (``old``: its current fingerprint, name, state, owner, lease_expires and
    item); the tally it counts in, or (key, the key holding its name)."""
    item = json.dumps(dict(row.item), sort_keys=True)
    current = None if old is None else ClaimRow.from_row(old)
    if current is None or current.fingerprint != row.fingerprint:
        holder = tx.name_holder(row.key, row.name)
        if holder is not None:
            return (row.key, holder)
    if current is None:
        inserted = tx.run(
            "INSERT INTO {items} (key, fingerprint, name, {fold}, state, item, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (row.key, row.fingerprint, row.name, fold(row.name), JournalState.PENDING, item,
             tx.now),
        )  # fmt: skip
        if not inserted:  # a key or name another loader inserted a moment ago
            return (row.key, tx.name_holder(row.key, row.name) or row.key)
        return "added"
    if current.fingerprint != row.fingerprint:
        if current.state is JournalState.INTENT:
            tx.to_ambiguous(row.key, SUPERSEDED_MID_SUBMIT)
        tx.new_job(row.key, row.fingerprint)
        tx.update(
            row.key,
            {"item": item, "name": row.name, _DIALECT.fold: fold(row.name), "owner": None,
             "lease_expires": None},
        )  # fmt: skip
        return "changed"
    if old is not None and old[5] != item:  # same content, other paths: keep the job
        tx.run("UPDATE {items} SET item = ? WHERE key = ?", (item, row.key))
    return "unchanged"


def _handed_out(tx: JournalTx, owner: str, key: str, previous: str | None) -> ClaimedItem:
    """The row ``claim_next`` took, after the rules: one left mid-submit is ambiguous now."""
    state = tx.one("SELECT state FROM {items} WHERE key = ?", (key,))[0]
    if left_mid_submit(JournalState(state), previous, owner):
        tx.to_ambiguous(key, stopped_mid_submit(previous))
    row = tx.one(f"SELECT {ITEM_COLUMNS}, item FROM {{items}} WHERE key = ?", (key,))
    return ClaimedItem(
        record=record_from_row(row),
        item=json.loads(row[-1]),
        taken_over_from=previous if previous not in (None, owner) else None,
    )

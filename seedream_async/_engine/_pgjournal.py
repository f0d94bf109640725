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
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import JournalError
from ._store import (
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

if TYPE_CHECKING:
    import psycopg
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

SCHEMA_VERSION = 1
_LOCK_ID = 0x53444A31  # pg_advisory_xact_lock id while creating or checking the schema
_EPSILON = 1e-9  # float sums of prices: a budget of 10 x $0.036 must fit 10 submits

DRAINABLE_STATES = frozenset(
    {JournalState.PENDING, JournalState.INTENT, JournalState.SUBMITTED, JournalState.DONE}
)
"""States a worker still has something to do for (claim_next picks them): run, mark
ambiguous (INTENT left by a dead worker), or fetch by id and deliver."""
_LIVE = tuple(sorted(DRAINABLE_STATES))
_RESERVABLE = frozenset(
    {
        JournalState.PENDING,
        JournalState.NOT_SUBMITTED,
        JournalState.API_FAILED,
        JournalState.AMBIGUOUS,
    }
)

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
    updated_at double precision NOT NULL
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
_COLUMNS = (
    "key, seq, fingerprint, name, state, request, prediction_id, outputs, files, error, "
    "error_type, cost, predict_time, attempts, owner, lease_expires, updated_at"
)
_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"
_NOT_NOTED = "AND NOT (state IN ('submitted', 'done') AND error IS NOT NULL)"


def is_postgres_dsn(value: object) -> TypeGuard[str]:
    """Whether ``value`` names a PostgreSQL journal (``postgresql://`` or ``postgres://``)."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def redact_dsn(dsn: str) -> str:
    """``dsn`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", re.sub(r"password=\S+", "password=***", dsn))


@dataclass(frozen=True, kw_only=True)
class LoadRow:
    """One manifest row to load: what :class:`Claim` carries, plus the item itself.

    Args:
        key: the item's key.
        fingerprint: a digest of its prompt, parameters and image contents.
        name: its output file stem.
        item: the item as JSON (``key``, ``prompt``, ``images``, params) for the workers.
    """

    key: str
    fingerprint: str
    name: str
    item: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class LoadReport:
    """What :meth:`PostgresJournal.load` did.

    Args:
        added: new keys.
        unchanged: keys already there with the same fingerprint (nothing written).
        changed: keys whose fingerprint changed: a new job, the old attempts kept.
        name_conflicts: (key, the other key holding its output name), not loaded.
    """

    added: int = 0
    unchanged: int = 0
    changed: int = 0
    name_conflicts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ClaimedItem:
    """A row handed to a worker by :meth:`PostgresJournal.claim_next`.

    Args:
        record: the row as claimed (its state says what is left to do).
        item: the item as loaded (JSON), to rebuild the request from.
        taken_over_from: the worker whose lease ran out, if this is a takeover.
    """

    record: ItemRecord
    item: Mapping[str, Any]
    taken_over_from: str | None = None


@dataclass(frozen=True, kw_only=True)
class FleetStatus:
    """Who holds what, on the server's clock.

    Args:
        owners: per live owner (lease not expired), how many unfinished items it holds.
        stale: unfinished items whose owner's lease ran out (a dead worker's, until taken
            over).
        unclaimed: unfinished items nobody holds (those below excepted).
        noted: billed items whose delivery failed, waiting for a ``retry_noted`` pass.
    """

    owners: Mapping[str, int]
    stale: int
    unclaimed: int
    noted: int = 0


class _Tx:
    """One transaction's cursor plus the store-clock time it started at."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        row = conn.execute(_NOW).fetchone()
        assert row is not None
        self.now: float = row[0]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    # -- shared steps ---------------------------------------------------------------------

    def owned(self, owner: str, key: str, *, live: bool = False) -> tuple[Any, ...]:
        """Lock ``key``'s row and check ``owner`` holds it (and, with ``live``, that the
        lease has not run out); return (state, reserved, attempts, fingerprint)."""
        row = self.one(
            "SELECT owner, lease_expires, state, reserved, attempts, fingerprint "
            "FROM seedream_items WHERE key = %s FOR UPDATE",
            (key,),
        )
        if row is None:
            raise JournalError(f"item {key!r} is not in the journal; claim it first")
        holder, expires, *rest = row
        if holder != owner or (live and (expires is None or expires <= self.now)):
            raise LostClaim(key, owner, holder)
        return tuple(rest)

    def close_attempt(self, key: str, number: int, state: JournalState, **fields: Any) -> None:
        sets = ", ".join(f"{name} = %s" for name in fields)
        self.run(
            f"UPDATE seedream_attempts SET state = %s, ended_at = %s{', ' if sets else ''}{sets} "
            "WHERE key = %s AND number = %s",
            (state, self.now, *fields.values(), key, number),
        )

    def settle(self, reserved: float, billed: float) -> None:
        """Drop an item's reservation from the journal total and add what it billed."""
        if reserved or billed:
            self.run(
                "UPDATE seedream_spend SET reserved = GREATEST(reserved - %s, 0), "
                "billed = billed + %s WHERE id = 1",
                (reserved, billed),
            )

    def name_holder(self, key: str, name: str) -> str | None:
        row = self.one(
            "SELECT key FROM seedream_items WHERE name_folded = %s AND key <> %s",
            (name.casefold(), key),
        )
        return None if row is None else str(row[0])

    def to_ambiguous(self, key: str, error: str) -> None:
        """INTENT -> AMBIGUOUS for a run that stopped mid-submit: its reservation counts as
        billed, to be safe, and the item is never sent again on its own."""
        row = self.one("SELECT attempts, reserved FROM seedream_items WHERE key = %s", (key,))
        assert row is not None
        number, reserved = int(row[0]), float(row[1])
        self.close_attempt(key, number, JournalState.AMBIGUOUS, cost=reserved, error=error)
        self.settle(reserved, reserved)
        self.run(
            "UPDATE seedream_items SET state = 'ambiguous', cost = cost + reserved, "
            "reserved = 0, error = %s, error_type = 'AmbiguousSubmission', updated_at = %s "
            "WHERE key = %s",
            (error, self.now, key),
        )

    def new_job(self, key: str, fingerprint: str, name: str, state: str) -> None:
        """The row's fingerprint changed: the same key is a new job from PENDING. Its paid
        attempts stay in seedream_attempts; one caught on the wire counts as ambiguous."""
        if state == JournalState.INTENT:
            self.to_ambiguous(key, "superseded by a changed item while its submit was out")
        self.run(
            "UPDATE seedream_items SET fingerprint = %s, name = %s, name_folded = %s, "
            "state = 'pending', request = NULL, prediction_id = NULL, outputs = '[]', "
            "files = '[]', error = NULL, error_type = NULL, predict_time = NULL, "
            "reserved = 0, updated_at = %s WHERE key = %s",
            (fingerprint, name, name.casefold(), self.now, key),
        )


def _stopped_mid_submit(holder: str) -> str:
    return (
        f"the run {holder} stopped between this item's submit and its answer; it may have "
        "been billed, so it is not sent again (resubmit_ambiguous pays for it again)"
    )


class PostgresJournal:
    """A journal on a PostgreSQL server, shared by any number of workers.

    Open with ``async with await PostgresJournal.open("postgresql://...") as journal``.
    Implements :class:`~._store.JournalStore`.
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
        cls, dsn: str, *, pool_size: int = 4, connect_timeout: float = 10.0
    ) -> PostgresJournal:
        """Connect to ``dsn`` and create (or check) the journal's tables.

        Args:
            dsn: ``postgresql://user[:password]@host[:port]/dbname[?options]``.
            pool_size: the most journal calls at once (one more connection is kept for
                the heartbeat).
            connect_timeout: seconds to wait for the first connection.

        Raises:
            JournalError: the server cannot be reached, the tables belong to another
                application, or were written by a newer seedream-async.
        """
        try:
            import psycopg  # noqa: F401  (fail here, with the fix, when it is missing)
            from psycopg_pool import ConnectionPool
        except ImportError as err:
            raise JournalError(
                "a postgresql:// journal needs psycopg and psycopg-pool: "
                "pip install 'seedream-async[postgres]'"
            ) from err

        def connect() -> ConnectionPool[Any]:
            pool: ConnectionPool[Any] = ConnectionPool(
                dsn,
                min_size=1,
                max_size=pool_size + 1,
                kwargs={"autocommit": True},
                open=False,
                name="seedream-journal",
            )
            try:
                pool.open(wait=True, timeout=connect_timeout)
                with pool.connection() as conn, conn.transaction():
                    _ensure_schema(conn, redact_dsn(dsn))
            except BaseException:
                pool.close()
                raise
            return pool

        try:
            pool = await anyio.to_thread.run_sync(connect)
        except JournalError:
            raise
        except Exception as err:  # PoolTimeout, OperationalError: say where, not the password
            raise JournalError(
                f"cannot open the PostgreSQL journal {redact_dsn(dsn)}: {_reason(err)}"
            ) from None
        return cls(pool, dsn, pool_size)

    async def aclose(self) -> None:
        """Close the connections. Safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(pool.close)

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _tx(
        self, fn: Callable[[_Tx], _T], *, limiter: anyio.CapacityLimiter | None = None
    ) -> _T:
        """Run ``fn`` in one transaction in a worker thread; retry a deadlock."""
        import psycopg.errors

        def call() -> _T:
            if self._pool is None:
                raise JournalError(f"the journal {self._dsn} is closed")
            for attempt in range(5):
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        return fn(_Tx(conn))
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    if attempt == 4:
                        raise
            raise AssertionError("unreachable")

        try:
            return await anyio.to_thread.run_sync(call, limiter=limiter or self._limiter)
        except JournalError:
            raise
        except psycopg.Error as err:
            raise JournalError(f"journal {self._dsn}: {_reason(err)}") from err

    # -- claims ---------------------------------------------------------------------------

    async def claim(
        self, owner: str, claims: Sequence[Claim], *, lease: float
    ) -> list[ClaimOutcome]:
        """See :meth:`JournalStore.claim`."""

        def claim(tx: _Tx) -> list[ClaimOutcome]:
            outcomes: dict[int, ClaimOutcome] = {}
            # Lock rows in key order: two runs claiming overlapping batches never deadlock.
            for index, wanted in sorted(enumerate(claims), key=lambda pair: pair[1].key):
                outcomes[index] = _claim_one(tx, owner, wanted, lease)
            return [outcomes[index] for index in range(len(claims))]

        return await self._tx(claim)

    async def claim_next(
        self, owner: str, *, limit: int, lease: float, retry_noted: bool = False
    ) -> list[ClaimedItem]:
        """Claim up to ``limit`` loaded items that still need work, in manifest order.

        Rows held by a live worker are skipped (``FOR UPDATE SKIP LOCKED`` keeps workers
        asking at once from waiting on each other); rows whose lease ran out are taken over
        as they were left, the caller's own included. Only rows loaded with :meth:`load`
        (which carry their item) are handed out. A billed item whose delivery failed (an
        error noted by :meth:`note_error`) waits for a pass with ``retry_noted=True``, so a
        drain ends instead of retrying a broken download forever.
        """
        noted = "" if retry_noted else _NOT_NOTED

        def pick(tx: _Tx, which: str, limit: int) -> list[tuple[Any, ...]]:
            return tx.all(
                f"""
                WITH picked AS (
                    SELECT key, owner AS previous FROM seedream_items
                    WHERE state IN {_sql_list(_LIVE)} AND item IS NOT NULL {noted} AND {which}
                    ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED)
                UPDATE seedream_items AS i SET owner = %s, lease_expires = %s
                FROM picked WHERE i.key = picked.key
                RETURNING {", ".join(f"i.{c}" for c in _COLUMNS.split(", "))},
                    i.item, picked.previous
                """,
                (tx.now, limit, owner, tx.now + lease),
            )

        def claim_next(tx: _Tx) -> list[ClaimedItem]:
            # Two index scans rather than one with an OR: expired leases first (a dead
            # worker's items, maybe billed, are the oldest work), then rows nobody holds.
            # Rows held by live workers are never scanned, however many are in flight.
            rows = pick(tx, "owner IS NOT NULL AND lease_expires <= %s", limit)
            if len(rows) < limit:
                rows += pick(tx, "owner IS NULL AND %s IS NOT NULL", limit - len(rows))
            for index, row in enumerate(rows):
                previous = row[18]
                if row[4] == JournalState.INTENT and previous not in (None, owner):
                    tx.to_ambiguous(row[0], _stopped_mid_submit(previous))
                    fresh = tx.one(
                        f"SELECT {_COLUMNS}, item FROM seedream_items WHERE key = %s", (row[0],)
                    )
                    assert fresh is not None
                    rows[index] = (*fresh, previous)
            rows.sort(key=lambda row: int(row[1]))
            return [
                ClaimedItem(
                    record=record_from_row(row),
                    item=json.loads(row[17]),
                    taken_over_from=row[18] if row[18] not in (None, owner) else None,
                )
                for row in rows
            ]

        return await self._tx(claim_next)

    async def heartbeat(self, owner: str, *, lease: float) -> int:
        """See :meth:`JournalStore.heartbeat`. Runs on a connection of its own."""
        return await self._tx(
            lambda tx: tx.run(
                f"UPDATE seedream_items SET lease_expires = %s "
                f"WHERE owner = %s AND state IN {_sql_list(_LIVE)}",
                (tx.now + lease, owner),
            ),
            limiter=self._beat_limiter,
        )

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        """See :meth:`JournalStore.release`. An item left in INTENT keeps its reservation
        (its submit may be on the wire) until a claimer marks it ambiguous."""
        await self._tx(
            lambda tx: tx.run(
                "UPDATE seedream_items SET owner = NULL, lease_expires = NULL "
                "WHERE owner = %s AND key = ANY(%s)",
                (owner, list(keys)),
            )
        )

    # -- one attempt ----------------------------------------------------------------------

    async def reserve(
        self,
        owner: str,
        key: str,
        *,
        request: Mapping[str, Any],
        amount: float,
        budget: float | None,
    ) -> bool:
        """See :meth:`JournalStore.reserve`."""
        payload = json.dumps(dict(request))

        def reserve(tx: _Tx) -> bool:
            state, _reserved, attempts, fingerprint = tx.owned(owner, key, live=True)
            if JournalState(state) not in _RESERVABLE:
                raise JournalError(
                    f"item {key!r} is {state}: a new submit would pay for it twice; fetch "
                    "it by its prediction id instead (or mark it ambiguous first)"
                )
            # The single spend row is the fleet's budget lock: reservations queue on it.
            spend = tx.one("SELECT billed, reserved FROM seedream_spend WHERE id = 1 FOR UPDATE")
            assert spend is not None
            if budget is not None and spend[0] + spend[1] + amount > budget + _EPSILON:
                return False
            tx.run("UPDATE seedream_spend SET reserved = reserved + %s WHERE id = 1", (amount,))
            number = attempts + 1
            tx.run(
                "UPDATE seedream_items SET state = 'intent', request = %s, reserved = %s, "
                "attempts = %s, prediction_id = NULL, outputs = '[]', files = '[]', "
                "error = NULL, error_type = NULL, predict_time = NULL, updated_at = %s "
                "WHERE key = %s",
                (payload, amount, number, tx.now, key),
            )
            tx.run(
                "INSERT INTO seedream_attempts (key, number, fingerprint, owner, state, "
                "started_at, ended_at) VALUES (%s, %s, %s, %s, 'intent', %s, %s)",
                (key, number, fingerprint, owner, tx.now, tx.now),
            )
            return True

        return await self._tx(reserve)

    def _from_intent(self, owner: str, key: str, action: str) -> Callable[[_Tx], tuple[float, int]]:
        def check(tx: _Tx) -> tuple[float, int]:
            state, reserved, attempts, _fp = tx.owned(owner, key)
            if state != JournalState.INTENT:
                raise JournalError(f"item {key!r} is {state}, not intent: cannot {action}")
            return float(reserved), int(attempts)

        return check

    async def submitted(self, owner: str, key: str, *, prediction_id: str, cost: float) -> None:
        """See :meth:`JournalStore.submitted`."""
        check = self._from_intent(owner, key, "record a prediction id")

        def submitted(tx: _Tx) -> None:
            reserved, number = check(tx)
            tx.settle(reserved, cost)
            tx.run(
                "UPDATE seedream_items SET state = 'submitted', prediction_id = %s, "
                "cost = cost + %s, reserved = 0, updated_at = %s WHERE key = %s",
                (prediction_id, cost, tx.now, key),
            )
            tx.close_attempt(
                key, number, JournalState.SUBMITTED, prediction_id=prediction_id, cost=cost
            )

        await self._tx(submitted)

    async def refund(self, owner: str, key: str, *, error: str | None = None) -> None:
        """See :meth:`JournalStore.refund`. The attempt stays in the history, closed at no
        cost."""
        check = self._from_intent(owner, key, "refund")

        def refund(tx: _Tx) -> None:
            reserved, number = check(tx)
            tx.settle(reserved, 0.0)
            tx.close_attempt(key, number, JournalState.PENDING, cost=0.0, error=error)
            tx.run(
                "UPDATE seedream_items SET state = 'pending', reserved = 0, error = %s, "
                "updated_at = %s WHERE key = %s",
                (error, tx.now, key),
            )

        await self._tx(refund)

    async def ambiguous(self, owner: str, key: str, *, cost: float, error: str) -> None:
        """See :meth:`JournalStore.ambiguous`."""
        check = self._from_intent(owner, key, "mark it ambiguous")

        def ambiguous(tx: _Tx) -> None:
            reserved, number = check(tx)
            tx.settle(reserved, cost)
            tx.run(
                "UPDATE seedream_items SET state = 'ambiguous', cost = cost + %s, reserved = 0, "
                "error = %s, error_type = 'AmbiguousSubmission', updated_at = %s WHERE key = %s",
                (cost, error, tx.now, key),
            )
            tx.close_attempt(key, number, JournalState.AMBIGUOUS, cost=cost, error=error)

        await self._tx(ambiguous)

    # -- after the id ---------------------------------------------------------------------

    def _move(
        self,
        owner: str,
        key: str,
        sources: frozenset[JournalState],
        target: JournalState,
        assignments: Mapping[str, Any],
        attempt: Mapping[str, Any] | None = None,
    ) -> Callable[[_Tx], None]:
        sets = "".join(f", {name} = %s" for name in assignments)

        def move(tx: _Tx) -> None:
            state, _reserved, number, _fp = tx.owned(owner, key)
            if JournalState(state) not in sources:
                raise JournalError(f"item {key!r} is {state}: cannot move it to {target}")
            tx.run(
                f"UPDATE seedream_items SET state = %s, updated_at = %s{sets} WHERE key = %s",
                (target, tx.now, *assignments.values(), key),
            )
            if attempt is not None:
                tx.close_attempt(key, number, target, **attempt)

        return move

    async def done(
        self, owner: str, key: str, *, outputs: Sequence[str], predict_time: float | None
    ) -> None:
        """See :meth:`JournalStore.done`."""
        fields = {
            "outputs": json.dumps(list(outputs)),
            "predict_time": predict_time,
            "error": None,
            "error_type": None,
        }
        sources = frozenset({JournalState.SUBMITTED, JournalState.DONE})
        await self._tx(self._move(owner, key, sources, JournalState.DONE, fields, {}))

    async def api_failed(self, owner: str, key: str, *, error: str) -> None:
        """See :meth:`JournalStore.api_failed`."""
        fields = {"error": error, "error_type": "PredictionFailed"}
        sources = frozenset({JournalState.SUBMITTED, JournalState.DONE})
        move = self._move(owner, key, sources, JournalState.API_FAILED, fields, {"error": error})
        await self._tx(move)

    async def delivered(
        self, owner: str, key: str, *, files: Sequence[str], outputs: Sequence[str]
    ) -> None:
        """See :meth:`JournalStore.delivered`."""
        fields = {
            "files": json.dumps(list(files)),
            "outputs": json.dumps(list(outputs)),
            "error": None,
            "error_type": None,
            "owner": None,  # final: the claim is released with it
            "lease_expires": None,
        }
        sources = frozenset({JournalState.SUBMITTED, JournalState.DONE, JournalState.DELIVERED})
        await self._tx(self._move(owner, key, sources, JournalState.DELIVERED, fields, {}))

    async def note_error(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        """See :meth:`JournalStore.note_error`."""

        def note(tx: _Tx) -> None:
            tx.owned(owner, key)
            tx.run(
                "UPDATE seedream_items SET error = %s, error_type = %s, updated_at = %s "
                "WHERE key = %s",
                (error, error_type, tx.now, key),
            )

        await self._tx(note)

    async def not_submitted(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        """See :meth:`JournalStore.not_submitted`. On an API_FAILED or AMBIGUOUS item (a
        retry that was not sent) the paid state is left as it was."""

        def not_submitted(tx: _Tx) -> None:
            state, reserved, number, _fp = tx.owned(owner, key)
            if state in (JournalState.API_FAILED, JournalState.AMBIGUOUS):
                return
            if state not in (JournalState.PENDING, JournalState.INTENT, JournalState.NOT_SUBMITTED):
                raise JournalError(
                    f"item {key!r} is {state}: it was (or may have been) billed, so it "
                    "cannot be recorded as not submitted"
                )
            if state == JournalState.INTENT:
                tx.settle(float(reserved), 0.0)
                tx.close_attempt(key, number, JournalState.NOT_SUBMITTED, cost=0.0, error=error)
            tx.run(
                "UPDATE seedream_items SET state = 'not_submitted', reserved = 0, "
                "error = %s, error_type = %s, updated_at = %s WHERE key = %s",
                (error, error_type, tx.now, key),
            )

        await self._tx(not_submitted)

    # -- a fleet's manifest ---------------------------------------------------------------

    async def load(self, rows: Iterable[LoadRow], *, chunk: int = 500) -> LoadReport:
        """Load manifest rows, idempotently: new keys are added as PENDING, unchanged ones
        are left alone (not even touched), and a key whose fingerprint changed becomes a new
        job (its paid attempts stay in its history). One transaction per ``chunk`` rows.

        A key whose output name another key holds (case-insensitively) is not loaded; it is
        listed in the report's ``name_conflicts``.
        """
        added = unchanged = changed = 0
        conflicts: list[tuple[str, str]] = []

        def load(tx: _Tx, batch: list[LoadRow]) -> tuple[int, int, int]:
            a = u = c = 0
            current = {
                row[0]: row[1:]
                for row in tx.all(
                    "SELECT key, fingerprint, state, reserved, item FROM seedream_items "
                    "WHERE key = ANY(%s) ORDER BY key FOR UPDATE",
                    ([row.key for row in batch],),
                )
            }
            for row in batch:
                item = json.dumps(dict(row.item), sort_keys=True)
                old = current.get(row.key)
                if old is None or old[0] != row.fingerprint:
                    holder = tx.name_holder(row.key, row.name)
                    if holder is not None:
                        conflicts.append((row.key, holder))
                        continue
                if old is None:
                    inserted = tx.run(
                        "INSERT INTO seedream_items (key, fingerprint, name, name_folded, state, "
                        "item, updated_at) VALUES (%s, %s, %s, %s, 'pending', %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (row.key, row.fingerprint, row.name, row.name.casefold(), item, tx.now),
                    )
                    if inserted:
                        a += 1
                    else:  # a key or name another loader inserted a moment ago
                        conflicts.append((row.key, tx.name_holder(row.key, row.name) or row.key))
                elif old[0] != row.fingerprint:
                    tx.new_job(row.key, row.fingerprint, row.name, old[1])
                    tx.run(
                        "UPDATE seedream_items SET item = %s, owner = NULL, lease_expires = NULL "
                        "WHERE key = %s",
                        (item, row.key),
                    )
                    c += 1
                else:
                    if old[3] != item:  # same content, other paths: keep the job, new recipe
                        tx.run(
                            "UPDATE seedream_items SET item = %s WHERE key = %s", (item, row.key)
                        )
                    u += 1
            return a, u, c

        batch: list[LoadRow] = []
        for row in [*rows, None]:
            if row is not None:
                batch.append(row)
            if batch and (row is None or len(batch) >= chunk):
                current_batch, batch = batch, []
                a, u, c = await self._tx(lambda tx, b=current_batch: load(tx, b))  # type: ignore[misc]
                added, unchanged, changed = added + a, unchanged + u, changed + c
        return LoadReport(
            added=added, unchanged=unchanged, changed=changed, name_conflicts=tuple(conflicts)
        )

    async def fleet(self) -> FleetStatus:
        """Who holds the unfinished items right now: live owners, stale leases, unclaimed."""

        def fleet(tx: _Tx) -> FleetStatus:
            rows = tx.all(
                f"SELECT owner, lease_expires > %s, "
                f"state IN ('submitted', 'done') AND error IS NOT NULL, count(*) "
                f"FROM seedream_items WHERE state IN {_sql_list(_LIVE)} GROUP BY 1, 2, 3",
                (tx.now,),
            )
            owners: dict[str, int] = {}
            stale = unclaimed = noted = 0
            for owner, live, was_noted, n in rows:
                if owner is not None and live:
                    owners[owner] = owners.get(owner, 0) + n
                elif was_noted:
                    noted += n
                elif owner is not None:
                    stale += n
                else:
                    unclaimed += n
            return FleetStatus(owners=owners, stale=stale, unclaimed=unclaimed, noted=noted)

        return await self._tx(fleet)

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> ItemRecord | None:
        """See :meth:`JournalStore.get`."""
        sql = f"SELECT {_COLUMNS} FROM seedream_items WHERE key = %s"
        row = await self._tx(lambda tx: tx.one(sql, (key,)))
        return None if row is None else record_from_row(row)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """See :meth:`JournalStore.get_many`."""
        sql = f"SELECT {_COLUMNS} FROM seedream_items WHERE key = ANY(%s)"
        rows = await self._tx(lambda tx: tx.all(sql, (list(keys),)))
        return {row[0]: record_from_row(row) for row in rows}

    async def history(self, key: str) -> list[Attempt]:
        """See :meth:`JournalStore.history`."""
        sql = (
            "SELECT number, fingerprint, owner, state, prediction_id, cost, error, started_at, "
            "ended_at FROM seedream_attempts WHERE key = %s ORDER BY number"
        )
        rows = await self._tx(lambda tx: tx.all(sql, (key,)))
        return [attempt_from_row(row) for row in rows]

    async def spend(self) -> Spend:
        """See :meth:`JournalStore.spend`."""

        def spend(tx: _Tx) -> Spend:
            row = tx.one("SELECT billed, reserved FROM seedream_spend WHERE id = 1")
            flying = tx.one("SELECT count(*) FROM seedream_items WHERE state = 'submitted'")
            assert row is not None
            assert flying is not None
            return Spend(billed=row[0], reserved=row[1], in_flight=flying[0])

        return await self._tx(spend)

    async def counts(self) -> dict[JournalState, int]:
        """See :meth:`JournalStore.counts`."""
        sql = "SELECT state, count(*) FROM seedream_items GROUP BY state"
        rows = await self._tx(lambda tx: tx.all(sql))
        counts = dict.fromkeys(JournalState, 0)
        counts.update({JournalState(state): n for state, n in rows})
        return counts

    async def page(self, *, after: int = 0, limit: int = 1000) -> Page:
        """See :meth:`JournalStore.page`."""
        sql = f"SELECT {_COLUMNS} FROM seedream_items WHERE seq > %s ORDER BY seq LIMIT %s"
        rows = await self._tx(lambda tx: tx.all(sql, (after, limit)))
        records = tuple(record_from_row(row) for row in rows)
        return Page(records=records, next_after=records[-1].seq if len(records) == limit else None)


def _claim_one(tx: _Tx, owner: str, wanted: Claim, lease: float) -> ClaimOutcome:
    row = tx.one(
        "SELECT fingerprint, name, state, reserved, owner, lease_expires FROM seedream_items "
        "WHERE key = %s FOR UPDATE",
        (wanted.key,),
    )
    expires = tx.now + lease
    if row is None:
        holder = tx.name_holder(wanted.key, wanted.name)
        if holder is None:
            inserted = tx.run(
                "INSERT INTO seedream_items (key, fingerprint, name, name_folded, state, owner, "
                "lease_expires, updated_at) VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (wanted.key, wanted.fingerprint, wanted.name, wanted.name.casefold(), owner,
                 expires, tx.now),
            )  # fmt: skip
            if inserted:
                return ClaimOutcome(status=ClaimStatus.CLAIMED, record=_get(tx, wanted.key))
            # Another run inserted this key or this name since we looked: ask again.
            return _claim_one(tx, owner, wanted, lease)
        return ClaimOutcome(status=ClaimStatus.NAME_TAKEN, conflict=holder)
    fingerprint, name, state, _reserved, holder, holder_expires = row
    if holder not in (None, owner) and (holder_expires or 0.0) > tx.now:
        return ClaimOutcome(
            status=ClaimStatus.BUSY,
            record=_get(tx, wanted.key),
            retry_after=holder_expires - tx.now,
        )
    if holder not in (None, owner) and state == JournalState.INTENT:
        tx.to_ambiguous(wanted.key, _stopped_mid_submit(holder))
        state = JournalState.AMBIGUOUS
    if name.casefold() != wanted.name.casefold() or fingerprint != wanted.fingerprint:
        conflict = tx.name_holder(wanted.key, wanted.name)
        if conflict is not None:
            return ClaimOutcome(status=ClaimStatus.NAME_TAKEN, conflict=conflict)
    if fingerprint != wanted.fingerprint:
        tx.new_job(wanted.key, wanted.fingerprint, wanted.name, state)
    elif name != wanted.name:
        tx.run(
            "UPDATE seedream_items SET name = %s, name_folded = %s WHERE key = %s",
            (wanted.name, wanted.name.casefold(), wanted.key),
        )
    tx.run(
        "UPDATE seedream_items SET owner = %s, lease_expires = %s WHERE key = %s",
        (owner, expires, wanted.key),
    )
    return ClaimOutcome(
        status=ClaimStatus.CLAIMED,
        record=_get(tx, wanted.key),
        taken_over_from=holder if holder not in (None, owner) else None,
    )


def _get(tx: _Tx, key: str) -> ItemRecord:
    row = tx.one(f"SELECT {_COLUMNS} FROM seedream_items WHERE key = %s", (key,))
    assert row is not None
    return record_from_row(row)


def _sql_list(values: Iterable[str]) -> str:
    # Only our own enum values are spliced in, never input.
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


def _ensure_schema(conn: psycopg.Connection[Any], where: str) -> None:
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
        if version < 1:
            raise JournalError(
                f"the database at {where} has a seedream_meta table without a schema "
                "version: it is not a seedream-async journal; use another database or schema"
            )
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

"""A journal in an SQL database, written once: every :class:`~._store.JournalStore` call as
the statements it runs, for any backend that supplies a connection and a :class:`Dialect`.

Three parts, each in its own place:

- the rules (``_rules.py``): which change may start from which state, the budget check,
  what a claim gets; pure functions;
- the writes (here): what each call reads and writes, in one transaction, over the tables
  every bundled journal has (``items``, ``attempts``, ``totals``; a :class:`Dialect` names
  them and says how a statement marks its parameters and locks a row);
- the backend (``_sqlite.py``, ``_pgjournal.py``): connecting, creating the schema, running
  one transaction (:meth:`SQLJournal._tx`) and its clock. A backend subclasses
  :class:`SQLJournal` and implements only that.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio

from .._exceptions import JournalUnavailable
from ._names import fold
from ._owners import owner_gone
from ._rules import (
    CLAIM_COLUMNS,
    HELD_COLUMNS,
    ClaimPlan,
    ClaimRow,
    Held,
    Move,
    Op,
    decide_claim,
    fits_budget,
    needs_name_check,
    spend_of,
    start,
)
from ._store import (
    ATTEMPT_COLUMNS,
    ITEM_COLUMNS,
    Attempt,
    Claim,
    ClaimOutcome,
    ClaimStatus,
    ItemRecord,
    JournalState,
    Page,
    Spend,
    attempt_from_row,
    record_from_row,
)

__all__ = ["Connection", "Dialect", "JournalTx", "SQLJournal"]

logger = logging.getLogger("seedream_async")

_T = TypeVar("_T")
_CHUNK = 500  # keys per IN (...) list: under SQLite's oldest limit of 999 parameters


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The one call :class:`JournalTx` makes on a DB-API connection (sqlite3, psycopg)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """How one backend spells the shared statements.

    Args:
        items: the items table (one row per key).
        attempts: the attempts table (every paid or possibly paid attempt).
        totals: the one-row table of billed and reserved dollars (``id = 1``).
        fold: the items column holding the folded output name (UNIQUE).
        param: the parameter marker (``?`` or ``%s``).
        lock: what follows a SELECT of a row the transaction will change
            (``" FOR UPDATE"``; empty where the transaction locks the database).
    """

    items: str
    attempts: str
    totals: str
    fold: str
    param: str = "?"
    lock: str = ""

    def sql(self, text: str) -> str:
        """``text`` with ``{items}``, ``{attempts}``, ``{totals}``, ``{fold}`` and ``{lock}``
        filled in and ``?`` markers in this dialect's form."""
        filled = text.format(
            items=self.items,
            attempts=self.attempts,
            totals=self.totals,
            fold=self.fold,
            lock=self.lock,
        )
        return filled if self.param == "?" else filled.replace("?", self.param)


class JournalTx:
    """One transaction: its connection, the store-clock time it started at (``now``), and
    the reads and writes every state change is made of."""

    def __init__(self, conn: Connection, dialect: Dialect, now: float) -> None:
        self.conn = conn
        self.dialect = dialect
        self.now = now

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.dialect.sql(sql), tuple(params)).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.conn.execute(self.dialect.sql(sql), tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.conn.execute(self.dialect.sql(sql), tuple(params)).rowcount)

    # -- reading one row ------------------------------------------------------------------

    def record(self, key: str) -> ItemRecord:
        return record_from_row(
            self.one(f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE key = ?", (key,))
        )

    def lock(self, keys: Sequence[str]) -> None:
        """Lock the existing rows of ``keys`` in key order (where the dialect locks rows), so
        two runs claiming overlapping batches never deadlock."""
        if self.dialect.lock:
            for chunk in _chunks(sorted(keys)):
                sql = f"SELECT key FROM {{items}} WHERE key IN ({_marks(chunk)}) ORDER BY key"
                self.all(sql + "{lock}", chunk)

    def held(self, key: str) -> Held | None:
        row = self.one(f"SELECT {HELD_COLUMNS} FROM {{items}} WHERE key = ?{{lock}}", (key,))
        return None if row is None else Held.from_row(row)

    def start(self, op: Op, owner: str, key: str) -> tuple[Move | None, Held]:
        """Lock ``key``'s row and ask the rules whether ``owner`` may make change ``op``."""
        held = self.held(key)
        move = start(op, key, owner, held, now=self.now)
        assert held is not None  # start() raised otherwise
        return move, held

    def name_holder(self, key: str, name: str) -> str | None:
        """The other key holding ``name`` (folded), if any."""
        row = self.one("SELECT key FROM {items} WHERE {fold} = ? AND key <> ?", (fold(name), key))
        return None if row is None else str(row[0])

    # -- writing --------------------------------------------------------------------------

    def update(self, key: str, fields: Mapping[str, Any], *, add: Mapping[str, float] = {}) -> None:
        """Set ``fields`` (and add ``add`` to numeric columns) on ``key``'s row, stamped now."""
        sets = [f"{name} = ?" for name in fields] + [f"{name} = {name} + ?" for name in add]
        self.run(
            f"UPDATE {{items}} SET {', '.join(sets)}, updated_at = ? WHERE key = ?",
            (*fields.values(), *add.values(), self.now, key),
        )

    def add_totals(self, *, billed: float = 0.0, reserved: float = 0.0) -> None:
        if billed or reserved:
            self.run(
                "UPDATE {totals} SET billed = billed + ?, reserved = reserved + ? WHERE id = 1",
                (billed, reserved),
            )

    def open_attempt(self, key: str, number: int, fingerprint: str, owner: str) -> None:
        self.run(
            "INSERT INTO {attempts} (key, number, fingerprint, owner, state, started_at, "
            "ended_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, number, fingerprint, owner, JournalState.INTENT, self.now, self.now),
        )

    def close_attempt(self, key: str, number: int, state: JournalState, **fields: Any) -> None:
        sets = "".join(f", {name} = ?" for name in fields)
        self.run(
            f"UPDATE {{attempts}} SET state = ?, ended_at = ?{sets} WHERE key = ? AND number = ?",
            (state, self.now, *fields.values(), key, number),
        )

    def late_attempt(self, held: Held, owner: str, prediction_id: str, cost: float) -> None:
        """Add a paid attempt the journal never saw (its reserve was lost with the file, or
        it is another id than the row's): billed, in the history and the totals."""
        number = held.attempts + 1
        self.open_attempt(held.key, number, held.fingerprint, owner)
        self.close_attempt(held.key, number, JournalState.SUBMITTED, cost=cost,
                           prediction_id=prediction_id)  # fmt: skip
        self.add_totals(billed=cost)
        self.update(held.key, {"attempts": number}, add={"cost": cost})

    def settle(self, held: Held, state: JournalState, *, cost: float, **fields: Any) -> None:
        """Close the open attempt of an item that held a reservation: the reservation leaves
        the journal's total, ``cost`` is added to what was billed."""
        self.add_totals(billed=cost, reserved=-held.reserved)
        self.close_attempt(held.key, held.attempts, state, cost=cost, **fields)

    def to_ambiguous(self, key: str, error: str) -> None:
        """INTENT -> AMBIGUOUS for a submit whose run stopped before the answer: its
        reservation counts as billed, to be safe, and it is never sent again on its own."""
        held = self.held(key)
        assert held is not None
        self.add_totals(billed=held.reserved, reserved=-held.reserved)
        self.close_attempt(
            key, held.attempts, JournalState.AMBIGUOUS, cost=held.reserved, error=error
        )
        self.update(
            key,
            {"state": JournalState.AMBIGUOUS, "reserved": 0.0, "error": error,
             "error_type": "AmbiguousSubmission"},
            add={"cost": held.reserved},
        )  # fmt: skip

    def new_job(self, key: str, fingerprint: str) -> None:
        """The fingerprint changed: the same key is a new job from PENDING (its paid
        attempts stay in the attempts table)."""
        self.update(key, {"fingerprint": fingerprint, "state": JournalState.PENDING, **_FRESH})

    def claim(self, owner: str, wanted: Claim, lease: float) -> ClaimOutcome:
        """One claim, as the rules decide it (:func:`~._rules.decide_claim`)."""
        row = self.one(
            f"SELECT {CLAIM_COLUMNS} FROM {{items}} WHERE key = ?{{lock}}", (wanted.key,)
        )
        current = None if row is None else ClaimRow.from_row(row)
        holder = (
            self.name_holder(wanted.key, wanted.name) if needs_name_check(current, wanted) else None
        )
        plan = decide_claim(
            current, wanted, owner, now=self.now, name_holder=holder,
            holder_gone=current is not None and owner_gone(current.holder),
        )  # fmt: skip
        if plan.status is ClaimStatus.NAME_TAKEN:
            return ClaimOutcome(status=plan.status, conflict=plan.conflict)
        if plan.status is ClaimStatus.BUSY:
            record = self.record(wanted.key)
            return ClaimOutcome(status=plan.status, record=record, retry_after=plan.retry_after)
        if plan.insert and not self._insert(owner, wanted, lease):
            return self.claim(owner, wanted, lease)  # another run inserted it meanwhile
        if not plan.insert:
            self._take(owner, wanted, lease, plan)
        return ClaimOutcome(
            status=ClaimStatus.CLAIMED,
            record=self.record(wanted.key),
            taken_over_from=plan.taken_over_from,
        )

    def _insert(self, owner: str, wanted: Claim, lease: float) -> bool:
        values = (wanted.key, wanted.fingerprint, wanted.name, fold(wanted.name),
                  JournalState.PENDING, owner, self.now + lease, self.now)  # fmt: skip
        inserted = self.run(
            "INSERT INTO {items} (key, fingerprint, name, {fold}, state, owner, lease_expires, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            values,
        )
        return bool(inserted)

    def _take(self, owner: str, wanted: Claim, lease: float, plan: ClaimPlan) -> None:
        if plan.ambiguous is not None:
            self.to_ambiguous(wanted.key, plan.ambiguous)
        if plan.new_job:
            self.new_job(wanted.key, wanted.fingerprint)
        self.update(
            wanted.key,
            {"owner": owner, "lease_expires": self.now + lease, "name": wanted.name,
             self.dialect.fold: fold(wanted.name)},
        )  # fmt: skip


_FRESH: Mapping[str, Any] = {
    "request": None,
    "prediction_id": None,
    "outputs": "[]",
    "files": "[]",
    "error": None,
    "error_type": None,
    "predict_time": None,
    "reserved": 0.0,
}
"""What a new attempt or a new job starts from: nothing of the previous one's answer."""


class SQLJournal(ABC):
    """:class:`~._store.JournalStore` over any SQL backend: a subclass supplies
    :meth:`_tx_once` (one transaction, its clock, its connection) and the schema.

    Attributes:
        outage_wait: seconds a call waits out :class:`JournalUnavailable` (a database
            restarting) before it raises it; 0 raises at once (a file journal: a full or
            read-only disk does not pass by itself).
    """

    outage_wait: float = 0.0
    _down_since: float | None = None  # when a call first found the journal unavailable

    @abstractmethod
    async def _tx_once(self, fn: Callable[[JournalTx], _T], *, heartbeat: bool = False) -> _T:
        """Run ``fn`` in one transaction (committed when it returns, rolled back when it
        raises), in a worker thread, not cancelled once started. ``heartbeat``: the call
        renews leases and must not queue behind ordinary calls.

        Raises:
            JournalUnavailable: the disk or the server failed (``maybe_committed`` when it
                may have failed after the COMMIT went out).
        """

    async def _tx(self, fn: Callable[[JournalTx], _T], *, heartbeat: bool = False) -> _T:
        """:meth:`_tx_once`, an outage waited out: a call that certainly did not commit is
        tried again with capped exponential backoff for up to :attr:`outage_wait` seconds
        (one line logged when the wait starts and one when it ends). A failure at the
        COMMIT is raised at once: the caller decides whether its write may be repeated."""
        started: float | None = None
        delay = 0.1
        while True:
            try:
                result = await self._tx_once(fn, heartbeat=heartbeat)
            except JournalUnavailable as err:
                now = anyio.current_time()
                started = now if started is None else started
                if err.maybe_committed or now - started + delay > self.outage_wait:
                    raise
                if self._down_since is None:  # said once for the journal, not per call
                    self._down_since = now
                    logger.warning("%s; waiting up to %gs for it", err, self.outage_wait)
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self._down_since is not None:
                down, self._down_since = anyio.current_time() - self._down_since, None
                logger.warning("the journal is back after %.1fs; carrying on", down)
            return result

    @abstractmethod
    async def aclose(self) -> None:
        """Close the journal. Safe to call twice."""

    async def __aenter__(self) -> SQLJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- claims ---------------------------------------------------------------------------

    async def claim(
        self, owner: str, claims: Sequence[Claim], *, lease: float
    ) -> list[ClaimOutcome]:
        """See :meth:`JournalStore.claim`."""

        def claim(tx: JournalTx) -> list[ClaimOutcome]:
            tx.lock([wanted.key for wanted in claims])
            return [tx.claim(owner, wanted, lease) for wanted in claims]  # rows in this order

        return await self._tx(claim)

    async def heartbeat(self, owner: str, *, lease: float) -> int:
        """See :meth:`JournalStore.heartbeat`."""
        sql = "UPDATE {items} SET lease_expires = ? WHERE owner = ?"
        return await self._tx(lambda tx: tx.run(sql, (tx.now + lease, owner)), heartbeat=True)

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        """See :meth:`JournalStore.release`. An item left in INTENT keeps its reservation
        (its submit may be on the wire) until a claimer marks it ambiguous."""

        def release(tx: JournalTx) -> None:
            for chunk in _chunks(keys):
                tx.run(
                    "UPDATE {items} SET owner = NULL, lease_expires = NULL "
                    f"WHERE owner = ? AND key IN ({_marks(chunk)})",
                    (owner, *chunk),
                )

        await self._tx(release)

    # -- one attempt: reserve, then exactly one of submitted / refund / ambiguous ---------

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

        def reserve(tx: JournalTx) -> bool:
            _, held = tx.start(Op.RESERVE, owner, key)
            # The one totals row is the budget's lock: reservations queue on it.
            billed, reserved = tx.one("SELECT billed, reserved FROM {totals} WHERE id = 1{lock}")
            if not fits_budget(billed, reserved, amount, budget):
                return False
            tx.add_totals(reserved=amount)
            number = held.attempts + 1
            tx.update(
                key,
                {**_FRESH, "state": JournalState.INTENT, "request": payload,
                 "reserved": amount, "attempts": number},
            )  # fmt: skip
            tx.open_attempt(key, number, held.fingerprint, owner)
            return True

        return await self._tx(reserve)

    async def submitted(self, owner: str, key: str, *, prediction_id: str, cost: float) -> None:
        """See :meth:`JournalStore.submitted`."""

        def submitted(tx: JournalTx) -> None:
            _, held = tx.start(Op.SUBMITTED, owner, key)
            tx.settle(held, JournalState.SUBMITTED, cost=cost, prediction_id=prediction_id)
            fields = {"state": JournalState.SUBMITTED, "prediction_id": prediction_id}
            tx.update(key, {**fields, "reserved": 0.0}, add={"cost": cost})

        await self._tx(submitted)

    async def refund(self, owner: str, key: str, *, error: str | None = None) -> None:
        """See :meth:`JournalStore.refund`. The attempt stays in the history, at no cost."""
        await self._unbilled(Op.REFUND, owner, key, error=error, error_type=None)

    async def not_submitted(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        """See :meth:`JournalStore.not_submitted`. On an API_FAILED or AMBIGUOUS item (a
        retry that was not sent) the paid state is left as it was."""
        await self._unbilled(Op.NOT_SUBMITTED, owner, key, error=error, error_type=error_type)

    async def _unbilled(
        self, op: Op, owner: str, key: str, *, error: str | None, error_type: str | None
    ) -> None:
        def unbilled(tx: JournalTx) -> None:
            move, held = tx.start(op, owner, key)
            if move is None:
                return
            if move.settles:
                tx.settle(held, move.target or held.state, cost=0.0, error=error)
            fields = {"state": move.target, "reserved": 0.0, "error": error}
            tx.update(key, {**fields, "error_type": error_type})

        await self._tx(unbilled)

    async def ambiguous(self, owner: str, key: str, *, cost: float, error: str) -> None:
        """See :meth:`JournalStore.ambiguous`."""

        def ambiguous(tx: JournalTx) -> None:
            _, held = tx.start(Op.AMBIGUOUS, owner, key)
            tx.settle(held, JournalState.AMBIGUOUS, cost=cost, error=error)
            fields = {"state": JournalState.AMBIGUOUS, "reserved": 0.0, "error": error}
            tx.update(key, {**fields, "error_type": "AmbiguousSubmission"}, add={"cost": cost})

        await self._tx(ambiguous)

    async def record_id(self, owner: str, key: str, *, prediction_id: str, cost: float) -> bool:
        """Write down a billed id the journal could not take when it came (see
        :attr:`~._rules.Op.RECORD_ID`). Idempotent: an item that has an id already keeps
        it (a different id is added to its history). Returns True when the item's row now
        carries ``prediction_id``, so the next run fetches it by id.

        Raises:
            LostClaim: another live run has a new submit of the item on the wire; try later.
        """

        def record_id(tx: JournalTx) -> bool:
            move, held = tx.start(Op.RECORD_ID, owner, key)
            if move is None:  # it has an id already: ours, or one paid for since
                row = tx.one("SELECT prediction_id FROM {items} WHERE key = ?", (key,))
                if row[0] != prediction_id:
                    tx.late_attempt(held, owner, prediction_id, cost)
                return bool(row[0] == prediction_id)
            if move.settles:
                tx.settle(held, JournalState.SUBMITTED, cost=cost, prediction_id=prediction_id)
                add = cost
            elif move.source is JournalState.AMBIGUOUS:  # counted as billed already
                tx.close_attempt(key, held.attempts, JournalState.SUBMITTED,
                                 prediction_id=prediction_id)  # fmt: skip
                add = 0.0
            else:  # PENDING / NOT_SUBMITTED: a journal that lost the attempt
                tx.late_attempt(held, owner, prediction_id, cost)
                add = 0.0
            fields = {"state": JournalState.SUBMITTED, "prediction_id": prediction_id,
                      "reserved": 0.0, "error": None, "error_type": None}  # fmt: skip
            tx.update(key, fields, add={"cost": add})
            return True

        return await self._tx(record_id)

    # -- after the id ---------------------------------------------------------------------

    async def done(
        self, owner: str, key: str, *, outputs: Sequence[str], predict_time: float | None
    ) -> None:
        """See :meth:`JournalStore.done`."""
        fields: dict[str, Any] = {"outputs": json.dumps(list(outputs))}
        if predict_time is not None:  # a fetch that did not say keeps what was known
            fields["predict_time"] = predict_time
        await self._after_id(Op.DONE, owner, key, {**fields, "error": None, "error_type": None})

    async def api_failed(self, owner: str, key: str, *, error: str) -> None:
        """See :meth:`JournalStore.api_failed`."""
        fields = {"error": error, "error_type": "PredictionFailed"}
        await self._after_id(Op.API_FAILED, owner, key, fields, attempt={"error": error})

    async def delivered(
        self, owner: str, key: str, *, files: Sequence[str], outputs: Sequence[str]
    ) -> None:
        """See :meth:`JournalStore.delivered`. Final: the claim is released with it."""
        fields = {
            "files": json.dumps([os.fspath(f) for f in files]),
            "outputs": json.dumps(list(outputs)),
            "error": None,
            "error_type": None,
            "owner": None,
            "lease_expires": None,
        }
        await self._after_id(Op.DELIVERED, owner, key, fields)

    async def note_error(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        """See :meth:`JournalStore.note_error`."""
        await self._after_id(Op.NOTE_ERROR, owner, key, {"error": error, "error_type": error_type})

    async def _after_id(
        self,
        op: Op,
        owner: str,
        key: str,
        fields: Mapping[str, Any],
        *,
        attempt: Mapping[str, Any] | None = None,
    ) -> None:
        def after_id(tx: JournalTx) -> None:
            move, held = tx.start(op, owner, key)
            if move is None or move.target is None:  # the state is kept: only the fields
                tx.update(key, fields)
                return
            tx.update(key, {"state": move.target, **fields})
            tx.close_attempt(key, held.attempts, move.target, **(attempt or {}))

        await self._tx(after_id)

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> ItemRecord | None:
        """See :meth:`JournalStore.get`."""
        sql = f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE key = ?"
        row = await self._tx(lambda tx: tx.one(sql, (key,)))
        return None if row is None else record_from_row(row)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """See :meth:`JournalStore.get_many`."""

        def get_many(tx: JournalTx) -> list[Any]:
            sql = f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE key IN "
            return [
                row for chunk in _chunks(keys) for row in tx.all(sql + f"({_marks(chunk)})", chunk)
            ]

        return {record.key: record for record in map(record_from_row, await self._tx(get_many))}

    async def history(self, key: str) -> list[Attempt]:
        """See :meth:`JournalStore.history`."""
        sql = f"SELECT {ATTEMPT_COLUMNS} FROM {{attempts}} WHERE key = ? ORDER BY number"
        return [attempt_from_row(row) for row in await self._tx(lambda tx: tx.all(sql, (key,)))]

    async def spend(self) -> Spend:
        """See :meth:`JournalStore.spend`."""

        def spend(tx: JournalTx) -> Spend:
            billed, reserved = tx.one("SELECT billed, reserved FROM {totals} WHERE id = 1")
            sql = "SELECT COUNT(*) FROM {items} WHERE state = ?"
            (in_flight,) = tx.one(sql, (JournalState.SUBMITTED,))
            return spend_of(billed, reserved, in_flight)

        return await self._tx(spend)

    async def counts(self) -> dict[JournalState, int]:
        """See :meth:`JournalStore.counts`."""
        sql = "SELECT state, COUNT(*) FROM {items} GROUP BY state"
        rows = await self._tx(lambda tx: tx.all(sql))
        counts = dict.fromkeys(JournalState, 0)
        counts.update({JournalState(state): n for state, n in rows})
        return counts

    async def page(self, *, after: int = 0, limit: int = 1000) -> Page:
        """See :meth:`JournalStore.page`."""
        sql = f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE seq > ? ORDER BY seq LIMIT ?"
        rows = await self._tx(lambda tx: tx.all(sql, (after, limit)))
        records = tuple(record_from_row(row) for row in rows)
        return Page(records=records, next_after=records[-1].seq if len(records) == limit else None)


def _chunks(keys: Sequence[str]) -> list[list[str]]:
    return [list(keys[start : start + _CHUNK]) for start in range(0, len(keys), _CHUNK)]


def _marks(chunk: Sequence[str]) -> str:
    return ", ".join("?" * len(chunk))

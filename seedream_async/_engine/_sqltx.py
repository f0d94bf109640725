"""One transaction of an SQL journal (:class:`JournalTx`): the reads and writes every state
change is made of, spelled for a backend by its :class:`Dialect`, and the mapping of the
tables' rows to :class:`~._store.ItemRecord` and :class:`~._store.Attempt`.

``_sqljournal.py`` composes these into the :class:`~._store.JournalStore` calls; the rules
they obey are in ``_rules.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._journal_types import Attempt, Claim, ClaimOutcome, ClaimStatus, ItemRecord, JournalState
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
    needs_name_check,
    start,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "FRESH",
    "ITEM_COLUMNS",
    "Connection",
    "Dialect",
    "JournalTx",
    "attempt_from_row",
    "chunks",
    "marks",
    "record_from_row",
]

_CHUNK = 500  # keys per IN (...) list: under SQLite's oldest limit of 999 parameters


ITEM_COLUMNS = (
    "key, seq, fingerprint, name, state, request, prediction_id, outputs, files, error, "
    "error_type, cost, predict_time, attempts, owner, lease_expires, updated_at, request_id, "
    "price_rule, flagged"
)
"""An item's columns in the order :func:`record_from_row` reads them (every bundled journal
has them under these names)."""

ATTEMPT_COLUMNS = (
    "number, fingerprint, owner, state, prediction_id, cost, error, started_at, ended_at"
)
"""An attempt's columns in the order :func:`attempt_from_row` reads them."""


def attempt_from_row(row: Sequence[Any]) -> Attempt:
    """An :class:`Attempt` from a row of: number, fingerprint, owner, state, prediction_id,
    cost, error, started_at, ended_at (the order both bundled journals select)."""
    number, fp, owner, state, pid, cost, error, started, ended = row[:9]
    return Attempt(
        number=number,
        fingerprint=fp,
        owner=owner,
        state=JournalState(state),
        prediction_id=pid,
        cost=cost,
        error=error,
        started_at=started,
        ended_at=ended,
    )


def record_from_row(row: Sequence[Any]) -> ItemRecord:
    """An :class:`ItemRecord` from a database row whose first 20 columns are, in order: key,
    seq, fingerprint, name, state, request, prediction_id, outputs, files, error,
    error_type, cost, predict_time, attempts, owner, lease_expires, updated_at, request_id,
    price_rule, flagged (JSON columns as text). Both bundled journals select in this order."""
    (key, seq, fp, name, state, request, pid, outputs, files, error, etype, cost, ptime,
     attempts, owner, lease_expires, updated_at, request_id, price_rule,
     flagged) = row[:20]  # fmt: skip
    return ItemRecord(
        key=key,
        seq=seq,
        fingerprint=fp,
        name=name,
        state=JournalState(state),
        request=None if request is None else json.loads(request),
        prediction_id=pid,
        outputs=tuple(json.loads(outputs)),
        files=tuple(json.loads(files)),
        error=error,
        error_type=etype,
        cost=cost,
        predict_time=ptime,
        attempts=attempts,
        owner=owner,
        lease_expires=lease_expires,
        updated_at=updated_at,
        request_id=request_id,
        price_rule=price_rule,
        flagged=flagged or 0,
    )


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
            for chunk in chunks(sorted(keys)):
                sql = f"SELECT key FROM {{items}} WHERE key IN ({marks(chunk)}) ORDER BY key"
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
        self.update(key, {"fingerprint": fingerprint, "state": JournalState.PENDING, **FRESH})

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


FRESH: Mapping[str, Any] = {
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


def chunks(keys: Sequence[str]) -> list[list[str]]:
    return [list(keys[start : start + _CHUNK]) for start in range(0, len(keys), _CHUNK)]


def marks(chunk: Sequence[str]) -> str:
    return ", ".join("?" * len(chunk))

"""A journal in an SQL database, written once: every :class:`~._store.JournalStore` call as
the statements it runs, for any backend that supplies a connection and a :class:`Dialect`.

Three parts, each in its own place:

- the rules (``_rules.py``): which change may start from which state, the budget check,
  what a claim gets; pure functions;
- the writes (here): what each call reads and writes, in one transaction, over the tables
  every bundled journal has (``items``, ``attempts``, ``totals``; a :class:`Dialect` names
  them and says how a statement marks its parameters and locks a row);
- the backend (``_sqlite.py``, ``_pgjournal.py``): connecting, creating the schema, running
  one transaction and its clock. A backend subclasses :class:`SQLJournal` and implements
  only that; running its transactions in worker threads, an outage waited out
  (:meth:`~._sqlrunner.TxRunner._tx`), is ``_sqlrunner.py``'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._wire._parsing import Prediction
from ._journal_types import Attempt, Claim, ClaimOutcome, ItemRecord, JournalState, Page, Spend
from ._rules import Op, fits_budget, spend_of, start_delivery
from ._sqlrunner import TxRunner
from ._sqltx import (
    ATTEMPT_COLUMNS,
    FRESH,
    ITEM_COLUMNS,
    JournalTx,
    attempt_from_row,
    chunks,
    marks,
    record_from_row,
)

__all__ = ["SQLJournal"]


class SQLJournal(TxRunner):
    """:class:`~._store.JournalStore` over any SQL backend: a subclass supplies
    :meth:`~._sqlrunner.TxRunner._transact` (one transaction, its clock, its connection),
    :meth:`~._sqlrunner.TxRunner._failure` and the schema.
    """

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
            for chunk in chunks(keys):
                tx.run(
                    "UPDATE {items} SET owner = NULL, lease_expires = NULL "
                    f"WHERE owner = ? AND key IN ({marks(chunk)})",
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
                {**FRESH, "state": JournalState.INTENT, "request": payload,
                 "reserved": amount, "attempts": number},
            )  # fmt: skip
            tx.open_attempt(key, number, held.fingerprint, owner)
            return True

        return await self._tx(reserve)

    async def submitted(
        self,
        owner: str,
        key: str,
        *,
        prediction_id: str,
        cost: float,
        request_id: str | None = None,
        price_rule: str | None = None,
    ) -> None:
        """See :meth:`JournalStore.submitted`."""
        billing = {"request_id": request_id, "price_rule": price_rule}

        def submitted(tx: JournalTx) -> None:
            move, held = tx.start(Op.SUBMITTED, owner, key)
            if move is None:  # a webhook answered it first
                return
            tx.settle(held, JournalState.SUBMITTED, cost=cost, prediction_id=prediction_id)
            fields = {"state": JournalState.SUBMITTED, "prediction_id": prediction_id}
            tx.update(key, {**fields, **billing, "reserved": 0.0}, add={"cost": cost})

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

    async def ambiguous(
        self,
        owner: str,
        key: str,
        *,
        cost: float,
        error: str,
        request_id: str | None = None,
        price_rule: str | None = None,
    ) -> None:
        """See :meth:`JournalStore.ambiguous`."""
        billing = {"request_id": request_id, "price_rule": price_rule}

        def ambiguous(tx: JournalTx) -> None:
            move, held = tx.start(Op.AMBIGUOUS, owner, key)
            if move is None:  # a webhook answered it: billed with an id, not ambiguous
                return
            tx.settle(held, JournalState.AMBIGUOUS, cost=cost, error=error)
            fields = {"state": JournalState.AMBIGUOUS, "reserved": 0.0, "error": error}
            fields |= {**billing, "error_type": "AmbiguousSubmission"}
            tx.update(key, fields, add={"cost": cost})

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

    async def api_failed(
        self, owner: str, key: str, *, error: str, error_type: str = "PredictionFailed"
    ) -> None:
        """See :meth:`JournalStore.api_failed`."""
        fields = {"error": error, "error_type": error_type}
        await self._after_id(Op.API_FAILED, owner, key, fields, attempt={"error": error})

    async def settle(self, owner: str, key: str, *, cost: float) -> None:
        """See :meth:`JournalStore.settle`."""
        sql = "SELECT cost FROM {attempts} WHERE key = ? AND number = ?"

        def settle(tx: JournalTx) -> None:
            _, held = tx.start(Op.SETTLE, owner, key)
            (before,) = tx.one(sql, (key, held.attempts))
            change = round(cost - float(before or 0.0), 9)
            if change:
                (total,) = tx.one("SELECT cost FROM {items} WHERE key = ?", (key,))
                tx.add_totals(billed=change)
                tx.update(key, {"cost": round(float(total) + change, 9)})
                tx.run(
                    "UPDATE {attempts} SET cost = ? WHERE key = ? AND number = ?",
                    (cost, key, held.attempts),
                )

        await self._tx(settle)

    async def delivered(
        self,
        owner: str,
        key: str,
        *,
        files: Sequence[str],
        outputs: Sequence[str],
        flagged: int = 0,
    ) -> None:
        """See :meth:`JournalStore.delivered`. Final: the claim is released with it."""
        fields = {
            "flagged": flagged,
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

    async def record_delivery(
        self,
        *,
        key: str,
        attempt: int,
        prediction_id: str,
        webhook_id: str,
        prediction: Prediction,
    ) -> None:
        """See :meth:`JournalStore.record_delivery`. Committed before it returns."""
        failed = prediction.failed

        def record(tx: JournalTx) -> None:
            held = tx.held(key)
            refused_since = False
            if held is not None and held.attempts > attempt:
                (others,) = tx.one(
                    "SELECT COUNT(*) FROM {attempts} WHERE key = ? AND number >= ? "
                    "AND number < ? AND state <> ?",
                    (key, attempt, held.attempts, JournalState.PENDING),
                )
                refused_since = others == 0
            move = start_delivery(key, attempt, held, failed=failed, refused_since=refused_since)
            if move is None or held is None or move.target is None:
                return
            error = (prediction.error or "the prediction failed") if failed else None
            ids = {"prediction_id": prediction_id, "webhook_id": webhook_id}
            if move.settles:  # on the wire: what was reserved is billed
                tx.settle(held, move.target, cost=held.reserved, error=error, **ids)
            else:
                tx.close_attempt(key, held.attempts, move.target, error=error, **ids)
            fields: dict[str, Any] = {
                "state": move.target, "prediction_id": prediction_id, "reserved": 0.0,
                "outputs": json.dumps(list(prediction.outputs)), "error": error,
                "error_type": "PredictionFailed" if failed else None,
            }  # fmt: skip
            if prediction.predict_time is not None:
                fields["predict_time"] = prediction.predict_time
            tx.update(key, fields, add={"cost": held.reserved} if move.settles else {})

        await self._tx(record)

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> ItemRecord | None:
        """See :meth:`JournalStore.get`."""
        sql = f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE key = ?"
        row = await self._tx(lambda tx: tx.one(sql, (key,)), read_only=True)
        return None if row is None else record_from_row(row)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """See :meth:`JournalStore.get_many`."""

        def get_many(tx: JournalTx) -> list[Any]:
            sql = f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE key IN "
            return [
                row for chunk in chunks(keys) for row in tx.all(sql + f"({marks(chunk)})", chunk)
            ]

        return {
            record.key: record
            for record in map(record_from_row, await self._tx(get_many, read_only=True))
        }

    async def history(self, key: str) -> list[Attempt]:
        """See :meth:`JournalStore.history`."""
        sql = f"SELECT {ATTEMPT_COLUMNS} FROM {{attempts}} WHERE key = ? ORDER BY number"
        return [
            attempt_from_row(row)
            for row in await self._tx(lambda tx: tx.all(sql, (key,)), read_only=True)
        ]

    async def spend(self) -> Spend:
        """See :meth:`JournalStore.spend`."""

        def spend(tx: JournalTx) -> Spend:
            billed, reserved = tx.one("SELECT billed, reserved FROM {totals} WHERE id = 1")
            sql = "SELECT COUNT(*) FROM {items} WHERE state = ?"
            (in_flight,) = tx.one(sql, (JournalState.SUBMITTED,))
            return spend_of(billed, reserved, in_flight)

        return await self._tx(spend, read_only=True)

    async def counts(self) -> dict[JournalState, int]:
        """See :meth:`JournalStore.counts`."""
        sql = "SELECT state, COUNT(*) FROM {items} GROUP BY state"
        rows = await self._tx(lambda tx: tx.all(sql), read_only=True)
        counts = dict.fromkeys(JournalState, 0)
        counts.update({JournalState(state): n for state, n in rows})
        return counts

    async def page(self, *, after: int = 0, limit: int = 1000) -> Page:
        """See :meth:`JournalStore.page`."""
        sql = f"SELECT {ITEM_COLUMNS} FROM {{items}} WHERE seq > ? ORDER BY seq LIMIT ?"
        rows = await self._tx(lambda tx: tx.all(sql, (after, limit)), read_only=True)
        records = tuple(record_from_row(row) for row in rows)
        return Page(records=records, next_after=records[-1].seq if len(records) == limit else None)

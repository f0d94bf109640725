"""A fleet on one journal: ``load`` a manifest into it, ``work`` to drain it, ``status``.

``work`` is one worker of any number, on any machines, sharing a PostgreSQL journal. It
claims items in batches (the journal's ``claim_next``) and feeds them to the batch engine
(``edit_batch``) under its own owner id, so every item gets what a run gives it: uploads
once, the adaptive limit, one poll scheduler, verified delivery, the journal's budget, and
what is left of it when taken over (an item with a prediction id is fetched by that id,
one caught mid-submit by a dead worker is ambiguous: neither is submitted again).

It ends when the journal has nothing left for anyone: no item unclaimed, no lease held by
another live worker or waiting to expire. A worker killed at any point leaves its items to
the others once its leases run out.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .._client import AsyncSeedream
from .._engine._identity import DigestCache
from .._engine._items import BatchResult, EditItem, ResultStatus
from .._engine._names import output_stem
from .._engine._pgjournal import LoadReport, LoadRow, PostgresJournal
from .._engine._resume import fingerprint
from .._engine._store import (
    Attempt,
    Claim,
    ClaimOutcome,
    ItemRecord,
    JournalState,
    Page,
    Spend,
)
from .._exceptions import InvalidInput, JournalError
from .._models import check_params

__all__ = ["WorkTally", "drain", "load_items", "worker_id"]

logger = logging.getLogger("seedream_async")


def worker_id() -> str:
    """A worker's owner id: host, process and a random part (unique across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _item_json(item: EditItem) -> dict[str, Any]:
    images = []
    for image in item.images:
        if isinstance(image, bytes | bytearray | memoryview):
            raise InvalidInput("a fleet item's images must be paths or URLs", key=item.key)
        text = os.fspath(image) if isinstance(image, os.PathLike) else str(image)
        images.append(text if "://" in text else str(Path(text).resolve()))
    row: dict[str, Any] = {"key": item.key, "prompt": item.prompt, "images": images}
    row.update(item.request_params())
    return row


async def load_items(
    journal: PostgresJournal, items: Iterator[EditItem], *, chunk: int = 500
) -> LoadReport:
    """Load ``items`` into the journal (idempotent; see :meth:`PostgresJournal.load`).

    Each row carries the item as JSON (local images as absolute paths: every worker must
    see them at the same path, or use URLs) and its content fingerprint.
    """
    totals = LoadReport()
    conflicts: list[tuple[str, str]] = []
    batch: list[LoadRow] = []

    async def flush() -> None:
        nonlocal totals
        report = await journal.load(batch, chunk=chunk)
        conflicts.extend(report.name_conflicts)
        totals = LoadReport(
            added=totals.added + report.added,
            unchanged=totals.unchanged + report.unchanged,
            changed=totals.changed + report.changed,
        )
        batch.clear()

    digests = DigestCache()  # the engine's fingerprint: a claim must find the same one
    for item in items:
        params = item.request_params()
        check_params(key=item.key, prompt=item.prompt, images=item.images, **params)
        digest = await fingerprint(item, params, digests)
        batch.append(
            LoadRow(
                key=item.key,
                fingerprint=digest,
                name=output_stem(item.key),
                item=_item_json(item),
            )
        )
        if len(batch) >= chunk:
            await flush()
    if batch:
        await flush()
    return LoadReport(
        added=totals.added,
        unchanged=totals.unchanged,
        changed=totals.changed,
        name_conflicts=tuple(conflicts),
    )


@dataclass
class WorkTally:
    """What one worker did.

    Args:
        owner: the worker's owner id.
        claimed: items it claimed from the journal.
        taken_over: of those, items whose previous worker's lease had run out.
        results: its results by status.
        from_journal: results answered from the journal (done by another worker already).
        executions: predictions it submitted (each billed).
    """

    owner: str
    claimed: int = 0
    taken_over: int = 0
    results: dict[str, int] | None = None
    from_journal: int = 0
    executions: int = 0

    def count(self, status: ResultStatus) -> int:
        """Results with ``status``."""
        return (self.results or {}).get(str(status), 0)


class _AsOwner:
    """The journal as seen by the engine inside one worker: every call is made under the
    worker's owner id, so the claims ``claim_next`` took for the worker are the engine's
    run's claims (its state changes pass the fence), under the worker's lease."""

    def __init__(self, journal: PostgresJournal, owner: str, lease: float) -> None:
        self.journal = journal
        self.owner = owner
        self.lease = lease

    async def claim(
        self, owner: str, claims: Sequence[Claim], *, lease: float
    ) -> list[ClaimOutcome]:
        return await self.journal.claim(self.owner, claims, lease=self.lease)

    async def heartbeat(self, owner: str, *, lease: float) -> int:
        return await self.journal.heartbeat(self.owner, lease=self.lease)

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        await self.journal.release(self.owner, keys)

    async def reserve(
        self,
        owner: str,
        key: str,
        *,
        request: Mapping[str, Any],
        amount: float,
        budget: float | None,
    ) -> bool:
        return await self.journal.reserve(
            self.owner, key, request=request, amount=amount, budget=budget
        )

    async def submitted(self, owner: str, key: str, *, prediction_id: str, cost: float) -> None:
        await self.journal.submitted(self.owner, key, prediction_id=prediction_id, cost=cost)

    async def refund(self, owner: str, key: str, *, error: str | None = None) -> None:
        await self.journal.refund(self.owner, key, error=error)

    async def ambiguous(self, owner: str, key: str, *, cost: float, error: str) -> None:
        await self.journal.ambiguous(self.owner, key, cost=cost, error=error)

    async def done(
        self, owner: str, key: str, *, outputs: Sequence[str], predict_time: float | None
    ) -> None:
        await self.journal.done(self.owner, key, outputs=outputs, predict_time=predict_time)

    async def api_failed(self, owner: str, key: str, *, error: str) -> None:
        await self.journal.api_failed(self.owner, key, error=error)

    async def delivered(
        self, owner: str, key: str, *, files: Sequence[str], outputs: Sequence[str]
    ) -> None:
        await self.journal.delivered(self.owner, key, files=files, outputs=outputs)

    async def note_error(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        await self.journal.note_error(self.owner, key, error=error, error_type=error_type)

    async def not_submitted(self, owner: str, key: str, *, error: str, error_type: str) -> None:
        await self.journal.not_submitted(self.owner, key, error=error, error_type=error_type)

    async def get(self, key: str) -> ItemRecord | None:
        return await self.journal.get(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ItemRecord]:
        return await self.journal.get_many(keys)

    async def history(self, key: str) -> list[Attempt]:
        return await self.journal.history(key)

    async def spend(self) -> Spend:
        return await self.journal.spend()

    async def counts(self) -> dict[JournalState, int]:
        return await self.journal.counts()

    async def page(self, *, after: int = 0, limit: int = 1000) -> Page:
        return await self.journal.page(after=after, limit=limit)

    async def aclose(self) -> None:
        """The worker closes the journal, not the engine."""


async def drain(
    client: AsyncSeedream,
    journal: PostgresJournal,
    *,
    concurrency: int = 16,
    out_dir: str | os.PathLike[str] | None = None,
    budget: float | None = None,
    lease: float = 30.0,
    batch: int = 32,
    owner: str | None = None,
    idle_wait: float | None = None,
    retry_noted: bool = False,
    on_result: Callable[[BatchResult], None] | None = None,
) -> WorkTally:
    """Work on the journal's items until none is left for anyone; return this worker's tally.

    Args:
        client: an open client.
        journal: the shared journal.
        concurrency: predictions this worker has in flight at most. With N workers on one
            API key, start from the key's total / N.
        out_dir: where outputs are saved; None records their URLs only.
        budget: US dollars the whole journal may have billed (checked in the database
            before every submit, so the fleet together stays under it).
        lease: seconds a claim lasts without a heartbeat; a dead worker's items wait this
            long before another takes them over.
        batch: most items claimed per round trip.
        owner: this worker's id; a fresh one when None.
        idle_wait: seconds between looks at the journal while only other live workers hold
            items (they may die and leave them); lease / 4 when None.
        retry_noted: also take billed items whose delivery failed before (fetched again
            by id); otherwise they wait for such a pass and the drain ends without them.
        on_result: called with each result.
    """
    tally = WorkTally(owner=owner or worker_id(), results={})
    me = tally.owner
    wait = idle_wait if idle_wait is not None else lease / 4

    async def claimed_items() -> AsyncIterator[EditItem | Mapping[str, Any]]:
        while True:
            claimed = await journal.claim_next(
                me, limit=batch, lease=lease, retry_noted=retry_noted
            )
            for one in claimed:
                tally.claimed += 1
                tally.taken_over += one.taken_over_from is not None
                yield dict(one.item)
            if claimed:
                continue
            status = await journal.fleet()
            if set(status.owners) <= {me} and not status.stale and not status.unclaimed:
                return  # what is left is in this worker's hands already, or nowhere
            await anyio.sleep(wait)

    async def heartbeat() -> None:
        # The worker's own beat, at its lease: the engine's beats at the engine's default.
        while True:
            await anyio.sleep(lease / 3)
            try:
                await journal.heartbeat(me, lease=lease)
            except JournalError as err:  # the next may get through: a lease lasts 3 beats
                logger.warning("could not renew this worker's claims: %s", err)

    run = client.edit_batch(
        claimed_items(),
        journal=_AsOwner(journal, me, lease),
        concurrency=concurrency,
        out_dir=out_dir,
        budget=budget,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(heartbeat)
        async with run:
            async for result in run:
                assert tally.results is not None
                tally.results[str(result.status)] = tally.results.get(str(result.status), 0) + 1
                tally.from_journal += result.from_journal
                if on_result is not None:
                    on_result(result)
        group.cancel_scope.cancel()
    tally.executions = run.progress.executions
    return tally

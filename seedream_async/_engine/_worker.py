"""A fleet on one journal: :func:`load_items` puts a catalog into a PostgreSQL journal once,
and any number of workers on any machines :func:`drain` it.

A worker claims items in batches (:meth:`PostgresJournal.claim_next`) and runs them through
the batch engine (``edit_batch``) under its own owner id (``BatchOptions.owner``), so the
claims it took are the run's claims and every item gets what a run gives it: uploads once,
the adaptive limit, one poll scheduler, verified delivery, the journal's budget, and what
is left of it when taken over (an item with a prediction id is fetched by that id, one
caught mid-submit by a dead worker is ambiguous: neither is submitted again).

A worker ends when the journal has nothing left for anyone: no item unclaimed, no lease
held by another live worker or waiting to expire. A worker killed at any point leaves its
items to the others once its leases run out.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Unpack

import anyio

from .._base._exceptions import InvalidInput
from .._wire._requests import check_params
from ._batch_run import BatchRun
from ._identity import DigestCache
from ._items import BatchResult, EditItem, ResultStatus
from ._names import output_stem
from ._options import BatchOptionsDict, Items, WorkOptionsDict
from ._owners import DEFAULT_LEASE, new_owner
from ._pgjournal import LoadReport, LoadRow, PostgresJournal
from ._resume import fingerprint
from ._unrecorded import Unwritten

__all__ = ["BatchClient", "WorkTally", "drain", "load_items"]


class BatchClient(Protocol):
    """What :func:`drain` needs of a client: ``edit_batch`` (an open
    :class:`~seedream_async.AsyncSeedream`)."""

    def edit_batch(self, items: Items, **options: Unpack[BatchOptionsDict]) -> BatchRun: ...


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
    journal: PostgresJournal, items: Iterable[EditItem], *, chunk: int = 500
) -> LoadReport:
    """Load ``items`` into the journal, idempotently (see :meth:`PostgresJournal.load`).

    Each row carries the item as JSON (local images as absolute paths: every worker must
    see them at the same path, or use URLs) and its content fingerprint, the one the
    engine computes, so a worker's claim finds the same job.

    Args:
        journal: the shared journal.
        items: the catalog, read lazily.
        chunk: rows per transaction.

    Raises:
        InvalidInput: an item is invalid (the rows before it are loaded).
    """
    added = unchanged = changed = 0
    conflicts: list[tuple[str, str]] = []
    batch: list[LoadRow] = []
    digests = DigestCache()
    for item in _then_none(items):
        if item is not None:
            params = item.request_params()
            check_params(key=item.key, prompt=item.prompt, images=item.images, **params)
            digest = await fingerprint(item, params, digests)
            row = LoadRow(
                key=item.key, fingerprint=digest, name=output_stem(item.key), item=_item_json(item)
            )
            batch.append(row)
        if batch and (item is None or len(batch) >= chunk):
            report = await journal.load(batch, chunk=chunk)
            added, unchanged = added + report.added, unchanged + report.unchanged
            changed += report.changed
            conflicts.extend(report.name_conflicts)
            batch = []
    return LoadReport(
        added=added, unchanged=unchanged, changed=changed, name_conflicts=tuple(conflicts)
    )


def _then_none(items: Iterable[EditItem]) -> Iterable[EditItem | None]:
    yield from items
    yield None


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
        unrecorded: billed ids the journal never took (the database stayed down), and the
            sidecar file they were saved to; None when there are none.
    """

    owner: str
    claimed: int = 0
    taken_over: int = 0
    results: dict[str, int] = field(default_factory=dict)
    from_journal: int = 0
    executions: int = 0
    unrecorded: Unwritten | None = None

    def count(self, status: ResultStatus) -> int:
        """Results with ``status``."""
        return self.results.get(str(status), 0)


async def drain(
    client: BatchClient,
    journal: PostgresJournal,
    *,
    batch: int = 32,
    idle_wait: float | None = None,
    retry_noted: bool = False,
    on_result: Callable[[BatchResult], None] | None = None,
    **options: Unpack[WorkOptionsDict],
) -> WorkTally:
    """Work on the journal's items until none is left for anyone; return this worker's tally.

    ::

        async with AsyncSeedream() as client, await PostgresJournal.open(dsn) as journal:
            tally = await drain(client, journal, concurrency=16, out_dir="edited/")

    Args:
        client: an open client.
        journal: the shared journal (items loaded with :func:`load_items`).
        batch: most items claimed per round trip.
        idle_wait: seconds between looks at the journal while only other live workers hold
            items (they may die and leave them); ``lease / 4`` when None.
        retry_noted: also take again billed items whose delivery failed during this drain
            (fetched again by id). Those that failed before it started, and items left
            not submitted before it started, are taken again by every drain.
        on_result: called with each result.
        **options: the fields of :class:`BatchOptions` (as for ``edit_batch``) but
            ``journal``: ``budget`` is the whole journal's (every worker's spend counts);
            ``owner`` is this worker's id (a fresh one when None); ``lease`` how long a
            dead worker's items wait before another takes them over. With N workers on one
            API key, start ``concurrency`` from the key's total / N.
    """
    owner = options["owner"] = options.get("owner") or new_owner()
    lease = options.setdefault("lease", DEFAULT_LEASE)
    tally = WorkTally(owner=owner)
    wait = idle_wait if idle_wait is not None else lease / 4
    # Rows left not submitted, or billed and undelivered, before now are taken again once.
    since = await journal.clock()
    items = _claimed(
        journal, tally, batch=batch, lease=lease, wait=wait, retry_noted=retry_noted, since=since
    )

    # The run's heartbeat renews every claim of `owner`, those claim_next took included.
    run = client.edit_batch(items, journal=journal, **options)
    async with run:
        async for result in run:
            tally.results[str(result.status)] = tally.results.get(str(result.status), 0) + 1
            tally.from_journal += result.from_journal
            if on_result is not None:
                on_result(result)
    tally.executions = run.progress.executions
    tally.unrecorded = run.unrecorded
    return tally


async def _claimed(
    journal: PostgresJournal,
    tally: WorkTally,
    *,
    batch: int,
    lease: float,
    wait: float,
    retry_noted: bool,
    since: float,
) -> AsyncIterator[Mapping[str, Any]]:
    """The items ``claim_next`` hands this worker, until nothing is left for anyone (rows
    left not submitted, or billed and undelivered, before ``since`` are taken again)."""
    owner = tally.owner
    while True:
        claimed = await journal.claim_next(
            owner, limit=batch, lease=lease, retry_noted=retry_noted, since=since
        )
        for one in claimed:
            tally.claimed += 1
            tally.taken_over += one.taken_over_from is not None
            yield dict(one.item)
        if claimed:
            continue
        status = await journal.fleet(since=since)
        if set(status.owners) <= {owner} and not status.stale and not status.unclaimed:
            return  # what is left is in this worker's hands already, or nowhere
        await anyio.sleep(wait)

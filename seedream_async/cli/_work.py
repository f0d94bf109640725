"""A fleet on one journal: ``load`` a manifest into it, ``work`` to drain it, ``status``.

``work`` is one worker of any number, on any machines, sharing a PostgreSQL journal. It
claims items in batches (the journal's ``claim_next``), keeps its leases alive with a
heartbeat, and takes every claimed item through what is left of it:

- PENDING: upload, reserve the price in the journal (the fleet's budget), submit, record the
  id, wait, save, deliver;
- SUBMITTED / DONE (billed earlier, by this worker or a dead one): fetch by prediction id,
  save, deliver; never submit again;
- INTENT (a dead worker was between submit and answer): ambiguous, not sent again (the
  journal marks it so as it hands the item over).

It ends when the journal has nothing left to do: no item unclaimed, no lease held by a live
worker or waiting to expire. A worker killed at any point leaves its items to the others
once its leases run out.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .._client import AsyncSeedream
from .._engine._items import EditItem, as_item
from .._engine._names import output_stems, safe_name
from .._engine._pgjournal import ClaimedItem, LoadReport, LoadRow, PostgresJournal
from .._engine._resume import fingerprint
from .._engine._store import JournalState, LostClaim
from .._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    InvalidInput,
    PredictionFailed,
    SeedreamError,
)
from .._models import build_request, check_params

__all__ = ["WorkTally", "drain", "load_items", "worker_id"]

logger = logging.getLogger("seedream_async")

_REFUSED = frozenset({429, 503})  # the API did not take the submit: not billed


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

    for item in items:
        params = item.request_params()
        check_params(key=item.key, prompt=item.prompt, images=item.images, **params)
        digest = await fingerprint(item, params)
        batch.append(
            LoadRow(
                key=item.key,
                fingerprint=digest,
                name=safe_name(item.key),
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
    """What one worker did. ``submitted`` counts its own paid submits."""

    owner: str
    claimed: int = 0
    taken_over: int = 0
    submitted: int = 0
    delivered: int = 0
    fetched_by_id: int = 0
    failed: int = 0
    ambiguous: int = 0
    not_submitted: int = 0
    undelivered: int = 0
    lost: int = 0
    keys: list[str] = field(default_factory=list)


class _Worker:
    def __init__(
        self,
        client: AsyncSeedream,
        journal: PostgresJournal,
        *,
        owner: str,
        out_dir: Path | None,
        budget: float | None,
        lease: float,
        on_change: Callable[[WorkTally], None] | None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.owner = owner
        self.out_dir = out_dir
        self.budget = budget
        self.lease = lease
        self.price = client.price_per_execution
        self.tally = WorkTally(owner=owner)
        self.on_change = on_change
        self.active: set[str] = set()
        self.freed = anyio.Event()

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.tally)

    async def heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                await self.journal.heartbeat(self.owner, lease=self.lease)
            except SeedreamError as err:  # the next beat may get through; leases last 3 beats
                logger.warning("heartbeat failed: %s", err)

    async def item(self, claimed: ClaimedItem) -> None:
        key = claimed.record.key
        try:
            await self._item(claimed)
        except LostClaim:
            self.tally.lost += 1  # another worker carries it on
        finally:
            # Whatever became of it, the item is not this worker's any more: a row left
            # not_submitted, ambiguous or failed must not keep a live lease (as the engine's
            # claims do). Fenced by owner, so a lost claim is left alone.
            with anyio.CancelScope(shield=True):
                try:
                    await self.journal.release(self.owner, [key])
                except SeedreamError as err:  # the lease runs out on its own
                    logger.warning("could not release %r: %s", key, err)
            self.active.discard(key)
            self.freed.set()
            self.changed()

    async def _item(self, claimed: ClaimedItem) -> None:
        record, key = claimed.record, claimed.record.key
        if record.state is JournalState.AMBIGUOUS:
            # Taken over from a worker that died mid-submit: the journal marked it (maybe
            # billed, never sent again); nothing is left to do but report it.
            self.tally.ambiguous += 1
        elif record.state is JournalState.INTENT:
            # A worker died between sending the submit and hearing back: maybe billed.
            await self.journal.ambiguous(
                self.owner,
                key,
                cost=self.price,
                error=f"worker {claimed.taken_over_from or 'unknown'} stopped between this "
                "item's submit and its answer; it may have been billed, so it is not sent "
                "again (re-run with --resubmit-ambiguous to pay for it again)",
            )
            self.tally.ambiguous += 1
        elif record.prediction_id and record.state in (JournalState.SUBMITTED, JournalState.DONE):
            self.tally.fetched_by_id += 1
            max_images = int((record.request or {}).get("max_images", 1))
            await self._deliver(key, record.prediction_id, max_images)
        elif record.state is JournalState.PENDING:
            await self._run_new(claimed)

    async def _run_new(self, claimed: ClaimedItem) -> None:
        key = claimed.record.key
        try:
            item = as_item(claimed.item)
            params = item.request_params()
            urls = await self.client.upload_images(item.images)
            request = build_request(key, prompt=item.prompt, images=urls, **params)
        except SeedreamError as err:
            await self._not_submitted(key, err)
            return
        while True:
            payload = request.to_payload()
            if not await self.journal.reserve(
                self.owner, key, request=payload, amount=self.price, budget=self.budget
            ):
                await self.journal.not_submitted(
                    self.owner,
                    key,
                    error=f"the fleet's budget ${self.budget:.2f} was reached before this "
                    "item; nothing was spent on it",
                    error_type="BudgetExceeded",
                )
                self.tally.not_submitted += 1
                return
            try:
                prediction = await self.client.submit(request)
            except APIStatusError as err:
                if err.status_code in _REFUSED:  # not taken: refunded, tried again later
                    await self.journal.refund(self.owner, key, error=str(err))
                    await anyio.sleep(err.retry_after or 1.0)
                    continue
                if err.status_code < 500:  # rejected: not billed
                    await self.journal.not_submitted(
                        self.owner, key, error=err.message, error_type=type(err).__name__
                    )
                    self.tally.not_submitted += 1
                    return
                await self._ambiguous(key, err)
                return
            except SeedreamError as err:  # AmbiguousSubmission, a transport error: maybe billed
                await self._ambiguous(key, err)
                return
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._ambiguous(key, AmbiguousSubmission("stopped mid-submit"))
                raise
            break
        with anyio.CancelScope(shield=True):  # a stop must not lose the id just paid for
            await self.journal.submitted(
                self.owner, key, prediction_id=prediction.id, cost=self.price
            )
        self.tally.submitted += 1
        await self._deliver(key, prediction.id, request.max_images)

    async def _ambiguous(self, key: str, err: BaseException) -> None:
        await self.journal.ambiguous(self.owner, key, cost=self.price, error=str(err))
        self.tally.ambiguous += 1

    async def _not_submitted(self, key: str, err: SeedreamError) -> None:
        await self.journal.not_submitted(
            self.owner, key, error=err.message, error_type=type(err).__name__
        )
        self.tally.not_submitted += 1

    async def _deliver(self, key: str, prediction_id: str, max_images: int) -> None:
        try:
            prediction = await self.client.wait(prediction_id)
        except PredictionFailed as err:
            await self.journal.api_failed(self.owner, key, error=str(err))
            self.tally.failed += 1
            return
        except SeedreamError as err:
            await self._undelivered(key, err)
            return
        outputs = list(prediction.outputs)
        await self.journal.done(
            self.owner, key, outputs=outputs, predict_time=prediction.predict_time
        )
        files: list[str] = []
        if self.out_dir is not None:
            stems = output_stems(safe_name(key), len(outputs))
            try:
                for output, stem in zip(outputs, stems, strict=False):
                    path = await self.client.save_output(output, self.out_dir / stem)
                    files.append(str(path))
            except SeedreamError as err:
                await self._undelivered(key, err)
                return
        await self.journal.delivered(self.owner, key, files=files, outputs=outputs)
        self.tally.delivered += 1
        self.tally.keys.append(key)

    async def _undelivered(self, key: str, err: SeedreamError) -> None:
        # Billed: keep the id and say why; a later `work` fetches it again by id.
        await self.journal.note_error(
            self.owner, key, error=err.message, error_type=type(err).__name__
        )
        await self.journal.release(self.owner, [key])
        self.tally.undelivered += 1


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
    on_change: Callable[[WorkTally], None] | None = None,
) -> WorkTally:
    """Work on the journal's items until none is left for anyone; return this worker's tally.

    Args:
        client: an open client.
        journal: the shared journal.
        concurrency: items this worker has in progress at once. With N workers on one
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
        on_change: called with the tally after each item.
    """
    worker = _Worker(
        client,
        journal,
        owner=owner or worker_id(),
        out_dir=Path(out_dir) if out_dir is not None else None,
        budget=budget,
        lease=lease,
        on_change=on_change,
    )
    if worker.out_dir is not None:
        await anyio.Path(worker.out_dir).mkdir(parents=True, exist_ok=True)
    wait = idle_wait if idle_wait is not None else lease / 4
    tally = worker.tally
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(worker.heartbeat)
            async with anyio.create_task_group() as items:
                while True:
                    room = concurrency - len(worker.active)
                    if room <= 0:
                        await worker.freed.wait()
                        worker.freed = anyio.Event()
                        continue
                    claimed = await journal.claim_next(
                        worker.owner, limit=min(room, batch), lease=lease, retry_noted=retry_noted
                    )
                    fresh = [c for c in claimed if c.record.key not in worker.active]
                    for one in fresh:
                        worker.active.add(one.record.key)
                        tally.claimed += 1
                        tally.taken_over += one.taken_over_from is not None
                        items.start_soon(worker.item, one)
                    if fresh:
                        continue
                    if not worker.active:
                        status = await journal.fleet()
                        if not status.owners and not status.stale and not status.unclaimed:
                            break  # nothing left for anyone
                    with anyio.move_on_after(wait):
                        await worker.freed.wait()
                    worker.freed = anyio.Event()
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            leftover = sorted(worker.active)
            if leftover:  # stopped: hand unstarted and unfinished items back at once
                try:
                    await journal.release(worker.owner, leftover)
                except SeedreamError as err:
                    logger.warning("could not release claims: %s", err)
    return tally

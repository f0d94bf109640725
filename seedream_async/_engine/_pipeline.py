"""The batch engine: items in, results out in completion order, nothing lost or paid twice.

Each item runs as one task through four stages, bounded everywhere:

1. **claim**: with a journal, the item is claimed for this run (a lease another run
   respects; ``_claims.py``) and its row says what is left to do (``_resume.py``): an
   item with a prediction id is fetched by id, never submitted again;
2. **upload**: its local images, each distinct content once per batch (``_upload_cache.py``);
3. **submit**: under an adaptive concurrency limit, an optional rate limit and the
   budget; journaled before the POST and the moment the id comes back, shielded from a
   stop while on the wire (``_submit.py``, ``_stop.py``);
4. **wait** (one :class:`PollScheduler` polls every prediction in flight) and
   **deliver**: outputs saved under names no other key can have, verified whole, and
   only then journaled delivered (``_delivery.py``).

The batch is here (:class:`Engine`: the parts wired, the items fed through a window); the
steps one item takes are :class:`~._item_stages.ItemStages`' (``_item_stages.py``).

Everything that goes wrong after an id was given (a download, the disk, an expired URL, a
deadline, the account) keeps the id in the journal, so the next run fetches the prediction
again instead of paying for it again.

Items are read from the caller's iterable only as fast as there is room (a window of
``concurrency + 2 * upload_concurrency`` items in progress), so a generator of any length
runs in flat memory. One item's failure is that item's result; the batch goes on.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from contextlib import AsyncExitStack, aclosing
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .._base._exceptions import InvalidInput
from .._base._observe import observed_journal
from .._policies._polling import Completion
from ._api import EngineAPI
from ._budget import Budget
from ._claims import Busy, Claims
from ._completion import WebhookCompletion, attach_webhooks
from ._delivery import Deliverer, stale_parts
from ._identity import DigestCache
from ._item_stages import ItemStages
from ._items import BatchProgress, BatchResult, EditItem, ResultStatus, as_item
from ._journal import open_journal
from ._names import NameRegistry
from ._options import BatchOptions, Items
from ._owners import new_owner
from ._scheduler import PollScheduler
from ._stop import StopControl
from ._store import JournalStore
from ._submit import JournalSeat, Submitter
from ._tracking import ItemState, Tracker
from ._unrecorded import Unrecorded, sidecar_for
from ._upload_cache import UploadCache

__all__ = ["Engine"]


class Engine(ItemStages):
    """Runs one batch through the stages, against the narrow :class:`EngineAPI`.

    Args:
        client: the calls the engine makes (an :class:`~seedream_async.AsyncSeedream`).
        options: how the batch runs.
        progress: the live counters to keep.
    """

    def __init__(self, client: EngineAPI, options: BatchOptions, progress: BatchProgress):
        self.client = client
        self.options = options
        self.tracker = Tracker(progress, options.on_progress, client.observer)
        self.poll_policy = options.poll or client.poll
        self.uploads = UploadCache(
            client,
            max_in_flight=options.upload_concurrency,
            persist=self.poll_policy.deadline or 900.0,
        )
        self.scheduler = PollScheduler(
            client,
            policy=self.poll_policy,
            max_in_flight=max(8, options.concurrency),
            rate=options.poll_rate,
            rng=client.rng,
        )
        # With a journal, `budget` is the journal's (checked there); this run's cap is
        # `run_budget`. Without one, both cap this run.
        journaled = options.journal is not None
        caps = [c for c in (None if journaled else options.budget, options.run_budget) if c]
        self.budget = Budget(
            price=client.price,
            limit=min(caps, default=None),
            progress=progress,
            price_for=client.price_for,
        )
        self.stop = StopControl(options.stop_grace)
        self.out_dir = Path(options.out_dir) if options.out_dir is not None else None
        self.deliverer: Deliverer | None = None
        self.webhook: WebhookCompletion | None = None
        self.claims: Claims | None = None
        self.unrecorded: Unrecorded | None = None
        self.submitter: Submitter | None = None
        self.names = NameRegistry()
        self.digests = DigestCache()

    # -- the whole batch ------------------------------------------------------------------

    async def run(self, items: Items, send: MemoryObjectSendStream[BatchResult]) -> None:
        """Run every item, sending each result to ``send`` as it comes."""
        async with AsyncExitStack() as stack:
            journal = observed_journal(await self._open_journal(stack), self.tracker.observer)
            seat = None
            if journal is not None:
                owner = self.options.owner or new_owner()
                sidecar = sidecar_for(self.options.journal, self.out_dir)
                self.unrecorded = Unrecorded(
                    journal, owner, sidecar, wait=self.options.journal_wait
                )
                seat = JournalSeat(
                    journal, owner, self.options.budget, self.unrecorded, lease=self.options.lease
                )
                self.claims = Claims(journal, owner, lease=self.options.lease)
                await self.unrecorded.load()
            if self.options.completion == Completion.WEBHOOK:
                assert self.options.webhook_url is not None
                self.webhook = attach_webhooks(
                    stack, self.client, self.options.webhook_url, self.poll_policy,
                    journal=journal, where=self.options.journal,
                )  # fmt: skip
            self.submitter = Submitter(
                self.client,
                concurrency=self.options.concurrency,
                rate=self.options.rate,
                budget=self.budget,
                tracker=self.tracker,
                round_trip=lambda: self.scheduler.typical_duration() or self.poll_policy.first_poll,
                give_up_after=self.poll_policy.deadline,
                stop=self.stop,
                seat=seat,
            )
            if self.out_dir is not None:
                await anyio.Path(self.out_dir).mkdir(parents=True, exist_ok=True)
                self.deliverer = Deliverer(
                    self.client,
                    self.out_dir,
                    max_in_flight=self.options.download_concurrency,
                    stale=await stale_parts(self.out_dir),
                )
            try:
                await self._feed(items, send)
            finally:
                if self.unrecorded is not None:
                    with anyio.CancelScope(shield=True):
                        await self.unrecorded.finish()
                self.names.close()
                if self.claims is not None:
                    await self.claims.release_all()

    async def _feed(self, items: Items, send: MemoryObjectSendStream[BatchResult]) -> None:
        """Start a task per item as the window lets items in; then the deferred ones."""
        async with anyio.create_task_group() as outer:
            outer.start_soon(self.scheduler.run)
            outer.start_soon(self._watch_for_stop)
            if self.claims is not None:
                outer.start_soon(self.claims.heartbeat)
            if self.unrecorded is not None:
                outer.start_soon(self.unrecorded.retry)
            window = anyio.Semaphore(self.options.concurrency + 2 * self.options.upload_concurrency)
            deferred: list[EditItem] = []
            async with anyio.create_task_group() as group, aclosing(_aiterate(items)) as rows:
                index = 0
                async for raw in rows:
                    await window.acquire()
                    group.start_soon(self._run_item, index, raw, window, send, deferred)
                    index += 1
            # Items another live run holds: come back to them once everything else is done
            # (by then that run has most likely delivered them).
            if deferred:
                async with anyio.create_task_group() as group:
                    for item in deferred:
                        await window.acquire()
                        group.start_soon(self._run_item, -1, item, window, send, None)
            outer.cancel_scope.cancel()

    async def _watch_for_stop(self) -> None:
        # Cancelled with the batch (a stop, or the normal end): from then on nothing new
        # is submitted and submits on the wire get their grace (none are left at the end).
        try:
            await anyio.sleep_forever()
        finally:
            self.stop.stop()

    async def _open_journal(self, stack: AsyncExitStack) -> JournalStore | None:
        journal = self.options.journal
        if journal is None:
            return None
        if not isinstance(journal, str | os.PathLike):
            return journal  # the caller's: opened and closed by them
        return await stack.enter_async_context(await open_journal(journal))

    async def _run_item(
        self,
        index: int,
        raw: EditItem | Mapping[str, Any],
        window: anyio.Semaphore,
        send: MemoryObjectSendStream[BatchResult],
        deferred: list[EditItem] | None,
    ) -> None:
        try:
            try:
                item = as_item(raw)
            except InvalidInput as err:
                key = err.key or f"#{index}"
                state = ItemState(EditItem(key=key, prompt="", images=()), self.tracker)
                result = state.result(ResultStatus.FAILED, error=err)
            else:
                state = ItemState(item, self.tracker)
                try:
                    result = await self._process(state, may_defer=deferred is not None)
                except Busy:
                    assert deferred is not None
                    deferred.append(item)
                    state.drop()
                    return
            state.finish(result)
            await send.send(result)
        finally:
            window.release()


async def _aiterate(
    items: Items,
) -> AsyncGenerator[EditItem | Mapping[str, Any], None]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item

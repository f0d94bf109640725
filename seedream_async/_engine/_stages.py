"""The batch engine: items in, results out in completion order, nothing lost or paid twice.

Each item runs as one task through four stages, bounded everywhere:

1. **upload**: its local images, each distinct content once per batch (``_uploads.py``);
2. **submit**: under an adaptive concurrency limit (AIMD, ``_limits.py``) that a 429
   halves for the whole batch, an optional GCRA rate limit and the budget; the journal
   records the intent before the POST and the prediction id as soon as it is known
   (``_submit.py``);
3. **wait**: one :class:`PollScheduler` polls every prediction in flight; the slot is
   freed the moment the prediction is seen finished;
4. **download**: outputs streamed to ``out_dir`` under names derived from the key.

Items are read from the caller's iterable only as fast as there is room (a window of
``concurrency + 2 * upload_concurrency`` items in progress), so a generator of any length
runs in flat memory. One item's failure is that item's result; the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from contextlib import AsyncExitStack, aclosing
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .._constants import DEFAULT_SIZE
from .._exceptions import (
    AmbiguousSubmission,
    BudgetExceeded,
    InvalidInput,
    OutputExpired,
    PredictionFailed,
    SeedreamError,
)
from .._models import Prediction, build_request, check_params
from .._polling import Completion
from ._api import EngineAPI
from ._budget import Budget
from ._items import BatchProgress, BatchResult, EditItem, ResultStatus, Stage, as_item
from ._journal import Journal, JournalEntry
from ._names import output_stems, safe_name
from ._options import BatchOptions, Items
from ._resume import Resume, ambiguous_before, fingerprint, record_result, resume_action
from ._scheduler import PollScheduler, Shape
from ._submit import Submitter
from ._tracking import ItemState, Tracker
from ._uploads import UploadCache

__all__ = ["Engine"]

logger = logging.getLogger("seedream_async")


class Engine:
    """Runs one batch through the stages, against the narrow :class:`EngineAPI`.

    Args:
        client: the calls the engine makes (an :class:`~seedream_async.AsyncSeedream`).
        options: how the batch runs.
        progress: the live counters to keep.
    """

    def __init__(self, client: EngineAPI, options: BatchOptions, progress: BatchProgress):
        self.client = client
        self.options = options
        self.tracker = Tracker(progress, options.on_progress)
        self.poll_policy = options.poll or client.poll
        self.uploads = UploadCache(
            client,
            max_in_flight=options.upload_concurrency,
            persist=self.poll_policy.deadline or 900.0,
        )
        self.downloads = anyio.CapacityLimiter(options.download_concurrency)
        self.scheduler = PollScheduler(
            client,
            policy=self.poll_policy,
            max_in_flight=max(8, options.concurrency),
            rate=options.poll_rate,
            rng=client.rng,
        )
        self.budget = Budget(
            price=client.price_per_execution, limit=options.budget, progress=progress
        )
        self.submitter = Submitter(
            client,
            concurrency=options.concurrency,
            rate=options.rate,
            budget=self.budget,
            tracker=self.tracker,
            round_trip=lambda: self.scheduler.typical_duration() or self.poll_policy.first_poll,
            give_up_after=self.poll_policy.deadline,
        )
        self.out_dir = Path(options.out_dir) if options.out_dir is not None else None
        self.journal: Journal | None = None
        self.seen: set[str] = set()

    # -- the whole batch ------------------------------------------------------------------

    async def run(self, items: Items, send: MemoryObjectSendStream[BatchResult]) -> None:
        """Run every item, sending each result to ``send`` as it comes."""
        async with AsyncExitStack() as stack:
            self.journal = await self._open_journal(stack)
            if self.out_dir is not None:
                await anyio.Path(self.out_dir).mkdir(parents=True, exist_ok=True)
            async with anyio.create_task_group() as outer:
                outer.start_soon(self.scheduler.run)
                window = anyio.Semaphore(
                    self.options.concurrency + 2 * self.options.upload_concurrency
                )
                async with anyio.create_task_group() as group, aclosing(_aiterate(items)) as rows:
                    index = 0
                    async for raw in rows:
                        await window.acquire()
                        group.start_soon(self._run_item, index, raw, window, send)
                        index += 1
                outer.cancel_scope.cancel()

    async def _open_journal(self, stack: AsyncExitStack) -> Journal | None:
        journal = self.options.journal
        if journal is None or isinstance(journal, Journal):
            return journal  # the caller's: opened and closed by them
        journal_path = anyio.Path(journal)
        await journal_path.parent.mkdir(parents=True, exist_ok=True)
        return await stack.enter_async_context(await Journal.open(str(journal_path)))

    async def _run_item(
        self,
        index: int,
        raw: EditItem | Mapping[str, Any],
        window: anyio.Semaphore,
        send: MemoryObjectSendStream[BatchResult],
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
                result = await self._process(state)
            state.end(result.status)
            await send.send(result)
        finally:
            window.release()

    # -- one item ------------------------------------------------------------------------

    async def _process(self, state: ItemState) -> BatchResult:
        try:
            result = await self._stages(state)
        except BudgetExceeded as err:
            result = state.result(ResultStatus.NOT_SUBMITTED, error=err)
        except AmbiguousSubmission as err:
            err.key = state.key
            result = state.result(ResultStatus.AMBIGUOUS, error=err)
        except SeedreamError as err:
            result = state.result(ResultStatus.FAILED, error=err)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as err:  # a bug or an OS error must not sink the batch
            logger.exception("item %r failed unexpectedly", state.key)
            wrapped = SeedreamError(f"unexpected {type(err).__name__}: {err}")
            wrapped.__cause__ = err
            result = state.result(ResultStatus.FAILED, error=wrapped)
        if self.journal is not None:
            await record_result(self.journal, result)
        return result

    async def _stages(self, state: ItemState) -> BatchResult:
        item = state.item
        name = safe_name(item.key)
        if item.key in self.seen:
            raise InvalidInput("duplicate key: an earlier item of this batch has it", field="key")
        self.seen.add(item.key)
        params = item.request_params()
        check_params(key=item.key, prompt=item.prompt, images=item.images, **params)

        if self.journal is not None:
            entry = await self.journal.begin(item.key, await fingerprint(item, params))
            resumed = await self._resume(state, entry, name)
            if resumed is not None:
                return resumed

        state.enter(Stage.UPLOADING)
        urls = [await self.uploads.url_for(image) for image in item.images]
        if self.options.completion == Completion.SYNC:
            params = {**params, "enable_sync_mode": True}
        request = build_request(item.key, prompt=item.prompt, images=urls, **params)

        state.enter(Stage.WAITING)
        prediction = await self.submitter.submit(state, request, self.journal)
        try:
            prediction = await self._wait(prediction, Shape(request.max_images, request.size))
        finally:
            self.submitter.release()
        return await self._finish(state, prediction, name)

    async def _wait(self, prediction: Prediction, shape: Shape) -> Prediction:
        if prediction.terminal:
            return prediction
        return await self.scheduler.wait(
            prediction.id, submitted_at=anyio.current_time(), shape=shape
        )

    async def _finish(self, state: ItemState, prediction: Prediction, name: str) -> BatchResult:
        if prediction.failed:
            raise PredictionFailed(prediction.id, prediction.error)
        files: tuple[Path, ...] = ()
        if self.out_dir is not None:
            state.enter(Stage.DOWNLOADING)
            files = await self._save(prediction, name)
        return state.result(ResultStatus.SUCCEEDED, prediction=prediction, files=files)

    async def _resume(self, state: ItemState, entry: JournalEntry, name: str) -> BatchResult | None:
        """Answer an item from the journal of an earlier run, or None to run it normally."""
        action = await resume_action(
            entry,
            saving=self.out_dir is not None,
            resubmit_ambiguous=self.options.resubmit_ambiguous,
        )
        if action is Resume.RUN:
            return None
        self.tracker.progress.from_journal += 1
        if action is Resume.ANSWER:
            return state.result(
                ResultStatus.SUCCEEDED,
                files=tuple(Path(file) for file in entry.files),
                outputs=entry.outputs,
                predict_time=entry.predict_time,
                from_journal=True,
            )
        if action is Resume.AMBIGUOUS:
            return state.result(
                ResultStatus.AMBIGUOUS, error=ambiguous_before(state.key), from_journal=True
            )
        # Paid for already: poll it (or fetch it again for fresh output URLs), never resubmit.
        assert entry.prediction_id is not None
        state.prediction_id = entry.prediction_id
        state.enter(Stage.WAITING)
        await self.submitter.acquire()
        try:
            state.enter(Stage.RUNNING)
            request = entry.request or {}
            shape = Shape(int(request.get("max_images", 1)), str(request.get("size", DEFAULT_SIZE)))
            pending = Prediction(id=entry.prediction_id)
            prediction = await self._wait(pending, shape)
        finally:
            self.submitter.release()
        return await self._finish(state, prediction, name)

    async def _save(self, prediction: Prediction, name: str) -> tuple[Path, ...]:
        assert self.out_dir is not None
        outputs = list(prediction.outputs)
        if not outputs:
            raise OutputExpired(f"prediction {prediction.id} is done but listed no outputs")
        files: list[Path] = []
        refreshed = False
        for index, stem in enumerate(output_stems(name, len(outputs))):
            async with self.downloads:
                try:
                    path = await self.client.save_output(outputs[index], self.out_dir / stem)
                except OutputExpired:
                    if refreshed:
                        raise
                    # Signed URLs expire: ask for the prediction again for fresh ones.
                    refreshed = True
                    outputs = list((await self.client.get_prediction(prediction.id)).outputs)
                    path = await self.client.save_output(outputs[index], self.out_dir / stem)
            files.append(path)
        return tuple(files)


async def _aiterate(
    items: Items,
) -> AsyncGenerator[EditItem | Mapping[str, Any], None]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item

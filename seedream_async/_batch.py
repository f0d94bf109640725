"""The batch engine: items in, results out in completion order, nothing lost or paid twice.

Each item runs as one task through four stages, bounded everywhere:

1. **upload**: its local images, each distinct content once per batch (``_dedupe.py``);
2. **submit**: under an adaptive concurrency limit (AIMD, ``_limits.py``) that a 429
   halves for the whole batch, an optional GCRA rate limit and the budget; the journal
   records the intent before the POST and the prediction id as soon as it is known;
3. **wait**: one :class:`PollScheduler` polls every prediction in flight; the slot is
   freed the moment the prediction is seen finished;
4. **download**: outputs streamed to ``out_dir`` under names derived from the key.

Items are read from the caller's iterable only as fast as there is room (a window of
``concurrency + 2 * upload_concurrency`` items in progress), so a generator of any length
runs in flat memory. One item's failure is that item's result; the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypedDict

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._client import AsyncSeedream
from ._dedupe import UploadCache, image_identity
from ._exceptions import (
    AmbiguousSubmission,
    APIStatusError,
    BudgetExceeded,
    InvalidInput,
    OutputExpired,
    PredictionFailed,
    RateLimitError,
    SeedreamError,
    ServerError,
)
from ._items import (
    BatchProgress,
    BatchResult,
    EditItem,
    ProgressCallback,
    ResultStatus,
    Timings,
    as_item,
    safe_name,
)
from ._journal import Journal, JournalEntry, JournalState
from ._limits import AdaptiveLimit, RateLimiter
from ._models import EditRequest, Prediction, build_request, check_params
from ._polling import PollPolicy
from ._scheduler import PollScheduler

__all__ = ["BatchOptions", "BatchOptionsDict", "BatchRun", "Items"]

logger = logging.getLogger("seedream_async")

Items = Iterable[EditItem | Mapping[str, Any]] | AsyncIterable[EditItem | Mapping[str, Any]]
"""What a batch takes: any iterable or async iterable of items (a generator is fine)."""


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a batch runs. Every field is a keyword of ``edit_batch``.

    Args:
        concurrency: the most predictions in flight at once (a 429 lowers it for a while).
        upload_concurrency: the most uploads at once.
        download_concurrency: the most output downloads at once.
        rate: the most submits per second (GCRA), or None for no cap.
        poll_rate: the most status polls per second, or None for no cap. 50 serves about
            150 predictions in flight at ~8 s each (~2.8 polls apiece); raise it with
            ``concurrency`` beyond that, or the cap, not the API, paces the batch.
        out_dir: where outputs are saved; None keeps only their URLs.
        journal: an SQLite file recording every item, to resume a crashed batch, or an open
            :class:`Journal` (``await Journal.open(path, durable=True)`` survives power
            loss too, not only a crash of the process); you close one you pass in.
        budget: US dollars this run may spend; items past it are ``not_submitted``.
        resubmit_ambiguous: pay again for items whose earlier submit may have been billed.
        on_progress: called with the live counters after each change.
        poll: polling policy and per-prediction deadline; the client's when None.
    """

    concurrency: int = 64
    upload_concurrency: int = 16
    download_concurrency: int = 16
    rate: float | None = None
    poll_rate: float | None = 50.0
    out_dir: str | os.PathLike[str] | None = None
    journal: str | os.PathLike[str] | Journal | None = None
    budget: float | None = None
    resubmit_ambiguous: bool = False
    on_progress: ProgressCallback | None = None
    poll: PollPolicy | None = None

    def __post_init__(self) -> None:
        for name in ("concurrency", "upload_concurrency", "download_concurrency"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1", field=name)
        for name in ("rate", "poll_rate", "budget"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InvalidInput(f"{name} must be a positive number or None", field=name)


class _Tracker:
    """The live counters plus the callback, moved together."""

    def __init__(self, progress: BatchProgress, callback: ProgressCallback | None) -> None:
        self.progress = progress
        self._callback = callback

    def move(self, source: str | None, target: str | None) -> None:
        if source:
            setattr(self.progress, source, getattr(self.progress, source) - 1)
        if target:
            setattr(self.progress, target, getattr(self.progress, target) + 1)
        self.changed()

    def changed(self) -> None:
        if self._callback is not None:
            self._callback(self.progress)


_FINAL_COUNTER = {
    ResultStatus.SUCCEEDED: "succeeded",
    ResultStatus.FAILED: "failed",
    ResultStatus.AMBIGUOUS: "ambiguous",
    ResultStatus.NOT_SUBMITTED: "not_submitted",
}
_JOURNAL_STATE = {
    ResultStatus.SUCCEEDED: JournalState.SUCCEEDED,
    ResultStatus.FAILED: JournalState.FAILED,
    ResultStatus.AMBIGUOUS: JournalState.AMBIGUOUS,
    ResultStatus.NOT_SUBMITTED: JournalState.NOT_SUBMITTED,
}


class _Item:
    """One item's way through the stages: where it is, and when it got there."""

    def __init__(self, item: EditItem, tracker: _Tracker) -> None:
        self.item = item
        self.key = item.key
        self.stage: str | None = "queued"
        self.started = anyio.current_time()
        self.marks: dict[str, float] = {}
        self.prediction_id: str | None = None
        self.cost = 0.0
        self._tracker = tracker
        tracker.move(None, "queued")

    def enter(self, stage: str) -> None:
        self.marks[stage] = anyio.current_time()
        self._tracker.move(self.stage, stage)
        self.stage = stage

    def elapsed(self, stage: str, until: str | None = None) -> float | None:
        start = self.marks.get(stage)
        if start is None:
            return None
        end = self.marks.get(until, anyio.current_time()) if until else anyio.current_time()
        return end - start

    def result(
        self,
        status: ResultStatus,
        *,
        error: SeedreamError | None = None,
        prediction: Prediction | None = None,
        files: tuple[Path, ...] = (),
        from_journal: bool = False,
        outputs: tuple[str, ...] = (),
        predict_time: float | None = None,
    ) -> BatchResult:
        if isinstance(error, InvalidInput) and error.key is None:
            error = type(error)(error.message, field=error.field, key=self.key)
        timings = Timings(
            upload=self.elapsed("uploading", "waiting"),
            queued=self.elapsed("waiting", "running"),
            running=self.elapsed("running", "downloading"),
            download=self.elapsed("downloading"),
            total=anyio.current_time() - self.started,
        )
        return BatchResult(
            key=self.key,
            status=status,
            prediction_id=self.prediction_id,
            outputs=tuple(prediction.outputs) if prediction else outputs,
            files=files,
            error=error,
            cost=self.cost,
            predict_time=prediction.predict_time if prediction else predict_time,
            timings=timings,
            from_journal=from_journal,
        )


class _Engine:
    def __init__(self, client: AsyncSeedream, options: BatchOptions, progress: BatchProgress):
        self.client = client
        self.options = options
        self.tracker = _Tracker(progress, options.on_progress)
        self.price = client.price_per_execution
        self.limit = AdaptiveLimit(options.concurrency)
        progress.concurrency_limit = self.limit.limit
        self.rate = RateLimiter(options.rate) if options.rate else None
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
        self.out_dir = Path(options.out_dir) if options.out_dir is not None else None
        self.journal: Journal | None = None
        self.reserved = 0.0
        self.seen: set[str] = set()
        # The engine retries 429/503 submits itself (see _submit); the client retries the rest.
        self.submit_retry = replace(client.retry, submit_retry_statuses=frozenset())

    # -- the whole batch ------------------------------------------------------------------

    async def run(self, items: Items, send: MemoryObjectSendStream[BatchResult]) -> None:
        async with AsyncExitStack() as stack:
            if isinstance(self.options.journal, Journal):
                self.journal = self.options.journal  # the caller's: opened and closed by them
            elif self.options.journal is not None:
                journal_path = anyio.Path(self.options.journal)
                await journal_path.parent.mkdir(parents=True, exist_ok=True)
                journal = await Journal.open(str(journal_path))
                self.journal = await stack.enter_async_context(journal)
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

    def _congested(self, err: APIStatusError) -> None:
        # Only a refused submit lowers the concurrency: a 429 on a poll says the request
        # rate is high, which the client's pause gate already paces. Decrease at most once
        # per round trip of this control loop, which is a prediction's duration (the number
        # in flight only falls as predictions finish): the refusals that come sooner answer
        # submits made before the last decrease took effect, and carry no new information.
        round_trip = self.scheduler.typical_duration() or self.poll_policy.first_poll
        self.limit.congested(cooldown=max(err.retry_after or 0.0, round_trip))
        self.tracker.progress.concurrency_limit = self.limit.limit
        logger.info(
            "submit refused (HTTP %d): concurrency lowered to %d", err.status_code, self.limit.limit
        )

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
                result = _Item(EditItem(key=key, prompt="", images=()), self.tracker).result(
                    ResultStatus.FAILED, error=err
                )
                self.tracker.move("queued", "failed")
            else:
                state = _Item(item, self.tracker)
                result = await self._process(state)
                self.tracker.move(state.stage, _FINAL_COUNTER[result.status])
            await send.send(result)
        finally:
            window.release()

    # -- one item ------------------------------------------------------------------------

    async def _process(self, state: _Item) -> BatchResult:
        try:
            result = await self._stages(state)
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
        await self._record(state, result)
        return result

    async def _stages(self, state: _Item) -> BatchResult:
        item = state.item
        name = safe_name(item.key)
        if item.key in self.seen:
            raise InvalidInput("duplicate key: an earlier item of this batch has it", field="key")
        self.seen.add(item.key)
        params = item.request_params()
        check_params(key=item.key, prompt=item.prompt, images=item.images, **params)

        if self.journal is not None:
            entry = await self.journal.begin(item.key, await _fingerprint(item, params))
            resumed = await self._resume(state, entry, name)
            if resumed is not None:
                return resumed

        state.enter("uploading")
        urls = [await self.uploads.url_for(image) for image in item.images]
        request = build_request(item.key, prompt=item.prompt, images=urls, **params)

        state.enter("waiting")
        prediction = await self._submit(state, request)
        if prediction is None:
            return state.result(
                ResultStatus.NOT_SUBMITTED,
                error=BudgetExceeded(
                    f"budget ${self.options.budget:.2f} reached before this item; "
                    "nothing was spent on it"
                ),
            )
        try:
            prediction = await self._wait(prediction, request.max_images)
        finally:
            self.limit.release()
            self.tracker.progress.concurrency_limit = self.limit.limit
        return await self._finish(state, prediction, name)

    async def _submit(self, state: _Item, request: EditRequest) -> Prediction | None:
        """Submit under the limits; return the prediction holding a slot, or None (budget).

        A 429 or 503 means the server did not take the submit, so it is safe to send again;
        the engine does that itself (not the client's retry loop) so that the whole batch
        slows down: the 429 paused every request and lowered the concurrency limit, and
        this item gives its slot back and queues again under the lowered limit.
        """
        key = state.key
        give_up_at = anyio.current_time() + (self.poll_policy.deadline or float("inf"))
        while True:
            await self.limit.acquire()
            try:
                if self.rate is not None:
                    await self.rate.acquire()
                if not self._reserve():
                    self.limit.release()
                    return None
                if self.journal is not None:
                    await self.journal.record_intent(key, request.to_payload())
                state.enter("running")
                try:
                    prediction = await self.client.submit(request, retry=self.submit_retry)
                except AmbiguousSubmission:
                    self._billed(state)
                    raise
                except BaseException:
                    self.reserved -= self.price  # the server did not take it: not billed
                    raise
            except (RateLimitError, ServerError) as err:
                self.limit.release()
                if err.status_code not in (429, 503) or anyio.current_time() > give_up_at:
                    raise
                self._congested(err)
                if err.status_code == 503:  # 429s paused the client's gate already
                    await anyio.sleep(err.retry_after or self.client.retry.initial_delay)
                state.enter("waiting")
                continue
            except BaseException:
                self.limit.release()
                raise
            self._billed(state)
            self.limit.succeeded()
            state.prediction_id = prediction.id
            if self.journal is not None:
                await self.journal.record_submitted(key, prediction.id, self.price)
            return prediction

    async def _wait(self, prediction: Prediction, max_images: int) -> Prediction:
        if prediction.terminal:
            return prediction
        return await self.scheduler.wait(
            prediction.id, submitted_at=anyio.current_time(), max_images=max_images
        )

    async def _finish(self, state: _Item, prediction: Prediction, name: str) -> BatchResult:
        if prediction.failed:
            raise PredictionFailed(prediction.id, prediction.error)
        files: tuple[Path, ...] = ()
        if self.out_dir is not None:
            state.enter("downloading")
            files = await self._save(prediction, name)
        return state.result(ResultStatus.SUCCEEDED, prediction=prediction, files=files)

    async def _resume(self, state: _Item, entry: JournalEntry, name: str) -> BatchResult | None:
        """Answer an item from the journal of an earlier run, or None to run it normally."""
        if entry.state is JournalState.SUCCEEDED:
            files = tuple(Path(file) for file in entry.files)
            present = [await anyio.Path(file).exists() for file in files]
            if all(present) and (files or self.out_dir is None):
                self.tracker.progress.from_journal += 1
                return state.result(
                    ResultStatus.SUCCEEDED,
                    files=files,
                    outputs=entry.outputs,
                    predict_time=entry.predict_time,
                    from_journal=True,
                )
        if entry.state in (JournalState.SUCCEEDED, JournalState.SUBMITTED) and entry.prediction_id:
            # Paid for already: poll it (or fetch it again for fresh output URLs), never resubmit.
            self.tracker.progress.from_journal += 1
            state.prediction_id = entry.prediction_id
            state.enter("waiting")
            await self.limit.acquire()
            try:
                state.enter("running")
                max_images = (entry.request or {}).get("max_images", 1)
                pending = Prediction(id=entry.prediction_id)
                prediction = await self._wait(pending, int(max_images))
            finally:
                self.limit.release()
            return await self._finish(state, prediction, name)
        ambiguous = entry.state in (JournalState.INTENT, JournalState.AMBIGUOUS)
        if ambiguous and not self.options.resubmit_ambiguous:
            self.tracker.progress.from_journal += 1
            return state.result(
                ResultStatus.AMBIGUOUS,
                error=AmbiguousSubmission(
                    "an earlier run sent this item's submit but stopped before the answer "
                    "came, so it may have been billed; not sent again (pass "
                    "resubmit_ambiguous=True to pay for it again)",
                    key=state.key,
                ),
                from_journal=True,
            )
        return None

    def _reserve(self) -> bool:
        budget = self.options.budget
        if budget is not None and self.reserved + self.price > budget + 1e-9:
            return False
        self.reserved += self.price
        return True

    def _billed(self, state: _Item) -> None:
        state.cost = self.price
        progress = self.tracker.progress
        progress.executions += 1
        progress.spent = round(progress.executions * self.price, 6)

    async def _save(self, prediction: Prediction, name: str) -> tuple[Path, ...]:
        assert self.out_dir is not None
        outputs = list(prediction.outputs)
        if not outputs:
            raise OutputExpired(f"prediction {prediction.id} is done but listed no outputs")
        stems = [name] if len(outputs) == 1 else [f"{name}.{n}" for n in range(1, len(outputs) + 1)]
        files: list[Path] = []
        refreshed = False
        for index, stem in enumerate(stems):
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

    async def _record(self, state: _Item, result: BatchResult) -> None:
        if self.journal is None or result.from_journal:
            return
        if isinstance(result.error, InvalidInput) and result.error.field == "key":
            return  # a bad or duplicate key must not touch the good item's row
        if await self.journal.get(state.key) is None:
            return  # failed before it was journaled (bad parameters): nothing to record
        await self.journal.record_result(
            state.key,
            _JOURNAL_STATE[result.status],
            outputs=result.outputs,
            files=[str(file) for file in result.files],
            error=result.error_message,
            error_type=type(result.error).__name__ if result.error else None,
            predict_time=result.predict_time,
        )


async def _aiterate(
    items: Items,
) -> AsyncGenerator[EditItem | Mapping[str, Any], None]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _fingerprint(item: EditItem, params: Mapping[str, Any]) -> str:
    identities = [await image_identity(image) for image in item.images]
    blob = json.dumps(
        {"prompt": item.prompt, "params": params, "images": identities},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class _Runner:
    """The part of a run its background task holds: never the :class:`BatchRun` itself,
    so dropping the run (``break`` out of ``async for``) lets it be collected and stop."""

    def __init__(self, engine: _Engine, items: Items) -> None:
        self.engine = engine
        self.items = items
        self.scope = anyio.CancelScope()
        self.error: Exception | None = None
        self.done = anyio.Event()

    async def main(
        self, send: MemoryObjectSendStream[BatchResult], *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        with self.scope, send:
            task_status.started()
            try:
                await self.engine.run(self.items, send)
            except Exception as err:  # surfaced to whoever iterates (cancellation is not one)
                self.error = err
            finally:
                self.done.set()


class BatchRun:
    """A running batch: iterate it for results in completion order.

    ``async for result in client.edit_batch(...)`` runs it in the client's own task group
    (the client must be open: ``async with AsyncSeedream() as client``). For strictly
    structured concurrency, enter it instead: ``async with client.edit_batch(...) as run:
    async for result in run: ...``. Leaving early (``break``, an exception, a cancelled
    scope) cancels the rest of the batch: nothing more is submitted.

    Attributes:
        progress: the live counters.
    """

    def __init__(self, client: AsyncSeedream, items: Items, options: BatchOptions) -> None:
        self.progress = BatchProgress()
        self._client = client
        self._runner = _Runner(_Engine(client, options, self.progress), items)
        self._buffer = options.concurrency
        self._receive: MemoryObjectReceiveStream[BatchResult] | None = None
        self._own_group: anyio.abc.TaskGroup | None = None
        self._started = False

    async def _start(self, group: anyio.abc.TaskGroup) -> None:
        if self._started:
            raise RuntimeError("a BatchRun can be iterated only once")
        self._started = True
        send, self._receive = anyio.create_memory_object_stream[BatchResult](self._buffer)
        await group.start(self._runner.main, send)

    async def __aenter__(self) -> Self:
        self._own_group = anyio.create_task_group()
        await self._own_group.__aenter__()
        await self._start(self._own_group)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._own_group is not None
        self._own_group.cancel_scope.cancel()
        if self._receive is not None:
            self._receive.close()
        # The body's own exception is not handed to the group: it propagates as itself,
        # not wrapped in an ExceptionGroup.
        await self._own_group.__aexit__(None, None, None)
        return None

    def cancel(self) -> None:
        """Stop the batch: nothing new is submitted; what is in flight is abandoned."""
        self._runner.scope.cancel()

    def __aiter__(self) -> BatchRun:
        return self

    async def __anext__(self) -> BatchResult:
        if not self._started:
            group = self._client._task_group
            if group is None:
                raise RuntimeError(
                    "open the client first (async with AsyncSeedream() as client), or enter "
                    "the batch (async with client.edit_batch(...) as run)"
                )
            await self._start(group)
        assert self._receive is not None
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            if self._runner.error is not None:
                error, self._runner.error = self._runner.error, None
                raise error from None
            raise StopAsyncIteration from None
        except BaseException:
            self.cancel()  # the caller was cancelled or failed: stop the batch with it
            self._receive.close()
            raise

    def __del__(self) -> None:
        # ``break`` out of ``async for`` drops the run (the background task holds only the
        # runner): stop paying for items no one will read.
        if self._started and not self._runner.done.is_set():
            self.cancel()
        if self._receive is not None:
            self._receive.close()


class BatchOptionsDict(TypedDict, total=False):
    """The keyword arguments of ``edit_batch``; see :class:`BatchOptions`."""

    concurrency: int
    upload_concurrency: int
    download_concurrency: int
    rate: float | None
    poll_rate: float | None
    out_dir: str | os.PathLike[str] | None
    journal: str | os.PathLike[str] | Journal | None
    budget: float | None
    resubmit_ambiguous: bool
    on_progress: ProgressCallback | None
    poll: PollPolicy | None
